"""The tables in the README and docs are the registry's, not hand-edited copies."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ravine._doc import conventions_table, optimizers_table
from ravine.rules import SPECS

ROOT = Path(__file__).resolve().parents[1]


def _generated(path: Path, name: str) -> str:
    text = path.read_text(encoding="utf-8")
    match = re.search(rf"<!-- generated: {name} -->\n(.*?)\n<!-- end generated -->", text, re.S)
    assert match, f"{path.name} has no generated {name} block"
    return match.group(1)


@pytest.mark.parametrize(
    ("path", "name", "table"),
    [
        ("README.md", "optimizers", optimizers_table),
        ("docs/conventions.md", "conventions", conventions_table),
    ],
)
def test_generated_tables_are_current(path, name, table):
    assert _generated(ROOT / path, name) == table(SPECS), f"regenerate with `make docs` ({path})"


def test_every_class_docstring_shows_its_recurrence():
    import ravine.numpy as rn
    import ravine.torch as rt

    for spec in SPECS:
        for cls in (rn.OPTIMIZERS[spec.name], rt.OPTIMIZERS[spec.name]):
            doc = cls.__doc__ or ""
            assert spec.variant in doc and "direction" in doc and "Arguments" in doc
