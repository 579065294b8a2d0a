"""The lab: surfaces, runs, metrics, lr search, the demo and the ``ravine`` command."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ravine.numpy as rn
from ravine import cli
from ravine.lab import demo, metrics, surfaces
from ravine.lab.run import Trajectory, run
from ravine.lab.tune import DEFAULT_GRID, tune_lr

SURFACES = {
    "valley": surfaces.valley(),
    "valley rotated": surfaces.valley(kappa=20.0, rotation=0.7, scale=0.5),
    "rosenbrock": surfaces.rosenbrock(),
}


def _hessian(surface: surfaces.Surface) -> np.ndarray:
    """A of a quadratic with minimum at 0: its gradient is A θ, so column j is ∇f(e_j)."""
    return np.stack([surface.grad(e) for e in np.eye(2)], axis=1)


def _path(c: list[float], losses: list[float] | None = None) -> Trajectory:
    """A hand-made trajectory moving along θ[1] through the coordinates ``c``."""
    thetas = np.stack([np.zeros(len(c)), np.asarray(c, dtype=float)], axis=1)
    loss = np.zeros(len(c)) if losses is None else np.asarray(losses, dtype=float)
    return Trajectory("hand", {}, "plane", 0.0, thetas, thetas, loss, np.zeros_like(thetas), {})


UP = np.array([0.0, 1.0])


# --- surfaces ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", SURFACES)
def test_gradient_matches_finite_differences(name: str) -> None:
    surface = SURFACES[name]
    rng = np.random.default_rng(0)
    h = 1e-6
    for theta in rng.uniform(-2, 2, size=(5, 2)):
        numeric = np.array(
            [(surface.f(theta + h * e) - surface.f(theta - h * e)) / (2 * h) for e in np.eye(2)]
        )
        np.testing.assert_allclose(surface.grad(theta), numeric, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", SURFACES)
def test_minimum_is_stationary(name: str) -> None:
    surface = SURFACES[name]
    assert surface.f(surface.minimum) == 0.0
    np.testing.assert_array_equal(surface.grad(surface.minimum), np.zeros(2))


@pytest.mark.parametrize("rotation", [0.0, 0.3, -1.2])
def test_valley_curvature_is_kappa_along_steep_and_one_along_floor(rotation: float) -> None:
    surface = surfaces.valley(kappa=50.0, rotation=rotation, scale=2.0)
    A = _hessian(surface)
    w1, w2 = surfaces.valley_axes(rotation)
    assert surface.steep is not None
    np.testing.assert_allclose(surface.steep, w1)
    np.testing.assert_allclose(A @ w1, 100.0 * w1, atol=1e-12)
    np.testing.assert_allclose(A @ w2, 2.0 * w2, atol=1e-12)
    np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(A)), [2.0, 100.0])
    theta = np.array([0.4, -1.3])
    assert surface.f(theta) == pytest.approx(0.5 * theta @ A @ theta)


def test_unrotated_valley_is_steep_along_theta_1() -> None:
    surface = surfaces.valley(kappa=50.0)
    np.testing.assert_allclose(_hessian(surface), np.diag([1.0, 50.0]))
    lo, hi = surface.bounds
    assert lo[0] < -9 < lo[1] and hi[0] < 2 < hi[1]  # the demo's start is in the window


def test_valley_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="kappa"):
        surfaces.valley(kappa=0.5)


# --- run --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(rn.OPTIMIZERS))
def test_trajectory_shapes(name: str) -> None:
    opt = rn.OPTIMIZERS[name](lr=0.01)
    traj = run(opt, surfaces.valley(), [-9.0, 2.0], steps=7)
    assert traj.name == name and traj.steps == 7 and not traj.diverged
    assert traj.hyperparameters == opt.hparams
    assert traj.thetas.shape == traj.points.shape == traj.grads.shape == (8, 2)
    assert traj.losses.shape == (8,)
    np.testing.assert_array_equal(traj.thetas[0], [-9.0, 2.0])
    assert set(traj.internals) == set(opt.spec.state_fields)
    for values in traj.internals.values():
        assert values.shape[0] == 8
    surface = surfaces.valley()
    np.testing.assert_allclose(traj.losses, [surface.f(t) for t in traj.thetas])


def test_sgd_on_the_valley_is_the_closed_form_iteration() -> None:
    """θ_k = (I − lr·A)^k θ_0 for gradient descent on f = ½ θᵀAθ."""
    surface = surfaces.valley(kappa=30.0, rotation=0.4)
    A, lr, x0 = _hessian(surface), 0.05, np.array([-9.0, 2.0])
    traj = run(rn.SGD(lr=lr), surface, x0, steps=40)
    M = np.eye(2) - lr * A
    expected = np.stack([np.linalg.matrix_power(M, k) @ x0 for k in range(41)])
    np.testing.assert_allclose(traj.thetas, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(traj.points, traj.thetas)
    np.testing.assert_allclose(traj.grads, expected @ A.T, rtol=1e-12, atol=1e-12)


def test_nag_records_theta_and_takes_the_gradient_at_the_stored_point() -> None:
    """The seed's NAG: m ← β·m + (1 − β)·∇f(θ − lr·m), θ ← θ − lr·m."""
    surface, lr, beta = surfaces.valley(kappa=10.0, rotation=0.2), 0.1, 0.9
    traj = run(rn.NAG(lr=lr, beta=beta), surface, [-9.0, 2.0], steps=20)

    theta, m = np.array([-9.0, 2.0]), np.zeros(2)
    for k in range(21):
        np.testing.assert_allclose(traj.thetas[k], theta, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(traj.points[k], theta - lr * m, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(traj.internals["m"][k], m, rtol=1e-12, atol=1e-12)
        m = beta * m + (1 - beta) * surface.grad(theta - lr * m)
        theta = theta - lr * m
    # the gradient is the stored point's (φ), the loss is θ's
    np.testing.assert_allclose(traj.grads, [surface.grad(p) for p in traj.points])
    np.testing.assert_allclose(traj.losses, [surface.f(t) for t in traj.thetas])
    assert not np.allclose(traj.thetas[1:], traj.points[1:])


def test_adam_internals_are_its_state_after_each_step() -> None:
    surface = surfaces.valley()
    opt = rn.Adam(lr=0.1)
    traj = run(opt, surface, [-9.0, 2.0], steps=5)
    params, state = np.array([-9.0, 2.0]), opt.init(np.array([-9.0, 2.0]))
    for k in range(5):
        params, state = opt.update(params, surface.grad(params), state)
        np.testing.assert_array_equal(traj.internals["m"][k + 1], state.rule.m)
        np.testing.assert_array_equal(traj.internals["G"][k + 1], state.rule.G)


def test_a_diverging_run_stops_and_pads_with_nan() -> None:
    traj = run(rn.SGD(lr=10.0), surfaces.valley(), [-9.0, 2.0], steps=400)
    assert traj.diverged
    assert traj.thetas.shape == (401, 2) and np.isnan(traj.losses[-1])
    assert math.isnan(metrics.zigzag_index(traj, UP))
    assert metrics.steps_to_tolerance(traj, 1e-6) is None


# --- metrics ----------------------------------------------------------------------------


def test_steps_to_tolerance_first_hit_and_stay() -> None:
    traj = _path([0.0] * 6, losses=[5.0, 0.5, 3.0, 0.05, 0.01, 0.02])
    assert metrics.steps_to_tolerance(traj, 1.0) == 1
    assert metrics.steps_to_tolerance(traj, 1.0, stay=True) == 3
    assert metrics.steps_to_tolerance(traj, 0.01) == 4
    assert metrics.steps_to_tolerance(traj, 0.01, stay=True) is None
    assert metrics.steps_to_tolerance(traj, 10.0, stay=True) == 0
    assert metrics.steps_to_tolerance(traj, 1e-3) is None
    assert metrics.final_loss(traj) == 0.02


def test_steps_to_tolerance_is_relative_to_the_minimum() -> None:
    traj = run(rn.SGD(lr=0.1), surfaces.rosenbrock(), [1.0, 1.0], steps=3)
    assert traj.f_min == 0.0 and metrics.steps_to_tolerance(traj, 0.0) == 0


@pytest.mark.parametrize("r", [0.2, 0.58, 0.96])
def test_zigzag_of_a_geometric_bounce_is_its_contraction(r: float) -> None:
    """c_k = 2·(−r)^k, gradient descent's bounce across a quadratic valley, scores → r.

    Of N moves |Δ_k| ∝ r^k, all but the first are taken back: r·(1 − r^(N−1)) / (1 − r^N).
    """
    n = 60
    traj = _path([2.0 * (-r) ** k for k in range(n + 1)])
    expected = r * (1 - r ** (n - 1)) / (1 - r**n)
    assert metrics.zigzag_index(traj, UP) == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(r, rel=0.05)


def test_zigzag_and_travel_on_hand_made_paths() -> None:
    monotone = _path([2.0, 1.5, 1.0, 0.2, 0.0])
    assert metrics.zigzag_index(monotone, UP) == 0.0
    assert metrics.travel_ratio(monotone, UP) == 1.0
    swing = _path([2.0, -2.0, 0.0])  # 4 down, 2 back up: 2 of 6 taken back at once
    assert metrics.zigzag_index(swing, UP) == pytest.approx(1 / 3)
    assert metrics.travel_ratio(swing, UP) == pytest.approx(3.0)
    # only the component along the (normalized) direction counts
    assert metrics.zigzag_index(swing, 5 * UP) == pytest.approx(1 / 3)
    assert metrics.zigzag_index(swing, np.array([1.0, 0.0])) == 0.0
    assert metrics.travel_ratio(swing, np.array([1.0, 0.0])) == 1.0
    assert metrics.travel_ratio(_path([0.0, 1.0, 0.0]), UP) == math.inf


# --- tune -------------------------------------------------------------------------------


def test_tune_lr_returns_a_finite_grid_lr_and_its_record() -> None:
    surface, grid = surfaces.valley(kappa=10.0), (1e-3, 1e-2, 0.1, 0.18, 1.0)
    result = tune_lr("SGD", surface, [-9.0, 2.0], steps=60, tol=1e-6, grid=grid)
    assert math.isfinite(result.lr) and result.lr in grid
    assert result.lr == 0.18  # closest to the optimum 2 / (1 + κ) ≈ 0.18
    assert result.grid == grid and result.steps == 60 and result.tol == 1e-6
    assert [t.lr for t in result.trials] == list(grid)
    assert result.budget == 5 * 60 and not result.at_edge
    record = json.loads(json.dumps(result.to_dict()))
    assert record["lr"] == 0.18 and len(record["trials"]) == 5
    assert record["trials"][-1]["steps_to_tol"] is None  # lr = 1 > 2 / κ diverges
    assert record["trials"][-1]["final_loss"] > 1e100


def test_tune_lr_default_grid_is_log_spaced() -> None:
    ratios = np.diff(np.log10(DEFAULT_GRID))
    np.testing.assert_allclose(ratios, 0.1)
    assert DEFAULT_GRID[0] == pytest.approx(1e-4) and DEFAULT_GRID[-1] == pytest.approx(10.0)


def test_adadelta_is_not_tuned() -> None:
    result = tune_lr("AdaDelta", surfaces.valley(), [-9.0, 2.0], steps=20, tol=1e-6)
    assert result.lr == 1.0 and result.grid == () and len(result.trials) == 1
    assert "no learning rate" in result.note


# --- demo and command line --------------------------------------------------------------


def _table_row(text: str, name: str) -> list[str]:
    return next(line.split() for line in text.splitlines() if line.startswith(f"{name} "))


def test_demo_writes_its_files_and_gd_zigzags_more_than_momentum(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = demo.main(out_dir=tmp_path)
    printed = capsys.readouterr().out
    for file in ("valley.png", "losses.png", "results.json"):
        assert (tmp_path / file).stat().st_size > 0
        assert str(tmp_path / file) in printed
    assert (tmp_path / "valley.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the seed's claim, read off the printed table: zig-zag is the fifth column
    zigzag = {name: float(_table_row(printed, name)[4]) for name in ("SGD", "Momentum")}
    assert zigzag["SGD"] > 0.3 > 0.1 > zigzag["Momentum"]
    saved = json.loads((tmp_path / "results.json").read_text())
    rows = {r["optimizer"]: r for r in saved["rows"]}
    assert set(rows) == set(rn.OPTIMIZERS)
    assert rows["SGD"]["zigzag_index"] > rows["Momentum"]["zigzag_index"]
    assert rows["AdaDelta"]["lr"] == 1.0
    assert len(saved["trajectories"][0]["thetas"]) == results["steps"] + 1


def test_cli_demo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--steps", "40", "--kappa", "10", "--no-report"]
    assert cli.main(args) == 0
    assert "valley (κ = 10)" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {"valley.png", "losses.png", "results.json"}
    with pytest.raises(SystemExit):
        cli.main(["demo", "--steps", "0"])


def test_python_dash_m_ravine() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ravine", "demo", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0 and "--kappa" in done.stdout
