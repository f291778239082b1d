VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
CHROMIUM := /usr/bin/chromium

.PHONY: run run-fresh test lint venv clean bench bench-quick chaos soak fuzz

$(BIN)/presence: pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet -e ./clients/python  # the Python SDK (presence_client)
	touch $@

venv: $(BIN)/presence

run: venv  ## Apache Kafka + processor + edge until Ctrl-C; Kafka's log stays in .presence/ across runs
	$(BIN)/presence up

run-fresh: venv  ## as `make run`, from an empty log (deletes .presence/kafka first)
	$(BIN)/presence up --fresh

test: venv $(CHROMIUM)  ## the whole suite, integration included; starts its own Apache Kafka
	$(BIN)/python -m pytest

# The browser tests drive Debian's chromium; installed here when missing (needs root, as in CI).
$(CHROMIUM):
	DEBIAN_FRONTEND=noninteractive apt-get install -y chromium || \
	  (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

bench: venv  ## the benchmark of issue 4 at reference sizes (bounded, up to ~25 min); bench/results/, docs/benchmarks.md
	$(BIN)/python -m bench.run

bench-quick: venv  ## the same workloads at small sizes, under 2 minutes
	$(BIN)/python -m bench.run --quick

chaos: venv  ## the long fault suite: kill -9 of the processor under load, ghosts (CHAOS_* sizes; about 4 min; docs/reliability.md)
	$(BIN)/python -m pytest -m chaos tests/chaos

soak: venv  ## churn soak: memory of edge and worker stays flat, typing expires (SOAK_MINUTES=5; about 6 min)
	$(BIN)/python -m pytest -m soak tests/chaos

fuzz: venv  ## the WebSocket fuzz of issue 5, large: 12000 hostile frames, at most 5 min of attack (about 3 min)
	PRESENCE_FUZZ_FRAMES=$${PRESENCE_FUZZ_FRAMES:-12000} PRESENCE_FUZZ_SECONDS=$${PRESENCE_FUZZ_SECONDS:-300} \
	PRESENCE_FUZZ_CONNECTIONS=$${PRESENCE_FUZZ_CONNECTIONS:-8} $(BIN)/python -m pytest -s tests/integration/test_ws_fuzz.py

lint: venv
	$(BIN)/ruff check schemas streams services tests bench clients
	$(BIN)/mypy --strict schemas streams services clients

clean:  ## the virtualenv and caches; Kafka's jars (.cache/) and log (.presence/) stay
	rm -rf $(VENV) .pytest_cache .mypy_cache
