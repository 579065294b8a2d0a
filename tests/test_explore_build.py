"""``ravine lab explore`` writes one self-contained page (the browser tests run it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ravine import cli
from ravine.rules import SPECS


def test_cli_writes_one_self_contained_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert cli.main(["lab", "explore", "--out", str(tmp_path)]) == 0
    page = tmp_path / "explore.html"
    assert f"open {page.resolve()}" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["explore.html"]
    html = page.read_text(encoding="utf-8")
    # nothing is fetched: no external script, style, image or link, and a CSP forbids it
    assert "default-src 'none'" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert not re.search(r"@import|url\(\s*['\"]?https?:", html)
    # every optimizer's traced programs are in it
    for spec in SPECS:
        assert f'"{spec.name}": [' in html


def test_demo_writes_the_page_beside_the_report(tmp_path: Path, monkeypatch, capsys):
    """``ravine demo`` (``make demo``) writes the page and prints its path; --no-report
    writes no HTML page at all. (The demo itself is tested in test_lab.py.)"""
    from ravine.lab import demo

    monkeypatch.setattr(demo, "main", lambda **kwargs: {})
    assert cli.main(["demo", "--out", str(tmp_path / "a")]) == 0
    page = tmp_path / "a" / "explore" / "explore.html"
    assert page.is_file() and f"open {page.resolve()}" in capsys.readouterr().out
    assert cli.main(["demo", "--out", str(tmp_path / "b"), "--no-report"]) == 0
    assert not (tmp_path / "b").exists()
