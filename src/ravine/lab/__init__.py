"""The lab: optimizers on 2-D surfaces with pathological curvature.

* :mod:`~ravine.lab.surfaces` — the seed's valley (ill-conditioned quadratic), Rosenbrock;
* :mod:`~ravine.lab.run` — one optimizer, one surface: the full :class:`Trajectory`;
* :mod:`~ravine.lab.metrics` — steps to tolerance, final loss, zig-zag and travel;
* :mod:`~ravine.lab.tune` — the same lr grid search for every optimizer;
* :mod:`~ravine.lab.plot` — contours with paths, loss curves (matplotlib, Agg);
* :mod:`~ravine.lab.demo` — ``ravine demo``.

Plotting needs matplotlib (the ``lab`` extra); it is imported only by ``plot`` and ``demo``.
"""

from .metrics import final_loss, steps_to_tolerance, travel_ratio, zigzag_index
from .run import Trajectory, run
from .surfaces import Surface, rosenbrock, valley, valley_axes
from .tune import Tuning, tune_lr

__all__ = [
    "Surface",
    "Trajectory",
    "Tuning",
    "final_loss",
    "rosenbrock",
    "run",
    "steps_to_tolerance",
    "travel_ratio",
    "tune_lr",
    "valley",
    "valley_axes",
    "zigzag_index",
]
