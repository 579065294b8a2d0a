"""Train a model for N epochs with any optimizer factory; reproducible and resumable.

An optimizer *factory* takes the model's parameters and returns a ``torch.optim``
optimizer: a ravine optimizer (``lambda p: ravine.torch.Adam(p, lr=1e-3)``) or its
torch.optim baseline. Each epoch records the mean training loss of its mini-batches, the
validation loss and accuracy, the test accuracy and the seconds spent training (the
evaluations are not timed).

Reproducibility: the weights come from ``torch.manual_seed(seed)``, the batch order from
(``seed``, epoch) (:func:`~ravine.lab.train.data.batches`), dropout from torch's global
generator whose state is checkpointed; runs use one intra-op thread, so the same seed
gives the same numbers on the CPU. With ``checkpoint=PATH`` the model, optimizer, history
and generator state are saved after every epoch (atomically, :func:`ravine.torch.checkpoint.save`)
and a later call with the same arguments resumes from the file.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...torch import checkpoint as ckpt
from ..export import clean
from .data import Dataset, Split, batches

Factory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
"""Parameters → optimizer."""

TASKS = ("classify", "reconstruct")


@dataclass
class History:
    """Per-epoch records of one run; ``diverged`` once a training loss is not finite (the
    remaining epochs are then recorded as NaN, without training)."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    diverged: bool = False

    @property
    def epochs(self) -> int:
        return len(self.train_loss)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN and infinities as ``None``)."""
        return clean(asdict(self))


@contextmanager
def threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` intra-op threads, then restore the previous number."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: str) -> torch.Tensor:
    out = model(x)
    if task == "reconstruct":
        return nn.functional.mse_loss(out, x.reshape(out.shape))
    return nn.functional.cross_entropy(out, y)


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, task: str) -> tuple[float, float]:
    """(mean loss, accuracy) on a whole split; accuracy is NaN for reconstruction and 0
    when the outputs are not finite (a diverged model)."""
    model.eval()
    out = model(split.x)
    if task == "reconstruct":
        return float(nn.functional.mse_loss(out, split.x.reshape(out.shape))), math.nan
    loss = float(nn.functional.cross_entropy(out, split.y))
    if not torch.isfinite(out).all():
        return math.inf, 0.0
    return loss, float((out.argmax(1) == split.y).float().mean())


def train(
    build_model: Callable[[], nn.Module],
    make_optimizer: Factory,
    data: Dataset,
    *,
    epochs: int,
    batch_size: int = 32,
    seed: int = 0,
    task: str = "classify",
    checkpoint: str | os.PathLike[str] | None = None,
    stop_after: int | None = None,
) -> History:
    """Train ``build_model()`` on ``data.train`` for ``epochs`` epochs; return the records.

    ``checkpoint``: save after each epoch and resume from the file if it exists.
    ``stop_after``: return after this many epochs of *this call* (simulates an
    interruption; the next call with the same checkpoint continues).
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    with threads(1):
        torch.manual_seed(seed)
        model = build_model()
        optimizer = make_optimizer(model.parameters())
        history = History()
        path = None if checkpoint is None else Path(checkpoint)
        if path is not None and path.exists():
            saved = ckpt.load(path)
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            history = History(**saved["history"])
            torch.set_rng_state(saved["rng"])
        done = 0
        while history.epochs < epochs and (stop_after is None or done < stop_after):
            _epoch(model, optimizer, data, history, batch_size, seed, task)
            done += 1
            if path is not None:
                ckpt.save(
                    path,
                    {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "history": asdict(history),
                        "rng": torch.get_rng_state(),
                    },
                )
        return history


def _epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: Dataset,
    history: History,
    batch_size: int,
    seed: int,
    task: str,
) -> None:
    if history.diverged:
        for records in (history.train_loss, history.val_loss, history.val_acc, history.test_acc):
            records.append(math.nan)
        history.seconds.append(0.0)
        return
    model.train()
    total, count = 0.0, 0
    start = time.perf_counter()
    for x, y in batches(data.train, batch_size, seed=seed, epoch=history.epochs):
        optimizer.zero_grad()
        loss = _loss(model, x, y, task)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(y)
        count += len(y)
    seconds = time.perf_counter() - start
    mean = total / count
    val_loss, val_acc = evaluate(model, data.val, task)
    test_acc = evaluate(model, data.test, task)[1]
    if not (math.isfinite(mean) and math.isfinite(val_loss)):
        history.diverged = True
        mean, val_loss = math.nan, math.inf
    history.train_loss.append(mean)
    history.val_loss.append(val_loss)
    history.val_acc.append(val_acc)
    history.test_acc.append(test_acc)
    history.seconds.append(seconds)
