"""Speed and memory of one optimizer step: ravine against torch.optim, side by side.

    python benchmarks/bench.py [--workloads A,B,C] [--optimizers Adam,RMSProp] [--rounds 7]
                               [--impls fused,triton,foreach,per_tensor] [--device cpu|cuda]
                               [--json out/bench/bench.json]

Workloads (float32):
  A  one tensor of 16M elements;
  B  2000 tensors of 2048 elements (the many small biases and norms of real models);
  C  the parameter list of a ~25M-parameter transformer (embedding, attention, MLP, norms).

For every ravine optimizer and implementation, and for its torch.optim counterpart in every
mode torch has (for-loop, foreach, fused), all in this process, it reports the median
ms/step over rounds, the achieved GB/s from the minimum bytes the rule must move, that as a
fraction of the machine's in-place streaming bandwidth measured in the same run (a += b over
the same working set), the ratio to torch's fastest mode, and the peak memory the step
allocates beyond the state it keeps, as a share of the parameters' bytes.
Nothing here asserts a speed: the numbers are printed and written as JSON.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

import ravine.torch as rt
from ravine.codegen import trace
from ravine.rules import BY_NAME
from ravine.torch.engines import walk

TORCH_TWINS: dict[str, tuple[type[torch.optim.Optimizer], dict[str, Any], dict[str, Any]]] = {
    # ravine name: (torch class, torch kwargs, ravine kwargs that take the same steps)
    "SGD": (torch.optim.SGD, {"lr": 1e-3}, {"lr": 1e-3}),
    "Momentum": (torch.optim.SGD, {"lr": 1e-3, "momentum": 0.9}, {"lr": 1e-3, "ema": False}),
    "NAG": (
        torch.optim.SGD,
        {"lr": 1e-3, "momentum": 0.9, "nesterov": True},
        {"lr": 1e-3, "ema": False, "lookahead": "momentum"},
    ),
    "NormalizedGD": (torch.optim.SGD, {"lr": 1e-3}, {"lr": 1e-3}),  # no twin: SGD for scale
    "Adagrad": (torch.optim.Adagrad, {"lr": 1e-2}, {"lr": 1e-2, "eps_mode": "outside"}),
    "RMSProp": (
        torch.optim.RMSprop,
        {"lr": 1e-3},
        {"lr": 1e-3, "gamma": 0.99, "eps_mode": "outside"},
    ),
    "AdaDelta": (torch.optim.Adadelta, {"lr": 1.0}, {"lr": 1.0, "gamma": 0.9}),
    "Adam": (torch.optim.Adam, {"lr": 1e-3}, {"lr": 1e-3, "eps_mode": "outside"}),
    "NAdam": (
        torch.optim.NAdam,
        {"lr": 2e-3},
        {"lr": 2e-3, "eps_mode": "outside", "momentum_decay": 4e-3},
    ),
}
IMPLEMENTATIONS = {
    "fused": {"fused": True},  # C on the CPU, Triton on CUDA
    "triton": {"fused": "triton"},  # on the CPU only under TRITON_INTERPRET=1
    "foreach": {"foreach": True},
    "per_tensor": {"foreach": False},
}
TORCH_MODES = {
    "for-loop": {"foreach": False},
    "foreach": {"foreach": True},
    "fused": {"fused": True},
}


def transformer_shapes(
    d: int = 512, layers: int = 6, vocab: int = 16000, ff: int = 2048
) -> list[tuple[int, ...]]:
    """Parameter shapes of a small transformer language model (~25M parameters)."""
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(d, 8, ff, batch_first=True)
    body = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
    shapes = [(vocab, d), (1024, d)]  # token and position embeddings
    shapes += [tuple(p.shape) for p in body.parameters()]
    shapes += [(d,), (d,)]  # final norm
    return shapes


WORKLOADS: dict[str, Callable[[], list[tuple[int, ...]]]] = {
    "A": lambda: [(16 * 1024 * 1024,)],
    "B": lambda: [(2048,)] * 2000,
    "C": transformer_shapes,
}


def traffic(name: str) -> tuple[int, int]:
    """(tensor passes, distinct tensors) of one step at the minimum: parameters read and
    written, gradient read, each state tensor read and written, and one more gradient read
    for a rule that reduces first (normalized GD's norm)."""
    spec = BY_NAME[name]
    hp = {**spec.defaults, **TORCH_TWINS[name][2]}
    program = trace.trace(spec, hp)
    arrays = len(program.arrays)
    return 3 + 2 * (arrays - 2) + (1 if program.reductions else 0), arrays


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _make(shapes: list[tuple[int, ...]], device: str) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    params = []
    for shape in shapes:
        p = torch.randn(shape, generator=gen).to(device).requires_grad_()
        p.grad = torch.randn(shape, generator=gen).mul_(1e-3).to(device)
        params.append(p)
    return params


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def _peak_extra_bytes(step: Callable[[], Any], device: str) -> float:
    """Memory a step allocates and frees (temporaries), from the peak over the step."""
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        return float(torch.cuda.max_memory_allocated() - before)
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident set (Linux)
    except OSError:
        return math.nan
    before = _rss_kib("VmRSS:")
    step()
    return float(max(0, _rss_kib("VmHWM:") - before) * 1024)


def steps_per_round(
    step: Callable[[], Any], device: str, rounds: int, budget_s: float = 1.0
) -> int:
    """Warm up (state creation, kernel build, caches) and size a round to last a while."""
    step()
    step()
    _sync(device)
    start = time.perf_counter()
    step()
    _sync(device)
    once = max(time.perf_counter() - start, 1e-6)
    return max(1, min(50, int(budget_s / rounds / once)))


def time_round(step: Callable[[], Any], device: str, steps: int) -> float:
    """Seconds per step over one round of ``steps`` steps."""
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return (time.perf_counter() - start) / steps


def time_steps(step: Callable[[], Any], device: str, rounds: int) -> float:
    """Median seconds per step over ``rounds`` rounds."""
    per_round = steps_per_round(step, device, rounds)
    return statistics.median(time_round(step, device, per_round) for _ in range(rounds))


def interleaved(
    steps: list[tuple[Callable[[], Any], int]],
    limit: Callable[[], Any],
    device: str,
    rounds: int,
    budget_s: float = 1.0,
) -> list[float]:
    """Median seconds per call of each ``(step, calls per round)`` and then of ``limit``,
    timed in interleaved rounds, so that the machine's drift (other tenants, clock
    changes) falls on all of them alike."""
    cases = [*steps, (limit, steps_per_round(limit, device, rounds, budget_s))]
    samples: list[list[float]] = [[] for _ in cases]
    for _ in range(rounds):
        for times, (step, per_round) in zip(samples, cases, strict=True):
            times.append(time_round(step, device, per_round))
    return [statistics.median(times) for times in samples]


_TRIAD = r"""
#include <stdint.h>
void triad(float* restrict a, const float* restrict b, int64_t n, float s, int threads) {
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; ++i) a[i] += s * b[i];
}
"""


def triad(elements: int, arrays: int, device: str) -> tuple[Callable[[], Any], int]:
    """The in-place triad a += s·b (read a and b, write a) on all threads, with a and b
    together as large as the optimizer's working set (``arrays`` tensors of ``elements``),
    and the bytes one call moves: the machine's streaming limit, timed in the same
    interleaved rounds as the optimizers so that drift falls on it alike.

    On the CPU it is a plain OpenMP loop compiled here (torch's own ``add_`` measured
    slower than its fused Adam, so it cannot serve as the limit); on CUDA it is torch's."""
    size = max(1, elements * arrays // 2)
    a = torch.zeros(size, device=device)
    b = torch.ones(size, device=device)
    moved = 3 * size * 4
    if device == "cuda":
        return (lambda: a.add_(b, alpha=1e-7)), moved
    import ctypes

    from ravine.codegen import native as build

    kernel = build.load(_TRIAD).triad
    kernel.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_int64,
        ctypes.c_float,
        ctypes.c_int,
    ]
    threads = torch.get_num_threads()

    def step() -> None:  # a and b stay alive with the closure
        kernel(a.data_ptr(), b.data_ptr(), size, 1e-7, threads)

    return step, moved


@dataclass
class Row:
    workload: str
    optimizer: str
    library: str
    mode: str
    ms: float
    gb_s: float
    fraction_of_bandwidth: float
    speedup_vs_torch_fastest: float
    peak_extra_percent: float


def measure(
    workload: str, name: str, impls: list[str], device: str, rounds: int, budget_s: float = 1.0
) -> tuple[list[Row], float]:
    """Every case of one workload and optimizer, timed in interleaved rounds of about
    ``budget_s`` seconds per case in all; and the streaming bandwidth measured alongside."""
    shapes = WORKLOADS[workload]()
    elements = sum(math.prod(s) for s in shapes)
    param_bytes = elements * 4
    passes, arrays = traffic(name)
    moved = passes * param_bytes
    torch_cls, torch_kwargs, ravine_kwargs = TORCH_TWINS[name]
    cases: list[tuple[str, str, Callable[[list[torch.Tensor]], torch.optim.Optimizer]]] = []
    for mode, flags in TORCH_MODES.items():
        if name == "NormalizedGD":
            break
        cases.append(("torch", mode, lambda ps, f=flags: torch_cls(ps, **torch_kwargs, **f)))
    for impl in impls:
        flags = IMPLEMENTATIONS[impl]
        cases.append(
            ("ravine", impl, lambda ps, f=flags: rt.OPTIMIZERS[name](ps, **ravine_kwargs, **f))
        )

    # Build every case first, then time them in interleaved rounds, so that the machine's
    # drift (other tenants, clock changes) falls on all of them alike.
    ready = []
    for library, mode, make in cases:
        params = _make(shapes, device)
        try:
            opt = make(params)
            opt.step()
        except (RuntimeError, ValueError, TypeError) as error:  # e.g. torch has no fused mode
            print(
                f"  {workload} {name} {library} {mode}: skipped ({str(error).splitlines()[0][:70]})"
            )
            continue
        ready.append((library, mode, opt, steps_per_round(opt.step, device, rounds, budget_s)))
    limit, limit_bytes = triad(elements, arrays, device)
    steps = [(opt.step, per_round) for _, _, opt, per_round in ready]
    *seconds, limit_seconds = interleaved(steps, limit, device, rounds, budget_s)
    bandwidth = limit_bytes / limit_seconds / 1e9
    measured = [
        (library, mode, s, _peak_extra_bytes(opt.step, device))
        for (library, mode, opt, _), s in zip(ready, seconds, strict=True)
    ]
    del ready
    gc.collect()

    torch_best = min((s for lib, _, s, _ in measured if lib == "torch"), default=math.nan)
    rows = [
        Row(
            workload=workload,
            optimizer=name,
            library=library,
            mode=mode,
            ms=seconds * 1e3,
            gb_s=moved / seconds / 1e9,
            fraction_of_bandwidth=moved / seconds / 1e9 / bandwidth,
            speedup_vs_torch_fastest=torch_best / seconds,
            peak_extra_percent=100 * extra / param_bytes,
        )
        for library, mode, seconds, extra in measured
    ]
    return rows, bandwidth


def markdown(rows: list[Row], library: str = "ravine", mode: str = "fused") -> str:
    """One line per workload and optimizer: ravine's implementation against torch's best."""
    lines = [
        "| workload | optimizer | ravine ms | GB/s | of limit | torch fastest | torch ms "
        "| speed-up | extra mem |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        if (r.library, r.mode) != (library, mode):
            continue
        rivals = [
            t
            for t in rows
            if (t.workload, t.optimizer, t.library) == (r.workload, r.optimizer, "torch")
        ]
        best = min(rivals, key=lambda t: t.ms, default=None)
        torch_text = f"{best.mode} | {best.ms:.2f}" if best else "– | –"
        speedup = f"{r.speedup_vs_torch_fastest:.2f}×" if best else "–"
        lines.append(
            f"| {r.workload} | {r.optimizer} | {r.ms:.2f} | {r.gb_s:.1f} | "
            f"{r.fraction_of_bandwidth:.2f} | {torch_text} | {speedup} | "
            f"{r.peak_extra_percent:.1f}% |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="A,B,C")
    parser.add_argument("--optimizers", default=",".join(TORCH_TWINS))
    parser.add_argument("--impls", default="fused", help="ravine implementations to time")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", default="out/bench/bench.json")
    parser.add_argument("--markdown", help="also write the summary table to this file")
    args = parser.parse_args(argv)
    impls = [i for i in args.impls.split(",") if i]

    # the C++ walker builds in the background on first use (then comes from the disk cache):
    # measure what a long run gets, and say so
    walk.wait(timeout=300)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
        f"{platform.processor() or platform.machine()}, per-step walk: {walk.status()}"
    )
    header = (
        f"{'wl':<3}{'optimizer':<13}{'library':<8}{'mode':<11}{'ms/step':>9}{'GB/s':>8}"
        f"{'of limit':>9}{'vs torch':>9}{'extra mem':>10}"
    )
    rows: list[Row] = []
    bandwidths: dict[str, float] = {}
    for workload in args.workloads.split(","):
        for name in args.optimizers.split(","):
            new, bandwidth = measure(workload, name, impls, args.device, args.rounds)
            bandwidths[f"{workload}/{name}"] = bandwidth
            if not rows:
                print(header)
            print(
                f"-- {workload} {name}: streaming bandwidth over the same working set "
                f"{bandwidth:.1f} GB/s"
            )
            for r in new:
                print(
                    f"{r.workload:<3}{r.optimizer:<13}{r.library:<8}{r.mode:<11}{r.ms:>9.2f}"
                    f"{r.gb_s:>8.1f}{r.fraction_of_bandwidth:>9.2f}"
                    f"{r.speedup_vs_torch_fastest:>8.2f}x{r.peak_extra_percent:>9.1f}%"
                )
            rows.extend(new)
            sys.stdout.flush()
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "device": args.device,
                "machine": platform.machine(),
                "walk": walk.status(),
                "bandwidth_gb_s": bandwidths,
                "rows": [asdict(r) for r in rows],
            },
            indent=1,
        )
    )
    print(f"wrote {out}")
    if args.markdown:
        Path(args.markdown).write_text(markdown(rows) + "\n")
        print(f"wrote {args.markdown}")
    return rows


if __name__ == "__main__":
    main()
