# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint format system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

system-deps:
	sh scripts/install-system-deps

demo: system-deps $(STAMP)
	$(BIN)/daemon1521 demo

test: system-deps $(STAMP)
	$(BIN)/ruff check daemon1521 tests benchmarks
	$(BIN)/ruff format --check daemon1521 tests benchmarks
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check daemon1521 tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format daemon1521 tests benchmarks
	$(BIN)/ruff check --fix daemon1521 tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
