"""Engines by name: which one steps a group, from the user's flags and the tensors' devices
(the table in docs/architecture.md)."""

from __future__ import annotations

import pytest
import torch

import ravine.torch as rt
from ravine.torch.engines import Devices, choose

CPU = Devices(frozenset({"cpu"}), dtensor=False)
CUDA = Devices(frozenset({"cuda"}), dtensor=False)
MIXED = Devices(frozenset({"cpu", "cuda"}), dtensor=False)
MPS = Devices(frozenset({"mps"}), dtensor=False)


@pytest.mark.parametrize(
    ("foreach", "fused", "where", "reduces", "expected"),
    [
        (None, None, CPU, False, "cpu_fused"),
        (None, True, CPU, False, "cpu_fused"),
        (False, None, CPU, False, "per_tensor"),
        (None, False, CPU, False, "per_tensor"),
        (True, None, CPU, False, "foreach"),
        (None, None, CUDA, False, "foreach"),  # until Triton is measured faster on a GPU
        (None, True, CUDA, False, "triton"),
        (False, None, CUDA, False, "per_tensor"),
        (None, None, MIXED, False, "per_tensor"),
        (True, None, MIXED, False, "foreach"),
        # a cross-process reduction never runs inside a kernel
        (None, None, CPU, True, "per_tensor"),
        (True, None, CPU, True, "foreach"),
        (None, None, CUDA, True, "foreach"),
    ],
)
def test_choose(foreach, fused, where, reduces, expected):
    assert choose("Adam", foreach, fused, where, reduces) == expected


@pytest.mark.parametrize("where", [MIXED, MPS])
def test_fused_elsewhere_names_the_devices_and_the_alternative(where):
    with pytest.raises(
        RuntimeError,
        match=r"Adam: fused=True runs on tensors all on the CPU \(C kernels\) or all on CUDA "
        r"\(Triton\); got \[",
    ):
        choose("Adam", None, True, where, False)
    with pytest.raises(RuntimeError, match="use foreach=True instead"):
        choose("Adam", None, True, where, False)


def test_load_state_dict_keeps_the_engines_and_their_fallback_count():
    """torch's load_state_dict goes through __setstate__: the fused engine (its kernels) and
    its count of fallbacks stay."""
    transposed = torch.randn(3, 4).t().detach().requires_grad_()  # not streamable
    params = [torch.randn(5, requires_grad=True), transposed]
    opt = rt.Adam(params, lr=0.1, fused=True)
    for _ in range(2):
        for p in params:
            p.grad = torch.randn_like(p)
        opt.step()
    assert opt.fallbacks == 2
    opt.load_state_dict(opt.state_dict())
    assert opt.fallbacks == 2
    for p in params:
        p.grad = torch.randn_like(p)
    opt.step()
    assert opt.fallbacks == 3


def test_a_group_of_real_and_complex_parameters_keeps_its_plan():
    """Real and complex parameters stream in separate batches, so the plan's per-step check
    (one dtype per batch) holds and the group takes the planned step; it re-planned every
    step when they shared a batch (found by review)."""
    base = [torch.randn(5), torch.randn(3, dtype=torch.complex64)]
    fused = [t.clone().requires_grad_() for t in base]
    reference = [t.clone().requires_grad_() for t in base]
    opt, ref = rt.Adam(fused, lr=0.1, fused=True), rt.Adam(reference, lr=0.1, foreach=False)
    for step in range(3):
        gen = torch.Generator().manual_seed(step)
        for a, b in zip(fused, reference, strict=True):
            a.grad = torch.randn(a.shape, dtype=a.dtype, generator=gen)
            b.grad = a.grad.clone()
        opt.step()
        ref.step()
    checked = [opt._hyperparameters(g) for g in opt.param_groups]
    assert sorted(opt._planned(checked)) == [0]
    for a, b in zip(fused, reference, strict=True):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-7)
