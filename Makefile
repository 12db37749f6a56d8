# Two commands do all the set-up on a fresh machine (see README):
#   make demo   - create .venv, install, run the end-to-end demo on the built-in phantom data
#   make pretrained - the demo's pretrained phantom models (pretrained/, shipped; hours if their runs are absent)
#   make test   - create .venv, install, run the test suite (what .ci/run calls)
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# CPU build of PyTorch that lies on the development machines' disk; on a GPU machine install your CUDA build of
# torch into the venv first (any torch >= 2.2 satisfies pyproject.toml) and `make` will keep it.
TORCH   ?= torch==2.13.0

.PHONY: setup demo pretrained test test-fast benchmark performance brats

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/python pipelines/quickstart.py

pretrained: setup
	$(BIN)/python pipelines/pretrain_demo.py

test: setup
	bash .ci/install-browser.sh
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not dist and not browser and not slow"

benchmark: setup
	$(BIN)/python pipelines/phantom_benchmark.py

performance: setup
	$(BIN)/python pipelines/performance_report.py

brats: setup
	$(BIN)/python pipelines/brats.py --help
