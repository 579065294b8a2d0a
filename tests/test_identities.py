"""Algebraic identities between rules: cheap checks that catch sign, ε and off-by-one bugs."""

from __future__ import annotations

import math

import numpy as np
import pytest

import ravine.numpy as rn

RNG = np.random.default_rng(0)
GRADS = [RNG.normal(size=5) for _ in range(30)]
THETA0 = RNG.normal(size=5)


def _run(opt, grads=GRADS, theta0=THETA0):
    params, state = theta0.copy(), opt.init(theta0)
    out = []
    for g in grads:
        params, state = opt.update(params, g, state)
        out.append(opt.theta(params, state))
    return np.array(out)


@pytest.mark.parametrize("ema", [True, False])
def test_momentum_with_zero_beta_is_sgd(ema):
    np.testing.assert_allclose(
        _run(rn.Momentum(lr=0.1, beta=0.0, ema=ema)), _run(rn.SGD(lr=0.1)), rtol=1e-14
    )


@pytest.mark.parametrize("lookahead", ["step", "momentum"])
def test_nag_with_zero_beta_is_sgd_on_fixed_gradients(lookahead):
    np.testing.assert_allclose(
        _run(rn.NAG(lr=0.1, beta=0.0, lookahead=lookahead)), _run(rn.SGD(lr=0.1)), rtol=1e-13
    )


def test_ema_momentum_is_sum_momentum_with_scaled_lr():
    """m ← βm + (1−β)g with lr equals m ← βm + g with lr·(1−β) (torch's form)."""
    a = _run(rn.Momentum(lr=0.2, beta=0.9))
    b = _run(rn.Momentum(lr=0.2 * 0.1, beta=0.9, ema=False))
    np.testing.assert_allclose(a, b, rtol=1e-12)


def test_adam_without_momentum_becomes_rmsprop_once_debiasing_fades():
    """Adam(β=0) = g/√(G/(1−γᵗ) + ε): RMSProp once γᵗ is negligible."""
    grads = [RNG.normal(size=5) for _ in range(400)]
    adam = _run(rn.Adam(lr=1e-3, beta=0.0, gamma=0.9), grads)
    rms = _run(rn.RMSProp(lr=1e-3, gamma=0.9), grads)
    steps_adam, steps_rms = np.diff(adam, axis=0), np.diff(rms, axis=0)
    np.testing.assert_allclose(steps_adam[-50:], steps_rms[-50:], rtol=1e-12)
    assert not np.allclose(steps_adam[:3], steps_rms[:3], rtol=1e-3)  # early: debiasing matters


def test_first_adagrad_step_is_lr_times_sign():
    g = np.array([3.0, -1e-3, 0.5])
    opt = rn.Adagrad(lr=0.1, eps=1e-30)
    theta, _ = opt.update(np.zeros(3), g, opt.init(np.zeros(3)))
    np.testing.assert_allclose(theta, -0.1 * np.sign(g), rtol=1e-14)


def test_first_adadelta_step():
    """Δ₁ = √ε / √(ε + (1 − γ)g²) · g."""
    g, gamma, eps = np.array([2.0, -0.5]), 0.95, 1e-6
    opt = rn.AdaDelta(gamma=gamma, eps=eps)
    theta, _ = opt.update(np.zeros(2), g, opt.init(np.zeros(2)))
    np.testing.assert_allclose(
        theta, -math.sqrt(eps) / np.sqrt(eps + (1 - gamma) * g**2) * g, rtol=1e-14
    )


def test_normalized_gd_moves_exactly_lr_per_step():
    path = _run(rn.NormalizedGD(lr=0.07))
    np.testing.assert_allclose(np.linalg.norm(np.diff(path, axis=0), axis=1), 0.07, rtol=1e-12)


def test_normalized_gd_norm_spans_the_whole_group():
    opt = rn.NormalizedGD(lr=1.0)
    params = {"a": np.zeros(2), "b": np.zeros(1)}
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([4.0])}
    new, _ = opt.update(params, grads, opt.init(params))
    np.testing.assert_allclose(new["a"], [-0.6, 0.0])
    np.testing.assert_allclose(new["b"], [-0.8])


def test_normalized_gd_zero_gradient_makes_no_step_and_no_nan():
    opt = rn.NormalizedGD(lr=1.0)
    new, _ = opt.update(np.ones(3), np.zeros(3), opt.init(np.ones(3)))
    np.testing.assert_array_equal(new, np.ones(3))


def test_nadam_and_adam_reach_the_same_minimum():
    A = np.diag([1.0, 10.0])
    results = []
    for opt in (rn.Adam(lr=0.01), rn.NAdam(lr=0.01)):
        params, state = np.array([1.0, 1.0]), opt.init(np.zeros(2))
        for _ in range(3000):
            params, state = opt.update(params, A @ params, state)
        results.append(params)
    np.testing.assert_allclose(results[0], 0.0, atol=5e-3)
    np.testing.assert_allclose(results[1], 0.0, atol=5e-3)


def test_nadam_constant_mu_is_the_lookahead_of_adam_momentum():
    """NAdam's numerator = β·m_t/(1−β^{t+1}) + (1−β)·g_t/(1−βᵗ) (optax's form)."""
    beta, gamma, eps = 0.9, 0.999, 1e-8
    opt = rn.NAdam(lr=1.0, beta=beta, gamma=gamma, eps=eps)
    params, state = np.zeros(5), opt.init(np.zeros(5))
    m, G = np.zeros(5), np.zeros(5)
    for t, g in enumerate(GRADS[:10], start=1):
        before = params
        params, state = opt.update(params, g, state)
        m, G = beta * m + (1 - beta) * g, gamma * G + (1 - gamma) * g * g
        m_hat = beta * m / (1 - beta ** (t + 1)) + (1 - beta) * g / (1 - beta**t)
        np.testing.assert_allclose(
            before - params, m_hat / np.sqrt(G / (1 - gamma**t) + eps), rtol=1e-12
        )


def test_torch_nadam_schedule_is_available():
    """momentum_decay=ψ uses μ_t = β(1 − ½·0.96^(tψ)); ψ = 0 is a constant β/2."""
    from ravine.rules.nadam import momentum_schedule

    assert momentum_schedule(0.9, None, 7) == 0.9
    assert momentum_schedule(0.9, 0.0, 7) == pytest.approx(0.45)
    assert momentum_schedule(0.9, 4e-3, 1) == pytest.approx(0.9 * (1 - 0.5 * 0.96**0.004))
