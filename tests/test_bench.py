"""The benchmark harness runs and counts bytes right (its timings are printed, not tested)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench", PATH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    del sys.modules["bench"]


@pytest.mark.parametrize(
    ("name", "passes", "arrays"),
    [("SGD", 3, 2), ("Momentum", 5, 3), ("NormalizedGD", 4, 2), ("Adam", 7, 4), ("AdaDelta", 7, 4)],
)
def test_minimum_traffic_per_element(bench, name, passes, arrays):
    """Adam: read θ, g, m, G and write θ, m, G = 7 passes (28 bytes per float32)."""
    assert bench.traffic(name) == (passes, arrays)


def test_every_optimizer_has_a_torch_twin(bench):
    from ravine.rules import SPECS

    assert set(bench.TORCH_TWINS) == {s.name for s in SPECS}


def test_measure_a_tiny_workload(bench, monkeypatch, tmp_path):
    monkeypatch.setitem(bench.WORKLOADS, "tiny", lambda: [(64, 32), (32,)] * 3)
    rows = bench.main(
        [
            "--workloads",
            "tiny",
            "--optimizers",
            "Adam,RMSProp",
            "--rounds",
            "1",
            "--impls",
            "fused,foreach",
            "--json",
            str(tmp_path / "b.json"),
        ]
    )
    modes = {(r.optimizer, r.library, r.mode) for r in rows}
    assert ("Adam", "torch", "fused") in modes and ("Adam", "ravine", "fused") in modes
    assert ("RMSProp", "torch", "foreach") in modes and ("RMSProp", "torch", "fused") not in modes
    assert all(r.ms > 0 and math.isfinite(r.gb_s) for r in rows)
    assert (tmp_path / "b.json").exists()
