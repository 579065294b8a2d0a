"""The models of issue 4, sized for the 8×8 digits.

Every builder returns a fresh ``torch.nn.Module``; the caller seeds torch before calling
it (:func:`ravine.lab.train.loop.train` does), so the same seed gives the same weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from torch import nn


def logreg(n_in: int = 64, n_classes: int = 10) -> nn.Module:
    """Softmax logistic regression: one linear layer (softmax lives in the loss)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(n_in, n_classes))


def mlp(
    n_in: int = 64,
    hidden: Sequence[int] = (256, 256),
    n_classes: int = 10,
    *,
    dropout: float = 0.0,
    activation: str = "relu",
) -> nn.Module:
    """64-256-256-10 by default; ``dropout`` after each hidden layer when > 0;
    ``activation`` ``"relu"`` or ``"tanh"`` (Zeiler's MNIST network used tanh)."""
    act = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]
    layers: list[nn.Module] = [nn.Flatten()]
    width = n_in
    for h in hidden:
        layers += [nn.Linear(width, h), act()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)


def cnn(n_classes: int = 10, channels: tuple[int, int] = (16, 32)) -> nn.Module:
    """Two 3×3 convolutions (ReLU), a 2×2 max-pool, then a linear classifier; takes (N, 1, 8, 8)."""
    c1, c2 = channels
    return nn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(c1, c2, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(c2 * 4 * 4, n_classes),
    )


def autoencoder(n_in: int = 64, sizes: Sequence[int] = (128, 64, 32, 8)) -> nn.Module:
    """A deep tanh autoencoder n_in-128-64-32-8-32-64-128-n_in with a sigmoid output (the
    shape of Hinton & Salakhutdinov's, used by Sutskever et al. 2013 for NAG vs Momentum)."""
    widths = [n_in, *sizes, *reversed(sizes[:-1]), n_in]
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(pairwise(widths)):
        layers.append(nn.Linear(a, b))
        last = i == len(widths) - 2
        code = i == len(sizes) - 1  # the bottleneck stays linear
        layers.append(nn.Sigmoid() if last else nn.Identity() if code else nn.Tanh())
    return nn.Sequential(*layers)
