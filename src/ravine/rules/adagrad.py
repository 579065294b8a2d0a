"""Adagrad (Duchi, Hazan & Singer 2011), the seed's form.

    G ← G + g⊙g
    direction = g / √(G + ε) / (1 + (t − 1)·lr_decay)       (θ ← θ − lr·direction)

Defaults: ε = 1e-8 inside the root, G starts at ``initial_accumulator_value`` = 0,
``lr_decay`` = 0. The first step is then lr·g/√(g² + ε) ≈ lr·sign(g).

``torch.optim.Adagrad`` is ``eps_mode="outside", eps=1e-10`` (and its ``lr_decay``,
``initial_accumulator_value``); optax and Keras use ε inside the root and start G at 0.1.
Rows that get no gradient do not change, so sparse gradients are exact.
"""

from __future__ import annotations

from typing import NamedTuple

from ._xp import Array, namespace
from .common import root


class AdagradState(NamedTuple):
    G: Array


def init(theta: Array, *, initial_accumulator_value: float) -> AdagradState:
    return AdagradState(namespace(theta).full_like(theta, initial_accumulator_value))


def adagrad(
    g: Array, state: AdagradState, *, t: int, eps: float, eps_mode: str, lr_decay: float
) -> tuple[Array, AdagradState]:
    """Each coordinate's step shrinks with its accumulated squared gradient."""
    G = state.G + g * g
    return g / (root(G, eps, eps_mode) * (1 + (t - 1) * lr_decay)), AdagradState(G)
