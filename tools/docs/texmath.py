"""A Markdown extension: ``$…$`` and ``$$…$$`` LaTeX, rendered to MathML at build time.

Browsers draw MathML themselves (Chromium since 109, Firefox and Safari long before), so
the site needs no math script, no web font and no network: the page holds the formula.
The conversion is :mod:`latex2mathml`'s (pure Python). LaTeX it cannot read is logged as
a warning under ``mkdocs``, which fails ``mkdocs build --strict``.

* Display math: a paragraph that starts with ``$$`` and ends with ``$$``.
* Inline math: ``$…$`` with no space just inside either ``$`` and no digit just after
  the closing one (pandoc's rule, so "$5 and $6" stays text). Code spans come first:
  ``$HOME`` in backticks is never math.
"""

from __future__ import annotations

import html
import logging
import re
from typing import Any
from xml.etree import ElementTree

from latex2mathml.converter import convert
from markdown import Extension, Markdown
from markdown.blockprocessors import BlockProcessor
from markdown.inlinepatterns import InlineProcessor

_log = logging.getLogger("mkdocs.plugins.ravine.texmath")

INLINE = r"(?<![\\$])\$(?=\S)(.+?)(?<=\S)\$(?!\d)"
XMLNS = ' xmlns="http://www.w3.org/1998/Math/MathML"'  # implied in HTML: dropped
ACCENTS = {"&#x0005E;": "&#x002C6;", "&#x0007E;": "&#x002DC;"}
"""latex2mathml writes ``\\hat`` and ``\\tilde`` with the ASCII ``^`` and ``~``, which a math
font draws as large free-standing glyphs above the letter; the modifier letters sit as
accents."""


ARITY = {"mfrac": 2, "msub": 2, "msup": 2, "mover": 2, "munder": 2, "mroot": 2}
ARITY |= {"msubsup": 3, "munderover": 3}
"""How many children each MathML layout element takes: fewer means a missing argument."""


def mathml(latex: str, display: str) -> str:
    """``latex`` as a MathML element (a warning, and the source as code, if it is unreadable)."""
    try:
        rendered = convert(latex.strip(), display=display)
        problem = _problem(latex, rendered)
    except Exception as error:  # latex2mathml raises many kinds for unreadable input
        problem = f"{type(error).__name__} {error}"
    if problem:
        _log.warning("cannot render LaTeX %r: %s", latex, problem)
        return f"<code>{html.escape(latex)}</code>"
    for ascii_glyph, accent in ACCENTS.items():
        rendered = re.sub(
            rf"(<mo[^>]*>){ascii_glyph}(</mo></mover>)", rf"\g<1>{accent}\2", rendered
        )
    return rendered.replace(XMLNS, "", 1)


def _problem(latex: str, rendered: str) -> str | None:
    """What latex2mathml let through: an unknown command, a missing argument, a lone brace."""
    plain = latex.replace("\\{", "").replace("\\}", "")
    if plain.count("{") != plain.count("}"):
        return "unbalanced braces"
    for element in ElementTree.fromstring(rendered).iter():
        name = element.tag.rpartition("}")[2]
        if (element.text or "").startswith("\\"):
            return f"unknown command {element.text}"
        if name in ARITY and len(element) != ARITY[name]:
            return f"<{name}> with {len(element)} of its {ARITY[name]} arguments"
    return None


class _InlineMath(InlineProcessor):
    def handleMatch(self, m: re.Match[str], data: str) -> tuple[Any, int, int]:
        return self.md.htmlStash.store(mathml(m.group(1), "inline")), m.start(0), m.end(0)


class _DisplayMath(BlockProcessor):
    def test(self, parent: ElementTree.Element, block: str) -> bool:
        return block.lstrip().startswith("$$")

    def run(self, parent: ElementTree.Element, blocks: list[str]) -> bool:
        text = blocks.pop(0)
        while not text.rstrip().endswith("$$") or text.strip() == "$$":
            if not blocks:
                _log.warning("display math without its closing $$: %r", text[:80])
                return False
            text += "\n\n" + blocks.pop(0)
        latex = text.strip()[2:-2]
        html = f'<div class="math-display">{mathml(latex, "block")}</div>'
        paragraph = ElementTree.SubElement(parent, "p")
        paragraph.text = self.parser.md.htmlStash.store(html)
        return True


class TexMath(Extension):
    """Register the two processors: inline after code spans, display before paragraphs."""

    def extendMarkdown(self, md: Markdown) -> None:
        md.inlinePatterns.register(_InlineMath(INLINE, md), "texmath-inline", 185)
        md.parser.blockprocessors.register(_DisplayMath(md.parser), "texmath-display", 105)
