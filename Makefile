# `make demo` and `make test` each do the whole set-up on a fresh machine, and are idempotent.
PYTHON ?= python3
VENV ?= .venv
# A CPU build of torch by default; on a machine with a GPU, e.g. TORCH_SPEC="torch==2.13.0" with
# PIP_EXTRA_INDEX_URL set to the wheel index for your CUDA version.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.purelearn-installed

.PHONY: demo test bench setup

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

demo: $(STAMP)
	$(BIN)/purelearn train examples/mnist5k-mlp.toml

# The report's browser test needs Debian's headless Chromium: installed here when missing, as root
# with apt-get; elsewhere that one test skips, saying so.
test: $(STAMP)
	@test -x /usr/bin/chromium || { test "$$(id -u)" = 0 && command -v apt-get >/dev/null && \
	  { apt-get install -y -qq chromium >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; }; }; } || true
	$(BIN)/python -m pytest -q

# By hand, about 20 minutes on 2 cores; figures go to benchmarks/RESULTS.md.
bench: $(STAMP)
	$(BIN)/python benchmarks/training_loop.py
	$(BIN)/python benchmarks/population.py
	$(BIN)/python benchmarks/store_overhead.py
	$(BIN)/python benchmarks/random_vs_grid.py
	$(BIN)/python benchmarks/random_vs_grid.py --shifted
	$(BIN)/python benchmarks/search_speed.py
	$(BIN)/python benchmarks/report_pictures.py
