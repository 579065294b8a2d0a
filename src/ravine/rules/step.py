"""The one place that moves parameters: sign, weight decay, look-ahead and learning rate.

For stored parameters p (θ itself, or the look-ahead point φ for look-ahead rules), their
gradient g and the rule's state, one step is::

    g ← −g                            if maximize
    g ← g + λ·p                       if weight_decay λ and not decoupled_weight_decay (L2)
    θ ← p + offset(state)             look-ahead rules: recover the seed's θ (else θ = p)
    d, state ← rule(g, state, t)
    θ ← θ·(1 − lr·λ)                  if decoupled_weight_decay (AdamW style)
    θ ← θ − lr·d
    p ← θ − offset(state)             look-ahead rules: park at the next look-ahead point

Every implementation (NumPy, torch per-tensor, torch multi-tensor) calls these functions;
none re-derives them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ._xp import Array
from .registry import Hyperparameters, Spec


def effective_gradient(p: Array, g: Array, hp: Hyperparameters) -> Array:
    """The gradient the rule sees: signed for ``maximize``, plus the L2 term λ·p."""
    if hp["maximize"]:
        g = -g
    if hp["weight_decay"] != 0 and not hp["decoupled_weight_decay"]:
        g = g + p * hp["weight_decay"]
    return g


def rule_kwargs(spec: Spec, hp: Hyperparameters, scalars: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``spec.rule``: its hyperparameters plus group scalars."""
    return {**{name: hp[name] for name in spec.rule_args}, **scalars}


def update(
    spec: Spec,
    p: Array,
    g: Array,
    state: Any,
    *,
    t: int,
    hp: Hyperparameters,
    scalars: Mapping[str, Any],
) -> tuple[Array, Any]:
    """One step from stored parameters p and effective gradient g: new (p, state)."""
    theta = p if spec.offset is None else p + spec.offset(state)
    direction, state = spec.rule(g, state, t=t, **rule_kwargs(spec, hp, scalars))
    lr = hp["lr"]
    if hp["decoupled_weight_decay"] and hp["weight_decay"] != 0:
        theta = theta * (1 - lr * hp["weight_decay"])
    theta = theta - direction * lr
    p = theta if spec.offset is None else theta - spec.offset(state)
    return p, state


def group_update(
    spec: Spec,
    params: Sequence[Array],
    grads: Sequence[Array],
    states: Sequence[Any],
    *,
    t: int,
    hp: Mapping[str, Any],
) -> list[tuple[Array, Any]]:
    """One step of a whole group at one step count ``t``: the effective gradients, the
    group's scalars (normalized GD's norm spans every tensor), then :func:`update` per
    tensor; new (p, state) pairs."""
    gs = [effective_gradient(p, g, hp) for p, g in zip(params, grads, strict=True)]
    scalars = spec.group_scalars(gs) if spec.group_scalars and gs else {}
    return [
        update(spec, p, g, s, t=t, hp=hp, scalars=scalars)
        for p, g, s in zip(params, gs, states, strict=True)
    ]


def theta(spec: Spec, p: Array, state: Any) -> Array:
    """The seed's θ from stored parameters p (they differ only for look-ahead rules)."""
    return p if spec.offset is None or state is None else p + spec.offset(state)
