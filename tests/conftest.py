"""Shared test settings: one table of tolerances, each loosened case with its reason."""

from __future__ import annotations

import pytest
import torch

torch.set_default_dtype(torch.float32)
# pytest runs on 2 workers (-n 2); intra-op threads on top of that oversubscribe the 2 cores
# and made small-tensor tests up to 8× slower (measured: the example test 45 s vs 6 s).
torch.set_num_threads(1)

IMPLEMENTATIONS = {
    "per_tensor": {"foreach": False},
    "foreach": {"foreach": True},
    "fused": {"fused": True},
}
"""Every torch implementation, by the constructor arguments that select it."""

TOLERANCE = {
    # same arithmetic in a different order (foreach vs per-tensor, NumPy vs torch): rounding
    torch.float64: 1e-12,
    torch.float32: 1e-5,
    # 8 significant bits: one rounding of an update already moves the last bit
    torch.bfloat16: 4e-2,
    torch.float16: 5e-3,
}
"""Relative tolerance by dtype for comparisons between implementations of one rule."""


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max|a − b| / max(max|b|, 1e-30), computed in float64."""
    a64, b64 = a.detach().double(), b.detach().double()
    scale = max(b64.abs().max().item() if b64.numel() else 0.0, 1e-30)
    return (a64 - b64).abs().max().item() / scale if a64.numel() else 0.0


def run_quick_experiment(tmp_path_factory, name: str) -> dict:
    """``ravine train NAME --quick`` through the CLI: its files exist, its JSON is returned."""
    import json

    from ravine.cli import main

    out = tmp_path_factory.mktemp(name)
    assert main(["train", name, "--quick", "--out", str(out)]) == 0
    for suffix in ("json", "md", "png"):
        assert (out / f"{name}.{suffix}").stat().st_size > 0
    return json.loads((out / f"{name}.json").read_text(encoding="utf-8"))


@pytest.fixture(params=["python", "c++"])
def walker(request, monkeypatch):
    """Run a test under each implementation of the fused engine's per-step walk (see
    ravine.torch.walk): the Python twin and the C++ module, which must mean the same."""
    from ravine.torch.engines import walk

    built = walk.wait(timeout=300)  # so that no build finishes mid-test and switches over
    if request.param == "c++":
        assert built, walk.status()  # the development machine has g++ and torch's headers
    else:
        monkeypatch.setattr(walk, "_native", None)
    return request.param
