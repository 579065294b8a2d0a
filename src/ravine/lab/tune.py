"""Learning-rate search: the same budget for every optimizer, written out in the result.

For each lr of a log-spaced ``grid`` (default ``10**linspace(-4, 1, 51)``, ten points a
decade), one run of ``steps`` steps from ``x0`` with the seed's other hyperparameters. The
best lr gets ``loss − f_min`` within ``tol`` for good in the fewest steps
(:func:`~ravine.lab.metrics.steps_to_tolerance` with ``stay=True``, so a run that only
passes through the tolerance does not win); ties, and runs that never settle, are
ranked by their final loss (a diverged run ranks last). A best lr at either end of the
grid is flagged: the optimum may lie outside it.

The seed's AdaDelta has no learning rate (lr = 1), so it is not tuned: its record holds
the one run at lr = 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..numpy import OPTIMIZERS
from .metrics import final_loss, steps_to_tolerance
from .run import run
from .surfaces import Surface

DEFAULT_GRID: tuple[float, ...] = tuple(float(lr) for lr in 10 ** np.linspace(-4, 1, 51))
"""1e-4 … 10, ten points a decade: fine enough to find gradient descent's best lr on a
valley, which sits just below the stability limit 2/λ_max."""

UNTUNED: dict[str, str] = {"AdaDelta": "the seed's AdaDelta has no learning rate"}
"""Optimizers kept at their default lr, and why."""


@dataclass(frozen=True)
class Trial:
    """One run of the search."""

    lr: float
    steps_to_tol: int | None
    final_loss: float


@dataclass(frozen=True)
class Tuning:
    """The chosen lr and how it was found: search space, budget and every trial."""

    name: str
    lr: float
    grid: tuple[float, ...]
    steps: int
    tol: float
    trials: tuple[Trial, ...]
    note: str = ""
    budget: int = field(init=False)
    """Optimizer steps spent: runs × steps."""

    @property
    def at_edge(self) -> bool:
        """Whether the best lr is the grid's smallest or largest (the search may be short)."""
        return bool(self.grid) and self.lr in (min(self.grid), max(self.grid))

    def __post_init__(self) -> None:
        object.__setattr__(self, "budget", len(self.trials) * self.steps)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``None`` for a tolerance never reached, NaN losses as ``None``)."""
        return {
            "name": self.name,
            "lr": self.lr,
            "search": {"grid": list(self.grid), "steps": self.steps, "tol": self.tol},
            "budget_steps": self.budget,
            "at_edge": self.at_edge,
            "note": self.note,
            "trials": [
                {
                    "lr": t.lr,
                    "steps_to_tol": t.steps_to_tol,
                    "final_loss": t.final_loss if math.isfinite(t.final_loss) else None,
                }
                for t in self.trials
            ],
        }


def _rank(trial: Trial) -> tuple[float, float]:
    steps = math.inf if trial.steps_to_tol is None else trial.steps_to_tol
    loss = trial.final_loss if math.isfinite(trial.final_loss) else math.inf
    return steps, loss


def tune_lr(
    name: str,
    surface: Surface,
    x0: Any,
    steps: int,
    tol: float,
    grid: Sequence[float] | None = None,
) -> Tuning:
    """The best lr on ``grid`` for optimizer ``name`` (fewest steps to settle within ``tol``).

    >>> from ravine.lab.surfaces import valley
    >>> result = tune_lr("SGD", valley(kappa=10.0), [-9.0, 2.0], steps=100, tol=1e-6)
    >>> round(result.lr, 4), result.budget       # 51 runs of 100 steps
    (0.1585, 5100)
    """
    cls = OPTIMIZERS[name]
    lrs = DEFAULT_GRID if grid is None else tuple(float(lr) for lr in grid)
    note = UNTUNED.get(name, "")
    if note:
        lrs = (float(cls.spec.defaults["lr"]),)
    trials = []
    for lr in lrs:
        traj = run(cls(lr=lr), surface, x0, steps)
        trials.append(Trial(lr, steps_to_tolerance(traj, tol, stay=True), final_loss(traj)))
    best = min(trials, key=_rank)
    return Tuning(name, best.lr, () if note else lrs, steps, tol, tuple(trials), note)
