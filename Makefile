# Two commands do all the set-up: `make demo` runs the whole lifecycle, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-unit test-integration lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m demo

lint: $(STAMP)
	$(BIN)/ruff check .

# Two processes, each running whole test files (module-scoped fixtures stay in one process).
test: lint
	$(BIN)/python -m pytest -n 2 --dist loadfile

test-unit: $(STAMP)
	$(BIN)/python -m pytest -m "not integration"

test-integration: $(STAMP)
	$(BIN)/python -m pytest -m integration

bench: $(STAMP)
	$(BIN)/python bench/dag_parse.py

clean:
	rm -rf var .pytest_cache .ruff_cache
