# Every target creates .venv when it is missing and installs the project into it.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench gpu-check clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch and torchvision first, at the versions of constraints.txt, so pip takes the wheels this kind of machine has on disk
	$(BIN)/python -m pip install -q -c constraints.txt torch torchvision
	# the tested versions of everything else (constraints.txt), so numbers match the README's
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/attnmel sweep run experiments/demo.yaml --unique --figures

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/data_throughput.py
	$(BIN)/python benchmarks/train_throughput.py

# On a GPU machine: every part of python -m benchmarks.gpu (docs/gpu_check.md); within 8 minutes on an H200
gpu-check: $(STAMP)
	$(BIN)/python -m benchmarks.gpu --data ../shared/isic2017 --out results/gpu_check

clean:
	rm -rf $(VENV) build *.egg-info
