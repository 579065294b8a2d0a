"""ms/step of ravine.jax against optax, both jitted, in the same process.

    python benchmarks/jax_bench.py [--workloads A,B] [--optimizers adam,rmsprop,momentum,adagrad]
                                   [--rounds 7] [--steps 5] [--json out/bench/jax_bench.json]

Workloads (float32):
  A  one tensor of 16M elements;
  B  2000 tensors of 2048 elements.

Each optimizer is timed against the optax configuration that takes the same steps
(``TWINS``; tests/test_jax.py checks that they do). The timed function is one jitted step,
``params, state = step(params, state, grads)`` (update, then ``optax.apply_updates``), with
params and state donated, so both libraries run as a training loop would run them.

The machine is shared and its speed drifts, so the two are interleaved: every round times
``--steps`` steps of one, then of the other, alternating which goes first. Reported: the
median ms/step of each over the rounds, and the median over rounds of the per-round ratio
optax ms / ravine ms (> 1: ravine is faster). Nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import ravine.jax as rj

Factory = Callable[[], optax.GradientTransformation]

TWINS: dict[str, tuple[Factory, Factory]] = {
    # name: (ravine, optax), configured to take the same steps (docs/conventions.md)
    "adam": (
        lambda: rj.adam(1e-3, beta=0.9, gamma=0.999, eps=1e-8, eps_mode="outside"),
        lambda: optax.adam(1e-3, b1=0.9, b2=0.999, eps=1e-8),
    ),
    "rmsprop": (
        lambda: rj.rmsprop(1e-3, gamma=0.9, eps=1e-8),
        lambda: optax.rmsprop(1e-3, decay=0.9, eps=1e-8),
    ),
    "momentum": (
        lambda: rj.momentum(1e-3, beta=0.9, ema=False),
        lambda: optax.sgd(1e-3, momentum=0.9),
    ),
    "adagrad": (
        lambda: rj.adagrad(1e-2, eps=1e-7, initial_accumulator_value=0.1),
        lambda: optax.adagrad(1e-2, eps=1e-7),
    ),
}

WORKLOADS: dict[str, list[tuple[int, ...]]] = {
    "A": [(16 * 2**20,)],
    "B": [(2048,)] * 2000,
}


def tensors(shapes: list[tuple[int, ...]], seed: int) -> list[jax.Array]:
    rng = np.random.default_rng(seed)
    return [jnp.asarray(rng.standard_normal(s, dtype=np.float32)) for s in shapes]


def jitted_step(opt: optax.GradientTransformation) -> Callable[..., Any]:
    """One training step, params and state donated (updated in place where XLA can)."""

    def step(params: Any, state: Any, grads: Any) -> tuple[Any, Any]:
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return jax.jit(step, donate_argnums=(0, 1))


class Runner:
    """One library's optimizer on one workload: its own params and state, stepped in
    place; ``time(steps)`` gives ms/step."""

    def __init__(self, opt: optax.GradientTransformation, shapes: list[tuple[int, ...]]):
        self.params = tensors(shapes, seed=0)
        self.grads = tensors(shapes, seed=1)
        self.state = opt.init(self.params)
        self.step = jitted_step(opt)
        self.time(2)  # compile and warm up

    def time(self, steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            self.params, self.state = self.step(self.params, self.state, self.grads)
        jax.block_until_ready((self.params, self.state))
        return (time.perf_counter() - start) / steps * 1e3


def compare(name: str, workload: str, rounds: int, steps: int) -> dict[str, Any]:
    """Interleaved rounds of ravine and optax: their medians and the median ratio."""
    make_ravine, make_optax = TWINS[name]
    shapes = WORKLOADS[workload]
    runners = {"ravine": Runner(make_ravine(), shapes), "optax": Runner(make_optax(), shapes)}
    times: dict[str, list[float]] = {"ravine": [], "optax": []}
    for r in range(rounds):
        order = ("ravine", "optax") if r % 2 == 0 else ("optax", "ravine")
        for lib in order:
            times[lib].append(runners[lib].time(steps))
    ratios = [o / r for o, r in zip(times["optax"], times["ravine"], strict=True)]
    return {
        "optimizer": name,
        "workload": workload,
        "ravine_ms": statistics.median(times["ravine"]),
        "optax_ms": statistics.median(times["optax"]),
        "ratio": statistics.median(ratios),
        "rounds": rounds,
        "steps": steps,
    }


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return (
        f"{platform.system()} {cpu}, {os.cpu_count()} CPU cores, jax {jax.__version__} "
        f"({jax.default_backend()}), optax {optax.__version__}"
    )


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| workload | optimizer | ravine ms/step | optax ms/step | optax / ravine |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['workload']} | {r['optimizer']} | {r['ravine_ms']:.2f} | {r['optax_ms']:.2f} "
        f"| {r['ratio']:.2f}× |"
        for r in results
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="A,B")
    parser.add_argument("--optimizers", default=",".join(TWINS))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5, help="steps per round and library")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = []
    for workload in args.workloads.split(","):
        for name in args.optimizers.split(","):
            results.append(compare(name, workload, args.rounds, args.steps))
            print(table(results[-1:]).splitlines()[-1], flush=True)
    print(f"\n{datetime.date.today()}, {machine()}\n\n{table(results)}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"date": str(datetime.date.today()), "machine": machine(), "results": results}
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
