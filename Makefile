# pdeop: the two set-up commands of the README.
#   make demo  - set up everything, then generate -> train -> evaluate -> plot on a small default
#   make test  - set up everything, then run the test suite
# Both are idempotent: set-up is skipped while setup.py and csrc/ are unchanged, and the demo reuses
# its finished dataset and run.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.pdeop-setup
DEMO   := demo

.PHONY: setup demo test clean-demo

setup: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first (the CPU wheel on this machine's disk), then pdeop without build isolation so that the
# C++ extension compiles against that torch.
$(STAMP): setup.py $(wildcard csrc/*) | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet --no-build-isolation -e '.[test]'
	$(BIN)/python -c "import operators.kernels as k; print('pdeop kernels backend:', k.backend())"
	touch $@

# generate a small Navier-Stokes nu = 1e-3 set (the fno preset on a 64^2 internal grid, stored at 32^2),
# train the quick FNO on it (10 steps in, 10 out), evaluate on the test split, and plot.
demo: $(STAMP)
	$(BIN)/pdeop generate navier-stokes --preset fno --samples 72 --set internal_resolution=64 \
		--set resolution=32 --set dt=4e-3 --set T=20 --out $(DEMO)/ns.h5
	$(BIN)/pdeop info $(DEMO)/ns.h5
	$(BIN)/pdeop train configs/train/fno_ns_quick.yaml --set data.path=$(DEMO)/ns.h5 --out $(DEMO)/fno \
		--threads 1 $$(test -f $(DEMO)/fno/run_config.json && echo --resume)
	$(BIN)/pdeop evaluate $(DEMO)/fno --data $(DEMO)/ns.h5
	$(BIN)/pdeop plot $(DEMO)/fno
	@echo "demo done: metrics in $(DEMO)/fno/metrics.json, plots in $(DEMO)/fno/plots/"

test: $(STAMP)
	$(BIN)/python -m pytest

clean-demo:
	rm -rf $(DEMO)
