# verinfer: one entry point for install, lint, test, demo and bench.
SHELL := /bin/bash
ROOT := $(abspath .)
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
SOLC_VERSION := 0.8.28
TOOLCHAIN := $(ROOT)/.toolchain
export SOLCX_BINARY_PATH := $(TOOLCHAIN)/solcx
export PATH := $(VENV)/bin:$(ROOT)/node_modules/.bin:$(PATH)
export APE_DATA_FOLDER ?= $(ROOT)/.toolchain/ape
# Slither has its own venv: its web3/eth-utils pins clash with ape's.
SLITHER_VENV := $(TOOLCHAIN)/slither-venv

.PHONY: install qemu env lint test demo bench clean

install: $(VENV)/.installed node_modules/.installed $(SOLCX_BINARY_PATH)/solc-v$(SOLC_VERSION) qemu

# qemu-user runs a relayer on an emulated CPU of another class (tests) and `models calibrate` across classes.
qemu:
	@command -v qemu-x86_64 >/dev/null || { test "$$(id -u)" = 0 && apt-get install -y -q qemu-user >/dev/null; } \
		|| { echo "qemu-x86_64 is missing: install Debian's qemu-user (apt-get install qemu-user)"; exit 1; }

$(VENV)/.installed: requirements.lock pyproject.toml
	@test -x $(PY) || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(SOLCX_BINARY_PATH)/solc-v$(SOLC_VERSION): tools/solc-shim.sh tools/solc-wrapper.js node_modules/.installed
	@mkdir -p $(SOLCX_BINARY_PATH)
	ln -sf $(ROOT)/tools/solc-shim.sh $@
	@$@ --version | grep -q "Version: $(SOLC_VERSION)"

$(SLITHER_VENV)/.installed: tools/slither/requirements.txt
	@test -x $(SLITHER_VENV)/bin/python || python3.11 -m venv $(SLITHER_VENV) || python3 -m venv $(SLITHER_VENV)
	$(SLITHER_VENV)/bin/pip install -q --disable-pip-version-check -r tools/slither/requirements.txt
	@touch $@

# Shell exports for running ape, anvil and pytest by hand: source <(make -s env)
env:
	@echo 'export SOLCX_BINARY_PATH=$(SOLCX_BINARY_PATH) APE_DATA_FOLDER=$(APE_DATA_FOLDER) PATH=$(VENV)/bin:$(ROOT)/node_modules/.bin:$$PATH'

# Slither fails on an untriaged High/Medium finding (tools/slither/triage.toml; --update prints stubs).
lint: install $(SLITHER_VENV)/.installed
	ruff check offchain tests scripts tools
	ruff format --check offchain tests scripts tools
	mypy
	mypy tools/slither
	solhint --max-warnings 0 'contracts/**/*.sol'
	$(SLITHER_VENV)/bin/python tools/slither/check.py

test: install
	pytest -q --durations=15

# The devnet up, inferences beside direct ONNX Runtime runs, the example dapp deciding, the devnet down.
demo: install
	python -m verinfer.devnet.demo

# Gas, latency, throughput and relayer overhead: bench/results.{json,md,png}; devnet logs in bench/out/.
bench: install
	python -m verinfer.bench --out bench

clean:
	rm -rf .build .toolchain .pytest_cache .mypy_cache .hypothesis
