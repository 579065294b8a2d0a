"""The registry: one :class:`Spec` per optimizer drives the classes, tests, docs and lab.

A spec names the rule function and its state initializer, the seed's default
hyperparameters with their checks, the published variant it is, how the popular libraries
reproduce it, and its place in the seed's family tree (parents, and whether it changes the
step's direction, its size, or both).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, get_type_hints

import numpy as np

from . import adadelta, adagrad, adam, momentum, nadam, nag, normalized, rmsprop, sgd
from .common import EPS_MODES
from .validation import DECAY, NON_NEGATIVE, Check, Flag, OneOf, OrNone, validate

COMMON_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {"weight_decay": 0.0, "decoupled_weight_decay": False, "maximize": False}
)
"""Hyperparameters every optimizer takes, applied by :mod:`ravine.rules.step`."""

COMMON_CHECKS: Mapping[str, Check] = MappingProxyType(
    {
        "lr": NON_NEGATIVE,
        "weight_decay": NON_NEGATIVE,
        "decoupled_weight_decay": Flag(),
        "maximize": Flag(),
    }
)

ARGUMENT_DOCS: Mapping[str, str] = MappingProxyType(
    {
        "lr": "learning rate α",
        "beta": "momentum decay β",
        "gamma": "second-moment decay γ",
        "eps": "ε, guards the division",
        "eps_mode": "where ε sits: 'inside' √(G + ε) (the seed), 'outside' √G + ε (torch)",
        "ema": "True: m ← β·m + (1 − β)·g (the seed); False: m ← β·m + g (torch)",
        "lookahead": "'step': gradient at θ − lr·m (the seed); 'momentum': at θ − β·lr·m "
        "(Sutskever, torch)",
        "initial_accumulator_value": "the value G starts from (TF/Keras/optax use 0.1)",
        "lr_decay": "torch's Adagrad decay: the step is divided by 1 + (t − 1)·lr_decay",
        "momentum_decay": "None: constant μ = β; ψ: Dozat's schedule μ_t = β(1 − ½·0.96^(tψ))",
        "bias_correction": "False: m and G undivided by 1 − βᵗ, 1 − γᵗ (Kingma & Ba's ablation)",
        "weight_decay": "λ; L2 (g ← g + λ·θ) unless decoupled_weight_decay",
        "decoupled_weight_decay": "True: θ ← θ − lr·λ·θ before the step (AdamW style)",
        "maximize": "ascend the objective instead of descending it",
    }
)


Hyperparameters = Mapping[str, Any]
"""One param group's checked hyperparameters by name: ``lr``, the rule's own (``beta``,
``gamma``, ``eps``, …) and the options every rule takes (``weight_decay``, ``maximize``,
…); values are Python numbers, bools or option strings (under ``ravine.jax`` with
``optax.inject_hyperparams``, numbers may arrive as JAX arrays, traced ones included)."""


@dataclass(frozen=True)
class Spec:
    """Everything the front-ends and the lab need to know about one optimizer."""

    name: str
    rule: Callable[..., tuple[Any, Any]]
    init: Callable[..., Any]
    defaults: Mapping[str, Any]
    """The rule's hyperparameters and lr, with the seed's defaults (common ones added)."""
    checks: Mapping[str, Check]
    variant: str
    """Which published algorithm, in which form."""
    family: str
    """'baseline', 'direction', 'step size', 'direction + step size' or 'fixed stride'."""
    parents: tuple[str, ...]
    conventions: Mapping[str, str]
    """How torch.optim, optax and Keras relate (documented; torch's claims are tested)."""
    sparse: bool = False
    """Whether sparse gradients are exact: rows without gradient keep state and value."""
    offset: Callable[[Any], Any] | None = None
    """Look-ahead rules: θ − (stored parameters), from the state."""
    group_scalars: Callable[..., dict[str, Any]] | None = None
    """Reductions over every gradient of a param group, computed before the rule."""
    nonnegative: tuple[str, ...] = ()
    """Array state that is never negative (sums and averages of squares): a compact
    storage format gives it an unsigned code (see :mod:`ravine.quantization`)."""
    rule_args: tuple[str, ...] = field(init=False)
    init_args: tuple[str, ...] = field(init=False)
    state_type: type = field(init=False)
    """The rule's state NamedTuple (its fields are the per-parameter state names)."""
    scalar_state: tuple[str, ...] = field(init=False)
    """State fields that are one number per parameter, not an array (NAG's shift, NAdam's
    μ-product)."""

    def __post_init__(self) -> None:
        merged = {**self.defaults, **COMMON_DEFAULTS}
        object.__setattr__(self, "defaults", MappingProxyType(merged))
        object.__setattr__(self, "checks", MappingProxyType({**COMMON_CHECKS, **self.checks}))
        # The rule's other keywords are t and, for group rules, the group scalars.
        rule_keywords = _keywords(self.rule)
        object.__setattr__(self, "rule_args", tuple(a for a in rule_keywords if a in merged))
        object.__setattr__(self, "init_args", _keywords(self.init))
        object.__setattr__(self, "state_type", get_type_hints(self.init)["return"])
        probe = self.init(np.zeros(1), **{k: merged[k] for k in self.init_args})
        scalars = tuple(f for f, v in probe._asdict().items() if not isinstance(v, np.ndarray))
        object.__setattr__(self, "scalar_state", scalars)
        extra = set(rule_keywords) - set(self.rule_args) - {"t"}
        if (extra and self.group_scalars is None) or set(merged) != set(self.checks):
            raise AssertionError(f"{self.name}: defaults, checks and rule keywords disagree")

    def validate(self, hparams: Mapping[str, Any]) -> dict[str, Any]:
        """Checked copy of ``hparams`` (any subset of :attr:`defaults`)."""
        return validate(self.name, self.checks, hparams)

    @property
    def state_fields(self) -> tuple[str, ...]:
        """Names of the state the rule keeps per parameter (besides the step count)."""
        return tuple(self.state_type._fields)  # type: ignore[attr-defined]


def _keywords(fn: Callable[..., Any]) -> tuple[str, ...]:
    return tuple(
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    )


_TORCH = "torch.optim"
SGD = Spec(
    name="SGD",
    rule=sgd.sgd,
    init=sgd.init,
    defaults={"lr": 1e-3},
    checks={},
    variant="mini-batch stochastic gradient descent (Robbins & Monro 1951)",
    family="baseline",
    parents=(),
    conventions={
        "torch": "torch.optim.SGD(lr) — identical",
        "optax": "optax.sgd(lr) — identical",
        "keras": "keras.optimizers.SGD(lr) — identical",
    },
    sparse=True,
)
MOMENTUM = Spec(
    name="Momentum",
    rule=momentum.momentum,
    init=momentum.init,
    defaults={"lr": 1e-3, "beta": 0.9, "ema": True},
    checks={"beta": DECAY, "ema": Flag()},
    variant="heavy-ball momentum (Polyak 1964) in exponential-average form",
    family="direction",
    parents=("SGD",),
    conventions={
        "torch": "torch.optim.SGD(lr, momentum=β) = Momentum(lr, beta=β, ema=False); "
        "the seed's form equals SGD(lr·(1−β), momentum=β)",
        "optax": "optax.sgd(lr, momentum=β) = Momentum(lr, beta=β, ema=False)",
        "keras": "keras SGD(lr, momentum=β) (v ← βv − lr·g) takes the same steps as "
        "Momentum(lr, beta=β, ema=False) for a constant lr",
    },
)
NAG = Spec(
    name="NAG",
    rule=nag.nag,
    init=nag.init,
    defaults={"lr": 1e-3, "beta": 0.9, "ema": True, "lookahead": "step"},
    checks={"beta": DECAY, "ema": Flag(), "lookahead": OneOf(nag.LOOKAHEADS)},
    variant="Nesterov accelerated gradient with the seed's look-ahead θ − lr·m",
    family="direction",
    parents=("Momentum",),
    conventions={
        "torch": "torch.optim.SGD(lr, momentum=β, nesterov=True) = "
        "NAG(lr, beta=β, ema=False, lookahead='momentum') for a constant lr (when lr changes, "
        "torch re-places the look-ahead with the new lr; see below)",
        "optax": "optax.sgd(lr, momentum=β, nesterov=True) = "
        "NAG(lr, beta=β, ema=False, lookahead='momentum') for a constant lr",
        "keras": "keras SGD(lr, momentum=β, nesterov=True) takes the same steps as "
        "NAG(lr, beta=β, ema=False, lookahead='momentum') for a constant lr",
    },
    offset=nag.offset,
)
NORMALIZED_GD = Spec(
    name="NormalizedGD",
    rule=normalized.normalized,
    init=normalized.init,
    defaults={"lr": 1e-3, "eps": 0.0},
    checks={"eps": NON_NEGATIVE},
    variant="normalized gradient descent, ‖g‖ over the whole param group",
    family="fixed stride",
    parents=("SGD",),
    conventions={
        "torch": "no torch.optim counterpart",
        "optax": "optax.chain(optax.normalize_by_update_norm(), optax.sgd(lr)) = "
        "NormalizedGD(lr, eps=1e-6) (optax's norm is global over all parameters)",
        "keras": "no Keras counterpart",
    },
    group_scalars=normalized.group_scalars,
)
ADAGRAD = Spec(
    name="Adagrad",
    rule=adagrad.adagrad,
    init=adagrad.init,
    defaults={
        "lr": 1e-2,
        "eps": 1e-8,
        "eps_mode": "inside",
        "initial_accumulator_value": 0.0,
        "lr_decay": 0.0,
    },
    checks={
        "eps": NON_NEGATIVE,
        "eps_mode": OneOf(EPS_MODES),
        "initial_accumulator_value": NON_NEGATIVE,
        "lr_decay": NON_NEGATIVE,
    },
    variant="Adagrad (Duchi et al. 2011), diagonal, ε inside the root, G from 0",
    family="step size",
    parents=("SGD",),
    conventions={
        "torch": "torch.optim.Adagrad(lr, eps=ε) = Adagrad(lr, eps=ε, eps_mode='outside') "
        "(torch: ε=1e-10; lr_decay and initial_accumulator_value carry over)",
        "optax": "optax.adagrad(lr, eps=ε) = Adagrad(lr, eps=ε, initial_accumulator_value=0.1) "
        "(optax also skips coordinates whose G is 0)",
        "keras": "keras Adagrad(lr, epsilon=ε) = Adagrad(lr, eps=ε, initial_accumulator_value=0.1)",
    },
    sparse=True,
    nonnegative=("G",),
)
RMSPROP = Spec(
    name="RMSProp",
    rule=rmsprop.rmsprop,
    init=rmsprop.init,
    defaults={"lr": 1e-3, "gamma": 0.9, "eps": 1e-8, "eps_mode": "inside"},
    checks={"gamma": DECAY, "eps": NON_NEGATIVE, "eps_mode": OneOf(EPS_MODES)},
    variant="RMSProp (Tieleman & Hinton 2012), ε inside the root, uncentered, no momentum",
    family="step size",
    parents=("Adagrad",),
    conventions={
        "torch": "torch.optim.RMSprop(lr, alpha=γ, eps=ε) = "
        "RMSProp(lr, gamma=γ, eps=ε, eps_mode='outside') (torch: γ=0.99)",
        "optax": "optax.rmsprop(lr, decay=γ, eps=ε) = RMSProp(lr, gamma=γ, eps=ε) "
        "(optax's default eps_in_sqrt=True)",
        "keras": "keras RMSprop(lr, rho=γ, epsilon=ε) = RMSProp(lr, gamma=γ, eps=ε)",
    },
    nonnegative=("G",),
)
ADADELTA = Spec(
    name="AdaDelta",
    rule=adadelta.adadelta,
    init=adadelta.init,
    defaults={"lr": 1.0, "gamma": 0.95, "eps": 1e-6},
    checks={"gamma": DECAY, "eps": NON_NEGATIVE},
    variant="AdaDelta (Zeiler 2012), no learning rate (lr = 1)",
    family="step size",
    parents=("RMSProp",),
    conventions={
        "torch": "torch.optim.Adadelta(lr, rho=γ, eps=ε) = AdaDelta(lr, gamma=γ, eps=ε) "
        "(torch: γ=0.9)",
        "optax": "optax.adadelta(learning_rate=lr, rho=γ, eps=ε) = AdaDelta(lr, gamma=γ, eps=ε) "
        "(learning_rate=None there ascends: it skips the sign flip)",
        "keras": "keras Adadelta(learning_rate=1.0, rho=γ, epsilon=ε) = "
        "AdaDelta(gamma=γ, eps=ε) (Keras' default lr=0.001 barely moves)",
    },
    nonnegative=("G", "s"),
)
ADAM = Spec(
    name="Adam",
    rule=adam.adam,
    init=adam.init,
    defaults={
        "lr": 1e-3,
        "beta": 0.9,
        "gamma": 0.999,
        "eps": 1e-8,
        "eps_mode": "inside",
        "bias_correction": True,
    },
    checks={
        "beta": DECAY,
        "gamma": DECAY,
        "eps": NON_NEGATIVE,
        "eps_mode": OneOf(adam.ADAM_EPS_MODES),
        "bias_correction": Flag(),
    },
    variant="Adam (Kingma & Ba 2014), ε inside the root of the debiased G",
    family="direction + step size",
    parents=("RMSProp", "Momentum"),
    conventions={
        "torch": "torch.optim.Adam(lr, betas=(β, γ), eps=ε) = "
        "Adam(lr, beta=β, gamma=γ, eps=ε, eps_mode='outside'); AdamW(…, weight_decay=λ) "
        "adds decoupled_weight_decay=True, weight_decay=λ",
        "optax": "optax.adam(lr, b1=β, b2=γ, eps=0, eps_root=ε) = Adam(lr, …); "
        "optax.adam(lr, eps=ε) = Adam(…, eps_mode='outside')",
        "keras": "keras Adam(lr, beta_1=β, beta_2=γ, epsilon=ε) = Adam(…, eps_mode='hat')",
    },
    nonnegative=("G",),
)
NADAM = Spec(
    name="NAdam",
    rule=nadam.nadam,
    init=nadam.init,
    defaults={
        "lr": 2e-3,
        "beta": 0.9,
        "gamma": 0.999,
        "eps": 1e-8,
        "eps_mode": "inside",
        "momentum_decay": None,
    },
    checks={
        "beta": DECAY,
        "gamma": DECAY,
        "eps": NON_NEGATIVE,
        "eps_mode": OneOf(EPS_MODES),
        "momentum_decay": OrNone(NON_NEGATIVE),
    },
    variant="NAdam (Dozat 2016) with constant μ = β, ε inside the root",
    family="direction + step size",
    parents=("Adam", "NAG"),
    conventions={
        "torch": "torch.optim.NAdam(lr, betas=(β, γ), eps=ε, momentum_decay=ψ) = "
        "NAdam(lr, beta=β, gamma=γ, eps=ε, eps_mode='outside', momentum_decay=ψ)",
        "optax": "optax.nadam(lr, b1=β, b2=γ, eps=0, eps_root=ε) = NAdam(lr, …)",
        "keras": "keras Nadam warms μ up as β(1 − ½·0.96ᵗ) (torch's schedule with ψ = 1) and "
        "puts ε outside: NAdam(…, eps_mode='outside', momentum_decay=1.0) (not tested)",
    },
    nonnegative=("G",),
)

SPECS: tuple[Spec, ...] = (
    SGD,
    MOMENTUM,
    NAG,
    NORMALIZED_GD,
    ADAGRAD,
    RMSPROP,
    ADADELTA,
    ADAM,
    NADAM,
)
"""Every optimizer, in the seed's order."""

BY_NAME: Mapping[str, Spec] = MappingProxyType({s.name: s for s in SPECS})


def get(name: str) -> Spec:
    """The spec called ``name`` (case-insensitive)."""
    for spec in SPECS:
        if spec.name.lower() == name.lower():
            return spec
    raise KeyError(f"unknown optimizer {name!r}; valid: {', '.join(BY_NAME)}")
