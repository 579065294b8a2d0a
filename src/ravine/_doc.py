"""Docstrings, signatures and documentation tables, from the registry.

The classes' docstrings (:func:`class_doc`) and the tables of the documentation site are
written here once from :data:`ravine.rules.SPECS`; ``make docs`` rewrites every block
between ``<!-- generated: NAME [ARGUMENT] -->`` and ``<!-- end generated -->`` markers
(:func:`refresh`), and ``tests/test_docs.py`` fails while one is stale.
"""

from __future__ import annotations

import inspect
import re
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence

from .rules.registry import ARGUMENT_DOCS, Spec

LIBRARIES = {"torch": "torch.optim", "optax": "optax", "keras": "Keras"}
"""The libraries each spec's ``conventions`` relate to, with their names for people."""


def class_doc(spec: Spec, intro: str) -> str:
    """The rule's mathematics (its module docstring), the arguments and the conventions.

    Plain text for ``help()``; the documentation site renders the table and the list.
    """
    math = inspect.getdoc(sys.modules[spec.rule.__module__]) or ""
    arguments = text_table(
        ["argument", "default", "meaning"],
        [[name, repr(value), ARGUMENT_DOCS.get(name, "")] for name, value in spec.defaults.items()],
    )
    conventions = "\n".join(f"* {LIBRARIES[lib]}: {text}" for lib, text in spec.conventions.items())
    return (
        f"{spec.name}: {spec.variant}.\n\n{intro}\n\n{math}\n\n"
        f"Arguments (defaults):\n\n{arguments}\n\nOther libraries:\n\n{conventions}\n"
    )


def signature(spec: Spec, leading: Sequence[str], extra: Mapping[str, object]) -> inspect.Signature:
    """``(*leading, lr=…, *, <hyperparameters>=…, **extra)`` with the spec's defaults."""
    P = inspect.Parameter
    params = [P(name, P.POSITIONAL_OR_KEYWORD) for name in leading]
    params.append(P("lr", P.POSITIONAL_OR_KEYWORD, default=spec.defaults["lr"]))
    params += [P(n, P.KEYWORD_ONLY, default=v) for n, v in spec.defaults.items() if n != "lr"]
    params += [P(n, P.KEYWORD_ONLY, default=v) for n, v in extra.items()]
    return inspect.Signature(params)


def _default_text(spec: Spec) -> str:
    skip = {"weight_decay", "decoupled_weight_decay", "maximize"}
    return ", ".join(f"{k}={v!r}" for k, v in spec.defaults.items() if k not in skip)


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A reST simple table: aligned plain text, which the site renders as a table.

    >>> print(text_table(["name", "value"], [["lr", "0.001"]]))
    ====  =====
    name  value
    ====  =====
    lr    0.001
    ====  =====
    """
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    border = "  ".join("=" * w for w in widths)
    lines = [border, _aligned(header, widths), border]
    lines += [_aligned(row, widths) for row in rows]
    return "\n".join([*lines, border])


def _aligned(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def page(name: str) -> str:
    """The file name of optimizer ``name``'s page in ``docs/optimizers/``."""
    return f"{name.lower()}.md"


def optimizers_table(specs: Sequence[Spec]) -> str:
    """Markdown: each optimizer (linking its page), its defaults, variant, family and parents."""
    return markdown_table(
        ["optimizer", "defaults", "variant", "family", "parents"],
        [
            [
                f"[`{s.name}`]({page(s.name)})",
                _default_text(s),
                s.variant,
                s.family,
                ", ".join(s.parents) or "–",
            ]
            for s in specs
        ],
    )


def conventions_table(specs: Sequence[Spec]) -> str:
    """Markdown: how torch.optim, optax and Keras configure each optimizer, per the registry."""
    return markdown_table(
        ["ravine", *LIBRARIES.values()],
        [[f"`{s.name}`", *(s.conventions[lib] for lib in LIBRARIES)] for s in specs],
    )


def _cell(text: str) -> str:
    """``text`` as a table cell's Markdown: no column break, no attribute list (``{…}``)."""
    return re.sub(r"([|{}])", r"\\\1", text)


def valid(spec: Spec, name: str) -> str:
    """The values argument ``name`` accepts, from its check, e.g. ``0 ≤ beta < 1``."""
    text = spec.checks[name].describe(name).replace(" (a finite real number)", "")
    text = re.sub(rf"\b{name} in \{{(.*)\}}", r"\1", text)  # one of a few values
    return text.replace("<=", "≤")


def arguments_table(spec: Spec) -> str:
    """Markdown: one optimizer's arguments, defaults, valid values and meanings."""
    return markdown_table(
        ["argument", "default", "valid", "meaning"],
        [
            [
                f"`{name}`",
                f"`{value!r}`",
                _cell(valid(spec, name)),
                _cell(ARGUMENT_DOCS.get(name, "")),
            ]
            for name, value in spec.defaults.items()
        ],
    )


def libraries_table(spec: Spec) -> str:
    """Markdown: the other libraries' form of one optimizer and the arguments that match it."""
    return markdown_table(
        ["library", "how it relates to ravine's arguments"],
        [[name, _cell(spec.conventions[lib])] for lib, name in LIBRARIES.items()],
    )


def recurrence(spec: Spec) -> str:
    """Markdown: the recurrence in the rule module's docstring (its first indented block)."""
    doc = inspect.getdoc(sys.modules[spec.rule.__module__]) or ""
    block = re.search(r"\n\n((?:    .*\n?)+)", doc)
    assert block, f"{spec.rule.__module__}'s docstring shows no recurrence"
    return "```text\n" + textwrap.dedent(block[1]).rstrip() + "\n```"


def summary(spec: Spec) -> str:
    """Markdown: one optimizer's variant, family and parents (linking their pages)."""
    parents = ", ".join(f"[{p}]({page(p)})" for p in spec.parents) or "none (the baseline)"
    return (
        f"- **Variant:** {spec.variant}.\n- **Family:** {spec.family}.\n- **Builds on:** {parents}."
    )


GENERATED: Mapping[str, Callable[[Sequence[Spec]], str]] = {
    "optimizers": optimizers_table,
    "conventions": conventions_table,
}
"""Tables of every optimizer, kept between ``<!-- generated: NAME -->`` markers."""

GENERATED_FOR_ONE: Mapping[str, Callable[[Spec], str]] = {
    "arguments": arguments_table,
    "libraries": libraries_table,
    "recurrence": recurrence,
    "summary": summary,
}
"""Blocks about one optimizer, kept between ``<!-- generated: NAME OPTIMIZER -->`` markers."""

BLOCK = re.compile(
    r"^(<!-- generated: ([\w-]+)(?: (\w+))? -->\n)(?:.*?\n)??(<!-- end generated -->)$", re.S | re.M
)
"""A generated block: its opening marker, its body (possibly empty) and its closing one."""


def generated(name: str, argument: str | None, specs: Sequence[Spec]) -> str:
    """The body of the block ``<!-- generated: name [argument] -->``."""
    if argument is None:
        return GENERATED[name](specs)
    return GENERATED_FOR_ONE[name](next(s for s in specs if s.name == argument))


def refresh(text: str, specs: Sequence[Spec]) -> str:
    """``text`` with every generated block rewritten from the registry."""
    # a function replacement: the table's backslashes must not be read as escapes
    return BLOCK.sub(lambda m: m[1] + generated(m[2], m[3], specs) + "\n" + m[4], text)


if __name__ == "__main__":  # `make docs`: python -m ravine._doc FILE...
    from pathlib import Path

    from .rules import SPECS

    for arg in sys.argv[1:]:
        path = Path(arg)
        text = path.read_text(encoding="utf-8")
        if refresh(text, SPECS) != text:  # a file without stale blocks is left untouched
            path.write_text(refresh(text, SPECS), encoding="utf-8")
            print(f"regenerated the tables in {path}")
