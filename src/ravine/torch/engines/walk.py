"""Walking a parameter list once per step: the fused implementation's checks and writes.

Before each step the fused implementation confirms that its cached plan still holds (the
same parameters, still where they were, each gradient dense and contiguous) and reads the
gradients' addresses; after it, it writes the new step count into every parameter's state.
In Python that is several calls per tensor: measured 1.9 µs per tensor for SGD and 3.5 µs
for Adam (whose two state tensors are re-checked), 4–7 ms per step for a model with 2000
tensors, longer than the update itself. So each operation here has two versions with one
meaning:

* a C++ one (``walk.cpp``), which reads the tensors through ATen at 50–200 ns each. It is
  compiled once per machine and torch version, by a separate process watched from a
  background thread, the first time a group of at least :data:`MIN_TENSORS` tensors is
  planned (about 15 s with g++; no step waits for it, and a run that ends sooner still
  leaves it built), then cached on disk with the kernels;
* a Python twin, used until then, where no C++ compiler or torch headers exist, or when
  ``RAVINE_WALK=python`` is set.

Both answer "not ready" whenever in doubt, which only sends a step down the general path.
:func:`status` says which one is in use.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import operator
import os
import shutil
import subprocess
import sys
import sysconfig
import threading
from collections.abc import Sequence
from itertools import repeat
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import torch

from ...codegen import native
from ..state import put
from ..storage import is_wrapper

MIN_TENSORS = 64
"""Groups with fewer tensors than this never start the C++ build (it cannot pay off)."""


def _refresh(
    params: tuple[torch.Tensor, ...],
    grads: Sequence[Any] | None,
    states: tuple[dict[str, Any], ...],
    fields: tuple[str, ...],
    table: np.ndarray,
    offsets: np.ndarray,
    param_type: torch.Tensor,
    storage_type: torch.Tensor,
) -> bool:
    """Whether every member of a planned batch still matches its plan: the parameter is
    the same dense tensor of the planned dtype and size at the planned address (``table``
    row 0; ``p.data = …`` may put another tensor at the same address), its gradient (given,
    or its ``.grad``) is dense, contiguous, of its dtype and shape, and each state tensor
    (``fields``) is where ``table`` rows 2… say. If so, the gradients' addresses are written
    to row 1. ``offsets[k + 1] - offsets[k]`` is member k's size in storage elements."""
    if grads is None:
        grads = list(map(_grad, params))
    if not all(map(_is_not_none, grads)):
        return False
    sizes = np.diff(offsets).tolist()
    dtype, storage = param_type.dtype, storage_type.dtype
    real = 2 if dtype.is_complex else 1
    numels = list(map(_numel, params))
    if [real * m for m in numels] != sizes or not plain(params, dtype):
        return False
    if list(map(_data_ptr, params)) != table[0].tolist():
        return False
    if not plain(grads, dtype) or list(map(_shape, grads)) != list(map(_shape, params)):
        return False
    pointers = list(map(_data_ptr, grads))
    if 0 in pointers and any(ptr == 0 and m for ptr, m in zip(pointers, numels, strict=True)):
        return False  # a wrapper without storage of its own
    try:
        for row, field in enumerate(fields, start=2):
            values = list(map(operator.itemgetter(field), states))
            if not all(isinstance(v, torch.Tensor) for v in values):
                return False
            if not plain(values, storage) or list(map(_numel, values)) != sizes:
                return False
            if list(map(_data_ptr, values)) != table[row].tolist():
                return False
    except KeyError:
        return False
    table[1, :] = pointers
    return True


def plain(tensors: Sequence[torch.Tensor], dtype: torch.dtype) -> bool:
    """Whether every tensor's memory holds exactly its values: dense, contiguous, on the
    CPU, of ``dtype``, no lazy conjugate/negative bit, not a wrapper subclass."""
    return (
        all(map(operator.is_, map(_layout, tensors), repeat(torch.strided)))
        and all(map(operator.is_, map(_dtype, tensors), repeat(dtype)))
        and all(map(_is_cpu, tensors))
        and all(map(_is_contiguous, tensors))
        and not any(map(_is_conj, tensors))
        and not any(map(_is_neg, tensors))
        and not any(map(is_wrapper, set(map(type, tensors))))
    )


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
    """:func:`.state.put` on every state: an engine's own write, not a change."""
    for state in states:
        for key, value in zip(keys, values, strict=True):
            put(state, key, value)


_grad = operator.attrgetter("grad")
_is_not_none = functools.partial(operator.is_not, None)
_data_ptr = torch.Tensor.data_ptr
_numel = torch.Tensor.numel
_shape = operator.attrgetter("shape")
_layout = operator.attrgetter("layout")
_dtype = operator.attrgetter("dtype")
_is_cpu = operator.attrgetter("is_cpu")
_is_contiguous = torch.Tensor.is_contiguous
_is_conj = torch.Tensor.is_conj
_is_neg = torch.Tensor.is_neg

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
            _thread = threading.Thread(target=lambda: None)  # never started: nothing to wait for
            return
        _status = "python (the C++ walker is being built)"
        _thread = threading.Thread(target=_build, name="ravine-walk-build", daemon=True)
        _thread.start()


def wait(timeout: float | None = None) -> bool:
    """Start the build if needed and wait for it; whether the C++ walker is in use."""
    start()
    thread = _thread
    if thread is not None and thread.ident is not None:  # started
        thread.join(timeout)
    return _native is not None


_BUILDER = """
import json, sys
from pathlib import Path
from ravine.codegen import native
cxx, source, directory, library, flags = json.load(sys.stdin)
native.compile_library(cxx, source, Path(directory), Path(library), flags, "module.cpp")
"""


def _build() -> None:
    global _native, _status
    try:
        source, args = _source_and_args()
        cxx, flags, library = _extension(source, args)
        if not library.exists():
            # Compile in a process of its own session: it finishes and caches the module
            # even if this process ends first (a run shorter than the build would otherwise
            # start the compiler again, every time, and never profit).
            package_root = str(Path(__file__).resolve().parents[3])
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([package_root, *sys.path])}
            work = [cxx, source, str(library.parent), str(library), flags]
            child = subprocess.run(
                [sys.executable, "-c", _BUILDER],
                input=json.dumps(work),
                capture_output=True,
                text=True,
                env=env,
                start_new_session=True,
                timeout=2 * native.COMPILE_TIMEOUT_S,
            )
            if child.returncode != 0:
                raise native.CompilerUnavailableError(child.stderr.strip()[-300:])
        module = _load_module(library)
    except (
        native.CompilerUnavailableError,
        ImportError,
        OSError,
        subprocess.SubprocessError,
    ) as error:
        _status = f"python (the C++ walker could not be built: {str(error)[-300:]})"
        return
    _native = module
    _status = "c++"


def _extension(source: str, args: list[str]) -> tuple[str, list[str], Path]:
    """The C++ compiler (``$CXX`` or ``c++``), its flags, and where the module built from
    ``source`` is cached (keyed by the hash of source, arguments, compiler and Python
    ABI)."""
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if not cxx:
        raise native.CompilerUnavailableError("no C++ compiler found (set CXX, or install g++)")
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    include = sysconfig.get_paths()["include"]
    flags = ["-O2", "-std=c++17", "-fPIC", "-shared", "-w", f"-I{include}", *args]
    parts = [source, cxx, *flags, native.fingerprint(cxx), suffix, sys.version]
    key = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]
    return cxx, flags, native.cache_dir() / "modules" / f"{_MODULE}-{key}{suffix}"


def _load_module(library: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(_MODULE, library)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_MODULE = "_ravine_walk"


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
