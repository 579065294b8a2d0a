"""A mini-batch surface: least squares on generated data, gradient = a real batch mean.

``n`` samples ``x_i ∈ R²`` with feature scales ``(1, √kappa)`` (so the full loss is a valley
of condition number about ``kappa``) and targets ``y_i = x_i·w_true + noise·ε_i``::

    f(θ) = 1/(2n) · Σ_i (x_i·θ − y_i)²                       (the full-batch loss)
    g_B(θ) = 1/|B| · Σ_{i∈B} x_i·(x_i·θ − y_i)               (the seed's mini-batch mean)

with B drawn uniformly without replacement, ``batch_size`` samples a step. g_B is unbiased
and its covariance is the per-sample covariance S(θ) scaled by
``(1/|B|)·(n − |B|)/(n − 1)`` (:func:`batch_noise`): batch size sets the noise, and
``batch_size = n`` is full-batch gradient descent.
"""

from __future__ import annotations

import numpy as np

from .surfaces import Surface, Vector


def least_squares_data(
    n: int = 512, kappa: float = 50.0, noise: float = 0.5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(X, y): ``n`` generated samples, X of shape (n, 2), y of shape (n,)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 2)) * np.array([1.0, np.sqrt(kappa)])
    w_true = np.array([2.0, -1.0])
    return X, X @ w_true + noise * rng.standard_normal(n)


def per_sample_grads(X: np.ndarray, y: np.ndarray, theta: Vector) -> np.ndarray:
    """(n, 2): ``x_i·(x_i·θ − y_i)``, the gradient of each sample's ½(x_i·θ − y_i)²."""
    return X * (X @ theta - y)[:, None]


def batch_noise(X: np.ndarray, y: np.ndarray, theta: Vector, batch_size: int) -> np.ndarray:
    """Covariance (2, 2) of g_B at θ: ``S·(1/|B|)·(n − |B|)/(n − 1)``, S the samples' covariance."""
    n = len(y)
    S = np.cov(per_sample_grads(X, y, theta), rowvar=False, ddof=1)
    return S * (n - batch_size) / (batch_size * (n - 1)) if n > 1 else 0.0 * S


def least_squares(
    batch_size: int = 16,
    *,
    n: int = 512,
    kappa: float = 50.0,
    noise: float = 0.5,
    data_seed: int = 0,
) -> Surface:
    """The mini-batch least-squares surface (the run's seed draws the batches)."""
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be in [1, n={n}], got {batch_size}")
    X, y = least_squares_data(n, kappa, noise, data_seed)
    H = X.T @ X / n
    minimum = np.linalg.solve(H, X.T @ y / n)

    def f(theta: Vector) -> float:
        r = X @ theta - y
        return float(r @ r) / (2 * n)

    def grad(theta: Vector) -> Vector:
        return X.T @ (X @ theta - y) / n

    def sample_grad(theta: Vector, rng: np.random.Generator) -> Vector:
        batch = rng.choice(n, size=batch_size, replace=False)
        Xb = X[batch]
        return Xb.T @ (Xb @ theta - y[batch]) / batch_size

    span = np.array([10.5, 10.5 / np.sqrt(kappa) * 3])
    lo, hi = minimum - span, minimum + span
    return Surface(
        name=f"least squares (n = {n}, batch {batch_size})",
        f=f,
        grad=grad,
        minimum=minimum,
        bounds=((float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1]))),
        steep=np.linalg.eigh(H)[1][:, -1],
        sample_grad=sample_grad,
    )
