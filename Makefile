# The two set-up commands are `make demo` and `make test`; both create .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-outbox bench-shadow bench-profile clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/strangler demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/strangler istio render --check

bench: $(STAMP)
	bench/setup.sh
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python bench/run.py
	$(BIN)/python bench/outbox.py
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python bench/shadow.py

bench-outbox: $(STAMP)
	$(BIN)/python bench/outbox.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

bench-shadow: $(STAMP)
	bench/setup.sh
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python bench/shadow.py

bench-profile: $(STAMP)
	bench/setup.sh
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python bench/profile.py
