# Plots of benchmark results (matplotlib comes from .venv-edge so the core venv stays lean).
.PHONY: bench-gateway-plot

bench-gateway-plot: .venv-edge/.stamp ## plot bench/out/gateway_overhead.json -> docs/benchmarks/gateway_overhead.png
	.venv-edge/bin/python bench/plot_gateway.py
