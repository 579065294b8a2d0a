"""More figures, all functions of data: internals, 3-D surface, Distill's map, genealogy.

matplotlib's object API with the Agg canvas, as in :mod:`ravine.lab.plot`. Each function
writes one file (PNG or SVG, by the suffix of ``path``) and returns its path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from ..rules import SPECS, Spec
from .plot import _colors, _gap_grid
from .run import Trajectory
from .surfaces import Surface
from .theory import heavy_ball_bounds


def _save(fig: Figure, path: str | Path) -> Path:
    out = Path(path)
    fig.savefig(out, dpi=100)
    return out


def internals(trajectories: Sequence[Trajectory], path: str | Path) -> Path:
    """Per step k: each coordinate's effective step ``−Δθ/g`` (log) and the state fields.

    Top row: the effective per-coordinate step for θ[0] and θ[1]; bottom row: |m| and G
    (the optimizer's first and second moment buffers) for θ[1], where present.
    """
    fig = Figure(figsize=(11, 7), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2)
    for traj, color in zip(trajectories, _colors(len(trajectories)), strict=True):
        eff = np.abs(traj.effective_lr)
        for i in range(2):
            axes[0, i].semilogy(eff[:, i], color=color, lw=1.2, label=traj.name)
        for ax, field in zip(axes[1], ("m", "G"), strict=True):
            if field in traj.internals:
                values = np.abs(traj.internals[field][1:, 1])  # k = 0 is the zero state
                ks = np.arange(1, len(values) + 1)
                ax.semilogy(ks, values, color=color, lw=1.2, label=traj.name)
    for i in range(2):
        axes[0, i].set_title(rf"effective step $|\Delta\theta[{i}] / g[{i}]|$")
    axes[1, 0].set_title(r"$|m[1]|$ (momentum buffer, steep coordinate)")
    axes[1, 1].set_title(r"$G[1]$ (squared-gradient average, steep coordinate)")
    for ax in axes.flat:
        ax.set_xlabel("step k")
        ax.grid(True, alpha=0.3)
    axes[0, 1].legend(fontsize=8, frameon=False)
    return _save(fig, path)


def surface_3d(surface: Surface, path: str | Path, trajectory: Trajectory | None = None) -> Path:
    """The loss as a 3-D surface (log of f − f_min + 1e-3), with one path drawn on it."""
    fig = Figure(figsize=(7, 5.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax: Any = fig.add_subplot(projection="3d")
    X, Y, Z = _gap_grid(surface, resolution=60)
    ax.plot_surface(X, Y, np.log10(Z + 1e-3), cmap="viridis", alpha=0.75, lw=0)
    if trajectory is not None:
        th = trajectory.thetas[np.all(np.isfinite(trajectory.thetas), axis=1)]
        gap = np.array([surface.f(t) for t in th]) - surface.f(surface.minimum)
        ax.plot(th[:, 0], th[:, 1], np.log10(np.maximum(gap, 0) + 1e-3), "r.-", ms=2, lw=1)
    ax.set_xlabel(r"$\theta[0]$")
    ax.set_ylabel(r"$\theta[1]$")
    ax.set_zlabel(r"$\log_{10}(f - f^* + 10^{-3})$")
    ax.set_title(surface.name)
    return _save(fig, path)


def convergence_map(m: dict[str, np.ndarray], path: str | Path) -> Path:
    """Distill's (h = α·λ, β) map: the measured rate from real runs, with the theory's edges.

    Colour: the rate (log scale, white where it diverges). Lines: ``h = (1 ∓ √β)²`` (the
    ripple region between them, rate √β) and ``h = 2 + 2β`` (divergence beyond).
    """
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    rate = np.where(m["rate"] < 1, m["rate"], np.nan)
    mesh = ax.pcolormesh(
        m["h"], m["beta"], 1 - rate, norm=LogNorm(1e-3, 1), cmap="magma_r", shading="nearest"
    )
    fig.colorbar(mesh, ax=ax, label="1 − measured rate  (larger: faster)")
    b = np.linspace(0, m["beta"].max(), 200)
    monotone, ripples, stable = heavy_ball_bounds(b)
    ax.plot(
        monotone,
        b,
        "c-",
        lw=1.5,
        label=r"$h = (1-\sqrt{\beta})^2$: monotone | ripples",
    )
    ax.plot(
        ripples,
        b,
        "c--",
        lw=1.5,
        label=r"$h = (1+\sqrt{\beta})^2$: ripples | oscillation",
    )
    ax.plot(stable, b, "k-", lw=2, label=r"$h = 2 + 2\beta$: divergence beyond")
    ax.set_xlim(m["h"].min(), m["h"].max())
    ax.set_ylim(m["beta"].min(), m["beta"].max())
    ax.set_xlabel(r"$h = \alpha\lambda$ (heavy-ball step × curvature)")
    ax.set_ylabel(r"momentum $\beta$")
    ax.set_title("Momentum's convergence map, measured from runs (white: diverged)")
    ax.legend(fontsize=8, loc="lower right", framealpha=0.9)
    return _save(fig, path)


POSITION: dict[str, tuple[float, float]] = {
    "SGD": (0.0, 1.0),
    "Momentum": (1.0, 2.0),
    "NAG": (2.0, 2.0),
    "NormalizedGD": (1.0, -0.2),
    "Adagrad": (1.0, 0.6),
    "RMSProp": (2.0, 0.6),
    "AdaDelta": (3.0, 0.0),
    "Adam": (3.0, 1.3),
    "NAdam": (4.0, 1.6),
}
"""Where each registry name sits in the genealogy: x = generation, y = branch."""

FAMILY_COLOR = {
    "baseline": "0.4",
    "direction": "tab:blue",
    "step size": "tab:orange",
    "direction + step size": "tab:purple",
    "fixed stride": "tab:green",
}


def genealogy(path: str | Path, specs: Sequence[Spec] = SPECS) -> Path:
    """The seed's summary figure drawn from the registry: an arrow parent → child for each
    of ``Spec.parents``, boxes coloured by ``Spec.family``."""
    fig = Figure(figsize=(10, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    pos = {s.name: POSITION.get(s.name, (float(i), -1.0)) for i, s in enumerate(specs)}
    for spec in specs:
        for parent in spec.parents:
            ax.annotate(
                "",
                xy=pos[spec.name],
                xytext=pos[parent],
                arrowprops={
                    "arrowstyle": "-|>",
                    "color": "0.35",
                    "lw": 1.3,
                    "shrinkA": 28,
                    "shrinkB": 28,
                },
            )
    for spec in specs:
        color = FAMILY_COLOR.get(spec.family, "0.5")
        ax.text(
            *pos[spec.name],
            spec.name,
            ha="center",
            va="center",
            fontsize=11,
            bbox={"boxstyle": "round,pad=0.4", "fc": "white", "ec": color, "lw": 2},
        )
    for family, color in FAMILY_COLOR.items():
        ax.plot([], [], "s", color=color, label=family, ms=10)
    ax.legend(title="Spec.family", loc="upper left", fontsize=9, frameon=False)
    ax.set_xlim(-0.6, 4.6)
    ax.set_ylim(-0.6, 2.4)
    ax.axis("off")
    ax.set_title("Genealogy (from ravine.rules.SPECS: arrows parent → child)")
    return _save(fig, path)


def rate_bars(checks: list[dict[str, Any]], path: str | Path) -> Path:
    """Measured vs theoretical rates of GD and heavy ball, per κ (from theory.rate_check)."""
    fig = Figure(figsize=(7.5, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    x = np.arange(len(checks))
    for j, (name, color) in enumerate((("GD", "tab:red"), ("heavy ball", "tab:blue"))):
        theory = [1 - c[name]["theory"] for c in checks]
        measured = [1 - c[name]["measured"] for c in checks]
        ax.bar(
            x + (j - 0.5) * 0.38, measured, 0.36, color=color, alpha=0.7, label=f"{name}, measured"
        )
        ax.plot(x + (j - 0.5) * 0.38, theory, "k_", ms=22, mew=2)
    ax.plot([], [], "k_", ms=12, mew=2, label="theory")
    ax.set_yscale("log")
    ax.set_xticks(x, [f"κ = {c['kappa']:g}" for c in checks])
    ax.set_ylabel("1 − rate  (error shrinks by the rate each step)")
    ax.legend(frameon=False, fontsize=9)
    ax.set_title("Measured linear rates at the optimal hyperparameters")
    return _save(fig, path)
