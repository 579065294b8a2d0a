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


@pytest.fixture(scope="module")
def state_bench(bench):
    path = PATH.with_name("state_bench.py")
    spec = importlib.util.spec_from_file_location("state_bench", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["state_bench"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["state_bench"]


def test_state_bench_counts_the_bytes_each_format_moves(state_bench):
    """Adam on one tensor of 2^20: 12 bytes for θ and g, plus m and G read and written in
    their format (8-bit: a byte and 4/2048 of a float32 absmax); small tensors keep
    float32."""
    n = 1 << 20
    assert state_bench.moved_bytes("Adam", "float32", [(n,)]) == 28 * n
    assert state_bench.moved_bytes("Adam", "bfloat16", [(n,)]) == 20 * n
    assert state_bench.moved_bytes("Adam", "8bit", [(n,)]) == int(n * (12 + 4 * (1 + 4 / 2048)))
    assert state_bench.moved_bytes("Adam", "8bit", [(100,)]) == 28 * 100


def test_state_bench_measures_a_tiny_workload(state_bench, bench, monkeypatch, tmp_path):
    monkeypatch.setitem(bench.WORKLOADS, "tiny", lambda: [(64, 128), (32,)] * 2)
    rows = state_bench.main(
        ["--workloads", "tiny", "--optimizers", "Adam,AdaDelta", "--rounds", "1",
         "--json", str(tmp_path / "s.json")]
    )  # fmt: skip
    cases = {(r.optimizer, r.case) for r in rows}
    assert {
        ("Adam", "ravine float32"),
        ("Adam", "ravine 8bit"),
        ("AdaDelta", "ravine bfloat16"),
    } <= cases
    by_case = {(r.optimizer, r.case): r for r in rows}
    # 8192 of the 8256 elements in 8 bits: two states ≈ 2 bytes + the float32 remainder
    assert by_case["Adam", "ravine 8bit"].state_bytes_per_param < 2.1
    assert by_case["Adam", "ravine float32"].state_bytes_per_param == 8
    assert all(r.ms > 0 and math.isfinite(r.fraction_of_limit) for r in rows)
    assert (tmp_path / "s.json").exists()
