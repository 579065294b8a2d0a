"""Compile generated C with the system compiler, cached on disk across processes.

A kernel is compiled once per distinct source (per optimizer, options and dtype) and
kept in ``$RAVINE_CACHE_DIR`` (default ``$XDG_CACHE_HOME/ravine`` or ``~/.cache/ravine``)
under the hash of its source, flags and compiler, so later processes load it at once.
Where no working C compiler with OpenMP exists, :class:`CompilerUnavailableError` is raised and
the optimizers fall back to the eager implementations with a warning.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from types import ModuleType

FLAGS = (
    "-O3",
    "-march=native",  # the cache is per machine: the key includes the CPU's flags
    "-fopenmp",
    "-fno-math-errno",  # lets sqrt vectorize; results are unchanged
    "-ffp-contract=off",  # no FMA: every operation rounds as the eager paths round it
    "-fPIC",
    "-shared",
    "-std=gnu11",
)
COMPILE_TIMEOUT_S = 120


class CompilerUnavailableError(RuntimeError):
    """No C compiler (with OpenMP) could build a kernel."""


def cache_dir() -> Path:
    root = os.environ.get("RAVINE_CACHE_DIR")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "ravine"


@cache
def compiler() -> tuple[str, str]:
    """The compiler command and a fingerprint of it and of this CPU."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise CompilerUnavailableError("no C compiler found (set CC, or install gcc)")
    return cc, _fingerprint(cc)


@cache
def _fingerprint(command: str) -> str:
    """A compiler's ``--version`` and this CPU's flags: part of every cache key."""
    try:
        version = subprocess.run(
            [command, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as error:
        raise CompilerUnavailableError(f"{command} does not run: {error}") from error
    return version + _cpu_flags()


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


_lock = threading.Lock()
_module_lock = threading.Lock()
_loaded: dict[str, ctypes.CDLL] = {}


def load(source: str) -> ctypes.CDLL:
    """The shared library built from ``source`` (compiled on first use, then cached)."""
    cc, fingerprint = compiler()
    key = hashlib.sha256("\0".join([source, *FLAGS, fingerprint]).encode()).hexdigest()[:32]
    with _lock:
        if key in _loaded:
            return _loaded[key]
        directory = cache_dir() / "kernels"
        library = directory / f"{key}.so"
        if not library.exists():
            _compile(cc, source, directory, library)
        _loaded[key] = ctypes.CDLL(str(library))
        return _loaded[key]


def python_module(name: str, source: str, args: list[str]) -> ModuleType:
    """The CPython extension module ``name`` built from C++ ``source`` with the extra
    compiler/linker ``args`` (see :func:`python_module_path`)."""
    library = python_module_path(name, source, args)
    spec = importlib.util.spec_from_file_location(name, library)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def python_module_path(name: str, source: str, args: list[str]) -> Path:
    """Where the extension module ``name`` built from ``source`` is cached, compiling it
    first if needed with ``$CXX`` or ``c++`` (keyed by the hash of source, arguments,
    compiler and Python ABI)."""
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if not cxx:
        raise CompilerUnavailableError("no C++ compiler found (set CXX, or install g++)")
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    include = sysconfig.get_paths()["include"]
    flags = ["-O2", "-std=c++17", "-fPIC", "-shared", "-w", f"-I{include}", *args]
    parts = [source, cxx, *flags, _fingerprint(cxx), suffix, sys.version]
    key = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]
    with _module_lock:  # not _lock: a module builds in the background while kernels load
        directory = cache_dir() / "modules"
        library = directory / f"{name}-{key}{suffix}"
        if not library.exists():
            _compile(cxx, source, directory, library, flags, "module.cpp")
        return library


def _compile(
    cc: str,
    source: str,
    directory: Path,
    library: Path,
    flags: Sequence[str] = FLAGS,
    file_name: str = "kernel.c",
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as work:
        c_file = Path(work) / file_name
        c_file.write_text(source)
        out = Path(work) / "library.so"
        try:
            result = subprocess.run(
                [cc, str(c_file), *flags, "-o", str(out), "-lm"],
                capture_output=True,
                text=True,
                timeout=COMPILE_TIMEOUT_S,
            )
        except (OSError, subprocess.SubprocessError) as error:
            raise CompilerUnavailableError(f"{cc} failed to run: {error}") from error
        if result.returncode != 0:
            raise CompilerUnavailableError(
                f"{cc} could not build {library.name}:\n{result.stderr[-2000:]}"
            )
        os.replace(out, library)  # atomic: concurrent processes never see half a file
