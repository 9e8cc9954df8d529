# Seamless: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WORKSPACE ?= .seamless
DEMO_DATA ?= $(WORKSPACE)/data/demo
DEMO_ROWS ?= 100000
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed ## Create .venv (if missing) and install Seamless with dev tools

demo: venv ## Generate the demo data (if missing) and run the training pipeline locally
	@test -f $(DEMO_DATA)/labels.parquet || $(BIN)/seamless datasets generate --out $(DEMO_DATA) --rows $(DEMO_ROWS)
	$(BIN)/seamless run training --data-dir $(DEMO_DATA) --workspace $(WORKSPACE)
	$(BIN)/seamless status --workspace $(WORKSPACE)

test: venv ## Run the test suite (starts the PostgreSQL/HTTP servers it needs itself)
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: venv ## Unit tests only
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

lint: venv ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

compile: venv ## Refresh the runtime image tag and recompile pipelines/compiled/
	$(BIN)/python -m components.common.image_tag --write
	$(BIN)/seamless compile

bench: venv ## Benchmark the local training pipeline (results in docs/benchmarks.md)
	$(BIN)/python benchmarks/training_pipeline.py --rows $(DEMO_ROWS)

clean: ## Remove the local workspace (MLflow store, Feast repo, KFP outputs)
	rm -rf $(WORKSPACE)

.PHONY: help venv demo test test-fast lint compile bench clean
