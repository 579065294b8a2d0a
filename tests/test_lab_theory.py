"""Theory checks (issue 3, item 5): measured rates, NAG's two forms, Distill's map."""

from __future__ import annotations

import math

import numpy as np
import pytest

import ravine.numpy as rn
from ravine.lab import surfaces, theory
from ravine.lab.metrics import distances, fitted_rate
from ravine.lab.run import run


@pytest.mark.parametrize("kappa", theory.KAPPAS)
def test_gd_and_heavy_ball_converge_at_the_textbook_rates(kappa: float) -> None:
    result = theory.rate_check(kappa)
    sk = math.sqrt(kappa)
    expected = {"GD": (kappa - 1) / (kappa + 1), "heavy ball": (sk - 1) / (sk + 1)}
    for name, rate in expected.items():
        r = result[name]
        assert r["theory"] == pytest.approx(rate, rel=1e-14)
        # within 2% in the rate and in its exponent ln r (the stricter of the two)
        assert abs(r["measured"] / rate - 1) < 0.02
        assert abs(math.log(r["measured"]) / math.log(rate) - 1) < 0.02
    assert result["GD"]["lr"] == pytest.approx(2 / (1 + kappa))
    # the (1 − β) mapping: heavy-ball α = lr·(1 − β), β = r²
    hb = result["heavy ball"]
    assert hb["lr"] * (1 - hb["beta"]) == pytest.approx(4 / (1 + sk) ** 2)
    assert hb["beta"] == pytest.approx(expected["heavy ball"] ** 2)


def test_heavy_ball_with_ema_false_is_the_same_iteration() -> None:
    """Momentum(ema=False, lr=α) and Momentum(lr=α/(1 − β)) take the same steps."""
    alpha, beta, _ = theory.heavy_ball_optimal(1.0, 100.0)
    s = surfaces.valley(100.0)
    a = run(rn.Momentum(lr=alpha / (1 - beta), beta=beta), s, [1.0, 1.0], 200).thetas
    b = run(rn.Momentum(lr=alpha, beta=beta, ema=False), s, [1.0, 1.0], 200).thetas
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-300)


def test_gd_off_optimum_is_slower() -> None:
    """Sanity for the fit: GD at half the optimal lr contracts by 1 − lr·μ = 1 − 1/(1 + κ)."""
    s = surfaces.valley(10.0)
    traj = run(rn.SGD(lr=1 / 11), s, [1.0, 1.0], 300)
    assert fitted_rate(distances(traj, s.minimum), start=150) == pytest.approx(10 / 11, rel=1e-9)


@pytest.mark.parametrize("surface", [surfaces.valley(30.0, 0.3), surfaces.rosenbrock()])
def test_nag_literal_and_reparametrized_trajectories_are_identical(
    surface: surfaces.Surface,
) -> None:
    x0 = [-9.0, 2.0] if surface.name.startswith("valley") else [-1.0, 1.5]
    lr = 0.05 if surface.name.startswith("valley") else 0.001
    literal = theory.nag_literal(surface, x0, lr, 0.9, 200)
    reparam = theory.nag_reparametrized(surface, x0, lr, 0.9, 200)
    np.testing.assert_allclose(reparam, literal, rtol=1e-12, atol=1e-12)


def test_heavy_ball_rate_and_regions_by_hand() -> None:
    # β = 0: plain GD, rate |1 − h|
    np.testing.assert_allclose(theory.heavy_ball_rate([0.5, 1.5, 2.5], 0.0), [0.5, 0.5, 1.5])
    # complex roots have modulus √β
    assert theory.heavy_ball_rate(1.0, 0.81) == pytest.approx(0.9)
    assert theory.heavy_ball_region(0.001, 0.81) == "monotone"  # (1 − 0.9)² = 0.01
    assert theory.heavy_ball_region(1.0, 0.81) == "ripples"
    assert theory.heavy_ball_region(3.615, 0.81) == "oscillation"  # (1.9)² = 3.61, 2 + 2β = 3.62
    assert theory.heavy_ball_region(3.63, 0.81) == "divergence"


def test_convergence_map_from_real_runs_matches_distill() -> None:
    h = np.linspace(0.02, 4.0, 34)
    betas = np.linspace(0.0, 0.95, 12)
    m = theory.convergence_map(h, betas, steps=200)
    assert m["rate"].shape == m["theory"].shape == (12, 34)
    lo = (1 - np.sqrt(betas))[:, None] ** 2
    hi = (1 + np.sqrt(betas))[:, None] ** 2
    edge = 2 + 2 * betas[:, None]
    margin = 0.05
    hh = h[None, :]
    # divergence beyond h = 2 + 2β, convergence below
    assert np.all(m["rate"][hh > edge + margin] > 1)
    assert np.all(m["rate"][hh < edge - margin] < 1)
    # measured rate = largest root modulus
    finite = hh < edge - margin
    np.testing.assert_allclose(m["rate"][finite], m["theory"][finite], atol=0.03)
    # ripples: complex roots of modulus √β, θ changes sign now and then
    ripples = (hh > lo + margin) & (hh < hi - margin)
    sqrt_b = np.broadcast_to(np.sqrt(betas)[:, None], ripples.shape)
    np.testing.assert_allclose(m["theory"][ripples], sqrt_b[ripples], rtol=1e-7)
    assert np.all((m["sign_changes"][ripples] > 0) & (m["sign_changes"][ripples] < 1))
    # monotone: θ never changes sign; oscillation: every step
    assert np.all(m["sign_changes"][(hh < lo - 0.005) & (hh > 0)] == 0)
    assert np.all(m["sign_changes"][(hh > hi + margin) & (hh < edge - margin)] == 1)
