# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: run test data bench clean

# The virtual environment, with weightlab and its test tools installed into it.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# MNIST, verified and cached (a no-op once the cache holds it).
data: $(STAMP)
	$(BIN)/weightlab data fetch mnist

run: data
	$(BIN)/weightlab run $(ARGS)

test: data
	$(BIN)/python -m pytest -q $(ARGS)

bench: data
	$(BIN)/python benchmarks/bench.py $(ARGS)

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
