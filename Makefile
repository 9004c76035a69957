# Kronicle: the two commands of the quick start are `make dev` and `make test`.
# Everything they need (virtualenv, Python packages, the Kafka jars) is set up
# by the targets below; nothing has to be installed by hand besides Python 3.11+,
# Java 17+ and Maven.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: dev test setup kafka lint format unit integration chaos bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Kronicle needs Python 3.11+"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev,bench]'
	touch $@

kafka: setup
	$(PY) -m kronicle kafka fetch

lint: setup
	$(PY) -m ruff check kronicle tests bench samples
	$(PY) -m ruff format --check kronicle tests bench samples
	$(PY) -m mypy
	$(PY) -m mypy samples

format: setup
	$(PY) -m ruff format kronicle tests bench samples
	$(PY) -m ruff check --fix kronicle tests bench samples

test: setup kafka lint
	$(PY) -m pytest $(PYTEST_ARGS)

unit: setup
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

integration: setup kafka
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

# The fault tests at full scale (thousands of workflows, many faults; 15-25 minutes), and a
# 100,000-event workflow (~1.5 minutes). `make test` runs the same tests bounded.
# The figures go to $(CHAOS_REPORT) for docs/reliability.md.
CHAOS_REPORT ?= chaos-report.txt
chaos: setup kafka
	KRONICLE_CHAOS_SCALE=long KRONICLE_CHAOS_REPORT=$(CHAOS_REPORT) $(PY) -m pytest tests/chaos tests/integration/workflow/test_long_history.py -s $(PYTEST_ARGS)

# Kronicle against the Temporal dev server on this machine (docs/benchmarks.md). The full run takes
# 20-25 minutes and rewrites bench/results/latest.json and the doc; QUICK=1 takes under 5 minutes
# and writes bench/results/quick.json only.
QUICK ?=
bench: setup kafka
ifeq ($(QUICK),)
	$(PY) -m bench.compare --out bench/results/latest.json
	$(PY) -m bench.report --results bench/results/latest.json
else
	$(PY) -m bench.compare --quick --out bench/results/quick.json
	$(PY) -m bench.report --results bench/results/quick.json --stdout
endif

dev: setup kafka
	$(PY) -m kronicle server start-dev --demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache deploy/kafka/target
