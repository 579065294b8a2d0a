"""Switching a running job between torch.optim and ravine continues it exactly."""

from __future__ import annotations

import copy

import pytest
import torch

import ravine.torch as rt
from conftest import rel_err

CASES = [
    (torch.optim.SGD, {"lr": 0.1}),
    (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
    (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    (torch.optim.Adagrad, {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1}),
    (torch.optim.RMSprop, {"lr": 0.01, "alpha": 0.95, "maximize": True}),
    (torch.optim.Adadelta, {"lr": 1.0, "rho": 0.9}),
    (torch.optim.Adam, {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.01}),
    (torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.1}),
    (torch.optim.NAdam, {"lr": 0.01, "momentum_decay": 4e-3}),
]


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)
    ).double()


def _train(model, opt, steps, offset=0):
    for step in range(offset, offset + steps):
        x = torch.full((3, 4), 0.1 * (step % 5) - 0.2, dtype=torch.float64)
        opt.zero_grad()
        (model(x) ** 2).sum().backward()
        opt.step()


def _max_err(a, b):
    return max(rel_err(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


@pytest.mark.parametrize(("cls", "kwargs"), CASES, ids=lambda x: getattr(x, "__name__", str(x)))
def test_torch_to_ravine_mid_run(cls, kwargs):
    torch.set_default_dtype(torch.float64)  # torch keeps NAdam's μ-product in this dtype
    try:
        reference = _model()
        switched = copy.deepcopy(reference)
        ref_opt = cls(reference.parameters(), **kwargs)
        opt = cls(switched.parameters(), **kwargs)
        _train(reference, ref_opt, 8)
        _train(switched, opt, 8)
        opt = rt.from_torch(opt)
        _train(reference, ref_opt, 8, offset=8)
        _train(switched, opt, 8, offset=8)
        assert _max_err(switched, reference) < 1e-12
        back = rt.to_torch(opt)  # and back again
        _train(reference, ref_opt, 8, offset=16)
        _train(switched, back, 8, offset=16)
        assert type(back) is cls and _max_err(switched, reference) < 1e-12
    finally:
        torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda ps: torch.optim.Adam(ps, amsgrad=True), "amsgrad"),
        (lambda ps: torch.optim.RMSprop(ps, centered=True), "centered"),
        (lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.5), "dampening"),
        (lambda ps: torch.optim.ASGD(ps), "no ravine equivalent of torch.optim.ASGD"),
    ],
)
def test_configurations_without_a_twin_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        rt.from_torch(make(list(_model().parameters())))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda ps: rt.Adam(ps), "eps_mode"),
        (lambda ps: rt.Momentum(ps), "ema=True"),
        (lambda ps: rt.NAG(ps, ema=False), "lookahead='step'"),
        (lambda ps: rt.NAdam(ps, eps_mode="outside"), "momentum_decay=None"),
        (lambda ps: rt.NormalizedGD(ps), "no equivalent of ravine's NormalizedGD"),
    ],
)
def test_seed_forms_have_no_torch_twin(make, message):
    with pytest.raises(ValueError, match=message):
        rt.to_torch(make(list(_model().parameters())))
