# The two set-up commands are `make demo` and `make test`; both create .venv when missing
# and install the Debian packages they need (scripts/system-deps.sh; as root, or it says
# the apt-get command to run).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEPS := PYTHON=$(PYTHON) bash scripts/system-deps.sh

.PHONY: demo test native lint bench bench-outbox bench-eventstore bench-saga bench-shadow bench-profile bench-soak clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || { $(DEPS) venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The request path compiled to native code with mypyc (gateway/native.py); a no-op when the
# builds are current.  Without it the same code runs as Python.
native: $(STAMP)
	$(DEPS) native
	$(BIN)/python scripts/compile.py

demo: $(STAMP) native
	$(BIN)/python -m examples.demo

test: $(STAMP) native
	$(DEPS) test
	STRANGLER_NATIVE=required $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python scripts/check_cycles.py
	$(BIN)/strangler istio render --check

bench: $(STAMP) native
	$(DEPS) bench
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python bench/run.py
	$(BIN)/python bench/outbox.py
	$(BIN)/python bench/eventstore.py
	$(BIN)/python bench/saga.py
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python bench/shadow.py

bench-outbox: $(STAMP)
	$(BIN)/python bench/outbox.py

# A short run: DURATION=3 READ_EVENTS=50000 make bench-eventstore
bench-eventstore: $(STAMP)
	$(BIN)/python bench/eventstore.py

# A short run: CHECKOUTS=500 SERIAL=10 make bench-saga
bench-saga: $(STAMP)
	$(BIN)/python bench/saga.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
	python3 scripts/compile.py --clean

bench-shadow: $(STAMP) native
	$(DEPS) bench
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python bench/shadow.py

bench-profile: $(STAMP) native
	$(DEPS) bench
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python bench/profile.py

# A 30-minute soak (memory, failures, lost events under reloads and backend restarts);
# e.g. make bench-soak SOAK_ARGS="--minutes 3 --rate 100".
bench-soak: $(STAMP)
	$(BIN)/python bench/soak.py $(SOAK_ARGS)
