"""Prometheus metrics of one node, served as text at `GET /metrics` on the client API
(docs/api.md lists every metric).

Each node has its own CollectorRegistry, never the process-wide default: tests run several nodes
in one process. What the services already keep (queues, the gossip table, Raft's status, the
forwarding and peer-channel counters) is read at scrape time from each service's `metrics()`
(fpai_node/service.py), so it cannot drift from what /fpai/v1/status shows; only what nothing
else counts (HTTP requests, tokens, time to first token) is kept here in prometheus_client
counters and histograms.
"""

import time
from collections.abc import Iterable, Sequence
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import InfoMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from fpai_node import __version__
from fpai_node.service import Service
from fpai_node.wire import PROTOCOL_VERSION

# The classic text format (0.0.4): what generate_latest writes, and what every Prometheus reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# A health check answers in milliseconds, a long generation streams for minutes.
HTTP_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# A warm CPU model answers in tens of ms; a queued request or a cold peer takes seconds.
FIRST_TOKEN_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
UNMATCHED_ROUTE = "unmatched"  # 404s: the raw path would let any client create a series
# Labelled series kept at hand for the request path; routes and statuses are few, but a method
# is whatever a client sends, so the cache stops growing here (later ones go through `labels`)
MAX_CACHED_SERIES = 512


class Metrics:
    """One node's metrics: the counters the API updates, and a collector over its services."""

    def __init__(self, node_id: str, services: Sequence[Service] = ()) -> None:
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.prometheus = CollectorRegistry()
        self.http_requests = Counter(
            "fpai_http_requests",
            "Client API requests answered, by route, method and status (499: the client left).",
            ["route", "method", "status"],
            registry=self.prometheus,
        )
        self.http_duration = Histogram(
            "fpai_http_request_duration_seconds",
            "Client API request duration, to the end of a streamed answer, by route.",
            ["route"],
            buckets=HTTP_BUCKETS_S,
            registry=self.prometheus,
        )
        self.prompt_tokens = Counter(
            "fpai_prompt_tokens",
            "Prompt tokens of the answers this node's API gave, served here or by a peer.",
            ["model"],
            registry=self.prometheus,
        )
        self.completion_tokens = Counter(
            "fpai_completion_tokens",
            "Completion tokens of the answers this node's API gave, served here or by a peer.",
            ["model"],
            registry=self.prometheus,
        )
        self.first_token = Histogram(
            "fpai_time_to_first_token_seconds",
            "From a parsed chat or completion request to its first generated event, routing "
            "and queueing included, by model.",
            ["model"],
            buckets=FIRST_TOKEN_BUCKETS_S,
            registry=self.prometheus,
        )
        self.prometheus.register(ServicesCollector(node_id, services))
        ProcessCollector(registry=self.prometheus)  # process_*: CPU, memory, open files

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        series = self._series.get((route, method, status))
        if series is None:  # `labels` takes a lock and builds its key on every call
            series = (
                self.http_requests.labels(route, method, str(status)),
                self.http_duration.labels(route),
            )
            if len(self._series) < MAX_CACHED_SERIES:
                self._series[(route, method, status)] = series
        series[0].inc()
        series[1].observe(seconds)

    def count_tokens(self, model: str, prompt: int, completion: int) -> None:
        self.prompt_tokens.labels(model).inc(prompt)
        self.completion_tokens.labels(model).inc(completion)

    def observe_first_token(self, model: str, seconds: float) -> None:
        self.first_token.labels(model).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.prometheus)


METRICS = web.AppKey("metrics", Metrics)


def route_label(request: web.Request) -> str:
    """The route's pattern (`/fpai/v1/registry/parameters/{key}`), never the raw path."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


def observe_request(request: web.Request, status: int, started: float) -> None:
    """Count one answered request, if the app has metrics."""
    metrics = request.app.get(METRICS)
    if metrics is not None:
        metrics.observe_request(
            route_label(request), request.method, status, time.perf_counter() - started
        )


async def metrics_view(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


class ServicesCollector(Collector):
    """The node's identity, then every service's families, read at scrape time."""

    def __init__(self, node_id: str, services: Sequence[Service]) -> None:
        self._node_id = node_id
        self._services = services

    def collect(self) -> Iterable[Metric]:
        yield InfoMetricFamily(
            "fpai_node",
            "This node: its id, software version and protocol version.",
            value={
                "node_id": self._node_id,
                "version": __version__,
                "protocol_version": str(PROTOCOL_VERSION),
            },
        )
        for service in self._services:
            yield from service.metrics()
