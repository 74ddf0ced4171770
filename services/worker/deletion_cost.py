"""This pod's deletion cost, kept equal to the number of workflows the worker runs.

On a scale-in the ReplicaSet controller deletes the pods with the lowest
`controller.kubernetes.io/pod-deletion-cost` first (after pending and unready pods, before its
rules of age), and a deleted worker drains: its workflows wait out the drain or move to
another worker. A worker that keeps its cost equal to its running workflows is deleted after
the idle ones. The cost is a hint read at the moment of the scale-in, so it may lag a little:
one patch a second at most, a burst of starts and ends coalesced into one, and a failed patch
tried again later with a growing delay. Nothing here can hold up a workflow: a workflow only
sets an event, and a thread of its own talks to the API with short timeouts.
"""

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from services.worker.pod_api import PodApi, PodApiError
from services.worker.settings import WorkerSettings

logger = logging.getLogger(__name__)

ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
MIN_INTERVAL_SECONDS = 1.0
MAX_RETRY_SECONDS = 30.0


class DeletionCost:
    """A thread that patches the annotation whenever `running()` differs from what it set."""

    def __init__(
        self,
        api: PodApi,
        running: Callable[[], int],
        min_interval_seconds: float = MIN_INTERVAL_SECONDS,
        max_retry_seconds: float = MAX_RETRY_SECONDS,
    ) -> None:
        self._api = api
        self._running = running
        self._min_interval = min_interval_seconds
        self._max_retry = max_retry_seconds
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
        published: int | None = None
        failures = 0
        while True:
            if not failures:
                self._wake.wait()  # until the count changes
            if self._stop.is_set():
                return
            self._wake.clear()
            count = self._running()
            if count == published:
                failures = 0
            elif self._publish(count):
                published, failures = count, 0
            else:
                failures += 1
            delay = self._min_interval * 2**failures if failures else self._min_interval
            # Not again before the delay, however many changes come meanwhile: one patch for
            # them all, with the count as it is then.
            if self._stop.wait(min(delay, self._max_retry)):
                return

    def _publish(self, count: int) -> bool:
        try:
            self._api.patch_annotations({ANNOTATION: str(count)})
        except Exception as exc:
            reason = str(exc) if isinstance(exc, PodApiError) else type(exc).__name__
            if reason != self._failing:
                logger.warning(
                    "deletion_cost.patch_failed pod=%s cost=%d reason=%s",
                    self._api.pod_name,
                    count,
                    reason,
                )
                self._failing = reason
            return False
        if self._failing is not None:
            logger.info("deletion_cost.patch_recovered pod=%s cost=%d", self._api.pod_name, count)
            self._failing = None
        logger.debug("deletion_cost.patched pod=%s cost=%d", self._api.pod_name, count)
        return True


def from_settings(settings: WorkerSettings, running: Callable[[], int]) -> DeletionCost | None:
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
    logger.info(
        "deletion_cost.enabled pod=%s namespace=%s api=%s:%d",
        settings.pod_name,
        namespace,
        settings.kubernetes_host,
        settings.kubernetes_port,
    )
    return DeletionCost(api, running)


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
