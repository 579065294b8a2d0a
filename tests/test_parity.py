"""The chain of trust: NumPy rule → torch per-tensor → torch foreach and fused.

Each implementation runs the registry's rule; these tests check they agree on parameters
*and* state, including the awkward cases torch.optim's own suite uses: a gradient set to
None mid-run, a frozen parameter, a zero-size parameter, mixed dtypes, complex params.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import ravine.numpy as rn
import ravine.torch as rt
from conftest import IMPLEMENTATIONS, TOLERANCE, rel_err
from ravine.rules import SPECS

NAMES = [s.name for s in SPECS]
FAST = ["foreach", "fused"]
SHAPES = [(3, 4), (5,), (2, 1, 3), (0,)]


def _grads(step: int, shapes, dtype) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(step)
    return [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype) for s in shapes]


def _run_torch(name, impl, dtype, steps=7, **hp):
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype) for s in SHAPES]
    params = [p.requires_grad_() for p in params]
    opt = rt.OPTIMIZERS[name](params, lr=0.05, **IMPLEMENTATIONS[impl], **hp)
    for step in range(steps):
        for p, g in zip(params, _grads(step, SHAPES, dtype), strict=True):
            p.grad = g
        if step == 2:
            params[0].grad = None  # a step without gradient must not touch it
        if 3 <= step <= 4:
            params[1].grad = None  # frozen for two steps
        opt.step()
    return params, opt


@pytest.mark.parametrize("impl", FAST)
@pytest.mark.parametrize("name", NAMES)
def test_fast_paths_match_per_tensor_float64(name, impl):
    p_loop, opt_loop = _run_torch(name, "per_tensor", dtype=torch.float64)
    p_each, opt_each = _run_torch(name, impl, dtype=torch.float64)
    for a, b in zip(p_each, p_loop, strict=True):
        assert rel_err(a, b) <= TOLERANCE[torch.float64]
    for a, b in zip(p_each, p_loop, strict=True):
        sa, sb = opt_each.state[a], opt_loop.state[b]
        assert sa.keys() == sb.keys()
        for key in sa:
            if isinstance(sa[key], torch.Tensor):
                assert rel_err(sa[key], sb[key]) <= TOLERANCE[torch.float64], key
            else:
                assert sa[key] == pytest.approx(sb[key], rel=1e-12), key


@pytest.mark.parametrize("impl", FAST)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", NAMES)
def test_fast_paths_match_per_tensor_low_precision(name, dtype, impl):
    p_loop, _ = _run_torch(name, "per_tensor", dtype=dtype, steps=3)
    p_each, _ = _run_torch(name, impl, dtype=dtype, steps=3)
    for a, b in zip(p_each, p_loop, strict=True):
        assert a.dtype == dtype
        assert rel_err(a, b) <= TOLERANCE[dtype]


@pytest.mark.parametrize("name", NAMES)
def test_numpy_matches_torch(name):
    """Single param group, float64: NumPy front-end vs torch per-tensor."""
    shapes = SHAPES[:3]
    gen = torch.Generator().manual_seed(0)
    tparams = [torch.randn(s, generator=gen, dtype=torch.float64).requires_grad_() for s in shapes]
    nparams = [p.detach().numpy().copy() for p in tparams]
    topt = rt.OPTIMIZERS[name](tparams, lr=0.05, foreach=False)
    nopt = rn.OPTIMIZERS[name](lr=0.05)
    state = nopt.init(nparams)
    for step in range(6):
        grads = _grads(step, shapes, torch.float64)
        for p, g in zip(tparams, grads, strict=True):
            p.grad = g
        topt.step()
        nparams, state = nopt.update(nparams, [g.numpy() for g in grads], state)
    for tp, npar, nstate in zip(tparams, nparams, state.rule, strict=True):
        np.testing.assert_allclose(tp.detach().numpy(), npar, rtol=1e-12, atol=1e-15)
        for field, value in nstate._asdict().items():
            np.testing.assert_allclose(np.asarray(topt.state[tp][field]), value, rtol=1e-12)


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
@pytest.mark.parametrize("name", NAMES)
def test_mixed_dtypes_in_one_group(name, impl):
    """A group holding float64 and float32 tensors: each keeps its dtype and its rule."""
    a = torch.ones(3, dtype=torch.float64, requires_grad=True)
    b = torch.ones(3, dtype=torch.float32, requires_grad=True)
    opt = rt.OPTIMIZERS[name]([a, b], lr=0.1, **IMPLEMENTATIONS[impl])
    for _ in range(3):
        a.grad = torch.full_like(a, 0.5)
        b.grad = torch.full_like(b, 0.5)
        opt.step()
    assert a.dtype == torch.float64 and b.dtype == torch.float32
    assert rel_err(b, a) <= TOLERANCE[torch.float32]


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
@pytest.mark.parametrize("name", NAMES)
def test_complex_param_equals_its_real_view(name, impl):
    """As in torch.optim: a complex parameter is optimized as (real, imag) pairs."""
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(4, dtype=torch.complex128, generator=gen).requires_grad_()
    r = torch.view_as_real(z.detach()).clone().requires_grad_()
    opt_z = rt.OPTIMIZERS[name]([z], lr=0.1, **IMPLEMENTATIONS[impl])
    opt_r = rt.OPTIMIZERS[name]([r], lr=0.1, **IMPLEMENTATIONS[impl])
    for step in range(4):
        gz = torch.randn(4, dtype=torch.complex128, generator=torch.Generator().manual_seed(step))
        z.grad = gz
        r.grad = torch.view_as_real(gz).clone()
        opt_z.step()
        opt_r.step()
    assert rel_err(torch.view_as_real(z.detach()), r) <= TOLERANCE[torch.float64]
    assert rel_err(torch.view_as_real(opt_z.theta(z)), opt_r.theta(r)) <= TOLERANCE[torch.float64]


@pytest.mark.parametrize("name", NAMES)
def test_params_added_later_with_add_param_group(name):
    """A param group added mid-run starts at step 0 while the first group goes on."""

    def run(impl):
        a = torch.ones(3, dtype=torch.float64, requires_grad=True)
        b = torch.ones(2, dtype=torch.float64, requires_grad=True)
        opt = rt.OPTIMIZERS[name]([a], lr=0.1, **IMPLEMENTATIONS[impl])
        for step in range(4):
            if step == 2:
                opt.add_param_group({"params": [b], "lr": 0.05})
            a.grad = torch.full_like(a, 0.3 + step)
            b.grad = torch.full_like(b, -0.2 * step)
            opt.step()
        return a, b, opt

    a1, b1, opt1 = run("per_tensor")
    assert opt1.state[b1]["step"] == 2 and opt1.state[a1]["step"] == 4
    for impl in FAST:
        a2, b2, opt2 = run(impl)
        assert opt2.state[b2]["step"] == 2 and opt2.state[a2]["step"] == 4
        assert rel_err(a2, a1) <= TOLERANCE[torch.float64]
        assert rel_err(b2, b1) <= TOLERANCE[torch.float64]


def test_deepcopy_keeps_identical_behaviour():
    p = torch.ones(3, requires_grad=True)
    opt = rt.Adam([p], lr=0.1)
    p.grad = torch.ones(3)
    opt.step()
    clone = copy.deepcopy(opt)
    assert clone.state_dict()["state"][0]["step"] == 1
    assert clone.param_groups[0]["lr"] == 0.1


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
@pytest.mark.parametrize("name", NAMES)
def test_16_bit_params_are_computed_in_float32_and_rounded_once(name, impl, dtype):
    """Regression: the per-tensor path computed g⊙g in 16 bits, where 1e-4² underflows."""
    values = torch.tensor([1.0, -0.5, 2.0, 0.25])
    grad = torch.tensor([1e-4, -3e-5, 2.0, 5e-3])
    p16 = values.to(dtype).requires_grad_()
    p32 = values.to(dtype).float().requires_grad_()
    opts = [rt.OPTIMIZERS[name]([p], lr=0.1, **IMPLEMENTATIONS[impl]) for p in (p16, p32)]
    p16.grad, p32.grad = grad.to(dtype), grad.to(dtype).float()
    for opt in opts:
        opt.step()
    assert torch.equal(p16.detach(), p32.detach().to(dtype))
    for key, value in opts[1].state[p32].items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(opts[0].state[p16][key], value.to(dtype)), key
