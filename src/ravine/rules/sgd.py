"""Mini-batch SGD, the seed's baseline.

    direction = g                                  (θ ← θ − lr·g)

Matches ``torch.optim.SGD(lr)``, ``optax.sgd(lr)`` and ``keras.optimizers.SGD(lr)``.
"""

from __future__ import annotations

from typing import NamedTuple

from ._xp import Array


class SGDState(NamedTuple):
    """SGD keeps no state."""


def init(theta: Array) -> SGDState:
    return SGDState()


def sgd(g: Array, state: SGDState, *, t: int) -> tuple[Array, SGDState]:
    """The direction is the gradient itself."""
    return g, state
