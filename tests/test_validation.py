"""Every hyperparameter of every optimizer is checked, with the same message everywhere."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

import ravine.numpy as rn
import ravine.torch as rt
from ravine.rules import SPECS
from ravine.rules.validation import Flag, Interval, OneOf, OrNone


def _bad_values(check):
    """(value, exception type) pairs that the check must reject."""
    if isinstance(check, OrNone):
        return _bad_values(check.inner)
    if isinstance(check, Interval):
        bad = [
            (math.nan, ValueError),
            (math.inf, ValueError),
            ("0.1", TypeError),
            (True, TypeError),
        ]
        if check.low > -math.inf:
            bad.append((check.low - 1.0, ValueError))
        if check.high < math.inf:
            bad.append((check.high + 0.5, ValueError))
        if check.high_open:
            bad.append((check.high, ValueError))
        return bad
    if isinstance(check, OneOf):
        return [("bogus", ValueError)]
    if isinstance(check, Flag):
        return [(1, TypeError), ("yes", TypeError)]
    raise AssertionError(check)


CASES = [
    (spec, name, value, exc)
    for spec in SPECS
    for name, check in spec.checks.items()
    for value, exc in _bad_values(check)
]


@pytest.mark.parametrize(
    ("spec", "name", "value", "exc"), CASES, ids=lambda x: getattr(x, "name", repr(x))
)
def test_bad_hyperparameter_rejected_by_both_front_ends(spec, name, value, exc):
    pattern = re.escape(name) + ".*" + (re.escape(repr(value)) if exc is ValueError else "")
    with pytest.raises(exc, match=pattern) as numpy_error:
        rn.OPTIMIZERS[spec.name](**{name: value})
    with pytest.raises(exc) as torch_error:
        rt.OPTIMIZERS[spec.name]([torch.zeros(2, requires_grad=True)], **{name: value})
    assert str(numpy_error.value) == str(torch_error.value)
    assert spec.name in str(numpy_error.value)
    if exc is ValueError:
        assert "valid:" in str(numpy_error.value)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_add_param_group_and_scheduled_values_are_checked(spec):
    p, q = torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
    opt = rt.OPTIMIZERS[spec.name]([p])
    with pytest.raises(ValueError, match="lr=-1"):
        opt.add_param_group({"params": [q], "lr": -1.0})
    assert len(opt.param_groups) == 1
    opt.param_groups[0]["lr"] = -0.5  # as a buggy scheduler might
    p.grad = torch.ones(2)
    with pytest.raises(ValueError, match="lr=-0.5"):
        opt.step()
    assert torch.equal(p.detach(), torch.zeros(2))


def test_unknown_argument_is_named():
    with pytest.raises(TypeError, match="unexpected argument.*betas"):
        rt.Adam([torch.zeros(1, requires_grad=True)], betas=(0.9, 0.99))
    with pytest.raises(TypeError, match="unexpected argument.*momentum"):
        rn.SGD(momentum=0.9)


def test_a_tensor_hyperparameter_is_refused_with_the_way_out():
    # torch.optim takes lr=torch.tensor(…); ravine reads Python numbers at every step
    with pytest.raises(TypeError, match=r"lr must be a real number, got Tensor .*float\(\.\.\.\)"):
        rt.Adam([torch.zeros(1, requires_grad=True)], lr=torch.tensor(0.01))
    with pytest.raises(TypeError, match=r"beta must be a real number, got ndarray"):
        rn.Momentum(beta=np.array(0.9))
    assert (
        rt.Adam([torch.zeros(1, requires_grad=True)], lr=float(torch.tensor(0.5))).defaults["lr"]
        == 0.5
    )


def test_a_torch_optim_name_in_a_param_group_is_refused():
    # torch.optim keeps any key in a group; this one would be ignored (beta is ravine's)
    p, q = torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)
    with pytest.raises(TypeError, match=r"key\(s\) \['momentum'\] are torch.optim's names.*beta"):
        rt.Momentum([{"params": [p]}, {"params": [q], "momentum": 0.9}], lr=0.1)
    opt = rt.Adam([p])
    with pytest.raises(TypeError, match=r"\['amsgrad', 'betas'\]"):
        opt.add_param_group({"params": [q], "betas": (0.9, 0.99), "amsgrad": False})
    opt.add_param_group({"params": [q], "initial_lr": 0.1, "note": "any other key"})
    assert len(opt.param_groups) == 2


def test_non_floating_params_rejected():
    with pytest.raises(TypeError, match="floating-point.*torch.int64"):
        rt.SGD([torch.zeros(2, dtype=torch.long)])
    opt = rn.SGD()
    with pytest.raises(TypeError, match="floating-point"):
        opt.init(np.zeros(2, dtype=np.int64))


def test_foreach_must_be_bool_or_none():
    with pytest.raises(TypeError, match="foreach"):
        rt.SGD([torch.zeros(1, requires_grad=True)], foreach="yes")


def test_numpy_grads_must_match_params():
    opt = rn.Adam()
    state = opt.init(np.zeros(3))
    with pytest.raises(ValueError, match="grads must match params"):
        opt.update(np.zeros(3), np.zeros(4), state)


def test_reduce_group_only_where_there_is_a_reduction():
    with pytest.raises(ValueError, match="reduce_group=.*nothing to reduce.*NormalizedGD"):
        rt.Adam([torch.zeros(1, requires_grad=True)], reduce_group="world")
    p, q = torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
    # regression (review): refused only at the first step, not at construction
    with pytest.raises(ValueError, match="fused=True cannot take reduce_group='world'; use fore"):
        rt.NormalizedGD([p], fused=True, reduce_group="world")
    opt = rt.NormalizedGD([p], reduce_group="world")
    with pytest.raises(ValueError, match="fused=True cannot take reduce_group"):
        opt.add_param_group({"params": [q], "fused": True})
    opt.param_groups[0]["fused"] = True  # rewritten by hand: still refused, at the step
    p.grad = torch.ones(2)
    with pytest.raises(ValueError, match="fused=True cannot take reduce_group"):
        opt.step()
