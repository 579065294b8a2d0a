"""Screenshots of the built site in headless Chromium, opened from the disk as a user would.

    python tools/docs/screenshots.py [--site out/site] [--out out/docs-screenshots]

Debian's Chromium through Playwright (whose own browser download cannot work offline).
Each page is opened with ``file://``; a request to anything else, a console error or a
page error is printed and makes the exit status 1, since the site must work offline.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

PAGES = {
    "home": "index.html",
    "optimizer-adam": "optimizers/adam.html",
    "api-ravine-torch-adam": "api/torch.html#ravine.torch.Adam",
}
"""name: page (with the fragment a user would follow, if any)."""

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]


def shoot(site: Path, out: Path) -> list[str]:
    """Write one PNG per page of :data:`PAGES` under ``out``; return the problems seen."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("Debian's chromium is missing: apt-get install -y chromium")
    out.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("request", lambda r: _offline(r.url, problems))
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on(
            "console",
            lambda m: (
                problems.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning")
                else None
            ),
        )
        for name, address in PAGES.items():
            path, _, fragment = address.partition("#")
            url = (site / path).resolve().as_uri() + (f"#{fragment}" if fragment else "")
            page.goto(url)
            page.wait_for_load_state("load")
            page.wait_for_timeout(600)  # the header's title slides in after a jump to an anchor
            page.screenshot(path=str(out / f"{name}.png"))
            print(f"wrote {out / name}.png")
        browser.close()
    return problems


def _offline(url: str, problems: list[str]) -> None:
    if not url.startswith(("file:", "data:", "blob:")):
        problems.append(f"request off the disk: {url}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=Path("out/site"))
    parser.add_argument("--out", type=Path, default=Path("out/docs-screenshots"))
    args = parser.parse_args(argv)
    problems = shoot(args.site, args.out)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
