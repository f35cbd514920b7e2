# Two commands for a fresh machine:
#   make demo   set up .venv and train the embedded synthetic default on CPU
#   make test   set up .venv and run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
HVD_STAMP := $(VENV)/.installed-horovod
# Horovod (the `horovod` extra) built against the CPU mxnet wheel with Gloo; its cmake step imports mxnet
HOROVOD_ENV := HOROVOD_WITH_MXNET=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1 \
	HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 HOROVOD_CPU_OPERATIONS=gloo

.PHONY: demo test venv clean netns-tools

$(STAMP): setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e ".[cpu,test]"
	touch $(STAMP)

$(HVD_STAMP): $(STAMP)
	$(PIP) install -q wheel
	$(HOROVOD_ENV) $(PIP) install -q --no-build-isolation -c constraints.txt -e ".[horovod]"
	touch $(HVD_STAMP)

venv: $(STAMP)

# one compute thread: the config's loader process has the other core of a 2-core machine
demo: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) scripts/train_mshrnet.py

# the multi-host test bed (tests/test_netns.py) drops packets with nftables; as root, install it if missing
netns-tools:
	@command -v nft >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -q >/dev/null && apt-get install -y -q nftables >/dev/null; } \
		|| echo "warning: nft not found and not root: tests/test_netns.py will fail (apt-get install nftables)"

test: $(HVD_STAMP) netns-tools
	OMP_NUM_THREADS=2 $(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) work_dirs
