"""What a step checks before anything changes: gradients it cannot honour (sparse ones a
rule does not take) and non-finite gradients under the optimizer's ``nonfinite`` policy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .. import quantization
from ..rules import Spec
from . import storage

Work = list[tuple[dict[str, Any], list[torch.Tensor], list[torch.Tensor]]]
"""A step's (group, params, grads) triples, for parameters that have a gradient."""

NONFINITE_POLICIES = ("ignore", "skip", "raise")
"""``ignore``: apply the rule whatever the gradients hold (torch.optim's behaviour);
``skip``: a step whose gradients hold any NaN/Inf changes no parameter, no state and no step
count, in any group, and is counted in ``skipped_steps``; ``raise``: FloatingPointError
naming the parameter, before anything changes. With the Triton engine both are decided on
the device: the skipped step is counted there, and ``raise`` raises at the next ``step()``
(that step changed nothing; the host never saw which parameter it was)."""


def check_nonfinite(owner: str, nonfinite: Any) -> str:
    if nonfinite not in NONFINITE_POLICIES:
        raise ValueError(
            f"{owner}: invalid nonfinite={nonfinite!r}; valid: "
            f"{', '.join(repr(p) for p in NONFINITE_POLICIES)}"
        )
    return str(nonfinite)


def position(group: dict[str, Any], p: torch.Tensor) -> int:
    """Index of ``p`` in its group, for error messages (by identity, not tensor ==)."""
    return next(i for i, q in enumerate(group["params"]) if q is p)


def check_sparse(spec: Spec, work: Work, states: Mapping[Any, Any]) -> None:
    """Raise before any tensor changes if a sparse gradient cannot be honoured (``states``:
    the optimizer's, whose format decides for a parameter that already has one)."""
    for i, (group, params, grads) in enumerate(work):
        for p, g in zip(params, grads, strict=True):
            if not g.is_sparse:
                continue
            j = position(group, p)
            if not spec.sparse:
                raise RuntimeError(
                    f"{spec.name} does not support sparse gradients (param {j} of "
                    f"group {i}, shape {tuple(p.shape)}); SGD and Adagrad do, or use "
                    "nn.Embedding(sparse=False)"
                )
            state = states.get(p)
            kept = (
                storage.format_of(spec, state)
                if state
                else storage.state_format(
                    p,
                    group.get("state_dtype"),
                    group.get("min_compact_size", quantization.MIN_ELEMENTS),
                )
            )
            if kept in storage.COMPACT and spec.state_fields:
                raise RuntimeError(
                    f"{spec.name}: sparse gradients are not supported with "
                    f"state_dtype={group['state_dtype']!r} (param {j} of group {i}, shape "
                    f"{tuple(p.shape)}, state format {kept!r}): re-encoding a block changes "
                    "rows without gradient; valid: state_dtype=None or torch.float32"
                )
            if group["weight_decay"] != 0:
                raise RuntimeError(
                    f"{spec.name}: weight_decay={group['weight_decay']} is not "
                    f"supported with sparse gradients (param {j} of group {i}); valid: 0"
                )


def _values(grads: list[torch.Tensor]) -> list[torch.Tensor]:
    return [g.coalesce().values() if g.is_sparse else g for g in grads]


def _bad(values: list[torch.Tensor]) -> torch.Tensor:
    """Per tensor, whether it holds NaN/Inf, as a device tensor: the largest |v| is finite
    exactly when every element is (a 2-norm could overflow)."""
    largest = torch._foreach_norm(values, ord=float("inf"))
    return ~torch.stack([m.float() for m in largest]).isfinite()


def nonfinite_flags(work: Work) -> dict[torch.device, torch.Tensor]:
    """Per device, a bool scalar that is True where any gradient there holds NaN/Inf,
    computed on the device: nothing is read back, so the step does not wait for it."""
    flags: dict[torch.device, torch.Tensor] = {}
    by_device: dict[torch.device, list[torch.Tensor]] = {}
    for _, _, grads in work:
        for v in _values(grads):
            if v.numel():
                by_device.setdefault(v.device, []).append(v)
    for device, values in by_device.items():
        flags[device] = _bad(values).any()
    return flags


def all_finite(spec: Spec, nonfinite: str, work: Work) -> bool:
    """Whether every gradient is finite; under "raise", name the first that is not."""
    for i, (group, params, grads) in enumerate(work):
        pairs = [(p, v) for p, v in zip(params, _values(grads), strict=True) if v.numel()]
        if not pairs:
            continue
        bad = _bad([v for _, v in pairs])
        if not bool(bad.any()):
            continue
        if nonfinite == "raise":
            p, values = pairs[int(bad.nonzero()[0])]
            j = position(group, p)
            raise FloatingPointError(
                f"{spec.name}: the gradient of param {j} of group {i} (shape "
                f"{tuple(p.shape)}) holds {int((~values.isfinite()).sum())} NaN/Inf "
                "value(s); nothing was changed. nonfinite='skip' skips such steps"
            )
        return False
    return True
