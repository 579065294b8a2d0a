"""AdaDelta (Zeiler 2012), the seed's form: no learning rate.

    G ← γ·G + (1 − γ)·g⊙g
    Δ = √(s + ε) / √(G + ε) ⊙ g                     (the seed's Δθ is −Δ)
    s ← γ·s + (1 − γ)·Δ⊙Δ
    direction = Δ                                  (θ ← θ − lr·Δ)

The seed has no learning rate, which is ``lr = 1`` (the default); lr exists only so that
schedules and ``torch.optim.Adadelta(lr, rho=γ, eps=ε)`` work, which this matches exactly.
Defaults γ = 0.95, ε = 1e-6 (Zeiler's); torch uses ρ = 0.9, Keras lr = 0.001 (a known trap).
"""

from __future__ import annotations

from typing import NamedTuple

from ._xp import Array, namespace
from .common import ema


class AdaDeltaState(NamedTuple):
    G: Array
    s: Array


def init(theta: Array) -> AdaDeltaState:
    xp = namespace(theta)
    return AdaDeltaState(xp.zeros_like(theta), xp.zeros_like(theta))


def adadelta(
    g: Array, state: AdaDeltaState, *, t: int, gamma: float, eps: float
) -> tuple[Array, AdaDeltaState]:
    """The step's units come from the running RMS of past steps, not from a learning rate."""
    xp = namespace(g)
    G = ema(state.G, g * g, gamma)
    delta = xp.sqrt(state.s + eps) / xp.sqrt(G + eps) * g
    s = ema(state.s, delta * delta, gamma)
    return delta, AdaDeltaState(G, s)
