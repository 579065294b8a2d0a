"""Animations of trajectories on a surface's contours: GIF (Pillow), MP4 when ffmpeg exists."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.animation import FFMpegWriter, FuncAnimation, PillowWriter
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from .plot import _colors, _gap_grid
from .run import Trajectory
from .surfaces import Surface


def has_ffmpeg() -> bool:
    """Whether an ffmpeg binary is on the PATH (MP4 output needs it)."""
    return shutil.which("ffmpeg") is not None


def animate(
    surface: Surface,
    trajectories: Sequence[Trajectory],
    path: str | Path,
    *,
    frames: int = 60,
    fps: int = 12,
) -> Path:
    """The paths growing step by step over the contours; ``.gif`` or ``.mp4`` by suffix.

    ``frames`` frames evenly spaced over the steps (the last frame shows the whole run).
    """
    out = Path(path)
    if out.suffix == ".mp4" and not has_ffmpeg():
        raise RuntimeError("MP4 needs ffmpeg on the PATH; write a .gif instead")
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    X, Y, Z = _gap_grid(surface, resolution=80)
    positive = Z[Z > 0]
    levels = np.geomspace(max(positive.min(), positive.max() * 1e-6), positive.max(), 12)
    ax.contour(X, Y, Z, levels=levels, colors="0.6", linewidths=0.5, norm=LogNorm())
    ax.plot(*surface.minimum, "k*", ms=10)
    lines = [
        ax.plot([], [], "-o", color=c, ms=2, lw=1.2, label=t.name)[0]
        for t, c in zip(trajectories, _colors(len(trajectories)), strict=True)
    ]
    (x0, x1), (y0, y1) = surface.bounds
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=7, frameon=False)
    title = ax.set_title("")
    steps = max(t.steps for t in trajectories)
    ks = np.unique(np.linspace(0, steps, frames).round().astype(int))

    def draw(k: int) -> list[Artist]:
        for line, traj in zip(lines, trajectories, strict=True):
            line.set_data(traj.thetas[: k + 1, 0], traj.thetas[: k + 1, 1])
        title.set_text(f"{surface.name}: step {k}")
        return [*lines, title]

    anim = FuncAnimation(fig, draw, frames=ks, blit=False)
    writer = FFMpegWriter(fps=fps) if out.suffix == ".mp4" else PillowWriter(fps=fps)
    anim.save(out, writer=writer, dpi=70)
    return out
