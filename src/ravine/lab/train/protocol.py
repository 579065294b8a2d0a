"""The comparison protocol: tune on validation with the same budget, then several seeds.

1. **Tune.** Every optimizer whose lr is tuned gets one run (seed 0) per lr of the same
   written-out log-scale grid (:data:`GRID`, half-decades 1e-4 … 10): the same budget of
   ``len(grid) × epochs`` epochs. The best lr has the lowest validation loss after the
   last epoch (a diverged run ranks last). A best lr at either end of the grid is flagged.
   Other hyperparameters stay at the values the candidate fixes (β = 0.9 for the
   momentum methods, the seed's γ and ε). AdaDelta has no lr (the seed's is 1) and is not
   tuned.
2. **Repeat.** The chosen setting runs with seeds 1 … n (not the tuning seed); the
   summary holds mean ± sample std over seeds of the training-loss curve, the final test
   accuracy and the seconds per epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ...torch import OPTIMIZERS
from ..export import clean
from ..metrics import spread
from ..progress import Progress
from .data import Dataset
from .loop import Factory, History, train

GRID: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0, 10.0)
"""The lr search space: half-decades from 1e-4 to 10 (eleven runs per optimizer)."""


@dataclass(frozen=True)
class Candidate:
    """An optimizer to compare: a ravine registry name or a ``torch.optim`` class name, the
    hyperparameters it keeps fixed, and whether its lr is tuned."""

    label: str
    library: str
    name: str
    fixed: Mapping[str, Any] = field(default_factory=dict)
    tuned: bool = True

    def factory(self, lr: float | None = None) -> Factory:
        """Parameters → optimizer with ``lr`` (``None``: the class's default lr)."""
        if self.library == "ravine":
            cls: Any = OPTIMIZERS[self.name]
        elif self.library == "torch":
            cls = getattr(torch.optim, self.name)
        else:
            raise ValueError(f"library must be 'ravine' or 'torch', got {self.library!r}")
        kwargs = dict(self.fixed) if lr is None else {**self.fixed, "lr": lr}
        return lambda params: cls(params, **kwargs)

    def describe(self, lr: float | None = None) -> str:
        """E.g. ``torch.optim.SGD(lr=0.1, momentum=0.9, nesterov=True)``."""
        prefix = "ravine.torch" if self.library == "ravine" else "torch.optim"
        args = ({} if lr is None else {"lr": lr}) | dict(self.fixed)
        return f"{prefix}.{self.name}({', '.join(f'{k}={v!r}' for k, v in args.items())})"


@dataclass(frozen=True)
class Setup:
    """A model on a dataset with a training budget."""

    name: str
    data: Dataset
    build_model: Callable[[], nn.Module]
    epochs: int
    batch_size: int = 32
    task: str = "classify"

    def run(self, factory: Factory, seed: int) -> History:
        return train(
            self.build_model,
            factory,
            self.data,
            epochs=self.epochs,
            batch_size=self.batch_size,
            seed=seed,
            task=self.task,
        )


@dataclass(frozen=True)
class Tuning:
    """The chosen lr and every trial of the search (lr, final validation loss)."""

    lr: float | None
    grid: tuple[float, ...]
    trials: tuple[tuple[float, float], ...]
    budget_epochs: int

    @property
    def at_edge(self) -> bool:
        return self.lr is not None and bool(self.grid) and self.lr in (self.grid[0], self.grid[-1])

    def to_dict(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "grid": list(self.grid),
            "objective": "validation loss after the last epoch (seed 0)",
            "budget_epochs": self.budget_epochs,
            "at_edge": self.at_edge,
            "trials": [{"lr": lr, "val_loss": clean(v)} for lr, v in self.trials],
        }


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    s = spread(list(values))
    return s["mean"], s["std"]


@dataclass(frozen=True)
class Summary:
    """Several seeds of one setting."""

    seeds: tuple[int, ...]
    histories: tuple[History, ...]

    @property
    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and sample std over seeds of the training loss, per epoch."""
        a = np.array([h.train_loss for h in self.histories], dtype=float)
        return a.mean(0), a.std(0, ddof=1) if len(a) > 1 else np.zeros(a.shape[1])

    @property
    def final_loss(self) -> tuple[float, float]:
        return mean_std([h.train_loss[-1] for h in self.histories])

    @property
    def test_acc(self) -> tuple[float, float]:
        return mean_std([h.test_acc[-1] for h in self.histories])

    @property
    def seconds_per_epoch(self) -> tuple[float, float]:
        return mean_std([float(np.mean(h.seconds)) for h in self.histories])

    @property
    def diverged(self) -> int:
        return sum(h.diverged for h in self.histories)

    def to_dict(self) -> dict[str, Any]:
        mean, std = self.curve
        return {
            "seeds": list(self.seeds),
            "train_loss_mean": clean(mean),
            "train_loss_std": clean(std),
            "final_train_loss": clean(list(self.final_loss)),
            "test_acc": clean(list(self.test_acc)),
            "seconds_per_epoch": list(self.seconds_per_epoch),
            "diverged": self.diverged,
            "histories": [h.to_dict() for h in self.histories],
        }


@dataclass(frozen=True)
class Result:
    candidate: Candidate
    tuning: Tuning
    summary: Summary

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.candidate.label,
            "optimizer": self.candidate.describe(self.tuning.lr),
            "tuning": self.tuning.to_dict(),
            "summary": self.summary.to_dict(),
        }


def _rank(val_loss: float) -> float:
    return val_loss if math.isfinite(val_loss) else math.inf


def tune(
    candidate: Candidate,
    setup: Setup,
    grid: Sequence[float] = GRID,
    *,
    on_run: Callable[[], None] | None = None,
) -> Tuning:
    """One seed-0 run per lr of ``grid``; the lowest final validation loss wins."""
    if not candidate.tuned:
        return Tuning(None, (), (), 0)
    trials = []
    for lr in grid:
        history = setup.run(candidate.factory(lr), seed=0)
        trials.append((float(lr), history.val_loss[-1]))
        if on_run is not None:
            on_run()
    best = min(trials, key=lambda t: _rank(t[1]))[0]
    return Tuning(best, tuple(map(float, grid)), tuple(trials), len(grid) * setup.epochs)


def repeat(
    candidate: Candidate,
    lr: float | None,
    setup: Setup,
    seeds: int,
    *,
    on_run: Callable[[], None] | None = None,
) -> Summary:
    """Runs with seeds 1 … ``seeds``."""
    histories = []
    for seed in range(1, seeds + 1):
        histories.append(setup.run(candidate.factory(lr), seed=seed))
        if on_run is not None:
            on_run()
    return Summary(tuple(range(1, seeds + 1)), tuple(histories))


def compare(
    candidates: Sequence[Candidate],
    setup: Setup,
    *,
    grid: Sequence[float] = GRID,
    seeds: int = 5,
    progress: bool = True,
) -> list[Result]:
    """:func:`tune` then :func:`repeat` for each candidate, with a progress bar."""
    total = sum(len(grid) if c.tuned else 0 for c in candidates) + seeds * len(candidates)
    results = []
    with Progress(setup.name, total, enabled=progress) as bar:
        for c in candidates:
            tuning = tune(c, setup, grid, on_run=bar.update)
            summary = repeat(c, tuning.lr, setup, seeds, on_run=bar.update)
            results.append(Result(c, tuning, summary))
    return results
