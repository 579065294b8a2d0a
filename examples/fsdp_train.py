"""Sharded training with a ravine optimizer: FSDP2 (``fully_shard``) on CPU (gloo), with a
distributed checkpoint (torch.distributed.checkpoint) half-way, resumed from.

    torchrun --nproc_per_node 2 examples/fsdp_train.py [--optimizer Adam] [--steps 40]

Parameters, gradients and optimizer state are DTensors sharded across the ranks: each rank
keeps and updates only its shard. Elementwise rules run on the local shards (the fused
kernel included); NormalizedGD's norm is taken over the whole gradient, across ranks.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from torch.distributed.fsdp import fully_shard

from ravine.torch import OPTIMIZERS


def build(name: str, lr: float) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    fully_shard(model[0])
    fully_shard(model)
    return model, OPTIMIZERS[name](model.parameters(), lr=lr)


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--optimizer", default="Adam", choices=sorted(OPTIMIZERS))
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    x = torch.randn(256, 8, generator=torch.Generator().manual_seed(1))
    y = x.sum(dim=1, keepdim=True).sin()
    x, y = x[rank::world], y[rank::world]

    def train(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: range) -> float:
        for step in steps:
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            if rank == 0 and step % 10 == 0:
                print(f"step {step:3d}  loss {loss.item():.4f}")
        return loss.item()

    half = args.steps // 2
    model, opt = build(args.optimizer, args.lr)
    train(model, opt, range(half))

    # every rank writes its shards; rank 0 picks the directory
    where = [tempfile.mkdtemp(prefix="ravine-fsdp-") if rank == 0 else None]
    dist.broadcast_object_list(where)
    model_sd, optim_sd = get_state_dict(model, opt)
    dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=where[0])

    # as after a restart: a fresh model and optimizer, loaded from the checkpoint
    model, opt = build(args.optimizer, args.lr)
    model_sd, optim_sd = get_state_dict(model, opt)
    state = {"model": model_sd, "optim": optim_sd}
    dcp.load(state, checkpoint_id=where[0])
    set_state_dict(model, opt, model_state_dict=state["model"], optim_state_dict=state["optim"])
    loss = train(model, opt, range(half, args.steps))
    dist.barrier()  # every rank has read its shards
    if rank == 0:
        shutil.rmtree(where[0])
        print(f"final loss {loss:.4f} ({args.optimizer}, {world} ranks, resumed at {half})")
    dist.barrier()  # every rank done before any tears down (see ddp_train.py)
    dist.destroy_process_group()
    return loss


if __name__ == "__main__":
    main()
    # Leave without interpreter finalization: torch 2.13's gloo can abort a rank that has
    # finished cleanly, at exit (a worker thread frees a work that needs the GIL; see
    # docs/distributed.md), turning a good run's exit code into -6.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
