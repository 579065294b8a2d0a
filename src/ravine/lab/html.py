"""Small HTML helpers for the report: escaped tables, embedded figures, number formatting."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       line-height: 1.5; color: #222; }
h1, h2, h3 { line-height: 1.2; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0; } figcaption { font-size: 0.9em; color: #555; }
img, svg { max-width: 100%; height: auto; }
.ok { color: #070; font-weight: bold; } .no { color: #a00; font-weight: bold; }
code { background: #f5f5f5; padding: 0 0.2em; }
"""


def fmt(value: Any) -> str:
    """A number for a table: 4 significant digits, '—' for None, ∞ and NaN spelled out."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "∞"
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return "(" + ", ".join(fmt(v) for v in value) + ")"
    return str(value)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(fmt(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def verdict(holds: bool) -> str:
    return '<span class="ok">holds</span>' if holds else '<span class="no">does not hold</span>'


def figure(path: Path, caption: str) -> str:
    """Embed a PNG or GIF as base64, an SVG inline."""
    if path.suffix == ".svg":
        svg = path.read_text()
        body = svg[svg.find("<svg") :]
    else:
        mime = "image/gif" if path.suffix == ".gif" else "image/png"
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        body = f'<img src="data:{mime};base64,{data}" alt="{html.escape(caption)}">'
    return f"<figure>{body}<figcaption>{html.escape(caption)}</figcaption></figure>"


def page(title: str, sections: Sequence[str]) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
        f"</title><style>{STYLE}</style></head><body>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )
