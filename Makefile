# Two commands set up everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck browser format docs docs-screenshots bench bench-jax clean

$(STAMP): requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e . \
		|| $(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)  ## the seed's valley: a table, figures and the lab's HTML report (~40 s)
	$(BIN)/ravine demo

lint: $(STAMP)
	$(BIN)/ruff check src tests examples benchmarks tools
	$(BIN)/ruff format --check src tests examples benchmarks tools

typecheck: $(STAMP)
	$(BIN)/mypy

# The browser tests drive Debian's Chromium through Playwright (whose own browser download
# cannot work offline). As root, install it when it is missing; otherwise say that those
# tests will skip (-rs prints each skip's reason).
browser:
	@command -v chromium >/dev/null && exit 0; \
	if [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian's chromium for the browser tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
			|| echo "WARNING: apt-get install chromium failed: the browser tests will skip"; \
	else \
		echo "WARNING: chromium is missing and this is not root: the browser tests will skip" \
			"(sudo apt-get install -y chromium)"; \
	fi

test: lint typecheck browser  ## lint, format check, type check, then the test suite
	$(BIN)/python -m pytest -n 2 -rs

format: $(STAMP)
	$(BIN)/ruff format src tests examples benchmarks tools
	$(BIN)/ruff check --fix src tests examples benchmarks tools

bench: $(STAMP)  ## speed and memory vs torch.optim, then compact state vs bitsandbytes (~10 min)
	$(BIN)/python -m pip install --quiet -r requirements-bench.txt
	$(BIN)/python benchmarks/bench.py --json out/bench/bench.json
	$(BIN)/python benchmarks/state_bench.py --json out/bench/state.json

bench-jax: $(STAMP)  ## ravine.jax against optax under jit, workloads A and B (~7 min)
	$(BIN)/python benchmarks/jax_bench.py --json out/bench/jax_bench.json

# The site (mkdocs.yml): the registry's tables and the optimizer pages' lab figures are
# regenerated (both committed), then the site is built strictly: a warning fails it.
# `make test` builds it too (tests/test_docs.py), from the committed pages.
docs: $(STAMP)  ## regenerate the docs' tables and figures, build the site into out/site (~1 min)
	$(BIN)/python -m ravine._doc README.md docs/*.md docs/optimizers/*.md
	$(BIN)/python tools/docs/figures.py docs/optimizers/figures
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict

docs-screenshots: docs browser  ## the home page, an optimizer page and an API entry, in headless Chromium
	$(BIN)/python tools/docs/screenshots.py --site out/site --out out/docs-screenshots

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
