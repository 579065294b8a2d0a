"""MkDocs hooks for ravine's site (``hooks:`` in mkdocs.yml).

MkDocs loads this file by path with its folder on ``sys.path``, so the sibling modules
import by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from texmath import TexMath


def on_config(config: Any) -> Any:
    """LaTeX → MathML for every page and docstring; snippets read from the repository root."""
    config.markdown_extensions.append(TexMath())
    root = str(Path(config.config_file_path).resolve().parent)
    config.mdx_configs.setdefault("pymdownx.snippets", {})["base_path"] = [root]
    return config
