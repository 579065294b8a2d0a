"""Training that survives being killed: checkpoint every few steps, resume from the last.

    python examples/resumable_train.py --checkpoint run.pt --steps 200 --out final.pt

Run it, kill it at any moment (even with SIGKILL), run the same command again: it resumes
from the last checkpoint and ends with exactly the parameters an uninterrupted run gives.
Checkpoints are written atomically (``ravine.torch.checkpoint.save``), so a kill during a
save leaves the previous one intact. Data are generated per step from the step number, so
resuming needs no data-loader state.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import ravine.torch as rt
from ravine.torch import checkpoint


def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(32, 8, generator=gen)
    return x, (x[:, :4].sum(1) > 0).long()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--every", type=int, default=5, help="checkpoint every N steps")
    parser.add_argument("--optimizer", default="Adam")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    opt = rt.OPTIMIZERS[args.optimizer](model.named_parameters(), lr=1e-2)
    start = 0
    if Path(args.checkpoint).exists():
        saved = checkpoint.load(args.checkpoint)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        start = saved["step"]
        print(f"resumed at step {start}", flush=True)
    for step in range(start, args.steps):
        x, y = batch(step)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if (step + 1) % args.every == 0:
            state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step + 1}
            checkpoint.save(args.checkpoint, state)
        print(f"step {step + 1}", flush=True)
    with opt.swap_to_theta():
        torch.save(model.state_dict(), args.out)


if __name__ == "__main__":
    main()
