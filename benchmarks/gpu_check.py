"""GPU check (at most ~5 minutes on one GPU): Adam, RMSProp and AdaDelta, ravine's fast path
against torch.optim's fused and foreach modes, workloads A and B.

    python benchmarks/gpu_check.py [--json out/bench/gpu.json]

Run it whenever a GPU is available; it prints the same table as ``bench.py`` plus the
card's in-place streaming bandwidth over the same working set. ravine has no fused CUDA
kernel yet: its fast path on CUDA is ``foreach=True`` (the rule on batches of tensors).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # the harness beside this file (after the path is set)


def main(argv: list[str] | None = None) -> None:
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this check needs a GPU")
    args = argv if argv is not None else sys.argv[1:]
    json_path = args[args.index("--json") + 1] if "--json" in args else "out/bench/gpu.json"
    print(torch.cuda.get_device_name(0))
    bench.main(
        [
            "--device",
            "cuda",
            "--workloads",
            "A,B",
            "--optimizers",
            "Adam,RMSProp,AdaDelta",
            "--impls",
            "foreach",
            "--rounds",
            "5",
            "--json",
            json_path,
        ]
    )


if __name__ == "__main__":
    main()
