"""RMSProp (Tieleman & Hinton 2012), the seed's form.

    G ← γ·G + (1 − γ)·g⊙g
    direction = g / √(G + ε)                       (θ ← θ − lr·direction)

Defaults γ = 0.9, ε = 1e-8 inside the root: ``optax.rmsprop`` and Keras' RMSprop (their
ε differs). ``torch.optim.RMSprop(alpha=γ, eps=ε)`` is ``eps_mode="outside"`` (torch's γ
default is 0.99).
"""

from __future__ import annotations

from typing import NamedTuple

from ._xp import Array, namespace
from .common import ema, root


class RMSPropState(NamedTuple):
    G: Array


def init(theta: Array) -> RMSPropState:
    return RMSPropState(namespace(theta).zeros_like(theta))


def rmsprop(
    g: Array, state: RMSPropState, *, t: int, gamma: float, eps: float, eps_mode: str
) -> tuple[Array, RMSPropState]:
    """Adagrad with a decaying average instead of a sum."""
    G = ema(state.G, g * g, gamma)
    return g / root(G, eps, eps_mode), RMSPropState(G)
