"""The stage a rehearsal plays on: PostgreSQL, the real API, a real Prometheus scraping it and
every worker pod, the Deployment stand-in, and the autoscaler reading the load through the
chart's own query. One `tick()` is one pass of every controller; a scenario drives the ticks.
"""

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from dbos import DBOSClient, EnqueueOptions

from benchmarks.rehearsal.apiserver import ApiServer
from benchmarks.rehearsal.config import NAMESPACE, ChartConfig, KedaActivation
from benchmarks.rehearsal.deployment import Deployment, Pod, PodTemplate
from benchmarks.rehearsal.hpa import HpaController
from services import contract
from services.api import auth
from tests.support.audited_worker import step_runs_in_file
from tests.support.chart import RELEASE, RELEASE_LABEL
from tests.support.fleet import SystemDatabase
from tests.support.processes import Api, free_port
from tests.support.prometheus import Prometheus

TICK_SECONDS = 0.1
POD_MODULE = "tests.support.audited_worker"  # the real worker, with step bodies recorded


@dataclass
class Sample:
    t: float
    enqueued: int
    pending: int
    load: float | None
    desired: int
    ready: int
    succeeded: int


@dataclass
class Timeline:
    samples: list[Sample] = field(default_factory=list)
    # (time, replicas before, replicas after) for every change the autoscaler made.
    changes: list[tuple[float, int, int]] = field(default_factory=list)
    # (start, end) of each metrics outage.
    outages: list[tuple[float, float]] = field(default_factory=list)
    # (time, pod, workflows it was running) for every pod a scale-in deleted.
    scale_ins: list[tuple[float, str, int]] = field(default_factory=list)


class Stage:
    def __init__(
        self,
        config: ChartConfig,
        database_url: str,
        workdir: Path,
        start_delay_seconds: float,
    ) -> None:
        self.config = config
        self.database_url = database_url
        self.workdir = workdir
        self.timeline = Timeline()
        self._clock = time.monotonic
        self._t0 = self._clock()
        self._targets = workdir / "targets.json"
        self._audit = workdir / "step-audit.jsonl"
        self._api_visible = True
        self._written_targets: list[dict[str, Any]] | None = None
        self._failures = 0  # consecutive failed reads (KEDA's fallback counts them)
        self._next_sync = self._t0
        self._next_activation_check = self._t0
        self._last_active = self._t0
        # What the chart's ServiceMonitors add to every sample: the namespace and the release.
        self._scope = {"namespace": NAMESPACE, RELEASE_LABEL: RELEASE}
        self.db = SystemDatabase(database_url)
        # The chart's registry ConfigMap, where every process reads it.
        registry = workdir / "registry.json"
        registry.write_text(config.registry)
        mounted = {"WORKFLOW_REGISTRY": str(registry)}
        # The chart's auth Secret, where the API reads it: one token of role read (the
        # rehearsal enqueues through DBOS's client and reads the public /metrics).
        api_mounts = dict(mounted)
        if config.api_env.get("API_AUTH") == "tokens":
            self.api_token, line = auth.new_token("rehearsal", "read")
            (workdir / "api-tokens").write_text(line + "\n")
            api_mounts["API_AUTH_TOKENS_FILE"] = str(workdir / "api-tokens")
        # The chart's separate metrics port, on a free one here (several stages share a host).
        self.api_metrics_port = free_port()
        api_mounts["API_METRICS_PORT"] = str(self.api_metrics_port)
        self.api = Api(
            database_url,
            workdir,
            **(
                {k: v for k, v in config.api_env.items() if k not in ("API_HOST", "API_PORT")}
                | api_mounts
            ),
        )
        self.deployment = Deployment(
            "worker",
            PodTemplate(
                env={
                    **config.worker_env,
                    **mounted,
                    "DBOS_SYSTEM_DATABASE_URL": database_url,
                    "STEP_AUDIT_FILE": str(self._audit),
                },
                termination_grace_seconds=config.termination_grace_seconds,
                start_delay_seconds=start_delay_seconds,
                module=POD_MODULE,
            ),
            workdir,
            clock=self._clock,
        )
        self.deployment.on_scale_in = self._note_scale_in
        # The chart's worker.podDeletionCost: the workers patch their pods' deletion costs
        # through a stand-in of the Kubernetes API, and scale-ins read them.
        self.kube_api: ApiServer | None = None
        if config.worker_env.get("WORKER_POD_DELETION_COST") == "true":
            self.kube_api = ApiServer(workdir, NAMESPACE)
            self.kube_api.attach(self.deployment)
        self.prometheus = Prometheus(self._prometheus_config(), workdir)
        self.autoscaler = HpaController(config.autoscaler)
        self._client = DBOSClient(system_database_url=database_url)

    def now(self) -> float:
        """Seconds since the stage was set."""
        return self._clock() - self._t0

    def open(self) -> None:
        # As the chart's migration Job does: the queue registered with the workers' settings
        # (the database's migration used the defaults).
        self._client.register_queue(
            self.config.queue,
            worker_concurrency=self.config.worker_concurrency,
            polling_interval_sec=float(self.config.worker_env["WORKER_POLLING_INTERVAL_SECONDS"]),
            application_name=contract.APP_NAME,
        )
        self.api.wait_ready()
        self._write_targets()
        self.prometheus.wait_ready()
        self.deployment.scale(self.config.min_replicas)
        # As in a running cluster: the workers are up and the load is being read before the
        # load comes (Prometheus' first scrape lands seconds after it starts).
        self.run_until(
            lambda: (
                self.deployment.ready_replicas() >= self.config.min_replicas
                and self._read_load() is not None
            ),
            timeout=120,
            what="the first workers ready and the load readable",
        )
        self._failures = 0

    def close(self) -> None:
        closings = [self.deployment.close, self.prometheus.stop, self.api.stop]
        if self.kube_api is not None:
            closings.append(self.kube_api.close)
        for closing in closings:
            try:
                closing()
            except Exception as exc:  # close the rest all the same
                print(f"rehearsal: closing failed: {exc!r}")
        self._client.destroy()
        self.db.close()

    # What scenarios do.

    def enqueue(self, count: int, num_steps: int, step_seconds: float) -> None:
        options: EnqueueOptions = {
            "queue_name": self.config.queue,
            "workflow_name": self.config.workflow,
            "app_version": self.config.worker_env.get(
                contract.ENV_APP_VERSION, contract.APP_VERSION
            ),
        }
        for _ in range(count):
            self._client.enqueue(options, num_steps, step_seconds)

    def hide_metrics(self) -> None:
        """A metrics outage: Prometheus loses the API (its series go stale), as when the API's
        Service has no ready endpoints; the load cannot be read."""
        self._api_visible = False
        self.timeline.outages.append((self.now(), float("inf")))
        self._write_targets()

    def show_metrics(self) -> None:
        self._api_visible = True
        start, _ = self.timeline.outages[-1]
        self.timeline.outages[-1] = (start, self.now())
        self._write_targets()

    def run_until(self, done: Callable[[], bool], *, timeout: float, what: str) -> None:
        deadline = self._clock() + timeout
        while not done():
            if self._clock() > deadline:
                raise TimeoutError(f"rehearsal: timed out after {timeout:g}s waiting for {what}")
            self.tick()

    def run_for(self, seconds: float) -> None:
        end = self._clock() + seconds
        while self._clock() < end:
            self.tick()

    def tick(self) -> None:
        started = self._clock()
        self.deployment.reconcile()
        self._write_targets()
        activation = self.config.keda_activation
        if activation is not None and started >= self._next_activation_check:
            self._next_activation_check = started + activation.polling_interval_seconds
            self._activate(activation)
        if started >= self._next_sync:
            self._next_sync = started + self.config.autoscaler.sync_period_seconds
            self._sync()
        remaining = TICK_SECONDS - (self._clock() - started)
        if remaining > 0:
            time.sleep(remaining)

    # The controllers.

    def _activate(self, activation: KedaActivation) -> None:
        """KEDA's loop: 0 -> 1 on activity, 1 -> 0 after the cooldown without (min 0 only)."""
        if activation.min_replicas > 0:
            return
        load = self._query_load()
        now = self._clock()
        if load is None:  # unreadable: KEDA neither wakes nor retires the target on an error
            return
        if load > activation.threshold:
            self._last_active = now
            if self.deployment.replicas == 0:
                self.timeline.changes.append((self.now(), 0, 1))
                self.deployment.scale(1)
        elif (
            self.deployment.replicas > 0 and now - self._last_active >= activation.cooldown_seconds
        ):
            self.timeline.changes.append((self.now(), self.deployment.replicas, 0))
            self.deployment.scale(0)

    def _sync(self) -> None:
        load = self._read_load()
        current = self.deployment.replicas
        existing = sum(1 for pod in self.deployment.pods() if pod.phase in ("Pending", "Running"))
        desired = current
        if current > 0:  # a target scaled to zero is KEDA's to wake: the HPA leaves it alone
            desired = self.autoscaler.sync(
                self._clock(), current, self._keda_view(load, current), status_replicas=existing
            )
        if desired != current:
            self.timeline.changes.append((self.now(), current, desired))
            self.deployment.scale(desired)
        statuses = self.db.statuses()
        self.timeline.samples.append(
            Sample(
                t=self.now(),
                enqueued=statuses.get("ENQUEUED", 0),
                pending=statuses.get("PENDING", 0),
                load=load,
                desired=desired,
                ready=self.deployment.ready_replicas(),
                succeeded=statuses.get("SUCCESS", 0),
            )
        )

    def _note_scale_in(self, pod: Pod) -> None:
        running = len(self.db.pending_on(pod.name)) if pod.phase == "Running" else 0
        self.timeline.scale_ins.append((self.now(), pod.name, running))

    def _read_load(self) -> float | None:
        """The External metric as the adapter (or KEDA) serves it; None when it has no value.
        Failed reads are counted, for KEDA's fallback."""
        load = self._query_load()
        self._failures = 0 if load is not None else self._failures + 1
        return load

    def _query_load(self) -> float | None:
        try:
            result = self.prometheus.query(self.config.load_query)
        except (AssertionError, OSError):
            result = []
        return float(result[0]["value"][1]) if result else None

    def _keda_view(self, load: float | None, current: int) -> float | None:
        """What KEDA hands the HPA: the load, or after enough failed reads its fallback (a load
        that asks for the fallback's replicas, or the current ones if higher)."""
        fallback = self.config.keda_fallback
        if fallback is None or load is not None or self._failures < fallback.failure_threshold:
            return load
        replicas = fallback.replicas
        if fallback.behavior == "currentReplicasIfHigher":
            replicas = max(replicas, current)
        return replicas * self.config.autoscaler.target_average_value

    # Prometheus.

    def _prometheus_config(self) -> Path:
        interval = f"{max(1, round(self.config.scrape_interval_seconds * 1000))}ms"
        config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "scrape_configs": [
                {
                    "job_name": "rehearsal",
                    "file_sd_configs": [{"files": [str(self._targets)]}],
                }
            ],
        }
        path = self.workdir / "prometheus.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def _write_targets(self) -> None:
        """The targets a ServiceMonitor would give: the API, and every running worker pod, with
        the namespace and pod labels the operator adds."""
        targets = [
            {
                "targets": [pod.probe_url.removeprefix("http://")],
                "labels": {**self._scope, "pod": pod.name, "job": "worker"},
            }
            for pod in self.deployment.pods()
            if pod.phase in ("Running", "Terminating")
        ]
        if self._api_visible:
            targets.append(
                {
                    "targets": [f"127.0.0.1:{self.api_metrics_port}"],
                    "labels": {**self._scope, "pod": "api", "job": "api"},
                }
            )
        if targets == self._written_targets:
            return
        temporary = self._targets.with_suffix(".tmp")
        temporary.write_text(json.dumps(targets))
        os.replace(temporary, self._targets)  # Prometheus never reads half a file
        self._written_targets = targets

    def step_reexecutions(self) -> int:
        return sum(n - 1 for n in step_runs_in_file(self._audit).values() if n > 1)
