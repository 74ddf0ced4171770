"""Prometheus metrics computed from the system database when Prometheus scrapes."""

import logging
import threading
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.api.fleet import Fleet, FleetSnapshot

logger = logging.getLogger(__name__)


class QueueCollector(Collector):
    """Queue and fleet gauges from one snapshot of aggregate queries per scrape.

    When the database can't be read it emits no queue samples at all, so an autoscaler reading
    them holds its size instead of seeing zero, and it counts the failure.
    """

    def __init__(self, fleet: Fleet, grace_ms: int) -> None:
        self._fleet = fleet
        self._grace_ms = grace_ms
        self._errors = 0
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        try:
            snapshot = self._fleet.snapshot(self._grace_ms)
        except Exception as exc:
            logger.warning("metrics.collection_failed error=%s", type(exc).__name__)
            with self._lock:
                self._errors += 1
        else:
            yield from _queue_metrics(snapshot)
        yield CounterMetricFamily(
            "queue_worker_metrics_collection_errors",
            "Scrapes whose queue metrics could not be read from the database.",
            value=self._errors,
        )


def _queue_metrics(snapshot: FleetSnapshot) -> Iterator[Metric]:
    depth = GaugeMetricFamily(
        "queue_worker_queue_workflows",
        "Workflows in a queue by status (enqueued, pending, delayed).",
        labels=["queue", "status"],
    )
    for queue, status, count in snapshot.depth:
        depth.add_metric([queue, status.lower()], count)
    yield depth
    orphaned = GaugeMetricFamily(
        "queue_worker_orphaned_workflows",
        "PENDING workflows held by executors that are not alive (the reaper re-enqueues them).",
        labels=["queue"],
    )
    for queue, count in snapshot.orphaned:
        orphaned.add_metric([queue], count)
    yield orphaned
    stranded = GaugeMetricFamily(
        "queue_worker_queue_stranded_workflows",
        "ENQUEUED workflows pinned to an application version that no live worker runs.",
        labels=["queue", "application_version"],
    )
    for queue, version, count in snapshot.stranded:
        stranded.add_metric([queue, version], count)
    yield stranded
    live = GaugeMetricFamily(
        "queue_worker_live_executors",
        "Workers whose heartbeat is within the grace period, by application version.",
        labels=["application_version"],
    )
    versions: dict[str, int] = {}
    for executor in snapshot.executors:
        if executor.alive:
            versions[executor.application_version] = (
                versions.get(executor.application_version, 0) + 1
            )
    for version, count in sorted(versions.items()):
        live.add_metric([version], count)
    yield live


def create_registry(fleet: Fleet, grace_ms: int) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(QueueCollector(fleet, grace_ms))
    return registry
