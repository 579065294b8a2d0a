"""JAX front-end: every optimizer as an ``optax.GradientTransformation``.

The rules of :mod:`ravine.rules` run unchanged on ``jax.numpy`` (through the array API
namespace, also under ``jax.jit``); weight decay, ``maximize`` and the look-ahead come from
:mod:`ravine.rules.step`, as in every other front-end. ``update`` returns the *updates*
(new params − params, computed directly: −lr·d for a plain rule), as optax expects, so the
optimizers chain with optax's transforms and are applied with ``optax.apply_updates``::

    >>> import jax.numpy as jnp
    >>> import optax
    >>> import ravine.jax
    >>> opt = ravine.jax.adam(lr=0.1)
    >>> theta = jnp.array([1.0, -2.0])
    >>> state = opt.init(theta)
    >>> updates, state = opt.update(2 * theta, state, theta)   # gradient of ‖θ‖²
    >>> optax.apply_updates(theta, updates).round(4)   # float32: 1 − βᵗ loses ~1e-7
    Array([ 0.9, -1.9], dtype=float32)

Hyperparameters may be Python numbers (checked as every front-end checks them), JAX arrays
(checked when their value is known, passed through when traced: this is what
``optax.inject_hyperparams`` gives), and ``lr`` may be a schedule, a function of the step
count as in optax. ``update(grads, state)`` needs ``params`` only for weight decay. A
``None`` leaf in the gradients is a masked parameter: its update is ``None`` and its state
does not change. Parameters narrower than float32 (bfloat16, float16) are computed, and
their state kept, in float32. Normalized GD's norm runs over every leaf of the pytree and,
given ``axis_name``, over the devices along that axis too.

Look-ahead rules (NAG) keep the parameters at the look-ahead point, exactly as in
:mod:`ravine.torch` and :mod:`ravine.numpy`; :func:`theta` returns the seed's θ.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import _doc
from .rules import Spec, registry
from .rules import step as rule_step
from .rules.validation import Check, Interval, OrNone


class RavineState(NamedTuple):
    """Optimizer state (a pytree): steps taken, and the rule's state per parameter leaf
    (in the parameters' tree structure, each leaf replaced by the rule's state tuple)."""

    count: Any
    """Steps taken, an int32 scalar; step ``t = count + 1`` is being taken."""
    rule: Any


_SPEC_BY_STATE: dict[type, Spec] = {s.state_type: s for s in registry.SPECS}


def _is_rule_state(x: Any) -> bool:
    return type(x) in _SPEC_BY_STATE


def _rule_leaves(rule_tree: Any) -> tuple[list[Any], Any]:
    """The rule states of a state's ``rule`` tree, and its structure: the parameters' tree
    (``None`` and optax's ``MaskedNode`` where the parameters had them)."""
    return jax.tree_util.tree_flatten(rule_tree, is_leaf=_is_rule_state)


def _up_to(treedef: Any, tree: Any, name: str, spec: Spec) -> list[Any]:
    """``tree``'s subtrees at the positions of ``treedef``'s leaves (``None`` stays ``None``)."""
    try:
        return list(treedef.flatten_up_to(tree))
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"{spec.name}: {name} must have the structure of the params given to init; {error}"
        ) from None


def _compute_dtype(dtype: Any) -> Any:
    """float32 for dtypes narrower than float32, else the dtype itself."""
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"params must hold floating-point arrays, got dtype {dtype}")
    return dtype if jnp.finfo(dtype).bits >= 32 else jnp.float32


def _wide(x: Any) -> Any:
    x = jnp.asarray(x)
    return x.astype(_compute_dtype(x.dtype))


def _float(value: Any) -> Any:
    """A hyperparameter as a floating array of at least float32 (integers: JAX's default
    float), so that e.g. γ = 0.999 in bfloat16 does not become 1."""
    array = jnp.asarray(value)
    if not jnp.issubdtype(array.dtype, jnp.floating):
        return array.astype(jnp.result_type(float))
    return _wide(array)


# hyperparameters ----------------------------------------------------------------------


def _numeric(check: Check) -> bool:
    """Whether the check takes numbers (an array can stand for one)."""
    return isinstance(check.inner if isinstance(check, OrNone) else check, Interval)


def _checked_array(spec: Spec, name: str, value: Any) -> Any:
    """A numeric hyperparameter given as an array: its shape is checked always, its value
    when known (a traced value is known only when the compiled step runs)."""
    check = spec.checks[name]
    if not _numeric(check):
        raise TypeError(f"{spec.name}: invalid {name}={value!r}; valid: {check.describe(name)}")
    array = _float(value)
    if array.ndim != 0:
        raise ValueError(
            f"{spec.name}: invalid {name} of shape {array.shape}; valid: a scalar, "
            f"{check.describe(name)}"
        )
    if isinstance(value, jax.core.Tracer):
        return array
    try:
        check.normalize(spec.name, name, float(value))
    except ValueError as error:
        given = jnp.asarray(value).dtype
        if jnp.issubdtype(given, jnp.floating) and jnp.finfo(given).bits < 32:
            # inject_hyperparams casts to the params' dtype: bfloat16 rounds 0.999 to 1
            raise ValueError(
                f"{error}; {name} arrived as {given}: with {given} params, give "
                "optax.inject_hyperparams hyperparam_dtype=jnp.float32"
            ) from None
        raise
    return array


def _checked_dynamic(spec: Spec, factory: str, name: str, value: Any) -> Any:
    """An array (or traced) hyperparameter, or a schedule for ``lr``."""
    if callable(value):
        if name != "lr":
            raise TypeError(
                f"{spec.name}: {name} must be a real number, got the callable {value!r}; only "
                f"lr takes a schedule here: schedule {name} with "
                f"optax.inject_hyperparams(ravine.jax.{factory})({name}=schedule)"
            )
        return value
    return _checked_array(spec, name, value)


def _is_dynamic(value: Any) -> bool:
    return isinstance(value, jax.Array | np.ndarray) or callable(value)


def _hyperparameters(spec: Spec, factory: str, given: dict[str, Any]) -> dict[str, Any]:
    """Checked hyperparameters: Python values by the checks every front-end shares (same
    messages), arrays and ``lr`` schedules by :func:`_checked_dynamic`."""
    values = {**spec.defaults, **given}
    dynamic = {k: v for k, v in values.items() if k in spec.checks and _is_dynamic(v)}
    checked = spec.validate({k: v for k, v in values.items() if k not in dynamic})
    checked.update({k: _checked_dynamic(spec, factory, k, v) for k, v in dynamic.items()})
    return checked


def _at_step(spec: Spec, hp: dict[str, Any], count: Any) -> dict[str, Any]:
    """``hp`` with a scheduled lr replaced by its value at ``count`` (steps taken so far,
    0 on the first step: optax's convention)."""
    if not callable(hp["lr"]):
        return hp
    return {**hp, "lr": _checked_array(spec, "lr", hp["lr"](count))}


def _require_params(spec: Spec, factory: str, hp: dict[str, Any]) -> None:
    """Raise unless the step can do without params: only weight decay reads them (the
    look-ahead's offset cancels out of the update)."""
    weight_decay = hp["weight_decay"]
    if isinstance(weight_decay, jax.core.Tracer):
        raise ValueError(
            f"{spec.name}: update(grads, state, params) needs params: weight_decay is traced "
            "(e.g. by optax.inject_hyperparams under jit), so it may be non-zero, and weight "
            "decay reads θ; pass params, or keep weight_decay static: optax.inject_hyperparams("
            f"ravine.jax.{factory}, static_args='weight_decay')"
        )
    if float(weight_decay) != 0:
        raise ValueError(
            f"{spec.name}: update(grads, state, params) needs params when "
            f"weight_decay={float(weight_decay)!r} (weight decay reads θ); pass params, "
            "or weight_decay=0.0"
        )


# the transformation ---------------------------------------------------------------------


def _like(new: Any, old: Any) -> Any:
    """The rule's new state in the old state's dtypes (scalar state such as NAG's shift
    comes back as a Python number or in the hyperparameters' dtype), so the state keeps one
    structure and type from step to step (``jax.lax.scan``, ``MultiSteps``' ``cond``)."""
    return jax.tree_util.tree_map(lambda n, o: jnp.asarray(n, dtype=o.dtype), new, old)


def _init_state(spec: Spec, p: Any, init_kwargs: dict[str, Any]) -> Any:
    wide = _wide(p)
    state = spec.init(wide, **init_kwargs)
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype=wide.dtype), state)


def _step_leaves(
    spec: Spec, factory: str, hp: dict[str, Any], t: Any, leaves: list[tuple[Any, Any, Any]]
) -> list[tuple[Any, Any]]:
    """One step of the unmasked leaves, each a (param or None, grad, rule state): their
    (update, new rule state), through :func:`ravine.rules.step.group_delta`, which gives the
    update itself (−lr·d for a plain rule, as optax computes it), not new params − params."""
    if any(p is None for p, _, _ in leaves):
        _require_params(spec, factory, hp)
    ps, gs, out_dtypes = [], [], []
    for p, g, _ in leaves:
        g = jnp.asarray(g)
        out_dtypes.append(g.dtype if p is None else jnp.asarray(p).dtype)
        # without params, a stand-in: only weight decay reads p, and then params are required
        p = jnp.zeros(g.shape, _compute_dtype(g.dtype)) if p is None else jnp.asarray(p)
        if p.shape != g.shape:
            raise ValueError(
                f"{spec.name}: grads must match params in shape; got a grad of shape "
                f"{g.shape} for a param of shape {p.shape}"
            )
        ps.append(_wide(p))
        gs.append(g.astype(ps[-1].dtype))
    states = [s for _, _, s in leaves]
    stepped = rule_step.group_delta(spec, ps, gs, states, t=t, hp=hp)
    return [
        (change.astype(dtype), _like(new_s, s))
        for dtype, s, (change, new_s) in zip(out_dtypes, states, stepped, strict=True)
    ]


def _transformation(spec: Spec, factory: str, hp: dict[str, Any]) -> optax.GradientTransformation:
    init_kwargs = {name: hp[name] for name in spec.init_args}

    def init_fn(params: Any) -> RavineState:
        leaves, treedef = jax.tree_util.tree_flatten(params)
        states = [_init_state(spec, p, init_kwargs) for p in leaves]
        return RavineState(jnp.zeros([], jnp.int32), jax.tree_util.tree_unflatten(treedef, states))

    def update_fn(grads: Any, state: RavineState, params: Any = None) -> tuple[Any, Any]:
        states, treedef = _rule_leaves(state.rule)
        gs = _up_to(treedef, grads, "grads", spec)
        ps = [None] * len(gs) if params is None else _up_to(treedef, params, "params", spec)
        live = [i for i, g in enumerate(gs) if g is not None]  # None: a masked parameter
        t = state.count + 1
        stepped = _step_leaves(
            spec,
            factory,
            _at_step(spec, hp, state.count),
            t,
            [(ps[i], gs[i], states[i]) for i in live],
        )
        updates: list[Any] = [None] * len(gs)
        new_states = list(states)
        for i, (update, new_state) in zip(live, stepped, strict=True):
            updates[i], new_states[i] = update, new_state
        return treedef.unflatten(updates), RavineState(t, treedef.unflatten(new_states))

    return optax.GradientTransformation(init_fn, update_fn)


def _across_devices(spec: Spec, axis_name: Any) -> Spec:
    """``spec`` whose group norm also adds the ‖g‖² of the other devices along
    ``axis_name`` (``jax.lax.psum``): inside ``shard_map`` or ``pmap``, the norm of the
    whole, sharded, pytree."""
    if axis_name is None:
        return spec
    if not isinstance(axis_name, str | tuple):
        raise TypeError(
            f"{spec.name}: invalid axis_name={axis_name!r}; valid: None, an axis name (str) "
            "or a tuple of them, as named by shard_map's mesh or pmap's axis_name"
        )
    assert spec.group_scalars is not None
    psum = functools.partial(jax.lax.psum, axis_name=axis_name)
    return dataclasses.replace(
        spec, group_scalars=functools.partial(spec.group_scalars, reduce=psum)
    )


def theta(params: Any, state: Any) -> Any:
    """The seed's θ: ``params`` except for look-ahead rules (NAG), whose stored parameters
    sit at the look-ahead point φ, so ``theta = params + offset(state)`` with
    ``offset = m·shift``. ``state`` is a ravine state, or any optax state holding one (a
    chain's, ``inject_hyperparams``', ``MultiSteps``'...)."""
    found = [
        s
        for s in jax.tree_util.tree_leaves(state, is_leaf=lambda x: isinstance(x, RavineState))
        if isinstance(s, RavineState)
    ]
    if len(found) != 1:
        raise ValueError(f"theta: expected one ravine state in state, found {len(found)}")
    rule_states, treedef = _rule_leaves(found[0].rule)
    out: list[Any] = []
    for p, s in zip(treedef.flatten_up_to(params), rule_states, strict=True):
        if p is None:
            out.append(None)
            continue
        spec = _SPEC_BY_STATE[type(s)]
        out.append(rule_step.theta(spec, _wide(p), s).astype(jnp.asarray(p).dtype))
    return treedef.unflatten(out)


_INTRO = (
    "optax transformation: ``state = opt.init(params)``, then "
    "``updates, state = opt.update(grads, state, params)`` (``params`` may be left out "
    "unless weight_decay ≠ 0). lr may be a schedule (a function of the step count, 0 on "
    "the first step, as in optax); every numeric hyperparameter may be a JAX array, also a "
    "traced one, so ``optax.inject_hyperparams`` schedules any of them."
)
_AXIS_NAME = (
    "\n\naxis_name = None: inside ``jax.shard_map`` or ``jax.pmap``, the mesh axis (or "
    "tuple of axes) across which the parameters are sharded; ‖g‖² is then summed over the "
    "devices (``jax.lax.psum``) before the root, so grad_norm is the whole pytree's norm."
)


def _factory(spec: Spec, name: str) -> Callable[..., optax.GradientTransformation]:
    reduces = spec.group_scalars is not None  # its step reads the whole pytree: axis_name

    def make(lr: Any = None, **hparams: Any) -> optax.GradientTransformation:
        axis_name = hparams.pop("axis_name", None) if reduces else None
        given = {**hparams, **({} if lr is None else {"lr": lr})}
        checked = _hyperparameters(spec, name, given)
        return _transformation(_across_devices(spec, axis_name), name, checked)

    make.__name__ = make.__qualname__ = name
    make.__module__ = __name__
    make.__doc__ = _doc.class_doc(spec, _INTRO + (_AXIS_NAME if reduces else ""))
    extra = {"axis_name": None} if reduces else {}
    make.__signature__ = _doc.signature(spec, (), extra)  # type: ignore[attr-defined]
    return make


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
