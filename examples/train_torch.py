"""Train a small MLP with every ravine optimizer.

    python examples/train_torch.py [--epochs 20]

Data are generated here (two interleaved spirals), so nothing is downloaded. Prints, per
optimizer, the training loss after each quarter of the run and the final accuracy.
"""

from __future__ import annotations

import argparse
import math

import torch

import ravine.torch as rt

LRS = {
    "SGD": 0.3,
    "Momentum": 0.3,
    "NAG": 0.3,
    "NormalizedGD": 0.05,
    "Adagrad": 0.05,
    "RMSProp": 3e-3,
    "AdaDelta": 1.0,
    "Adam": 3e-3,
    "NAdam": 3e-3,
}
"""Learning rates that work for this problem (AdaDelta: the seed's lr = 1)."""


def spirals(n: int = 1024, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    label = torch.randint(0, 2, (n,), generator=gen)
    radius = torch.rand(n, generator=gen) * 3 + 0.2
    angle = radius * 2.5 + label * math.pi + torch.randn(n, generator=gen) * 0.15
    x = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)
    return x, label


def train(name: str, epochs: int, batch: int = 64) -> tuple[list[float], float]:
    torch.manual_seed(0)
    x, y = spirals()
    model = torch.nn.Sequential(
        torch.nn.Linear(2, 64),
        torch.nn.Tanh(),
        torch.nn.Linear(64, 64),
        torch.nn.Tanh(),
        torch.nn.Linear(64, 2),
    )
    opt = rt.OPTIMIZERS[name](model.parameters(), lr=LRS[name])
    losses = []
    for _ in range(epochs):
        order = torch.randperm(len(x))
        total = 0.0
        for start in range(0, len(x), batch):
            idx = order[start : start + batch]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        losses.append(total / len(x))
    with torch.no_grad(), opt.swap_to_theta():  # evaluate at θ (matters for NAG)
        accuracy = (model(x).argmax(1) == y).float().mean().item()
    return losses, accuracy


def main(argv: list[str] | None = None) -> dict[str, tuple[list[float], float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args(argv)
    results = {}
    print(f"{'optimizer':<13} {'lr':>7}  loss by quarter of {args.epochs} epochs          accuracy")
    for name in rt.OPTIMIZERS:
        losses, accuracy = train(name, args.epochs)
        quarters = [losses[max(0, len(losses) * k // 4 - 1)] for k in (1, 2, 3, 4)]
        print(
            f"{name:<13} {LRS[name]:>7g}  "
            + "  ".join(f"{q:.3f}" for q in quarters)
            + f"   {accuracy:.3f}"
        )
        results[name] = (losses, accuracy)
    return results


if __name__ == "__main__":
    main()
