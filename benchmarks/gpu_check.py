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

3. Sync-free steps: ``scaler.step(opt)`` under ``torch.amp.GradScaler`` and steps under
   ``nonfinite="skip"`` and ``"raise"`` (with a poisoned gradient) run under
   ``torch.cuda.set_sync_debug_mode("error")`` (in the dry run: with every Python read of
   a tensor value refused), and skip as the per-tensor rule does.
4. CUDA graphs: a ``capturable=True`` step captured once and replayed on new gradients
   (one of them poisoned, under ``nonfinite="skip"``) against eager per-tensor steps
   (GPU only).

Exits non-zero if any parity or sync-free check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Iterator
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


@contextlib.contextmanager
def no_host_sync(device: str) -> Iterator[None]:
    """On CUDA, any synchronising call raises; on the CPU (dry run), any read of a
    tensor's value into Python raises: the host's side of a synchronisation."""
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            yield
        finally:
            torch.cuda.set_sync_debug_mode(0)
        return
    names = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__")
    saved = {name: getattr(torch.Tensor, name) for name in names}

    def refuse(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a tensor value was read on the host during the step")

    for name in names:
        setattr(torch.Tensor, name, refuse)
    try:
        yield
    finally:
        for name, method in saved.items():
            setattr(torch.Tensor, name, method)


def _twins(name: str, device: str, **kw: Any) -> tuple[list[Any], Any, list[Any], Any]:
    """Parameters and a Triton optimizer, and copies with a per-tensor one."""
    import torch

    import ravine.torch as rt

    gen = torch.Generator().manual_seed(0)
    base = [torch.randn(s, generator=gen) for s in [(300,), (17, 5), (64,)]]
    a = [x.to(device).requires_grad_() for x in base]
    b = [x.to(device).requires_grad_() for x in base]
    cls = rt.OPTIMIZERS[name]
    return a, cls(a, lr=0.01, fused="triton", **kw), b, cls(b, lr=0.01, foreach=False)


def _fill(params: list[Any], step: int, poison: bool = False) -> None:
    """Gradients for ``step`` written in place (a captured graph reads the same memory)."""
    import torch

    gen = torch.Generator().manual_seed(1000 + step)
    for i, p in enumerate(params):
        g = torch.randn(p.shape, generator=gen)
        if poison and i == 1:
            g.view(-1)[3] = float("nan")
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        p.grad.copy_(g.to(p.device))


def sync_free(device: str) -> list[dict[str, Any]]:
    """Item 3: GradScaler, skip and raise steps without a host synchronisation, with the
    per-tensor rule's results."""

    results = []

    def report(check: str, ok: bool, detail: str) -> None:
        results.append({"check": check, "ok": ok, "detail": detail})
        print(f"  sync-free {check:<34}{'ok' if ok else 'FAILED'}  {detail}")

    for name in ("Adam", "NAdam", "NormalizedGD"):
        try:
            a, fa, b, fb = _twins(name, device, nonfinite="skip")
            for step in range(4):  # step 0 places the step counts on the device
                _fill(a, step, poison=step == 2)
                _fill(b, step, poison=step == 2)
                with no_host_sync(device) if step else contextlib.nullcontext():
                    fa.step()
                fb.nonfinite = "skip"
                fb.step()
            worst = rel_err(list(zip(a, b, strict=True)))
            ok = worst <= TOLERANCE["float32"] and fa.skipped_steps == fb.skipped_steps == 1
            report(f"skip {name}", ok, f"rel err {worst:.1e}, skipped {fa.skipped_steps}")
        except Exception as failure:
            report(f"skip {name}", False, f"{type(failure).__name__}: {failure}"[:300])
    try:
        a, fa, _, _ = _twins("RMSProp", device, nonfinite="raise")
        _fill(a, 0)
        fa.step()
        _fill(a, 1, poison=True)
        # the step reads the previous step's flag from a pinned host copy: no sync on a
        # GPU, but a host read all the same, which the dry run's stand-in would refuse
        with no_host_sync(device) if device == "cuda" else contextlib.nullcontext():
            fa.step()
        raised = False
        try:
            _fill(a, 2)
            fa.step()
        except FloatingPointError:
            raised = True
        report("raise RMSProp (at the next step)", raised, f"raised: {raised}")
    except Exception as failure:
        report("raise RMSProp", False, f"{type(failure).__name__}: {failure}"[:300])
    try:
        _grad_scaler(device, report)
    except Exception as failure:
        report("GradScaler Adam", False, f"{type(failure).__name__}: {failure}"[:300])
    return results


def _grad_scaler(device: str, report: Any) -> None:
    import torch

    import ravine.torch as rt

    runs = []
    for fused in (True, False):
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Linear(64, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1)
        )
        model = model.to(device)
        kw = {"fused": "triton"} if fused else {"foreach": False}
        opt = rt.Adam(model.parameters(), lr=1e-3, **kw)
        scaler = torch.amp.GradScaler(device, init_scale=2.0**14)
        x = torch.randn(32, 64, generator=torch.Generator().manual_seed(1)).to(device)
        for step in range(6):
            opt.zero_grad(set_to_none=False)
            loss = model(x).pow(2).mean() * (float("inf") if step == 3 else 1.0)
            scaler.scale(loss).backward()
            with no_host_sync(device) if fused and step else contextlib.nullcontext():
                scaler.step(opt)
            scaler.update()
        runs.append((list(model.parameters()), scaler.get_scale()))
    worst = rel_err(list(zip(runs[0][0], runs[1][0], strict=True)))
    ok = worst <= 1e-4 and runs[0][1] == runs[1][1]
    report("GradScaler Adam", ok, f"rel err {worst:.1e}, scale {runs[0][1]} / {runs[1][1]}")


def graphs(device: str) -> list[dict[str, Any]]:
    """Item 4: a captured capturable=True step replayed against eager per-tensor steps."""
    import torch

    if device != "cuda":
        print("  graphs: not run (CUDA graphs need a GPU)")
        return []
    results = []
    for name in ("Adam", "NAdam", "NAG", "NormalizedGD"):
        try:
            a, fa, b, fb = _twins(name, device, capturable=True, nonfinite="skip")
            fb.nonfinite = "skip"
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up off the capturing stream, as torch asks
                for step in range(3):
                    _fill(a, step)
                    fa.step()
            torch.cuda.current_stream().wait_stream(side)
            for step in range(3):
                _fill(b, step)
                fb.step()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                fa.step()
            for step in range(3, 8):
                _fill(a, step, poison=step == 5)
                _fill(b, step, poison=step == 5)
                graph.replay()
                fb.step()
            torch.cuda.synchronize()
            worst = rel_err(list(zip(a, b, strict=True)))
            ok = worst <= TOLERANCE["float32"] and fa.skipped_steps == fb.skipped_steps == 1
            detail = f"rel err {worst:.1e}, skipped {fa.skipped_steps}"
        except Exception as failure:
            ok, detail = False, f"{type(failure).__name__}: {failure}"[:300]
        results.append({"check": f"graph {name}", "ok": ok, "detail": detail})
        print(f"  graph {name:<13}{'ok' if ok else 'FAILED'}  {detail}")
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
    steps = sync_free(device) + graphs(device)
    print(f"sync-free and graphs: {sum(r['ok'] for r in steps)} of {len(steps)} ok")

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
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "torch": torch.__version__,
                "triton": triton.__version__,
                "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu (dry run)",
                "parity": results,
                "sync_free_and_graphs": steps,
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
    return 0 if all(r["ok"] for r in results + steps) else 1


if __name__ == "__main__":
    sys.exit(main())
