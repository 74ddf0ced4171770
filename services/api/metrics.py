"""Prometheus metrics of the API: queue state read from the database at scrape time, and HTTP.

Every API replica (and every uvicorn process) reports the same database-wide queue numbers:
aggregate them with max(), never sum(). HTTP metrics are per process; with several uvicorn
processes they are shared through PROMETHEUS_MULTIPROC_DIR and summed at scrape time.
"""

import os
import threading
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from services.api.fleet import QUEUED_STATUSES, Fleet, FleetSnapshot
from services.contract import METRIC_PREFIX, QUEUE_LOAD_METRIC, logs

log = logs.get_logger(__name__)


class QueueCollector(Collector):
    """Queue and fleet gauges from one snapshot of aggregate queries, cached for a moment.

    Several scrapers (Prometheus pairs, adapters, API replicas) within `cache_seconds` share one
    database read. When the database can't be read it emits no queue samples at all, so an
    autoscaler reading them holds its size instead of seeing zero, and it counts the failure.
    """

    def __init__(self, fleet: Fleet, grace_ms: int, cache_seconds: float, errors: Counter) -> None:
        self._fleet = fleet
        self._grace_ms = grace_ms
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()  # one database read at a time; the others wait for it
        self._cached: tuple[float, FleetSnapshot | None] | None = None
        self._errors = errors

    def snapshot(self) -> FleetSnapshot | None:
        with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < self._cache_seconds:
                return self._cached[1]
            try:
                snapshot: FleetSnapshot | None = self._fleet.snapshot(self._grace_ms)
            except Exception as exc:
                log.warning("metrics.collection_failed", error=type(exc).__name__)
                self._errors.inc()
                snapshot = None
            self._cached = (time.monotonic(), snapshot)
            return snapshot

    def collect(self) -> Iterator[Metric]:
        snapshot = self.snapshot()
        if snapshot is not None:
            yield from queue_metrics(snapshot)


def queue_metrics(snapshot: FleetSnapshot) -> Iterator[Metric]:
    # Registered queues report zeros when empty: the load must reach 0 for a scale-down.
    concurrency = dict(snapshot.queues)
    counts = {(q, s): n for q, s, n in snapshot.depth}
    queue_names = sorted(set(concurrency) | {q for q, _, _ in snapshot.depth})
    depth = _gauge("queue_workflows", "Workflows in a queue by status.", "queue", "status")
    load = GaugeMetricFamily(
        QUEUE_LOAD_METRIC,
        "(enqueued + pending, at most what the queue's global and per-partition limits let "
        "run at once) / worker_concurrency: workers needed; the autoscaling signal. Without "
        "application_version: the queue's total; with it: one version's workers' share.",
        labels=["queue"],
    )
    runnable: dict[str, dict[str, int]] = {}
    for queue, version, n in snapshot.runnable:
        runnable.setdefault(queue, {})[version] = n
    totals = dict(snapshot.runnable_totals)
    capacity = _gauge("queue_worker_concurrency", "Workflows one worker runs at once.", "queue")
    for queue in queue_names:
        for status in QUEUED_STATUSES:
            depth.add_metric([queue, status.lower()], counts.get((queue, status), 0))
        per_worker = concurrency.get(queue)
        if per_worker:
            capacity.add_metric([queue], per_worker)
            by_version = runnable.get(queue, {})
            load.add_metric([queue], totals.get(queue, 0) / per_worker)
            for version in snapshot.reported_versions:
                labels = {"queue": queue, "application_version": version}
                busy = by_version.get(version, 0)
                load.samples.append(Sample(QUEUE_LOAD_METRIC, labels, busy / per_worker))
    oldest = _gauge(
        "queue_oldest_enqueued_age_seconds",
        "Age of the oldest ENQUEUED workflow; absent when none waits.",
        "queue",
    )
    for queue, age in snapshot.oldest_age_seconds:
        oldest.add_metric([queue], age)
    orphaned = _gauge(
        "orphaned_workflows",
        "PENDING workflows held by executors that are not alive (the reaper re-enqueues them).",
        "queue",
    )
    for queue in queue_names:
        orphaned.add_metric([queue], dict(snapshot.orphaned).get(queue, 0))
    stranded = _gauge(
        "queue_stranded_workflows",
        "ENQUEUED workflows pinned to an application version that no live worker runs.",
        "queue",
        "application_version",
    )
    for queue, version, count in snapshot.stranded:
        stranded.add_metric([queue, version], count)
    live = _gauge(
        "live_executors", "Workers heartbeating within the grace period.", "application_version"
    )
    versions: dict[str, int] = {}
    for executor in snapshot.executors:
        if executor.alive:
            versions[executor.application_version] = (
                versions.get(executor.application_version, 0) + 1
            )
    for version, count in sorted(versions.items()):
        live.add_metric([version], count)
    work = _gauge(
        "version_workflows",
        "Workflows of an application version by status (enqueued, pending, delayed), over "
        "every queue; the API's version and those of live workers report zeros when idle.",
        "application_version",
        "status",
    )
    per_version: dict[tuple[str, str], int] = {}
    for _, version, status, n in snapshot.by_version:
        per_version[version, status] = per_version.get((version, status), 0) + n
    for version in snapshot.reported_versions:
        for status in QUEUED_STATUSES:
            work.add_metric([version, status.lower()], per_version.get((version, status), 0))
    yield from (depth, load, capacity, oldest, orphaned, stranded, live, work)


def _gauge(name: str, documentation: str, *labels: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(METRIC_PREFIX + name, documentation, labels=list(labels))


class HttpMetrics:
    """Request count and latency by route template, method and status (no ids in labels)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        labels = ["route", "method", "status"]
        self.requests = Counter(
            "queue_worker_http_requests", "HTTP requests served.", labels, registry=registry
        )
        self.duration = Histogram(
            "queue_worker_http_request_duration_seconds",
            "Time to serve an HTTP request.",
            labels,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.duration.labels(route, method, str(status)).observe(seconds)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    """What /metrics serves: the queue collector (once the lifespan has a database), HTTP
    metrics and the collection-error counter of this process, or of all of them in
    multiprocess mode (values in files under PROMETHEUS_MULTIPROC_DIR)."""

    def __init__(self) -> None:
        self.http = HttpMetrics(registry=None)
        self.collection_errors = Counter(
            "queue_worker_metrics_collection_errors",
            "Database reads for queue metrics that failed (their scrapes had no queue samples).",
            registry=None,
        )
        self._queue: QueueCollector | None = None

    def attach(self, queue: QueueCollector) -> None:
        self._queue = queue

    def detach(self) -> None:
        self._queue = None

    def registry(self) -> CollectorRegistry:
        registry = CollectorRegistry(auto_describe=False)
        # The queue collector first: a failed read counts an error that this scrape must show.
        if self._queue is not None:
            registry.register(self._queue)
        if multiprocess_dir() is not None:
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        else:
            for metric in (self.http.requests, self.http.duration, self.collection_errors):
                registry.register(metric)
        return registry
