"""The quick versions of the papers' comparisons, through the CLI (issue 4).

Each asserts only what the quick measurement supports (docs/results.md has the full runs):
Kingma & Ba's dense claim holds; their sparse claim does not on one-hot digits (SGD with
Nesterov momentum keeps up), but Adagrad beats Adam there. Zeiler's flat AdaDelta table
does not hold as a whole (ε = 1e-2 fails); what holds is the baselines' steep
sensitivity to lr and AdaDelta's untuned default matching their best lr.
"""

from __future__ import annotations

import pytest

from conftest import run_quick_experiment


@pytest.fixture(scope="module")
def kingma(tmp_path_factory):
    return run_quick_experiment(tmp_path_factory, "kingma-fig1")


@pytest.fixture(scope="module")
def zeiler(tmp_path_factory):
    return run_quick_experiment(tmp_path_factory, "zeiler")


def _area(result):
    losses = result["summary"]["train_loss_mean"]
    return sum(losses) / len(losses)


def test_kingma_protocol_is_recorded(kingma):
    for kind in ("dense", "sparse"):
        for r in kingma[kind]["results"]:
            assert r["tuning"]["budget_epochs"] == len(r["tuning"]["grid"]) * 4  # same budget
            assert r["summary"]["seeds"] == [1, 2] and r["summary"]["diverged"] == 0
            assert r["summary"]["test_acc"][0] > 0.85
    assert kingma["sparse"]["features"] == 1088


def test_kingma_dense_claim_holds_and_sparse_does_not(kingma):
    dense, sparse = kingma["claims"]
    assert dense["held"], dense
    assert not sparse["held"], sparse  # measured: SGD-Nesterov is not ≫ slower on one-hot digits
    areas = sparse["area_under_loss"]
    assert areas["Adagrad"] < areas["Adam"]  # "Adagrad works well on sparse data" vs Adam


def test_kingma_ravine_matches_its_torch_baselines(kingma):
    for kind in ("dense", "sparse"):
        r = {x["label"]: x for x in kingma[kind]["results"]}
        for name in ("Adam", "SGD-Nesterov", "Adagrad"):
            ours, theirs = r[name], r[f"{name} (torch)"]
            assert ours["tuning"]["lr"] == theirs["tuning"]["lr"]
            # NAG(ema=False, lookahead="momentum") is torch's SGD(nesterov=True) exactly;
            # Adam and Adagrad differ only in where ε sits (inside the root in the seed)
            tol = 1e-5 if name == "SGD-Nesterov" else 2e-2
            assert _area(ours) == pytest.approx(_area(theirs), rel=tol)


def test_zeiler_what_holds(zeiler):
    flat_all, _, default = zeiler["claims"]
    spread = flat_all["spread_points"]
    assert all(spread[n] > 50 for n in ("SGD", "Momentum", "Adagrad"))  # lr matters a lot
    assert not flat_all["held"]  # measured: ε = 1e-2 leaves AdaDelta at chance
    assert default["held"], default
    assert len(zeiler["cells"]) == 3 * 5 + 3 * 4
