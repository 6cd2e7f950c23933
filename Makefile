# The two commands of the README:
#   make book   every chapter at the quick profile, then the HTML book in _build/html
#   make test   unit tests, every chapter at the smoke profile through the CLI, nbval on the results
# Each creates or updates .venv first, so a fresh clone needs nothing else.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.advxai-installed
SMOKE_DIR := build/smoke
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

.PHONY: install test unit smoke nbval book clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_PINS)
	$(BIN)/python -m pip install --quiet -e ".[book,test]" $(TORCH_PINS)
	touch $(STAMP)

install: $(STAMP)

test: unit smoke nbval

unit: $(STAMP)
	$(BIN)/python -m pytest tests -q

# Offline on purpose: the guard makes any non-local connection fail the run.
smoke: $(STAMP)
	rm -rf $(SMOKE_DIR)
	ADVXAI_FORBID_NETWORK=1 $(BIN)/advxai run all --profile smoke --output-dir $(SMOKE_DIR)

nbval: $(STAMP)
	cd $(SMOKE_DIR) && ADVXAI_FORBID_NETWORK=1 ../../$(BIN)/python -m pytest -q -p no:cacheprovider \
		--nbval-lax --nbval-current-env --nbval-sanitize-with ../../tests/nbval_sanitize.cfg \
		--rootdir . *.ipynb

book: $(STAMP)
	$(BIN)/advxai book
	test -f _build/html/index.html

clean:
	rm -rf _build build book/*.ipynb book/*.metrics.json
