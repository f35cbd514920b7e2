# Two commands for a fresh machine:
#   make demo   set up .venv and train the embedded synthetic default on CPU
#   make test   set up .venv and run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: demo test venv clean

$(STAMP): setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e ".[cpu,test]"
	touch $(STAMP)

venv: $(STAMP)

# one compute thread: the config's loader process has the other core of a 2-core machine
demo: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) scripts/train_mshrnet.py

test: $(STAMP)
	OMP_NUM_THREADS=2 $(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) work_dirs
