"""JAX front-end: every optimizer as an ``optax.GradientTransformation``.

The rules of :mod:`ravine.rules` run unchanged on ``jax.numpy`` (through the array API
namespace, also under ``jax.jit``); weight decay, ``maximize`` and the look-ahead come from
:mod:`ravine.rules.step`, as in every other front-end. ``update`` returns the *updates*
(new params − params), as optax expects, so the optimizers chain with optax's transforms
and are applied with ``optax.apply_updates``::

    >>> import jax.numpy as jnp
    >>> import optax
    >>> import ravine.jax
    >>> opt = ravine.jax.adam(lr=0.1)
    >>> theta = jnp.array([1.0, -2.0])
    >>> state = opt.init(theta)
    >>> updates, state = opt.update(2 * theta, state, theta)   # gradient of ‖θ‖²
    >>> optax.apply_updates(theta, updates).round(4)   # float32: 1 − βᵗ loses ~1e-7
    Array([ 0.9, -1.9], dtype=float32)

``update`` needs ``params`` (weight decay and the look-ahead use them). Parameters in a
dtype narrower than float32 (bfloat16, float16) are computed, and their state kept, in
float32. Normalized GD's norm runs over every leaf of the parameter pytree.

Look-ahead rules (NAG) keep the parameters at the look-ahead point, exactly as in
:mod:`ravine.torch` and :mod:`ravine.numpy`; :func:`theta` returns the seed's θ.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from . import _doc
from .rules import Spec, registry
from .rules import step as rule_step


class RavineState(NamedTuple):
    """Optimizer state (a pytree): steps taken, and the rule's state per parameter leaf
    (in the parameters' tree structure, each leaf replaced by the rule's state tuple)."""

    count: Any
    """Steps taken, an int32 scalar."""
    rule: Any


def _flatten(tree: Any) -> tuple[list[Any], Any]:
    """The leaves of ``tree`` and its structure (a ``PyTreeDef``, typed loosely)."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return leaves, treedef


def _compute_dtype(dtype: Any) -> Any:
    """float32 for dtypes narrower than float32, else the dtype itself."""
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"params must hold floating-point arrays, got dtype {dtype}")
    return dtype if jnp.finfo(dtype).bits >= 32 else jnp.float32


def _wide(x: Any) -> Any:
    x = jnp.asarray(x)
    return x.astype(_compute_dtype(x.dtype))


def _scalars_as_arrays(spec: Spec, state: Any, like: Any) -> Any:
    """The rule's scalar state fields (NAG's shift, NAdam's μ-product) as arrays of the
    computation's dtype, so the state's leaves keep one type from step to step."""
    if not spec.scalar_state:
        return state
    return state._replace(
        **{f: jnp.asarray(getattr(state, f), dtype=like.dtype) for f in spec.scalar_state}
    )


def _transformation(spec: Spec, hp: dict[str, Any]) -> optax.GradientTransformation:
    init_kwargs = {name: hp[name] for name in spec.init_args}

    def init_fn(params: Any) -> RavineState:
        leaves, treedef = _flatten(params)
        states = []
        for p in leaves:
            wide = _wide(p)
            states.append(_scalars_as_arrays(spec, spec.init(wide, **init_kwargs), wide))
        return RavineState(jnp.zeros([], jnp.int32), treedef.unflatten(states))

    def update_fn(updates: Any, state: RavineState, params: Any = None) -> tuple[Any, Any]:
        if params is None:
            raise ValueError(f"{spec.name}: update needs params (update(grads, state, params))")
        leaves, treedef = _flatten(params)
        grad_leaves = treedef.flatten_up_to(updates)
        rule_states = treedef.flatten_up_to(state.rule)
        ps = [_wide(p) for p in leaves]
        gs = [jnp.asarray(g).astype(p.dtype) for g, p in zip(grad_leaves, ps, strict=True)]
        if any(p.shape != g.shape for p, g in zip(ps, gs, strict=True)):
            raise ValueError(
                f"{spec.name}: grads must match params in structure and shapes; got "
                f"{[g.shape for g in gs]} for params {[p.shape for p in ps]}"
            )
        t = state.count + 1
        new = rule_step.group_update(spec, ps, gs, rule_states, t=t, hp=hp)
        deltas, new_states = [], []
        for p0, p, (new_p, new_s) in zip(leaves, ps, new, strict=True):
            deltas.append((new_p - p).astype(jnp.asarray(p0).dtype))
            new_states.append(_scalars_as_arrays(spec, new_s, p))
        return treedef.unflatten(deltas), RavineState(t, treedef.unflatten(new_states))

    return optax.GradientTransformation(init_fn, update_fn)


def theta(params: Any, state: Any) -> Any:
    """The seed's θ: equal to ``params`` except for look-ahead rules (NAG), whose stored
    parameters sit at the look-ahead point. ``state`` is a ravine state, or any optax state
    holding one (e.g. a chain's)."""
    found = [
        s
        for s in jax.tree_util.tree_leaves(state, is_leaf=lambda x: isinstance(x, RavineState))
        if isinstance(s, RavineState)
    ]
    if len(found) != 1:
        raise ValueError(f"theta: expected one ravine state in state, found {len(found)}")
    leaves, treedef = _flatten(params)
    out = []
    for p, s in zip(leaves, treedef.flatten_up_to(found[0].rule), strict=True):
        spec = _SPEC_BY_STATE[type(s)]
        out.append(rule_step.theta(spec, _wide(p), s).astype(jnp.asarray(p).dtype))
    return treedef.unflatten(out)


def _factory(spec: Spec, name: str) -> Callable[..., optax.GradientTransformation]:
    def make(lr: float | None = None, **hparams: Any) -> optax.GradientTransformation:
        given = {**hparams, **({} if lr is None else {"lr": lr})}
        return _transformation(spec, spec.validate({**spec.defaults, **given}))

    make.__name__ = make.__qualname__ = name
    make.__module__ = __name__
    make.__doc__ = _doc.class_doc(
        spec,
        "optax transformation: ``state = opt.init(params)``, then "
        "``updates, state = opt.update(grads, state, params)``.",
    )
    make.__signature__ = _doc.signature(spec, (), {})  # type: ignore[attr-defined]
    return make


_SPEC_BY_STATE: dict[type, Spec] = {s.state_type: s for s in registry.SPECS}

sgd = _factory(registry.SGD, "sgd")
momentum = _factory(registry.MOMENTUM, "momentum")
nag = _factory(registry.NAG, "nag")
normalized_gd = _factory(registry.NORMALIZED_GD, "normalized_gd")
adagrad = _factory(registry.ADAGRAD, "adagrad")
rmsprop = _factory(registry.RMSPROP, "rmsprop")
adadelta = _factory(registry.ADADELTA, "adadelta")
adam = _factory(registry.ADAM, "adam")
nadam = _factory(registry.NADAM, "nadam")

OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "SGD": sgd,
    "Momentum": momentum,
    "NAG": nag,
    "NormalizedGD": normalized_gd,
    "Adagrad": adagrad,
    "RMSProp": rmsprop,
    "AdaDelta": adadelta,
    "Adam": adam,
    "NAdam": nadam,
}
"""Every JAX optimizer factory by registry name."""

__all__ = [
    "OPTIMIZERS",
    "RavineState",
    "adadelta",
    "adagrad",
    "adam",
    "momentum",
    "nadam",
    "nag",
    "normalized_gd",
    "rmsprop",
    "sgd",
    "theta",
]
