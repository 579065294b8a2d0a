"""Theory checks on quadratics: measured rates against the textbook ones, from real runs.

On ``f = ½ θᵀAθ`` with eigenvalues ``mu = λ_n ≤ … ≤ λ_1 = L`` and ``kappa = L/mu``:

* gradient descent at ``lr = 2/(mu + L)`` contracts every error by ``(κ − 1)/(κ + 1)``;
* heavy-ball momentum ``θ_{k+1} = θ_k − α·∇f(θ_k) + β·(θ_k − θ_{k−1})`` at
  ``α = 4/(√L + √mu)²``, ``β = ((√κ − 1)/(√κ + 1))²`` contracts by ``(√κ − 1)/(√κ + 1)``.

ravine's Momentum is the seed's ``m ← β·m + (1 − β)·g, θ ← θ − lr·m``: the same iteration
with ``α = lr·(1 − β)``, so the heavy-ball α is run as ``lr = α/(1 − β)`` (or as ``lr = α``
with ``ema=False``, ``m ← β·m + g``).

For one eigenvalue λ the heavy ball is linear in (θ_k, θ_{k−1}), with characteristic
polynomial ``z² − (1 + β − h)·z + β`` where ``h = α·λ``; its largest root modulus is the rate
(:func:`heavy_ball_rate`). Distill's map ("Why Momentum Really Works", Goh 2017) splits the
(h, β) plane into :func:`heavy_ball_region`\\ s: monotone (real positive roots,
``h ≤ (1 − √β)²``), ripples (complex roots of modulus √β), oscillation (a negative real
root, ``h ≥ (1 + √β)²``) and divergence (``h > 2 + 2β``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..numpy import NAG, SGD, Momentum
from .metrics import distances, fitted_rate
from .run import run
from .surfaces import Surface, valley

KAPPAS: tuple[float, ...] = (10.0, 100.0, 1000.0)
"""The condition numbers of the rate checks."""


def gd_optimal(mu: float, L: float) -> tuple[float, float]:
    """(lr, rate): gradient descent's best constant lr ``2/(mu + L)`` and ``(κ − 1)/(κ + 1)``."""
    kappa = L / mu
    return 2.0 / (mu + L), (kappa - 1) / (kappa + 1)


def heavy_ball_optimal(mu: float, L: float) -> tuple[float, float, float]:
    """(alpha, beta, rate) of Polyak's optimal heavy ball; rate ``(√κ − 1)/(√κ + 1)``."""
    sk = math.sqrt(L / mu)
    rate = (sk - 1) / (sk + 1)
    return 4.0 / (math.sqrt(L) + math.sqrt(mu)) ** 2, rate**2, rate


def heavy_ball_rate(h: np.ndarray | float, beta: float) -> np.ndarray:
    """max |z| over the roots of ``z² − (1 + β − h)·z + β``, for each ``h = α·λ``."""
    b = 1.0 + beta - np.asarray(h, dtype=np.float64)
    disc = (b * b - 4 * beta).astype(np.complex128)
    roots = np.stack([(b + np.sqrt(disc)) / 2, (b - np.sqrt(disc)) / 2])
    return np.asarray(np.max(np.abs(roots), axis=0))


def heavy_ball_bounds(beta: Any) -> tuple[Any, Any, Any]:
    """Where Distill's regions meet along ``h = α·λ`` for momentum ``beta`` (a number or
    an array): monotone | ripples at ``(1 − √β)²``, ripples | oscillation at
    ``(1 + √β)²``, divergence beyond ``2 + 2β``."""
    root = np.sqrt(beta)
    return (1 - root) ** 2, (1 + root) ** 2, 2 + 2 * beta


def heavy_ball_region(h: float, beta: float) -> str:
    """Which of Distill's regions ``h = α·λ`` falls in for momentum ``beta``."""
    monotone, ripples, stable = heavy_ball_bounds(beta)
    if h > stable:
        return "divergence"
    if h <= monotone:
        return "monotone"
    if h < ripples:
        return "ripples"
    return "oscillation"


def rate_check(kappa: float, decades_gd: float = 10.0, decades_hb: float = 100.0) -> dict[str, Any]:
    """Measured vs theoretical rates of GD and heavy ball on ``valley(kappa)``.

    Each run starts at θ_0 = (1, 1) (both eigen-directions excited) and lasts until the
    theory predicts an error of ``10**-decades``: ``N = ⌈decades·ln 10 / −ln r⌉`` steps
    (``decades_gd`` for GD, whose error is exactly ``C·r^k``; ``decades_hb`` for the heavy
    ball, see below). The
    rate is :func:`~ravine.lab.metrics.fitted_rate` of ‖θ_k‖ over the second half (at the
    optimal heavy ball the roots are double, so the error is ``(a + b·k)·r^k`` and an early
    window would be biased by ``log(1 + 1/k)``). Errors are relative: ``|r̂ − r|/r`` and, the
    stricter, of the exponent ``|ln r̂ − ln r|/|ln r|``.
    """
    surface = valley(kappa)
    x0 = np.array([1.0, 1.0])
    lr_gd, rate_gd = gd_optimal(1.0, kappa)
    alpha, beta, rate_hb = heavy_ball_optimal(1.0, kappa)
    out: dict[str, Any] = {"kappa": kappa}
    runs = {
        "GD": (SGD(lr=lr_gd), rate_gd, {"lr": lr_gd}, decades_gd),
        "heavy ball": (
            Momentum(lr=alpha / (1 - beta), beta=beta),
            rate_hb,
            {"lr": alpha / (1 - beta), "beta": beta, "alpha": alpha},
            decades_hb,
        ),
    }
    for name, (opt, theory, hp, decades) in runs.items():
        steps = math.ceil(decades * math.log(10) / -math.log(theory))
        traj = run(opt, surface, x0, steps)
        measured = fitted_rate(distances(traj, surface.minimum), start=steps // 2)
        out[name] = {
            **hp,
            "steps": steps,
            "theory": theory,
            "measured": measured,
            "rel_error": abs(measured - theory) / theory,
            "exponent_rel_error": abs(math.log(measured) / math.log(theory) - 1),
        }
    return out


def nag_literal(surface: Surface, x0: Any, lr: float, beta: float, steps: int) -> np.ndarray:
    """The seed's NAG written literally, the gradient evaluated at the look-ahead point::

        m_t = β·m_{t−1} + (1 − β)·∇f(θ_{t−1} − lr·m_{t−1});   θ_t = θ_{t−1} − lr·m_t

    Returns (steps + 1, 2): θ_0 … θ_N. ravine's NAG stores φ = θ − lr·m instead (the
    reparametrized form, one gradient evaluation where the parameters are).

    A second, hand-written NAG on purpose: it is the *oracle* the report's check (and
    ``tests/test_lab_theory.py``) hold ravine's rule against, never an optimizer to use.
    """
    theta = np.array(x0, dtype=np.float64)
    m = np.zeros_like(theta)
    thetas = [theta]
    for _ in range(steps):
        m = beta * m + (1 - beta) * surface.grad(theta - lr * m)
        theta = theta - lr * m
        thetas.append(theta)
    return np.stack(thetas)


def nag_reparametrized(surface: Surface, x0: Any, lr: float, beta: float, steps: int) -> np.ndarray:
    """(steps + 1, 2): θ_k of ravine's NAG (stored look-ahead φ, θ = ``opt.theta``)."""
    return run(NAG(lr=lr, beta=beta), surface, x0, steps).thetas


def _envelope_rate(e: np.ndarray) -> float:
    """``(e_b / e_a)^(1/(b − a))`` over the second half of the representable part of ``e``."""
    if not np.all(np.isfinite(e)):
        return math.inf
    alive = np.flatnonzero(e > 1e-250)
    b = int(alive[-1]) if alive.size else 0
    a = b // 2
    return float((e[b] / e[a]) ** (1.0 / (b - a))) if b > a else 0.0


def diagonal_quadratic(h: np.ndarray) -> Surface:
    """``f = ½ Σ_i h_i·θ_i²``: one independent eigenvalue per coordinate."""
    h = np.asarray(h, dtype=np.float64)
    return Surface(
        name="diagonal quadratic",
        f=lambda theta: 0.5 * float(np.sum(h * theta * theta)),
        grad=lambda theta: h * theta,
        minimum=np.zeros_like(h),
        bounds=((-1.0, 1.0), (-1.0, 1.0)),
    )


def convergence_map(h: np.ndarray, betas: np.ndarray, steps: int = 200) -> dict[str, np.ndarray]:
    """Distill's (h, β) map from real runs of ravine's Momentum (``ema=False``, lr = 1).

    For each β, one run on :func:`diagonal_quadratic` (h) from θ_0 = 1 gives every h at
    once. Per (β, h):

    * ``rate``: ``(e_b / e_a)^(1/(b − a))`` with ``e_k = ‖(θ_k, θ_{k−1})‖``, the state's
      size, ``b`` the last step with ``e_b > 1e-250`` (fast rates underflow) and ``a = b/2``
      (inf if the run overflowed);
    * ``sign_changes``: the share of steps where θ changes sign (0 monotone, 1 alternating);
    * ``theory``: :func:`heavy_ball_rate`.
    """
    h = np.asarray(h, dtype=np.float64)
    rates, changes, theory = [], [], []
    surface = diagonal_quadratic(h)
    for beta in np.asarray(betas, dtype=np.float64):
        traj = run(Momentum(lr=1.0, beta=float(beta), ema=False), surface, np.ones_like(h), steps)
        th = traj.thetas
        state = np.sqrt(th[1:] ** 2 + th[:-1] ** 2)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            rate = np.array([_envelope_rate(state[:, i]) for i in range(len(h))])
            flips = np.mean(np.sign(th[1:]) * np.sign(th[:-1]) < 0, axis=0)
        rates.append(np.where(np.isfinite(rate), rate, np.inf))
        changes.append(flips)
        theory.append(heavy_ball_rate(h, float(beta)))
    return {
        "h": h,
        "beta": np.asarray(betas, dtype=np.float64),
        "rate": np.array(rates),
        "sign_changes": np.array(changes),
        "theory": np.array(theory),
    }
