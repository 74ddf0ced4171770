"""What the rehearsal takes from the shipped chart, rendered by Helm's own SDK: the worker and API
containers' environment, the pods' grace period, the scrape interval, and the autoscaler (the
HPA, or the HPA that KEDA would make from the ScaledObject) with the query it reads the load by.

Nothing here is a copy of the chart's settings: change values.yaml or the adapter's rule, and
the rehearsal changes with it.
"""

import json
import math
import re
from dataclasses import dataclass, replace
from typing import Any, Literal

from benchmarks.rehearsal.hpa import HpaSpec
from services import contract
from tests.support.chart import adapter_query, find, render

Mode = Literal["hpa", "keda"]
NAMESPACE = "rehearsal"

# Worker settings that are durations, and so shrink with the time scale.
_DURATIONS = (
    "WORKER_POLLING_INTERVAL_SECONDS",
    "HEARTBEAT_INTERVAL_SECONDS",
    "EXECUTOR_GRACE_SECONDS",
    "REAPER_INTERVAL_SECONDS",
    "RETENTION_INTERVAL_SECONDS",
    "API_METRICS_CACHE_SECONDS",
)
# A reconnect takes the same time however fast the rehearsal runs (see the worker's settings).
_RECONNECT_ALLOWANCE_SECONDS = 2.0


@dataclass(frozen=True)
class KedaFallback:
    """The ScaledObject's fallback: after `failure_threshold` failed reads, KEDA reports a load
    that makes the HPA ask for `replicas` (or keeps more, with currentReplicasIfHigher)."""

    failure_threshold: int
    replicas: int
    behavior: str


@dataclass(frozen=True)
class KedaActivation:
    """KEDA's own loop beside the HPA: every `polling_interval_seconds` it reads the load; with
    `min_replicas` 0 it scales 0 -> 1 once the load exceeds `threshold` (activationThreshold),
    and 1 -> 0 after `cooldown_seconds` without. From one worker up the HPA scales, on KEDA's
    metrics server, which reads the query whenever the HPA asks: there the polling interval
    plays no part."""

    polling_interval_seconds: float
    cooldown_seconds: float
    min_replicas: int
    threshold: float

    def scaled(self, time_scale: float) -> "KedaActivation":
        return replace(
            self,
            polling_interval_seconds=self.polling_interval_seconds / time_scale,
            cooldown_seconds=self.cooldown_seconds / time_scale,
        )


@dataclass(frozen=True)
class ChartConfig:
    mode: Mode
    autoscaler: HpaSpec
    # The load query, as prometheus-adapter (HPA) or KEDA's Prometheus scaler sends it.
    load_query: str
    worker_env: dict[str, str]
    api_env: dict[str, str]
    termination_grace_seconds: float
    scrape_interval_seconds: float
    # The queue the rehearsal's work goes to, and the workflow type it enqueues there.
    queue: str
    workflow: str
    # The registry the chart mounts (JSON), which the rehearsal's processes read from a file.
    registry: str
    keda_fallback: KedaFallback | None = None
    keda_activation: KedaActivation | None = None

    @property
    def min_replicas(self) -> int:
        """The fewest workers: the HPA's minimum, or KEDA's (0 allows scale to zero)."""
        if self.keda_activation is not None:
            return self.keda_activation.min_replicas
        return self.autoscaler.min_replicas

    @property
    def worker_concurrency(self) -> int:
        return int(self.worker_env["WORKER_CONCURRENCY"])

    @property
    def drain_timeout_seconds(self) -> float:
        return float(self.worker_env["WORKER_DRAIN_TIMEOUT_SECONDS"])

    def scaled(self, time_scale: float) -> "ChartConfig":
        """Every window, period and timeout divided by `time_scale`, so that a rehearsal of
        minutes runs in seconds with the same shape. Bounds the services enforce still hold."""
        if time_scale <= 0:
            raise ValueError("time scale must be positive")
        worker_env = _scaled_env(self.worker_env, time_scale)
        interval = float(worker_env["HEARTBEAT_INTERVAL_SECONDS"])
        grace = max(
            float(worker_env["EXECUTOR_GRACE_SECONDS"]),
            4 * interval + _RECONNECT_ALLOWANCE_SECONDS,
        )
        worker_env["EXECUTOR_GRACE_SECONDS"] = f"{grace:g}"
        # Whole seconds (the worker's setting is an integer), never 0 unless it was.
        drain = self.drain_timeout_seconds
        worker_env["WORKER_DRAIN_TIMEOUT_SECONDS"] = str(math.ceil(drain / time_scale))
        api_env = _scaled_env(self.api_env, time_scale)
        api_env["EXECUTOR_GRACE_SECONDS"] = worker_env["EXECUTOR_GRACE_SECONDS"]
        termination = max(
            self.termination_grace_seconds / time_scale,
            float(worker_env["WORKER_DRAIN_TIMEOUT_SECONDS"]) + 1,
        )
        return replace(
            self,
            autoscaler=self.autoscaler.scaled(time_scale),
            keda_activation=None
            if self.keda_activation is None
            else self.keda_activation.scaled(time_scale),
            worker_env=worker_env,
            api_env=api_env,
            termination_grace_seconds=termination,
            scrape_interval_seconds=max(0.5, self.scrape_interval_seconds / time_scale),
        )


def load(
    mode: Mode,
    values: dict[str, Any] | None = None,
    pool: str = "default",
    queue: str = contract.QUEUE_NAME,
    version: str | None = None,
) -> ChartConfig:
    """Render the chart with `values` (over its defaults) and read the rehearsal's settings of
    one worker pool, whose work goes to `queue` (one of the pool's): the pool's fleet at
    applicationVersion, or with `version` its fleet of that earlier version (previousVersions)."""
    values = dict(values or {})
    values.setdefault("database", {"existingSecret": "rehearsal-db"})
    values.setdefault("api", {})
    values["api"] = {"auth": {"existingSecret": "rehearsal-api-tokens"}, **values["api"]}
    if mode == "keda":
        values["autoscaling"] = {**values.get("autoscaling", {}), "enabled": False}
        values["keda"] = {**values.get("keda", {}), "enabled": True}
    objects = render(values)
    # The default pool is <fullname>-worker; another is <fullname>-worker-<pool>. The load of
    # the pool's other queues is read too (and stays 0).
    suffix = "-worker" if pool == "default" else f"-worker-{pool}"
    if version is not None:
        suffix += "-v" + version.lower().replace(".", "-").replace("_", "-")
    worker = find(objects, "Deployment", suffix)["spec"]["template"]["spec"]
    api = find(objects, "Deployment", "-api")["spec"]["template"]["spec"]
    monitor = find(objects, "ServiceMonitor", suffix)["spec"]["endpoints"][0]
    if mode == "hpa":
        hpa = find(objects, "HorizontalPodAutoscaler", suffix)
        metric = hpa["spec"]["metrics"][0]["external"]["metric"]
        (selector,) = metric["selector"]["matchExpressions"]
        if queue not in selector["values"]:
            raise ValueError(f"the worker HPA does not read queue {queue}: {selector}")
        autoscaler, query, fallback = (
            HpaSpec.from_manifest(hpa),
            adapter_query(NAMESPACE, selector["values"], metric["selector"]["matchLabels"]),
            None,
        )
        activation = None
    else:
        scaled_object = find(objects, "ScaledObject", suffix)
        autoscaler, query, fallback = _keda(scaled_object, queue)
        activation = _keda_activation(scaled_object)
    registry = find(objects, "ConfigMap", "-registry")["data"]["registry.json"]
    worker_env = _literal_env(worker["containers"][0])
    # The queue's settings, as explicit values the rehearsal can scale (the chart leaves them
    # to the registry unless a pool sets them).
    document = json.loads(registry)
    spec = document["queues"][queue]
    (workflow,) = [name for name, t in document["workflows"].items() if t["queue"] == queue][:1]
    worker_env.setdefault("WORKER_CONCURRENCY", str(spec["worker_concurrency"]))
    worker_env.setdefault(
        "WORKER_POLLING_INTERVAL_SECONDS", str(spec.get("polling_interval_seconds", 1.0))
    )
    return ChartConfig(
        mode=mode,
        autoscaler=autoscaler,
        load_query=query,
        worker_env=worker_env,
        api_env=_literal_env(api["containers"][0]),
        registry=registry,
        termination_grace_seconds=float(worker["terminationGracePeriodSeconds"]),
        scrape_interval_seconds=_duration_seconds(monitor["interval"]),
        queue=queue,
        workflow=workflow,
        keda_fallback=fallback,
        keda_activation=activation,
    )


def _keda(scaled_object: dict[str, Any], queue: str) -> tuple[HpaSpec, str, KedaFallback | None]:
    """The HPA KEDA makes from a ScaledObject: same min/max, the trigger's threshold as the
    External metric's AverageValue target, the advanced behavior; its query as the load."""
    spec = scaled_object["spec"]
    trigger = spec["triggers"][0]
    behavior = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior")
    manifest = {
        "spec": {
            # KEDA's HPA never goes below 1; KEDA itself scales 1 <-> 0 on activation (the
            # stage plays it: KedaActivation).
            "minReplicas": max(1, int(spec.get("minReplicaCount", 0))),
            "maxReplicas": spec.get("maxReplicaCount", 100),
            "metrics": [
                {
                    "type": "External",
                    "external": {
                        "metric": {"name": "s0-prometheus"},
                        "target": {
                            "type": "AverageValue",
                            "averageValue": trigger["metadata"]["threshold"],
                        },
                    },
                }
            ],
            **({"behavior": behavior} if behavior else {}),
        }
    }
    query = trigger["metadata"]["query"].replace('namespace="jobs"', f'namespace="{NAMESPACE}"')
    queues = re.search(r'queue=~"([^"]+)"', query)
    if queues is None or queue not in queues.group(1).split("|"):
        raise ValueError(f"the KEDA trigger's query does not read queue {queue}: {query}")
    fallback = spec.get("fallback")
    return (
        HpaSpec.from_manifest(manifest),
        query,
        None
        if fallback is None
        else KedaFallback(
            int(fallback["failureThreshold"]),
            int(fallback["replicas"]),
            str(fallback.get("behavior", "static")),
        ),
    )


def _keda_activation(scaled_object: dict[str, Any]) -> KedaActivation:
    """The ScaledObject's own loop, with KEDA's defaults where the chart sets nothing."""
    spec = scaled_object["spec"]
    metadata = spec["triggers"][0]["metadata"]
    return KedaActivation(
        polling_interval_seconds=float(spec.get("pollingInterval", 30)),
        cooldown_seconds=float(spec.get("cooldownPeriod", 300)),
        min_replicas=int(spec.get("minReplicaCount", 0)),
        threshold=float(metadata.get("activationThreshold", 0)),
    )


def _literal_env(container: dict[str, Any]) -> dict[str, str]:
    """The container's plain environment values (secrets and the pod name come at run time)."""
    return {e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e}


def _scaled_env(env: dict[str, str], time_scale: float) -> dict[str, str]:
    return {
        name: f"{float(value) / time_scale:g}" if name in _DURATIONS else value
        for name, value in env.items()
    }


def _duration_seconds(text: str) -> float:
    """A Prometheus duration such as "15s", "1m" or "500ms"."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    if match is None:
        raise ValueError(f"not a duration: {text!r}")
    return float(match.group(1)) * units[match.group(2)]
