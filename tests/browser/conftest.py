"""The explore page in a real browser: Debian's Chromium driven through Playwright.

The page is built once per session (:func:`ravine.lab.explore.build`) and opened from disk.
Every console message, page error, request and WebSocket is recorded; a test fails (at
teardown) if the console showed an error or a warning or the page threw.

Without Playwright or Chromium the browser tests skip, saying what is missing and how to
get it. Playwright's own browser download cannot work offline, so the browser is the
system's: ``apt-get install -y chromium``, which ``make test`` runs when it runs as root.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Headless and quiet: no GPU, and none of the browser's own traffic."""

BENIGN_SCHEMES = ("data:", "blob:")
"""Requests that fetch nothing: contents the page already holds."""


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return (
            "playwright is not installed: `make test` installs requirements-dev.txt "
            "(or: .venv/bin/pip install playwright==1.65.2)"
        )
    if shutil.which("chromium") is None:
        return (
            "Debian's chromium is not installed: `make test` installs it when run as root "
            "(or: sudo apt-get install -y chromium)"
        )
    return None


@dataclass
class Recorder:
    """What one page said and asked for."""

    page: Any
    url: str
    console: list[tuple[str, str]] = field(default_factory=list)
    """(type, text) of every console message."""
    errors: list[str] = field(default_factory=list)
    """Uncaught exceptions."""
    requests: list[str] = field(default_factory=list)
    """URL of every request and WebSocket, the page's own file included."""

    def watch(self, page: Any) -> None:
        page.on("console", lambda m: self.console.append((m.type, m.text)))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("websocket", lambda w: self.requests.append(w.url))

    def problems(self, since: tuple[int, int] = (0, 0)) -> list[str]:
        """Console errors and warnings and page errors, after ``since`` = (console, errors)."""
        said = [f"console {kind}: {text}" for kind, text in self.console[since[0] :]]
        return [p for p in said if p.startswith(("console error", "console warning"))] + [
            f"page error: {e}" for e in self.errors[since[1] :]
        ]

    def mark(self) -> tuple[int, int]:
        return len(self.console), len(self.errors)

    def foreign_requests(self) -> list[str]:
        """Requests other than the page's own file (any #state) and data:/blob: contents."""
        return [
            u
            for u in self.requests
            if u.split("#")[0] != self.url and not u.startswith(BENIGN_SCHEMES)
        ]


@pytest.fixture(scope="session")
def explore_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The page, built once per session."""
    from ravine.lab.explore import build

    return build(tmp_path_factory.mktemp("explore"))


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium (the system's), with a fresh temporary profile per launch."""
    reason = missing()
    if reason:
        pytest.skip(f"browser tests: {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # launch() gives the browser a new, empty user-data directory and removes it after
        browser = p.chromium.launch(
            executable_path=shutil.which("chromium"), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


def _open(browser: Any, html: Path) -> Recorder:
    context = browser.new_context()
    page = context.new_page()
    recorder = Recorder(page, html.resolve().as_uri())
    recorder.watch(page)
    page.goto(recorder.url, wait_until="load")
    page.wait_for_function("() => window.ravineLab !== undefined")
    return recorder


@pytest.fixture
def page(browser: Any, explore_html: Path) -> Iterator[Recorder]:
    """A fresh page (its own context) for one test; the test fails if the console complained."""
    recorder = _open(browser, explore_html)
    yield recorder
    recorder.page.context.close()
    problems = recorder.problems()
    if problems:
        pytest.fail("the page's console:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture(scope="session")
def _shared(browser: Any, explore_html: Path) -> Iterator[Recorder]:
    recorder = _open(browser, explore_html)
    yield recorder
    recorder.page.context.close()


@pytest.fixture
def lab(_shared: Recorder) -> Iterator[Recorder]:
    """One page shared by the session, for fast ``evaluate`` calls; the test fails if the
    console complained while it ran."""
    since = _shared.mark()
    yield _shared
    problems = _shared.problems(since)
    if problems:
        pytest.fail("the page's console:\n" + "\n".join(problems), pytrace=False)
