# Kubernetes (issue 15): manifests for the local stack from config/<ENV>.yaml's local section. docs/KUBERNETES.md.
# checkov is heavy (~95 pinned packages, ~290 MB): it lives in its own venv (.venv-checkov), built from its lock.
CHECKOV_PY := .venv-checkov/bin/python

.PHONY: k8s k8s-validate k8s-scan k8s-review checkov-setup checkov-lock test-k8s

.venv-checkov/.stamp: requirements/checkov.lock
	@test -x $(CHECKOV_PY) || python3 -m venv .venv-checkov
	# --no-deps: the lock is a complete freeze of checkov's resolution.
	.venv-checkov/bin/pip install --quiet --disable-pip-version-check --no-deps -r requirements/checkov.lock
	@touch $@

checkov-setup: .venv-checkov/.stamp ## create .venv-checkov (checkov for the Kubernetes manifests) from its lock

checkov-lock: ## re-resolve requirements/checkov.in into requirements/checkov.lock (needs PyPI)
	rm -rf .venv-checkov-lock && python3 -m venv .venv-checkov-lock && .venv-checkov-lock/bin/pip install -q -r requirements/checkov.in
	{ head -1 requirements/checkov.lock; .venv-checkov-lock/bin/pip freeze | grep -v '^-e'; } > requirements/checkov.lock.tmp && mv requirements/checkov.lock.tmp requirements/checkov.lock && rm -rf .venv-checkov-lock

k8s: .venv/.stamp ## render Kubernetes manifests for ENV into k8s.out/ENV (Kustomize-ready) and validate them
	$(PY) -m local.k8s render --env $(ENV)

k8s-validate: .venv/.stamp ## validate k8s.out/ENV against the pinned Kubernetes OpenAPI schemas
	$(PY) -m local.k8s validate --env $(ENV)

k8s-scan: .venv/.stamp .venv-checkov/.stamp ## checkov's Kubernetes checks over k8s.out/ENV (run `make k8s` first)
	$(PY) -m local.k8s scan --env $(ENV)

k8s-review: .venv/.stamp .venv-checkov/.stamp ## write k8s.out/REVIEW-ENV.md (what runs where, traffic, totals, changes)
	$(PY) -m local.k8s review --env $(ENV)

test-k8s: .venv/.stamp .venv-checkov/.stamp ## Kubernetes renderer tests (schemas, checkov, config properties)
	$(PY) -m pytest tests/k8s -q -p no:cacheprovider $(PYTEST_ARGS)
