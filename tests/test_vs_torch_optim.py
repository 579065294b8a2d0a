"""ravine's documented torch conventions reproduce torch.optim step for step.

Each case trains two copies of one small float64 model on the same mini-batches, one with
a torch.optim optimizer (its default, for-loop implementation on CPU) and one with the
ravine arguments that the registry's ``conventions["torch"]`` say are equivalent, with
ravine in each of its implementations (per-tensor, foreach, fused).
After every step the parameters (and the loss before the step) must agree to a relative
error of 1e-10: max|a − b| / max(|b|, tiny) over all parameters, b being torch's.

``pytest -s`` prints the largest error each case reached over the whole run.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import torch

import ravine.torch as rt
from conftest import IMPLEMENTATIONS

STEPS = 60
TOLERANCE = 1e-10
TINY = torch.finfo(torch.float64).tiny
BATCH = 32

Scheduler = Callable[[torch.optim.Optimizer], Any]


def step_lr(opt: torch.optim.Optimizer) -> Any:
    return torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)


def exponential_lr(opt: torch.optim.Optimizer) -> Any:
    return torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.97)


@dataclass(frozen=True)
class Case:
    id: str
    ravine: type[torch.optim.Optimizer]
    ravine_kwargs: dict[str, Any]
    torch: type[torch.optim.Optimizer]
    torch_kwargs: dict[str, Any]
    second_group_lr: float | None = None
    """If set, the last layer is a second param group with this lr (both optimizers)."""
    scheduler: Scheduler | None = None
    """Built on each optimizer and stepped after each optimizer step."""


def _cases() -> list[Case]:
    wd = {"weight_decay": 1e-2}
    up = {"maximize": True}
    sgd = torch.optim.SGD

    def momentum(beta: float) -> dict[str, Any]:
        return {"beta": beta, "ema": False}

    def nag(beta: float) -> dict[str, Any]:
        return {"beta": beta, "ema": False, "lookahead": "momentum"}

    adagrad = {"eps": 1e-4, "eps_mode": "outside"}
    rms = {"gamma": 0.95, "eps": 1e-4, "eps_mode": "outside"}
    adam_r = {"beta": 0.8, "gamma": 0.99, "eps": 1e-4, "eps_mode": "outside"}
    adam_t = {"betas": (0.8, 0.99), "eps": 1e-4}
    adamw_r = {**adam_r, "weight_decay": 5e-2, "decoupled_weight_decay": True}
    adamw_t = {**adam_t, "weight_decay": 5e-2}
    nadam_r = {**adam_r, "momentum_decay": 4e-3}
    nadam_t = {**adam_t, "momentum_decay": 4e-3}
    return [
        # SGD
        Case("SGD", rt.SGD, {"lr": 0.1}, sgd, {"lr": 0.1}),
        Case("SGD-wd", rt.SGD, {"lr": 0.1, **wd}, sgd, {"lr": 0.1, **wd}),
        Case("SGD-maximize", rt.SGD, {"lr": 0.1, **up}, sgd, {"lr": 0.1, **up}),
        Case("SGD-groups", rt.SGD, {"lr": 0.1}, sgd, {"lr": 0.1}, second_group_lr=0.03),
        Case("SGD-steplr", rt.SGD, {"lr": 0.1}, sgd, {"lr": 0.1}, scheduler=step_lr),
        # SGD(momentum) = Momentum(ema=False)
        Case(
            "Momentum",
            rt.Momentum,
            {"lr": 0.05, **momentum(0.9)},
            sgd,
            {"lr": 0.05, "momentum": 0.9},
        ),
        Case(
            "Momentum-wd",
            rt.Momentum,
            {"lr": 0.05, **momentum(0.9), **wd},
            sgd,
            {"lr": 0.05, "momentum": 0.9, **wd},
        ),
        Case(
            "Momentum-maximize",
            rt.Momentum,
            {"lr": 0.05, **momentum(0.9), **up},
            sgd,
            {"lr": 0.05, "momentum": 0.9, **up},
        ),
        Case(
            "Momentum-groups",
            rt.Momentum,
            {"lr": 0.05, **momentum(0.8)},
            sgd,
            {"lr": 0.05, "momentum": 0.8},
            second_group_lr=0.01,
        ),
        Case(
            "Momentum-steplr",
            rt.Momentum,
            {"lr": 0.05, **momentum(0.9)},
            sgd,
            {"lr": 0.05, "momentum": 0.9},
            scheduler=step_lr,
        ),
        Case(
            "Momentum-explr-wd",
            rt.Momentum,
            {"lr": 0.05, **momentum(0.9), **wd},
            sgd,
            {"lr": 0.05, "momentum": 0.9, **wd},
            scheduler=exponential_lr,
        ),
        # SGD(momentum, nesterov=True) = NAG(ema=False, lookahead="momentum").
        # No scheduler case: with a changing lr the two differ (see
        # test_nag_departs_from_torch_when_lr_changes). ravine parks the parameters at
        # θ − β·lr_old·m and recovers θ with that same lr_old; torch's update
        # p ← p − lr·(g + β·m) implicitly assumes the look-ahead was placed with the
        # current lr, so each lr change adds β·(lr_old − lr)·m_old to ravine's step.
        Case(
            "NAG",
            rt.NAG,
            {"lr": 0.05, **nag(0.9)},
            sgd,
            {"lr": 0.05, "momentum": 0.9, "nesterov": True},
        ),
        Case(
            "NAG-wd",
            rt.NAG,
            {"lr": 0.05, **nag(0.9), **wd},
            sgd,
            {"lr": 0.05, "momentum": 0.9, "nesterov": True, **wd},
        ),
        Case(
            "NAG-maximize",
            rt.NAG,
            {"lr": 0.05, **nag(0.9), **up},
            sgd,
            {"lr": 0.05, "momentum": 0.9, "nesterov": True, **up},
        ),
        Case(
            "NAG-groups",
            rt.NAG,
            {"lr": 0.05, **nag(0.8)},
            sgd,
            {"lr": 0.05, "momentum": 0.8, "nesterov": True},
            second_group_lr=0.01,
        ),
        # Adagrad
        Case(
            "Adagrad",
            rt.Adagrad,
            {"lr": 0.05, **adagrad},
            torch.optim.Adagrad,
            {"lr": 0.05, "eps": 1e-4},
        ),
        Case(
            "Adagrad-torch-eps",
            rt.Adagrad,
            {"lr": 0.05, "eps": 1e-10, "eps_mode": "outside"},
            torch.optim.Adagrad,
            {"lr": 0.05},
        ),
        Case(
            "Adagrad-lr_decay-init_acc",
            rt.Adagrad,
            {"lr": 0.05, **adagrad, "lr_decay": 0.05, "initial_accumulator_value": 0.1},
            torch.optim.Adagrad,
            {"lr": 0.05, "eps": 1e-4, "lr_decay": 0.05, "initial_accumulator_value": 0.1},
        ),
        Case(
            "Adagrad-wd",
            rt.Adagrad,
            {"lr": 0.05, **adagrad, **wd},
            torch.optim.Adagrad,
            {"lr": 0.05, "eps": 1e-4, **wd},
        ),
        Case(
            "Adagrad-maximize",
            rt.Adagrad,
            {"lr": 0.05, **adagrad, **up},
            torch.optim.Adagrad,
            {"lr": 0.05, "eps": 1e-4, **up},
        ),
        Case(
            "Adagrad-groups-steplr",
            rt.Adagrad,
            {"lr": 0.05, **adagrad, "lr_decay": 0.01},
            torch.optim.Adagrad,
            {"lr": 0.05, "eps": 1e-4, "lr_decay": 0.01},
            second_group_lr=0.02,
            scheduler=step_lr,
        ),
        # RMSprop
        Case(
            "RMSProp",
            rt.RMSProp,
            {"lr": 0.01, **rms},
            torch.optim.RMSprop,
            {"lr": 0.01, "alpha": 0.95, "eps": 1e-4},
        ),
        Case(
            "RMSProp-wd-maximize",
            rt.RMSProp,
            {"lr": 0.01, **rms, **wd, **up},
            torch.optim.RMSprop,
            {"lr": 0.01, "alpha": 0.95, "eps": 1e-4, **wd, **up},
        ),
        Case(
            "RMSProp-groups-explr",
            rt.RMSProp,
            {"lr": 0.01, **rms},
            torch.optim.RMSprop,
            {"lr": 0.01, "alpha": 0.95, "eps": 1e-4},
            second_group_lr=0.003,
            scheduler=exponential_lr,
        ),
        # Adadelta
        Case(
            "AdaDelta",
            rt.AdaDelta,
            {"lr": 1.0, "gamma": 0.9, "eps": 1e-4},
            torch.optim.Adadelta,
            {"lr": 1.0, "rho": 0.9, "eps": 1e-4},
        ),
        Case(
            "AdaDelta-wd-maximize",
            rt.AdaDelta,
            {"lr": 0.5, "gamma": 0.9, "eps": 1e-4, **wd, **up},
            torch.optim.Adadelta,
            {"lr": 0.5, "rho": 0.9, "eps": 1e-4, **wd, **up},
        ),
        Case(
            "AdaDelta-groups-steplr",
            rt.AdaDelta,
            {"lr": 1.0, "gamma": 0.9, "eps": 1e-4},
            torch.optim.Adadelta,
            {"lr": 1.0, "rho": 0.9, "eps": 1e-4},
            second_group_lr=0.5,
            scheduler=step_lr,
        ),
        # Adam / AdamW
        Case("Adam", rt.Adam, {"lr": 0.01, **adam_r}, torch.optim.Adam, {"lr": 0.01, **adam_t}),
        Case(
            "Adam-wd",
            rt.Adam,
            {"lr": 0.01, **adam_r, **wd},
            torch.optim.Adam,
            {"lr": 0.01, **adam_t, **wd},
        ),
        Case(
            "Adam-maximize",
            rt.Adam,
            {"lr": 0.01, **adam_r, **up},
            torch.optim.Adam,
            {"lr": 0.01, **adam_t, **up},
        ),
        Case(
            "Adam-groups-steplr",
            rt.Adam,
            {"lr": 0.01, **adam_r},
            torch.optim.Adam,
            {"lr": 0.01, **adam_t},
            second_group_lr=0.003,
            scheduler=step_lr,
        ),
        Case("AdamW", rt.Adam, {"lr": 0.01, **adamw_r}, torch.optim.AdamW, {"lr": 0.01, **adamw_t}),
        Case(
            "AdamW-maximize-explr",
            rt.Adam,
            {"lr": 0.01, **adamw_r, **up},
            torch.optim.AdamW,
            {"lr": 0.01, **adamw_t, **up},
            scheduler=exponential_lr,
        ),
        # NAdam
        Case(
            "NAdam", rt.NAdam, {"lr": 0.01, **nadam_r}, torch.optim.NAdam, {"lr": 0.01, **nadam_t}
        ),
        Case(
            "NAdam-psi",
            rt.NAdam,
            {"lr": 0.01, **adam_r, "momentum_decay": 0.05},
            torch.optim.NAdam,
            {"lr": 0.01, **adam_t, "momentum_decay": 0.05},
        ),
        Case(
            "NAdam-wd",
            rt.NAdam,
            {"lr": 0.01, **nadam_r, **wd},
            torch.optim.NAdam,
            {"lr": 0.01, **nadam_t, **wd},
        ),
        Case(
            "NAdam-maximize",
            rt.NAdam,
            {"lr": 0.01, **nadam_r, **up},
            torch.optim.NAdam,
            {"lr": 0.01, **nadam_t, **up},
        ),
        Case(
            "NAdam-groups-explr",
            rt.NAdam,
            {"lr": 0.01, **nadam_r},
            torch.optim.NAdam,
            {"lr": 0.01, **nadam_t},
            second_group_lr=0.003,
            scheduler=exponential_lr,
        ),
    ]


CASES = _cases()


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1234)
    x = torch.randn(4 * BATCH, 6, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (4 * BATCH,), generator=gen)
    return x, y


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    return net.double()


def _param_groups(model: torch.nn.Module, second_group_lr: float | None) -> list[Any]:
    if second_group_lr is None:
        return [{"params": list(model.parameters())}]
    return [
        {"params": list(model[0].parameters())},
        {"params": list(model[2].parameters()), "lr": second_group_lr},
    ]


def _rel_err(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    diff = max((x - y).abs().max().item() for x, y in zip(a, b, strict=True))
    scale = max(y.abs().max().item() for y in b)
    return diff / max(scale, TINY)


@contextmanager
def _float64_torch() -> Iterator[None]:
    # torch.optim keeps per-parameter scalar state (NAdam's μ-product, the step count) in
    # the *default* dtype (torch.optim.optimizer._get_scalar_dtype), float32 unless the
    # default is float64. NAdam's μ-product rounded to float32 alone puts torch ~1e-9
    # (relative) away from its own float64 arithmetic within 60 steps, so torch runs with
    # a float64 default here; the model and data are float64 either way.
    # One intra-op thread: these tensors are tiny, and under pytest-xdist two workers with
    # two threads each on two cores spend most of their time waiting for one another.
    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_default_dtype(dtype)
        torch.set_num_threads(threads)


def _trajectories(case: Case, impl: str, steps: int = STEPS) -> tuple[list[float], list[float]]:
    """Per-step relative errors (parameters after the step, loss before it), ravine vs torch."""
    with _float64_torch():
        return _run(case, impl, steps)


def _run(case: Case, impl: str, steps: int) -> tuple[list[float], list[float]]:
    x, y = _data()
    reference = _model()
    ours = copy.deepcopy(reference)
    torch_opt = case.torch(_param_groups(reference, case.second_group_lr), **case.torch_kwargs)
    ravine_opt = case.ravine(
        _param_groups(ours, case.second_group_lr), **IMPLEMENTATIONS[impl], **case.ravine_kwargs
    )
    pairs = [(reference, torch_opt), (ours, ravine_opt)]
    schedulers = [case.scheduler(opt) for _, opt in pairs] if case.scheduler else []
    # Ascend −loss under maximize=True, so the run still fits the data and stays tame.
    sign = -1.0 if case.torch_kwargs.get("maximize", False) else 1.0
    param_errs, loss_errs = [], []
    for t in range(steps):
        rows = slice((t % 4) * BATCH, (t % 4 + 1) * BATCH)
        losses = []
        for model, opt in pairs:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[rows]), y[rows])
            (sign * loss).backward()
            opt.step()
            losses.append(loss.detach())
        for sched in schedulers:
            sched.step()
        loss_errs.append(_rel_err([losses[1]], [losses[0]]))
        param_errs.append(
            _rel_err([p.detach() for p in ours.parameters()], list(reference.parameters()))
        )
    lrs_t = [g["lr"] for g in torch_opt.param_groups]
    lrs_r = [g["lr"] for g in ravine_opt.param_groups]
    assert lrs_t == lrs_r, f"{case.id}: the lr schedules drifted apart: {lrs_t} vs {lrs_r}"
    return param_errs, loss_errs


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_matches_torch_optim(case: Case, impl: str) -> None:
    param_errs, loss_errs = _trajectories(case, impl)
    worst, worst_loss = max(param_errs), max(loss_errs)
    at = param_errs.index(worst) + 1
    print(
        f"\n{case.id} [{impl}]: max rel err params {worst:.3e} (step {at}), loss {worst_loss:.3e}"
    )
    assert worst <= TOLERANCE, (
        f"{case.id} [{impl}]: parameters differ from {case.torch.__name__} by a "
        f"relative {worst:.3e} at step {at} (tolerance {TOLERANCE:.0e})"
    )
    assert worst_loss <= TOLERANCE, (
        f"{case.id} [{impl}]: losses differ from {case.torch.__name__} by a "
        f"relative {worst_loss:.3e} (tolerance {TOLERANCE:.0e})"
    )


def test_every_torch_optimizer_and_ravine_class_is_covered() -> None:
    covered_torch = {c.torch for c in CASES}
    covered_ravine = {c.ravine for c in CASES}
    assert {
        torch.optim.SGD,
        torch.optim.Adagrad,
        torch.optim.RMSprop,
        torch.optim.Adadelta,
        torch.optim.Adam,
        torch.optim.AdamW,
        torch.optim.NAdam,
    } <= covered_torch
    # NormalizedGD has no torch.optim counterpart.
    assert set(rt.OPTIMIZERS.values()) - {rt.NormalizedGD} <= covered_ravine


NEGATIVE_CONTROLS = [
    # The seed's defaults are not torch's: the harness must see the difference.
    Case(
        "Momentum-ema",
        rt.Momentum,
        {"lr": 0.05, "beta": 0.9},
        torch.optim.SGD,
        {"lr": 0.05, "momentum": 0.9},
    ),
    Case(
        "Adam-eps-inside",
        rt.Adam,
        {"lr": 0.01, "eps": 1e-4},
        torch.optim.Adam,
        {"lr": 0.01, "eps": 1e-4},
    ),
    Case(
        "NAG-seed-lookahead",
        rt.NAG,
        {"lr": 0.05, "beta": 0.9, "ema": False},
        torch.optim.SGD,
        {"lr": 0.05, "momentum": 0.9, "nesterov": True},
    ),
]


@pytest.mark.parametrize("case", NEGATIVE_CONTROLS, ids=[c.id for c in NEGATIVE_CONTROLS])
def test_harness_detects_the_seed_defaults(case: Case) -> None:
    param_errs, _ = _trajectories(case, "per_tensor", steps=5)
    print(f"\nnegative control {case.id}: max rel err params {max(param_errs):.3e}")
    assert max(param_errs) > 1e3 * TOLERANCE


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_nag_departs_from_torch_when_lr_changes(impl: str) -> None:
    """Known, documented-by-this-test difference: NAG under an lr schedule.

    ravine's NAG stores φ = θ − shift·m with shift = β·lr of the step that placed φ, and
    recovers θ with that same shift (``ravine.rules.nag``), so a step with lr after a step
    with lr_old moves the parameters by −lr·(g + β·m) + β·(lr_old − lr)·m_old, where torch's
    SGD(nesterov=True) moves them by −lr·(g + β·m). The two agree while lr is constant
    (StepLR keeps it for 10 steps) and part at the first step that uses a new lr.
    """
    case = Case(
        "NAG-steplr",
        rt.NAG,
        {"lr": 0.05, "beta": 0.9, "ema": False, "lookahead": "momentum"},
        torch.optim.SGD,
        {"lr": 0.05, "momentum": 0.9, "nesterov": True},
        scheduler=step_lr,
    )
    param_errs, _ = _trajectories(case, impl)
    before, after = param_errs[:10], param_errs[10:]
    print(
        f"\nNAG-steplr [{impl}]: max rel err steps 1-10 {max(before):.3e}, "
        f"step 11 {after[0]:.3e}, steps 11-{STEPS} {max(after):.3e}"
    )
    assert max(before) <= TOLERANCE
    assert after[0] > 1e3 * TOLERANCE


def test_nag_departure_is_the_lr_change_times_the_old_momentum() -> None:
    """The diagnosis above, exactly: at the first step with a new lr, ravine's step is
    torch's plus β·(lr_old − lr)·m_old (m_old: torch's momentum buffer before the step)."""
    beta, lr_old, lr = 0.9, 0.05, 0.02
    with _float64_torch():
        x, y = _data()
        reference = _model()
        ours = copy.deepcopy(reference)
        torch_opt = torch.optim.SGD(reference.parameters(), lr=lr_old, momentum=beta, nesterov=True)
        ravine_opt = rt.NAG(
            ours.parameters(), lr=lr_old, beta=beta, ema=False, lookahead="momentum"
        )
        pairs = [(reference, torch_opt), (ours, ravine_opt)]

        def step() -> None:
            for model, opt in pairs:
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(x[:BATCH]), y[:BATCH]).backward()
                opt.step()

        for _ in range(5):
            step()
        before = [[p.detach().clone() for p in model.parameters()] for model, _ in pairs]
        assert _rel_err(before[1], before[0]) <= TOLERANCE
        m_old = [torch_opt.state[p]["momentum_buffer"].clone() for p in reference.parameters()]
        for _, opt in pairs:
            opt.param_groups[0]["lr"] = lr
        step()
        torch_step, ravine_step = (
            [p.detach() - p0 for p, p0 in zip(model.parameters(), start, strict=True)]
            for (model, _), start in zip(pairs, before, strict=True)
        )
    predicted = [d + beta * (lr_old - lr) * m for d, m in zip(torch_step, m_old, strict=True)]
    err = _rel_err(ravine_step, predicted)
    print(f"\nNAG departure vs torch step + β·(lr_old − lr)·m_old: max rel err {err:.3e}")
    assert err <= 1e-12, f"ravine's NAG step departs from the predicted one by {err:.3e}"
