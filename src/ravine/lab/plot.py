"""Figures of trajectories: drawing only (the numbers come from :mod:`ravine.lab.run`).

Uses matplotlib's object API with the Agg canvas (no pyplot, no display, no global state).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .run import Trajectory
from .surfaces import Surface

COLUMNS = 3
"""Panels a row in the small multiples."""


def _colors(n: int) -> list[tuple[float, ...]]:
    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def _gap_grid(surface: Surface, resolution: int = 120) -> tuple[np.ndarray, ...]:
    """X, Y and f − f_min on a grid over ``surface.bounds`` (f − min f where f < f_min)."""
    (x0, x1), (y0, y1) = surface.bounds
    X, Y = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    points = np.stack([X.ravel(), Y.ravel()], axis=1)
    f_min = surface.f(surface.minimum)
    Z = np.array([surface.f(p) for p in points]).reshape(X.shape) - f_min
    if Z.min() < 0:  # unbounded below (the saddle): measure from the window's lowest value
        Z = Z - Z.min()
    return X, Y, Z


def _lr_label(traj: Trajectory) -> str:
    return f"{traj.name}  (lr = {traj.hyperparameters.get('lr', float('nan')):.3g})"


def contour_with_trajectories(
    surface: Surface,
    trajectories: Sequence[Trajectory],
    path: str | Path,
    *,
    title: str | None = None,
) -> Path:
    """Small multiples, one panel per trajectory over the same contours; writes a PNG.

    Each panel shows the loss contours (log-spaced levels of f − f_min), one optimizer's
    θ path in its own colour (a dot per iterate), the start (black circle) and the minimum
    (black star). The axes are to scale, so the valley looks as narrow as it is.
    """
    n = len(trajectories)
    cols = min(COLUMNS, n)
    rows = math.ceil(n / cols)
    (x0, x1), (y0, y1) = surface.bounds
    # Fixed margins (inches) instead of a layout engine: quicker, and the same every time.
    panel_w, left, right, top, bottom, gap_w, gap_h = 4.6, 0.6, 0.15, 0.7, 0.95, 0.35, 0.55
    legend_columns = 4 if cols > 1 else 2  # one panel is too narrow for the legend in a row
    bottom += 0.25 * (4 // legend_columns - 1)
    panel_h = panel_w * (y1 - y0) / (x1 - x0)
    width = left + right + cols * panel_w + (cols - 1) * gap_w
    height = top + bottom + rows * panel_h + (rows - 1) * gap_h
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    axes = fig.subplots(
        rows,
        cols,
        squeeze=False,
        sharex=True,
        sharey=True,
        gridspec_kw={
            "left": left / width,
            "right": 1 - right / width,
            "top": 1 - top / height,
            "bottom": bottom / height,
            "wspace": gap_w / panel_w,
            "hspace": gap_h / panel_h,
        },
    )

    X, Y, Z = _gap_grid(surface)
    positive = Z[Z > 0]
    levels = np.geomspace(max(positive.min(), positive.max() * 1e-6), positive.max(), 14)
    for ax, traj, color in zip(axes.flat, trajectories, _colors(n), strict=False):
        shaded = np.maximum(Z, levels[0] / 2)  # the minimum itself (0) has no log
        ax.contourf(X, Y, shaded, levels=levels, norm=LogNorm(), cmap="Greys", alpha=0.35)
        ax.contour(X, Y, Z, levels=levels, colors="0.55", linewidths=0.5)
        thetas = traj.thetas[np.all(np.isfinite(traj.thetas), axis=1)]
        ax.plot(thetas[:, 0], thetas[:, 1], "-o", color=color, lw=1.2, ms=2.2)
        ax.plot(*traj.thetas[0], "o", color="black", ms=6, mfc="white", mew=1.5)
        ax.plot(*surface.minimum, "*", color="black", ms=10)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_aspect("equal")
        ax.set_title(_lr_label(traj), fontsize=10, color=color)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel(r"$\theta[0]$")
    for ax in axes[:, 0]:
        ax.set_ylabel(r"$\theta[1]$")

    handles = [
        Line2D(
            [], [], color="0.3", marker="o", ms=2.2, lw=1.2, label=r"$\theta_k$, one dot per step"
        ),
        Line2D(
            [],
            [],
            ls="",
            marker="o",
            color="black",
            mfc="white",
            mew=1.5,
            label=r"start $\theta_0$",
        ),
        Line2D([], [], ls="", marker="*", color="black", ms=10, label="minimum"),
        Line2D([], [], color="0.55", lw=0.5, label="contours of f (log-spaced)"),
    ]
    fig.legend(handles=handles, loc="lower center", ncols=legend_columns, frameon=False)
    fig.suptitle(title or surface.name)
    out = Path(path)
    fig.savefig(out, dpi=110)
    return out


def loss_curves(
    trajectories: Sequence[Trajectory],
    path: str | Path,
    *,
    tol: float | None = None,
    title: str | None = None,
) -> Path:
    """f(θ_k) − f_min against k on a log scale, one line per trajectory; writes a PNG.

    Exact zeros (a run that lands on the minimum) are drawn at the bottom of the axis;
    ``tol``, if given, is a dashed horizontal line.
    """
    fig = Figure(figsize=(8.5, 5.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    top = max(float(np.nanmax(t.losses[:1] - t.f_min)) for t in trajectories)
    floor = top * 1e-18
    for traj, color in zip(trajectories, _colors(len(trajectories)), strict=True):
        gap = np.maximum(traj.losses - traj.f_min, floor)
        ax.semilogy(np.arange(len(gap)), gap, color=color, lw=1.4, label=_lr_label(traj))
    if tol is not None:
        ax.axhline(tol, color="black", ls="--", lw=0.8, label=f"tolerance {tol:g}")
    ax.set_ylim(floor, top * 1e3)
    ax.set_xlabel(r"step $k$")
    ax.set_ylabel(r"$f(\theta_k) - f(\theta^*)$")
    ax.grid(True, which="major", alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=9, frameon=False)
    ax.set_title(title or f"loss on {trajectories[0].surface}")
    out = Path(path)
    fig.savefig(out, dpi=110)
    return out
