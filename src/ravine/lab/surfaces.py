"""Loss surfaces on the plane: the seed's ravine, the classic test functions, user callables.

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
from typing import Any

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
    sample_grad: Callable[[Vector, np.random.Generator], Vector] | None = None
    """A stochastic gradient (mini-batch surfaces only): what a run uses instead of ``grad``."""


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


def _surface_2d(
    name: str,
    f: Callable[[float, float], float],
    grad: Callable[[float, float], tuple[float, float]],
    minimum: tuple[float, float],
    bounds: Bounds,
) -> Surface:
    """A :class:`Surface` from scalar formulas in (x, y) = (θ[0], θ[1])."""
    return Surface(
        name=name,
        f=lambda theta: float(f(*theta)),
        grad=lambda theta: np.array(grad(*theta), dtype=np.float64),
        minimum=np.array(minimum, dtype=np.float64),
        bounds=bounds,
    )


def beale() -> Surface:
    """Beale: ``f = (1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²``, min (3, 0.5).

    Flat arms and sharp ridges: the gradient's size varies by orders of magnitude.
    """
    c = (1.5, 2.25, 2.625)

    def terms(x: float, y: float) -> list[float]:
        return [c[i] - x + x * y ** (i + 1) for i in range(3)]

    def f(x: float, y: float) -> float:
        return sum(t * t for t in terms(x, y))

    def grad(x: float, y: float) -> tuple[float, float]:
        t = terms(x, y)
        gx = sum(2 * t[i] * (y ** (i + 1) - 1) for i in range(3))
        gy = sum(2 * t[i] * x * (i + 1) * y**i for i in range(3))
        return gx, gy

    return _surface_2d("beale", f, grad, (3.0, 0.5), ((-4.5, 4.5), (-4.5, 4.5)))


def booth() -> Surface:
    """Booth: ``f = (x + 2y − 7)² + (2x + y − 5)²``, a tilted quadratic (κ = 9), min (1, 3)."""

    def f(x: float, y: float) -> float:
        return (x + 2 * y - 7) ** 2 + (2 * x + y - 5) ** 2

    def grad(x: float, y: float) -> tuple[float, float]:
        a, b = x + 2 * y - 7, 2 * x + y - 5
        return 2 * a + 4 * b, 4 * a + 2 * b

    return _surface_2d("booth", f, grad, (1.0, 3.0), ((-10.0, 10.0), (-10.0, 10.0)))


def himmelblau() -> Surface:
    """Himmelblau: ``f = (x² + y − 11)² + (x + y² − 7)²``: four minima (f = 0), one at (3, 2)."""

    def f(x: float, y: float) -> float:
        return (x * x + y - 11) ** 2 + (x + y * y - 7) ** 2

    def grad(x: float, y: float) -> tuple[float, float]:
        a, b = x * x + y - 11, x + y * y - 7
        return 4 * x * a + 2 * b, 2 * a + 4 * y * b

    return _surface_2d("himmelblau", f, grad, (3.0, 2.0), ((-5.0, 5.0), (-5.0, 5.0)))


def rastrigin(a: float = 10.0) -> Surface:
    """Rastrigin: ``f = 2a + Σ (θ_i² − a·cos 2πθ_i)``: a bowl of local minima, global at 0."""

    def f(x: float, y: float) -> float:
        return 2 * a + sum(v * v - a * np.cos(2 * np.pi * v) for v in (x, y))

    def grad(x: float, y: float) -> tuple[float, float]:
        gx, gy = (2 * v + 2 * np.pi * a * np.sin(2 * np.pi * v) for v in (x, y))
        return gx, gy

    return _surface_2d("rastrigin", f, grad, (0.0, 0.0), ((-5.12, 5.12), (-5.12, 5.12)))


def saddle() -> Surface:
    """The saddle ``f = x² − y²``: unbounded below; ``minimum`` holds the saddle point (0, 0).

    Its ``f_min`` is 0, the saddle's value, so a loss gap below 0 means "escaped".
    """

    def f(x: float, y: float) -> float:
        return x * x - y * y

    def grad(x: float, y: float) -> tuple[float, float]:
        return 2 * x, -2 * y

    return _surface_2d("saddle x² − y²", f, grad, (0.0, 0.0), ((-2.0, 2.0), (-2.0, 2.0)))


def plateau(width: float = 1.0) -> Surface:
    """A plateau: ``f = 1 − exp(−(x² + y²)/(2·width²))``, min 0 at the origin.

    Away from a well of radius ~``width`` the loss is almost 1 and the gradient
    ``θ/width²·exp(−‖θ‖²/(2·width²))`` almost 0: a step proportional to it barely moves.
    """

    def f(x: float, y: float) -> float:
        return 1.0 - float(np.exp(-(x * x + y * y) / (2 * width**2)))

    def grad(x: float, y: float) -> tuple[float, float]:
        e = float(np.exp(-(x * x + y * y) / (2 * width**2)))
        return x / width**2 * e, y / width**2 * e

    r = 4.0 * width
    return _surface_2d("plateau", f, grad, (0.0, 0.0), ((-r, r), (-r, r)))


def from_callable(
    f: Callable[[Any], Any],
    grad: Callable[[Vector], Any] | None = None,
    *,
    minimum: Any = (0.0, 0.0),
    bounds: Bounds = ((-3.0, 3.0), (-3.0, 3.0)),
    name: str = "user-defined",
) -> Surface:
    """A user-defined surface from a Python callable ``f(theta)``.

    With ``grad`` given, it is used as the gradient. Without, the gradient comes from torch
    autograd: ``f`` is called on a float64 tensor ``theta`` of shape (2,) and must use
    operations torch can differentiate (arithmetic, ``theta[0]``, ``torch.sin`` …)::

        >>> s = from_callable(lambda t: (t[0] - 1) ** 2 + 10 * t[1] ** 2, minimum=(1, 0))
        >>> s.grad(np.array([0.0, 1.0]))
        array([-2., 20.])
    """
    if grad is not None:
        user_grad = grad

        def value(theta: Vector) -> float:
            return float(f(theta))

        def gradient(theta: Vector) -> Vector:
            return np.asarray(user_grad(theta), dtype=np.float64)

    else:
        import torch  # only user-defined surfaces without a gradient need it

        def value(theta: Vector) -> float:
            with torch.no_grad():
                return float(f(torch.as_tensor(theta, dtype=torch.float64)))

        def gradient(theta: Vector) -> Vector:
            t = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
            (g,) = torch.autograd.grad(f(t), t)
            return g.detach().numpy().copy()

    return Surface(name, value, gradient, np.asarray(minimum, dtype=np.float64), bounds)


SURFACES: dict[str, Callable[[], Surface]] = {
    "valley": valley,
    "rosenbrock": rosenbrock,
    "beale": beale,
    "booth": booth,
    "himmelblau": himmelblau,
    "rastrigin": rastrigin,
    "saddle": saddle,
    "plateau": plateau,
}
"""Every deterministic surface by name, with its default arguments."""
