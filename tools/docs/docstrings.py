"""A griffe extension: ravine's docstrings, written for ``help()`` and Sphinx, as Markdown.

mkdocstrings renders docstrings as Markdown; ravine's are plain text with a few reST
habits. This extension rewrites each docstring once, when griffe loads the package:

* Sphinx roles (``:func:`~ravine.lab.tune.tune_lr```, ``:mod:`.walk```) become
  cross-references. A role whose target does not exist in the package is a broken
  reference: it is logged as a warning, which fails ``mkdocs build --strict``. A target
  that exists but is not in the rendered API reference (an internal module) stays code.
* ``text::`` followed by an indented block, any other indented block and doctest
  blocks become fenced code (``pycon`` for ``>>>`` sessions), as reST shows them.
* reST simple tables (``=====  =====`` borders) become Markdown tables.

It also gives griffe what static analysis cannot see: the optimizer classes and functions
that ``ravine.torch.optimizers``, ``ravine.numpy`` and ``ravine.jax`` build at import time
from the registry (``Adam = _optimizer_class(registry.ADAM)``) are read from the imported
modules (``runtime_modules`` in mkdocs.yml), with their generated docstrings and
signatures.
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import logging
import re
import textwrap
from typing import Any

import griffe

_log = logging.getLogger("mkdocs.plugins.ravine.docstrings")
"""Under ``mkdocs``: MkDocs counts its warnings, and ``--strict`` fails on them."""

ROLE = re.compile(r":(?:mod|func|class|data|attr|meth|exc|obj):`(~?)([^`<]+?)(?:\s*<([^`>]+)>)?`")
"""``:kind:`target```, ``:kind:`~target``` (show the last name) or ``:kind:`title <target>```."""
CALLABLE_ROLE = re.compile(r"^:(?:func|meth):")
TABLE_BORDER = re.compile(r"^=+( +=+)+ *$")
FENCE_LANGUAGE = {True: "pycon", False: "text"}


class RavineDocstrings(griffe.Extension):
    """Rewrite every docstring of the package; add the objects built at import time."""

    def __init__(self, runtime_modules: list[str] | None = None) -> None:
        super().__init__()
        self.runtime_modules = runtime_modules or []

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for path in self.runtime_modules:
            _add_runtime_objects(pkg.modules_collection[path], importlib.import_module(path))
        for obj in _walk(pkg):
            if obj.docstring is not None:
                obj.docstring.value = to_markdown(
                    obj.docstring.value, lambda target, o=obj: _resolve(o, target)
                )


def _walk(obj: griffe.Object) -> list[griffe.Object]:
    found = [obj]
    for member in obj.members.values():
        if not member.is_alias:
            found += _walk(member)
    return found


# ---------------------------------------------------------------- objects built at import time


def _add_runtime_objects(module: griffe.Module, runtime: Any) -> None:
    """Replace each attribute whose runtime value is a class or function with that object."""
    for name, member in list(module.members.items()):
        value = getattr(runtime, name, None)
        if member.is_alias or not member.is_attribute:
            continue
        if inspect.isclass(value):
            built: griffe.Object = _runtime_class(module, name, value, member)
        elif inspect.isfunction(value):
            built = griffe.Function(
                name,
                lineno=member.lineno,
                endlineno=member.endlineno,
                parameters=_parameters(inspect.signature(value)),
            )
        else:
            continue
        built.docstring = griffe.Docstring(inspect.getdoc(value) or "", parent=built)
        quoted = _quoted_rule_module(built.docstring.value)
        if quoted:
            built.extra["ravine"]["quotes"] = quoted
        module.set_member(name, built)
    if hasattr(runtime, "__all__"):  # static analysis cannot expand ``[..., *OPTIMIZERS]``
        module.exports = list(runtime.__all__)


def _runtime_class(module: griffe.Module, name: str, cls: type, static: Any) -> griffe.Class:
    bases = [griffe.ExprName(base.__name__, parent=module) for base in cls.__bases__]
    out = griffe.Class(name, lineno=static.lineno, endlineno=static.endlineno, bases=bases)
    init = griffe.Function("__init__", parameters=_parameters(inspect.signature(cls)))
    out.set_member("__init__", init)
    return out


def _quoted_rule_module(doc: str) -> str | None:
    """The rule module whose docstring ``doc`` quotes (``ravine._doc.class_doc`` does)."""
    from ravine.rules import SPECS

    for spec in SPECS:
        quoted = inspect.getdoc(importlib.import_module(spec.rule.__module__))
        if quoted and quoted in doc:
            return spec.rule.__module__
    return None


def _parameters(signature: inspect.Signature) -> griffe.Parameters:
    return griffe.Parameters(
        *(
            griffe.Parameter(
                p.name,
                kind=griffe.ParameterKind(p.kind.description),
                default=None if p.default is p.empty else repr(p.default),
            )
            for p in signature.parameters.values()
        )
    )


# ---------------------------------------------------------------- references


def _resolve(obj: griffe.Object, target: str) -> str | None:
    """The canonical path ``target`` names, seen from ``obj``'s docstring, or None."""
    found = _lookup(obj, target)
    if found is None:
        return _runtime_path(obj, target)
    try:
        return found.canonical_path
    except griffe.AliasResolutionError:
        return found.path


def _runtime_path(obj: griffe.Object, target: str) -> str | None:
    """Objects static analysis misses (``A, B = 1, 2``) exist at run time: no link, no error."""
    module, _, name = target.rpartition(".")
    if target.startswith("."):
        return None
    try:
        return target if module and hasattr(importlib.import_module(module), name) else None
    except ImportError:
        return None


def _lookup(obj: griffe.Object, target: str) -> Any:
    collection = obj.modules_collection
    if target.startswith("."):  # relative, as in a Python import, else Sphinx's suffix search
        dots = len(target) - len(target.lstrip("."))
        base: Any = obj.module if obj.module.is_init_module else obj.module.parent
        for _ in range(dots - 1):
            base = base.parent
        found = _member(base, target[dots:])
        if found is None:
            suffix = "." + target.lstrip(".")
            found = next((o for o in _walk(obj.package) if o.path.endswith(suffix)), None)
        return found
    head = target.split(".")[0]
    if head in collection.members:
        return _member(collection, target)
    scopes: list[Any] = []
    scope: Any = obj
    while scope is not None:  # a name seen from the docstring's scope, inner to outer
        scopes.append(scope)
        scope = scope.parent
    quoted = obj.extra.get("ravine", {}).get("quotes")  # a docstring quoting a module's
    if quoted:
        scopes.append(collection[quoted])
    for scope in scopes:
        if head in scope.members:
            return _member(scope, target)
    return None


def _member(base: Any, dotted: str) -> Any:
    found = base
    for part in dotted.split("."):
        try:
            members = found.target.members if getattr(found, "is_alias", False) else found.members
            found = members[part]
        except (KeyError, griffe.AliasResolutionError):
            return None
    return found


# ---------------------------------------------------------------- text


def to_markdown(text: str, resolve: Any) -> str:
    """``text`` (a cleaned docstring) as Markdown; ``resolve(target)`` finds a role's path."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    in_list = False
    while i < len(lines):
        line = lines[i]
        after_blank = i == 0 or not lines[i - 1].strip()
        if TABLE_BORDER.match(line):
            i = _table(lines, i, out, resolve)
        elif line.startswith(">>>"):
            i = _block(lines, i, out, indented=False)
        elif line.startswith("    ") and after_blank and not in_list:
            i = _block(lines, i, out, indented=True)
        else:
            if line.strip():
                starts_item = re.match(r"^\s*([*-]|\d+\.)\s", line) is not None
                in_list = starts_item or (in_list and line.startswith(" "))
            elif i + 1 < len(lines) and not lines[i + 1].startswith(" "):
                in_list = False
            out.append(_inline(_literal_marker(line), resolve))
            i += 1
    return "\n".join(out)


def _literal_marker(line: str) -> str:
    """reST's ``text::`` announces a literal block: Markdown shows ``text:``."""
    if line.strip() == "::":
        return ""
    return line[:-1] if line.endswith("::") else line


def _block(lines: list[str], i: int, out: list[str], *, indented: bool) -> int:
    """A fenced copy of the code block starting at ``lines[i]``; returns the next index."""
    j = i
    while j < len(lines) and (
        (indented and (lines[j].startswith("    ") or not lines[j].strip()))
        or (not indented and lines[j].strip())
    ):
        j += 1
    block = textwrap.dedent("\n".join(lines[i:j])).strip("\n")
    out += [f"```{FENCE_LANGUAGE[block.startswith('>>>')]}", block, "```", ""]
    return j


def _table(lines: list[str], i: int, out: list[str], resolve: Any) -> int:
    """A reST simple table (border, header, border, rows, border) as a Markdown table."""
    spans = [m.span() for m in re.finditer(r"=+", lines[i])]

    def cells(row: str) -> list[str]:
        bounds = [*(start for start, _ in spans), None]
        return [_inline(row[a:b].strip(), resolve) for a, b in itertools.pairwise(bounds)]

    rows: list[list[str]] = []
    borders = 0
    j = i
    while j < len(lines) and borders < 3:
        if TABLE_BORDER.match(lines[j]):
            borders += 1
            if borders == 2:
                rows.append(["---"] * len(spans))
        elif lines[j].strip():
            rows.append(cells(lines[j]))
        j += 1
    out += ["| " + " | ".join(row) + " |" for row in rows]
    out.append("")
    return j


def _inline(line: str, resolve: Any) -> str:
    def reference(m: re.Match[str]) -> str:
        tilde, first, explicit = m.groups()
        target = (explicit or first).strip()
        title = first.strip() if explicit else target.lstrip(".")
        if tilde:
            title = title.split(".")[-1]
        if CALLABLE_ROLE.match(m.group(0)) and not explicit:
            title += "()"
        path = resolve(target)
        if path is None:
            _log.warning("docstring reference to %r: no such object in the package", target)
            return f"<code>{title}</code>"
        return f'<autoref identifier="{path}" optional><code>{title}</code></autoref>'

    return ROLE.sub(reference, line)
