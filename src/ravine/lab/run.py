"""Run one optimizer on one surface and record everything: pure, no plotting.

Every array of a :class:`Trajectory` is indexed by k, the number of steps taken, so row k
of ``thetas``, ``losses``, ``grads`` and each ``internals`` entry describe the same moment::

    params_0 = x0,  state_0 = opt.init(x0)
    grads[k] = ∇f(params_k)                              (the gradient step k + 1 uses)
    params_{k+1}, state_{k+1} = opt.update(params_k, grads[k], state_k)
    thetas[k] = opt.theta(params_k, state_k)             (the seed's θ; losses[k] = f(θ_k))

The stored ``params`` equal θ except for look-ahead rules (NAG), which keep the look-ahead
point φ; its gradient is the one NAG needs, and θ is what the seed plots.

On a mini-batch surface (``surface.sample_grad``) ``grads[k]`` is the mini-batch gradient the
step used, drawn with ``np.random.default_rng(seed)``: the same seed, the same batches.
Gradients are used as they come: nothing is clipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..numpy import OPTIMIZERS, Optimizer
from .surfaces import Surface


@dataclass(frozen=True, eq=False)
class Trajectory:
    """One optimizer's path on one surface, N steps, every array with N + 1 rows."""

    name: str
    """The optimizer's registry name."""
    hyperparameters: dict[str, Any]
    surface: str
    f_min: float
    """f at the surface's minimum: ``losses - f_min`` is the gap to the optimum."""
    thetas: np.ndarray
    """(N + 1, 2): the seed's θ after k steps."""
    points: np.ndarray
    """(N + 1, 2): the stored parameters, where the gradient is taken (φ for NAG)."""
    losses: np.ndarray
    """(N + 1,): f(θ_k)."""
    grads: np.ndarray
    """(N + 1, 2): ∇f(points[k]), the gradient the (k + 1)-th step uses."""
    internals: dict[str, np.ndarray]
    """The optimizer's state fields after k steps, e.g. m, G, s: (N + 1, 2) or (N + 1,)."""

    seed: int | None = None
    """The seed of the mini-batch draws (None on a deterministic surface)."""

    @property
    def moves(self) -> np.ndarray:
        """(N, 2): ``θ_{k+1} − θ_k``, the step actually taken in the seed's θ."""
        return np.diff(self.thetas, axis=0)

    @property
    def effective_lr(self) -> np.ndarray:
        """(N, 2): the effective per-coordinate step ``−(θ_{k+1} − θ_k) / grads[k]``.

        The lr a plain gradient step would need to move each coordinate as the optimizer did:
        ``lr`` for SGD, ``lr/√(G_{k+1} + eps)`` for Adagrad and RMSProp, and for momentum
        rules a ratio that carries the history (it can be negative). NaN where the gradient
        is 0.
        """
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = -self.moves / self.grads[:-1]
        return np.where(self.grads[:-1] == 0, np.nan, ratio)

    @property
    def steps(self) -> int:
        return len(self.losses) - 1

    @property
    def diverged(self) -> bool:
        """Whether the run overflowed; rows after it are NaN."""
        return not bool(np.isfinite(self.losses[-1]))


def run(
    optimizer: Optimizer, surface: Surface, x0: Any, steps: int, *, seed: int = 0
) -> Trajectory:
    """Take ``steps`` steps of ``optimizer`` from ``x0`` on ``surface``.

    A run whose parameters stop being finite halts there; its remaining rows are NaN.
    ``seed`` draws the mini-batches of a stochastic surface and is ignored otherwise.
    """
    rng = np.random.default_rng(seed)
    stochastic = surface.sample_grad
    fields = optimizer.spec.state_fields
    params = np.array(x0, dtype=np.float64)
    state = optimizer.init(params)
    points, thetas, grads = [], [], []
    internals: dict[str, list[Any]] = {name: [] for name in fields}
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(steps + 1):
            grad = surface.grad(params) if stochastic is None else stochastic(params, rng)
            points.append(params)
            thetas.append(optimizer.theta(params, state))
            grads.append(grad)
            for name in fields:
                internals[name].append(getattr(state.rule, name))
            if k == steps or not np.all(np.isfinite(params)):
                break
            params, state = optimizer.update(params, grad, state)
        losses = [surface.f(theta) for theta in thetas]

    def padded(rows: list[Any]) -> np.ndarray:
        array = np.asarray(rows, dtype=np.float64)
        pad = np.full((steps + 1 - len(array), *array.shape[1:]), np.nan)
        return np.concatenate([array, pad])

    return Trajectory(
        name=optimizer.spec.name,
        hyperparameters=dict(optimizer.hparams),
        surface=surface.name,
        f_min=surface.f(surface.minimum),
        thetas=padded(thetas),
        points=padded(points),
        losses=padded(losses),
        grads=padded(grads),
        internals={name: padded(rows) for name, rows in internals.items()},
        seed=None if stochastic is None else seed,
    )


def run_all(
    optimizers: Iterable[str] | Mapping[str, Mapping[str, Any]],
    surface: Surface,
    x0: Any,
    steps: int,
    *,
    seed: int = 0,
) -> dict[str, Trajectory]:
    """Run several registry optimizers from the same start with the same seed.

    ``optimizers`` is a list of registry names (default hyperparameters) or a mapping
    name → hyperparameters, e.g. ``{"SGD": {"lr": 0.03}, "Momentum": {"lr": 0.3}}``.
    """
    chosen = optimizers if isinstance(optimizers, Mapping) else {n: {} for n in optimizers}
    return {
        name: run(OPTIMIZERS[name](**dict(hp)), surface, x0, steps, seed=seed)
        for name, hp in chosen.items()
    }


def run_seeds(
    optimizer: Optimizer, surface: Surface, x0: Any, steps: int, seeds: Iterable[int]
) -> list[Trajectory]:
    """The same run once per seed (different mini-batches): for spreads over seeds."""
    return [run(optimizer, surface, x0, steps, seed=s) for s in seeds]
