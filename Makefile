# The two commands of the README: `make demo` and `make test`. Both install into .venv/ first.
VENV := .venv
PY := $(VENV)/bin/python
export OMP_NUM_THREADS := 1
export HF_HUB_OFFLINE := 1

.PHONY: install demo test pytest lint typecheck wheel-check bench

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/install.sh
	bash scripts/install.sh

demo: install
	$(VENV)/bin/mcphive demo

test: install
	$(PY) -m pytest -W error; rc=$$?; [ $$rc -ne 5 ] || echo "pytest collected no tests" >&2; exit $$rc

lint: install
	$(VENV)/bin/ruff check mcphive tests benchmarks examples
	$(VENV)/bin/ruff format --check mcphive tests benchmarks examples

typecheck: install
	$(VENV)/bin/mypy mcphive

wheel-check: install
	bash scripts/check_wheel.sh

bench: install
	$(PY) benchmarks/orchestration_overhead.py
	$(PY) benchmarks/cli_startup.py
	$(PY) benchmarks/mcp_latency.py
	bash scripts/conformance.sh
