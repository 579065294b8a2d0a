"""Switch a running job between torch.optim and ravine without losing its state.

    ravine_opt = ravine.torch.from_torch(torch_opt)   # same parameters, same moments
    torch_opt = ravine.torch.to_torch(ravine_opt)     # and back

Each direction builds the equivalent optimizer over the same parameters (the arguments of
``docs/conventions.md``) and moves the state across — moments, accumulators, step counts,
NAdam's μ-product — so the next step is the one the original would have taken. A
configuration with no equivalent on the other side raises ``ValueError`` naming what
differs (AMSGrad, centered or momentum RMSprop, SGD's dampening, ravine's seed forms).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..rules import nag
from . import storage
from .optimizer import Optimizer
from .optimizers import OPTIMIZERS

Group = dict[str, Any]


def _refuse(what: str, **differences: bool) -> None:
    found = [name for name, present in differences.items() if present]
    if found:
        raise ValueError(f"{what} has no equivalent on the other side: {', '.join(found)}")


def _common(g: Group) -> Group:
    return {"lr": float(g["lr"]), "weight_decay": g["weight_decay"], "maximize": g["maximize"]}


def _eps_outside(what: str, g: Group) -> None:
    _refuse(
        what, **{"eps_mode != 'outside' (torch adds ε to the root)": g["eps_mode"] != "outside"}
    )


def _coupled(what: str, g: Group) -> None:
    _refuse(what, decoupled_weight_decay=bool(g["decoupled_weight_decay"]))


# torch group → ravine group, and back, per torch.optim class --------------------------------


def _sgd_in(g: Group) -> Group:
    _refuse("torch SGD", dampening=g.get("dampening", 0) != 0)
    if g["nesterov"]:
        return {**_common(g), "beta": g["momentum"], "ema": False, "lookahead": "momentum"}
    return {**_common(g), "beta": g["momentum"], "ema": False}


def _sgd_out(g: Group) -> Group:
    _coupled("ravine SGD", g)
    if "beta" not in g:  # plain SGD
        return _common(g)
    _refuse("ravine momentum", **{"ema=True (the seed's (1 − β) form)": g["ema"]})
    nesterov = "lookahead" in g
    if nesterov:
        _refuse("ravine NAG", **{"lookahead='step' (the seed's)": g["lookahead"] != "momentum"})
    return {**_common(g), "momentum": g["beta"], "nesterov": nesterov, "dampening": 0}


def _adam_in(g: Group) -> Group:
    _refuse("torch Adam", amsgrad=bool(g.get("amsgrad")))
    beta, gamma = g["betas"]
    decoupled = bool(g.get("decoupled_weight_decay"))
    return {**_common(g), "beta": beta, "gamma": gamma, "eps": g["eps"], "eps_mode": "outside",
            "decoupled_weight_decay": decoupled}  # fmt: skip


def _adamw_in(g: Group) -> Group:
    return {**_adam_in(g), "decoupled_weight_decay": True}


def _adam_out(g: Group) -> Group:
    _eps_outside("ravine Adam", g)
    _refuse("ravine Adam", **{"bias_correction=False": not g["bias_correction"]})
    return {**_common(g), "betas": (g["beta"], g["gamma"]), "eps": g["eps"],
            "decoupled_weight_decay": g["decoupled_weight_decay"]}  # fmt: skip


def _adagrad_in(g: Group) -> Group:
    return {**_common(g), "eps": g["eps"], "eps_mode": "outside", "lr_decay": g["lr_decay"],
            "initial_accumulator_value": g["initial_accumulator_value"]}  # fmt: skip


def _adagrad_out(g: Group) -> Group:
    _eps_outside("ravine Adagrad", g)
    _coupled("ravine Adagrad", g)
    return {**_common(g), "eps": g["eps"], "lr_decay": g["lr_decay"],
            "initial_accumulator_value": g["initial_accumulator_value"]}  # fmt: skip


def _rmsprop_in(g: Group) -> Group:
    _refuse("torch RMSprop", centered=bool(g["centered"]), momentum=g["momentum"] != 0)
    return {**_common(g), "gamma": g["alpha"], "eps": g["eps"], "eps_mode": "outside"}


def _rmsprop_out(g: Group) -> Group:
    _eps_outside("ravine RMSProp", g)
    _coupled("ravine RMSProp", g)
    return {**_common(g), "alpha": g["gamma"], "eps": g["eps"]}


def _adadelta_in(g: Group) -> Group:
    return {**_common(g), "gamma": g["rho"], "eps": g["eps"]}


def _adadelta_out(g: Group) -> Group:
    _coupled("ravine AdaDelta", g)
    return {**_common(g), "rho": g["gamma"], "eps": g["eps"]}


def _nadam_in(g: Group) -> Group:
    beta, gamma = g["betas"]
    return {**_common(g), "beta": beta, "gamma": gamma, "eps": g["eps"], "eps_mode": "outside",
            "momentum_decay": g["momentum_decay"],
            "decoupled_weight_decay": bool(g.get("decoupled_weight_decay"))}  # fmt: skip


def _nadam_out(g: Group) -> Group:
    _eps_outside("ravine NAdam", g)
    _refuse("ravine NAdam", **{"momentum_decay=None (constant μ)": g["momentum_decay"] is None})
    return {**_common(g), "betas": (g["beta"], g["gamma"]), "eps": g["eps"],
            "momentum_decay": g["momentum_decay"],
            "decoupled_weight_decay": g["decoupled_weight_decay"]}  # fmt: skip


@dataclass(frozen=True)
class _Twin:
    """How one torch.optim class maps onto a ravine optimizer."""

    torch_name: str
    into: Callable[[Group], Group]
    back: Callable[[Group], Group]
    tensors: tuple[tuple[str, str], ...]
    """(torch key, ravine key) of the per-parameter state tensors."""


_MOMENTUM = (("momentum_buffer", "m"),)
_MOMENTS = (("exp_avg", "m"), ("exp_avg_sq", "G"))
TWINS: dict[str, _Twin] = {
    "SGD": _Twin("SGD", _common, _sgd_out, ()),
    "Momentum": _Twin("SGD", _sgd_in, _sgd_out, _MOMENTUM),
    "NAG": _Twin("SGD", _sgd_in, _sgd_out, _MOMENTUM),
    "Adagrad": _Twin("Adagrad", _adagrad_in, _adagrad_out, (("sum", "G"),)),
    "RMSProp": _Twin("RMSprop", _rmsprop_in, _rmsprop_out, (("square_avg", "G"),)),
    "AdaDelta": _Twin(
        "Adadelta", _adadelta_in, _adadelta_out, (("square_avg", "G"), ("acc_delta", "s"))
    ),
    "Adam": _Twin("Adam", _adam_in, _adam_out, _MOMENTS),
    "AdamW": _Twin("AdamW", _adamw_in, _adam_out, _MOMENTS),
    "NAdam": _Twin("NAdam", _nadam_in, _nadam_out, _MOMENTS),
}
"""ravine optimizer (or torch's AdamW) → its torch.optim twin."""


def _ravine_name(torch_opt: torch.optim.Optimizer) -> str:
    name = type(torch_opt).__name__
    if name == "SGD":
        groups = torch_opt.param_groups
        nesterov = [bool(g["nesterov"]) for g in groups]
        _refuse(
            "torch SGD", **{"nesterov in some groups only": any(nesterov) and not all(nesterov)}
        )
        if any(nesterov):
            return "NAG"
        if any(g["momentum"] != 0 for g in groups):
            return "Momentum"
        _refuse("torch SGD", dampening=any(g.get("dampening", 0) != 0 for g in groups))
        return "SGD"
    found = [r for r, twin in TWINS.items() if twin.torch_name == name]
    if not found:
        raise ValueError(f"no ravine equivalent of torch.optim.{name}; convertible: "
                         f"{sorted({t.torch_name for t in TWINS.values()})}")  # fmt: skip
    return found[0]


def from_torch(torch_opt: torch.optim.Optimizer, **implementation: Any) -> Optimizer:
    """The ravine optimizer that continues ``torch_opt`` exactly (same parameters, state moved).

    ``implementation`` passes ``foreach=``/``fused=``/``nonfinite=``/``state_dtype=`` to the
    new optimizer; under a compact ``state_dtype`` the moved state is encoded into it (with
    the rounding bounds of docs/state.md).
    """
    key = _ravine_name(torch_opt)
    twin = TWINS[key]
    groups = [{"params": g["params"], **twin.into(g)} for g in torch_opt.param_groups]
    ravine_opt = OPTIMIZERS["Adam" if key == "AdamW" else key](groups, **implementation)
    for group in ravine_opt.param_groups:
        for p in group["params"]:
            old = torch_opt.state.get(p)
            if old:
                state = _into_ravine(twin, ravine_opt.spec.name, old, p, group)
                kind, size = group["state_dtype"], group["min_compact_size"]
                seed = storage.rounding_seed(ravine_opt._position(p))
                ravine_opt.state[p] = storage.convert(ravine_opt.spec, state, p, kind, size, seed)
    return ravine_opt


def _number(value: Any) -> float:
    return float(value.item() if isinstance(value, torch.Tensor) else value)


def _into_ravine(
    twin: _Twin, name: str, old: dict[str, Any], p: torch.Tensor, group: Group
) -> dict[str, Any]:
    # torch's SGD keeps no step count; momentum never reads it, so it starts at 0
    new: dict[str, Any] = {"step": int(_number(old.get("step", 0)))}
    for torch_key, ravine_key in twin.tensors:
        new[ravine_key] = storage.real_view(old[torch_key].detach()).clone()
    if name == "NAG":  # torch's parameters sit at θ − β·lr·buf: lookahead="momentum"
        new["shift"] = nag.shift(group["lr"], group["beta"], "momentum")
    if name == "NAdam":
        new["mu_product"] = _number(old["mu_product"])
    return new


def to_torch(ravine_opt: Optimizer, **options: Any) -> torch.optim.Optimizer:
    """The torch.optim optimizer that continues ``ravine_opt`` exactly.

    ``options`` passes torch's own ``foreach=``/``fused=`` to the new optimizer. Compact
    state (``state_dtype=torch.bfloat16`` or ``"8bit"``) is decoded into the parameter's
    dtype, which is where torch.optim keeps its state.
    """
    name = ravine_opt.spec.name
    if name not in TWINS:
        raise ValueError(f"torch.optim has no equivalent of ravine's {name}")
    twin = TWINS[name]
    groups = [{"params": g["params"], **twin.back(g)} for g in ravine_opt.param_groups]
    if name == "Adam" and all(g["decoupled_weight_decay"] for g in groups):
        twin = TWINS["AdamW"]  # the same optimizer, under the name users know it by
        for g in groups:
            del g["decoupled_weight_decay"]
    torch_opt = getattr(torch.optim, twin.torch_name)(groups, **options)
    scalar_dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
    for group in ravine_opt.param_groups:
        for p in group["params"]:
            old = ravine_opt.state.get(p)
            if not old:
                continue
            new: dict[str, Any] = {}
            if twin.torch_name != "SGD":
                new["step"] = torch.tensor(float(old["step"]), dtype=scalar_dtype)
            for torch_key, ravine_key in twin.tensors:
                decoded = storage.decode(ravine_opt.spec, old, ravine_key)
                value = decoded.detach().to(storage.real_view(p).dtype, copy=True)
                new[torch_key] = torch.view_as_complex(value) if p.is_complex() else value
            if name == "NAdam":
                new["mu_product"] = torch.tensor(old["mu_product"], dtype=scalar_dtype)
            torch_opt.state[p] = new
    return torch_opt
