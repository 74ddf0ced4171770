"""The deletion-cost thread against a pod API that misbehaves in ways the real one can: down for
hours, or applying a patch and then failing to answer."""

import threading
from typing import Any

from services.worker.deletion_cost import ANNOTATION, DeletionCost
from services.worker.pod_api import PodApiError
from tests.support.polling import wait_for


class FlakyPod:
    """The pod's annotation as the API server holds it; `fail` decides each patch's fate:
    "refuse" (nothing written), "lose" (written, then the answer is lost) or None (written)."""

    pod_name = "worker-abcde"

    def __init__(self) -> None:
        self.cost: str | None = None
        self.attempts = 0
        self.fail: str | None = None
        self.lock = threading.Lock()

    def patch_annotations(self, annotations: dict[str, str | None]) -> dict[str, Any]:
        with self.lock:
            self.attempts += 1
            if self.fail == "refuse":
                raise PodApiError("503 Service Unavailable: down")
            self.cost = annotations[ANNOTATION]
            if self.fail == "lose":
                raise PodApiError("TimeoutError: The read operation timed out")
            return {"kind": "Pod"}


def test_the_thread_outlives_a_long_outage_and_writes_once_the_api_is_back() -> None:
    pod = FlakyPod()
    pod.fail = "refuse"
    running = 3
    cost = DeletionCost(
        pod,  # type: ignore[arg-type]
        lambda: running,
        min_interval_seconds=1e-6,
        interval_seconds=1e-6,
        max_retry_seconds=1e-6,
    )
    cost.start()
    try:
        # Well past the point where an unbounded backoff (2 ** failures) overflows a float.
        wait_for(lambda: pod.attempts > 1_200, timeout=30, what="1,200 refused patches")
        assert cost.is_alive()
        pod.fail = None
        wait_for(lambda: pod.cost == "3", timeout=10, what="the cost once the API is back")
    finally:
        cost.stop()


def test_a_patch_applied_but_unanswered_is_written_again() -> None:
    pod = FlakyPod()
    running = [2]
    cost = DeletionCost(
        pod,  # type: ignore[arg-type]
        lambda: running[0],
        min_interval_seconds=0.01,
        interval_seconds=0.01,
        max_retry_seconds=0.02,
    )
    cost.start()
    try:
        wait_for(lambda: pod.cost == "2", timeout=10, what="the first cost")
        # The worker goes idle; the server takes the 0 but the answer is lost.
        pod.fail = "lose"
        running[0] = 0
        cost.changed()
        wait_for(lambda: pod.cost == "0", timeout=10, what="the lost patch applied")
        # Busy again before a retry got through: the pod says 0 while 2 run.
        running[0] = 2
        pod.fail = None
        cost.changed()
        wait_for(lambda: pod.cost == "2", timeout=10, what="the cost written again")
    finally:
        cost.stop()
