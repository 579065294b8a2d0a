"""Checkpoints that either load exactly or fail clearly, leaving the optimizer untouched.

``state_dict()`` is torch.optim's format plus a ``"ravine"`` entry (format version and
optimizer name); it holds only tensors and plain Python values, so it loads with
``torch.load(..., weights_only=True)``. Before anything is loaded, :func:`check` verifies
that the state fits this optimizer: same optimizer, group and parameter counts, parameter
names (where both sides have them, so a changed order is caught instead of silently
misassigned), valid hyperparameters, and per parameter exactly the rule's state keys with
the right shapes. :func:`save` writes atomically (a crash mid-write keeps the previous
file); :func:`load` turns a truncated or corrupted file into one clear error.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from numbers import Real
from pathlib import Path
from typing import Any, Protocol

import torch

from ..rules import SPECS, Spec
from . import engines, storage


class Optimizer(Protocol):
    """What the checks read of an optimizer (a ravine.torch optimizer has it)."""

    @property
    def spec(self) -> Spec: ...

    param_groups: list[dict[str, Any]]


FORMAT = 1
"""Version of the ``"ravine"`` entry; bumped when the layout of a state dict changes."""

TORCH_STATE_KEYS = frozenset(
    {"momentum_buffer", "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "square_avg", "sum",
     "acc_delta", "mu_product", "grad_avg"}
)  # fmt: skip
"""Per-parameter keys of torch.optim's optimizers: their state needs converting first."""

TORCH_GROUP_KEYS = frozenset(
    {"momentum", "dampening", "nesterov", "betas", "amsgrad", "alpha", "centered", "rho",
     "lr_decay", "initial_accumulator_value", "momentum_decay"}
)  # fmt: skip
"""Hyperparameters of torch.optim's param groups (not ``differentiable``: torch's base class
adds it to any optimizer's groups, ravine's included)."""

HYPERPARAMETERS = TORCH_GROUP_KEYS | {name for spec in SPECS for name in spec.defaults}
"""Every hyperparameter name of torch.optim's and ravine's optimizers."""


def foreign_hyperparameters(spec: Spec, keys: Iterable[str]) -> list[str]:
    """The names among ``keys`` that are another optimizer's hyperparameters (torch.optim's
    or another ravine rule's) and not ``spec``'s: a group holding them would be ignored,
    and a saved group holding them was saved by another optimizer."""
    return sorted(set(keys) & (HYPERPARAMETERS - spec.defaults.keys()))


class CheckpointError(ValueError):
    """A state dict or file that does not fit the optimizer it is loaded into."""


def metadata(optimizer: Optimizer) -> dict[str, Any]:
    return {"format": FORMAT, "optimizer": optimizer.spec.name}


def check(optimizer: Optimizer, state_dict: Any) -> None:
    """Raise :class:`CheckpointError` unless ``state_dict`` fits ``optimizer`` exactly."""
    name = optimizer.spec.name
    if not isinstance(state_dict, Mapping) or not {"state", "param_groups"} <= state_dict.keys():
        keys = sorted(map(str, state_dict)) if isinstance(state_dict, Mapping) else "none"
        raise CheckpointError(
            f"{name}: a state dict must be a mapping with 'state' and 'param_groups'; got "
            f"{type(state_dict).__name__} with keys {keys}"
        )
    meta = state_dict.get("ravine")
    if meta is not None:
        if not isinstance(meta, Mapping) or not _is(meta.get("format"), int, FORMAT):
            raise CheckpointError(f"{name}: unknown checkpoint format {meta!r}; reads {FORMAT}")
        if not _is(meta.get("optimizer"), str, name):
            raise CheckpointError(
                f"{name}: this is the state of a {meta.get('optimizer')!r} optimizer; load it "
                "into that ravine.torch optimizer"
            )
    # what identifies the saving optimizer: the entry, or per-parameter state (whose keys
    # are checked below); torch.distributed.checkpoint drops the entry, but steps first
    saved_state = state_dict["state"]
    stepped = isinstance(saved_state, Mapping) and any(
        isinstance(entry, Mapping) and entry for entry in saved_state.values()
    )
    params = _check_groups(optimizer, state_dict["param_groups"], meta is not None or stepped)
    _check_state(optimizer, state_dict["state"], params)


def _is(value: Any, kind: type, expected: Any) -> bool:
    """``value == expected`` for a value of the right type (a tensor never compares)."""
    return type(value) is kind and value == expected


def _check_groups(
    optimizer: Optimizer, saved: Any, identified: bool
) -> dict[int | str, torch.Tensor]:
    """Check the saved groups; return their parameter ids mapped to this optimizer's
    tensors (the mapping torch's ``load_state_dict`` will use). No group may hold another
    optimizer's hyperparameter (it would be ignored). ``identified``: the state says which
    optimizer saved it (the ``"ravine"`` entry, or per-parameter state), so a
    hyperparameter it lacks is one added since (it loads with its default); otherwise the
    groups are all there is, and they must hold every one of the rule's."""
    name, groups = optimizer.spec.name, optimizer.param_groups
    if not isinstance(saved, list) or not all(isinstance(g, Mapping) for g in saved):
        raise CheckpointError(f"{name}: 'param_groups' must be a list of dicts")
    if len(saved) != len(groups):
        raise CheckpointError(
            f"{name}: the state has {len(saved)} param groups, the optimizer {len(groups)}"
        )
    ids: dict[int | str, torch.Tensor] = {}
    for i, (group, old) in enumerate(zip(groups, saved, strict=True)):
        where = f"{name}: param group {i} of the state"
        params = old.get("params")
        # ids are ints, or parameter names (FQNs) where torch.distributed.checkpoint's
        # set_optimizer_state_dict loads; torch.optim maps either by position
        if not isinstance(params, list) or not (
            all(type(k) is int for k in params) or all(type(k) is str for k in params)
        ):
            raise CheckpointError(
                f"{where} has no list of parameter ids (ints, or names as "
                f"torch.distributed.checkpoint writes); got {params!r}"
            )
        if len(params) != len(group["params"]):
            raise CheckpointError(
                f"{where} has {len(params)} parameters, the optimizer's {len(group['params'])}"
            )
        ids.update(zip(params, group["params"], strict=True))
        names_now, names_saved = group.get("param_names"), old.get("param_names")
        if names_saved is not None and not (
            isinstance(names_saved, list) and all(isinstance(n, str) for n in names_saved)
        ):
            raise CheckpointError(f"{where}: param_names must be a list of strings")
        if names_now is not None and names_saved is not None and list(names_now) != names_saved:
            raise CheckpointError(
                f"{where} was saved for parameters {names_saved} but the optimizer holds "
                f"{list(names_now)}; the order or the model changed"
            )
        _check_hyperparameters(optimizer, old, where, identified)
    if len(ids) != sum(len(g["params"]) for g in groups):
        raise CheckpointError(f"{name}: the state's parameter ids repeat")
    return ids


def _check_hyperparameters(
    optimizer: Optimizer, old: Mapping[str, Any], where: str, identified: bool
) -> None:
    """One saved group's hyperparameters and implementation flags (see _check_groups)."""
    spec = optimizer.spec
    foreign = foreign_hyperparameters(spec, old.keys())
    missing = [] if identified else [k for k in spec.defaults if k not in old]
    if foreign or missing:
        problems = [f"has {foreign}, which {spec.name} does not take"] if foreign else []
        problems += [f"lacks {missing}"] if missing else []
        raise CheckpointError(
            f"{where} {'' if identified else 'names no optimizer and '}"
            f"{' and '.join(problems)}: another optimizer saved it (a torch.optim state "
            "converts with ravine.torch.from_torch(that_optimizer))"
        )
    try:  # as the constructor checks them
        engines.check_implementation(
            where, old.get("foreach"), old.get("fused"), getattr(optimizer, "reduce_group", None)
        )
    except (TypeError, ValueError) as error:
        raise CheckpointError(str(error)) from error
    try:
        spec.validate({k: v for k, v in old.items() if k in spec.checks})
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{where}: {error}") from error


def _check_state(optimizer: Optimizer, saved: Any, params: dict[int | str, torch.Tensor]) -> None:
    spec, name = optimizer.spec, optimizer.spec.name
    if not isinstance(saved, Mapping):
        raise CheckpointError(f"{name}: 'state' must be a dict, got {type(saved).__name__}")
    for index, entry in saved.items():
        if type(index) not in (int, str) or index not in params:
            raise CheckpointError(f"{name}: state for parameter {index!r}, which no group lists")
        where = f"{name}: state of parameter {index}"
        if not isinstance(entry, Mapping):
            raise CheckpointError(f"{where} must be a dict, got {type(entry).__name__}")
        keys = set(map(str, entry))
        if not keys:
            continue  # a parameter that has not been stepped yet
        plain = storage.keys(spec, None)
        if keys & (TORCH_STATE_KEYS - plain):  # (NAdam's own mu_product is not torch's)
            raise CheckpointError(
                f"{where} has torch.optim's keys {sorted(keys)}: load it into the torch.optim "
                "optimizer it came from, then convert with ravine.torch.from_torch(that_optimizer)"
            )
        format_ = storage.saved_format(spec, entry)
        expected = storage.keys(spec, format_)
        if keys != expected and keys != expected - storage.optional_keys(spec, format_):
            in_format = f" in the {format_} format" if format_ else ""
            raise CheckpointError(
                f"{where} has keys {sorted(keys)}; {name} keeps {sorted(expected)}{in_format}"
            )
        _check_step(where, entry["step"])
        for field in spec.scalar_state:
            if not _finite_number(entry[field]):
                raise CheckpointError(
                    f"{where}: {field} must be a finite number, got {entry[field]!r}"
                )
        problem = storage.problem(spec, entry, params[index])
        if problem is not None:
            raise CheckpointError(f"{where}: {problem}")


def _finite_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, Real) and math.isfinite(value)


def _check_step(where: str, step: Any) -> None:
    if isinstance(step, torch.Tensor) and step.numel() == 1:
        step = step.item()  # torch.optim and old checkpoints keep the count in a tensor
    # NaN and ±inf are refused here too (round() would raise ValueError/OverflowError)
    if not _finite_number(step) or step < 0 or step != round(float(step)):
        raise CheckpointError(f"{where}: step must be a non-negative integer, got {step!r}")


def save(path: str | os.PathLike[str], obj: Any) -> None:
    """``torch.save`` to a temporary file, then rename: a crash never leaves half a file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            torch.save(obj, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load(path: str | os.PathLike[str]) -> Any:
    """``torch.load(path, weights_only=True)``, with a truncated or corrupted file reported as
    such (:class:`CheckpointError`)."""
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise
    except Exception as error:  # torch raises RuntimeError, pickle/EOF/zip errors alike
        reason = str(error) or type(error).__name__  # an empty file's EOFError says nothing
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or corrupted?): {reason}"
        ) from error
