# reef: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3

.PHONY: setup demo test lint bench

## Install everything (Debian packages, Python packages, control-plane binaries, VM kernel).
setup:
	bash scripts/setup.sh

## Start a local control plane, the operator and a live mesh of namespace nodes; show it.
demo: setup
	$(PYTHON) -m tests.testbed.demo

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
