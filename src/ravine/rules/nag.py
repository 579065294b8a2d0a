"""Nesterov accelerated gradient, exactly as the seed defines it.

    m ← β·m + (1 − β)·∇L(θ − c·lr·m)              (gradient at the look-ahead point, old m)
    direction = m                                  (θ ← θ − lr·m)

The seed looks ahead by the whole previous step, c = 1 (``lookahead="step"``).
``lookahead="momentum"`` uses c = β, Sutskever et al. (2013): the look-ahead is the momentum
part of the coming step; with ``ema=False`` this is ``torch.optim.SGD(nesterov=True)``.

The parameters hold the look-ahead point φ = θ − c·lr·m between steps, so the gradient of
an ordinary ``loss.backward()`` is already taken where the seed takes it, and no second
evaluation or closure is needed. :func:`offset` is θ − φ; ``theta = phi + offset(state)``.
The look-ahead uses the lr of the step that placed it, stored as ``shift`` = c·lr, so θ is
well defined between steps whatever a scheduler writes. torch's reparametrized form instead
re-places the look-ahead with the *new* lr: at the first step after an lr change from
lr_old to lr the two differ by c·(lr_old − lr)·m_old, and are identical while lr is constant.
"""

from __future__ import annotations

from typing import NamedTuple

from ._xp import Array, namespace
from .momentum import MomentumState, momentum

LOOKAHEADS: tuple[str, ...] = ("step", "momentum")


class NAGState(NamedTuple):
    m: Array
    shift: float
    """c·lr of the last step: the parameters hold φ = θ − shift·m."""


def init(theta: Array) -> NAGState:
    return NAGState(namespace(theta).zeros_like(theta), 0.0)


def nag(
    g: Array, state: NAGState, *, t: int, lr: float, beta: float, ema: bool, lookahead: str
) -> tuple[Array, NAGState]:
    """Momentum's direction, with g taken at the look-ahead point (the caller's job)."""
    m, _ = momentum(g, MomentumState(state.m), t=t, beta=beta, ema=ema)
    return m, NAGState(m, shift(lr, beta, lookahead))


def shift(lr: float, beta: float, lookahead: str) -> float:
    """c·lr: how far along m the parameters are placed ahead (c = 1, or β for
    ``lookahead="momentum"``)."""
    c = 1.0 if lookahead == "step" else beta
    return c * lr


def offset(state: NAGState) -> Array:
    """θ − φ: how far the stored parameters sit behind the seed's θ."""
    return state.m * state.shift
