"""nonfinite="skip": a step whose gradients hold NaN/Inf changes nothing, in any group."""

from __future__ import annotations

import random

import pytest
import torch

import ravine.torch as rt
from conftest import IMPLEMENTATIONS
from ravine.rules import SPECS

NAMES = [s.name for s in SPECS]
SHAPES = [(3, 4), (7,), (2, 2, 2)]


def _grads(step):
    gen = torch.Generator().manual_seed(step)
    return [torch.randn(s, generator=gen, dtype=torch.float64) for s in SHAPES]


def _fresh(name, impl, **kw):
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=gen, dtype=torch.float64).requires_grad_() for s in SHAPES]
    return params, rt.OPTIMIZERS[name](params, lr=0.05, **IMPLEMENTATIONS[impl], **kw)


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
@pytest.mark.parametrize("name", NAMES)
def test_poisoned_steps_are_skipped_exactly(name, impl):
    rng = random.Random(f"{name}{impl}")
    poisoned = set(rng.sample(range(12), 4))
    params, opt = _fresh(name, impl, nonfinite="skip")
    clean, reference = _fresh(name, impl)
    for step in range(12):
        grads = _grads(step)
        if step in poisoned:  # one element of one tensor
            tensor = rng.randrange(len(grads))
            flat = grads[tensor].view(-1)
            flat[rng.randrange(flat.numel())] = rng.choice(
                [float("nan"), float("inf"), -float("inf")]
            )
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        opt.step()
        if step not in poisoned:
            for p, g in zip(clean, grads, strict=True):
                p.grad = g.clone()
            reference.step()
    for a, b in zip(params, clean, strict=True):
        assert torch.equal(a.detach(), b.detach())
    assert opt.skipped_steps == 4
    assert opt.state[params[0]]["step"] == reference.state[clean[0]]["step"] == 8
    for key, value in reference.state[clean[1]].items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(opt.state[params[1]][key], value)


def test_a_bad_gradient_in_one_group_stops_every_group():
    a, b = torch.ones(3, requires_grad=True), torch.ones(2, requires_grad=True)
    opt = rt.Adam([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1, nonfinite="skip")
    a.grad, b.grad = torch.ones(3), torch.tensor([1.0, float("nan")])
    opt.step()
    assert torch.equal(a.detach(), torch.ones(3)) and torch.equal(b.detach(), torch.ones(2))
    assert not opt.state[a] and opt.skipped_steps == 1


def test_raise_names_the_parameter_and_changes_nothing():
    a, b = torch.ones(3, requires_grad=True), torch.ones(2, 2, requires_grad=True)
    opt = rt.RMSProp([{"params": [a]}, {"params": [b]}], nonfinite="raise")
    a.grad = torch.ones(3)
    b.grad = torch.tensor([[1.0, float("inf")], [float("nan"), 0.0]])
    with pytest.raises(FloatingPointError, match=r"param 0 of group 1 \(shape \(2, 2\)\) holds 2"):
        opt.step()
    assert torch.equal(a.detach(), torch.ones(3)) and not opt.state[a]


def test_large_finite_gradients_are_not_mistaken_for_overflow():
    p = torch.zeros(4, requires_grad=True)
    opt = rt.SGD([p], lr=1e-30, nonfinite="skip")
    p.grad = torch.full((4,), 1e30)  # its 2-norm overflows float32; its max does not
    opt.step()
    assert opt.skipped_steps == 0 and torch.allclose(p.detach(), torch.full((4,), -1.0))


@pytest.mark.parametrize("name", ["SGD", "Adagrad"])
def test_sparse_gradients_are_checked_too(name):
    emb = torch.nn.Embedding(5, 2, sparse=True)
    opt = rt.OPTIMIZERS[name](emb.parameters(), nonfinite="skip")
    before = emb.weight.detach().clone()
    (emb(torch.tensor([1, 3])).sum() * float("inf")).backward()
    opt.step()
    assert torch.equal(emb.weight.detach(), before) and opt.skipped_steps == 1


def test_grad_scaler_skips_and_rescales_as_with_torch_optim():
    model = torch.nn.Linear(3, 1)
    opt = rt.Adam(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    before = [p.detach().clone() for p in model.parameters()]
    loss = model(torch.ones(2, 3)).sum() * float("inf")
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    assert all(torch.equal(p.detach(), b) for p, b in zip(model.parameters(), before, strict=True))
    assert scaler.get_scale() == 2.0**9
    opt.zero_grad()
    scaler.scale(model(torch.ones(2, 3)).sum()).backward()
    scaler.step(opt)
    assert not all(
        torch.equal(p.detach(), b) for p, b in zip(model.parameters(), before, strict=True)
    )


def test_invalid_policy_is_named():
    with pytest.raises(ValueError, match="nonfinite='never'.*'ignore', 'skip', 'raise'"):
        rt.Adam([torch.zeros(1, requires_grad=True)], nonfinite="never")


def test_policy_survives_pickle_and_deepcopy():
    import copy
    import pickle

    p = torch.ones(2, requires_grad=True)
    opt = rt.Adam([p], nonfinite="skip")
    p.grad = torch.tensor([float("nan"), 1.0])
    opt.step()
    for twin in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        assert twin.nonfinite == "skip" and twin.skipped_steps == 1
