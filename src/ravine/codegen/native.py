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
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from functools import cache
from pathlib import Path

FLAGS = (
    "-O3",
    "-march=native",  # the cache is per machine: the key includes the CPU's flags
    "-fopenmp",
    "-fno-math-errno",  # lets sqrt vectorize; results are unchanged
    "-fno-trapping-math",  # lets selects vectorize (8-bit encoding); results are unchanged
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
    return cc, fingerprint(cc)


@cache
def fingerprint(command: str) -> str:
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
            compile_library(cc, source, directory, library)
        _loaded[key] = ctypes.CDLL(str(library))
        return _loaded[key]


def compile_library(
    cc: str,
    source: str,
    directory: Path,
    library: Path,
    flags: Sequence[str] = FLAGS,
    file_name: str = "kernel.c",
) -> None:
    """Build ``source`` with ``cc`` and ``flags`` into the shared library ``library``
    (atomically: concurrent processes never see half a file)."""
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
