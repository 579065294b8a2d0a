"""The lab: optimizers on 2-D surfaces with pathological curvature.

* :mod:`~ravine.lab.surfaces` — the seed's valley (ill-conditioned quadratic), Rosenbrock,
  Beale, Booth, Himmelblau, Rastrigin, a saddle, a plateau, user callables;
* :mod:`~ravine.lab.minibatch` — least squares whose gradient is a real mini-batch mean;
* :mod:`~ravine.lab.run` — one optimizer, one surface: the full :class:`Trajectory`;
* :mod:`~ravine.lab.metrics` — steps to tolerance, final loss, fitted rate, zig-zag, path
  ratio, spread over seeds;
* :mod:`~ravine.lab.tune` — the same search, budget and objective for every optimizer;
* :mod:`~ravine.lab.theory` — measured vs textbook rates, NAG's two forms, Distill's map;
* :mod:`~ravine.lab.claims` — the seed's claims, measured;
* :mod:`~ravine.lab.plot` — contours with paths, loss curves (matplotlib, Agg);
* :mod:`~ravine.lab.demo` — ``ravine demo``.

Plotting needs matplotlib (the ``lab`` extra); it is imported only by ``plot`` and ``demo``.
"""

from .metrics import (
    final_loss,
    fitted_rate,
    path_ratio,
    spread,
    steps_to_tolerance,
    travel_ratio,
    zigzag_index,
)
from .run import Trajectory, run, run_all, run_seeds
from .surfaces import SURFACES, Surface, from_callable, rosenbrock, valley, valley_axes
from .tune import Tuning, tune_lr

__all__ = [
    "SURFACES",
    "Surface",
    "Trajectory",
    "Tuning",
    "final_loss",
    "fitted_rate",
    "from_callable",
    "path_ratio",
    "rosenbrock",
    "run",
    "run_all",
    "run_seeds",
    "spread",
    "steps_to_tolerance",
    "travel_ratio",
    "tune_lr",
    "valley",
    "valley_axes",
    "zigzag_index",
]
