"""The lab you can touch: one offline HTML page where all nine optimizers run live.

:func:`build` writes ``explore.html``, one self-contained file (scripts, styles and data
inline; no network request of any kind). Its math is not written again for the page:

* every optimizer's step is its traced program (:func:`ravine.codegen.trace.trace`)
  generated as JavaScript by :mod:`ravine.codegen.js`, one program per combination of the
  options the page offers (``ema``, ``lookahead``, ``eps_mode``), picked by what the traced
  code branched on (``Program.decisions``);
* names, defaults and the checks of every hyperparameter come from the registry, with the
  error messages Python gives;
* the surfaces are written in JavaScript (``surfaces.js``) and held equal to
  :mod:`ravine.lab.surfaces` by a browser test;
* the "tuned" preset is computed in the page, for the surface as it is set: the lab's
  :func:`ravine.lab.tune.tune_lr` procedure (the same lr grid, tolerance and ranking) run
  by the page's engine, and held equal to Python's by a browser test.

``window.ravineLab`` (``engine.js``) is the page's documented JavaScript API; see
``docs/explore.md``.
"""

from __future__ import annotations

import itertools
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from ...codegen import js, trace
from ...rules import SPECS, Spec
from ...rules.validation import Check, Flag, Interval, OneOf, OrNone
from ..demo import GRID, TOL
from ..tune import UNTUNED

OPTIONS = ("ema", "lookahead", "eps_mode")
"""The options the page offers where an optimizer has them (each combination is traced)."""
NUMBERS = ("lr", "beta", "gamma", "eps")
"""The numeric hyperparameters the page offers where an optimizer has them."""


def _check(check: Check, name: str) -> dict[str, Any]:
    """A check as data for the page (it validates with the same bounds and message)."""
    described = {"describe": check.describe(name)}
    if isinstance(check, Interval):
        return {
            "kind": "interval",
            "low": None if math.isinf(check.low) else check.low,
            "high": None if math.isinf(check.high) else check.high,
            "lowOpen": check.low_open,
            "highOpen": check.high_open,
            **described,
        }
    if isinstance(check, OneOf):
        return {"kind": "choice", "values": list(check.values), **described}
    if isinstance(check, Flag):
        return {"kind": "flag", **described}
    if isinstance(check, OrNone):
        return {"kind": "or-none", "inner": _check(check.inner, name), **described}
    raise TypeError(f"no page form for check {check!r}")


def _programs(spec: Spec) -> list[str]:
    """The spec's traced programs as JavaScript, one per combination of page options."""
    options = [name for name in OPTIONS if name in spec.defaults]
    choices = []
    for name in options:
        check = spec.checks[name]
        choices.append(list(check.values) if isinstance(check, OneOf) else [True, False])
    sources, seen = [], set()
    for combination in itertools.product(*choices):
        program = trace.trace(
            spec, {**spec.defaults, **dict(zip(options, combination, strict=True))}
        )
        key = json.dumps(program.decisions, sort_keys=True)
        if key not in seen:
            seen.add(key)
            sources.append(js.generate(program))
    return sources


def _optimizer(spec: Spec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "family": spec.family,
        "variant": spec.variant,
        "parents": list(spec.parents),
        "defaults": dict(spec.defaults),
        "checks": {name: _check(check, name) for name, check in spec.checks.items()},
        "controls": [n for n in (*NUMBERS, *OPTIONS) if n in spec.defaults],
        "stateFields": list(spec.state_fields),
        "scalarState": list(spec.scalar_state),
    }


def page_data() -> dict[str, Any]:
    """Everything the page knows that Python decides: the registry, the surfaces' data."""
    from ... import __version__
    from .surfaces import surface_data

    return {
        "version": __version__,
        "options": list(OPTIONS),
        "optimizers": [_optimizer(spec) for spec in SPECS],
        "surfaces": surface_data(),
        "tuning": {"grid": list(GRID), "tol": TOL, "untuned": dict(UNTUNED)},
    }


def _asset(name: str) -> str:
    return (resources.files(__package__) / name).read_text(encoding="utf-8")


def render() -> str:
    """The page's HTML: one self-contained document."""
    environment = jinja2.Environment(
        loader=jinja2.FunctionLoader(_asset), autoescape=True, keep_trailing_newline=True
    )
    programs = {spec.name: _programs(spec) for spec in SPECS}
    program_js = (
        "{\n"
        + ",\n".join(
            f"{json.dumps(name)}: [\n" + ",\n".join(sources) + "\n]"
            for name, sources in programs.items()
        )
        + "\n}"
    )
    return environment.get_template("page.html.j2").render(
        style=_asset("style.css"),
        data=page_data(),
        programs=program_js,
        scripts=[_asset(name) for name in ("surfaces.js", "engine.js", "analysis.js", "ui.js")],
    )


def build(out_dir: str | Path = "out/explore") -> Path:
    """Write ``out_dir/explore.html`` and return its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    page = out / "explore.html"
    page.write_text(render(), encoding="utf-8")
    return page
