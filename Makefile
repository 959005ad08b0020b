# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=

# uv installs the lock; it is itself pinned and installed from PyPI beside the environment it manages.
UV_VERSION := 0.13.9
UV_HOME    := .uv
UV         := $(UV_HOME)/bin/uv
# The PyTorch extra is locked to the CPU build (a plain `torch` from PyPI is a multi-GB CUDA build);
# its wheels come from where pip is told to find local wheels ($PIP_FIND_LINKS, on machines that
# keep them on disk), or from the directory or index page you name: make torch TORCH_WHEELS=...
TORCH_VERSION := 2.13.0+cpu
TORCH_WHEELS  ?= $(firstword $(PIP_FIND_LINKS))
NEED_TORCH_WHEELS = @test -n "$(TORCH_WHEELS)" || { echo "make: name where torch $(TORCH_VERSION)'s CPU wheel is: make $@ TORCH_WHEELS=DIR_OR_INDEX_PAGE"; exit 2; }
LOCK_FLAGS := --generate-hashes --python-version 3.11 --custom-compile-command "make lock" --quiet

.PHONY: run test lint data browser kernels bench bench-scaling lock torch clean

$(UV):
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --target $(UV_HOME) 'uv==$(UV_VERSION)'

# The virtual environment: exactly the locked packages (anything else is removed), then weightlab
# itself, editable and without dependencies. Everything is compiled to bytecode once, here: where
# PYTHONDONTWRITEBYTECODE is set, nothing else ever writes it, and every run compiled JAX's, Keras's
# and TensorFlow's sources again (`weightlab run` 4.0 s against 2.3 s, measured).
$(STAMP): requirements.lock pyproject.toml | $(UV)
	test -x $(BIN)/python || $(UV) venv --quiet --python $(PYTHON) $(VENV)
	$(UV) pip sync --quiet --compile-bytecode --python $(BIN)/python --require-hashes requirements.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e .
	$(BIN)/python -m compileall -q src
	touch $(STAMP)

# Re-resolve the locks from pyproject.toml (after changing a dependency there), keeping every
# pin that still fits; `make lock LOCK_ARGS=--upgrade` moves everything to the newest versions.
lock: | $(UV)
	$(NEED_TORCH_WHEELS)
	$(UV) pip compile pyproject.toml --extra test --universal $(LOCK_FLAGS) $(LOCK_ARGS) -o requirements.lock
	echo 'torch==$(TORCH_VERSION)' | $(UV) pip compile pyproject.toml - --extra test --extra torch \
		--python-platform x86_64-manylinux_2_28 --find-links $(TORCH_WHEELS) -c requirements.lock \
		$(LOCK_FLAGS) $(LOCK_ARGS) -o requirements-torch.lock

# The PyTorch backend: the environment of requirements-torch.lock (the test lock plus torch's CPU build).
torch: $(STAMP)
	$(NEED_TORCH_WHEELS)
	$(UV) pip sync --quiet --compile-bytecode --python $(BIN)/python --require-hashes --find-links $(TORCH_WHEELS) requirements-torch.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e .

# MNIST, verified and cached (a no-op once the cache holds it).
data: $(STAMP)
	$(BIN)/weightlab data fetch mnist

# The fused Adam kernel (src/weightlab/kernels), compiled into the cache with the machine's C++
# compiler; Debian's g++ where there is none. Without it weightlab runs Keras's Adam: the same
# results, slower (a run would otherwise compile it on first use).
kernels: $(STAMP)
	@command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q g++ >/dev/null; } \
		|| echo "g++ could not be installed: weightlab will run Keras's Adam update"
	$(BIN)/python -m weightlab.kernels.build

# Debian's Chromium, for the test that opens reports in a real browser (skipped without it).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; } \
		|| echo "chromium could not be installed: the browser test will be skipped"

run: data kernels
	$(BIN)/weightlab run $(ARGS)

# One formatter, one linter, one type checker (on the public API); configured in pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

test: lint data browser kernels
	$(BIN)/python -m pytest -q $(ARGS)

# The side-by-side table (≈4 min on 2 cores at --repeats 3), the profile of one run (≈1 min) and the
# scaling tables (≈16 min at --repeats 3); each also goes to benchmarks/results/.
bench: data kernels
	$(BIN)/python benchmarks/bench.py $(ARGS)
	$(BIN)/python benchmarks/profile_run.py --repeats 3
	$(BIN)/python benchmarks/scaling.py --repeats 3

bench-scaling: data kernels
	$(BIN)/python benchmarks/scaling.py $(ARGS)

clean:
	rm -rf $(VENV) $(UV_HOME) build src/*.egg-info .pytest_cache
