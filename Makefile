# Two commands set up everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck browser format docs bench clean

$(STAMP): requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e . \
		|| $(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)  ## the seed's valley: a table, figures and the lab's HTML report (~40 s)
	$(BIN)/ravine demo

lint: $(STAMP)
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks

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
	$(BIN)/ruff format src tests examples benchmarks
	$(BIN)/ruff check --fix src tests examples benchmarks

bench: $(STAMP)  ## speed and memory vs torch.optim on workloads A, B, C (a few minutes)
	$(BIN)/python benchmarks/bench.py --json out/bench/bench.json

docs: $(STAMP)  ## regenerate the registry's tables in README.md and docs/
	$(BIN)/python -m ravine._doc README.md docs/conventions.md

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
