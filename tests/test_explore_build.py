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
