"""Prometheus metrics of one pixelgate process, in a registry of its own.

Counted as they happen: HTTP requests by route and status, their latency, job durations by
model. Read at scrape time from the source of truth: jobs by model and state, queue depth,
spend by tenant; and the process's memory and CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, bindparam, select

from pixelgate.clock import as_utc
from pixelgate.db.tables import Job

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
JOB_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)

TIMES_OF_JOB = select(Job.model, Job.started_at, Job.finished_at).where(Job.id == bindparam("b_id"))
"""What the finish hook reads of a job the store did not return (a database without RETURNING)."""


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "pixelgate_http_requests",
            "HTTP requests by route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "pixelgate_http_request_duration_seconds",
            "HTTP request latency by route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.posts_in_progress = 0
        """POST requests this process is handling now (counted on the event loop)."""
        Gauge(
            "pixelgate_http_posts_in_progress",
            "POST requests being handled now.",
            registry=self.registry,
        ).set_function(lambda: self.posts_in_progress)
        self.job_duration = Histogram(
            "pixelgate_job_duration_seconds",
            "Time from a job's start to its end, by model and final state.",
            ["model", "state"],
            buckets=JOB_BUCKETS,
            registry=self.registry,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def on_job_finished(
        self, connection: Connection, job_id: str, status: str, values: dict[str, Any]
    ) -> None:
        """A job-store finish hook; reads the job only when the store did not return it."""
        model, started, finished = (
            values.get(name) for name in ("model", "started_at", "finished_at")
        )
        if model is None:
            row = connection.execute(TIMES_OF_JOB, {"b_id": job_id}).first()
            if row is None:
                return
            model, started, finished = row.model, row.started_at, finished or row.finished_at
        if started is None or finished is None:
            return
        seconds = (as_utc(finished) - as_utc(started)).total_seconds()
        self.job_duration.labels(model, str(status)).observe(max(0.0, seconds))

    def watch(
        self,
        *,
        jobs_by_state: Callable[[], Iterable[tuple[str, str, int]]],
        queue_depth: Callable[[], int],
        spend_by_tenant: Callable[[], Iterable[tuple[str, float]]],
    ) -> None:
        """Read these at every scrape."""
        self.registry.register(_StateCollector(jobs_by_state, queue_depth, spend_by_tenant))


class _StateCollector(Collector):
    def __init__(
        self,
        jobs_by_state: Callable[[], Iterable[tuple[str, str, int]]],
        queue_depth: Callable[[], int],
        spend_by_tenant: Callable[[], Iterable[tuple[str, float]]],
    ) -> None:
        self._jobs_by_state = jobs_by_state
        self._queue_depth = queue_depth
        self._spend_by_tenant = spend_by_tenant

    def collect(self) -> Iterable[Metric]:
        jobs = GaugeMetricFamily(
            "pixelgate_jobs", "Jobs by model and state.", labels=["model", "state"]
        )
        for model, state, count in self._jobs_by_state():
            jobs.add_metric([model, state], count)
        yield jobs
        yield GaugeMetricFamily(
            "pixelgate_queue_depth", "Jobs waiting for a worker here.", value=self._queue_depth()
        )
        spend = CounterMetricFamily(
            "pixelgate_spend", "Money spent, by tenant, in the currency unit.", labels=["tenant"]
        )
        for tenant, amount in self._spend_by_tenant():
            spend.add_metric([tenant], amount)
        yield spend
