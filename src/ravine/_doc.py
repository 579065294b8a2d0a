"""Docstrings and signatures for the generated optimizer classes, from the registry."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Sequence

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


def signature(spec: Spec, leading: Sequence[str], extra: dict[str, object]) -> inspect.Signature:
    """``(*leading, lr=…, *, <hyperparameters>=…, **extra)`` with the spec's defaults."""
    P = inspect.Parameter
    params = [P(name, P.POSITIONAL_OR_KEYWORD) for name in leading]
    params.append(P("lr", P.POSITIONAL_OR_KEYWORD, default=spec.defaults["lr"]))
    params += [P(n, P.KEYWORD_ONLY, default=v) for n, v in spec.defaults.items() if n != "lr"]
    params += [P(n, P.KEYWORD_ONLY, default=v) for n, v in extra.items()]
    return inspect.Signature(params)
