"""DTensor parameters (FSDP2's ``fully_shard``, tensor parallelism): each rank steps its shard.

A DTensor is a wrapper: its ``data_ptr()`` is 0, and its arithmetic goes through DTensor's
dispatcher (which knows placements and communicates). For the rules this matters in two
ways:

* Elementwise rules (all but NormalizedGD) update each element from that element's
  parameter, gradient and state only. When a parameter, its gradient and its state tensors
  are DTensors on one mesh with the same placements (none of them ``Partial``), the step of
  the whole tensor is exactly the step of every rank's local shard. :func:`step` runs the
  chosen implementation (fused, foreach or per-tensor) on ``to_local()`` views, which share
  storage with the DTensors, so the updates land in place.
* Rules with group scalars (NormalizedGD's ‖g‖ over the whole group) must reduce over the
  *global* gradient, not the local shard. These run on the DTensors themselves with the
  per-tensor implementation: DTensor computes Σg² of a sharded gradient as a ``Partial``
  sum and all-reduces it across the mesh before the square root. With the fused
  implementation this is a fallback, counted in ``Optimizer.fallbacks``.

Anything else (a DTensor whose gradient or state has other placements) also goes through the
per-tensor implementation on the DTensors, which is correct for any placements.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from ...rules import Hyperparameters, Spec
from ..state import put
from ..storage import State
from . import per_tensor


def _dtensor_type() -> Any:
    if not torch.distributed.is_available():
        return None
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover - torch builds without DTensor
        return None
    return DTensor


def any_dtensor(params: Sequence[torch.Tensor]) -> bool:
    """Whether any of ``params`` is a DTensor."""
    dtensor = _dtensor_type()
    return dtensor is not None and any(isinstance(p, dtensor) for p in params)


def _same_layout(p: Any, x: Any, dtensor: Any) -> bool:
    return (
        isinstance(x, dtensor) and x.device_mesh == p.device_mesh and x.placements == p.placements
    )


def _local_fits(p: Any, g: Any, state: State, dtensor: Any) -> bool:
    """Whether p's step is exactly the step of its local shard (elementwise rules only)."""
    if not isinstance(p, dtensor):
        return not isinstance(g, dtensor)  # a plain tensor is its own local part
    if any(placement.is_partial() for placement in p.placements) or not _same_layout(p, g, dtensor):
        return False
    return all(_same_layout(p, v, dtensor) for v in state.values() if isinstance(v, torch.Tensor))


def _local(x: Any, dtensor: Any) -> Any:
    return x.to_local() if isinstance(x, dtensor) else x  # no_grad: the shard itself


def step(
    engine: Callable[..., None],
    spec: Spec,
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    states: Sequence[State],
    hp: Hyperparameters,
    fallback: Callable[[int], None],
) -> None:
    """One step of a group holding DTensors; ``fallback(n)`` is told of tensor-steps that
    ran on the DTensors with the per-tensor implementation instead of ``engine``."""
    dtensor = _dtensor_type()
    assert dtensor is not None
    if spec.group_scalars is not None:
        # the group's reduction must span every rank's shard: DTensor arithmetic does that
        if engine is not per_tensor.step:
            fallback(len(params))
        per_tensor.step(spec, params, grads, states, hp)
        return
    local: list[int] = []
    rest: list[int] = []
    for i, (p, g) in enumerate(zip(params, grads, strict=True)):
        (local if _local_fits(p, g, states[i], dtensor) else rest).append(i)
    if rest:
        if engine is not per_tensor.step:
            fallback(len(rest))
        per_tensor.step(
            spec, [params[i] for i in rest], [grads[i] for i in rest], [states[i] for i in rest], hp
        )
    if not local:
        return
    originals = [states[i] for i in local]
    # Plain dicts of local views: tensors are updated in place (sharing the DTensors'
    # storage); the scalars an engine writes (step, NAdam's μ-product) are copied back.
    # A plain list has no change counter, so the fused engine re-plans every step.
    views = [{k: _local(v, dtensor) for k, v in s.items()} for s in originals]
    engine(
        spec,
        [_local(params[i], dtensor) for i in local],
        [_local(grads[i], dtensor) for i in local],
        views,
        hp,
    )
    for original, view in zip(originals, views, strict=True):
        for name, value in view.items():
            if not isinstance(value, torch.Tensor):
                put(original, name, value)
