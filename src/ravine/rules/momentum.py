"""Momentum (heavy ball), the seed's exponential-average form.

    m ← β·m + (1 − β)·g
    direction = m                                  (θ ← θ − lr·m)

``ema=False`` drops the (1 − β) factor, ``m ← β·m + g``: the buffer of
``torch.optim.SGD(momentum=β, dampening=0)``, TF1's MomentumOptimizer and ``optax.trace``.
The two forms take the same steps when lr is scaled by (1 − β); ``ema=False`` reproduces
torch's arithmetic exactly.
"""

from __future__ import annotations

from typing import NamedTuple

from . import common
from ._xp import Array, namespace


class MomentumState(NamedTuple):
    m: Array


def init(theta: Array) -> MomentumState:
    return MomentumState(namespace(theta).zeros_like(theta))


def momentum(
    g: Array, state: MomentumState, *, t: int, beta: float, ema: bool
) -> tuple[Array, MomentumState]:
    """The direction is the momentum m."""
    m = common.ema(state.m, g, beta) if ema else state.m * beta + g
    return m, MomentumState(m)
