"""Prometheus metrics, in a registry of the app's own (so tests can build many apps in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


OTHER = "other"


class Metrics:
    """All gateway metrics; label children are cached because ``labels()`` is the costly part.

    The ``model`` label only ever takes a configured model name (anything else a client sends is ``other``), so a
    client cannot grow ``/metrics`` without bound.
    """

    def __init__(self, models: list[str] | None = None) -> None:
        self.models = frozenset(models or [])
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "llm_gateway_requests", "Requests answered", ["route", "engine", "model", "status"], registry=r
        )
        self.errors = Counter(
            "llm_gateway_errors", "Errors by engine and kind", ["engine", "model", "kind"], registry=r
        )
        self.latency = Histogram(
            "llm_gateway_request_seconds", "Request latency", ["engine", "model"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.ttft = Histogram(
            "llm_gateway_time_to_first_token_seconds",
            "Time to the first streamed chunk",
            ["engine", "model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter("llm_gateway_tokens", "Tokens by direction", ["engine", "model", "kind"], registry=r)
        self.breaker = Gauge(
            "llm_gateway_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open", ["engine"], registry=r
        )
        self.stream_errors = Counter(
            "llm_gateway_stream_errors",
            "Streams that failed after their first byte (cut, timed out, error event, invalid structured output)",
            ["engine", "kind"],
            registry=r,
        )
        self.hybrid = Counter(
            "llm_gateway_hybrid_requests",
            "Hybrid-route requests by the target that answered (local, cloud, none) and the router's reason",
            ["target", "reason"],
            registry=r,
        )
        self.hybrid_sensitive = Counter(
            "llm_gateway_hybrid_sensitive",
            "Hybrid-route requests in which a sensitive type was detected (types only, never values)",
            ["type"],
            registry=r,
        )
        self.hybrid_decision = Histogram(
            "llm_gateway_hybrid_decision_seconds",
            "Time to parse, scan, score and decide one hybrid-route request",
            buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25),
            registry=r,
        )
        self.in_flight = Gauge("llm_gateway_in_flight_requests", "Requests being served", registry=r)
        self._counters: dict[tuple[str, ...], Counter] = {}
        self._hists: dict[tuple[str, ...], Histogram] = {}

    def _counter(self, metric: Counter, *labels: str) -> Counter:
        key = (metric._name, *labels)
        c = self._counters.get(key)
        if c is None:
            c = self._counters[key] = metric.labels(*labels)
        return c

    def _hist(self, metric: Histogram, *labels: str) -> Histogram:
        key = (metric._name, *labels)
        h = self._hists.get(key)
        if h is None:
            h = self._hists[key] = metric.labels(*labels)
        return h

    def label(self, model: str) -> str:
        """The ``model`` label for a client-given name: the name if configured, else ``other``."""
        return model if model in self.models else OTHER

    def request(self, route: str, engine: str, model: str, status: int) -> None:
        self._counter(self.requests, route, engine, self.label(model), str(status)).inc()

    def error(self, engine: str, model: str, kind: str) -> None:
        self._counter(self.errors, engine, self.label(model), kind).inc()

    def stream_error(self, engine: str, kind: str) -> None:
        self._counter(self.stream_errors, engine, kind).inc()

    def observe(self, engine: str, model: str, seconds: float) -> None:
        self._hist(self.latency, engine, self.label(model)).observe(seconds)

    def first_token(self, engine: str, model: str, seconds: float) -> None:
        self._hist(self.ttft, engine, self.label(model)).observe(seconds)

    def route(self, target: str, reason: str) -> None:
        """Count one hybrid-route answer (``reason`` is one of the router's fixed reasons, ``;failover`` added)."""
        self._counter(self.hybrid, target, reason).inc()

    def sensitive(self, types: tuple[str, ...]) -> None:
        """Count the detected types of one hybrid-route request (built-in types and configured pattern names)."""
        for t in types:
            self._counter(self.hybrid_sensitive, t).inc()

    def count_tokens(self, engine: str, model: str, prompt: int, completion: int) -> None:
        model = self.label(model)
        if prompt:
            self._counter(self.tokens, engine, model, "prompt").inc(prompt)
        if completion:
            self._counter(self.tokens, engine, model, "completion").inc(completion)
