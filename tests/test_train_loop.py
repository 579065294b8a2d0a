"""Training loop: reproducible, resumable, divergence recorded (issue 4)."""

from __future__ import annotations

import math

import pytest
import torch

from ravine.lab.train import models
from ravine.lab.train.data import digits
from ravine.lab.train.loop import train
from ravine.lab.train.protocol import Candidate, Setup, compare
from ravine.torch import OPTIMIZERS

DENSE = digits("dense")


def _mlp() -> torch.nn.Module:
    return models.mlp(hidden=(32, 32), dropout=0.3)  # dropout: the global generator matters


FACTORIES = {
    "ravine Adam": lambda p: OPTIMIZERS["Adam"](p, lr=1e-2),
    "ravine NAG": lambda p: OPTIMIZERS["NAG"](p, lr=0.1, ema=False, lookahead="momentum"),
    "torch SGD": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
}


def _numbers(h):
    return h.train_loss, h.val_loss, h.val_acc, h.test_acc


@pytest.mark.parametrize("name", FACTORIES)
def test_same_seed_same_numbers(name):
    a = train(_mlp, FACTORIES[name], DENSE, epochs=2, seed=4)
    b = train(_mlp, FACTORIES[name], DENSE, epochs=2, seed=4)
    c = train(_mlp, FACTORIES[name], DENSE, epochs=2, seed=5)
    assert _numbers(a) == _numbers(b)
    assert a.train_loss != c.train_loss
    assert a.test_acc[-1] > 0.5 and len(a.seconds) == 2 and all(s > 0 for s in a.seconds)


@pytest.mark.parametrize("name", ["ravine Adam", "torch SGD"])
def test_resume_equals_uninterrupted(tmp_path, name):
    whole = train(_mlp, FACTORIES[name], DENSE, epochs=3, seed=2)
    path = tmp_path / "run.pt"
    first = train(_mlp, FACTORIES[name], DENSE, epochs=3, seed=2, checkpoint=path, stop_after=1)
    assert first.epochs == 1 and path.exists()
    resumed = train(_mlp, FACTORIES[name], DENSE, epochs=3, seed=2, checkpoint=path)
    assert _numbers(resumed) == _numbers(whole)
    done = train(_mlp, FACTORIES[name], DENSE, epochs=3, seed=2, checkpoint=path)
    assert _numbers(done) == _numbers(whole)  # a finished run is only reloaded


def test_autoencoder_and_cnn_train():
    ae = train(
        models.autoencoder,
        lambda p: OPTIMIZERS["NAG"](p, lr=0.05, beta=0.9, ema=False, lookahead="momentum"),
        DENSE,
        epochs=3,
        task="reconstruct",
    )
    assert ae.train_loss[-1] < ae.train_loss[0] and math.isnan(ae.test_acc[-1])
    conv = train(models.cnn, lambda p: OPTIMIZERS["Adam"](p, lr=3e-3), digits("image"), epochs=1)
    assert conv.test_acc[-1] > 0.5


def test_divergence_is_recorded_and_ranked_last():
    h = train(
        lambda: models.mlp(hidden=(32, 32)), lambda p: torch.optim.SGD(p, lr=1e6), DENSE, epochs=3
    )
    assert h.diverged and math.isnan(h.train_loss[-1]) and h.to_dict()["train_loss"][-1] is None
    setup = Setup("tiny", DENSE, lambda: models.mlp(hidden=(32, 32)), epochs=2)
    (result,) = compare(
        [Candidate("SGD", "ravine", "SGD")], setup, grid=(1e6, 0.1), seeds=2, progress=False
    )
    assert result.tuning.lr == 0.1 and result.summary.diverged == 0
    assert result.summary.seeds == (1, 2) and result.to_dict()["tuning"]["budget_epochs"] == 4
    with pytest.raises(ValueError, match="task"):
        train(lambda: models.logreg(64), FACTORIES["torch SGD"], DENSE, epochs=1, task="rank")
