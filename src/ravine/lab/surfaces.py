"""Loss surfaces on the plane: the seed's ravine and Rosenbrock's banana.

A :class:`Surface` is a loss ``f(theta) -> float`` with its gradient ``grad(theta)`` on
2-D float64 vectors, the position of its ``minimum`` and the ``bounds`` to draw it in.

The seed's *pathological curvature* is :func:`valley`, a quadratic whose curvature is
``kappa`` times larger across the valley than along it::

    >>> import numpy as np
    >>> s = valley(kappa=50.0)
    >>> s.f(np.array([0.0, 1.0])), s.f(np.array([1.0, 0.0]))   # across, along the floor
    (25.0, 0.5)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Vector = np.ndarray
"""A float64 array of shape (2,)."""

Bounds = tuple[tuple[float, float], tuple[float, float]]
"""((θ[0] min, θ[0] max), (θ[1] min, θ[1] max)): the window a figure shows."""


@dataclass(frozen=True, eq=False)
class Surface:
    """A 2-D loss: value, gradient, minimum and a window to draw it in."""

    name: str
    f: Callable[[Vector], float]
    grad: Callable[[Vector], Vector]
    minimum: Vector
    bounds: Bounds
    steep: Vector | None = None
    """Unit vector of highest curvature (quadratics only): where gradient descent zig-zags."""


def valley_axes(rotation: float = 0.0) -> tuple[Vector, Vector]:
    """(w1, w2): the valley's steep and shallow unit directions for a ``rotation`` (radians).

    w2 = (cos r, sin r) runs along the valley floor, w1 = (−sin r, cos r) across it; at
    ``rotation=0`` the floor is the θ[0] axis and the steep direction is θ[1].
    """
    c, s = np.cos(rotation), np.sin(rotation)
    return np.array([-s, c]), np.array([c, s])


def valley(kappa: float = 50.0, rotation: float = 0.0, *, scale: float = 1.0) -> Surface:
    """The seed's ravine: an ill-conditioned quadratic ``f = ½ θᵀAθ``, minimum at 0.

    ``A = scale·(kappa·w1 w1ᵀ + w2 w2ᵀ)``, eigenvalues (1, kappa)·scale, with w1, w2 from
    :func:`valley_axes`. The gradient ``A θ`` points mostly across the valley (along w1),
    so gradient descent bounces between the walls while creeping along the floor (w2).
    """
    if kappa < 1 or scale <= 0:
        raise ValueError(f"valley needs kappa >= 1 and scale > 0, got {kappa=}, {scale=}")
    w1, w2 = valley_axes(rotation)
    A = scale * (kappa * np.outer(w1, w1) + np.outer(w2, w2))

    def f(theta: Vector) -> float:
        return 0.5 * float(theta @ A @ theta)

    def grad(theta: Vector) -> Vector:
        return A @ theta

    # Window: 10.5 along the floor, 4 across it, then the box around that rotated rectangle.
    half_along, half_across = 10.5, 4.0
    half_x = abs(w2[0]) * half_along + abs(w1[0]) * half_across
    half_y = abs(w2[1]) * half_along + abs(w1[1]) * half_across
    return Surface(
        name=f"valley (κ = {kappa:g})",
        f=f,
        grad=grad,
        minimum=np.zeros(2),
        bounds=((-half_x, half_x), (-half_y, half_y)),
        steep=w1,
    )


def rosenbrock(a: float = 1.0, b: float = 100.0) -> Surface:
    """Rosenbrock's banana ``f = (a − x)² + b·(y − x²)²``, minimum at (a, a²).

    A curved, narrow valley: the steep direction turns along the path, so it has no
    single ``steep`` vector.
    """

    def f(theta: Vector) -> float:
        x, y = theta
        return float((a - x) ** 2 + b * (y - x * x) ** 2)

    def grad(theta: Vector) -> Vector:
        x, y = theta
        return np.array([-2 * (a - x) - 4 * b * x * (y - x * x), 2 * b * (y - x * x)])

    return Surface(
        name="rosenbrock",
        f=f,
        grad=grad,
        minimum=np.array([a, a * a]),
        bounds=((-2.0, 2.0), (-1.0, 3.0)),
    )
