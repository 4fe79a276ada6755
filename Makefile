# Quick start: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-test
DEMO_STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade 'pip>=25.1' setuptools wheel

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# The test needs are a PEP 735 dependency group (not a user extra): `--group` needs pip >= 25.1,
# so an older venv's pip is upgraded first.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade 'pip>=25.1'
	$(BIN)/python -m pip install --quiet -e . --group test
	touch $@ $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/crownguard demo

test: $(STAMP) lint typecheck unit

# The suite runs on JOBS processes (pytest-xdist), a test file each at a time, so a module's
# fixtures stay in one process; each process starts its own PostgreSQL and Redis when a test
# needs them. `make unit JOBS=0` runs it in one process.
JOBS ?= 2
unit: $(STAMP)
	$(BIN)/python -m pytest -q -n $(JOBS) --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check engine plugins tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy engine plugins

# Every benchmark. Prefect, the reference of bench_journal_speed.py, is the `bench` group:
# `$(BIN)/python -m pip install --group bench` (or PREFECT_PYTHON=/path/to/python with it).
PREFECT_PYTHON ?= $(BIN)/python
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_engine.py
	$(BIN)/python benchmarks/bench_journal.py
	$(BIN)/python benchmarks/bench_journal_speed.py --start-postgres --prefect-python $(PREFECT_PYTHON)
	$(BIN)/python benchmarks/bench_triage.py
	if command -v valgrind >/dev/null; then $(BIN)/python benchmarks/triage_instructions.py --stages; \
	else echo "triage_instructions.py skipped: it counts with valgrind (apt-get install valgrind)"; fi
	$(BIN)/python benchmarks/bench_content_fetch.py
	$(BIN)/python benchmarks/bench_resume_all.py
	$(BIN)/python benchmarks/bench_service.py
	$(BIN)/python benchmarks/bench_workers.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .hypothesis
