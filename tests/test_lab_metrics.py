"""The lab's added metrics: fitted rate, path ratio, axis step ratio, spread."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ravine.lab import metrics
from ravine.lab.run import Trajectory


def _traj(thetas: list[list[float]]) -> Trajectory:
    t = np.asarray(thetas, dtype=float)
    return Trajectory("hand", {}, "plane", 0.0, t, t, np.zeros(len(t)), np.zeros_like(t), {})


def test_fitted_rate_recovers_a_geometric_rate_and_ignores_zeros() -> None:
    k = np.arange(40)
    assert metrics.fitted_rate(5 * 0.7**k) == pytest.approx(0.7, rel=1e-12)
    noisy = 0.95**k * np.exp(0.01 * np.sin(k))
    assert metrics.fitted_rate(noisy) == pytest.approx(0.95, rel=1e-3)
    values = 0.5**k
    values[10] = 0.0
    assert metrics.fitted_rate(values, start=5) == pytest.approx(0.5, rel=1e-12)
    assert math.isnan(metrics.fitted_rate(np.zeros(5)))


def test_path_ratio_by_hand() -> None:
    assert metrics.path_ratio(_traj([[0, 0], [1, 0], [2, 0]])) == 1.0
    assert metrics.path_ratio(_traj([[0, 0], [3, 4], [6, 0]])) == pytest.approx(10 / 6)
    assert metrics.path_ratio(_traj([[0, 0], [1, 0], [0, 0]])) == math.inf


def test_axis_step_ratio_by_hand() -> None:
    # moves (1, 3) and (−1, −3): across (θ[1]) 3, along 1
    traj = _traj([[0, 0], [1, 3], [0, 0]])
    assert metrics.axis_step_ratio(traj, np.array([0.0, 2.0])) == pytest.approx(3.0)
    assert metrics.axis_step_ratio(traj, np.array([1.0, 0.0])) == pytest.approx(1 / 3)


def test_spread() -> None:
    s = metrics.spread([1.0, 2.0, 3.0, 10.0])
    assert s == {
        "n": 4.0,
        "mean": 4.0,
        "std": pytest.approx(np.std([1, 2, 3, 10], ddof=1)),
        "min": 1.0,
        "median": 2.5,
        "max": 10.0,
    }
    assert metrics.spread([2.0])["std"] == 0.0
