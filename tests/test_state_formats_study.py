"""The state-format study (issue 14) on a tiny budget: it runs each format for real, the
verdicts follow the numbers, and the report renders. The full numbers are in
docs/results.md (``ravine train state-formats``)."""

from __future__ import annotations

import pytest

from ravine.lab.train import experiments, report, state_formats
from ravine.lab.train.protocol import Candidate


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    cfg = {"epochs": 2, "batch_size": 32}
    candidates = [
        Candidate("Momentum", "ravine", "Momentum", {"beta": 0.9, "ema": False}),
        Candidate("AdaDelta", "ravine", "AdaDelta", tuned=False),
    ]
    tiny = [("zeiler", experiments.zeiler_setup(cfg), candidates, (1e-2, 1e-1))]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(state_formats, "_studies", lambda quick: tiny)
        out = state_formats.state_formats(quick=True, progress=False)
    folder = tmp_path_factory.mktemp("state-formats")
    text, paths = report.write(out, folder)
    return out, text, paths


def test_every_optimizer_runs_every_format_at_the_float32_lr(study):
    out, _, _ = study
    rows = out["studies"][0]["rows"]
    assert [(r["optimizer"], r["format"]) for r in rows] == [
        (name, f) for name in ("Momentum", "AdaDelta") for f in ("float32", "bfloat16", "8bit")
    ]
    for name in ("Momentum", "AdaDelta"):
        lrs = {r["lr"] for r in rows if r["optimizer"] == name}
        assert len(lrs) == 1  # tuned once, on float32
    # the compact runs are really compact: their losses differ from float32's, a little
    f32 = {r["optimizer"]: r["final_train_loss"][0] for r in rows if r["format"] == "float32"}
    for r in rows:
        if r["format"] != "float32":
            assert r["final_train_loss"][0] != f32[r["optimizer"]]
            assert abs(r["final_train_loss"][0] / f32[r["optimizer"]] - 1) < 0.05


def test_verdicts_follow_the_rule(study):
    out, _, _ = study
    rows = out["studies"][0]["rows"]
    for r in rows:
        ref = next(x for x in rows if x["optimizer"] == r["optimizer"] and x["format"] == "float32")
        within = all(
            abs(r[k][0] - ref[k][0]) <= max(r[k][1], ref[k][1])
            for k in ("final_train_loss", "test_acc")
        )
        assert r["matches_float32"] == (within and not r["diverged"])
    claims = {c["claim"]: c for c in out["claims"]}
    assert len(claims) == 2
    for c in claims.values():
        assert c["cases"] == 2 and c["held"] == (c["matched"] == 2)


def test_valley_paths_and_report(study):
    out, text, paths = study
    names = {p["optimizer"] for p in out["valley"]}
    assert names == set(state_formats.VALLEY_OPTIMIZERS)
    assert all(len(p["thetas"]) == 61 for p in out["valley"])  # quick: 60 steps
    assert "matches float32" in text and "The valley" in text
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)


def test_matches_ignores_accuracy_where_the_task_has_none():
    nan = float("nan")
    ref = {"final_train_loss": [1.0, 0.1], "test_acc": [nan, nan], "diverged": 0}
    row = {"final_train_loss": [1.05, 0.01], "test_acc": [nan, nan], "diverged": 0}
    assert state_formats.matches(ref, row)
    assert not state_formats.matches(ref, {**row, "final_train_loss": [1.2, 0.01]})
    assert not state_formats.matches(ref, {**row, "diverged": 1})
