"""Run data out: one CSV per trajectory (a row per step), all of them as one JSON file."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .run import Trajectory


def clean(value: Any) -> Any:
    """JSON-ready: arrays to lists, inf and NaN to None (recursively)."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [clean(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    return value


def columns(traj: Trajectory) -> dict[str, np.ndarray]:
    """The trajectory as named columns of length N + 1 (k = 0 … N).

    ``theta_i``, ``point_i`` (stored params), ``loss``, ``grad_i``, each state field
    ``<field>_i`` and ``effective_lr_i`` (NaN on the last row: no step taken from it).
    """
    n = traj.steps + 1
    cols: dict[str, np.ndarray] = {"k": np.arange(n, dtype=np.float64)}
    dims = traj.thetas.shape[1]
    for i in range(dims):
        cols[f"theta_{i}"] = traj.thetas[:, i]
    for i in range(dims):
        cols[f"point_{i}"] = traj.points[:, i]
    cols["loss"] = traj.losses
    for i in range(dims):
        cols[f"grad_{i}"] = traj.grads[:, i]
    for name, values in traj.internals.items():
        flat = values.reshape(n, -1)
        if flat.shape[1] == 1:
            cols[name] = flat[:, 0]
        else:
            for i in range(flat.shape[1]):
                cols[f"{name}_{i}"] = flat[:, i]
    eff = np.vstack([traj.effective_lr, np.full((1, dims), np.nan)])
    for i in range(dims):
        cols[f"effective_lr_{i}"] = eff[:, i]
    return cols


def to_csv(traj: Trajectory, path: str | Path) -> Path:
    """One row per step k; empty cells for NaN."""
    out = Path(path)
    cols = columns(traj)
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(cols)
        for row in zip(*cols.values(), strict=True):
            writer.writerow(
                [
                    int(v) if j == 0 else ("" if not np.isfinite(v) else repr(float(v)))
                    for j, v in enumerate(row)
                ]
            )
    return out


def to_json(trajectories: Sequence[Trajectory], path: str | Path, **extra: Any) -> Path:
    """All trajectories (name, hyperparameters, surface, seed and every column) as JSON."""
    out = Path(path)
    record = {
        **clean(extra),
        "trajectories": [
            {
                "name": t.name,
                "hyperparameters": clean(t.hyperparameters),
                "surface": t.surface,
                "f_min": t.f_min,
                "seed": t.seed,
                "columns": clean(columns(t)),
            }
            for t in trajectories
        ],
    }
    out.write_text(json.dumps(record, ensure_ascii=False) + "\n")
    return out
