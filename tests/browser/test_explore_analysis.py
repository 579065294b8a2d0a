"""The explore page's analysis (``analysis.js``) against its Python twins, in Chromium.

Each function of ``window.RAVINE_ANALYSIS`` ports one Python function; on real runs of the
page's engine it gives what Python gives on the library's runs:

* ``stepsToTolerance``, ``finalLoss``, ``zigzagIndex``, ``fittedRate``, ``stall``:
  :mod:`ravine.lab.metrics` (``stall`` is :func:`~ravine.lab.metrics.stall_step`);
* ``tune``: :func:`ravine.lab.tune.tune_lr` with the demo's grid and tolerance, the same lr;
* ``rateMap``: the rate :func:`ravine.lab.theory.convergence_map` measures, pixel by pixel,
  from the library's runs of Momentum and NAG on the valley.

Integers (steps, the chosen lr, divergence) must be equal; floats agree to 1e-9 (the two
runs agree to ~1e-12; the metrics add in a different order).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from ravine.lab import metrics, surfaces, theory
from ravine.lab.demo import GRID, START_ACROSS, START_ALONG, TOL
from ravine.lab.report import GALLERY
from ravine.lab.run import Trajectory, run
from ravine.lab.tune import UNTUNED, tune_lr
from ravine.numpy import OPTIMIZERS

STEPS = 300
SKEW = [0.6, 0.8]
"""The direction of the zig-zag index on surfaces without a steep one (not a unit vector:
both sides normalize it)."""
WINDOWS = [(0, None), (100, 250), (-50, None)]
"""(start, stop) of the fitted rates: all, a middle window, the last 50 (Python's slice)."""

CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("SGD", {"name": "valley"}, {"lr": 0.036}),
    ("SGD", {"name": "valley"}, {"lr": 0.041}),  # above 2/κ: diverges
    ("SGD", {"name": "valley"}, {"lr": 0.1}),  # overflows at step 270, then NaN
    ("Momentum", {"name": "valley"}, {"lr": 0.05}),
    ("NAG", {"name": "valley"}, {"lr": 0.2, "lookahead": "momentum"}),
    ("NormalizedGD", {"name": "valley"}, {"lr": 0.1}),  # hovers
    ("Adagrad", {"name": "valley"}, {"lr": 0.1}),  # stalls
    ("RMSProp", {"name": "valley"}, {"lr": 0.1}),  # hovers
    ("AdaDelta", {"name": "valley"}, {}),
    ("Adam", {"name": "valley", "kappa": 10.0, "rotation": 0.5}, {"lr": 0.1}),
    ("NAdam", {"name": "valley", "kappa": 10.0, "rotation": 0.5}, {"lr": 0.2, "beta": 0.5}),
    ("Momentum", {"name": "valley", "kappa": 10.0, "rotation": 0.5}, {"lr": 0.001}),  # crawls
    ("SGD", {"name": "rosenbrock"}, {"lr": 0.001}),
    ("Momentum", {"name": "rosenbrock"}, {"lr": 0.01}),
    ("Adam", {"name": "rosenbrock"}, {"lr": 0.01}),
    ("Adagrad", {"name": "beale"}, {"lr": 0.5}),
    ("SGD", {"name": "beale"}, {"lr": 0.1}),  # overflows
    ("RMSProp", {"name": "himmelblau"}, {"lr": 0.01}),
    ("NAG", {"name": "rastrigin"}, {"lr": 0.01}),
    ("SGD", {"name": "saddle"}, {"lr": 0.1}),  # falls off to −∞
    ("Adam", {"name": "plateau"}, {"lr": 0.05}),
]
"""Optimizer, surface, hyperparameters: runs that converge, zig-zag, hover, stall, crawl
and diverge (least squares is left out: NumPy draws its batches, the page its own)."""


def python_surface(spec: dict[str, Any]) -> surfaces.Surface:
    given = {k: v for k, v in spec.items() if k != "name"}
    return surfaces.SURFACES[spec["name"]](**given)


def python_start(spec: dict[str, Any]) -> np.ndarray:
    """The page's start points, by their Python definitions (the demo's, the gallery's)."""
    if spec["name"] == "valley":
        steep, shallow = surfaces.valley_axes(spec.get("rotation", 0.0))
        return START_ALONG * shallow + START_ACROSS * steep
    return np.array(GALLERY[spec["name"]][1], dtype=np.float64)


def close(js: float | None, py: float | None, rel: float = 1e-9) -> bool:
    """Equal, both NaN, or within ``rel`` of each other (1e-300 absolute, for 0)."""
    if js is None or py is None:
        return js is py
    if math.isnan(py):
        return math.isnan(js)
    return js == py or math.isclose(js, py, rel_tol=rel, abs_tol=1e-300)


MEASURE = """([cases, tol, steps, windows]) => {
  const A = window.RAVINE_ANALYSIS;
  return cases.map(([optimizer, surface, hyperparameters, direction]) => {
    const r = window.ravineLab.run({optimizer, surface, hyperparameters, steps});
    const gap = r.loss.map((v) => v - r.fMin);
    return {
      theta: r.theta, loss: r.loss, fMin: r.fMin, gap,
      first: A.stepsToTolerance(r, tol), stay: A.stepsToTolerance(r, tol, {stay: true}),
      final: A.finalLoss(r), zigzag: A.zigzagIndex(r, direction ?? undefined),
      stall: A.stall(r, tol), stallShort: A.stall(r, tol, {window: 10, factor: 1.5}),
      rates: windows.map(([start, stop]) => A.fittedRate(gap, start, stop)),
    };
  });
}"""


def test_metrics_equal_python(lab: Any) -> None:
    """On 21 runs (converging, zig-zagging, hovering, stalling, diverging), each metric of
    the page equals the library's on the library's own run, and on the page's run."""
    directions = [None if spec["name"] == "valley" else SKEW for _, spec, _ in CASES]
    cases = [[*case, d] for case, d in zip(CASES, directions, strict=True)]
    page = lab.page.evaluate(MEASURE, [cases, TOL, STEPS, WINDOWS])
    stalls = {}
    for (name, spec, hp), direction, js in zip(CASES, directions, page, strict=True):
        label = f"{name} {hp} on {spec}"
        surface = python_surface(spec)
        py = run(OPTIMIZERS[name](**hp), surface, python_start(spec), STEPS)
        u = surface.steep if direction is None else np.array(direction)
        assert u is not None
        # the library's metrics on the page's own numbers, where no halt sets them apart
        if all(map(math.isfinite, js["loss"])):
            thetas = np.array(js["theta"], dtype=np.float64)
            losses = np.array(js["loss"], dtype=np.float64)
            mine = Trajectory(name, hp, "", js["fMin"], thetas, thetas, losses, thetas, {})
            assert js["stay"] == metrics.steps_to_tolerance(mine, TOL, stay=True), label
            assert js["stall"] == metrics.stall_step(mine, TOL), label
            # (θ·u by OpenBLAS with fused multiply-adds, then differences: 1e-13 apart)
            assert close(js["zigzag"], metrics.zigzag_index(mine, u), rel=1e-11), label
        # the library's metrics on the library's run
        assert js["first"] == metrics.steps_to_tolerance(py, TOL), label
        assert js["stay"] == metrics.steps_to_tolerance(py, TOL, stay=True), label
        assert close(js["final"], metrics.final_loss(py)), label
        assert close(js["zigzag"], metrics.zigzag_index(py, u)), label
        assert js["stall"] == metrics.stall_step(py, TOL), label
        assert js["stallShort"] == metrics.stall_step(py, TOL, window=10, factor=1.5), label
        gap = np.array(js["gap"], dtype=np.float64)
        for got, (start, stop) in zip(js["rates"], WINDOWS, strict=True):
            assert close(got, metrics.fitted_rate(gap, start, stop), rel=1e-12), label
        stalls[name, spec["name"], hp.get("lr")] = js["stall"]
    # the seed's claim, as the captions will tell it
    assert stalls["Adagrad", "valley", 0.1] is not None
    assert stalls["RMSProp", "valley", 0.1] is None  # hovers, steps as long as ever
    assert stalls["NormalizedGD", "valley", 0.1] is None
    assert stalls["Momentum", "valley", 0.001] == 0  # lr too small: crawls from the start


TUNE = """([cases, steps]) => cases.map(([optimizer, surface]) =>
  window.RAVINE_ANALYSIS.tune({optimizer, surface, steps}))"""


@pytest.mark.parametrize(
    ("spec", "names", "steps"),
    [
        ({"name": "valley"}, list(OPTIMIZERS), STEPS),  # the demo's own search
        ({"name": "valley", "kappa": 10.0, "rotation": 0.5}, ["NAG", "RMSProp", "Adam"], 150),
        ({"name": "rosenbrock"}, ["Momentum", "Adagrad", "AdaDelta"], 150),
    ],
)
def test_tune_picks_the_lr_python_picks(
    lab: Any, spec: dict[str, Any], names: list[str], steps: int
) -> None:
    """The page's search is the demo's (grid, tolerance, ranking, AdaDelta untuned): the
    same lr, and the same steps to tolerance for every lr of the grid."""
    data = lab.page.evaluate("window.RAVINE_DATA.tuning")
    assert data == {"grid": list(GRID), "tol": TOL, "untuned": UNTUNED}
    page = lab.page.evaluate(TUNE, [[[n, spec] for n in names], steps])
    surface, start = python_surface(spec), python_start(spec)
    for name, js in zip(names, page, strict=True):
        py = tune_lr(name, surface, start, steps, TOL, GRID)
        assert js["lr"] == py.lr, name
        assert js["note"] == py.note and js["atEdge"] == py.at_edge, name
        assert [t["lr"] for t in js["trials"]] == [t.lr for t in py.trials], name
        assert [t["stepsToTol"] for t in js["trials"]] == [t.steps_to_tol for t in py.trials]
        for t, p in zip(js["trials"], py.trials, strict=True):
            loss = t["finalLoss"]
            assert (
                close(loss, p.final_loss)
                if math.isfinite(p.final_loss)
                else not math.isfinite(loss)
            )


RATE_MAP = """(options) => {
  const A = window.RAVINE_ANALYSIS;
  const map = A.rateMap(options);
  let yields = 0, last = 0, growing = true;
  for (const partial of A.rateMapPixels(options)) {
    yields += 1;
    growing = growing && partial.done === last + 1;
    last = partial.done;
  }
  return {rate: Array.from(map.rate), diverged: Array.from(map.diverged),
          edge: Array.from(map.edge), start: map.start, done: map.done, yields, growing};
}"""


def python_pixel(
    name: str, surface: surfaces.Surface, start: np.ndarray, lr: float, beta: float, steps: int
) -> tuple[float, bool]:
    """(rate, diverged) of one pixel from the library's run: convergence_map's envelope rate
    of ``e_k = ‖(θ_k − θ*, θ_{k−1} − θ*)‖``; diverged when e overflowed or ``e_N ≥ e_1``."""
    traj = run(OPTIMIZERS[name](lr=lr, beta=beta), surface, start, steps)
    with np.errstate(over="ignore", invalid="ignore"):
        d = metrics.distances(traj, surface.minimum)
        e = np.sqrt(d[1:] ** 2 + d[:-1] ** 2)
    rate = theory._envelope_rate(e)
    rate = rate if math.isfinite(rate) else math.inf
    return rate, bool(not np.all(np.isfinite(e)) or e[-1] >= e[0])


@pytest.mark.parametrize("name", ["Momentum", "NAG"])
@pytest.mark.parametrize("spec", [{"name": "valley"}, {"name": "valley", "rotation": 0.7}])
def test_rate_map_equals_python_runs(lab: Any, name: str, spec: dict[str, Any]) -> None:
    """Per (lr, β): the rate and divergence of the library's run; the edge is the smallest
    lr that diverges; the generator yields once per pixel. For Momentum, the rate is the
    heavy ball's (its larger root modulus over the valley's two curvatures) and it diverges
    where the theory says, away from the edge."""
    lrs = list(10 ** np.linspace(-2.5, 0.5, 9))
    betas = [0.0, 0.5, 0.9, 0.99]
    steps = 200
    js = lab.page.evaluate(
        RATE_MAP, {"optimizer": name, "surface": spec, "lrs": lrs, "betas": betas, "steps": steps}
    )
    surface, start = python_surface(spec), python_start(spec)
    np.testing.assert_allclose(js["start"], start, rtol=1e-15)
    assert js["done"] == js["yields"] == len(lrs) * len(betas) and js["growing"]
    rate = np.array(js["rate"]).reshape(len(betas), len(lrs))
    diverged = np.array(js["diverged"], dtype=bool).reshape(rate.shape)
    for i, beta in enumerate(betas):
        for j, lr in enumerate(lrs):
            py_rate, py_diverged = python_pixel(name, surface, start, lr, beta, steps)
            assert close(rate[i, j], py_rate), (lr, beta)
            assert diverged[i, j] == py_diverged, (lr, beta)
            if name == "Momentum":
                h = lr * (1 - beta) * np.array([1.0, 50.0])  # α·λ, α = lr·(1 − β)
                hb = float(np.max(theory.heavy_ball_rate(h, beta)))
                if hb < 0.97:  # a slow ripple's envelope needs more than 200 steps
                    assert rate[i, j] == pytest.approx(hb, abs=0.03), (lr, beta)
                if abs(hb - 1) > 0.03:
                    assert diverged[i, j] == (hb > 1), (lr, beta)
        edge = [lr for lr, d in zip(lrs, diverged[i], strict=True) if d]
        assert close(js["edge"][i], min(edge) if edge else math.nan)
    assert diverged.any() and not diverged.all()


def test_bad_arguments_are_refused(lab: Any) -> None:
    said = lab.page.evaluate(
        """() => [
          () => window.RAVINE_ANALYSIS.rateMap({optimizer: "Adam", surface: "valley",
                 lrs: [0.1], betas: [0.9], steps: 10}),
          () => window.RAVINE_ANALYSIS.rateMap({optimizer: "NAG", surface: "valley",
                 lrs: [0.1], betas: [0.9], steps: 1}),
          () => window.RAVINE_ANALYSIS.tune({optimizer: "SGD", surface: "valley", steps: 10,
                 hyperparameters: {lr: 1}}),
          () => window.RAVINE_ANALYSIS.zigzagIndex(window.ravineLab.run({optimizer: "SGD",
                 surface: "booth", steps: 3})),
        ].map((f) => {
          try { f(); return null; } catch (e) { return `${e.name}: ${e.message}`; }
        })"""
    )
    assert said == [
        'RavineError: rateMap: invalid optimizer="Adam"; valid: Momentum, NAG',
        "RavineError: rateMap: invalid steps=1; valid: an integer >= 2",
        "RavineError: tune: hyperparameters must not hold lr, which is searched",
        "RavineError: zigzagIndex: the surface booth has no steep direction; give one as [x, y]",
    ]
