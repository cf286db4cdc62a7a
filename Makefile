# release_assets: two commands from a fresh clone: `make release` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The exact versions (with hashes) of everything this repository runs: .[all,dev]. `make lock` writes it.
LOCK := requirements.lock
export DAGSTER_HOME := $(CURDIR)/.dagster
HOST ?= 127.0.0.1
PORT ?= 3000

.DEFAULT_GOAL := help
.PHONY: help setup release watch test lint format dg-check dg-dev ui validate verify bench bench-serving bench-serving-oip bench-canary bench-onnx bench-triage bench-your-model serve clean
.PHONY: scale-test bench-scale lock core-test bench-plots

help: ## List every target
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# The locked set first (hash-checked, no resolution: the lock is complete, pip itself included), then the project
# editable without its dependencies, built with the locked setuptools. torch==2.13.0+cpu in the lock is the CPU
# wheel pip finds through find-links (/opt/wheels here); elsewhere, point PIP_FIND_LINKS at a CPU wheel of it.
$(STAMP): pyproject.toml $(LOCK)
	@if [ -e $(STAMP) ]; then echo "pyproject.toml or $(LOCK) changed: updating .venv"; else echo "First setup: \
	installing $(LOCK) into .venv (torch, Dagster, MLflow...; about 3 minutes on 2 cores, once)"; fi
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

setup: $(STAMP) $(DAGSTER_HOME)/dagster.yaml ## Create .venv from requirements.lock: the project, every extra, the dev tools

# pip-compile keeps the versions the lock already has unless asked: LOCK_ARGS="--upgrade-package dagster" (or
# --upgrade) moves them. The project itself is never in the lock (--unsafe-package): `make setup` installs it.
lock: setup ## Re-resolve requirements.lock (pip-compile: the core, [all], [dev], hashes), then install it
	$(BIN)/pip-compile --quiet --extra all --extra dev --generate-hashes --strip-extras --unsafe-package release-assets \
	--no-emit-index-url --no-emit-find-links --output-file $(LOCK) $(LOCK_ARGS) pyproject.toml
	$(MAKE) --no-print-directory setup

release: setup ## Materialize, gate and publish every release (releases/*.yaml) on the embedded defaults, then register them in MLflow
	$(BIN)/release-assets release; status=$$?; $(BIN)/release-assets registry sync || exit $$?; exit $$status

core-test: setup ## The wheel without extras in fresh venvs (3.11, and 3.12 if present): no torch, releases sklearn models
	RELEASE_ASSETS_CORE_TEST=1 $(BIN)/pytest release_assets_tests/test_light_core.py -p no:cacheprovider

test: setup ## Lint, format check, type check, the layer contracts, actionlint on the CI workflow, dg check defs, then the whole test suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/actionlint .github/workflows/release.yml
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/dg check defs
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

dg-check: setup ## `dg check yaml` and `dg check defs`: load every release through ReleaseComponent, as dg does
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/dg check yaml
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/dg check defs

dg-dev: setup $(DAGSTER_HOME)/dagster.yaml ## The Dagster UI through `dg dev` (an alternative to make ui) on 127.0.0.1
	@echo "Dagster UI: http://$(HOST):$(PORT)"
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/dg dev -h $(HOST) -p $(PORT)

ui: setup ## Start the Dagster UI (webserver + daemon: sensors run) on 127.0.0.1
	@echo "Dagster UI: http://$(HOST):$(PORT)"
	$(BIN)/dagster dev -w workspace.yaml -h $(HOST) -p $(PORT)

bench: setup ## Measure every performance figure (5 runs each, ~8 min) and write BENCHMARKS.md
	$(BIN)/python bench/run.py

bench-serving: setup ## Measure the serving figures (load at 100 req/s, shadow, routing, /v1 vs /v2, ~8 min) into BENCHMARKS.md
	$(BIN)/python bench/serving.py

bench-serving-oip: setup ## Only /v1 against the Open Inference Protocol's /v2 at 100 req/s, interleaved (publish, then ~2 min)
	$(BIN)/python bench/serving.py --only protocols

bench-canary: setup ## Measure breach-to-rollback time and the canary monitor's tick cost (~1.5 min) into BENCHMARKS.md
	$(BIN)/python bench/canary.py

bench-onnx: setup ## Serving cold start and per-request p50/p99 through onnxruntime vs torch (~6 min) into BENCHMARKS.md
	$(BIN)/python bench/serving_cold.py

bench-your-model: setup ## A python_model release from a CSV vs the team's plain function, whole processes in pairs (~1.5 min)
	$(BIN)/python bench/your_model.py

bench-triage: setup ## Measure regression triage of a held full-size helpdesk build against its champion (~5 min)
	$(BIN)/python bench/triage.py

bench-plots: setup ## Drawing the plots of a helpdesk release against its cold release, interleaved pairs (~6 min) into BENCHMARKS.md
	$(BIN)/python bench/plots.py

bench-canary-judgement: setup ## Statistical canary judgement vs threshold budgets on the same seeded synthetic traffic (~2.5 min) into BENCHMARKS.md
	$(BIN)/python bench/canary_judgement.py

bench-serving-load: setup ## Saturation, server CPU per answer, p99 at 100 req/s: before/after, 1 and 2 workers, a peer server, mlflow models serve (~10 min) into BENCHMARKS.md
	$(BIN)/python bench/serving_load.py

bench-provenance: setup ## Signing and verifying the helpdesk unit, reproduce against its cold release (~4 min) into BENCHMARKS.md
	$(BIN)/python bench/provenance.py --write

bench-embedding: setup ## The sentence-embedding model: cold load, cases/s on the golden suites, similarity calibration (~1 min)
	$(BIN)/python bench/embedding.py

bench-judge: setup ## The trained judge's calibration, its cache on a prompt-only change, the LLM path on a scripted endpoint (~1 min) into BENCHMARKS.md
	$(BIN)/python bench/judge.py

watch: setup ## Materialize what each edit (prompt, data, manifest, code) made stale, in one warm process
	$(BIN)/release-assets watch

serve: setup ## Serve the promoted champions on http://127.0.0.1:8000 (predict, healthz, readyz, metrics)
	$(BIN)/release-assets serve --host $(HOST) --port 8000

# The scale extra is not in the lock (with it installed, `make test` would run the Celery tests too): it is
# resolved here, every package the lock has held at the lock's version (its pins without hashes, as constraints).
SCALE_STAMP := $(VENV)/.scale-installed
$(SCALE_STAMP): $(STAMP) pyproject.toml $(LOCK)
	sed -n 's/^\([A-Za-z0-9_.-]*==[^ ]*\).*/\1/p' $(LOCK) > $(VENV)/lock-pins.txt
	$(BIN)/python -m pip install --quiet --no-build-isolation -c $(VENV)/lock-pins.txt -e ".[all,dev,scale]"
	touch $(SCALE_STAMP)

scale-test: $(SCALE_STAMP) ## Scale-out profile on this machine: Postgres, queue, Celery, MLflow server, S3 (~6 min)
	RELEASE_ASSETS_SCALE_TEST=1 $(BIN)/pytest release_assets_tests/scale -p no:cacheprovider

bench-scale: $(SCALE_STAMP) ## Cold release on two Celery workers vs in-process, queue cost per step, into BENCHMARKS.md
	$(BIN)/python bench/scale.py

clean: ## Remove instance state, the local artifact store and local MLflow (keeps .venv)
	rm -rf .dagster .release_store .mlflow
