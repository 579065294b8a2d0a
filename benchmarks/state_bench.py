"""Compact optimizer state: bytes, speed and the streaming limit, per state format.

    python benchmarks/state_bench.py [--workloads A,B,C] [--optimizers Adam,Adagrad]
                                     [--rounds 7] [--json out/bench/state.json]

For each workload (see bench.py) and optimizer it builds ravine's fused optimizer with
``state_dtype=None`` (float32 state, the reference), ``torch.bfloat16`` and ``"8bit"``, and
bitsandbytes' 8-bit CPU optimizer where it has one (Adam8bit, Adagrad8bit, RMSprop8bit,
SGD8bit with momentum; skipped, with the reason printed, if bitsandbytes does not import),
all in this process, and times them in interleaved rounds together with the in-place
triad that sets the machine's streaming limit. It prints, per case: bytes of state per
parameter (counted from the state tensors), median ms/step, the speed-up over ravine's
float32 state, and the fraction of the streaming limit achieved, computed from the bytes
the format must move (parameters read and written, gradient read, each state read and
written in its format). Nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from bench import WORKLOADS, _make, interleaved, steps_per_round, triad

import ravine.torch as rt
from ravine import quantization
from ravine.rules import BY_NAME
from ravine.torch import storage

FORMATS = {"float32": None, "bfloat16": torch.bfloat16, "8bit": "8bit"}
"""ravine's ``state_dtype`` per column; float32 is the reference."""
RAVINE = {
    "Adam": {"lr": 1e-3, "eps_mode": "outside"},
    "Adagrad": {"lr": 1e-2, "eps_mode": "outside"},
    "RMSProp": {"lr": 1e-3, "gamma": 0.99, "eps_mode": "outside"},
    "Momentum": {"lr": 1e-3, "ema": False},
    "AdaDelta": {"lr": 1.0, "gamma": 0.9},
    "NAdam": {"lr": 2e-3, "eps_mode": "outside"},
}
BITSANDBYTES = {
    "Adam": ("Adam8bit", {"lr": 1e-3}),
    "Adagrad": ("Adagrad8bit", {"lr": 1e-2}),
    "RMSProp": ("RMSprop8bit", {"lr": 1e-3}),
    "Momentum": ("SGD8bit", {"lr": 1e-3, "momentum": 0.9}),
}
"""bitsandbytes' 8-bit optimizers with a ravine counterpart (none for AdaDelta, NAdam)."""


@dataclass
class Row:
    workload: str
    optimizer: str
    case: str
    state_bytes_per_param: float
    ms: float
    speedup_vs_float32: float
    fraction_of_limit: float


def state_bytes(opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> float:
    """Bytes of per-parameter state tensors (bitsandbytes' shared code maps not counted
    per parameter: they are 1 KiB per tensor and listed as such)."""
    total = 0
    for p in params:
        for key, value in opt.state[p].items():
            if torch.is_tensor(value) and key not in ("step", "qmap1", "qmap2"):
                total += value.numel() * value.element_size()
    return total / sum(p.numel() for p in params)


def moved_bytes(name: str, kind: str, shapes: list[tuple[int, ...]]) -> int:
    """The bytes a step must move: parameters read and written and the gradient read (4
    bytes each), each state read and written in the format (8-bit: one byte plus its share
    of the block's float32 absmax); tensors under MIN_ELEMENTS keep float32 state."""
    fields = len(storage.arrays(BY_NAME[name]))
    total = 0
    for shape in shapes:
        n = math.prod(shape)
        compact = kind != "float32" and n >= quantization.MIN_ELEMENTS
        per_state = {"bfloat16": 2.0, "8bit": 1.0 + 4 / quantization.BLOCK}.get(kind, 4.0)
        total += n * (12 + 2 * fields * (per_state if compact else 4.0))
    return int(total)


def bitsandbytes_maker(name: str) -> tuple[Callable[[list[torch.Tensor]], Any] | None, str]:
    if name not in BITSANDBYTES:
        return None, "no bitsandbytes counterpart"
    try:
        import bitsandbytes as bnb
    except Exception as error:  # ImportError, or its native library failing to load
        return None, f"bitsandbytes does not import: {str(error).splitlines()[0][:80]}"
    cls_name, kwargs = BITSANDBYTES[name]
    cls = getattr(bnb.optim, cls_name)
    # min_8bit_size as ravine's MIN_ELEMENTS, so both keep the same tensors in 8 bits
    return lambda ps: cls(ps, min_8bit_size=quantization.MIN_ELEMENTS, **kwargs), cls_name


def measure(workload: str, name: str, rounds: int, budget_s: float = 1.0) -> list[Row]:
    shapes = WORKLOADS[workload]()
    cases: list[tuple[str, str, Callable[[list[torch.Tensor]], Any]]] = [
        (
            f"ravine {label}",
            label,
            lambda ps, k=kind: rt.OPTIMIZERS[name](ps, fused=True, state_dtype=k, **RAVINE[name]),
        )
        for label, kind in FORMATS.items()
    ]
    make_bnb, why = bitsandbytes_maker(name)
    if make_bnb is None:
        print(f"  {workload} {name} bitsandbytes: skipped ({why})")
    else:
        cases.append((f"bitsandbytes {why}", "8bit", make_bnb))
    ready = []
    for label, kind, make in cases:
        params = _make(shapes, "cpu")
        opt = make(params)
        opt.step()
        bytes_per = state_bytes(opt, params)
        per_round = steps_per_round(opt.step, "cpu", rounds, budget_s)
        ready.append((label, kind, opt, bytes_per, per_round))
    elements = sum(math.prod(s) for s in shapes)
    limit, limit_bytes = triad(elements, 2 + 2 * len(storage.arrays(BY_NAME[name])), "cpu")
    steps = [(opt.step, per_round) for *_, opt, _, per_round in ready]
    *medians, limit_seconds = interleaved(steps, limit, "cpu", rounds, budget_s)
    bandwidth = limit_bytes / limit_seconds
    reference = medians[0]
    rows = []
    for (label, kind, _, bytes_per, _), seconds in zip(ready, medians, strict=True):
        rows.append(
            Row(
                workload=workload,
                optimizer=name,
                case=label,
                state_bytes_per_param=bytes_per,
                ms=seconds * 1e3,
                speedup_vs_float32=reference / seconds,
                fraction_of_limit=moved_bytes(name, kind, shapes) / seconds / bandwidth,
            )
        )
    del ready
    gc.collect()
    return rows


def markdown(rows: list[Row]) -> str:
    lines = [
        "| workload | optimizer | state | bytes/param | ms | vs float32 | of limit |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.workload} | {r.optimizer} | {r.case} | {r.state_bytes_per_param:.3f} | "
            f"{r.ms:.2f} | {r.speedup_vs_float32:.2f}× | {r.fraction_of_limit:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="A,B,C")
    parser.add_argument("--optimizers", default="Adam,Adagrad,RMSProp,Momentum,AdaDelta,NAdam")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = []
    for workload in args.workloads.split(","):
        for name in args.optimizers.split(","):
            print(f"{workload} {name} …", file=sys.stderr)
            rows += measure(workload, name, args.rounds)
    print(f"threads: {torch.get_num_threads()}")
    print(markdown(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))
    return rows


if __name__ == "__main__":
    main()
