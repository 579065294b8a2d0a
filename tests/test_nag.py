"""NAG exactly as the seed writes it, in the ordinary training loop.

The seed: m_t = β·m_{t−1} + (1 − β)·∇L(θ_{t−1} − α·m_{t−1});  θ_t = θ_{t−1} − α·m_t.
Here that recurrence is evaluated literally (a gradient at an explicit look-ahead point)
and compared with the θ that ``opt.theta(p)`` reports while training a real model with
``loss.backward(); opt.step()``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.func import functional_call

import ravine.numpy as rn
import ravine.torch as rt
from conftest import IMPLEMENTATIONS

torch.manual_seed(0)
X = torch.randn(32, 4, dtype=torch.float64)
Y = torch.randn(32, 2, dtype=torch.float64)


def _model() -> torch.nn.Module:
    torch.manual_seed(3)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)
    ).double()


def _loss(model: torch.nn.Module, params: dict[str, torch.Tensor] | None = None):
    out = model(X) if params is None else functional_call(model, params, (X,))
    return ((out - Y) ** 2).mean()


def _literal_nag(model, lrs, beta, c, steps):
    """θ_t of the seed's recurrence, with the look-ahead θ − c·α_{t−1}·m_{t−1}."""
    theta = {k: v.detach().clone() for k, v in model.named_parameters()}
    m = {k: torch.zeros_like(v) for k, v in theta.items()}
    prev_lr, out = 0.0, []
    for t in range(steps):
        ahead = {k: (theta[k] - c * prev_lr * m[k]).requires_grad_() for k in theta}
        grads = torch.autograd.grad(_loss(model, ahead), list(ahead.values()))
        for k, g in zip(ahead, grads, strict=True):
            m[k] = beta * m[k] + (1 - beta) * g
            theta[k] = theta[k] - lrs[t] * m[k]
        prev_lr = lrs[t]
        out.append({k: v.clone() for k, v in theta.items()})
    return out


@pytest.mark.parametrize("use_closure", [False, True])
@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
@pytest.mark.parametrize("lookahead", ["step", "momentum"])
def test_theta_follows_the_literal_recurrence(lookahead, impl, use_closure):
    model, beta, lr, steps = _model(), 0.9, 0.3, 40
    expected = _literal_nag(model, [lr] * steps, beta, 1.0 if lookahead == "step" else beta, steps)
    opt = rt.NAG(model.parameters(), lr=lr, beta=beta, lookahead=lookahead, **IMPLEMENTATIONS[impl])

    def closure():
        opt.zero_grad()
        loss = _loss(model)
        loss.backward()
        return loss

    for t in range(steps):
        if use_closure:
            opt.step(closure)
        else:
            closure()
            opt.step()
        for name, p in model.named_parameters():
            torch.testing.assert_close(opt.theta(p), expected[t][name], rtol=1e-12, atol=1e-13)


def test_literal_recurrence_under_an_lr_schedule():
    """With a scheduler, the look-ahead uses the lr of the step that placed it."""
    model, beta, steps = _model(), 0.8, 30
    opt = rt.NAG(model.parameters(), lr=0.4, beta=beta)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.95)
    lrs = [0.4 * 0.95**t for t in range(steps)]
    expected = _literal_nag(model, lrs, beta, 1.0, steps)
    for t in range(steps):
        opt.zero_grad()
        _loss(model).backward()
        opt.step()
        sched.step()
        for name, p in model.named_parameters():
            torch.testing.assert_close(opt.theta(p), expected[t][name], rtol=1e-12, atol=1e-13)


def test_parameters_hold_the_lookahead_point():
    """Between steps the parameters sit at θ − lr·m, where the next gradient is taken."""
    p = torch.tensor([1.0, -1.0], dtype=torch.float64, requires_grad=True)
    opt = rt.NAG([p], lr=0.5, beta=0.5)
    p.grad = torch.tensor([2.0, 4.0], dtype=torch.float64)
    opt.step()
    m = opt.state[p]["m"]
    torch.testing.assert_close(m, torch.tensor([1.0, 2.0], dtype=torch.float64))
    theta = torch.tensor([1.0, -1.0], dtype=torch.float64) - 0.5 * m
    torch.testing.assert_close(opt.theta(p), theta)
    torch.testing.assert_close(p.detach(), theta - 0.5 * m)


def test_swap_to_theta_evaluates_at_theta_and_restores_bitwise():
    model = _model()
    opt = rt.NAG(model.parameters(), lr=0.3)
    for _ in range(5):
        opt.zero_grad()
        _loss(model).backward()
        opt.step()
    stored = [p.detach().clone() for p in model.parameters()]
    thetas = [opt.theta(p) for p in model.parameters()]
    with opt.swap_to_theta():
        for p, th in zip(model.parameters(), thetas, strict=True):
            assert torch.equal(p.detach(), th)
    for p, s in zip(model.parameters(), stored, strict=True):
        assert torch.equal(p.detach(), s)


def test_theta_is_the_parameter_for_other_rules():
    p = torch.ones(3, requires_grad=True)
    opt = rt.Momentum([p], lr=0.1)
    p.grad = torch.ones(3)
    opt.step()
    assert torch.equal(opt.theta(p), p.detach())
    with opt.swap_to_theta():
        assert torch.equal(opt.theta(p), p.detach())


def test_numpy_nag_matches_literal_recurrence_on_a_quadratic():
    A = np.diag([1.0, 25.0])
    opt, theta = rn.NAG(lr=0.03, beta=0.9), np.array([3.0, 1.0])
    params, state = theta.copy(), opt.init(theta)
    m = np.zeros(2)
    for _ in range(50):
        m = 0.9 * m + 0.1 * (A @ (theta - 0.03 * m))
        theta = theta - 0.03 * m
        params, state = opt.update(params, A @ params, state)
        np.testing.assert_allclose(opt.theta(params, state), theta, rtol=1e-12, atol=1e-14)
