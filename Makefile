VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: run test lint venv clean

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

lint: venv
	$(BIN)/ruff check schemas streams services tests

clean:
	rm -rf $(VENV) .pytest_cache
