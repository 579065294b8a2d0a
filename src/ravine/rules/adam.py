"""Adam (Kingma & Ba 2014), the seed's form: ε inside the root of the debiased G.

    m ← β·m + (1 − β)·g
    G ← γ·G + (1 − γ)·g⊙g
    m_hat = m / (1 − βᵗ),   G_hat = G / (1 − γᵗ)
    direction = m_hat / √(G_hat + ε)               (θ ← θ − lr·direction)

Defaults β = 0.9, γ = 0.999, ε = 1e-8. This equals ``optax.adam(eps=0, eps_root=ε)``.
``bias_correction=False`` uses m and G as they are (Kingma & Ba's ablation, Sec. 6.4).
``eps_mode="outside"`` gives m_hat / (√G_hat + ε): ``torch.optim.Adam`` / ``AdamW`` and
``optax.adam``. ``eps_mode="hat"`` gives Keras/TF's ε-hat form,
lr·√(1 − γᵗ)/(1 − βᵗ) · m / (√G + ε), i.e. m_hat / (√G_hat + ε/√(1 − γᵗ)).
"""

from __future__ import annotations

from typing import NamedTuple

from ._xp import Array, namespace
from .common import debias, ema, root

ADAM_EPS_MODES: tuple[str, ...] = ("inside", "outside", "hat")


class AdamState(NamedTuple):
    m: Array
    G: Array


def init(theta: Array) -> AdamState:
    xp = namespace(theta)
    return AdamState(xp.zeros_like(theta), xp.zeros_like(theta))


def adam_root(
    G: Array, *, t: int, gamma: float, eps: float, eps_mode: str, bias_correction: bool = True
) -> Array:
    """√(G_hat + ε) in the seed's form; the torch and Keras placements of ε otherwise."""
    if not bias_correction:
        return root(G, eps, "outside" if eps_mode == "hat" else eps_mode)
    G_hat = debias(G, gamma, t)
    if eps_mode == "hat":
        return root(G_hat, eps / (1 - gamma**t) ** 0.5, "outside")
    return root(G_hat, eps, eps_mode)


def adam(
    g: Array,
    state: AdamState,
    *,
    t: int,
    beta: float,
    gamma: float,
    eps: float,
    eps_mode: str,
    bias_correction: bool,
) -> tuple[Array, AdamState]:
    """Momentum's direction divided by RMSProp's scale, both bias-corrected."""
    m = ema(state.m, g, beta)
    G = ema(state.G, g * g, gamma)
    m_hat = debias(m, beta, t) if bias_correction else m
    scale = adam_root(
        G, t=t, gamma=gamma, eps=eps, eps_mode=eps_mode, bias_correction=bias_correction
    )
    return m_hat / scale, AdamState(m, G)
