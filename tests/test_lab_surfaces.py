"""The lab's surfaces: test functions, the mini-batch surface, user callables; runs on them."""

from __future__ import annotations

import numpy as np
import pytest

import ravine.numpy as rn
from ravine.lab import metrics, minibatch, surfaces
from ravine.lab.run import run, run_all, run_seeds

KNOWN = {
    # name: (surface, a point, f there by hand)
    "beale": (surfaces.beale(), (1.0, 1.0), 1.5**2 + 2.25**2 + 2.625**2),
    "booth": (surfaces.booth(), (0.0, 0.0), 49.0 + 25.0),
    "himmelblau": (surfaces.himmelblau(), (0.0, 0.0), 121.0 + 49.0),
    "rastrigin": (surfaces.rastrigin(), (0.5, 0.0), 20.0 + 0.25 + 10.0 - 10.0),
    "saddle": (surfaces.saddle(), (1.0, 2.0), -3.0),
    "plateau": (surfaces.plateau(), (1.0, 1.0), 1.0 - np.exp(-1.0)),
}


@pytest.mark.parametrize("name", list(surfaces.SURFACES))
def test_every_surface_gradient_matches_finite_differences(name: str) -> None:
    surface = surfaces.SURFACES[name]()
    rng = np.random.default_rng(1)
    h = 1e-6
    for theta in rng.uniform(-1.5, 1.5, size=(4, 2)):
        numeric = [
            (surface.f(theta + h * e) - surface.f(theta - h * e)) / (2 * h) for e in np.eye(2)
        ]
        np.testing.assert_allclose(surface.grad(theta), numeric, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(surfaces.SURFACES))
def test_every_surface_is_stationary_at_its_minimum(name: str) -> None:
    surface = surfaces.SURFACES[name]()
    np.testing.assert_allclose(surface.grad(surface.minimum), 0.0, atol=1e-12)
    (x0, x1), (y0, y1) = surface.bounds
    assert x0 < surface.minimum[0] < x1 and y0 < surface.minimum[1] < y1


@pytest.mark.parametrize("name", list(KNOWN))
def test_surface_values_by_hand(name: str) -> None:
    surface, point, value = KNOWN[name]
    assert surface.f(np.array(point)) == pytest.approx(value, rel=1e-12)
    assert surface.f(surface.minimum) == pytest.approx(0.0, abs=1e-12)


def test_himmelblau_has_four_zero_minima() -> None:
    s = surfaces.himmelblau()
    for point in [(3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126)]:
        assert s.f(np.array(point)) < 1e-9


def test_user_callable_gradient_by_autograd_and_supplied() -> None:
    import torch

    auto = surfaces.from_callable(lambda t: torch.sin(t[0]) * t[1] ** 2, minimum=(0.0, 0.0))
    theta = np.array([0.3, -1.2])
    expected = [np.cos(0.3) * 1.44, np.sin(0.3) * 2 * -1.2]
    np.testing.assert_allclose(auto.grad(theta), expected, rtol=1e-14)
    assert auto.f(theta) == pytest.approx(np.sin(0.3) * 1.44)

    given = surfaces.from_callable(
        lambda t: float(t @ t), grad=lambda t: 2 * t, name="bowl", minimum=(0.0, 0.0)
    )
    traj = run(rn.SGD(lr=0.25), given, [1.0, -2.0], steps=1)
    np.testing.assert_allclose(traj.thetas[1], [0.5, -1.0])
    assert traj.surface == "bowl"


# --- mini-batch --------------------------------------------------------------------------


def test_minibatch_minimum_is_least_squares_solution() -> None:
    s = minibatch.least_squares(batch_size=8)
    X, y = minibatch.least_squares_data()
    expected = np.linalg.lstsq(X, y, rcond=None)[0]
    np.testing.assert_allclose(s.minimum, expected, rtol=1e-10)
    np.testing.assert_allclose(s.grad(s.minimum), 0.0, atol=1e-10)


def test_full_batch_sample_is_the_full_gradient() -> None:
    s = minibatch.least_squares(batch_size=512)
    assert s.sample_grad is not None
    theta = np.array([0.5, 0.1])
    np.testing.assert_allclose(
        s.sample_grad(theta, np.random.default_rng(3)), s.grad(theta), rtol=1e-12
    )
    # and a run with it is gradient descent exactly
    a = run(rn.SGD(lr=0.01), s, [0.0, 0.0], steps=20, seed=1)
    det = surfaces.Surface("det", s.f, s.grad, s.minimum, s.bounds)
    b = run(rn.SGD(lr=0.01), det, [0.0, 0.0], steps=20)
    np.testing.assert_allclose(a.thetas, b.thetas, rtol=1e-12)


@pytest.mark.parametrize("batch_size", [4, 64])
def test_minibatch_gradient_is_unbiased_with_the_seeds_variance(batch_size: int) -> None:
    """Mean over draws → full gradient; covariance → S·(n − b)/(b·(n − 1))."""
    s = minibatch.least_squares(batch_size=batch_size)
    assert s.sample_grad is not None
    X, y = minibatch.least_squares_data()
    theta, rng = np.array([0.0, 0.0]), np.random.default_rng(0)
    draws = np.array([s.sample_grad(theta, rng) for _ in range(4000)])
    cov = minibatch.batch_noise(X, y, theta, batch_size)
    se = np.sqrt(np.diag(cov) / len(draws))
    np.testing.assert_array_less(np.abs(draws.mean(axis=0) - s.grad(theta)), 5 * se)
    np.testing.assert_allclose(np.var(draws, axis=0, ddof=1), np.diag(cov), rtol=0.1)


def test_smaller_batches_end_noisier() -> None:
    """Over seeds, SGD's final loss gap grows as the batch shrinks (noise ∝ 1/|B|)."""
    gaps = {}
    for b in (2, 128):
        s = minibatch.least_squares(batch_size=b)
        trajs = run_seeds(rn.SGD(lr=0.03), s, [0.0, 0.0], 400, seeds=range(5))
        gaps[b] = metrics.spread([t.losses[-50:].mean() - t.f_min for t in trajs])
    assert gaps[2]["mean"] > 10 * gaps[128]["mean"]
    assert gaps[2]["n"] == 5 and gaps[2]["min"] <= gaps[2]["median"] <= gaps[2]["max"]


def test_runs_are_seeded() -> None:
    s = minibatch.least_squares(batch_size=4)
    a, b = (run(rn.Adam(lr=0.1), s, [0.0, 0.0], 30, seed=7) for _ in range(2))
    c = run(rn.Adam(lr=0.1), s, [0.0, 0.0], 30, seed=8)
    np.testing.assert_array_equal(a.thetas, b.thetas)
    assert a.seed == 7 and not np.allclose(a.thetas, c.thetas)


def test_run_all_runs_each_named_optimizer_with_its_hyperparameters() -> None:
    trajs = run_all(
        {"SGD": {"lr": 0.02}, "Adam": {"lr": 0.1, "beta": 0.5}}, surfaces.booth(), [0, 0], 5
    )
    assert list(trajs) == ["SGD", "Adam"]
    assert (
        trajs["Adam"].hyperparameters["beta"] == 0.5 and trajs["SGD"].hyperparameters["lr"] == 0.02
    )
    assert list(run_all(["NAG"], surfaces.booth(), [0, 0], 3)) == ["NAG"]


# --- recorded internals -----------------------------------------------------------------


def test_effective_lr_is_adagrads_lr_over_root_g() -> None:
    lr = 0.5
    traj = run(rn.Adagrad(lr=lr), surfaces.valley(), [-9.0, 2.0], steps=6)
    # independent: G_k = Σ_{j<k} g_j², the effective step of move k is lr/√(G_{k+1} + ε)
    G = np.cumsum(traj.grads[:-1] ** 2, axis=0)
    np.testing.assert_allclose(traj.effective_lr, lr / np.sqrt(G + 1e-8), rtol=1e-12)
    np.testing.assert_allclose(traj.internals["G"][1:], G, rtol=1e-12)
    sgd = run(rn.SGD(lr=0.03), surfaces.valley(), [-9.0, 2.0], steps=4)
    np.testing.assert_allclose(sgd.effective_lr, 0.03, rtol=1e-12)
