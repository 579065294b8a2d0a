"""Normalized gradient descent: a fixed stride along the gradient.

    direction = g / max(‖g‖ + ε, tiny)             (θ ← θ − lr·g/‖g‖)

‖g‖ is the Euclidean norm over every tensor of the param group together, because the
seed's θ is one vector. Every step moves θ by exactly lr, so the iterates do not converge
but hover in a neighbourhood of the minimum of size about lr, as the seed warns.

A zero gradient gives a zero direction (no step, never NaN): the norm is floored at
``tiny`` (the smallest normal float32), and 0 / tiny = 0. ``eps`` defaults to 0 (the seed);
``eps=1e-6`` reproduces ``optax.normalize_by_update_norm``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from ._xp import Array, namespace

TINY = 1.1754943508222875e-38  # smallest normal float32


class NormalizedState(NamedTuple):
    """Normalized GD keeps no state."""


def init(theta: Array) -> NormalizedState:
    return NormalizedState()


def group_scalars(
    grads: Sequence[Array], reduce: Callable[[Array], Array] = lambda total: total
) -> dict[str, Array]:
    """The norm of the whole group's gradient, computed once before the per-tensor rule.

    ``reduce`` adds up the sums of squares held elsewhere (other processes' parameters,
    under ZeroRedundancyOptimizer), so the norm spans the whole model.
    """
    xp = namespace(grads[0])
    total = reduce(sum((xp.sum_squares(g) for g in grads[1:]), xp.sum_squares(grads[0])))
    return {"grad_norm": namespace(total).sqrt(total)}


def normalized(
    g: Array, state: NormalizedState, *, t: int, grad_norm: Array, eps: float
) -> tuple[Array, NormalizedState]:
    """The unit direction of the group gradient."""
    return g / namespace(grad_norm).floor(grad_norm + eps, TINY), state
