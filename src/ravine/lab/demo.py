"""``ravine demo``: the seed's ravine, all nine optimizers, a table and two figures.

The valley ``f = ½ θᵀAθ`` with curvature ``kappa`` across (w1 = θ[1]) and 1 along the
floor (w2 = θ[0]), from θ_0 = −9·w2 + 2·w1 = (−9, 2): far along the floor, a little up a
wall. Each optimizer gets its lr from the same grid search (:func:`~ravine.lab.tune.tune_lr`,
AdaDelta excepted: the seed gives it no learning rate), keeps the seed's other defaults,
and runs ``steps`` steps. Gradient descent at its best lr bounces from wall to wall (the
seed's zig-zag); Momentum's running average cancels the bounces, although at its own best
lr it overshoots the floor in slow swings (the table's travel column).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..numpy import OPTIMIZERS
from . import metrics, plot
from .export import clean
from .run import Trajectory, run
from .surfaces import valley, valley_axes
from .tune import Tuning, tune_lr

START_ALONG, START_ACROSS = -9.0, 2.0
"""θ_0 in the valley's own axes: along the floor (w2) and across it (w1)."""
TOL = 1e-6
"""Tolerance on f(θ) − f(θ*) for "steps to tol" and the lr search."""
GRID: tuple[float, ...] = tuple(float(lr) for lr in 10 ** np.linspace(-3, 1, 41))
"""The lr search: :data:`~ravine.lab.tune.DEFAULT_GRID`'s ten points a decade, from 1e-3
(with less, no optimizer covers the 9 units to the minimum in the default 300 steps) to 10;
a best lr at either end is flagged in the table."""


def _row(traj: Trajectory, tuning: Tuning, steep: np.ndarray) -> dict[str, Any]:
    return {
        "optimizer": traj.name,
        "lr": tuning.lr,
        "lr_at_grid_edge": tuning.at_edge,
        "steps_to_tol": metrics.steps_to_tolerance(traj, TOL, stay=True),
        "final_loss": metrics.final_loss(traj),
        "zigzag_index": metrics.zigzag_index(traj, steep),
        "travel_ratio": metrics.travel_ratio(traj, steep),
    }


def format_table(rows: list[dict[str, Any]], steps: int) -> str:
    """The results as aligned text, with a key to the columns."""
    header = f"{'optimizer':<13}{'lr':>9}  {'steps to tol':>12}  {'final loss':>10}"
    header += f"  {'zig-zag':>7}  {'travel':>7}"
    lines = [header, "-" * len(header)]
    for r in rows:
        lr = f"{r['lr']:.3g}" + ("*" if r["lr_at_grid_edge"] else " ")
        reached = "—" if r["steps_to_tol"] is None else str(r["steps_to_tol"])
        lines.append(
            f"{r['optimizer']:<13}{lr:>9}  {reached:>12}  {r['final_loss']:>10.2e}"
            f"  {r['zigzag_index']:>7.2f}  {r['travel_ratio']:>7.2f}"
        )
    lines += [
        "",
        f"steps to tol: first step from which f − f* stays <= {TOL:g} ('—': not within "
        f"{steps} steps)",
        "zig-zag: share of the travel across the valley that the next step takes straight "
        "back (0: none)",
        "travel: distance travelled across the valley / net distance across it (1: no overshoot)",
    ]
    if any(r["lr_at_grid_edge"] for r in rows):
        lines.append("*: best lr at the edge of the search grid")
    return "\n".join(lines)


def main(
    out_dir: str | Path = "out/demo", steps: int = 300, kappa: float = 50.0, *, report: bool = False
) -> dict[str, Any]:
    """Tune, run, tabulate and draw every optimizer on the valley; returns the results.

    With ``report=True`` it then writes the lab's HTML report under ``out_dir/report``
    (:func:`ravine.lab.report.build`) and prints where it is (``ravine demo`` then writes the
    interactive page, :func:`ravine.lab.explore.build`, under ``out_dir/explore``).
    """
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    surface = valley(kappa)
    steep, shallow = valley_axes(0.0)
    x0 = START_ALONG * shallow + START_ACROSS * steep

    print(
        f"{surface.name}: f = ½ θᵀAθ, eigenvalues 1 and {kappa:g}; θ_0 = ({x0[0]:g}, {x0[1]:g}), "
        f"{steps} steps"
    )
    print(
        f"lr search: {len(GRID)} values, {GRID[0]:g} … {GRID[-1]:g} "
        f"(log-spaced), {steps} steps each, fewest steps to stay within {TOL:g}"
    )
    trajectories, tunings, rows = [], [], []
    for name, cls in OPTIMIZERS.items():
        tuning = tune_lr(name, surface, x0, steps, TOL, GRID)
        why = f"  (not tuned: {tuning.note})" if tuning.note else ""
        print(f"  {name:<13} lr = {tuning.lr:.3g}{why}")
        traj = run(cls(lr=tuning.lr), surface, x0, steps)
        trajectories.append(traj)
        tunings.append(tuning)
        rows.append(_row(traj, tuning, steep))

    print()
    print(format_table(rows, steps))
    title = rf"{surface.name}: {steps} steps from $\theta_0$ = ({x0[0]:g}, {x0[1]:g}), lr tuned"
    figure = plot.contour_with_trajectories(surface, trajectories, out / "valley.png", title=title)
    losses = plot.loss_curves(
        trajectories, out / "losses.png", tol=TOL, title=f"{surface.name}: loss gap, lr tuned"
    )
    results = {
        "surface": {"name": surface.name, "kappa": kappa, "steep_axis": steep},
        "x0": x0,
        "steps": steps,
        "tol": TOL,
        "rows": rows,
        "tuning": [t.to_dict() for t in tunings],
        "trajectories": [
            {"name": t.name, "hyperparameters": t.hyperparameters, "thetas": t.thetas}
            for t in trajectories
        ],
    }
    table = out / "results.json"
    table.write_text(json.dumps(clean(results), indent=1, ensure_ascii=False) + "\n")
    print()
    for written in (figure, losses, table):
        print(f"wrote {written}")
    print(f"done in {time.perf_counter() - started:.1f} s")
    if report:
        from . import report as lab_report

        print()
        print("the lab's report (tuning, theory checks, the seed's claims, figures):")
        page = lab_report.build(out / "report", kappa=kappa, steps=steps)
        results["report"] = str(page)
        print(f"open {page.resolve()}")
    return results
