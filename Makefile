# Two commands do all set-up on a fresh machine:
#   make run    start the broker on its embedded default (./millpond-data, 127.0.0.1:9092)
#   make test   install everything (system packages included) and run the whole suite
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin

.PHONY: run test install system-deps bench-deps lint bench profile clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/millpond serve

system-deps:
	@command -v kcat >/dev/null 2>&1 || bash scripts/install-system-deps

lint: install
	$(BIN)/ruff check src tests bench fuzz
	$(BIN)/ruff format --check src tests bench fuzz
	$(BIN)/mypy

test: system-deps install lint
	$(BIN)/pytest

bench-deps:
	@command -v redis-server >/dev/null 2>&1 && command -v rabbitmq-server >/dev/null 2>&1 \
		|| bash scripts/install-bench-deps

# The whole benchmark suite against tansu, Redis and RabbitMQ (bench/README.md); about 30 min.
bench: install bench-deps
	$(BIN)/python -m bench

# py-spy flame graphs of the hot paths, written to bench/profiles/.
profile: install
	$(BIN)/python -m bench.profile

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
