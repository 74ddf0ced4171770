"""Prometheus metrics computed from the system database when Prometheus scrapes."""

import logging
import threading
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.api.store import Store

logger = logging.getLogger(__name__)


class QueueCollector(Collector):
    """Queue depth per queue and status, from one aggregate query per scrape.

    When the database can't be read it emits no queue samples at all, so an autoscaler reading
    them holds its size instead of seeing zero, and it counts the failure.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._errors = 0
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        try:
            rows = self._store.queue_depth()
        except Exception as exc:
            logger.warning("metrics.collection_failed error=%s", type(exc).__name__)
            with self._lock:
                self._errors += 1
        else:
            family = GaugeMetricFamily(
                "queue_worker_queue_workflows",
                "Workflows in a queue by status (enqueued, pending, delayed).",
                labels=["queue", "status"],
            )
            for queue, status, count in rows:
                family.add_metric([queue, status.lower()], count)
            yield family
        yield CounterMetricFamily(
            "queue_worker_metrics_collection_errors",
            "Scrapes whose queue metrics could not be read from the database.",
            value=self._errors,
        )


def create_registry(store: Store) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(QueueCollector(store))
    return registry
