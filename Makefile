# reef: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3

.PHONY: setup demo demo-processes test lint bench

## Install everything (Debian packages, Python packages, control-plane binaries, VM kernel).
setup:
	bash scripts/setup.sh

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
lint:
	$(PYTHON) -m ruff check operator tests bench
	$(PYTHON) -m ruff format --check operator tests bench
	$(PYTHON) -m mypy
	$(PYTHON) -c "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports())"

## Benchmarks (not tests): results go to docs/benchmarks.md.
bench: setup
	$(PYTHON) -m bench.allocation --agents 1000
	$(PYTHON) -m bench.agent_startup --runs 6
	$(PYTHON) -m bench.agent_propagation --nodes 10 --joins 5
	$(PYTHON) -m bench.agent_rollout --nodes 3
