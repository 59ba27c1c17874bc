# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint typecheck unit bench install lock clean

install:
	@$(PYTHON) scripts/bootstrap.py

# Re-resolve uv.lock (UPGRADE=1: newest allowed releases) and the requirements/ files.
lock:
	@$(PYTHON) scripts/lock.py

run: install
	@$(BIN)/python -m voicectl stack

test: install lint typecheck unit

lint:
	@echo "==> ruff"
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .

typecheck:
	@echo "==> mypy"
	@$(BIN)/mypy

unit:
	@echo "==> pytest"
	@$(BIN)/pytest

bench: install
	@$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
