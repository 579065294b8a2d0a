"""What ``ravine train NAME`` runs: every experiment (:data:`ravine.lab.train.EXPERIMENTS`)
by name → its function. Kept apart from :mod:`.experiments` because the state-format study
(:mod:`.state_formats`) builds on that module's setups."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import experiments, state_formats

RUNS: dict[str, Callable[..., dict[str, Any]]] = {
    **experiments.RUNS,
    "state-formats": state_formats.state_formats,
}
"""Experiment name → its function (``quick=``, ``progress=``) returning a JSON-ready dict."""
