"""Property tests (hypothesis): over shapes, dtypes and hyperparameters, every
implementation of a rule agrees, keeps dtypes and produces finite values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ravine.numpy as rn
import ravine.torch as rt
from conftest import IMPLEMENTATIONS, TOLERANCE, rel_err
from ravine.rules import SPECS
from ravine.rules.validation import Flag, Interval, OneOf, OrNone

# Valid, finite ranges per hyperparameter (eps > 0: with ε = 0 a coordinate whose
# gradient has always been 0 divides 0 by 0, in ravine as in torch.optim).
RANGES = {
    "lr": st.floats(1e-4, 0.5),
    "beta": st.floats(0.0, 0.99),
    "gamma": st.floats(0.0, 0.999),
    "eps": st.floats(1e-10, 1e-2),
    "initial_accumulator_value": st.floats(0.0, 1.0),
    "lr_decay": st.floats(0.0, 0.1),
    "momentum_decay": st.one_of(st.none(), st.floats(0.0, 0.01)),
    "weight_decay": st.floats(0.0, 0.1),
}


def _strategy(name, check):
    if name in RANGES:
        return RANGES[name]
    if isinstance(check, OneOf):
        return st.sampled_from(check.values)
    if isinstance(check, Flag):
        return st.booleans()
    raise AssertionError(f"no strategy for {name}")


def hyperparameters(spec):
    return st.fixed_dictionaries({n: _strategy(n, c) for n, c in spec.checks.items()})


shapes = st.lists(st.tuples(st.integers(0, 4), st.integers(1, 3)), min_size=1, max_size=3)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), dims=shapes, dtype=st.sampled_from([torch.float32, torch.float64]))
def test_implementations_agree(spec, data, dims, dtype):
    hp = data.draw(hyperparameters(spec))
    seed = data.draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    init = [torch.randn(d, generator=gen, dtype=torch.float64) for d in dims]
    grads = [[torch.randn(d, generator=gen, dtype=torch.float64) for d in dims] for _ in range(3)]

    finals = []
    for impl in IMPLEMENTATIONS.values():
        params = [p.to(dtype).clone().requires_grad_() for p in init]
        opt = rt.OPTIMIZERS[spec.name](params, **impl, **hp)
        for gs in grads:
            for p, g in zip(params, gs, strict=True):
                p.grad = g.to(dtype)
            opt.step()
        finals.append([opt.theta(p) for p in params])
        assert all(p.dtype == dtype and torch.isfinite(p).all() for p in params)

    nopt = rn.OPTIMIZERS[spec.name](**hp)
    nparams = [p.to(dtype).numpy() for p in init]
    state = nopt.init(nparams)
    for gs in grads:
        nparams, state = nopt.update(nparams, [g.to(dtype).numpy() for g in gs], state)
    numpy_theta = [torch.from_numpy(np.asarray(x)) for x in nopt.theta(nparams, state)]

    tol = TOLERANCE[dtype] * 10  # three steps, each of which may round differently
    for per_tensor, foreach, fused, reference in zip(*finals, numpy_theta, strict=True):
        assert rel_err(foreach, per_tensor) <= tol
        assert rel_err(fused, per_tensor) <= tol
        assert rel_err(per_tensor, reference) <= tol


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_out_of_range_values_are_rejected_identically(spec, data):
    name = data.draw(
        st.sampled_from([n for n, c in spec.checks.items() if not isinstance(c, (Flag, OneOf))])
    )
    check = spec.checks[name]
    inner = check.inner if isinstance(check, OrNone) else check
    assert isinstance(inner, Interval)
    bad = data.draw(
        st.floats(allow_nan=True, allow_infinity=True).filter(
            lambda x: (
                not (inner.low <= x <= inner.high and np.isfinite(x))
                or (inner.high_open and x == inner.high)
            )
        )
    )
    with pytest.raises(ValueError) as from_numpy:
        rn.OPTIMIZERS[spec.name](**{name: bad})
    with pytest.raises(ValueError) as from_torch:
        rt.OPTIMIZERS[spec.name]([torch.zeros(1, requires_grad=True)], **{name: bad})
    assert str(from_numpy.value) == str(from_torch.value)
    assert name in str(from_numpy.value)
