"""The seed's claims about the optimizers, each measured on the valley with numbers.

Every function runs real optimizers on ``valley(KAPPA)`` from ``X0`` (far along the floor, a
little up a wall) and returns the numbers behind one claim and whether it ``holds`` by the
thresholds written in its docstring. Tests assert the numbers; the report prints them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..numpy import OPTIMIZERS
from . import metrics
from .run import Trajectory, run, run_all
from .surfaces import valley

KAPPA = 50.0
"""The valley's condition number."""
X0 = (-9.0, 2.0)
"""θ_0: 9 along the floor, 2 across it."""
SAME_LR = 0.036
"""One lr for the seed's side-by-side pictures: 1.8/κ, just below GD's stability limit 2/κ."""


def zigzag(steps: int = 300, lr: float = SAME_LR) -> dict[str, Any]:
    """GD zig-zags across the valley; Momentum and NAG damp it (same lr, β = 0.9).

    Holds when GD's :func:`~ravine.lab.metrics.zigzag_index` is at least 3× Momentum's and
    NAG's ("several times").
    """
    surface = valley(KAPPA)
    trajs = run_all({n: {"lr": lr} for n in ("SGD", "Momentum", "NAG")}, surface, X0, steps)
    assert surface.steep is not None
    index = {n: metrics.zigzag_index(t, surface.steep) for n, t in trajs.items()}
    ratios = {n: index["SGD"] / index[n] for n in ("Momentum", "NAG")}
    return {
        "lr": lr,
        "steps": steps,
        "zigzag_index": index,
        "path_ratio": {n: metrics.path_ratio(t) for n, t in trajs.items()},
        "gd_over": ratios,
        "holds": min(ratios.values()) >= 3.0,
    }


def adagrad_stalls(steps: int = 300, lr: float = 0.1) -> dict[str, Any]:
    """Adagrad's effective step ``lr/√(G + eps)`` only shrinks and it stalls; RMSProp goes on.

    Same lr for both. Holds when Adagrad's effective step never grows and falls at least 5×
    in each coordinate from the first step to the last, Adagrad ends more than half its
    start distance from the minimum and RMSProp less than 1/20 of it.
    """
    surface = valley(KAPPA)
    trajs = run_all({n: {"lr": lr} for n in ("Adagrad", "RMSProp")}, surface, X0, steps)
    eff = {n: t.effective_lr for n, t in trajs.items()}
    dist = {n: metrics.distances(t, surface.minimum) for n, t in trajs.items()}
    decay = eff["Adagrad"][0] / eff["Adagrad"][-1]
    monotone = bool(np.all(np.diff(eff["Adagrad"], axis=0) <= 0))
    start = float(dist["Adagrad"][0])
    end = {n: float(d[-1]) for n, d in dist.items()}
    return {
        "lr": lr,
        "steps": steps,
        "effective_lr_first": {n: e[0].tolist() for n, e in eff.items()},
        "effective_lr_last": {n: e[-1].tolist() for n, e in eff.items()},
        "adagrad_decay": decay.tolist(),
        "adagrad_monotone": monotone,
        "start_distance": start,
        "end_distance": end,
        "holds": monotone
        and bool(np.min(decay) >= 5)
        and end["Adagrad"] > start / 2
        and end["RMSProp"] < start / 20,
    }


def normalized_hovers(steps: int = 300, lr: float = 0.1) -> dict[str, Any]:
    """Normalized GD moves exactly lr a step and hovers within about lr of the minimum.

    Holds when every ‖θ_{k+1} − θ_k‖ equals lr to 1e-12 (relative), over the last 100
    steps the distance to the minimum stays between 0.1·lr and lr, and its fitted rate there
    is above 0.999 (no convergence).
    """
    surface = valley(KAPPA)
    traj = run(OPTIMIZERS["NormalizedGD"](lr=lr), surface, X0, steps)
    lengths = np.linalg.norm(traj.moves, axis=1)
    dist = metrics.distances(traj, surface.minimum)[-100:]
    rate = metrics.fitted_rate(dist)
    step_error = float(np.max(np.abs(lengths / lr - 1)))
    near = (float(dist.min() / lr), float(dist.max() / lr))
    return {
        "lr": lr,
        "steps": steps,
        "step_length_max_rel_error": step_error,
        "last100_distance_over_lr": near,
        "last100_rate": rate,
        "holds": step_error <= 1e-12 and near[0] >= 0.1 and near[1] <= 1.0 and rate > 0.999,
    }


def adadelta_without_lr(steps: int = 3000) -> dict[str, Any]:
    """AdaDelta, the seed's rule with no learning rate (lr = 1, default γ and ε), converges.

    Holds when the distance to the minimum falls at least 100× in ``steps`` steps.
    """
    surface = valley(KAPPA)
    traj = run(OPTIMIZERS["AdaDelta"](), surface, X0, steps)
    dist = metrics.distances(traj, surface.minimum)
    marks = [k for k in (0, 100, 300, 1000, steps) if k <= steps]
    return {
        "steps": steps,
        "hyperparameters": {k: traj.hyperparameters[k] for k in ("lr", "gamma", "eps")},
        "distance": {k: float(dist[k]) for k in marks},
        "loss": {k: float(traj.losses[k]) for k in marks},
        "shrink": float(dist[0] / dist[-1]),
        "holds": float(dist[0] / dist[-1]) >= 100,
    }


def adam_combines(steps: int = 300, lr: float = 0.1) -> dict[str, Any]:
    """Adam = RMSProp's equalised steps + Momentum's damping (same lr for Adam and RMSProp).

    Equalised: :func:`~ravine.lab.metrics.axis_step_ratio` (first 10 moves, across/along) is
    within [0.5, 2] for RMSProp and Adam, above 3 for SGD and Momentum at ``SAME_LR``.
    Damped: Adam's zig-zag index is at most Momentum's and under a tenth of RMSProp's.
    """
    surface = valley(KAPPA)
    steep = surface.steep
    assert steep is not None
    hp = {"SGD": SAME_LR, "Momentum": SAME_LR, "RMSProp": lr, "Adam": lr}
    trajs = run_all({n: {"lr": v} for n, v in hp.items()}, surface, X0, steps)
    ratio = {n: metrics.axis_step_ratio(t, steep) for n, t in trajs.items()}
    zz = {n: metrics.zigzag_index(t, steep) for n, t in trajs.items()}
    final = {n: metrics.final_loss(t) for n, t in trajs.items()}
    equal = all(0.5 <= ratio[n] <= 2 for n in ("RMSProp", "Adam"))
    unequal = all(ratio[n] > 3 for n in ("SGD", "Momentum"))
    damped = zz["Adam"] <= zz["Momentum"] and zz["Adam"] < zz["RMSProp"] / 10
    return {
        "lr": hp,
        "steps": steps,
        "axis_step_ratio": ratio,
        "zigzag_index": zz,
        "final_loss": final,
        "holds": equal and unequal and damped,
    }


def all_claims() -> dict[str, dict[str, Any]]:
    """Every claim's numbers, by name."""
    return {
        "zigzag": zigzag(),
        "adagrad_stalls": adagrad_stalls(),
        "normalized_hovers": normalized_hovers(),
        "adadelta_without_lr": adadelta_without_lr(),
        "adam_combines": adam_combines(),
    }


__all__ = [
    "Trajectory",
    "adadelta_without_lr",
    "adagrad_stalls",
    "adam_combines",
    "all_claims",
    "normalized_hovers",
    "zigzag",
]
