"""Optimizer state in memory: the one place that turns stored state into the rule's state
and back.

Per-parameter state is a dict: ``step`` (an int) plus the rule's state fields (tensors, or
floats for per-tensor scalars such as NAdam's μ-product). Every engine reads it with
:func:`load` and writes it with :func:`save`; the fused engines ask :func:`stream_formats`
and :func:`stored_dtype` how a stored tensor is laid out, the checkpoint checks ask
:func:`problem` what it must be.

Today there is one format: a state tensor is stored in its parameter's (real) dtype, as in
torch.optim. Arithmetic runs in at least float32: 16-bit parameters, gradients and state are
widened for the computation (:func:`compute_view`) and rounded once when stored. torch.optim
computes in 16 bits, where Adam's ε = 1e-8 underflows to 0 in float16 and training ends in
NaN; widening avoids that. A compact format (bfloat16, 8-bit block-wise) is one more case of
these functions, and one more entry in :data:`ravine.codegen.program.FORMATS`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..rules import Hyperparameters, Spec
from .state import put

State = dict[str, Any]
"""One parameter's stored state."""


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


def stored_dtype(p: torch.Tensor) -> torch.dtype:
    """The dtype each state tensor of parameter ``p`` is stored in."""
    return real_view(p).dtype


FORMATS = {
    torch.float64: "float64",
    torch.float32: "float32",
    torch.bfloat16: "bfloat16",
    torch.float16: "float16",
}
"""torch dtypes a generated kernel can stream → their :data:`ravine.codegen.program.FORMATS`."""


def stream_formats(streams: Sequence[str], p: torch.Tensor) -> dict[str, str] | None:
    """The storage format of each stream of a kernel over parameter ``p`` (``p`` and ``g``
    in the parameter's real dtype, the state in :func:`stored_dtype`); None if a kernel
    cannot stream it."""
    param, state = FORMATS.get(real_view(p).dtype), FORMATS.get(stored_dtype(p))
    if param is None or state is None:
        return None
    return {name: param if name in ("p", "g") else state for name in streams}


def problem(value: Any, p: torch.Tensor) -> str | None:
    """Why ``value`` cannot be a stored state tensor of ``p`` (None: it can)."""
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        return "must be a floating-point tensor"
    shape = tuple(real_view(p).shape)
    if tuple(value.shape) != shape:
        return f"has shape {tuple(value.shape)}, the parameter needs {shape}"
    return None


def init(spec: Spec, p: torch.Tensor, hp: Hyperparameters) -> State:
    """Fresh state for parameter p: step 0 and the rule's initial fields."""
    init_kwargs = {name: hp[name] for name in spec.init_args}
    return {"step": 0, **spec.init(real_view(p).detach(), **init_kwargs)._asdict()}


def next_step(state: State) -> int:
    """The t of the step about to be taken (t counts steps from 1)."""
    return int(state["step"]) + 1


def step_scalars(state: State, scalar_state: Sequence[str]) -> dict[str, float]:
    """The per-step inputs a traced program reads from a state: ``t`` and the scalar
    state (NAG's shift, NAdam's μ-product), as floats."""
    return {"t": float(next_step(state)), **{f: float(state[f]) for f in scalar_state}}


def _one(views: list[torch.Tensor]) -> Any:
    return views[0]


def load(spec: Spec, states: Sequence[State], combine: Callable[[list], Any] = _one) -> Any:
    """The rule's NamedTuple state for ``states``: each state tensor as the rule computes
    with it (:func:`compute_view`), the views of all ``states`` joined by ``combine`` (by
    default one state's tensor; a batch for the foreach engine; rows for sparse steps);
    scalar state from the first (they agree within a batch)."""
    first = states[0]
    return spec.state_type(
        **{
            name: first[name]
            if name in spec.scalar_state
            else combine([compute_view(state[name]) for state in states])
            for name in spec.state_fields
        }
    )


def _copy(targets: list[torch.Tensor], value: Any) -> None:
    targets[0].copy_(value)


def save(
    spec: Spec,
    states: Sequence[State],
    new: Any,
    t: int,
    write: Callable[[list[torch.Tensor], Any], Any] = _copy,
) -> None:
    """Store the rule's ``new`` state and the step count ``t`` into ``states``: each new
    array through ``write(targets, value)`` (by default a copy into one state's tensor,
    which rounds to its dtype), scalar state as floats. These are the engines' own writes,
    not changes made from outside (see :mod:`.state`)."""
    for name, value in new._asdict().items():
        if name in spec.scalar_state:
            for state in states:
                put(state, name, float(value))
        else:
            write([real_view(state[name]) for state in states], value)
    for state in states:
        put(state, "step", t)
