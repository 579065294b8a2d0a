"""The seed's claims (issue 3, item 6), each a test with its numbers."""

from __future__ import annotations

import numpy as np
import pytest

from ravine.lab import claims


def test_gd_zigzags_several_times_more_than_momentum_and_nag() -> None:
    c = claims.zigzag()
    z = c["zigzag_index"]
    # GD at lr = 1.8/κ bounces with contraction |1 − lr·κ| = 0.8: its index is that ratio
    assert z["SGD"] == pytest.approx(0.8, rel=1e-6)
    assert z["SGD"] > 3 * z["Momentum"] and z["SGD"] > 3 * z["NAG"]
    assert z["Momentum"] < 0.05 and z["NAG"] < 0.05
    assert c["path_ratio"]["SGD"] > c["path_ratio"]["Momentum"] > c["path_ratio"]["NAG"]
    assert c["holds"]


def test_adagrads_effective_step_decays_and_it_stalls_where_rmsprop_goes_on() -> None:
    c = claims.adagrad_stalls()
    assert c["adagrad_monotone"]
    assert min(c["adagrad_decay"]) >= 5
    # first effective step by hand: lr/|g_0| with g_0 = (−9, 100)
    np.testing.assert_allclose(c["effective_lr_first"]["Adagrad"], [0.1 / 9, 0.1 / 100], rtol=1e-8)
    # RMSProp's does not decay: it ends larger than it started in every coordinate
    assert all(
        last > first
        for first, last in zip(
            c["effective_lr_first"]["RMSProp"], c["effective_lr_last"]["RMSProp"], strict=True
        )
    )
    start = c["start_distance"]
    assert c["end_distance"]["Adagrad"] > start / 2
    assert c["end_distance"]["RMSProp"] < start / 20
    assert c["holds"]


def test_normalized_gd_moves_exactly_lr_and_hovers_within_lr() -> None:
    c = claims.normalized_hovers()
    assert c["step_length_max_rel_error"] < 1e-12
    lo, hi = c["last100_distance_over_lr"]
    assert lo >= 0.1 and hi <= 1.0
    assert c["last100_rate"] > 0.999
    assert c["holds"]


def test_adadelta_makes_progress_with_no_learning_rate() -> None:
    c = claims.adadelta_without_lr()
    assert c["hyperparameters"]["lr"] == 1.0
    d = c["distance"]
    assert d[0] / d[c["steps"]] >= 100
    assert d[0] > d[100] > d[300] > d[1000] > d[c["steps"]]
    assert c["holds"]


def test_adam_combines_rmsprops_equal_steps_with_momentums_damping() -> None:
    c = claims.adam_combines()
    r, z = c["axis_step_ratio"], c["zigzag_index"]
    assert 0.5 <= r["Adam"] <= 2 and 0.5 <= r["RMSProp"] <= 2
    assert r["SGD"] > 3 and r["Momentum"] > 3
    assert z["Adam"] <= z["Momentum"] and z["Adam"] < z["RMSProp"] / 10
    assert c["final_loss"]["Adam"] < c["final_loss"]["RMSProp"] / 1000
    assert c["holds"]
