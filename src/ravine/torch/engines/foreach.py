"""The foreach engine: the *same* rule run once on batches of tensors.

A :class:`TensorList` is a list of same-dtype tensors whose arithmetic operators are torch's
``_foreach_*`` kernels, so the rule function the per-tensor engine calls runs unchanged on a
whole batch: each operator becomes one batched kernel launch over all its tensors. A batch
holds tensors of one device and dtype whose step counts (and other scalar state) agree.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from numbers import Real
from typing import Any

import torch

from ...rules import Hyperparameters, Spec
from ...rules import step as rule_step
from ...rules._xp import Array, namespace
from .. import storage
from ..storage import State, compute_view, real_view
from . import per_tensor


class TensorList:
    """A list of same-dtype tensors; arithmetic runs one ``torch._foreach_*`` call per op.

    This is how the multi-tensor implementation runs the *same* rule function as the
    per-tensor one: the rule sees ``m * beta + g * (1 - beta)`` and each operator becomes
    one batched kernel launch over all tensors.
    """

    __slots__ = ("tensors",)
    __array_priority__ = 1000  # so numpy scalars on the left defer to our reflected ops
    _xp: _TensorListNamespace  # consulted by ravine.rules._xp.namespace (set below)

    def __init__(self, tensors: Sequence[Any]) -> None:
        self.tensors = list(tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def _operand(self, other: Any) -> Any:
        if isinstance(other, TensorList):
            return other.tensors
        if isinstance(other, Real):
            return float(other)
        return other  # a 0-d tensor, broadcast to every list element

    def _apply(self, name: str, other: Any) -> TensorList:
        return TensorList(getattr(torch, f"_foreach_{name}")(self.tensors, self._operand(other)))

    def __add__(self, other: Any) -> TensorList:
        return self._apply("add", other)

    __radd__ = __add__

    def __sub__(self, other: Any) -> TensorList:
        return self._apply("sub", other)

    def __rsub__(self, other: Any) -> TensorList:
        return (-self) + other

    def __mul__(self, other: Any) -> TensorList:
        return self._apply("mul", other)

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> TensorList:
        return self._apply("div", other)

    def __rtruediv__(self, other: Any) -> TensorList:
        return TensorList(torch._foreach_reciprocal(self.tensors)) * other

    def __neg__(self) -> TensorList:
        return TensorList(torch._foreach_neg(self.tensors))


class _TensorListNamespace:
    def sqrt(self, x: Array) -> Array:
        return TensorList(torch._foreach_sqrt(x.tensors))

    def sum_squares(self, x: Array) -> Array:
        if not x.tensors:
            return torch.zeros(())
        norms = torch._foreach_norm([t if t.element_size() >= 4 else t.float() for t in x.tensors])
        return torch.stack(norms).square().sum()

    def floor(self, x: Array, low: float) -> Array:
        return TensorList(torch._foreach_maximum(x.tensors, low))

    def zeros_like(self, x: Array) -> Array:
        return TensorList([namespace(t).zeros_like(t) for t in x.tensors])

    def full_like(self, x: Array, value: float) -> Array:
        return TensorList([namespace(t).full_like(t, value) for t in x.tensors])


TensorList._xp = _TensorListNamespace()


def _batch_key(spec: Spec, p: torch.Tensor, state: State) -> tuple[Any, ...]:
    # One TensorList needs one device and dtype, the scalars the rule reads from state (the
    # step count t, NAdam's μ-product, NAG's shift) must agree across the batch, and its
    # state must be stored alike (storage.save writes a batch in one format).
    scalars = tuple(state[k] for k in ("step", *spec.scalar_state))
    return (p.device, p.dtype, storage.format_of(spec, state), *scalars)


def step(
    spec: Spec,
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    states: Sequence[State],
    hp: Hyperparameters,
) -> None:
    """One step of ``params``, one rule call per batch of same-device, same-dtype,
    same-step tensors."""
    sparse = [i for i, g in enumerate(grads) if g.is_sparse]
    if sparse:  # foreach kernels take no sparse tensors; those rows go tensor by tensor
        per_tensor.step(
            spec,
            [params[i] for i in sparse],
            [grads[i] for i in sparse],
            [states[i] for i in sparse],
            hp,
        )
    batches: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for i, (p, g, s) in enumerate(zip(params, grads, states, strict=True)):
        if not g.is_sparse:
            batches[_batch_key(spec, real_view(p), s)].append(i)
    lists = []
    for members in batches.values():
        ps = [real_view(params[i]) for i in members]
        p_compute = TensorList([compute_view(p) for p in ps])
        gs = TensorList([compute_view(grads[i]) for i in members])
        lists.append((members, ps, p_compute, rule_step.effective_gradient(p_compute, gs, hp)))
    scalars = spec.group_scalars([g for *_, g in lists]) if spec.group_scalars and lists else {}
    for members, ps, p_compute, gs in lists:
        batch = [states[i] for i in members]
        t = storage.next_step(batch[0])
        state = storage.load(spec, batch, TensorList, p_compute.tensors[0].dtype)
        p_new, new = rule_step.update(spec, p_compute, gs, state, t=t, hp=hp, scalars=scalars)
        torch._foreach_copy_(ps, p_new.tensors)
        storage.save(spec, batch, new, t, write=_copy)


def _copy(targets: list[torch.Tensor], value: TensorList) -> None:
    torch._foreach_copy_(targets, value.tensors)
