"""The documentation is the code's: generated tables, a strict site build, a front-door README.

* Every block between ``<!-- generated: … -->`` markers equals what ``make docs`` writes
  from the registry, and each optimizer's page has its blocks.
* The site (mkdocs.yml) builds with ``mkdocs build --strict``: a broken link or anchor, a
  docstring reference to an object that does not exist, LaTeX that does not render or a
  page left out of the navigation fails it. The built pages load nothing from the network.
* The README stays a front door (≤ 8 KB, its links live), and what it used to say lives
  on in the site's pages.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ravine import _doc
from ravine._doc import conventions_table, optimizers_table, page, refresh
from ravine.rules import SPECS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MARKDOWN = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def _generated(path: Path, name: str) -> str:
    text = path.read_text(encoding="utf-8")
    match = re.search(rf"<!-- generated: {name} -->\n(.*?)\n<!-- end generated -->", text, re.S)
    assert match, f"{path.name} has no generated {name} block"
    return match.group(1)


@pytest.mark.parametrize(
    ("path", "name", "table"),
    [
        ("docs/optimizers/index.md", "optimizers", optimizers_table),
        ("docs/conventions.md", "conventions", conventions_table),
    ],
)
def test_generated_tables_are_current(path, name, table):
    assert _generated(ROOT / path, name) == table(SPECS), f"regenerate with `make docs` ({path})"


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_generated_block_is_current(path):
    text = path.read_text(encoding="utf-8")
    assert refresh(text, SPECS) == text, f"regenerate with `make docs` ({path.name})"


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_each_optimizer_page_shows_the_registry(spec):
    text = (DOCS / "optimizers" / page(spec.name)).read_text(encoding="utf-8")
    for block in _doc.GENERATED_FOR_ONE:
        assert f"<!-- generated: {block} {spec.name} -->" in text, (spec.name, block)
    assert "$$" in text, f"{spec.name}'s page shows no formula"
    figure = f"figures/{page(spec.name).replace('.md', '.png')}"
    assert f"]({figure})" in text and (DOCS / "optimizers" / figure).is_file(), figure


def test_generated_blocks_survive_an_empty_body():
    """A block written empty (a new page) is filled, and never swallows the next one."""
    text = (
        "<!-- generated: summary SGD -->\n<!-- end generated -->\nkept\n"
        "<!-- generated: recurrence SGD -->\nstale\n<!-- end generated -->\n"
    )
    out = refresh(text, SPECS)
    assert "\nkept\n" in out and "stale" not in out and out.count("end generated") == 2
    assert refresh(out, SPECS) == out


def test_every_class_docstring_shows_its_recurrence():
    import ravine.numpy as rn
    import ravine.torch as rt

    for spec in SPECS:
        for cls in (rn.OPTIMIZERS[spec.name], rt.OPTIMIZERS[spec.name]):
            doc = cls.__doc__ or ""
            assert spec.variant in doc and "direction" in doc and "Arguments" in doc


# ---------------------------------------------------------------- the site


def test_site_builds_strictly_and_works_offline(tmp_path):
    """One build (the suite runs on several workers: a fixture would build once per worker)."""
    site = _build(tmp_path)
    _has_every_page(site)
    _loads_nothing_from_the_network(site)
    _renders_formulas_to_mathml(site)
    _renders_the_docstrings(site)
    _includes_the_readme_sections(site)


def _build(out: Path) -> Path:
    """The site, built as ``make docs`` builds it (strict), into ``out``."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return out


def _html(site: Path, path: str) -> str:
    return (site / path).read_text(encoding="utf-8")


def _has_every_page(site: Path) -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = re.findall(r"^\s*-\s+(?:[^:\n]+:\s+)?([\w/.-]+\.md)\s*$", config, re.M)
    expected = {f"optimizers/{page(s.name)}" for s in SPECS} | {
        f"api/{module}.md" for module in ("torch", "numpy", "rules", "lab", "jax")
    }
    assert expected <= set(nav), expected - set(nav)
    for source in nav:
        assert (site / source.replace(".md", ".html")).is_file(), source


EXTERNAL_LOAD = re.compile(
    r"<(?:script|img|iframe|source|audio|video|embed)\b[^>]*\bsrc\s*=\s*[\"']?(?:https?:)?//"
    r"|<link\b[^>]*\bhref\s*=\s*[\"']?(?:https?:)?//"
    r"|@import\s+(?:url\()?[\"']?(?:https?:)?//"
    r"|url\(\s*[\"']?(?:https?:)?//",
    re.I,
)
"""Anything a page would fetch from another host: scripts, images, styles, fonts."""


def _loads_nothing_from_the_network(site: Path) -> None:
    files = [*site.rglob("*.html"), *site.rglob("*.css")]
    assert files
    offenders = {
        str(f.relative_to(site)): m[0]
        for f in files
        if (m := EXTERNAL_LOAD.search(f.read_text(encoding="utf-8", errors="replace")))
    }
    assert not offenders, offenders


def _renders_formulas_to_mathml(site: Path) -> None:
    for spec in SPECS:
        html = _html(site, f"optimizers/{page(spec.name).replace('.md', '.html')}")
        prose = re.sub(r"<(pre|code)\b.*?</\1>", "", html, flags=re.S)
        assert "<math" in html and "$$" not in prose and "\\frac" not in prose, spec.name


def _renders_the_docstrings(site: Path) -> None:
    torch_api = _html(site, "api/torch.html")
    for spec in SPECS:
        assert f'id="ravine.torch.{spec.name}"' in torch_api, spec.name
    assert "m ← β·m + (1 − β)·g" in torch_api  # Adam's recurrence, from its docstring
    assert "<th>argument</th>" in torch_api  # the arguments table of the class docstrings
    for module in ("torch", "numpy", "rules", "lab", "jax"):
        html = _html(site, f"api/{module}.html")
        leftover = re.search(r":(?:mod|func|class|data|attr|meth):`", html)
        assert leftover is None, f"api/{module}.html: unconverted reST role {leftover[0]!r}"


def _includes_the_readme_sections(site: Path) -> None:
    """The training example and the speed table are the README's, included (one copy)."""
    assert "CosineAnnealingLR" in _html(site, "getting-started.html")
    assert "B: 2000 × 2048" in _html(site, "speed.html")


# ---------------------------------------------------------------- the build's helpers


def _tool(name: str):
    """A module of tools/docs/ (the site's build helpers; not a package)."""
    spec = importlib.util.spec_from_file_location(
        f"docs_{name}", ROOT / "tools/docs" / f"{name}.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_latex_becomes_mathml_and_code_stays_code(caplog):
    import markdown

    md = markdown.Markdown(extensions=[_tool("texmath").TexMath()])
    html = md.convert("Inline $\\hat{m}_t$, `$HOME`, $5 and $6.\n\n$$\n\\frac{a}{b}\n$$\n")
    assert html.count("<math") == 2 and 'display="block"' in html and "<mfrac>" in html
    assert "<code>$HOME</code>" in html and "$5 and $6" in html
    assert "&#x002C6;" in html  # the hat is an accent, not a free-standing ^
    with caplog.at_level("WARNING", logger="mkdocs.plugins.ravine.texmath"):
        md.convert("$\\frac{a}$ and $\\nosuchcommand x$")
    assert len(caplog.records) == 2  # a warning each: `mkdocs build --strict` fails


def test_docstrings_become_markdown(caplog):
    to_markdown = _tool("docstrings").to_markdown
    paths = {"run": "ravine.lab.run.run"}
    text = "\n".join(
        [
            "Calls :func:`run` and :class:`~ravine.lab.run.Trajectory`, one step is::",
            "",
            "    m ← β·m",
            "",
            ">>> 1 + 1",
            "2",
            "",
            "* a list item",
            "",
            "    continued, not code",
            "",
            "===  =====",
            "a    b",
            "===  =====",
            "1    two",
            "===  =====",
        ]
    )
    out = to_markdown(text, lambda target: paths.get(target, target if "." in target else None))
    assert '<autoref identifier="ravine.lab.run.run" optional><code>run()</code></autoref>' in out
    assert "<code>Trajectory</code></autoref>, one step is:\n" in out
    assert "```text\nm ← β·m\n```" in out and "```pycon\n>>> 1 + 1\n2\n```" in out
    assert "    continued, not code" in out
    assert "| a | b |\n| --- | --- |\n| 1 | two |" in out
    with caplog.at_level("WARNING", logger="mkdocs.plugins.ravine.docstrings"):
        assert (
            to_markdown("See :func:`nowhere`.", lambda target: None)
            == "See <code>nowhere()</code>."
        )
    assert "nowhere" in caplog.text  # a reference to nothing fails `mkdocs build --strict`


# ---------------------------------------------------------------- the README

README = ROOT / "README.md"

SITE_PAGES_LINKED = [
    "docs/getting-started.md",
    "docs/optimizers/index.md",
    "docs/conventions.md",
    "docs/speed.md",
    "docs/reliability.md",
    "docs/distributed.md",
    "docs/lab.md",
    "docs/explore.md",
    "docs/results.md",
    "docs/jax.md",
    "docs/architecture.md",
    "docs/testing.md",
    "docs/api/index.md",
]


def test_readme_is_a_front_door():
    text = README.read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) <= 8 * 1024
    assert "make demo" in text and "make test" in text
    assert re.search(r"```python\n.*from ravine\.torch import Adam.*opt\.step\(\)", text, re.S)
    assert "| workload | Adam |" in text  # the headline speed table
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert images and all((ROOT / image).is_file() for image in images), images
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert all((ROOT / link).exists() for link in links if "://" not in link), links
    missing = [p for p in SITE_PAGES_LINKED if f"]({p})" not in text]
    assert not missing, f"the README links no {missing}"


MOVED = {
    "docs/getting-started.md": [
        "Three differences: hyperparameters after `lr` are keyword-only",
        "`OneCycleLR`/`CyclicLR` need `cycle_momentum=False`",
        "`opt.replace(lr=…)` changes a\nhyperparameter",
        "`ravine lab report --out DIR` writes the report alone",
        "examples/train_torch.py",
    ],
    "docs/speed.md": [
        '| `fused="triton"` | the Triton kernels on any device',
        "`opt.fallbacks` counts them",
        "`RAVINE_WALK=python`",
        "No fused step allocates parameter-sized temporaries.",
    ],
    "docs/reliability.md": [
        '`"skip"` | change nothing',
        "fuzzed with 200 random corruptions",
        "`ravine.torch.from_torch(torch_opt)`",
        "`SGD` and `Adagrad` accept sparse gradients",
        "`ravine.torch.checkpoint.save` writes atomically",
    ],
    "docs/optimizers/nag.md": [
        "with opt.swap_to_theta():",
        '`lookahead="momentum"` looks ahead by β·lr·m instead',
    ],
    "docs/optimizers/index.md": [
        "38 configurations, largest relative\nparameter error 1.6e-15",
        "Every optimizer also takes `weight_decay=0.0`",
    ],
    "docs/conventions.md": ["## Choices where the seed is silent", "| NormalizedGD's norm |"],
    "docs/architecture.md": ["cli.py          the `ravine` command", "Data flows one way"],
    "docs/testing.md": [
        "hand-computed first two steps of every rule",
        "Tolerances live in one table in `tests/conftest.py`",
    ],
    "docs/explore.md": ["equals `ravine.numpy`", "The address is the view."],
    "docs/results.md": ["ravine train kingma-fig1", "ravine train zeiler --quick"],
}
"""What the README said before it became a front door, and the page that says it now."""


@pytest.mark.parametrize("path", MOVED)
def test_what_the_readme_said_lives_on_in_the_site(path):
    text = (ROOT / path).read_text(encoding="utf-8")
    missing = [passage for passage in MOVED[path] if passage not in text]
    assert not missing, f"{path} no longer says {missing}"
