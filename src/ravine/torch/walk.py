"""Walking a parameter list once per step: the fused implementation's checks and writes.

Before each step the fused implementation confirms that its cached plan still holds (the
same parameters, still where they were, each gradient dense and contiguous) and reads the
gradients' addresses; after it, it writes the new step count into every parameter's state.
In Python that is a few calls per tensor, about 0.6 µs: 1.2 ms per step for a model with
2000 tensors, as long as the update itself. So each operation here has two versions with
one meaning:

* a C++ one (``walk.cpp``), which reads the tensors through ATen at about 30 ns each. It is
  compiled once per machine and torch version, in a background thread, the first time a
  group of at least :data:`MIN_TENSORS` tensors is planned (about 15 s with g++; no step
  waits for it), then cached on disk with the kernels;
* a Python twin, used until then, where no C++ compiler or torch headers exist, or when
  ``RAVINE_WALK=python`` is set.

Both answer "not ready" whenever in doubt, which only sends a step down the general path.
:func:`status` says which one is in use.
"""

from __future__ import annotations

import functools
import operator
import os
import threading
from collections.abc import Sequence
from itertools import repeat
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import torch

from ..fused import build

MIN_TENSORS = 64
"""Groups with fewer tensors than this never start the C++ build (it cannot pay off)."""


def _refresh(params: tuple[torch.Tensor, ...], grads: Sequence[Any] | None, table: Any) -> bool:
    """Whether every parameter's data is where ``table[0]`` says and every gradient (given,
    or each parameter's ``.grad``) can be streamed; if so the gradients' addresses are
    written to ``table[1]``."""
    if grads is None:
        grads = list(map(_grad, params))
        if not all(map(_is_not_none, grads)):
            return False
    if list(map(_data_ptr, params)) != table[0].tolist():
        return False  # a parameter's storage was replaced (p.data = …, module.to(…))
    # dtype and device cannot differ (torch enforces them on p.grad); the layout can, and a
    # sparse gradient reports itself as not contiguous; a lazily conjugated complex
    # gradient's memory holds the unconjugated values
    if not all(map(_is_contiguous, grads)):
        return False
    if grads and grads[0].is_complex() and any(map(_is_conj, grads)):
        return False
    table[1, :] = list(map(_data_ptr, grads))
    return True


def _same(items: Sequence[Any], expected: Sequence[Any]) -> bool:
    """Whether ``items`` holds exactly the objects of ``expected``, in order."""
    return len(items) == len(expected) and all(map(operator.is_, items, expected))


def _agree(states: Sequence[dict[str, Any]], keys: tuple[str, ...], values: tuple) -> bool:
    """Whether every state holds ``values[j]`` under ``keys[j]``."""
    get = operator.itemgetter(*keys)
    expected = values if len(keys) > 1 else values[0]
    try:
        return all(map(operator.eq, map(get, states), repeat(expected)))
    except KeyError:
        return False


def _put(states: Sequence[dict[str, Any]], keys: tuple[str, ...], values: tuple) -> None:
    """``dict.__setitem__`` on every state: an engine's own write (see :func:`.state.put`)."""
    for state in states:
        for key, value in zip(keys, values, strict=True):
            dict.__setitem__(state, key, value)


_grad = operator.attrgetter("grad")
_is_not_none = functools.partial(operator.is_not, None)
_data_ptr = torch.Tensor.data_ptr
_is_contiguous = torch.Tensor.is_contiguous
_is_conj = torch.Tensor.is_conj

PYTHON = SimpleNamespace(refresh=_refresh, same=_same, agree=_agree, put=_put)
"""The Python versions, with the C++ module's interface."""

_native: ModuleType | None = None
_status = "python (the C++ walker is built once a group of many tensors is planned)"
_thread: threading.Thread | None = None
_lock = threading.Lock()


def current() -> Any:
    """The implementation in use now: the C++ module once built, else :data:`PYTHON`."""
    return _native if _native is not None else PYTHON


def status() -> str:
    """Which implementation is in use, and why."""
    return _status


def start() -> None:
    """Build (or load from the cache) the C++ walker in a background thread, once."""
    global _thread, _status
    with _lock:
        if _thread is not None or _native is not None:
            return
        if os.environ.get("RAVINE_WALK", "").lower() == "python":
            _status = "python (RAVINE_WALK=python)"
            _thread = threading.current_thread()  # never start
            return
        _status = "python (the C++ walker is being built)"
        _thread = threading.Thread(target=_build, name="ravine-walk-build", daemon=True)
        _thread.start()


def wait(timeout: float | None = None) -> bool:
    """Start the build if needed and wait for it; whether the C++ walker is in use."""
    start()
    thread = _thread
    if thread is not None and thread is not threading.current_thread():
        thread.join(timeout)
    return _native is not None


def _build() -> None:
    global _native, _status
    try:
        module = build.python_module("_ravine_walk", *_source_and_args())
    except (build.CompilerUnavailableError, ImportError, OSError) as error:
        _status = f"python (the C++ walker could not be built: {str(error)[:300]})"
        return
    _native = module
    _status = "c++"


def _source_and_args() -> tuple[str, list[str]]:
    root = Path(torch.__file__).parent
    source = (Path(__file__).with_name("walk.cpp")).read_text()
    source += f"\n// built against torch {torch.__version__} in {root}\n"  # part of the key
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    args = [
        f"-I{root / 'include'}",
        f"-I{root / 'include' / 'torch' / 'csrc' / 'api' / 'include'}",
        f"-D_GLIBCXX_USE_CXX11_ABI={abi}",
        f"-L{root / 'lib'}",
        "-ltorch_python",
        "-ltorch_cpu",
        "-lc10",
        f"-Wl,-rpath,{root / 'lib'}",
    ]
    return source, args
