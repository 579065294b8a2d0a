"""The explore page's engine against the library, in Chromium.

* the page's surfaces (``surfaces.js``) equal :mod:`ravine.lab.surfaces` and
  :mod:`ravine.lab.minibatch`: values, gradients, minima, windows, start points;
* the parity check of issue #12: every optimizer × every surface × three hyperparameter
  settings, 300 steps of ``window.ravineLab.run`` against :func:`ravine.lab.run.run` over
  :mod:`ravine.numpy`, in float64, to 1e-12;
* bad input to ``ravineLab.run`` throws the registry's messages;
* the page makes no request other than its own file.
"""

from __future__ import annotations

import inspect
import json
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest

from ravine.lab import minibatch, surfaces
from ravine.lab.demo import START_ACROSS, START_ALONG
from ravine.lab.report import GALLERY
from ravine.lab.run import run
from ravine.numpy import OPTIMIZERS
from ravine.rules import SPECS

TOL = 1e-12
STEPS = 300

SURFACES: list[dict[str, Any]] = [
    {"name": "valley"},
    {"name": "valley", "kappa": 10.0, "rotation": 0.5},
    {"name": "rosenbrock"},
    {"name": "rosenbrock", "a": 0.5, "b": 10.0},
    {"name": "beale"},
    {"name": "booth"},
    {"name": "himmelblau"},
    {"name": "rastrigin"},
    {"name": "rastrigin", "a": 3.0},
    {"name": "saddle"},
    {"name": "plateau"},
    {"name": "plateau", "width": 2.0},
    {"name": "least_squares"},
    {"name": "least_squares", "batch_size": 128, "seed": 7},
]
"""Every surface with its defaults and, where it has parameters, another setting."""

PARITY_SURFACES = [
    spec for spec in SURFACES if len(spec) == 1 or spec["name"] in ("valley", "least_squares")
]
"""The parity check's surfaces: every one as the page opens it, the valley rotated (the
report's view) and least squares with other batches; the other settings only change
constants, which the surface test covers."""

SETTINGS: dict[str, list[dict[str, Any]]] = {
    "SGD": [{}, {"lr": 0.01}, {"lr": 0.1}],
    "Momentum": [{}, {"lr": 0.01, "ema": False}, {"lr": 0.1, "beta": 0.5}],
    "NAG": [{}, {"lr": 0.01, "ema": False, "lookahead": "momentum"}, {"lr": 0.1, "beta": 0.5}],
    "NormalizedGD": [{}, {"lr": 0.01}, {"lr": 0.1, "eps": 1e-8}],
    "Adagrad": [{}, {"lr": 0.1, "eps_mode": "outside"}, {"lr": 1.0, "eps": 1e-4}],
    "RMSProp": [{}, {"lr": 0.01, "eps_mode": "outside"}, {"lr": 0.1, "gamma": 0.99}],
    "AdaDelta": [{}, {"lr": 0.5, "gamma": 0.9}, {"lr": 2.0, "eps": 1e-4}],
    "Adam": [
        {},
        {"lr": 0.01, "eps_mode": "outside"},
        {"lr": 0.1, "beta": 0.5, "gamma": 0.99, "eps_mode": "hat"},
    ],
    "NAdam": [{}, {"lr": 0.02, "eps_mode": "outside"}, {"lr": 0.2, "beta": 0.5, "gamma": 0.99}],
}
"""Three settings per optimizer: the defaults, and two others with larger steps (some
diverge, which tests that path); the second flips every option the page offers
(``ema``, ``lookahead``, ``eps_mode``)."""

CHAOTIC = {"rastrigin"}
"""Surfaces whose runs may part beyond 1e-12 with no difference in the arithmetic.

Rastrigin's gradient calls sin on every step. V8's ``Math.sin`` is its own (fdlibm's
algorithm), NumPy's is glibc's: both are within an ulp, and they round differently for
~3 % of arguments (measured: 3,300 of 100,000). Where the step is larger than the
ripples' curvature allows (lr·(2 + 4π²a) > 2: SGD, Momentum and NAG at lr ≥ 0.01) the
iteration is chaotic, and the first such last-bit difference that reaches θ grows about
tenfold every 3 steps until the two runs are unrelated (measured: they part between steps
13 and 201, and differ by O(1) at step 300; Adam at lr 0.1 drifts to ~1e-9). With the same
libm on both sides, glibc's generic sin in Chromium (``--js-flags=--use-libm-trig-functions``)
and in NumPy (``GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX2,-FMA``), these runs agree to 1e-12 too.

Such a run passes only if the page's own gradients, replayed into NumPy's optimizer, give
the page's trajectory to 1e-12, and equal Python's gradients at the page's points to 1e-12
(of the run's largest): the optimizer's arithmetic is NumPy's, the surface's is NumPy's
but for the last bit of sin, and only the dynamics amplified that bit. Each such run is
printed."""

FLIPPED = {"ema": False, "lookahead": "momentum", "eps_mode": "outside"}
"""The page's options, each set against its default."""


# --- the Python side ---------------------------------------------------------------------


def python_surface(spec: dict[str, Any]) -> surfaces.Surface:
    """The library's surface for a page surface spec ``{name, ...arguments}``."""
    name = spec["name"]
    given = {k: v for k, v in spec.items() if k not in ("name", "seed")}  # seed: the run's
    if name == "least_squares":
        return minibatch.least_squares(**given)
    return surfaces.SURFACES[name](**given)


def python_start(spec: dict[str, Any]) -> np.ndarray:
    """The start point by its Python definitions (the demo's, the gallery's, the origin)."""
    name = spec["name"]
    if name == "valley":
        steep, shallow = surfaces.valley_axes(spec.get("rotation", 0.0))
        return START_ALONG * shallow + START_ACROSS * steep
    if name == "least_squares":
        return np.zeros(2)  # the report's mini-batch study starts at the origin
    return np.array(GALLERY[name][1])


class Replay:
    """Stands in for the ``np.random.Generator`` that least squares draws batches with:
    hands out the page's batches in order, so that NumPy computes each step's gradient
    from the same samples with the library's own ``sample_grad``."""

    def __init__(self, batches: list[list[int]]) -> None:
        self.batches = iter(batches)

    def choice(self, n: int, size: int, replace: bool) -> np.ndarray:
        assert not replace
        batch = next(self.batches, None)
        if batch is None:  # run() also takes the gradient at the last point; no step uses it
            return np.arange(size)
        assert len(batch) == size == len(set(batch)) and 0 <= min(batch) <= max(batch) < n
        return np.array(batch)


def python_run(name: str, hp: dict[str, Any], spec: dict[str, Any], batches: Any) -> Any:
    surface = python_surface(spec)
    if batches is not None:
        replay, draw = Replay(batches), surface.sample_grad
        assert draw is not None
        surface = replace(surface, sample_grad=lambda theta, _rng: draw(theta, replay))
    return run(OPTIMIZERS[name](**hp), surface, python_start(spec), STEPS)


# --- comparisons --------------------------------------------------------------------------


def floats(rows: Any) -> np.ndarray:
    """Numbers from the page's JSON, where NaN and ±Infinity travel as strings."""
    return np.array([[float(v) for v in row] for row in rows], dtype=np.float64)


def rel(js: Any, py: Any) -> float:
    """max|js − py| / max|py| (0 when both are 0): relative to the vector's size."""
    js, py = np.asarray(js, dtype=np.float64), np.asarray(py, dtype=np.float64)
    scale = np.max(np.abs(py))
    error = np.max(np.abs(js - py))
    return 0.0 if error == 0 else float(error / scale) if scale > 0 else math.inf


@dataclass
class Parity:
    """How far one page run is from NumPy's."""

    run: str
    scaled: float
    """max|θ_js − θ_py| / max|θ_py| over the run's finite points."""
    elementwise: float
    """max |θ_js − θ_py| / |θ_py| where |θ_py| > 1e-6 · max|θ_py|."""
    diverged: tuple[Any, Any]
    """(page, NumPy): the first step whose loss is not finite, or None."""
    parted: int | None
    """The first step where θ differs at all, or None."""

    def within(self, tol: float) -> bool:
        return self.scaled <= tol and self.elementwise <= tol and len(set(self.diverged)) == 1


def parity(label: str, theta: list[list[Any]], diverged: Any, py: Any) -> Parity:
    """Compare θ over the points where NumPy's run is finite (it halts once θ is not).

    The error is measured against the trajectory's scale, max|θ_py|: an element-wise
    relative error is meaningless where a coordinate crosses 0 (θ_py ≈ 1e-17 and θ_js
    one rounding away give 100 %). The element-wise figure is kept where it means
    something, for coordinates above 1e-6 of the scale.
    """
    finite = np.all(np.isfinite(py.thetas), axis=1)
    theta_js = floats(theta)[finite]
    theta_py = py.thetas[finite]
    scale = float(np.max(np.abs(theta_py)))
    error = np.abs(theta_js - theta_py)
    scaled = float(np.max(error)) / scale if scale > 0 else float(np.max(error))
    large = np.abs(theta_py) > 1e-6 * scale
    elementwise = float(np.max(error[large] / np.abs(theta_py[large]), initial=0.0))
    bad = np.flatnonzero(~np.isfinite(py.losses))
    parted = np.flatnonzero(np.any(error != 0, axis=1))
    return Parity(
        label,
        scaled,
        elementwise,
        (diverged, int(bad[0]) if len(bad) else None),
        int(parted[0]) if len(parted) else None,
    )


def replayed(name: str, hp: dict[str, Any], spec: dict[str, Any], page: dict[str, Any]) -> Any:
    """NumPy's run fed the page's gradients, first checked against Python's gradients at
    the page's points (see :data:`CHAOTIC`).

    Relative to the run's largest gradient, as θ is to its scale: near a minimum the
    gradient is a difference of large terms (2v and 2πa·sin 2πv on Rastrigin), and a last
    bit of those terms is a large part of it.
    """
    surface = python_surface(spec)
    points, grads = floats(page["points"])[:STEPS], floats(page["grads"])
    assert rel(grads, [surface.grad(point) for point in points]) <= TOL, (name, hp, spec)
    given = iter(grads)

    def fed(theta: np.ndarray) -> np.ndarray:
        grad = next(given, None)  # run() also asks at the last point; no step uses that
        return surface.grad(theta) if grad is None else grad

    fed_surface = replace(surface, grad=fed)
    return run(OPTIMIZERS[name](**hp), fed_surface, python_start(spec), STEPS)


# --- the tests ----------------------------------------------------------------------------

EVALUATE_SURFACES = """([cases, seed]) => {
  // mulberry32: the points are drawn in the page, inside each surface's window
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return cases.map((spec) => {
    const s = window.ravineLab.surface(spec);
    const [[x0, x1], [y0, y1]] = s.bounds;
    const points = Array.from(
      {length: 50}, () => [x0 + (x1 - x0) * uniform(), y0 + (y1 - y0) * uniform()]);
    return {
      points, f: points.map((p) => s.f(p)), grad: points.map((p) => s.grad(p)),
      minimum: s.minimum, fMin: s.fMin, bounds: s.bounds, steep: s.steep ?? null, start: s.start,
      parameters: s.parameters,
    };
  });
}"""


def python_default(name: str, key: str) -> Any:
    """A page surface parameter's default by its Python definition."""
    if key == "seed":  # the mini-batch draws' seed is the run's
        return inspect.signature(run).parameters["seed"].default
    fn = minibatch.least_squares if name == "least_squares" else surfaces.SURFACES[name]
    return inspect.signature(fn).parameters[key].default


def test_surfaces_equal_python(lab: Any) -> None:
    """Every surface's value, gradient, minimum, f at the minimum, window, steep direction,
    start and default arguments equal the library's (relative 1e-12; most are exact)."""
    names = {"least_squares", *surfaces.SURFACES}
    assert set(lab.page.evaluate("Object.keys(window.ravineLab.surfaces)")) == names
    assert names <= {spec["name"] for spec in SURFACES}
    results = lab.page.evaluate(EVALUATE_SURFACES, [SURFACES, 12])
    print()
    for spec, js in zip(SURFACES, results, strict=True):
        py = python_surface(spec)
        label = str(spec)
        for key, value in js["parameters"].items():  # given, or Python's default
            assert value == spec.get(key, python_default(spec["name"], key)), (label, key)
        assert js["minimum"] == py.minimum.tolist(), label
        assert rel(js["bounds"], py.bounds) <= TOL, label
        assert rel(js["fMin"], py.f(py.minimum)) <= TOL, label
        assert rel(js["start"], python_start(spec)) <= TOL, label
        if py.steep is None:
            assert js["steep"] is None, label
        else:
            assert rel(js["steep"], py.steep) <= TOL, label
        errors = []
        for point, f, grad in zip(js["points"], js["f"], js["grad"], strict=True):
            theta = np.array(point)
            errors += [rel(f, py.f(theta)), rel(grad, py.grad(theta))]
            assert max(errors[-2:]) <= TOL, (label, point, f, grad)
        exact = sum(e == 0 for e in errors)
        print(f"{label}: f and ∇f at 50 points, {exact} of 100 exact, worst {max(errors):.2g}")


EVALUATE_RUNS = """([surface, runs, steps, fields]) => {
  const done = runs.map(([optimizer, hyperparameters]) =>
    window.ravineLab.run({optimizer, surface, hyperparameters, steps}));
  // every run on one surface draws the same batches: ship them once
  const batches = JSON.stringify(done[0].batches ?? null);
  return JSON.stringify({
    runs: done.map((r) => Object.fromEntries(fields.map((f) => [f, r[f]]))),
    batches: JSON.parse(batches),
    sameBatches: done.every((r) => JSON.stringify(r.batches ?? null) === batches),
  }, (key, value) => (typeof value === "number" && !Number.isFinite(value) ? `${value}` : value));
}"""
"""Runs on one surface, as JSON (Playwright's own transfer of 10⁵ numbers takes seconds);
NaN and ±Infinity travel as strings."""


def page_runs(lab: Any, spec: dict[str, Any], runs: list[Any], fields: list[str]) -> Any:
    return json.loads(lab.page.evaluate(EVALUATE_RUNS, [spec, runs, STEPS, fields]))


def test_settings_cover_every_optimizer_and_option() -> None:
    assert set(SETTINGS) == set(OPTIMIZERS)
    for optimizer in SPECS:
        flipped = {k for hp in SETTINGS[optimizer.name] for k in hp if k in FLIPPED}
        assert flipped == {k for k in FLIPPED if k in optimizer.defaults}, optimizer.name
    assert {spec["name"] for spec in PARITY_SURFACES} == {"least_squares", *surfaces.SURFACES}


@pytest.mark.parametrize("spec", PARITY_SURFACES, ids=lambda s: "-".join(map(str, s.values())))
def test_parity_with_numpy(lab: Any, spec: dict[str, Any]) -> None:
    """Issue #12's parity check: 300 steps of every optimizer with three settings each, in
    the browser and in NumPy, agree to 1e-12 (see :func:`parity`); a diverging run agrees
    up to its last finite point and diverges at the same step. Chaotic runs on surfaces
    that call sin: see :data:`CHAOTIC`."""
    runs = [(name, hp) for name, settings in SETTINGS.items() for hp in settings]
    answer = page_runs(lab, spec, runs, ["theta", "diverged"])
    assert answer["sameBatches"]
    results = []
    for (name, hp), page in zip(runs, answer["runs"], strict=True):
        assert len(page["theta"]) == STEPS + 1
        py = python_run(name, hp, spec, answer["batches"])
        results.append(parity(f"{name}({hp})", page["theta"], page["diverged"], py))
    scaled = max(results, key=lambda p: p.scaled)
    elementwise = max(results, key=lambda p: p.elementwise)
    print(
        f"\n{spec}: {len(results)} runs of {STEPS} steps, "
        f"{sum(p.diverged[1] is not None for p in results)} diverge; worst scaled "
        f"{scaled.scaled:.3g} ({scaled.run}), element-wise {elementwise.elementwise:.3g} "
        f"({elementwise.run})"
    )
    parted = [(run, p) for run, p in zip(runs, results, strict=True) if not p.within(TOL)]
    if spec["name"] not in CHAOTIC or not parted:
        assert [p for _, p in parted] == []
        return
    again = page_runs(lab, spec, [run for run, _ in parted], ["theta", "points", "grads"])
    for ((name, hp), p), page in zip(parted, again["runs"], strict=True):
        fed = parity(p.run, page["theta"], p.diverged[0], replayed(name, hp, spec, page))
        print(
            f"  chaotic: {p.run}: parted at step {p.parted}, {p.scaled:.2g} by step {STEPS} "
            f"(element-wise {p.elementwise:.2g}); with the page's gradients {fed.scaled:.2g}"
        )
        assert fed.within(TOL), fed


BAD_RUNS = """(cases) => cases.map((c) => {
  try {
    window.ravineLab.run(Object.assign({steps: 3}, c));
    return null;
  } catch (e) {
    return {error: e instanceof Error, message: e.message};
  }
})"""


def test_bad_input_names_argument_value_and_valid(lab: Any) -> None:
    """Bad input throws an Error naming the argument, the value and what is valid; where
    Python checks the same thing, the message is the registry's."""
    adam = next(spec for spec in SPECS if spec.name == "Adam")

    def python_message(hp: dict[str, Any]) -> str:
        with pytest.raises((ValueError, TypeError)) as caught:
            adam.validate(hp)
        return str(caught.value)

    cases: list[tuple[dict[str, Any], Any]] = [
        ({"optimizer": "Adamm", "surface": "valley"}, ["optimizer 'Adamm'", "valid:", "Adam"]),
        ({"optimizer": "Adam", "surface": "moon"}, ["surface 'moon'", "valid:", "valley"]),
        (
            {"optimizer": "Adam", "surface": "valley", "hyperparameters": {"lr": -0.5}},
            python_message({"lr": -0.5}),
        ),
        (
            {"optimizer": "Adam", "surface": "valley", "hyperparameters": {"momentum": 0.9}},
            python_message({"momentum": 0.9}),
        ),
        (
            {"optimizer": "Adam", "surface": "valley", "hyperparameters": {"eps_mode": "x"}},
            python_message({"eps_mode": "x"}),
        ),
        (
            {"optimizer": "Adam", "surface": "valley", "hyperparameters": {"lr": math.nan}},
            ["Adam: invalid lr=NaN", "valid: 0 <= lr"],
        ),
        (
            {"optimizer": "SGD", "surface": {"name": "valley", "kappa": 0.5}},
            ["kappa=0.5", "valid: 1 <= kappa"],
        ),
        (
            {"optimizer": "SGD", "surface": {"name": "least_squares", "batch_size": 2.5}},
            ["batch_size=2.5", "valid: 1 <= batch_size <= 512", "integer"],
        ),
        (
            {"optimizer": "SGD", "surface": {"name": "rastrigin", "b": 1}},
            ["unexpected argument(s) b", "valid: a"],
        ),
    ]
    answers = lab.page.evaluate(BAD_RUNS, [given for given, _ in cases])
    for (given, expected), answer in zip(cases, answers, strict=True):
        assert answer is not None and answer["error"], given
        if isinstance(expected, str):
            assert answer["message"] == expected, given
        else:
            for part in expected:
                assert part in answer["message"], (given, answer["message"])


def test_no_network_request(page: Any, explore_html: Any) -> None:
    """The page forbids every request (its CSP) and makes none: after loading and running
    every optimizer on every surface, the only request seen is its own file."""
    html = explore_html.read_text(encoding="utf-8")
    assert 'http-equiv="Content-Security-Policy"' in html and "default-src 'none'" in html
    page.page.evaluate(
        """() => {
          for (const surface of Object.keys(window.ravineLab.surfaces))
            for (const o of window.ravineLab.optimizers)
              window.ravineLab.run({optimizer: o.name, surface, steps: 20});
        }"""
    )
    page.page.wait_for_load_state("networkidle")
    assert page.url in page.requests  # the recorder sees requests: the page's own file
    assert page.foreign_requests() == []
