"""The figure of each optimizer's page: it and what it builds on, in the seed's valley.

    python tools/docs/figures.py [OUT_DIR]        # default docs/optimizers/figures (~15 s)

``make docs`` runs it; the PNGs are committed, so the site builds in seconds and reads
the same on GitHub. The setting is ``ravine demo``'s (:mod:`ravine.lab.demo`): the valley
with κ = 50 from θ₀ = (−9, 2), 300 steps, each optimizer at the lr the demo's grid search
picks (AdaDelta at its lr = 1). Each page's figure draws the optimizer next to its
parents in the registry's family tree (``Spec.parents``): Momentum next to SGD, Adam next
to RMSProp and Momentum, and so on.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ravine._doc import page
from ravine.lab import plot
from ravine.lab.demo import GRID, START_ACROSS, START_ALONG, TOL
from ravine.lab.run import Trajectory, run
from ravine.lab.surfaces import valley, valley_axes
from ravine.lab.tune import tune_lr
from ravine.numpy import OPTIMIZERS
from ravine.rules import SPECS

KAPPA, STEPS = 50.0, 300


def trajectories() -> dict[str, Trajectory]:
    """Every optimizer's run at its tuned lr, by name."""
    surface = valley(KAPPA)
    steep, shallow = valley_axes(0.0)
    x0 = START_ALONG * shallow + START_ACROSS * steep
    runs = {}
    for name, cls in OPTIMIZERS.items():
        lr = tune_lr(name, surface, x0, STEPS, TOL, GRID).lr
        runs[name] = run(cls(lr=lr), surface, x0, STEPS)
    return runs


def main(out_dir: str | Path = "docs/optimizers/figures") -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = trajectories()
    written = []
    for spec in SPECS:
        panels = [runs[p] for p in spec.parents] + [runs[spec.name]]
        title = f"valley (κ = {KAPPA:g}): {STEPS} steps from θ₀ = (−9, 2), lr tuned"
        path = out / page(spec.name).replace(".md", ".png")
        written.append(plot.contour_with_trajectories(valley(KAPPA), panels, path, title=title))
        print(f"wrote {path}")
    return written


if __name__ == "__main__":
    main(*sys.argv[1:])
