# Hybrid router (issue 5): quality, calibration, benchmark, tests. See docs/HYBRID.md.
ROUTER_DEV ?= tests/data/router_dev.jsonl
.PHONY: router-eval router-calibrate bench-router test-router

router-eval: .venv/.stamp ## dev-set routing quality, then per-type recall on the tune and held-out test splits (disguised variants + conversations) and look-alike precision
	$(PY) -m router.evaluate $(ROUTER_DEV)
	$(PY) -m router.generalization

router-calibrate: .venv/.stamp ## pick the complexity threshold from the dev set (ROUTER_CLOUD_SHARE=0.3 to aim at a share)
	$(PY) -m router.calibrate $(ROUTER_DEV) $(if $(ROUTER_CLOUD_SHARE),--target-cloud-share $(ROUTER_CLOUD_SHARE))

bench-router: .venv/.stamp ## decision latency 256B/4KB/64KB, cold import time, dev-set quality -> bench/out/router.json
	$(PY) -m bench.router

test-router: .venv/.stamp ## the router's tests and the hybrid tests (both entry points)
	$(PY) -m pytest tests/router tests/hybrid -q
