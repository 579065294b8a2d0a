"""The README's promise: a new user trains a small torch model with each optimizer."""

from __future__ import annotations

import importlib.util
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_torch.py"


def test_every_optimizer_trains_the_example_mlp(capsys):
    spec = importlib.util.spec_from_file_location("train_torch", EXAMPLE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = module.main(["--epochs", "8"])
    assert len(results) == 9
    for name, (losses, accuracy) in results.items():
        assert losses[-1] < 0.95 * losses[0], (name, losses)
        assert accuracy > 0.6, (name, accuracy)
    assert "NAdam" in capsys.readouterr().out
