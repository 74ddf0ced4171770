"""This pod's deletion cost, kept equal to the number of workflows the worker runs.

On a scale-in the ReplicaSet controller deletes the pods with the lowest
`controller.kubernetes.io/pod-deletion-cost` first (after pending and unready pods, before its
rules of age), and a deleted worker drains: its workflows wait out the drain or move to
another worker. A worker that keeps its cost equal to its running workflows is deleted after
the idle ones. The cost is a hint read at the moment of the scale-in, so it may lag: every
patch is a write to the pod that its watchers see, and Kubernetes asks that this annotation not
change often. A change between idle and busy, the one that matters most to a scale-in, goes out
within a second; other changes of the count at most once per interval (10 s by default), a
burst of starts and ends coalesced into one; a failed patch is tried again with a growing delay
(30 s at most), and the pod's value is unknown after it (the server may have applied a patch
whose answer was lost), so the next attempt always writes. Nothing here can hold up a
workflow: a workflow only sets an event, and a thread of its own talks to the API with short
timeouts and survives whatever a patch raises.
"""

import threading
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client import Counter, Gauge

from services.contract import logs
from services.worker.pod_api import PodApi, PodApiError
from services.worker.settings import WorkerSettings

log = logs.get_logger(__name__)

ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
MIN_INTERVAL_SECONDS = 1.0
INTERVAL_SECONDS = 10.0
MAX_RETRY_SECONDS = 30.0


class DeletionCost:
    """A thread that patches the annotation whenever `running()` differs from what it set."""

    def __init__(
        self,
        api: PodApi,
        running: Callable[[], int],
        min_interval_seconds: float = MIN_INTERVAL_SECONDS,
        interval_seconds: float = INTERVAL_SECONDS,
        max_retry_seconds: float = MAX_RETRY_SECONDS,
        patches: Counter | None = None,
        written: Gauge | None = None,
    ) -> None:
        self._api = api
        self._running = running
        self._min_interval = min_interval_seconds
        self._interval = max(interval_seconds, min_interval_seconds)
        self._max_retry = max(max_retry_seconds, min_interval_seconds)
        # Patches by outcome (ok, failed), and the cost last written.
        self._patches = patches
        self._written = written
        self._stop = threading.Event()
        # Set by changed() and stop(); set at first, so the cost is written once at start (a
        # restarted container's pod may still carry the count of its previous run).
        self._wake = threading.Event()
        self._wake.set()
        # The reason of the failure logged last; None while patches succeed.
        self._failing: str | None = None
        self._thread = threading.Thread(target=self._run, name="deletion-cost", daemon=True)

    def changed(self) -> None:
        """The number of running workflows changed (called from workflow threads)."""
        self._wake.set()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop patching (a draining pod is already out of the ReplicaSet's choice)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=0.5)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        # What the pod carries as far as this thread knows; None at start and after a failure.
        published: int | None = None
        failures = 0
        last_attempt = float("-inf")
        while not self._stop.is_set():
            self._wake.clear()
            count = self._running()
            if count == published:
                self._wake.wait()  # until the count changes
                continue
            due = last_attempt + self._gap(count, published, failures)
            if (wait := due - time.monotonic()) > 0:
                # Not yet; a change meanwhile may make it due sooner (idle to busy), and then
                # one patch carries the count as it is at that time.
                self._wake.wait(wait)
                continue
            last_attempt = time.monotonic()
            if self._publish(count):
                published, failures = count, 0
            else:
                published, failures = None, failures + 1

    def _gap(self, count: int, published: int | None, failures: int) -> float:
        """Seconds from the last attempt to the next: short between idle and busy (or when the
        pod's value is unknown), the interval otherwise, and a growing delay after failures."""
        idle_or_busy = published is None or (count == 0) != (published == 0)
        gap = self._min_interval if idle_or_busy else self._interval
        if failures:
            backoff = self._min_interval * 2 ** min(failures, 16)
            gap = max(gap, min(backoff, self._max_retry))
        return gap

    def _publish(self, count: int) -> bool:
        try:
            self._api.patch_annotations({ANNOTATION: str(count)})
        except Exception as exc:  # whatever happens, the thread goes on
            if self._patches is not None:
                self._patches.labels("failed").inc()
            reason = str(exc) if isinstance(exc, PodApiError) else type(exc).__name__
            if reason != self._failing:
                log.warning(
                    "deletion_cost.patch_failed", pod=self._api.pod_name, cost=count, reason=reason
                )
                self._failing = reason
            return False
        if self._patches is not None:
            self._patches.labels("ok").inc()
        if self._written is not None:
            self._written.set(count)
        if self._failing is not None:
            log.info("deletion_cost.patch_recovered", pod=self._api.pod_name, cost=count)
            self._failing = None
        log.debug("deletion_cost.patched", pod=self._api.pod_name, cost=count)
        return True


def from_settings(
    settings: WorkerSettings,
    running: Callable[[], int],
    patches: Counter | None = None,
    written: Gauge | None = None,
) -> DeletionCost | None:
    """The thread the settings ask for (None when off); ValueError when the pod's service
    account is not usable: a missing token or CA, or no namespace."""
    if not settings.pod_deletion_cost:
        return None
    assert settings.pod_name is not None and settings.kubernetes_host is not None
    assert settings.kubernetes_port is not None  # the settings check both when enabled
    directory = Path(settings.service_account_dir)
    namespace = settings.pod_namespace or _namespace_file(directory)
    api = PodApi(
        settings.kubernetes_host, settings.kubernetes_port, directory, namespace, settings.pod_name
    )
    api.check()
    log.info(
        "deletion_cost.enabled",
        pod=settings.pod_name,
        namespace=namespace,
        api=f"{settings.kubernetes_host}:{settings.kubernetes_port}",
    )
    return DeletionCost(
        api,
        running,
        interval_seconds=settings.pod_deletion_cost_interval_seconds,
        patches=patches,
        written=written,
    )


def _namespace_file(directory: Path) -> str:
    path = directory / "namespace"
    try:
        namespace = path.read_text().strip()
    except OSError:
        namespace = ""
    if not namespace:
        raise ValueError(
            f"WORKER_POD_DELETION_COST: no WORKER_POD_NAMESPACE and no namespace in {path}"
        )
    return namespace
