# Set-up and the two main commands. `make demo` and `make test` create a local
# virtual environment (.venv) on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# A CPU build of torch; on a GPU machine use e.g. `make TORCH=torch==2.13.0 ...`
# with your CUDA index configured in pip.
TORCH ?= torch==2.13.0

.PHONY: install demo test lint clean

$(VENV)/.installed: setup.py
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# fairseq-fixed compiles against torch: install the build dependencies first and
	# build it without isolation, so pip does not pull a multi-GB CUDA torch
	$(PIP) install --quiet "$(TORCH)" setuptools wheel cython "numpy>=1.21.3"
	$(PIP) install --quiet --no-build-isolation fairseq-fixed==0.12.3.1
	# fairseq-fixed pulls an unpinned torchaudio built for another torch; it fails to load
	# (and breaks transformers' imports); fairseq's text tasks never use it
	$(PIP) uninstall --quiet --yes torchaudio
	$(PIP) install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) scripts/demo.py --out demo_out

test: $(VENV)/.installed
	$(PY) -m pytest -q tests

lint: $(VENV)/.installed
	$(VENV)/bin/flake8 --max-line-length 127 xlt_fairseq scripts tests

clean:
	rm -rf $(VENV) demo_out
