"""NumPy front-end: every optimizer as an object with pure ``init`` and ``update``.

Parameters are one array or a flat list, tuple or dict of arrays (one param group: the
normalized-gradient norm runs over all of them). Nothing is modified in place::

    >>> import numpy as np
    >>> from ravine.numpy import Adam
    >>> opt = Adam(lr=0.1)
    >>> theta = np.array([1.0, -2.0])
    >>> state = opt.init(theta)
    >>> theta, state = opt.update(theta, 2 * theta, state)   # gradient of ‖θ‖²
    >>> theta.round(6)
    array([ 0.9, -1.9])

Look-ahead rules (NAG) keep the parameters at the look-ahead point, exactly as in
:mod:`ravine.torch`; ``opt.theta(params, state)`` returns the seed's θ.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from . import _doc
from .rules import Spec, registry
from .rules import step as rule_step

Params = Any
"""An ndarray, or a list, tuple or dict of ndarrays."""


@dataclass(frozen=True)
class OptState:
    """Optimizer state: steps taken and the rule's state per array (same container)."""

    t: int
    rule: Any


def _leaves(tree: Params, like: Params | None = None) -> list[Any]:
    """The arrays of ``tree``, whose container is that of ``like`` (default: itself)."""
    like = tree if like is None else like
    if isinstance(like, Mapping):
        return list(tree.values())
    if isinstance(like, list | tuple):
        return list(tree)
    return [tree]


def _rebuild(like: Params, leaves: list[Any]) -> Params:
    if isinstance(like, Mapping):
        return dict(zip(like.keys(), leaves, strict=True))
    if isinstance(like, list | tuple):
        return type(like)(leaves)
    return leaves[0]


def _as_float_array(name: str, x: Any) -> np.ndarray:
    array = np.asarray(x)
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"{name} must hold floating-point arrays, got dtype {array.dtype}")
    return array


class Optimizer:
    """Base of the NumPy optimizers; subclasses only set :attr:`spec`."""

    spec: ClassVar[Spec]

    def __init__(self, lr: float | None = None, **hparams: Any) -> None:
        given = {**hparams, **({} if lr is None else {"lr": lr})}
        self.hparams: dict[str, Any] = self.spec.validate({**self.spec.defaults, **given})

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hparams.items())
        return f"{type(self).__name__}({args})"

    def replace(self, **hparams: Any) -> Optimizer:
        """A copy with some hyperparameters changed (e.g. a scheduled lr)."""
        return type(self)(**{**self.hparams, **hparams})

    def init(self, params: Params) -> OptState:
        """Zero state for ``params`` (step count 0)."""
        init_kwargs = {name: self.hparams[name] for name in self.spec.init_args}
        leaves = [_as_float_array("params", p) for p in _leaves(params)]
        return OptState(0, _rebuild(params, [self.spec.init(p, **init_kwargs) for p in leaves]))

    def update(self, params: Params, grads: Params, state: OptState) -> tuple[Params, OptState]:
        """One step: new (params, state); the inputs are left unchanged."""
        spec, hp, t = self.spec, self.hparams, state.t + 1
        ps = [_as_float_array("params", p) for p in _leaves(params)]
        gs = [_as_float_array("grads", g) for g in _leaves(grads)]
        if len(ps) != len(gs) or any(p.shape != g.shape for p, g in zip(ps, gs, strict=True)):
            raise ValueError(
                f"{spec.name}: grads must match params in structure and shapes; got "
                f"{[g.shape for g in gs]} for params {[p.shape for p in ps]}"
            )
        new = rule_step.group_update(spec, ps, gs, _leaves(state.rule, params), t=t, hp=hp)
        new_params = _rebuild(
            params, [np.asarray(p, dtype=p0.dtype) for (p, _), p0 in zip(new, ps, strict=True)]
        )
        return new_params, OptState(t, _rebuild(params, [s for _, s in new]))

    def theta(self, params: Params, state: OptState) -> Params:
        """The seed's θ (equal to ``params`` except for look-ahead rules)."""
        leaves = [
            rule_step.theta(self.spec, _as_float_array("params", p), s)
            for p, s in zip(_leaves(params), _leaves(state.rule, params), strict=True)
        ]
        return _rebuild(params, leaves)


def _optimizer_class(spec: Spec) -> type[Optimizer]:
    cls = type(spec.name, (Optimizer,), {"spec": spec, "__module__": __name__})
    cls.__doc__ = _doc.class_doc(
        spec,
        "NumPy optimizer: ``state = opt.init(params)``, then "
        "``params, state = opt.update(params, grads, state)``.",
    )
    cls.__signature__ = _doc.signature(spec, (), {})  # type: ignore[attr-defined]
    return cls


SGD = _optimizer_class(registry.SGD)
Momentum = _optimizer_class(registry.MOMENTUM)
NAG = _optimizer_class(registry.NAG)
NormalizedGD = _optimizer_class(registry.NORMALIZED_GD)
Adagrad = _optimizer_class(registry.ADAGRAD)
RMSProp = _optimizer_class(registry.RMSPROP)
AdaDelta = _optimizer_class(registry.ADADELTA)
Adam = _optimizer_class(registry.ADAM)
NAdam = _optimizer_class(registry.NADAM)

OPTIMIZERS: dict[str, type[Optimizer]] = {
    c.spec.name: c
    for c in (SGD, Momentum, NAG, NormalizedGD, Adagrad, RMSProp, AdaDelta, Adam, NAdam)
}
"""Every NumPy optimizer class by registry name."""

__all__ = ["OPTIMIZERS", "OptState", "Optimizer", *OPTIMIZERS]
