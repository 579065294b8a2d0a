"""Optimizer state in memory: the one place that turns stored state into the rule's state
and back.

Per-parameter state is a dict: ``step`` (an int) plus the rule's state fields (tensors, or
floats for per-tensor scalars such as NAdam's μ-product). Every engine reads it with
:func:`load` and writes it with :func:`save`; the fused engines ask :func:`stream_formats`
how each stored tensor is laid out, the checkpoint checks ask :func:`problem` whether a
saved state is one of the formats below, and :func:`convert` turns it into the one its
parameter's group asks for.

The *format* of a parameter's state (``state_dtype=`` of the optimizer, :func:`state_format`):

* a plain dtype (``"float32"``, ``"bfloat16"``, …): each state tensor in that dtype, rounded
  to nearest on store. ``state_dtype=None`` (the default) stores it in the parameter's own
  (real) dtype, as torch.optim does; ``torch.float32`` always in float32;
* ``"bfloat16-sr"`` (``state_dtype=torch.bfloat16``): bfloat16 with stochastic rounding; the
  state also keeps ``seed``, the key of its random bits (:mod:`ravine.quantization`);
* ``"8bit"`` (``state_dtype="8bit"``): per state tensor ``name`` a uint8 tensor of codes of
  the parameter's shape and ``name_absmax``, one float32 per block of
  :data:`~ravine.quantization.BLOCK` elements, and ``seed`` (signed codes round
  stochastically).

Parameters with fewer than :data:`~ravine.quantization.MIN_ELEMENTS` elements keep full
precision under the compact formats (float32; float64 for float64 parameters). Scalar
state (the step, NAG's shift, NAdam's μ-product) is never compact.

Arithmetic runs in at least float32: 16-bit parameters, gradients and state are widened for
the computation (:func:`compute_view`) and rounded once when stored. torch.optim computes in
16 bits, where Adam's ε = 1e-8 underflows to 0 in float16 and training ends in NaN; widening
avoids that. Compact state is decoded to float32 (float32 values widened for float64
parameters) and a new value is rounded to float32 before it is encoded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from .. import quantization
from ..rules import Hyperparameters, Spec
from . import compact
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


FORMATS = {
    torch.float64: "float64",
    torch.float32: "float32",
    torch.bfloat16: "bfloat16",
    torch.float16: "float16",
}
"""torch dtypes a generated kernel can stream → their :data:`ravine.codegen.program.FORMATS`."""

COMPACT = {"bfloat16-sr": torch.bfloat16, "8bit": torch.uint8}
"""The compact formats → the dtype of their state tensors."""

STATE_DTYPES = (None, torch.float32, torch.bfloat16, "8bit")
"""What ``state_dtype=`` takes: the parameter's dtype, float32, bfloat16 with stochastic
rounding, or 8-bit block-wise codes."""


def check_state_dtype(owner: str, value: Any) -> Any:
    """``value`` if it is one of :data:`STATE_DTYPES`, else a ``ValueError`` listing them."""
    if value is None or value is torch.float32 or value is torch.bfloat16:
        return value
    if isinstance(value, str) and value == "8bit":
        return value
    raise ValueError(
        f"{owner}: invalid state_dtype={value!r}; valid: None (the parameter's dtype), "
        "torch.float32, torch.bfloat16 (stochastic rounding) or '8bit' (block-wise)"
    )


def _plain(dtype: torch.dtype) -> str:
    return FORMATS.get(dtype, str(dtype).removeprefix("torch."))


def check_min_compact_size(owner: str, value: Any) -> int:
    """``value`` if it is a non-negative int, else a ``ValueError`` saying so."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            f"{owner}: invalid min_compact_size={value!r}; valid: an int >= 0 (elements; "
            f"default {quantization.MIN_ELEMENTS})"
        )
    return value


def state_format(
    p: torch.Tensor, state_dtype: Any, min_size: int = quantization.MIN_ELEMENTS
) -> str:
    """The format a new state of parameter ``p`` gets under ``state_dtype``; under a
    compact one, parameters of fewer than ``min_size`` (real) elements keep full
    precision."""
    check_state_dtype("param group", state_dtype)  # groups can be edited after the checks
    real = real_view(p).dtype
    if state_dtype is None:
        return _plain(real)
    if state_dtype is torch.float32:
        return "float32"
    if real_view(p).numel() < min_size:
        return "float64" if real is torch.float64 else "float32"
    return "bfloat16-sr" if state_dtype is torch.bfloat16 else "8bit"


def arrays(spec: Spec) -> tuple[str, ...]:
    """The rule's array state fields (those a format applies to), in the rule's order."""
    return tuple(f for f in spec.state_fields if f not in spec.scalar_state)


def _absmax(name: str) -> str:
    return f"{name}_absmax"


def _codes(name: str) -> str:
    return f"{name}_codes"


def stored(name: str, format_: str | None) -> str:
    """The key a state field's tensor is kept under: ``NAME_codes`` for 8-bit codes (so a
    checkpoint loaded in place by another format — torch.distributed.checkpoint — misses
    the key instead of taking codes for values), else ``NAME``."""
    return _codes(name) if format_ == "8bit" else name


def format_of(spec: Spec, state: State) -> str | None:
    """The format ``state`` is stored in (None: the rule keeps no array state)."""
    fields = arrays(spec)
    if not fields:
        return None
    if _codes(fields[0]) in state:
        return "8bit"
    if "seed" in state:
        return "bfloat16-sr"
    return _plain(state[fields[0]].dtype)


def stored_dtype(format_: str) -> torch.dtype:
    """The dtype of the state tensors of a format (the codes' for ``"8bit"``)."""
    return COMPACT.get(format_) or getattr(torch, format_)


def keys(spec: Spec, format_: str | None) -> set[str]:
    """Every key a stored state of this format holds."""
    fields = arrays(spec)
    seed = {"seed"} if _seeded(spec, format_) else set()
    if format_ == "8bit":
        return {"step", *seed, *spec.scalar_state, *map(_codes, fields), *map(_absmax, fields)}
    return {"step", *spec.state_fields, *seed}


def _seeded(spec: Spec, format_: str | None) -> bool:
    """Whether a state of this format keeps the ``seed`` of its rounding bits: bfloat16
    always, 8-bit where a signed (stochastically rounded) state exists."""
    if format_ == "8bit":
        return any(_signed(spec, name) for name in arrays(spec))
    return format_ == "bfloat16-sr" and bool(arrays(spec))


def optional_keys(spec: Spec, format_: str | None) -> set[str]:
    """Keys a saved state of this format may lack: 8-bit states saved before signed codes
    rounded stochastically have no ``seed`` (:func:`convert` gives them theirs)."""
    return {"seed"} if format_ == "8bit" and _seeded(spec, format_) else set()


def _signed(spec: Spec, name: str) -> bool:
    return name not in spec.nonnegative


def stream_formats(
    streams: Sequence[str], p: torch.Tensor, spec: Spec, state: State | None
) -> dict[str, str] | None:
    """The storage format of each stream of a kernel over parameter ``p`` (``p`` and ``g``
    in the parameter's real dtype; the state as stored in ``state``: a plain format,
    ``"bfloat16-sr"``, ``"8bit-signed"`` or ``"8bit-unsigned"``); None if a kernel cannot
    stream the parameter. ``state`` None: the format a state of ``state_dtype=None`` has."""
    param = FORMATS.get(real_view(p).dtype)
    kept = _plain(real_view(p).dtype) if state is None else format_of(spec, state)
    if param is None or (kept not in FORMATS.values() and kept not in COMPACT and kept):
        return None

    def stream(name: str) -> str:
        if name in ("p", "g") or kept is None:
            return param
        if kept == "8bit":
            return "8bit-signed" if _signed(spec, name) else "8bit-unsigned"
        return kept

    return {name: stream(name) for name in streams}


def problem(spec: Spec, entry: Mapping[str, Any], p: torch.Tensor) -> str | None:
    """Why a saved per-parameter ``entry`` (its keys already known to be one format's, see
    :func:`saved_format`) cannot be ``p``'s state (None: it can, after :func:`convert`)."""
    format_ = saved_format(spec, entry)
    shape = tuple(real_view(p).shape)
    for field in arrays(spec):
        name = stored(field, format_)
        value = entry[name]
        got = f"got {_describe(value)}"
        if format_ == "8bit":
            if not isinstance(value, torch.Tensor) or value.dtype != torch.uint8:
                return f"{name} must be a uint8 tensor of codes in the 8bit format, {got}"
            absmax = entry[_absmax(field)]
            count = quantization.blocks(value.numel())
            if not isinstance(absmax, torch.Tensor) or absmax.dtype != torch.float32:
                return (
                    f"{_absmax(field)} must be a float32 tensor in the 8bit format, "
                    f"got {_describe(absmax)}"
                )
            if tuple(absmax.shape) != (count,):
                return (
                    f"{_absmax(field)} has shape {tuple(absmax.shape)}; {name}'s "
                    f"{value.numel()} elements need ({count},) in the 8bit format"
                )
        elif format_ == "bfloat16-sr" and not (
            isinstance(value, torch.Tensor) and value.dtype == torch.bfloat16
        ):
            return (
                f"{name} must be a bfloat16 tensor in the bfloat16-sr format (it has a seed), {got}"
            )
        elif not isinstance(value, torch.Tensor) or not value.is_floating_point():
            return f"{name} must be a floating-point tensor, {got}"
        if tuple(value.shape) != shape:
            return f"{name} has shape {tuple(value.shape)}, the parameter needs {shape}"
    seed = entry.get("seed", 0)
    if format_ in COMPACT and not (type(seed) is int and 0 <= seed <= quantization.MASK):
        return f"seed must be an int in [0, 2**32), got {seed!r}"
    return None


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor"
    return f"a {type(value).__name__}"


def saved_format(spec: Spec, entry: Mapping[str, Any]) -> str | None:
    """The format a saved entry's keys say it is in (None: only plain tensors)."""
    if any(str(key).endswith(("_absmax", "_codes")) for key in entry):
        return "8bit"
    return "bfloat16-sr" if "seed" in entry else None


def init(
    spec: Spec,
    p: torch.Tensor,
    hp: Hyperparameters,
    state_dtype: Any = None,
    min_size: int = quantization.MIN_ELEMENTS,
    seed: int = 0,
) -> State:
    """Fresh state for parameter p: step 0 and the rule's initial fields, in the format
    :func:`state_format` gives it (compact formats start from the nearest-rounded values;
    ``seed`` keys a compact state's rounding bits, see :func:`rounding_seed`)."""
    init_kwargs = {name: hp[name] for name in spec.init_args}
    fresh = spec.init(real_view(p).detach(), **init_kwargs)._asdict()
    format_ = state_format(p, state_dtype, min_size)
    if format_ in COMPACT and is_wrapper(p):
        raise ValueError(
            f"{spec.name}: state_dtype={state_dtype!r} is not supported for "
            f"{type(p).__name__} parameters (FSDP2, tensor parallel); valid there: None, "
            "torch.float32"
        )
    return {"step": 0, **_encoded(spec, fresh, format_, seed)}


def rounding_seed(position: int) -> int:
    """The seed of the stochastic rounding of the parameter at ``position`` (its index in
    the optimizer, counting through the groups): a function of the position only — not of
    torch's random generator, whose stream a draw would shift, and which DDP ranks may seed
    differently — so replicas and resumed runs round alike."""
    return int(quantization.mix32((position + 1) & quantization.MASK))


def _encoded(spec: Spec, values: Mapping[str, Any], format_: str, seed: int) -> State:
    """The rule's state ``values`` (name → array or scalar) stored in ``format_``."""
    state: State = {}
    for name, value in values.items():
        if name in spec.scalar_state:
            state[name] = value
        elif format_ == "8bit":
            state[_codes(name)], state[_absmax(name)] = compact.quantize(value, _signed(spec, name))
        else:
            state[name] = value.to(stored_dtype(format_))
    if _seeded(spec, format_):
        state["seed"] = seed
    return state


def convert(
    spec: Spec,
    state: State,
    p: torch.Tensor,
    state_dtype: Any,
    min_size: int = quantization.MIN_ELEMENTS,
    seed: int = 0,
) -> State:
    """``state`` in the format :func:`state_format` gives parameter ``p``, on its device: the
    same dict if it already is (a checkpoint of the same format resumes bit for bit), else
    a new one, decoded to float32 and encoded again (bounds in docs/state.md)."""
    for name, value in state.items():
        if isinstance(value, torch.Tensor) and value.device != p.device:
            put(state, name, value.to(p.device))
    current, target = format_of(spec, state), state_format(p, state_dtype, min_size)
    if current is None or (current == target and _uniform(spec, state, target)):
        if _seeded(spec, current) and "seed" not in state:  # saved before it had one
            put(state, "seed", seed)
        return state
    decoded = {name: decode(spec, state, name) for name in spec.state_fields}
    converted = _encoded(spec, decoded, target, state.get("seed", seed))
    return {"step": state["step"], **converted}


def _uniform(spec: Spec, state: State, format_: str) -> bool:
    """Whether every state tensor has its format's dtype (a plain checkpoint may hold
    fields of several dtypes: then it is converted)."""
    dtype = stored_dtype(format_)
    return all(state[stored(f, format_)].dtype == dtype for f in arrays(spec))


def decode(spec: Spec, state: State, name: str) -> Any:
    """One state field as the rule computes with it (scalars as stored)."""
    if name in spec.scalar_state:
        return state[name]
    if _codes(name) in state:
        return compact.dequantize(state[_codes(name)], state[_absmax(name)], _signed(spec, name))
    return compute_view(state[name])


def next_step(state: State) -> int:
    """The t of the step about to be taken (t counts steps from 1)."""
    return int(state["step"]) + 1


def step_scalars(state: State, scalar_state: Sequence[str]) -> dict[str, float]:
    """The per-step inputs a traced program reads from a state: ``t`` and the scalar
    state (NAG's shift, NAdam's μ-product), as floats."""
    return {"t": float(next_step(state)), **{f: float(state[f]) for f in scalar_state}}


def _one(views: list[torch.Tensor]) -> Any:
    return views[0]


def load(
    spec: Spec,
    states: Sequence[State],
    combine: Callable[[list], Any] = _one,
    dtype: torch.dtype | None = None,
) -> Any:
    """The rule's NamedTuple state for ``states``: each state tensor as the rule computes
    with it (:func:`decode`, widened to ``dtype``, the parameters' compute dtype, where the
    state is narrower: float64 parameters compute with their float32 state in float64, as
    the kernels do), the views of all ``states`` joined by ``combine`` (by default one
    state's tensor; a batch for the foreach engine; rows for sparse steps); scalar state
    from the first (they agree within a batch)."""
    first = states[0]

    def view(state: State, name: str) -> Any:
        value = decode(spec, state, name)
        return value if dtype is None or value.dtype == dtype else value.to(dtype)

    return spec.state_type(
        **{
            name: first[name]
            if name in spec.scalar_state
            else combine([view(state, name) for state in states])
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
    """Store the rule's ``new`` state and the step count ``t`` into ``states`` (all of one
    format, as the engines batch them): each new array of a plain format through
    ``write(targets, value)`` (by default a copy into one state's tensor, which rounds to
    its dtype), of a compact format encoded state by state, in place; scalar state as
    floats. These are the engines' own writes, not changes made from outside (see
    :mod:`.state`)."""
    format_ = format_of(spec, states[0])
    fields = arrays(spec)
    for name, value in new._asdict().items():
        if name in spec.scalar_state:
            for state in states:
                put(state, name, float(value))
        elif format_ in COMPACT:
            members = getattr(value, "tensors", [value])  # a foreach batch, or one tensor
            for state, member in zip(states, members, strict=True):
                _store(spec, state, name, fields.index(name), member, t)
        else:
            write([real_view(state[name]) for state in states], value)
    for state in states:
        put(state, "step", t)


def _store(spec: Spec, state: State, name: str, field: int, value: Any, t: int) -> None:
    """Encode one new state tensor into its compact storage, in place (never broadcast: a
    state whose shape no longer fits its parameter is an error, not a silent fill)."""
    if _codes(name) in state:
        signed = _signed(spec, name)  # signed codes round stochastically (quantization)
        key = quantization.stream_key(state.get("seed", 0), t, field) if signed else None
        codes, absmax = compact.quantize(value, signed, key)
        target, maxima = state[_codes(name)], state[_absmax(name)]
        if maxima.shape != absmax.shape or target.shape != codes.shape:
            raise RuntimeError(
                f"{spec.name}: the 8-bit state {name} holds {tuple(target.shape)} codes and "
                f"{tuple(maxima.shape)} block maxima, the new value needs {tuple(codes.shape)}"
            )
        maxima.copy_(absmax)
    else:
        codes = compact.round_stochastic(value, quantization.stream_key(state["seed"], t, field))
        target = state[name]
        if target.shape != codes.shape:
            raise RuntimeError(
                f"{spec.name}: the state {name} has shape {tuple(target.shape)}, the new "
                f"value {tuple(codes.shape)}"
            )
    target.copy_(codes)
