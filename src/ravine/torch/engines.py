"""Implementations of one optimizer step over a param group, all with one signature.

``per_tensor`` runs the rule on each tensor; ``multi_tensor`` runs the *same* rule once
on :class:`~ravine.rules._xp.TensorList` batches, so each arithmetic operator becomes one
``torch._foreach_*`` kernel over all tensors. Both call :func:`ravine.rules.step.update`,
the one place that applies sign, weight decay, look-ahead and learning rate.

Per-parameter state is a dict: ``step`` (an int) plus the rule's state fields (tensors,
or floats for per-tensor scalars such as NAdam's μ-product).

Arithmetic runs in at least float32: 16-bit parameters, gradients and state are widened
for the computation and rounded once when stored (state keeps the parameter's dtype, as in
torch.optim). torch.optim computes in 16 bits, where Adam's ε = 1e-8 underflows to 0 in
float16 and training ends in NaN; widening avoids that.

Sparse gradients (rules whose spec says ``sparse``) run the rule on the gathered rows that
have a gradient and scatter the result back: for those rules a row without gradient keeps
its value and state, so this equals the dense step exactly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ..rules import Spec
from ..rules import step as rule_step
from ..rules._xp import TensorList
from .state import put

State = dict[str, Any]
Engine = Callable[
    [Spec, Sequence[torch.Tensor], Sequence[torch.Tensor], Sequence[State], Mapping[str, Any]], None
]


def check_implementation(
    owner: str, foreach: Any, fused: Any, reduce_group: Any = None
) -> dict[str, bool | None]:
    """The ``foreach``/``fused`` choice, checked where it is made (constructor,
    ``add_param_group``) and where it is loaded (a checkpoint's groups)."""
    for name, value in (("foreach", foreach), ("fused", fused)):
        if value is not None and not isinstance(value, bool):
            raise TypeError(f"{owner}: {name} must be True, False or None, got {value!r}")
    if foreach and fused:
        raise ValueError(f"{owner}: foreach=True and fused=True exclude each other; choose one")
    if fused and reduce_group is not None:  # a cross-process sum cannot run inside a kernel
        raise ValueError(
            f"{owner}: fused=True cannot take reduce_group={reduce_group!r}; use foreach=True "
            "or leave both None"
        )
    return {"foreach": foreach, "fused": fused}


def is_wrapper(x: Any) -> bool:
    """A tensor subclass (or such a tensor) that wraps others — DTensor and friends: no
    storage of its own, ``data_ptr() == 0``, nothing a kernel may stream."""
    return hasattr(x, "__tensor_flatten__")


def real_view(x: torch.Tensor) -> torch.Tensor:
    """Complex tensors are optimized as pairs of reals, as torch.optim does."""
    return torch.view_as_real(x) if x.is_complex() else x


def compute_view(x: torch.Tensor) -> torch.Tensor:
    """What the rule computes with: the real view (a lazily conjugated gradient resolved
    first: its memory holds the unconjugated values), widened to float32 if 16-bit."""
    x = real_view(x.resolve_conj()) if x.is_complex() else x
    return x.float() if x.element_size() < 4 else x


def init_state(spec: Spec, p: torch.Tensor, hp: Mapping[str, Any]) -> State:
    """Fresh state for parameter p: step 0 and the rule's initial fields."""
    init_kwargs = {name: hp[name] for name in spec.init_args}
    return {"step": 0, **spec.init(real_view(p).detach(), **init_kwargs)._asdict()}


def rule_state(spec: Spec, state: State) -> Any:
    """The rule's NamedTuple state, with tensors as the rule computes with them."""
    return spec.state_type(
        **{
            name: compute_view(state[name])
            if isinstance(state[name], torch.Tensor)
            else state[name]
            for name in spec.state_fields
        }
    )


def _store(state: State, new: Any) -> None:
    for name, value in new._asdict().items():
        if isinstance(value, torch.Tensor):
            real_view(state[name]).copy_(value)
        else:
            put(state, name, float(value))


def _update_sparse(
    spec: Spec, p: torch.Tensor, g: torch.Tensor, state: State, hp: Mapping[str, Any]
) -> None:
    g = g.coalesce()
    rows = tuple(g._indices())
    p_rows = compute_view(p[rows])
    values = rule_step.effective_gradient(p_rows, compute_view(g._values()), hp)
    row_state = spec.state_type(
        **{
            k: v[rows] if isinstance(v, torch.Tensor) else v
            for k, v in rule_state(spec, state)._asdict().items()
        }
    )
    t = state["step"] + 1
    p_rows, new = rule_step.update(spec, p_rows, values, row_state, t=t, hp=hp, scalars={})
    p.index_put_(rows, p_rows.to(p.dtype))
    for name, value in new._asdict().items():
        if isinstance(value, torch.Tensor):
            state[name].index_put_(rows, value.to(state[name].dtype))
        else:
            put(state, name, float(value))
    put(state, "step", t)


def per_tensor(
    spec: Spec,
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    states: Sequence[State],
    hp: Mapping[str, Any],
) -> None:
    """The rule applied tensor by tensor (the reference implementation)."""
    dense = [
        (real_view(p), s, compute_view(p), compute_view(g))
        for p, g, s in zip(params, grads, states, strict=True)
        if not g.is_sparse
    ]
    for p, g, s in zip(params, grads, states, strict=True):
        if g.is_sparse:
            _update_sparse(spec, p, g, s, hp)
    gs = [rule_step.effective_gradient(p, g, hp) for _, _, p, g in dense]
    scalars = spec.group_scalars(gs) if spec.group_scalars and gs else {}
    for (p, state, p_compute, _), g in zip(dense, gs, strict=True):
        t = state["step"] + 1
        p_new, new = rule_step.update(
            spec, p_compute, g, rule_state(spec, state), t=t, hp=hp, scalars=scalars
        )
        p.copy_(p_new)
        _store(state, new)
        put(state, "step", t)


def _batch_key(spec: Spec, p: torch.Tensor, state: State) -> tuple[Any, ...]:
    # One TensorList needs one device and dtype, and the scalars the rule reads from state
    # (the step count t, NAdam's μ-product, NAG's shift) must agree across the batch.
    scalars = tuple(v for k, v in state.items() if not isinstance(v, torch.Tensor))
    return (p.device, p.dtype, *scalars)


def multi_tensor(
    spec: Spec,
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    states: Sequence[State],
    hp: Mapping[str, Any],
) -> None:
    """The rule applied once per batch of same-device, same-dtype, same-step tensors."""
    sparse = [i for i, g in enumerate(grads) if g.is_sparse]
    if sparse:  # foreach kernels take no sparse tensors; those rows go through per_tensor
        per_tensor(
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
        first = states[members[0]]
        batch_state = spec.state_type(
            **{
                name: TensorList([compute_view(states[i][name]) for i in members])
                if isinstance(first[name], torch.Tensor)
                else first[name]
                for name in spec.state_fields
            }
        )
        t = first["step"] + 1
        p_new, new = rule_step.update(spec, p_compute, gs, batch_state, t=t, hp=hp, scalars=scalars)
        torch._foreach_copy_(ps, p_new.tensors)
        for name, value in new._asdict().items():
            if isinstance(value, TensorList):
                torch._foreach_copy_([real_view(states[i][name]) for i in members], value.tensors)
            else:
                for i in members:
                    put(states[i], name, float(value))
        for i in members:
            put(states[i], "step", t)


ENGINES: Mapping[bool, Engine] = {False: per_tensor, True: multi_tensor}
"""Implementation by the ``foreach`` flag."""
