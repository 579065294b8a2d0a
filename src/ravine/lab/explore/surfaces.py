"""What the page's surfaces (``surfaces.js``) take from Python rather than restate.

The formulas are written again in JavaScript, operation for operation as NumPy evaluates
them, and held equal to :mod:`ravine.lab.surfaces` and :mod:`ravine.lab.minibatch` by a
browser test (``tests/browser/test_explore_engine.py``). What JavaScript cannot or should
not recompute comes from here, from the one Python definition of each:

* the surfaces' default arguments, read from the functions' signatures;
* the start points: the valley's in its own axes (:data:`ravine.lab.demo.START_ALONG`,
  ``START_ACROSS``; the page turns them with the valley's rotation), the classic surfaces'
  from the report's gallery (:data:`ravine.lab.report.GALLERY`);
* the mini-batch least-squares data set and what NumPy computes from it (minimum, window,
  steep direction): JavaScript cannot reproduce NumPy's random generator, nor LAPACK.

Floats travel as JSON, whose shortest round-trip form parses to the same float64.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from .. import minibatch, surfaces
from ..demo import START_ACROSS, START_ALONG
from ..report import GALLERY
from ..run import run

LEAST_SQUARES_START = (0.0, 0.0)
"""The start on the least-squares surface: the origin, as the report's mini-batch study."""


def _defaults(fn: Callable[..., Any]) -> dict[str, Any]:
    """The default of every argument of ``fn``, by name."""
    return {
        p.name: p.default
        for p in inspect.signature(fn).parameters.values()
        if p.default is not inspect.Parameter.empty
    }


def _least_squares() -> dict[str, Any]:
    """The default least-squares surface's data and what NumPy computes from it."""
    given = _defaults(minibatch.least_squares)
    X, y = minibatch.least_squares_data(
        given["n"], given["kappa"], given["noise"], given["data_seed"]
    )
    surface = minibatch.least_squares(**given)
    assert surface.steep is not None
    return {
        "X": X.tolist(),
        "y": y.tolist(),
        "minimum": surface.minimum.tolist(),
        "bounds": [list(b) for b in surface.bounds],
        "steep": surface.steep.tolist(),
    }


def surface_data() -> dict[str, Any]:
    """The surfaces' data for the page (``window.RAVINE_DATA.surfaces``), JSON-serialisable.

    ``defaults``: each surface function's default arguments by name, and the mini-batch
    seed's (:func:`ravine.lab.run.run`'s ``seed``); ``starts``: start points; ``valleyStart``:
    the valley's start along and across its floor; ``leastSquares``: its data set (``X``,
    ``y``) and ``minimum``, ``bounds``, ``steep``, as NumPy computes them.
    """
    defaults = {name: _defaults(fn) for name, fn in surfaces.SURFACES.items()}
    defaults["least_squares"] = {
        **_defaults(minibatch.least_squares),
        "seed": _defaults(run)["seed"],
    }
    return {
        "defaults": defaults,
        "valleyStart": {"along": START_ALONG, "across": START_ACROSS},
        "starts": {
            **{name: list(start) for name, (_, start) in GALLERY.items()},
            "least_squares": list(LEAST_SQUARES_START),
        },
        "leastSquares": _least_squares(),
    }
