"""Numbers that summarize a :class:`~ravine.lab.run.Trajectory`.

All of them read the seed's θ (``traj.thetas``) and its loss, never NAG's stored
look-ahead point. For the two path measures, ``c_k = θ_k · u`` is θ's coordinate along a
unit ``direction`` u (the valley's steep axis w1) and ``Δ_k = c_{k+1} − c_k`` is step
k + 1's move along it.
"""

from __future__ import annotations

import numpy as np

from .run import Trajectory


def steps_to_tolerance(traj: Trajectory, tol: float, *, stay: bool = False) -> int | None:
    """The first k with ``losses[k] − f_min <= tol``; None if the run never gets there.

    With ``stay=True``, the first k from which the gap stays within ``tol`` up to the last
    step: a run that passes through the tolerance and leaves again (RMSProp or Normalized
    GD at a constant lr, hovering around the minimum) does not count.

    >>> import numpy as np
    >>> from ravine.lab.run import Trajectory
    >>> losses = np.array([4.0, 0.5, 2.0, 0.1, 0.05])
    >>> t = Trajectory("demo", {}, "line", 0.0, np.zeros((5, 2)), np.zeros((5, 2)), losses,
    ...                np.zeros((5, 2)), {})
    >>> steps_to_tolerance(t, 1.0), steps_to_tolerance(t, 1.0, stay=True)
    (1, 3)
    """
    within = traj.losses - traj.f_min <= tol
    if stay:
        if not within[-1]:
            return None
        outside = np.flatnonzero(~within)
        return int(outside[-1]) + 1 if outside.size else 0
    hits = np.flatnonzero(within)
    return int(hits[0]) if hits.size else None


def stall_step(
    traj: Trajectory, tol: float, *, window: int = 50, factor: float = 2.0
) -> int | None:
    """The first k from which the run is stalled for good; None if it does not stall.

    With ``gap_j = losses[j] − f_min``, the run is stalled over the ``window`` steps from
    j (j + window ≤ N) when all three hold:

    * ``tol < gap_{j+window} < ∞`` and ``tol < gap_j < ∞``: not at the minimum, not diverged;
    * ``gap_{j+window} > gap_j / factor``: the gap does not shrink ``factor``-fold (by
      default: halving it takes more than ``window`` steps);
    * ``‖θ_{j+window} − θ_j‖ ≥ ½ Σ_{i=j}^{j+window−1} ‖θ_{i+1} − θ_i‖``: it still heads
      one way. A run that hovers at a constant lr, overshooting back and forth around
      the minimum (RMSProp, NormalizedGD), gets no closer either, but its steps are as long
      as ever: it has not stalled, it cannot settle.

    The answer is the first k such that the run is stalled over every window from k to
    N − window: Adagrad's steps shrink until it stalls; RMSProp keeps going. None when the
    last window is not stalled, or the run has fewer than ``window`` steps.

    >>> import numpy as np
    >>> from ravine.lab.run import Trajectory
    >>> def line(x):
    ...     thetas = np.stack([x, np.zeros(len(x))], axis=1)
    ...     return Trajectory("demo", {}, "line", 0.0, thetas, thetas, x**2, thetas, {})
    >>> halves = 10.0 * 0.5 ** np.arange(5)                         # 10, 5, …, 0.625
    >>> creeps = 0.625 - 0.001 * np.arange(1, 6)                    # 0.624, 0.623, …
    >>> stall_step(line(np.r_[halves, creeps]), 1e-6, window=3)
    4
    >>> hovers = 0.625 * (-1.0) ** np.arange(1, 6)                  # −0.625, 0.625, …
    >>> print(stall_step(line(np.r_[halves, hovers]), 1e-6, window=3))
    None
    """
    gap = traj.losses - traj.f_min
    j = np.arange(len(gap) - window)
    if j.size == 0:
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        travelled = np.concatenate([[0.0], np.cumsum(np.linalg.norm(traj.moves, axis=1))])
        net = np.linalg.norm(traj.thetas[j + window] - traj.thetas[j], axis=1)
        a, b = gap[j], gap[j + window]
        stalled = (
            np.isfinite(a)
            & np.isfinite(b)
            & (a > tol)
            & (b > tol)
            & (b > a / factor)
            & (net >= 0.5 * (travelled[j + window] - travelled[j]))
        )
    if not stalled[-1]:
        return None
    moving = np.flatnonzero(~stalled)
    return int(moving[-1]) + 1 if moving.size else 0


def final_loss(traj: Trajectory) -> float:
    """f(θ_N), the loss after the last step (inf or NaN if the run diverged)."""
    return float(traj.losses[-1])


def _moves(traj: Trajectory, direction: np.ndarray) -> np.ndarray | None:
    """Δ_k along the unit ``direction``, or None for a diverged run."""
    u = np.asarray(direction, dtype=np.float64)
    c = traj.thetas @ (u / np.linalg.norm(u))
    if traj.diverged or not np.all(np.isfinite(c)):
        return None
    return np.diff(c)


def zigzag_index(traj: Trajectory, direction: np.ndarray) -> float:
    """The share of the path's travel along ``direction`` that the next step takes back.

    ::

        zigzag_index = Σ_k [Δ_k·Δ_{k+1} < 0]·min(|Δ_k|, |Δ_{k+1}|) / Σ_k |Δ_k|

    When step k + 2 moves against step k + 1, the shorter of the two moves is distance
    gone and straight back: that is the zig-zag. 0: no step ever reverses the previous one;
    near 1: almost every move is undone at once. Gradient descent bouncing across a
    quadratic valley, ``c_k ∝ (−r)^k`` for N steps, scores r·(1 − r^(N−1))/(1 − r^N) → r,
    the bounce's contraction. A slow swing (heavy-ball momentum overshooting the floor)
    scores little, because it turns back only where its steps are short; its overshoot
    shows in :func:`travel_ratio` instead. A path that never moves along ``direction``
    scores 0, a diverged run NaN.

    >>> import numpy as np
    >>> from ravine.lab.run import Trajectory
    >>> thetas = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 0.0]])
    >>> t = Trajectory("demo", {}, "plane", 0.0, thetas, thetas, np.zeros(4), thetas, {})
    >>> zigzag_index(t, np.array([0.0, 1.0]))    # moves +1, +1, −2: 1 of 4 taken back
    0.25
    """
    moves = _moves(traj, direction)
    if moves is None:
        return float("nan")
    travel = float(np.sum(np.abs(moves)))
    if travel == 0.0:
        return 0.0
    reversed_ = moves[:-1] * moves[1:] < 0
    undone = np.minimum(np.abs(moves[:-1]), np.abs(moves[1:]))
    return float(np.sum(undone[reversed_])) / travel


def travel_ratio(traj: Trajectory, direction: np.ndarray) -> float:
    """Distance travelled along ``direction`` over the net displacement along it.

    ::

        travel_ratio = Σ_k |Δ_k| / |c_N − c_0|

    1 when c moves monotonically; every overshoot adds to it, whether a zig-zag or a
    slow swing: a path from c = 2 to −2 and back to 0 scores (4 + 2) / 2 = 3. A path that
    never moves along ``direction`` scores 1, one that ends where it started ``inf``, a
    diverged run NaN.
    """
    moves = _moves(traj, direction)
    if moves is None:
        return float("nan")
    travel = float(np.sum(np.abs(moves)))
    net = abs(float(np.sum(moves)))
    if travel == 0.0:
        return 1.0
    return travel / net if net > 0 else float("inf")


def distances(traj: Trajectory, minimum: np.ndarray) -> np.ndarray:
    """(N + 1,): ``‖θ_k − minimum‖``."""
    return np.linalg.norm(traj.thetas - np.asarray(minimum, dtype=np.float64), axis=1)


def fitted_rate(values: np.ndarray, start: int = 0, stop: int | None = None) -> float:
    """The linear rate r of ``values[k] ≈ C·r^k`` over ``start ≤ k < stop``, by least squares.

    ::

        log values[k] ≈ a + k·log r      (ordinary least squares on k ∈ [start, stop))

    ``values`` is an error sequence: distances to the minimum (:func:`distances`) or loss
    gaps. Zeros and non-finite values in the window are left out; fewer than two left: NaN.
    r < 1 converges linearly, r = 1 stalls, r > 1 diverges.

    >>> round(fitted_rate(3.0 * 0.9 ** np.arange(50)), 12)
    0.9
    """
    window = np.asarray(values, dtype=np.float64)[start:stop]
    k = np.arange(start, start + len(window))
    keep = np.isfinite(window) & (window > 0)
    if keep.sum() < 2:
        return float("nan")
    slope = np.polyfit(k[keep], np.log(window[keep]), 1)[0]
    return float(np.exp(slope))


def path_ratio(traj: Trajectory) -> float:
    """Path length over straight-line distance: ``Σ_k ‖θ_{k+1} − θ_k‖ / ‖θ_N − θ_0‖``.

    1 for a straight path; a zig-zag or a detour adds to it; NaN for a diverged run,
    ``inf`` for a path that ends where it started.
    """
    if traj.diverged:
        return float("nan")
    length = float(np.sum(np.linalg.norm(traj.moves, axis=1)))
    net = float(np.linalg.norm(traj.thetas[-1] - traj.thetas[0]))
    if length == 0.0:
        return 1.0
    return length / net if net > 0 else float("inf")


def axis_step_ratio(traj: Trajectory, steep: np.ndarray, steps: int = 10) -> float:
    """How unequal the first ``steps`` moves are: mean |move across| / mean |move along|.

    Across is along the unit ``steep`` direction u, along is the orthogonal one. Gradient
    descent on a valley of condition number κ starts near κ·(distance across)/(distance
    along); a rule that equalises per-coordinate steps (RMSProp, Adam, NormalizedGD on the
    axes) starts near 1.
    """
    u = np.asarray(steep, dtype=np.float64) / np.linalg.norm(steep)
    v = np.array([-u[1], u[0]])
    moves = traj.moves[:steps]
    return float(np.mean(np.abs(moves @ u)) / np.mean(np.abs(moves @ v)))


def spread(values: list[float] | np.ndarray) -> dict[str, float]:
    """Mean, sample standard deviation, min, median and max of a metric over seeds."""
    v = np.asarray(values, dtype=np.float64)
    return {
        "n": float(len(v)),
        "mean": float(np.mean(v)),
        "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
        "min": float(np.min(v)),
        "median": float(np.median(v)),
        "max": float(np.max(v)),
    }
