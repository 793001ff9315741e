# lakeray: the two entry points of the README, plus the set-up they share.
# Everything a fresh machine needs is installed here; nothing is expected by hand.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lakeray-installed

.PHONY: install demo test test-fast lint bench bench-install clean

$(STAMP): requirements.txt requirements-dev.txt setup.py cluster/jvm/pom.xml cluster/install.sh
	bash cluster/install.sh
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/lakeray demo

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# the pure and small tests only (marker `fast`: no JVM, no Ray, no PostgreSQL), a few minutes
test-fast: install
	$(BIN)/python -m pytest -m fast -q $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

# load generator (wrk, Debian) and Evidently in a virtualenv of its own, for the benchmarks only
EVIDENTLY := benchmarks/out/venv-evidently
bench-install: install
	command -v wrk >/dev/null || (DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk)
	test -x $(EVIDENTLY)/bin/python || $(PY) -m venv $(EVIDENTLY)
	$(EVIDENTLY)/bin/python -m pip install -q -r benchmarks/requirements-evidently.txt

bench: bench-install
	$(BIN)/python benchmarks/ingest_prepare.py
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python benchmarks/train_distributed.py
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python benchmarks/tune_selection.py
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python benchmarks/serve_throughput.py
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python benchmarks/serve_load.py
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python benchmarks/drift_job.py

clean:
	rm -rf $(VENV) .jars data
