"""Prometheus metrics. Label children are cached per (surface, model, status) so the hot path
does a dict lookup and an increment, not a label resolution."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


@dataclass(slots=True, frozen=True)
class _Children:
    generations: Counter
    duration: Histogram
    input_tokens: Counter
    output_tokens: Counter
    cost: Counter


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.generations = Counter(
            "runapi_generations_total",
            "Generations by surface, model and final status.",
            ["endpoint", "model", "status"],
            registry=self.registry,
        )
        self.tokens = Counter(
            "runapi_tokens_total",
            "Tokens by model and kind (input, output).",
            ["model", "kind"],
            registry=self.registry,
        )
        self.cost = Counter(
            "runapi_cost_micros_total", "Charged micro-dollars by model.", ["model"], registry=self.registry
        )
        self.duration = Histogram(
            "runapi_generation_seconds",
            "Wall time of a generation, admission to settlement.",
            ["endpoint", "model"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rejections = Counter(
            "runapi_rejections_total",
            "Requests refused before a task existed, by status.",
            ["status"],
            registry=self.registry,
        )
        self.upstream_abandoned = Counter(
            "runapi_upstream_abandoned_total",
            "Upstream calls started while the ledger wrote the hold, then dropped unused: the hold "
            "was refused (the caller got a 402) or the caller left meanwhile. Nothing was billed.",
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, str], _Children] = {}

    def finished(
        self,
        endpoint: str,
        model: str,
        status: str,
        seconds: float,
        input_tokens: int,
        output_tokens: int,
        cost: int,
    ) -> None:
        key = (endpoint, model, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = _Children(
                generations=self.generations.labels(endpoint, model, status),
                duration=self.duration.labels(endpoint, model),
                input_tokens=self.tokens.labels(model, "input"),
                output_tokens=self.tokens.labels(model, "output"),
                cost=self.cost.labels(model),
            )
        child.generations.inc()
        child.duration.observe(seconds)
        if input_tokens:
            child.input_tokens.inc(input_tokens)
        if output_tokens:
            child.output_tokens.inc(output_tokens)
        if cost:
            child.cost.inc(cost)

    def rejected(self, status: int) -> None:
        self.rejections.labels(str(status)).inc()

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
