# release_assets: two commands from a fresh clone: `make release` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)/.dagster
HOST ?= 127.0.0.1
PORT ?= 3000

.DEFAULT_GOAL := help
.PHONY: help setup release test lint format ui validate verify bench bench-serving bench-canary bench-triage serve clean

help: ## List every target
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@if [ -e $(STAMP) ]; then echo "pyproject.toml changed: updating .venv"; else echo "First setup: installing \
	dependencies into .venv (torch, Dagster, MLflow...; about 3 minutes on 2 cores, once)"; fi
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

setup: $(STAMP) $(DAGSTER_HOME)/dagster.yaml ## Create .venv and install the project with dev tools

release: setup ## Materialize, gate and publish every release (releases/*.yaml) on the embedded defaults
	$(BIN)/release-assets release

test: setup ## Lint, format check, actionlint on the CI workflow, then the whole test suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/actionlint .github/workflows/release.yml
	$(BIN)/pytest

lint: setup ## ruff check only
	$(BIN)/ruff check .

format: setup ## Apply ruff formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

validate: setup ## Validate every release manifest without running anything
	$(BIN)/release-assets validate

verify: setup ## Re-hash every published bundle in .release_store/ and check every ledger's hash chain
	@for d in .release_store/releases/*/*/; do [ -e "$$d/bundle.tar.gz" ] || { echo "no bundles yet: run make release"; exit 1; }; $(BIN)/release-assets verify "$$d" || exit 1; done
	$(BIN)/release-assets verify --ledger

ui: setup ## Start the Dagster UI (webserver + daemon: sensors run) on 127.0.0.1
	@echo "Dagster UI: http://$(HOST):$(PORT)"
	$(BIN)/dagster dev -w workspace.yaml -h $(HOST) -p $(PORT)

bench: setup ## Measure every performance figure (5 runs each, ~8 min) and write BENCHMARKS.md
	$(BIN)/python bench/run.py

bench-serving: setup ## Measure the serving figures (load at 100 req/s, shadow, routing, ~6 min) into BENCHMARKS.md
	$(BIN)/python bench/serving.py

bench-canary: setup ## Measure breach-to-rollback time and the canary monitor's tick cost (~1.5 min) into BENCHMARKS.md
	$(BIN)/python bench/canary.py

bench-triage: setup ## Measure regression triage of a held full-size helpdesk build against its champion (~5 min)
	$(BIN)/python bench/triage.py

serve: setup ## Serve the promoted champions on http://127.0.0.1:8000 (predict, healthz, readyz, metrics)
	$(BIN)/release-assets serve --host $(HOST) --port 8000

clean: ## Remove instance state, the local artifact store and local MLflow (keeps .venv)
	rm -rf .dagster .release_store .mlflow
