"""GPU check (at most ~5 minutes on one GPU): the Triton engine's parity and speed.

    python benchmarks/gpu_check.py [--json out/bench/gpu.json] [--markdown out/bench/gpu.md]
    python benchmarks/gpu_check.py --dry-run     # the same script on the CPU, in Triton's
                                                 # interpreter, tiny sizes (about a minute)

1. Parity: every optimizer with ``fused="triton"`` against the per-tensor rule on the
   device, in float64, float32, float16 and bfloat16 (bfloat16 not in the interpreter),
   over tensors smaller than a chunk, exactly one, straddling a boundary, and empty.
2. Speed: the harness's workloads A, B and C (``bench.measure``): ravine's Triton and
   foreach engines against torch.optim's for-loop, foreach and fused modes, with the card's
   in-place streaming bandwidth measured in the same interleaved rounds; then the issue's
   targets, and whether Triton beat foreach everywhere (the condition for making it the
   default on CUDA).

Not checked, because not implemented yet: sync-free ``nonfinite``/GradScaler steps and
CUDA-graph capture (issue #13, items 3 and 4). Exits non-zero if parity fails.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

DEADLINE_S = 270
"""Timing stops starting new cases after this long (the check must fit in 5 minutes)."""
TOLERANCE = {"float64": 1e-12, "float32": 1e-5, "bfloat16": 4e-2, "float16": 5e-3}
"""As tests/conftest.py: relative error allowed between two implementations of one rule."""
TARGET_BANDWIDTH = 0.85  # workload A, all nine
AT_LEAST_TORCH_FUSED = ("SGD", "Momentum", "NAG", "Adagrad", "Adam")
THREE_TIMES = ("RMSProp", "AdaDelta", "NAdam")  # ≥ 3× torch's fastest on B and C


def rel_err(pairs: list[tuple[Any, Any]]) -> float:
    """max over pairs of max|a − b| / max|b|, in float64 on the host."""
    worst = 0.0
    for a, b in pairs:
        a64, b64 = a.detach().double().cpu(), b.detach().double().cpu()
        if b64.numel():
            scale = max(b64.abs().max().item(), 1e-30)
            worst = max(worst, (a64 - b64).abs().max().item() / scale)
    return worst


def parity_case(name: str, dtype: Any, device: str, shapes: list[tuple[int, ...]]) -> float:
    """Triton against the per-tensor rule, 5 steps: the worst relative error of any
    parameter or state tensor (infinite if anything fell back)."""
    import torch

    import ravine.torch as rt

    gen = torch.Generator().manual_seed(0)
    base = [torch.randn(s, generator=gen) for s in shapes]
    a = [x.to(device, dtype).requires_grad_() for x in base]
    b = [x.to(device, dtype).requires_grad_() for x in base]
    cls = rt.OPTIMIZERS[name]
    fa, fb = cls(a, lr=0.05, fused="triton"), cls(b, lr=0.05, foreach=False)
    for step in range(5):
        gen = torch.Generator().manual_seed(100 + step)
        grads = [torch.randn(s, generator=gen) for s in shapes]
        for params, opt in ((a, fa), (b, fb)):
            for p, g in zip(params, grads, strict=True):
                p.grad = g.to(device, dtype)
            opt.step()
    pairs = []
    for x, y in zip(a, b, strict=True):
        pairs.append((x, y))
        pairs += [(fa.state[x][k], v) for k, v in fb.state[y].items() if torch.is_tensor(v)]
    return rel_err(pairs) if fa.fallbacks == 0 else math.inf


def parity(device: str, dtypes: list[str], chunk: int) -> list[dict[str, Any]]:
    """Every optimizer in every dtype; an error (a kernel that does not compile) is
    reported and the check goes on."""
    import torch

    from ravine.rules import SPECS

    shapes = [(3,), (chunk,), (chunk + 5,), (0,), (2, chunk // 2 + 1)]
    results = []
    for dtype_name in dtypes:
        for spec in SPECS:
            try:
                worst = parity_case(spec.name, getattr(torch, dtype_name), device, shapes)
                error = ""
            except Exception as failure:  # keep going: one run should say everything
                worst, error = math.inf, f"{type(failure).__name__}: {failure}"[:300]
            ok = worst <= TOLERANCE[dtype_name]
            results.append(
                {"optimizer": spec.name, "dtype": dtype_name, "rel_err": worst, "ok": ok}
                | ({"error": error} if error else {})
            )
            print(f"  parity {dtype_name:<9}{spec.name:<13}{worst:9.2e} {'ok' if ok else 'FAILED'}")
            if error:
                print(f"    {error}")
    return results


def targets(rows: list[Any]) -> list[str]:
    """The issue's GPU targets, and Triton against ravine's foreach, as lines of text."""
    lines = []
    by = {(r.workload, r.optimizer, r.library, r.mode): r for r in rows}
    triton_rows = [r for r in rows if (r.library, r.mode) == ("ravine", "triton")]
    for r in triton_rows:
        torch_rows = [
            t
            for t in rows
            if (t.workload, t.optimizer, t.library) == (r.workload, r.optimizer, "torch")
        ]
        fastest = min((t.ms for t in torch_rows), default=math.nan)
        fused = by.get((r.workload, r.optimizer, "torch", "fused"))
        foreach = by.get((r.workload, r.optimizer, "ravine", "foreach"))
        checks = []
        if r.workload == "A":
            ok = r.fraction_of_bandwidth >= TARGET_BANDWIDTH
            checks.append(f"{r.fraction_of_bandwidth:.2f} of bandwidth {'ok' if ok else 'MISSED'}")
        if r.optimizer in AT_LEAST_TORCH_FUSED and fused is not None:
            ratio = fused.ms / r.ms
            checks.append(f"{ratio:.2f}× torch fused {'ok' if ratio >= 1.0 else 'MISSED'}")
        if r.optimizer in THREE_TIMES and r.workload in ("B", "C"):
            ratio = fastest / r.ms
            checks.append(f"{ratio:.2f}× torch fastest {'ok' if ratio >= 3.0 else 'MISSED'}")
        if foreach is not None:
            checks.append(f"{foreach.ms / r.ms:.2f}× ravine foreach")
        lines.append(f"{r.workload} {r.optimizer:<13}" + "; ".join(checks))
    faster = [
        r
        for r in triton_rows
        if (f := by.get((r.workload, r.optimizer, "ravine", "foreach"))) and r.ms < f.ms
    ]
    verdict = "faster" if triton_rows and len(faster) == len(triton_rows) else "NOT faster"
    lines.append(
        f"Triton {verdict} than foreach in {len(faster)} of {len(triton_rows)} cases "
        "(the default on CUDA switches to Triton only when it is faster everywhere)"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default="out/bench/gpu.json")
    parser.add_argument("--markdown", default="out/bench/gpu.md")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="on the CPU through Triton's interpreter, with tiny sizes (checks the script)",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.dry_run:
        os.environ["TRITON_INTERPRET"] = "1"  # before any kernel module is imported
    import bench  # the harness beside this file (after the path is set)
    import torch

    from ravine.torch.engines import triton_fused

    problem = triton_fused.import_problem()
    if problem is not None:
        raise SystemExit(f"gpu_check: {problem}")
    if args.dry_run:
        device, dtypes, rounds, budget = "cpu", ["float64", "float32", "float16"], 2, 0.05
        triton_fused.CHUNK, triton_fused.BLOCK = 64, 64
        tiny = {"A": [(256,)], "B": [(64,)] * 4, "C": [(128,), (8, 8), (8,), (3,)]}
        for name, shapes in tiny.items():
            bench.WORKLOADS[name] = lambda shapes=shapes: shapes
    elif not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device (use --dry-run to check the script here)")
    else:
        device, dtypes, rounds, budget = "cuda", list(TOLERANCE), 5, 0.5
        print(torch.cuda.get_device_name(0))
    import triton

    print(f"torch {torch.__version__}, triton {triton.__version__}, device {device}")

    results = parity(device, dtypes, triton_fused.CHUNK)
    print(f"parity: {sum(r['ok'] for r in results)} of {len(results)} ok")

    rows: list[Any] = []
    bandwidths: dict[str, float] = {}
    skipped = []
    for workload in ("A", "B", "C"):
        for name in bench.TORCH_TWINS:
            if time.perf_counter() - started > DEADLINE_S:
                skipped.append(f"{workload}/{name}")
                continue
            try:
                new, bandwidth = bench.measure(
                    workload, name, ["triton", "foreach"], device, rounds, budget
                )
            except Exception as failure:  # keep going: one run should say everything
                print(f"  {workload} {name}: {type(failure).__name__}: {failure}"[:300])
                skipped.append(f"{workload}/{name} (failed)")
                continue
            bandwidths[f"{workload}/{name}"] = bandwidth
            rows += new
            for r in new:
                print(
                    f"  {r.workload} {r.optimizer:<13}{r.library:<7}{r.mode:<9}{r.ms:9.3f} ms"
                    f"{r.gb_s:9.1f} GB/s {r.fraction_of_bandwidth:5.2f} of {bandwidth:.0f} GB/s"
                )
    if skipped:
        print(f"not timed (out of time, or failed): {', '.join(skipped)}")
    table = bench.markdown(rows, mode="triton")
    verdicts = targets(rows)
    print(table)
    print("\n".join(verdicts))
    print("not checked (not implemented): sync-free skip/raise and GradScaler, CUDA graphs")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "torch": torch.__version__,
                "triton": triton.__version__,
                "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu (dry run)",
                "parity": results,
                "bandwidth_gb_s": bandwidths,
                "rows": [vars(r) for r in rows],
                "targets": verdicts,
                "not_timed": skipped,
            },
            indent=1,
        )
    )
    Path(args.markdown).write_text(table + "\n\n" + "\n".join(verdicts) + "\n")
    print(f"wrote {out} and {args.markdown} in {time.perf_counter() - started:.0f} s")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
