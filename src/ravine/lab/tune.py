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
from .export import clean
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


SPACE: dict[str, tuple[float, float, str]] = {
    "lr": (1e-4, 10.0, "log"),
    "beta": (1e-3, 0.5, "log 1 −"),
    "gamma": (1e-4, 0.5, "log 1 −"),
}
"""The search space of :func:`tune`: ``name: (low, high, scale)``. ``"log"``: the value is
log-uniform in [low, high]; ``"log 1 −"``: ``1 − value`` is (β and γ near 1, where a decade
of 1 − β is what matters)."""


def _draw(rng: np.random.Generator, low: float, high: float, scale: str) -> float:
    u = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    return u if scale == "log" else 1.0 - u


@dataclass(frozen=True)
class Search:
    """A random search's record: the space, budget, objective, seed and every trial."""

    name: str
    best: dict[str, float]
    space: dict[str, tuple[float, float, str]]
    trials: int
    steps: int
    tol: float
    seed: int
    results: tuple[tuple[dict[str, float], int | None, float], ...]
    """(hyperparameters, steps to tol (stay), final loss) of each trial, in order."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "best": self.best,
            "space": {k: list(v) for k, v in self.space.items()},
            "budget_steps": self.trials * self.steps,
            "objective": f"fewest steps to stay within tol={self.tol:g}, then final loss",
            "seed": self.seed,
            "trials": [
                {"hp": hp, "steps_to_tol": s, "final_loss": clean(f)} for hp, s, f in self.results
            ],
        }


def tune(
    name: str,
    surface: Surface,
    x0: Any,
    steps: int,
    tol: float,
    *,
    trials: int = 40,
    seed: int = 0,
    space: dict[str, tuple[float, float, str]] | None = None,
    on_trial: Any = None,
) -> Search:
    """Random log-scale search over every hyperparameter of ``name`` that is in ``space``.

    Every optimizer gets the same ``trials`` runs of ``steps`` steps (the same budget) and
    the same objective as :func:`tune_lr`; AdaDelta's lr is not searched (the seed gives
    it none). Trial 0 is the seed's defaults. ``on_trial()`` is called after each run (a
    progress bar).
    """
    cls = OPTIMIZERS[name]
    space = SPACE if space is None else space
    keys = [k for k in space if k in cls.spec.defaults and not (k == "lr" and name in UNTUNED)]
    rng = np.random.default_rng(seed)
    results = []
    for i in range(trials):
        hp = (
            {k: float(cls.spec.defaults[k]) for k in keys}
            if i == 0
            else {k: _draw(rng, *space[k]) for k in keys}
        )
        traj = run(cls(**hp), surface, x0, steps)
        trial = Trial(0.0, steps_to_tolerance(traj, tol, stay=True), final_loss(traj))
        results.append((hp, trial.steps_to_tol, trial.final_loss, _rank(trial)))
        if on_trial is not None:
            on_trial()
    best = min(results, key=lambda r: r[3])[0]
    return Search(
        name,
        best,
        {k: space[k] for k in keys},
        trials,
        steps,
        tol,
        seed,
        tuple((hp, s, f) for hp, s, f, _ in results),
    )
