"""The stand-in for a Kubernetes Deployment and its ReplicaSet: a replica count made into real
worker processes on this machine.

A `Pod` is one `python -m <module>` process whose name is its executor id (`DBOS__VMID`, as the
chart sets it from the pod name). `Deployment.reconcile()` is one pass of the ReplicaSet
controller and the kubelet together: it creates pods up to `spec.replicas`, starts their
processes once the start delay (scheduling, image pull) has passed, probes `/readyz`, deletes
surplus pods in the controller's order (`deletion_order`) with SIGTERM and SIGKILL after the
grace period, and replaces pods whose process died on its own with new pods of new names.

Simplified against Kubernetes: one node; a crashed process ends its pod (no container restart
in place); a pod is ready from the first `/readyz` answered 200 and unready from the first that
is not (no period, success or failure thresholds); surplus Pending pods go at once.
"""

import http.client
import math
import os
import re
import secrets
import signal
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cmp_to_key
from pathlib import Path
from typing import Literal

from services.worker.deletion_cost import ANNOTATION
from tests.support.processes import ServiceProcess, free_port

Phase = Literal["Pending", "Running", "Terminating", "Gone"]

# Kubernetes' default readiness probe timeout (timeoutSeconds).
PROBE_TIMEOUT_SECONDS = 1.0
# What ReplicaSet-generated name suffixes are made of (k8s.io/apimachinery utilrand.String).
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_NAME_SUFFIX_LENGTH = 5
# The annotation the ReplicaSet controller reads (named once, where the worker writes it).
DELETION_COST = ANNOTATION
# Decimal digits with an optional "-" (strconv.ParseInt's base-10 syntax).
_DECIMAL = re.compile(r"-?[0-9]+")
# Every pod name given out in this process: a new pod never reuses one, not even one of another
# Deployment object of the same name (the database remembers executor ids).
_issued_names: set[str] = set()
_names_lock = threading.Lock()


@dataclass(frozen=True)
class PodTemplate:
    # The worker container's environment (from the chart); DBOS__VMID, WORKER_PROBE_HOST and
    # WORKER_PROBE_PORT are set per pod.
    env: dict[str, str]
    # SIGTERM, then SIGKILL after this many seconds (terminationGracePeriodSeconds).
    termination_grace_seconds: float
    # Scheduling and image pull: how long a new pod stays Pending before its process starts.
    start_delay_seconds: float = 0.0
    # python -m <module>
    module: str = "services.worker"


@dataclass(eq=False)
class Pod:
    """One worker pod. Constructible without a process (phase and times given), for ranking."""

    name: str
    # Clock time the pod object was created (metadata.creationTimestamp), before its delay.
    created_at: float
    # metadata.annotations; the deletion cost is read from here. Replaced whole, never changed
    # in place: the stand-in's API server writes it from its own threads.
    annotations: dict[str, str] = field(default_factory=dict)
    phase: Phase = "Pending"
    # Running, and its /readyz answered 200 at the last reconcile.
    ready: bool = False
    # When `ready` last turned true (the Ready condition's lastTransitionTime); None unless ready.
    ready_since: float | None = None
    # metadata.uid: random, the controller's last tie-break on scale-down.
    uid: str = field(default_factory=lambda: secrets.token_hex(16))
    probe_url: str = ""
    log_path: Path = Path(os.devnull)
    started_at: float | None = None
    # When the pod was deleted (metadata.deletionTimestamp): SIGTERM was sent then.
    terminating_since: float | None = None
    gone_at: float | None = None
    # The process's exit status (negative: the signal that ended it); None if it never ran.
    exit_code: int | None = None
    # The worker process (the pod's one container), once started.
    container: ServiceProcess | None = field(default=None, repr=False)

    @property
    def deletion_cost(self) -> int:
        """The controller.kubernetes.io/pod-deletion-cost annotation, as the ReplicaSet
        controller reads it (GetDeletionCostFromPodAnnotations): lower goes first on scale-down;
        absent, or not an int32 without a plus sign or leading zeros, it is 0."""
        value = self.annotations.get(DELETION_COST, "")
        # validFirstDigit: no "+" and no leading "0" (a lone "-" fails the syntax below).
        if (value.startswith("0") and len(value) > 1) or not _DECIMAL.fullmatch(value):
            return 0
        cost = int(value)
        return cost if -(2**31) <= cost < 2**31 else 0

    @property
    def pid(self) -> int | None:
        return None if self.container is None else self.container.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""


def deletion_order(pods: Sequence[Pod], now: float) -> list[Pod]:
    """Active (Pending or Running) pods in the order the ReplicaSet controller deletes them.

    Kubernetes' `ActivePodsWithRanks.Less` (pkg/controller/controller_utils.go), as used by
    `getPodsToDelete` (pkg/controller/replicaset/replica_set.go), with LogarithmicScaleDown (GA
    since 1.31):
      1-2. unassigned, then Pending, before Running (here: not yet started before started);
      3.   not ready before ready;
      4.   lower pod-deletion-cost before higher;
      5.   more ready pods of the set on the same node first (one node here: always equal);
      6.   both ready: became ready more recently first, the times compared in whole powers of
           two of nanoseconds before `now`, and by uid (that is, at random) within one bucket;
      7.   higher container restart count first (always 0 here: a crash ends the pod);
      8.   created more recently first, bucketed the same way, by uid within one bucket.
    Pods equal in all of these keep their given order.
    """
    inactive = [pod.name for pod in pods if pod.phase not in ("Pending", "Running")]
    if inactive:
        raise ValueError(f"only Pending or Running pods are ranked, not {inactive}")

    def compare(a: Pod, b: Pod) -> int:
        if _deleted_before(a, b, now):
            return -1
        if _deleted_before(b, a, now):
            return 1
        return 0

    return sorted(pods, key=cmp_to_key(compare))


_PHASE_ORDINAL = {"Pending": 0, "Running": 2}  # Kubernetes' Unknown (1) does not occur here


def _deleted_before(a: Pod, b: Pod, now: float) -> bool:
    """`ActivePodsWithRanks.Less(a, b)`."""
    if a.phase != b.phase:
        return _PHASE_ORDINAL[a.phase] < _PHASE_ORDINAL[b.phase]
    if a.ready != b.ready:
        return not a.ready
    if a.deletion_cost != b.deletion_cost:
        return a.deletion_cost < b.deletion_cost
    if a.ready and b.ready and a.ready_since != b.ready_since:
        return _more_recent(a.ready_since, b.ready_since, a, b, now)
    if a.created_at != b.created_at:
        return _more_recent(a.created_at, b.created_at, a, b, now)
    return False


def _more_recent(ta: float | None, tb: float | None, a: Pod, b: Pod, now: float) -> bool:
    """Kubernetes' logarithmic comparison of two different times: `ta` is the more recent in
    whole powers of two before now, or in the same power and `a` has the smaller uid. A missing
    time (Kubernetes' zero time) comes first, as `afterOrZero` has it."""
    if ta is None or tb is None:
        return ta is None
    rank_diff = _log2_rank(now - ta) - _log2_rank(now - tb)
    if rank_diff == 0:
        return a.uid < b.uid
    return rank_diff < 0


def _log2_rank(age_seconds: float) -> int:
    """`logarithmicRankDiff`'s rank: floor(log2(age in nanoseconds)), -1 for no age."""
    nanoseconds = int(age_seconds * 1e9)
    return int(math.log2(nanoseconds)) if nanoseconds > 0 else -1


def _new_pod_name(prefix: str) -> str:
    with _names_lock:
        while True:
            suffix = "".join(secrets.choice(_NAME_ALPHABET) for _ in range(_NAME_SUFFIX_LENGTH))
            name = f"{prefix}-{suffix}"
            if name not in _issued_names:
                _issued_names.add(name)
                return name


class Deployment:
    """spec.replicas made real, one `reconcile()` pass at a time. Not thread-safe."""

    def __init__(
        self,
        name: str,
        template: PodTemplate,
        workdir: Path,
        clock: Callable[[], float] = time.monotonic,
        probe_timeout_seconds: float = PROBE_TIMEOUT_SECONDS,
    ) -> None:
        self.name = name
        self.template = template
        self.workdir = workdir
        self.replicas = 0
        self._clock = clock
        self._probe_timeout = probe_timeout_seconds
        self._history: list[Pod] = []
        # Called with each pod a scale-down deletes, just before its SIGTERM.
        self.on_scale_in: Callable[[Pod], None] = lambda pod: None
        # What a pod's container gets beside the template's environment: the kubelet's part (the
        # stand-in's API server sets it: the API's address, a service account, the pod's name).
        self.pod_env: Callable[[Pod], dict[str, str]] = lambda pod: {}
        # No proxy from the environment for probes of 127.0.0.1.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        # Probes run side by side, as the kubelet's do: one hanging pod delays a pass once.
        self._probes = ThreadPoolExecutor(max_workers=8, thread_name_prefix=f"{name}-probe")

    def __enter__(self) -> "Deployment":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def scale(self, replicas: int) -> None:
        """Set spec.replicas; the next `reconcile()` acts on it."""
        if replicas < 0:
            raise ValueError("replicas cannot be negative")
        self.replicas = replicas

    def pods(self) -> list[Pod]:
        """The pods that are not Gone, oldest first."""
        return [pod for pod in self._history if pod.phase != "Gone"]

    def history(self) -> list[Pod]:
        """Every pod this Deployment created, Gone ones included, oldest first."""
        return list(self._history)

    def ready_replicas(self) -> int:
        return sum(1 for pod in self._history if pod.phase == "Running" and pod.ready)

    def reconcile(self) -> None:
        """One pass: notice exits, probe, create or delete pods, enforce grace, start pods."""
        self._reap()
        self._probe()
        self._scale()
        self._kill_overdue()
        self._start_due()

    def kill(self, pod: Pod, sig: signal.Signals = signal.SIGKILL) -> None:
        """Node loss: the pod's process gets `sig` with no drain (SIGKILL: it is dead on return).
        The next `reconcile()` finds the pod Gone and replaces it. A pod not started is lost."""
        if pod.phase == "Gone":
            return
        if pod.container is None:
            self._gone(pod, self._clock())
            return
        pod.container.send(sig)
        if sig == signal.SIGKILL:
            pod.container.wait(timeout=10)

    def close(self) -> None:
        """SIGKILL every process left, wait for them, close their logs. Idempotent."""
        for pod in self._history:
            if pod.phase != "Gone":
                self._gone(pod, self._clock())
        self._probes.shutdown(wait=True)

    # The pass's steps.

    def _reap(self) -> None:
        for pod in self._history:
            if pod.phase in ("Running", "Terminating") and self._exited(pod):
                self._gone(pod, self._clock())

    def _probe(self) -> None:
        running = [pod for pod in self._history if pod.phase == "Running"]
        answers = list(self._probes.map(self._ready, [pod.probe_url for pod in running]))
        now = self._clock()
        for pod, ready in zip(running, answers, strict=True):
            if ready and not pod.ready:
                pod.ready_since = now
            elif not ready:
                pod.ready_since = None
            pod.ready = ready

    def _scale(self) -> None:
        active = [pod for pod in self._history if pod.phase in ("Pending", "Running")]
        now = self._clock()
        if len(active) > self.replicas:
            surplus = len(active) - self.replicas
            for pod in deletion_order(active, now)[:surplus]:
                self.on_scale_in(pod)
                self._delete(pod, now)
        for _ in range(self.replicas - len(active)):
            name = _new_pod_name(self.name)
            self._history.append(
                Pod(name=name, created_at=now, log_path=self.workdir / f"{name}.log")
            )

    def _kill_overdue(self) -> None:
        now = self._clock()
        for pod in self._history:
            if pod.phase != "Terminating" or pod.container is None:
                continue
            assert pod.terminating_since is not None
            if now >= pod.terminating_since + self.template.termination_grace_seconds:
                pod.container.process.kill()  # nothing if it has exited

    def _start_due(self) -> None:
        for pod in self._history:
            if pod.phase == "Pending":
                now = self._clock()
                if now >= pod.created_at + self.template.start_delay_seconds:
                    self._start(pod, now)

    # Single pods.

    def _start(self, pod: Pod, now: float) -> None:
        taken = {p.probe_url for p in self._history if p.phase != "Gone"}
        port = free_port()
        while f"http://127.0.0.1:{port}" in taken:  # handed to a pod that has not bound it yet
            port = free_port()
        pod.probe_url = f"http://127.0.0.1:{port}"
        pod.container = ServiceProcess(
            self.template.module,
            {
                **self.template.env,
                **self.pod_env(pod),
                "DBOS__VMID": pod.name,
                "WORKER_PROBE_HOST": "127.0.0.1",
                "WORKER_PROBE_PORT": str(port),
            },
            pod.log_path,
        )
        pod.phase = "Running"
        pod.started_at = now

    def _delete(self, pod: Pod, now: float) -> None:
        """Delete a pod: not started, it is gone at once; else SIGTERM and its grace begins.
        It no longer counts as a replica from here on."""
        if pod.container is None:
            self._gone(pod, now)
            return
        pod.phase = "Terminating"
        pod.terminating_since = now
        pod.ready = False
        pod.ready_since = None
        pod.container.send(signal.SIGTERM)  # nothing if it has exited

    def _gone(self, pod: Pod, now: float) -> None:
        if pod.container is not None:
            # Kills the process unless it has exited, reaps it, and closes its log.
            pod.exit_code = pod.container.stop(signal.SIGKILL, timeout=10)
        pod.phase = "Gone"
        pod.gone_at = now
        pod.ready = False
        pod.ready_since = None

    @staticmethod
    def _exited(pod: Pod) -> bool:
        return pod.container is None or pod.container.process.poll() is not None

    def _ready(self, probe_url: str) -> bool:
        try:
            with self._opener.open(f"{probe_url}/readyz", timeout=self._probe_timeout) as answer:
                return bool(answer.status == 200)
        except (OSError, http.client.HTTPException):
            return False
