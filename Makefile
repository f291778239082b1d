VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: run test lint venv clean bench bench-quick

$(BIN)/presence: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/presence

run: venv  ## broker + processor + edge until Ctrl-C
	$(BIN)/presence up

test: venv  ## the whole suite, integration included; starts its own broker
	$(BIN)/python -m pytest

bench: venv  ## the benchmark of issue 4 at reference sizes (bounded, up to ~25 min); bench/results/, docs/benchmarks.md
	$(BIN)/python -m bench.run

bench-quick: venv  ## the same workloads at small sizes, under 2 minutes
	$(BIN)/python -m bench.run --quick

lint: venv
	$(BIN)/ruff check schemas streams services tests bench

clean:
	rm -rf $(VENV) .pytest_cache
