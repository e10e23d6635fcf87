# Two commands on a fresh machine: `make run` and `make test`. Both create .venv when missing
# and (re)install the project into it whenever pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/p2pnode $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check protocol p2pnode tui tests bench

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/sync.py
	$(BIN)/python bench/convergence.py
	$(BIN)/python bench/queries.py
	$(BIN)/python bench/discovery.py
	$(BIN)/python bench/transfer.py
	$(BIN)/python bench/idle.py
	$(BIN)/python bench/swarm.py
	$(BIN)/python bench/app_speed.py

clean:
	rm -rf $(VENV) .pytest_cache
