"""scikit-learn's digits as tensors: dense, one-hot ("sparse") and image views.

The 1797 8×8 images of ``sklearn.datasets.load_digits`` ship inside scikit-learn, so
nothing is downloaded at run time. Each pixel is an intensity 0…16.

* ``"dense"``: the 64 intensities scaled to [0, 1];
* ``"sparse"``: each pixel's intensity one-hot encoded, 64 × 17 = 1088 binary features of
  which exactly 64 are on per image and most are rarely on (the seed's "sparse data");
* ``"image"``: the dense values shaped (1, 8, 8) for a CNN.

The split into train/validation/test is a seeded permutation (``split_seed``), separate
from the training seed, so every training seed sees the same three sets.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

LEVELS = 17
"""Intensity levels of a digits pixel (0…16)."""

KINDS = ("dense", "sparse", "image")


@dataclass(frozen=True)
class Split:
    """Inputs ``x`` (float32) and integer class labels ``y`` of one part of the data."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class Dataset:
    """Train, validation and test splits of one view of the digits."""

    name: str
    train: Split
    val: Split
    test: Split
    n_classes: int

    @property
    def n_features(self) -> int:
        """Features per example (the flattened input size)."""
        return int(self.train.x[0].numel())


def one_hot_intensity(pixels: torch.Tensor) -> torch.Tensor:
    """(n, 64) integer intensities → (n, 64·17) float one-hot, pixel-major.

    >>> one_hot_intensity(torch.tensor([[0, 16]])).nonzero()[:, 1].tolist()
    [0, 33]
    """
    n, p = pixels.shape
    out = torch.zeros(n, p * LEVELS)
    index = torch.arange(p) * LEVELS + pixels.long()
    out.scatter_(1, index, 1.0)
    return out


def digits(
    kind: str = "dense",
    *,
    split_seed: int = 0,
    fractions: tuple[float, float] = (0.6, 0.2),
) -> Dataset:
    """The digits in view ``kind``, split train/val/test by ``fractions`` (rest is test)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    from sklearn.datasets import load_digits  # ships its data; imported only when needed

    bunch = load_digits()
    pixels = torch.as_tensor(bunch.data, dtype=torch.float32)
    labels = torch.as_tensor(bunch.target, dtype=torch.long)
    if kind == "sparse":
        x = one_hot_intensity(pixels)
    else:
        x = pixels / (LEVELS - 1)
        if kind == "image":
            x = x.reshape(-1, 1, 8, 8)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(split_seed))
    n_train = round(fractions[0] * len(order))
    n_val = round(fractions[1] * len(order))
    parts = order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]
    train, val, test = (Split(x[i].contiguous(), labels[i].contiguous()) for i in parts)
    return Dataset(f"digits-{kind}", train, val, test, n_classes=10)


def batches(
    split: Split, batch_size: int, *, seed: int, epoch: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Shuffled mini-batches of one epoch; the order depends only on (``seed``, ``epoch``),
    so a resumed run sees the same batches as an uninterrupted one. The last batch may be
    smaller.

    >>> s = Split(torch.arange(5.0)[:, None], torch.arange(5))
    >>> [len(y) for _, y in batches(s, 2, seed=0, epoch=0)]
    [2, 2, 1]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    generator = torch.Generator().manual_seed(1_000_003 * seed + epoch)
    order = torch.randperm(len(split), generator=generator)
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        yield split.x[index], split.y[index]


def density(x: torch.Tensor) -> float:
    """Fraction of non-zero entries."""
    return float((x != 0).float().mean())
