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
none re-derives them. :func:`delta` gives the same step as the change p_new − p, for
optax (:mod:`ravine.jax`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._xp import Array
from .registry import Hyperparameters, Spec


def effective_gradient(p: Array, g: Array, hp: Hyperparameters) -> Array:
    """The gradient the rule sees: signed for ``maximize``, plus the L2 term λ·p."""
    if hp["maximize"]:
        g = -g
    if _decays(hp) and not hp["decoupled_weight_decay"]:
        g = g + p * hp["weight_decay"]
    return g


def _decays(hp: Hyperparameters) -> bool:
    """Whether weight decay applies: λ ≠ 0. A λ known only at run time (an array traced by
    ``jax.jit``, e.g. injected by ``optax.inject_hyperparams``) counts as non-zero: the term
    is then computed, and is exact when λ = 0 (g + 0·p = g, θ·(1 − lr·0) = θ for finite p)."""
    nonzero = hp["weight_decay"] != 0
    try:
        return bool(nonzero)
    except TypeError:  # a traced comparison (jax's TracerBoolConversionError): not known yet
        return True


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
    if hp["decoupled_weight_decay"] and _decays(hp):
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
    each: Callable[..., tuple[Array, Any]] | None = None,
) -> list[tuple[Array, Any]]:
    """One step of a whole group at one step count ``t``: the effective gradients, the
    group's scalars (normalized GD's norm spans every tensor), then ``each`` per tensor
    (:func:`update` by default: new (p, state) pairs; :func:`group_delta` passes
    :func:`delta`)."""
    each = update if each is None else each
    gs = [effective_gradient(p, g, hp) for p, g in zip(params, grads, strict=True)]
    scalars = spec.group_scalars(gs) if spec.group_scalars and gs else {}
    return [
        each(spec, p, g, s, t=t, hp=hp, scalars=scalars)
        for p, g, s in zip(params, gs, states, strict=True)
    ]


def theta(spec: Spec, p: Array, state: Any) -> Array:
    """The seed's θ from stored parameters p (they differ only for look-ahead rules)."""
    return p if spec.offset is None or state is None else p + spec.offset(state)


# The change of the parameters, computed directly --------------------------------------
#
# optax (ravine.jax) wants the update Δ = p_new − p, not p_new. Taking it as
# update(...) − p costs two flops per element (θ − lr·d, then − p) in the one fused loop XLA
# makes of a jitted step, and rounds twice. delta returns Δ itself (−lr·d for a plain rule,
# exactly what optax computes). It is a second function rather than a change to update:
# the torch engines and the compiled C/Triton/JS kernels traced from update must keep
# update's rounding, θ·(1 − lr·λ) − d·lr, which they match bit for bit.


def delta(
    spec: Spec,
    p: Array,
    g: Array,
    state: Any,
    *,
    t: int,
    hp: Hyperparameters,
    scalars: Mapping[str, Any],
) -> tuple[Array, Any]:
    """One step as the change of the stored parameters: (delta, new state), with
    ``p_new = p + delta`` the p that :func:`update` gives, up to rounding::

        delta = −lr·direction                              (plain rules)
        delta = −lr·weight_decay·theta − lr·direction      (decoupled_weight_decay)
        delta = offset(state) − lr·direction (− lr·weight_decay·theta) − offset(new_state)
                                                           (look-ahead rules)

    where ``theta = p + offset(state)`` (``p`` without a look-ahead), ``direction`` is
    ``spec.rule``'s for the effective gradient g, and ``state`` is the state before the
    step. p is read only by decoupled weight decay."""
    direction, new_state = spec.rule(g, state, t=t, **rule_kwargs(spec, hp, scalars))
    lr = hp["lr"]
    change = direction * -lr  # the sign on the scalar: no negation per element
    if hp["decoupled_weight_decay"] and _decays(hp):
        theta = p if spec.offset is None else p + spec.offset(state)
        change = change - theta * (lr * hp["weight_decay"])
    if spec.offset is not None:
        change = spec.offset(state) + change - spec.offset(new_state)
    return change, new_state


def group_delta(
    spec: Spec,
    params: Sequence[Array],
    grads: Sequence[Array],
    states: Sequence[Any],
    *,
    t: int,
    hp: Mapping[str, Any],
) -> list[tuple[Array, Any]]:
    """:func:`group_update` as changes: (delta, new state) pairs, ``p_new = p + delta``."""
    return group_update(spec, params, grads, states, t=t, hp=hp, each=delta)
