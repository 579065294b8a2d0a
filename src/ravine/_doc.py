"""Docstrings and signatures for the generated optimizer classes, from the registry."""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable, Mapping, Sequence

from .rules.registry import ARGUMENT_DOCS, Spec


def class_doc(spec: Spec, intro: str) -> str:
    """The rule's mathematics (its module docstring), the arguments and the conventions."""
    math = inspect.getdoc(sys.modules[spec.rule.__module__]) or ""
    arguments = "\n".join(
        f"    {name} = {spec.defaults[name]!r}: {ARGUMENT_DOCS.get(name, '')}"
        for name in spec.defaults
    )
    conventions = "\n".join(f"    {lib}: {text}" for lib, text in spec.conventions.items())
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


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def optimizers_table(specs: Sequence[Spec]) -> str:
    """Markdown: each optimizer, its defaults, variant, family and parents."""
    return markdown_table(
        ["optimizer", "defaults", "variant", "family", "parents"],
        [
            [f"`{s.name}`", _default_text(s), s.variant, s.family, ", ".join(s.parents) or "–"]
            for s in specs
        ],
    )


def conventions_table(specs: Sequence[Spec]) -> str:
    """Markdown: how torch.optim, optax and Keras configure each optimizer, per the registry."""
    libraries = ("torch", "optax", "keras")
    return markdown_table(
        ["ravine", "torch.optim", "optax", "Keras"],
        [[f"`{s.name}`", *(s.conventions[lib] for lib in libraries)] for s in specs],
    )


GENERATED = {"optimizers": optimizers_table, "conventions": conventions_table}
"""Tables kept in the README and docs between ``<!-- generated: NAME -->`` markers."""


def _replacement(body: str) -> Callable[[re.Match[str]], str]:
    return lambda m: m.group(1) + body + m.group(2)


def refresh(text: str, specs: Sequence[Spec]) -> str:
    """``text`` with every generated block rewritten from the registry."""
    for name, table in GENERATED.items():
        pattern = rf"(<!-- generated: {name} -->\n).*?(\n<!-- end generated -->)"
        # a function replacement: the table's backslashes must not be read as escapes
        text = re.sub(pattern, _replacement(table(specs)), text, flags=re.S)
    return text


if __name__ == "__main__":  # `make docs`: python -m ravine._doc README.md docs/conventions.md
    from pathlib import Path

    from .rules import SPECS

    for arg in sys.argv[1:]:
        path = Path(arg)
        path.write_text(refresh(path.read_text(encoding="utf-8"), SPECS), encoding="utf-8")
