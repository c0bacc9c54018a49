# reef: the two commands a newcomer needs are `make demo` and `make test`.
# Every target runs the project virtualenv's Python (.venv, made by scripts/setup.sh).
VENV ?= .venv
PYTHON ?= $(VENV)/bin/python
# Console scripts of the virtualenv (vng, virtme-run, ruff) come first on PATH.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup venv demo demo-processes test lint bench release

## Install everything (Debian packages, the virtualenv, Go, control-plane binaries, VM kernel).
setup:
	bash scripts/setup.sh

## Only the virtualenv (and Debian's python3-venv if missing): enough for `make lint`.
venv:
	bash scripts/setup.sh python

## helm install reef onto three real kubelet nodes of a local control plane; show pods, mesh, pings.
demo: setup
	$(PYTHON) -m tests.testbed.demo

## Quicker: the operator and three agents as plain processes in namespace nodes (no kubelets).
demo-processes: setup
	$(PYTHON) -m tests.testbed.demo_processes

## The whole test suite against real parts (local control plane, WireGuard, VM, podman).
test: setup
	$(PYTHON) -m pytest

## ruff, mypy --strict, import contracts.
lint: venv
	$(PYTHON) -m ruff check operator tests bench
	$(PYTHON) -m ruff format --check operator tests bench
	$(PYTHON) -m mypy
	$(PYTHON) -c "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports())"

## Benchmarks (not tests): results go to docs/benchmarks.md.
bench: setup
	$(PYTHON) -m bench.allocation --agents 1000
	$(PYTHON) -m bench.agent_imports --runs 10
	$(PYTHON) -m bench.agent_startup --runs 6
	$(PYTHON) -m bench.agent_idle --nodes 4 --seconds 60
	$(PYTHON) -m bench.agent_propagation --nodes 10 --joins 5
	$(PYTHON) -m bench.agent_rollout --nodes 3
	$(PYTHON) -m bench.image_size

## Publish: the chart to oci://$(REGISTRY)/charts and the image to $(REGISTRY)/reef
## (see scripts/release.sh for PLATFORMS, BASE, PLAIN_HTTP).
release:
	REGISTRY="$(REGISTRY)" bash scripts/release.sh
