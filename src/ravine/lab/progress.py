"""A tiny text progress bar on stderr, for long lab work (tuning, many seeds)."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO


class Progress:
    """``with Progress("tuning", total=90) as bar: ... bar.update()`` draws ``[####----] 45/90``.

    Redrawn in place (carriage return) at most every 0.1 s and at the end on a terminal;
    elsewhere only the first and last frames are written; ``enabled=False`` draws nothing.
    """

    def __init__(
        self,
        label: str,
        total: int,
        *,
        width: int = 30,
        stream: TextIO | None = None,
        enabled: bool = True,
    ) -> None:
        self.label, self.total, self.width = label, max(total, 1), width
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled
        self.done = 0
        self._started = time.perf_counter()
        self._drawn = 0.0

    def __enter__(self) -> Progress:
        self._draw(force=True)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._draw(force=True)
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()

    def update(self, n: int = 1) -> None:
        self.done = min(self.done + n, self.total)
        self._draw()

    def line(self) -> str:
        """The bar as text, e.g. ``tuning [###############---------------] 45/90 1.2 s``."""
        filled = round(self.width * self.done / self.total)
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = time.perf_counter() - self._started
        return f"{self.label} [{bar}] {self.done}/{self.total} {elapsed:.1f} s"

    def _draw(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not self.enabled or (not force and now - self._drawn < 0.1 and self.done < self.total):
            return
        if not force and not getattr(self.stream, "isatty", lambda: False)():
            return  # a log file gets the first and the last frame, not a hundred
        self._drawn = now
        self.stream.write("\r" + self.line())
        self.stream.flush()
