"""A training process killed with SIGKILL and resumed ends bit-identical to an
uninterrupted one (a real subprocess, a real kill)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "resumable_train.py"
STEPS = 60


def _run(tmp: Path, name: str, optimizer: str, kill_after: int | None = None) -> Path:
    out = tmp / f"{name}.pt"
    command = [
        *(sys.executable, str(SCRIPT), "--checkpoint", str(tmp / f"{name}.ckpt")),
        *("--out", str(out), "--steps", str(STEPS), "--every", "4", "--optimizer", optimizer),
    ]
    if kill_after is not None:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None
        for line in process.stdout:
            if line.strip() == f"step {kill_after}":
                os.kill(process.pid, signal.SIGKILL)
                break
        process.wait()
        assert process.returncode == -signal.SIGKILL
        assert not out.exists()
    subprocess.run(command, check=True, capture_output=True)
    return out


@pytest.mark.parametrize("optimizer", ["Adam", "NAG"])
def test_killed_and_resumed_equals_uninterrupted(tmp_path, optimizer):
    kill_after = random.Random(optimizer).randrange(5, STEPS - 5)
    whole = torch.load(_run(tmp_path, "whole", optimizer), weights_only=True)
    resumed = torch.load(_run(tmp_path, "killed", optimizer, kill_after), weights_only=True)
    for key, value in whole.items():
        assert torch.equal(value, resumed[key]), (key, kill_after)
