# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: run test lint data browser bench clean

# The virtual environment, with weightlab and its test tools installed into it.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# MNIST, verified and cached (a no-op once the cache holds it).
data: $(STAMP)
	$(BIN)/weightlab data fetch mnist

# Debian's Chromium, for the test that opens reports in a real browser (skipped without it).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; } \
		|| echo "chromium could not be installed: the browser test will be skipped"

run: data
	$(BIN)/weightlab run $(ARGS)

# One formatter, one linter, one type checker (on the public API); configured in pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

test: lint data browser
	$(BIN)/python -m pytest -q $(ARGS)

bench: data
	$(BIN)/python benchmarks/bench.py $(ARGS)

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
