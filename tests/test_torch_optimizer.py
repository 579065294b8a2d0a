"""What a torch.optim user relies on, for every ravine optimizer and implementation."""

from __future__ import annotations

import copy
import io

import pytest
import torch

import ravine.torch as rt
from conftest import IMPLEMENTATIONS
from ravine.rules import SPECS

NAMES = [s.name for s in SPECS]
LRS = {
    "SGD": 0.1,
    "Momentum": 0.3,
    "NAG": 0.3,
    "NormalizedGD": 0.05,
    "Adagrad": 0.05,
    "RMSProp": 0.01,
    "AdaDelta": 1.0,
    "Adam": 0.01,
    "NAdam": 0.01,
}


def _data(dtype=torch.float32):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(128, 6, generator=gen).to(dtype)
    y = (x[:, :3].sum(1) > 0).long()
    return x, y


def _model(dtype=torch.float32):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2)).to(
        dtype
    )


def _train(model, opt, steps, dtype=torch.float32):
    x, y = _data(dtype)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
@pytest.mark.parametrize("name", NAMES)
def test_trains_a_small_model(name, impl):
    model = _model()
    losses = _train(
        model, rt.OPTIMIZERS[name](model.parameters(), lr=LRS[name], **IMPLEMENTATIONS[impl]), 60
    )
    assert losses[-1] < 0.8 * losses[0], losses[::10]


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", NAMES)
def test_low_and_high_precision_params_train(name, dtype):
    model = _model(dtype)
    losses = _train(model, rt.OPTIMIZERS[name](model.parameters(), lr=LRS[name]), 40, dtype)
    assert all(p.dtype == dtype for p in model.parameters())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("name", NAMES)
def test_maximize_ascends(name):
    p = torch.tensor([0.3, -0.2], requires_grad=True)
    opt = rt.OPTIMIZERS[name]([p], lr=LRS[name] / 10, maximize=True)
    start = -(p.detach() ** 2).sum()
    for _ in range(5):
        opt.zero_grad()
        (-(p**2).sum()).backward()  # maximize −‖p‖² : move towards 0
        opt.step()
    assert -(opt.theta(p) ** 2).sum() > start


@pytest.mark.parametrize("name", NAMES)
def test_closure_returns_its_loss_and_params_without_grad_are_skipped(name):
    model = _model()
    frozen = torch.nn.Parameter(torch.ones(3))
    opt = rt.OPTIMIZERS[name]([*model.parameters(), frozen], lr=LRS[name])
    x, y = _data()

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert isinstance(loss, torch.Tensor) and loss.ndim == 0
    assert torch.equal(frozen.detach(), torch.ones(3)) and not opt.state[frozen]


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_is_bit_identical(name, impl):
    """Save after 10 steps (weights_only load), resume, and match never stopping."""
    model = _model()
    opt = rt.OPTIMIZERS[name](model.parameters(), lr=LRS[name], **IMPLEMENTATIONS[impl])
    _train(model, opt, 10)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    resumed = _model()
    resumed.load_state_dict(saved["model"])
    opt2 = rt.OPTIMIZERS[name](resumed.parameters(), lr=LRS[name], **IMPLEMENTATIONS[impl])
    opt2.load_state_dict(saved["opt"])
    _train(model, opt, 10)
    _train(resumed, opt2, 10)
    for a, b in zip(model.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)
    assert opt.state_dict()["state"].keys() == opt2.state_dict()["state"].keys()


def test_lr_scheduler_drives_the_step():
    p = torch.zeros(1, requires_grad=True)
    opt = rt.SGD([p], lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(3):
        p.grad = torch.ones(1)
        opt.step()
        sched.step()
    assert p.item() == pytest.approx(-(1 + 0.5 + 0.25))


@pytest.mark.parametrize(
    "make",
    [
        lambda opt, **kw: torch.optim.lr_scheduler.OneCycleLR(opt, 0.1, total_steps=10, **kw),
        lambda opt, **kw: torch.optim.lr_scheduler.CyclicLR(opt, 0.01, 0.1, step_size_up=2, **kw),
    ],
    ids=["OneCycleLR", "CyclicLR"],
)
def test_cycling_schedulers_need_cycle_momentum_off(make):
    """As the README says: they cycle torch's momentum/betas keys, which ravine calls beta."""
    p = torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match="momentum or beta1"):
        make(rt.Adam([p]))
    opt = rt.Adam([p])
    sched = make(opt, cycle_momentum=False)
    lrs = []
    for _ in range(4):
        p.grad = torch.ones(3)
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert len(set(lrs)) >= 3 and max(lrs) == pytest.approx(0.1), lrs  # lr cycles to max_lr
    assert opt.param_groups[0]["beta"] == 0.9  # beta stays


def test_param_groups_have_their_own_hyperparameters():
    a, b = torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)
    opt = rt.Momentum([{"params": [a]}, {"params": [b], "lr": 0.5, "beta": 0.0}], lr=0.1)
    a.grad, b.grad = torch.ones(1), torch.ones(1)
    opt.step()
    assert a.item() == pytest.approx(-0.1 * 0.1) and b.item() == pytest.approx(-0.5)


@pytest.mark.parametrize("name", NAMES)
def test_weight_decay_l2_is_added_to_the_gradient(name):
    p1 = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    p2 = p1.detach().clone().requires_grad_()
    o1 = rt.OPTIMIZERS[name]([p1], lr=0.1, weight_decay=0.3)
    o2 = rt.OPTIMIZERS[name]([p2], lr=0.1)
    for _ in range(3):
        g = torch.tensor([0.5, 0.25], dtype=torch.float64)
        p1.grad = g.clone()
        p2.grad = g + 0.3 * p2.detach()
        o1.step()
        o2.step()
    torch.testing.assert_close(p1, p2, rtol=1e-14, atol=0)


def test_decoupled_weight_decay_shrinks_theta_before_the_step():
    p = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    opt = rt.SGD([p], lr=0.1, weight_decay=0.5, decoupled_weight_decay=True)
    p.grad = torch.tensor([1.0, 1.0], dtype=torch.float64)
    opt.step()
    expected = torch.tensor([1.0, -2.0], dtype=torch.float64) * (1 - 0.1 * 0.5) - 0.1
    torch.testing.assert_close(p.detach(), expected, rtol=1e-15, atol=0)


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
@pytest.mark.parametrize("name", ["SGD", "Adagrad"])
def test_sparse_embedding_gradients_equal_dense(name, impl):
    def run(sparse):
        torch.manual_seed(0)
        emb = torch.nn.Embedding(20, 4, sparse=sparse).double()
        opt = rt.OPTIMIZERS[name](emb.parameters(), lr=0.1, **IMPLEMENTATIONS[impl])
        for step in range(6):
            idx = torch.tensor([[step % 5, 3, 3, 7 + step]])  # repeated index: coalescing
            opt.zero_grad()
            emb(idx).pow(2).sum().backward()
            assert emb.weight.grad.is_sparse == sparse
            opt.step()
        return emb.weight.detach(), opt.state[emb.weight]

    (w_sparse, s_sparse), (w_dense, s_dense) = run(True), run(False)
    torch.testing.assert_close(w_sparse, w_dense, rtol=1e-14, atol=1e-16)
    for key in s_dense:
        if isinstance(s_dense[key], torch.Tensor):
            torch.testing.assert_close(s_sparse[key], s_dense[key], rtol=1e-14, atol=1e-16)


@pytest.mark.parametrize("name", [n for n in NAMES if n not in ("SGD", "Adagrad")])
def test_sparse_gradient_rejected_before_anything_changes(name):
    dense = torch.nn.Parameter(torch.ones(3))
    emb = torch.nn.Embedding(5, 2, sparse=True)
    opt = rt.OPTIMIZERS[name]([dense, emb.weight], lr=0.1)
    dense.grad = torch.ones(3)
    emb(torch.tensor([1])).sum().backward()
    before = emb.weight.detach().clone()
    with pytest.raises(RuntimeError, match=f"{name} does not support sparse gradients"):
        opt.step()
    assert torch.equal(dense.detach(), torch.ones(3)) and torch.equal(emb.weight.detach(), before)
    assert not opt.state[dense]


def test_sparse_with_weight_decay_rejected():
    emb = torch.nn.Embedding(5, 2, sparse=True)
    opt = rt.Adagrad(emb.parameters(), weight_decay=0.1)
    emb(torch.tensor([1])).sum().backward()
    with pytest.raises(RuntimeError, match="weight_decay=0.1 is not supported with sparse"):
        opt.step()


@pytest.mark.parametrize("name", NAMES)
def test_repr_hooks_and_deepcopy(name):
    p = torch.zeros(2, requires_grad=True)
    opt = rt.OPTIMIZERS[name]([p])
    assert name in repr(opt)
    calls = []
    handle = opt.register_step_post_hook(lambda *_: calls.append(1))
    p.grad = torch.ones(2)
    opt.step()
    handle.remove()
    opt.step()
    assert calls == [1]
    clone = copy.deepcopy(opt)
    assert clone.state_dict()["param_groups"] == opt.state_dict()["param_groups"]


def test_old_checkpoint_without_a_new_hyperparameter_loads_with_its_default():
    p = torch.zeros(2, requires_grad=True)
    opt = rt.Adam([p])
    p.grad = torch.ones(2)
    opt.step()
    sd = opt.state_dict()
    del sd["param_groups"][0]["eps_mode"]
    opt2 = rt.Adam([p])
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["eps_mode"] == "inside"
    opt2.step()


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_a_parameter_listed_twice_warns_and_steps_once(impl):
    a, b = torch.ones(2, requires_grad=True), torch.ones(2, requires_grad=True)
    with pytest.warns(UserWarning, match="duplicate parameters"):
        twice = rt.Momentum([a, a], lr=0.1, **IMPLEMENTATIONS[impl])
    once = rt.Momentum([b], lr=0.1, **IMPLEMENTATIONS[impl])
    assert len(twice.param_groups[0]["params"]) == 1
    for _ in range(3):
        a.grad, b.grad = torch.ones(2), torch.ones(2)
        twice.step()
        once.step()
    assert torch.equal(a.detach(), b.detach())


def test_a_parameter_in_two_groups_is_refused():
    p = torch.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="more than one parameter group"):
        rt.Adam([{"params": [p]}, {"params": [p]}])
