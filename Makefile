# lakeray: the two entry points of the README, plus the set-up they share.
# Everything a fresh machine needs is installed here; nothing is expected by hand.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lakeray-installed

.PHONY: install demo test bench clean

$(STAMP): requirements.txt requirements-dev.txt setup.py cluster/jvm/pom.xml cluster/install.sh
	bash cluster/install.sh
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/lakeray demo

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python benchmarks/ingest_prepare.py
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python benchmarks/train_distributed.py
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python benchmarks/tune_selection.py

clean:
	rm -rf $(VENV) .jars data
