"""NAdam (Dozat 2016): Adam with Nesterov momentum, the seed's "Nadam = Adam + NAG".

    μ_t = β                                        (momentum_decay=None, the default)
    μ_t = β·(1 − ½·0.96^(t·ψ))                     (momentum_decay=ψ: Dozat's schedule)
    Π ← Π·μ_t                                      (Π starts at 1)
    m ← β·m + (1 − β)·g
    G ← γ·G + (1 − γ)·g⊙g
    G_hat = G / (1 − γᵗ)
    direction = [(1 − μ_t)/(1 − Π)·g + μ_{t+1}/(1 − Π·μ_{t+1})·m] / √(G_hat + ε)

The Nesterov look-ahead is folded into the step: the g term is Adam's next momentum
contribution taken now. With constant μ = β this is ``optax.nadam`` (ε placed as in
``eps_mode``); with ``momentum_decay=4e-3, eps_mode="outside"`` it is ``torch.optim.NAdam``.
"""

from __future__ import annotations

from typing import NamedTuple

from ._xp import Array, namespace
from .adam import adam_root
from .common import ema


class NAdamState(NamedTuple):
    m: Array
    G: Array
    mu_product: float
    """Π, the product of every μ so far."""


def init(theta: Array) -> NAdamState:
    xp = namespace(theta)
    return NAdamState(xp.zeros_like(theta), xp.zeros_like(theta), 1.0)


def momentum_schedule(beta: float, momentum_decay: float | None, t: int) -> float:
    """μ_t: constant β, or Dozat's warming schedule β·(1 − ½·0.96^(t·ψ))."""
    if momentum_decay is None:
        return beta
    return beta * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))


def nadam(
    g: Array,
    state: NAdamState,
    *,
    t: int,
    beta: float,
    gamma: float,
    eps: float,
    eps_mode: str,
    momentum_decay: float | None,
) -> tuple[Array, NAdamState]:
    """Adam whose momentum term looks one step ahead."""
    mu = momentum_schedule(beta, momentum_decay, t)
    mu_next = momentum_schedule(beta, momentum_decay, t + 1)
    mu_product = state.mu_product * mu
    m = ema(state.m, g, beta)
    G = ema(state.G, g * g, gamma)
    numerator = g * ((1 - mu) / (1 - mu_product)) + m * (mu_next / (1 - mu_product * mu_next))
    direction = numerator / adam_root(G, t=t, gamma=gamma, eps=eps, eps_mode=eps_mode)
    return direction, NAdamState(m, G, mu_product)
