"""The report, figures, exports, search and progress bar (issue 3, items 4, 7, 8, 9)."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

import ravine.numpy as rn
from ravine import cli
from ravine.lab import export, figures, report, surfaces
from ravine.lab.progress import Progress
from ravine.lab.run import run
from ravine.lab.tune import SPACE, tune

PNG = b"\x89PNG\r\n\x1a\n"


def test_report_is_one_self_contained_page(tmp_path: Path) -> None:
    page = report.build(tmp_path, steps=60, trials=3, seeds=2, show=False)
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert "data:image/png;base64," in text and "data:image/gif;base64," in text
    assert "<svg" in text
    assert 'src="http' not in text and 'href="http' not in text  # nothing fetched
    for words in ("Theory checks", "zig-zag", "AdaDelta makes progress", "Distill", "Mini-batches"):
        assert words in text
    assert text.count('class="ok"') == 5  # every claim holds
    for name in (
        "valley.svg",
        "valley.png",
        "valley.gif",
        "convergence_map.png",
        "genealogy.svg",
        "rosenbrock_3d.png",
        "internals.png",
        "runs/valley_Adam.csv",
        "runs/valley.json",
    ):
        assert (tmp_path / name).stat().st_size > 0, name
    assert (tmp_path / "valley.png").read_bytes()[:8] == PNG
    record = json.loads((tmp_path / "runs" / "valley.json").read_text())
    assert {t["name"] for t in record["trajectories"]} == set(rn.OPTIMIZERS)
    assert record["searches"]["Adam"]["budget_steps"] == 3 * 60


def test_csv_export_round_trips_a_trajectory(tmp_path: Path) -> None:
    traj = run(rn.Adam(lr=0.1), surfaces.valley(), [-9.0, 2.0], steps=5)
    path = export.to_csv(traj, tmp_path / "adam.csv")
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 6
    assert [float(r["theta_1"]) for r in rows] == traj.thetas[:, 1].tolist()
    assert [float(r["G_0"]) for r in rows] == traj.internals["G"][:, 0].tolist()
    assert float(rows[2]["effective_lr_1"]) == traj.effective_lr[2, 1]
    assert rows[-1]["effective_lr_0"] == ""  # no step from the last row
    data = json.loads(export.to_json([traj], tmp_path / "a.json", note="x").read_text())
    assert (
        data["note"] == "x" and data["trajectories"][0]["columns"]["loss"] == traj.losses.tolist()
    )


def test_export_clean_replaces_non_finite() -> None:
    assert export.clean({"a": [1.0, math.inf, math.nan], "b": np.float64(2)}) == {
        "a": [1.0, None, None],
        "b": 2.0,
    }


def test_random_search_same_budget_and_log_space() -> None:
    s = surfaces.valley(kappa=10.0)
    a = tune("Momentum", s, [-9.0, 2.0], steps=30, tol=1e-6, trials=12, seed=1)
    b = tune("SGD", s, [-9.0, 2.0], steps=30, tol=1e-6, trials=12, seed=1)
    assert a.trials == b.trials == 12 and a.steps == b.steps  # same budget
    assert set(a.space) == {"lr", "beta"} and set(b.space) == {"lr"}
    assert a.results[0][0] == {"lr": 0.001, "beta": 0.9}  # trial 0: the seed's defaults
    lrs = np.array([hp["lr"] for hp, _, _ in a.results[1:]])
    betas = np.array([hp["beta"] for hp, _, _ in a.results[1:]])
    assert np.all((lrs >= SPACE["lr"][0]) & (lrs <= SPACE["lr"][1]))
    assert np.all((1 - betas >= 1e-3) & (1 - betas <= 0.5))
    best = a.to_dict()
    assert best["budget_steps"] == 360 and "fewest steps" in best["objective"]
    assert "lr" not in tune("AdaDelta", s, [-9.0, 2.0], steps=10, tol=1e-6, trials=2).space


def test_progress_bar_draws_to_its_stream() -> None:
    stream = io.StringIO()
    with Progress("work", total=4, stream=stream, width=8) as bar:
        for _ in range(4):
            bar.update()
    assert "work [########] 4/4" in stream.getvalue() and stream.getvalue().endswith("\n")
    silent = io.StringIO()
    with Progress("x", 2, stream=silent, enabled=False) as bar:
        bar.update()
    assert silent.getvalue() == ""


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_genealogy_drawn_from_the_registry(tmp_path: Path, suffix: str) -> None:
    path = figures.genealogy(tmp_path / f"g{suffix}")
    content = path.read_bytes()
    assert content[:8] == PNG if suffix == ".png" else b"<svg" in content
    assert set(figures.POSITION) == set(rn.OPTIMIZERS)


def test_cli_lab_report_help_and_validation(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["lab", "report", "--help"])
    assert "--trials" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["lab", "report", "--seeds", "1"])
