"""The chart, linted and rendered by Helm's Go SDK, validated against Kubernetes' schemas."""

import json
import tarfile
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml

from services import contract
from services.contract import registry as workflow_registry
from tests.support.chart import (
    CHART,
    DASHBOARD,
    NAMESPACE,
    RELEASE,
    REQUIRED_VALUES,
    SCENARIOS,
    alert_rules,
    find,
    render,
    values_of,
)

KUBE_VERSIONS = ["1.30.0", "1.33.0"]
# Custom resources: no Kubernetes schema; each is checked by its own test below.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule", "ScaledObject"}
DEFAULTS = REQUIRED_VALUES
REGISTRY = workflow_registry.load({})
# A registry an earlier version ran with: the built-in one and a queue dropped since.
_OLD: dict[str, Any] = json.loads(workflow_registry.BUILT_IN.read_text())
_OLD["queues"]["legacy"] = {"worker_concurrency": 5}
_OLD["workflows"]["legacy_job"] = {
    "queue": "legacy",
    "module": "services.worker.workflows",
    "input_schema": {"type": "object"},
}


def _scenario_id(path: Path) -> str:
    return path.name.removesuffix("-values.yaml")


@pytest.fixture(params=SCENARIOS, ids=_scenario_id)
def scenario(request: pytest.FixtureRequest) -> Path:
    path: Path = request.param
    return path


def _containers(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(owner name, pod spec, container) for every container of the chart's own (the values'
    extra containers and init containers are the operator's)."""
    found: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    for obj in objects:
        if obj["kind"] in ("Deployment", "Job"):
            pod = obj["spec"]["template"]["spec"]
            found.extend(
                (obj["metadata"]["name"], pod, c)
                for c in pod["containers"]
                if c["name"] in ("api", "worker", "migrate")
            )
    return found


@pytest.mark.parametrize("kube", ["v1.30.0", "v1.33.0"])
def test_lint_is_clean_in_strict_mode(scenario: Path, kube: str) -> None:
    result = helm_python.lint(CHART, values_of(scenario), strict=True, kube_version=kube)
    assert result["errors"] == [], result["messages"]


@pytest.mark.parametrize("kube", KUBE_VERSIONS)
def test_every_object_is_valid_kubernetes(scenario: Path, kube: str) -> None:
    objects = render(values_of(scenario))
    assert objects
    for obj in objects:
        if obj["kind"] in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, kube, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            pytest.fail(f"{obj['kind']} is neither Kubernetes nor a custom kind the tests check")


def test_workers_have_no_replicas_while_an_autoscaler_owns_them() -> None:
    for values in (
        DEFAULTS,
        {**DEFAULTS, "autoscaling": {"enabled": False}, "keda": {"enabled": True}},
    ):
        worker = find(render(values), "Deployment", "-worker")
        assert "replicas" not in worker["spec"]
    fixed = render({**DEFAULTS, "autoscaling": {"enabled": False}, "worker": {"replicas": 3}})
    assert find(fixed, "Deployment", "-worker")["spec"]["replicas"] == 3
    assert not [o for o in fixed if o["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")]


def test_hpa_scales_the_worker_deployment_on_the_metric_the_api_exports() -> None:
    objects = render(DEFAULTS)
    hpa = find(objects, "HorizontalPodAutoscaler")
    worker = find(objects, "Deployment", "-worker")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": worker["metadata"]["name"],
    }
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "External"
    assert metric["external"]["metric"]["name"] == contract.QUEUE_LOAD_METRIC
    # The one default pool serves every queue of the registry: it scales on the busiest.
    # This release's API only (another release in the namespace reports its own load).
    # Its own version's share: DBOS runs work only on workers of its version.
    assert metric["external"]["metric"]["selector"] == {
        "matchLabels": {"queue_worker_release": RELEASE, "application_version": "1"},
        "matchExpressions": [
            {"key": "queue", "operator": "In", "values": sorted(REGISTRY.queues)},
        ],
    }
    assert metric["external"]["target"] == {"type": "AverageValue", "averageValue": "1"}


def test_keda_reads_the_same_signal_and_holds_when_prometheus_is_silent() -> None:
    objects = render({**DEFAULTS, "autoscaling": {"enabled": False}, "keda": {"enabled": True}})
    scaled = find(objects, "ScaledObject")
    worker = find(objects, "Deployment", "-worker")
    assert scaled["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"]
    assert scaled["spec"]["fallback"]["behavior"] == "currentReplicasIfHigher"
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    assert trigger["metadata"]["ignoreNullValues"] == "false"
    assert trigger["metadata"]["query"].startswith(f"max({contract.QUEUE_LOAD_METRIC}{{")
    assert not [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]


def test_pods_outlast_their_drain_and_each_worker_is_its_own_executor(scenario: Path) -> None:
    worker = find(render(values_of(scenario)), "Deployment", "-worker")
    pod = worker["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert pod["terminationGracePeriodSeconds"] > int(env["WORKER_DRAIN_TIMEOUT_SECONDS"]["value"])
    assert env["DBOS__VMID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_every_container_is_locked_down_with_probes_and_resources(scenario: Path) -> None:
    containers = _containers(render(values_of(scenario)))
    assert containers
    for owner, pod, container in containers:
        assert pod["securityContext"]["runAsNonRoot"] is True, owner
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, owner
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, owner
        assert security["allowPrivilegeEscalation"] is False, owner
        assert security["capabilities"]["drop"] == ["ALL"], owner
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
        if not owner.endswith("-migrate"):
            assert container["readinessProbe"] and container["livenessProbe"], owner


def test_the_database_url_is_referenced_never_inlined(scenario: Path) -> None:
    values = values_of(scenario)
    objects = render(values)
    for owner, _, container in _containers(objects):
        env = {e["name"]: e for e in container["env"]}
        reference = env["DBOS_SYSTEM_DATABASE_URL"]
        assert "value" not in reference, owner
        assert reference["valueFrom"]["secretKeyRef"]["key"] == "url"
    url = values["database"].get("url")
    secrets = [o for o in objects if o["kind"] == "Secret"]
    if url:
        (secret,) = secrets
        assert secret["stringData"] == {"url": url}
        others = [o for o in objects if o["kind"] != "Secret"]
        assert url not in json.dumps(others)
    else:
        assert secrets == []


def test_the_migration_job_runs_before_the_release_and_grants_the_app_role() -> None:
    objects = render(
        {
            **REQUIRED_VALUES,
            "database": {"url": "postgresql://a@db/x", "migration": {"appRole": "app"}},
        }
    )
    job = find(objects, "Job", "-migrate")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    secret = find(objects, "Secret")
    hook_weight = int(secret["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert hook_weight < int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "migrate",
        "--app-role",
        "app",
    ]
    worker = find(objects, "Deployment", "-worker")
    env = {
        e["name"]: e.get("value")
        for e in worker["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["WORKER_RUN_MIGRATIONS"] == "false"


def test_service_monitors_select_services_and_ports_that_exist() -> None:
    objects = render(DEFAULTS)
    services = [o for o in objects if o["kind"] == "Service"]
    monitors = [o for o in objects if o["kind"] == "ServiceMonitor"]
    assert len(monitors) == 2
    for monitor in monitors:
        wanted = monitor["spec"]["selector"]["matchLabels"]
        matched = [s for s in services if wanted.items() <= s["metadata"]["labels"].items()]
        assert len(matched) == 1, monitor["metadata"]["name"]
        ports = {p["name"] for p in matched[0]["spec"]["ports"]}
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports


def test_the_dashboard_configmap_carries_the_dashboard_file() -> None:
    dashboard = find(render(DEFAULTS), "ConfigMap", "-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["dbos-queue-worker.json"]) == json.loads(
        DASHBOARD.read_text()
    )


def _registry_with(**queues: dict[str, Any]) -> dict[str, Any]:
    """The built-in registry with these queues added or replaced."""
    registry: dict[str, Any] = json.loads(workflow_registry.BUILT_IN.read_text())
    registry["queues"].update(queues)
    return registry


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({**DEFAULTS, "keda": {"enabled": True}}, "autoscaling.enabled and keda.enabled"),
        (
            {
                **DEFAULTS,
                "worker": {"drainTimeoutSeconds": 60, "terminationGracePeriodSeconds": 30},
            },
            "terminationGracePeriodSeconds must be greater than drainTimeoutSeconds",
        ),
        ({}, "database.existingSecret"),
        ({**DEFAULTS, "autoscaling": {"minReplicas": 5, "maxReplicas": 2}}, "minReplicas"),
        (
            {**DEFAULTS, "workerPools": [{"name": "a"}, {"name": "b"}]},
            "pools a, b all leave queues empty",
        ),
        (
            {
                **DEFAULTS,
                "workerPools": [
                    {"name": "a", "queues": ["fanout"]},
                    {"name": "b", "queues": ["fanout", "workflow-queue"]},
                ],
            },
            'queue "fanout" is in pools "a" and "b"',
        ),
        (
            {**DEFAULTS, "workerPools": [{"name": "default", "queues": ["fan-out"]}]},
            'names queue "fan-out", which the registry does not declare',
        ),
        (
            {**DEFAULTS, "workerPools": [{"name": "a", "queues": ["fanout"]}]},
            "no pool serves queue(s) fanout-items, workflow-queue",
        ),
        (
            {**DEFAULTS, "workerPools": [{"name": "a"}, {"name": "a", "queues": ["fanout"]}]},
            'the name "a" is used twice',
        ),
        (
            {**DEFAULTS, "workerPools": [{"name": "Bad_Name"}]},
            "workerPools/0/name",
        ),
        (
            # (12 workers + 3 of a rollout's surge) x (4 + 4), (2 + 1) API x 5, 1 migration.
            {**DEFAULTS, "autoscaling": {"maxReplicas": 12}},
            "the release may open 136 database connections at its maximum",
        ),
        (
            # The default fleet fits; one earlier version's fleet beside it does not.
            {**DEFAULTS, "previousVersions": [{"version": "0", "image": {"tag": "0.9"}}]},
            "the release may open 176 database connections at its maximum",
        ),
        (
            {
                **DEFAULTS,
                "applicationVersion": "2",
                "database": {"existingSecret": "db", "maxConnections": 400},
                "previousVersions": [
                    {"version": "1", "image": {"tag": "1.0"}},
                    {"version": 1, "image": {"tag": "1.1"}},
                ],
            },
            'previousVersions: version "1" is listed twice, or is applicationVersion',
        ),
        (
            {**DEFAULTS, "previousVersions": [{"version": "1", "image": {"tag": "1.0"}}]},
            'previousVersions: version "1" is listed twice, or is applicationVersion',
        ),
        (
            # Version 1's registry has a queue that no pool serves now, and no pool is open.
            {
                **DEFAULTS,
                "database": {"existingSecret": "db", "maxConnections": 400},
                "applicationVersion": "2",
                "workerPools": [{"name": "default", "queues": sorted(REGISTRY.queues)}],
                "previousVersions": [{"version": "1", "image": {"tag": "1"}, "registry": _OLD}],
            },
            'previousVersions "1": its registry\'s queue(s) legacy are served by no pool now',
        ),
        (
            {
                **DEFAULTS,
                "database": {"existingSecret": "db", "maxConnections": 400},
                "applicationVersion": "2",
                "workerPools": [{"name": "default", "image": "example.com/acme/worker:2"}],
                "previousVersions": [{"version": "1", "image": {"tag": "1"}}],
            },
            'pool "default" runs an image of its own (workerPools[].image): name that '
            "version's in previousVersions[].images.default",
        ),
        (
            {
                **DEFAULTS,
                "database": {"existingSecret": "db", "maxConnections": 400},
                "applicationVersion": "2",
                "workerPools": [{"name": "twenty-characters-xy"}],
                "previousVersions": [
                    {"version": "0123456789abcdef0123456789", "image": {"tag": "1"}}
                ],
            },
            "is longer than 52 characters",
        ),
        (
            {**DEFAULTS, "worker": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}},
            "worker.rollingUpdate: maxSurge and maxUnavailable are both 0",
        ),
        (
            {
                **DEFAULTS,
                "database": {"existingSecret": "db", "maxConnections": 400},
                "applicationVersion": "2",
                "previousVersions": [
                    {
                        "version": "1",
                        "image": {"tag": "1"},
                        "registry": {k: v for k, v in _OLD.items() if k != "default_workflow"},
                    }
                ],
            },
            'previousVersions "1": registry must declare default_workflow, queues and workflows',
        ),
        (
            {"database": {"existingSecret": "db"}},
            "api.auth.existingSecret: name the Secret holding the API's token file",
        ),
        (
            {**DEFAULTS, "networkPolicy": {"enabled": True}},
            "networkPolicy.database.to: name where the database is",
        ),
        (
            {
                **DEFAULTS,
                "worker": {"podDeletionCost": {"enabled": True}},
                "networkPolicy": {
                    "enabled": True,
                    "database": {"to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}]},
                },
            },
            "networkPolicy.kubernetesApi: the workers patch their pods' deletion cost",
        ),
        (
            {**DEFAULTS, "networkPolicy": {"metricsFrom": []}},
            "networkPolicy/metricsFrom",
        ),
        (
            {**DEFAULTS, "applicationVersion": "2+build"},
            "applicationVersion",
        ),
        (
            {**DEFAULTS, "registry": {"queues": {"q": {"worker_concurrency": 1}}}},
            "registry",
        ),
        (
            {
                **DEFAULTS,
                "registry": _registry_with(
                    fanout={"worker_concurrency": 5, "global_concurrency": 8}
                ),
                "workerPools": [{"name": "default", "concurrency": 10}],
            },
            'concurrency 10 exceeds queue "fanout"\'s global_concurrency 8',
        ),
        (
            {
                **DEFAULTS,
                "registry": _registry_with(
                    **{"a.b": {"worker_concurrency": 1}, "axb": {"worker_concurrency": 1}}
                ),
                "autoscaling": {"maxReplicas": 2},
                "workerPools": [{"name": "default"}, {"name": "dots", "queues": ["a.b"]}],
            },
            'also matches queue "axb"',
        ),
        (
            {
                **DEFAULTS,
                "autoscaling": {"enabled": False},
                "keda": {"enabled": True, "maxReplicaCount": 3},
                "workerPools": [{"name": "default", "keda": {"minReplicaCount": 5}}],
            },
            "keda minReplicaCount is greater than maxReplicaCount",
        ),
        ({**DEFAULTS, "replicas": 3}, "replicas"),
        ({**DEFAULTS, "worker": {"concurrency": "ten"}}, "concurrency"),
        ({"database": {"url": "mysql://x"}}, "url"),
        (
            {**DEFAULTS, "executorGraceSeconds": 21, "worker": {"heartbeatIntervalSeconds": 5}},
            "executorGraceSeconds must be at least four times",
        ),
    ],
    ids=[
        "two-scalers",
        "grace-below-drain",
        "no-database",
        "min-above-max",
        "two-open-pools",
        "queue-in-two-pools",
        "unknown-queue",
        "unserved-queue",
        "pool-named-twice",
        "bad-pool-name",
        "connection-budget",
        "connection-budget-in-a-rollout",
        "version-listed-twice",
        "previous-version-is-current",
        "earlier-queue-unserved",
        "earlier-pool-image-missing",
        "earlier-name-too-long",
        "rollout-that-cannot-progress",
        "earlier-registry-incomplete",
        "api-tokens-unnamed",
        "network-policy-without-database",
        "network-policy-without-kubernetes-api",
        "network-policy-scrapes-from-anyone",
        "version-not-a-label-value",
        "registry-incomplete",
        "pool-concurrency-above-global",
        "queue-regex-overlap",
        "pool-keda-min-above-max",
        "unknown-key",
        "wrong-type",
        "bad-url",
        "grace-below-four-heartbeats",
    ],
)
def test_bad_values_fail_the_install_naming_the_key(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm_python.HelmError) as failure:
        render(values)
    assert message in str(failure.value)


def test_the_chart_readme_documents_every_value() -> None:
    readme = (CHART / "README.md").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def documented_prefixes(node: dict[str, Any], prefix: str = "") -> list[str]:
        keys = []
        for key, value in node.items():
            path = f"{prefix}{key}"
            if f"`{path}`" in readme:
                keys.append(path)
            elif isinstance(value, dict) and value:
                keys.extend(documented_prefixes(value, path + "."))
            else:
                pytest.fail(f"value {path} is not documented in the chart README")
        return keys

    assert documented_prefixes(values)


def test_no_container_sets_a_variable_twice(scenario: Path) -> None:
    for owner, _, container in _containers(render(values_of(scenario))):
        names = [e["name"] for e in container["env"]]
        assert len(names) == len(set(names)), (owner, names)


def test_the_migration_job_can_connect_as_the_schema_owner() -> None:
    values = {
        **REQUIRED_VALUES,
        "database": {"existingSecret": "app", "migration": {"existingSecret": "owner"}},
    }
    objects = render(values)
    job = find(objects, "Job", "-migrate")["spec"]["template"]["spec"]["containers"][0]
    api = find(objects, "Deployment", "-api")["spec"]["template"]["spec"]["containers"][0]
    secret_of = {
        e["name"]: e.get("valueFrom", {}).get("secretKeyRef", {}).get("name") for e in job["env"]
    }
    assert secret_of["DBOS_SYSTEM_DATABASE_URL"] == "owner"
    assert {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in api["env"][:1]} == {
        "DBOS_SYSTEM_DATABASE_URL": "app"
    }


def test_the_migration_registers_every_queue_as_its_pool_will() -> None:
    # A pool scaled to zero (KEDA) has no worker to register its queues, and their load is only
    # reported once they are: the migration registers them from the registry the chart mounts,
    # into which each pool's sizing is written.
    values = {
        **REQUIRED_VALUES,
        "database": {"existingSecret": "app", "maxConnections": 200},
        "worker": {"concurrency": 25, "pollingIntervalSeconds": 0.5, "heartbeatIntervalSeconds": 2},
        "workerPools": [
            {"name": "default"},
            {"name": "fan", "queues": ["fanout"], "concurrency": 3},
        ],
        "autoscaling": {"maxReplicas": 5},
        "executorGraceSeconds": 10,
    }
    objects = render(values)
    job = find(objects, "Job", "-migrate")["spec"]["template"]["spec"]
    registry = workflow_registry.parse(
        find(objects, "ConfigMap", "-registry-migrate")["data"]["registry.json"], "configmap"
    )
    assert {name: q.worker_concurrency for name, q in registry.queues.items()} == {
        "fanout": 3,
        "fanout-items": 25,
        "workflow-queue": 25,
    }
    assert {q.polling_interval_seconds for q in registry.queues.values()} == {0.5}
    assert (
        find(objects, "ConfigMap", "-registry")["data"]
        == find(objects, "ConfigMap", "-registry-migrate")["data"]
    )
    env = {e["name"]: e.get("value") for e in job["containers"][0]["env"]}
    # The migration checks the grace against the heartbeat interval, as a worker does.
    assert env["HEARTBEAT_INTERVAL_SECONDS"] == "2"
    assert "WORKER_CONCURRENCY" not in env
    assert job["volumes"][-1]["configMap"]["name"].endswith("-registry-migrate")
    hook = find(objects, "ConfigMap", "-registry-migrate")["metadata"]["annotations"]
    # Made before the Job (a pre-install hook runs before the release's other objects exist).
    assert (
        hook["helm.sh/hook-weight"]
        < find(objects, "Job", "-migrate")["metadata"]["annotations"]["helm.sh/hook-weight"]
    )


def test_the_chart_ships_the_images_built_in_registry() -> None:
    shipped = (CHART / "files" / "registry.json").read_text()
    assert json.loads(shipped) == json.loads(workflow_registry.BUILT_IN.read_text())


def test_every_container_reads_the_one_registry_and_restarts_when_it_changes() -> None:
    objects = render(DEFAULTS)
    changed = render({**DEFAULTS, "workerPools": [{"name": "default", "concurrency": 7}]})
    for owner, _pod, container in _containers(objects):
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["WORKFLOW_REGISTRY"] == "/etc/dbos-queue-worker/registry.json", owner
        mount = next(m for m in container["volumeMounts"] if m["name"] == "registry")
        assert mount["mountPath"] == "/etc/dbos-queue-worker" and mount["readOnly"], owner
    for name in ("-api", "-worker"):
        before = find(objects, "Deployment", name)["spec"]["template"]["metadata"]
        after = find(changed, "Deployment", name)["spec"]["template"]["metadata"]
        assert (
            before["annotations"]["checksum/registry"] != after["annotations"]["checksum/registry"]
        )


def test_two_pools_get_their_own_deployment_autoscaler_and_queues() -> None:
    values = values_of(CHART / "ci" / "pools-values.yaml")
    objects = render(values)
    default, fanout = (
        find(objects, "Deployment", "-worker"),
        find(objects, "Deployment", "-worker-fanout"),
    )
    hpas = {o["metadata"]["name"]: o for o in objects if o["kind"] == "HorizontalPodAutoscaler"}
    assert set(hpas) == {default["metadata"]["name"], fanout["metadata"]["name"]}
    for deployment, queues, maximum in (
        (default, ["workflow-queue"], 6),
        (fanout, ["fanout", "fanout-items"], 4),
    ):
        name = deployment["metadata"]["name"]
        hpa = hpas[name]
        assert hpa["spec"]["scaleTargetRef"]["name"] == name
        assert hpa["spec"]["maxReplicas"] == maximum
        (metric,) = hpa["spec"]["metrics"]
        (selector,) = metric["external"]["metric"]["selector"]["matchExpressions"]
        assert selector == {"key": "queue", "operator": "In", "values": queues}
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["WORKER_QUEUES"] == ",".join(queues)
    assert hpas[fanout["metadata"]["name"]]["spec"]["metrics"][0]["external"]["target"] == {
        "type": "AverageValue",
        "averageValue": "0.8",
    }
    # Each pool's pods are its own: selectors never overlap, so neither the PDBs nor the
    # Services nor the ServiceMonitors take the other pool's pods.
    selectors = [d["spec"]["selector"]["matchLabels"] for d in (default, fanout)]
    assert selectors[0] != selectors[1]
    names = {default["metadata"]["name"], fanout["metadata"]["name"]}
    for kind in ("PodDisruptionBudget", "Service", "ServiceMonitor"):
        owned = {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}
        assert names <= set(owned), kind
    fan_pod = fanout["spec"]["template"]["spec"]
    assert fan_pod["containers"][0]["image"] == "registry.example.com/acme/fanout-worker:1.4.2"
    assert fan_pod["nodeSelector"] == {"workload": "io-bound"}
    assert "nodeSelector" not in default["spec"]["template"]["spec"]
    monitors = [
        o for o in objects if o["kind"] == "ServiceMonitor" and o["metadata"]["name"] in names
    ]
    pools = {m["spec"]["endpoints"][0]["relabelings"][0]["replacement"] for m in monitors}
    assert pools == {"default", "fanout"}


def test_keda_scales_each_pool_on_the_busiest_of_its_queues() -> None:
    values = {
        **values_of(CHART / "ci" / "pools-values.yaml"),
        "autoscaling": {"enabled": False},
        "keda": {"enabled": True, "maxReplicaCount": 5},
    }
    objects = render(values)
    queries = {
        o["metadata"]["name"]: o["spec"]["triggers"][0]["metadata"]["query"]
        for o in objects
        if o["kind"] == "ScaledObject"
    }
    metric = contract.QUEUE_LOAD_METRIC
    scope = f'namespace="{NAMESPACE}", queue_worker_release="{RELEASE}"'

    def query(queues: str) -> str:
        # The current version's share: the API always reports it, 0 when idle.
        return f'max({metric}{{{scope}, application_version="1", queue=~"{queues}"}})'

    assert sorted(queries.values()) == [query("fanout|fanout-items"), query("workflow-queue")]


def test_scale_to_zero_without_the_migration_is_refused() -> None:
    values = {
        **REQUIRED_VALUES,
        "database": {"existingSecret": "app", "migration": {"enabled": False}},
        "autoscaling": {"enabled": False},
        "keda": {"enabled": True, "minReplicaCount": 0},
    }
    with pytest.raises(
        helm_python.HelmError, match=r"keda minReplicaCount 0 needs database\.migration"
    ):
        render(values)


def test_a_pools_own_settings_replace_the_globals_key_by_key_zero_included() -> None:
    values = {
        **DEFAULTS,
        "autoscaling": {"enabled": False},
        "keda": {"enabled": True, "maxReplicaCount": 3},
        "workerPools": [
            {"name": "default"},
            {
                "name": "fan",
                "queues": ["fanout", "fanout-items"],
                "keda": {"minReplicaCount": 0, "cooldownPeriod": 0},
                "pdb": {"maxUnavailable": 2},
            },
        ],
    }
    objects = render(values)
    scaled = find(objects, "ScaledObject", "-worker-fan")["spec"]
    assert (scaled["minReplicaCount"], scaled["cooldownPeriod"]) == (0, 0)
    assert find(objects, "ScaledObject", "-worker")["spec"]["minReplicaCount"] == 1
    # A pdb with only maxUnavailable keeps the global enabled.
    assert find(objects, "PodDisruptionBudget", "-worker-fan")["spec"]["maxUnavailable"] == 2


def test_a_long_release_name_keeps_each_pools_name_whole() -> None:
    values = {
        **DEFAULTS,
        "fullnameOverride": "x" * 50,
        "autoscaling": {"maxReplicas": 2},
        "workerPools": [
            {"name": "default"},
            {"name": "fanout-a", "queues": ["fanout"]},
            {"name": "fanout-b", "queues": ["fanout-items"]},
        ],
    }
    names = [o["metadata"]["name"] for o in render(values) if o["kind"] == "Deployment"]
    assert len(set(names)) == len(names) == 4
    assert all(len(name) <= 63 for name in names)
    assert any(name.endswith("-fanout-a") for name in names)


def test_values_of_the_first_release_still_install() -> None:
    objects = render({**DEFAULTS, "autoscaling": {"queue": "workflow-queue"}})
    assert find(objects, "HorizontalPodAutoscaler", "-worker")


def test_every_name_fits_63_characters_and_keeps_its_suffix_whatever_the_release() -> None:
    values = {
        **REQUIRED_VALUES,
        "database": {"url": "postgresql://app:example-only@db/dbos"},  # the chart's Secret too
        "fullnameOverride": "r" * 63,
        "autoscaling": {"maxReplicas": 2},
        "workerPools": [{"name": "default"}, {"name": "fanout", "queues": ["fanout"]}],
    }
    objects = render(values)
    names = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert all(len(name) <= 63 for _, name in names), names
    assert len(set(names)) == len(names)
    suffixes = {name.lstrip("r").removeprefix("-") for _, name in names}
    assert {"api", "migrate", "worker", "worker-fanout", "database", "registry"} <= suffixes


def test_the_chart_asks_for_the_kubernetes_its_objects_need() -> None:
    # The PDBs' unhealthyPodEvictionPolicy needs 1.26: the chart says so, and Helm refuses an
    # older cluster at install.
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == ">=1.26.0-0"
    pdbs = [o for o in render(DEFAULTS) if o["kind"] == "PodDisruptionBudget"]
    assert all(
        "unhealthyPodEvictionPolicy" in pdb["spec"]
        for pdb in pdbs
        if "-worker" in pdb["metadata"]["name"]
    )


def test_numbers_are_taken_where_people_type_them() -> None:
    # As Helm's own --set parser reads them: 2 and 3 are integers, 1.0 stays text.
    typed = helm_python.parse_set_string(
        "applicationVersion=2,image.tag=3,autoscaling.targetLoadPerWorker=2"
    )
    assert typed["applicationVersion"] == 2 and typed["image"]["tag"] == 3
    objects = render({**DEFAULTS, **typed})
    worker = find(objects, "Deployment", "-worker")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in worker["env"]}
    assert env["DBOS__APPVERSION"] == "2"
    assert worker["image"].endswith("-worker:3")
    target = find(objects, "HorizontalPodAutoscaler")["spec"]["metrics"][0]["external"]["target"]
    assert target["averageValue"] == "2"
    fraction = render({**DEFAULTS, "autoscaling": {"targetLoadPerWorker": 0.8}})
    target = find(fraction, "HorizontalPodAutoscaler")["spec"]["metrics"][0]["external"]["target"]
    assert target["averageValue"] == "0.8"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"autoscaling": {"targetLoadPerWorker": "0"}}, "targetLoadPerWorker"),
        ({"autoscaling": {"targetLoadPerWorker": 0}}, "targetLoadPerWorker"),
        ({"autoscaling": {"targetLoadPerWorker": "0.00"}}, "targetLoadPerWorker"),
        (
            {
                "autoscaling": {"enabled": False},
                "keda": {"enabled": True, "maxReplicaCount": 3, "fallbackReplicas": 4},
            },
            "keda fallbackReplicas is greater than maxReplicaCount",
        ),
    ],
    ids=["zero-text", "zero", "zero-decimals", "keda-fallback-above-max"],
)
def test_targets_and_fallbacks_that_cannot_work_are_refused(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm_python.HelmError) as failure:
        render({**DEFAULTS, **values})
    assert message in str(failure.value)


def test_the_migration_job_runs_where_and_as_whom_it_is_told_within_helms_timeout() -> None:
    placement = {
        "serviceAccountName": "db-migrator",
        "podAnnotations": {"iam.example.com/role": "migrator"},
        "nodeSelector": {"pool": "system"},
        "tolerations": [{"key": "system", "operator": "Exists", "effect": "NoSchedule"}],
    }
    job = find(
        render({**REQUIRED_VALUES, "database": {"existingSecret": "db", "migration": placement}}),
        "Job",
        "-migrate",
    )
    pod = job["spec"]["template"]
    assert pod["spec"]["serviceAccountName"] == "db-migrator"
    assert pod["metadata"]["annotations"] == {"iam.example.com/role": "migrator"}
    assert pod["spec"]["nodeSelector"] == {"pool": "system"}
    assert pod["spec"]["tolerations"] == placement["tolerations"]
    # Helm waits 5 minutes for hooks by default: the Job gives up before Helm does.
    default_job = find(render(DEFAULTS), "Job", "-migrate")
    assert default_job["spec"]["activeDeadlineSeconds"] < 300
    assert "serviceAccountName" not in default_job["spec"]["template"]["spec"]


def test_without_an_autoscaler_the_number_of_workers_is_kubectl_scales_unless_set() -> None:
    values = {**DEFAULTS, "autoscaling": {"enabled": False}}
    assert "replicas" not in find(render(values), "Deployment", "-worker")["spec"]
    owned = render({**values, "worker": {"replicas": 4}})
    assert find(owned, "Deployment", "-worker")["spec"]["replicas"] == 4


def test_the_packaged_chart_carries_the_adapters_rule_and_the_built_in_registry(
    tmp_path: Path,
) -> None:
    archive = helm_python.package(CHART, destination=tmp_path)
    with tarfile.open(archive) as packaged:
        names = set(packaged.getnames())
    assert "dbos-queue-worker/prometheus-adapter-values.yaml" in names
    assert "dbos-queue-worker/files/registry.json" in names
    assert not any("/ci/" in name for name in names)


def test_what_real_clusters_add_reaches_every_pod() -> None:
    objects = render(values_of(CHART / "ci" / "real-cluster-values.yaml"))
    for owner, pod, container in _containers(objects):
        assert {"secretRef": {"name": "dbos-extra-env"}} in container["envFrom"], owner
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts["database-ca"] == "/etc/database-ca", owner
        assert "database-ca" in {v["name"] for v in pod["volumes"]}, owner
    api = find(objects, "Deployment", "-api")["spec"]["template"]["spec"]
    worker = find(objects, "Deployment", "-worker")["spec"]["template"]["spec"]
    job = find(objects, "Job", "-migrate")["spec"]["template"]["spec"]
    assert (api["priorityClassName"], worker["priorityClassName"]) == ("business-critical", "batch")
    assert [c["name"] for c in api["containers"]] == ["api", "cloud-sql-proxy"]
    assert [c["name"] for c in worker["containers"]] == ["worker", "cloud-sql-proxy"]
    # The Job's proxy is a native sidecar: the Job still ends when the migration does.
    assert [c["name"] for c in job["containers"]] == ["migrate"]
    assert job["initContainers"][0]["restartPolicy"] == "Always"
    assert api["containers"][0]["readinessProbe"]["periodSeconds"] == 10
    assert worker["containers"][0]["livenessProbe"]["initialDelaySeconds"] == 30
    extra = find(objects, "ConfigMap", "-notes")
    assert extra["metadata"]["name"] == "demo-notes" and extra["data"] == {"owner": "platform-team"}


def test_pods_spread_over_zones_and_nodes_by_default() -> None:
    worker = find(render(DEFAULTS), "Deployment", "-worker")["spec"]["template"]["spec"]
    keys = [c["topologyKey"] for c in worker["topologySpreadConstraints"]]
    assert keys == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
    assert {c["whenUnsatisfiable"] for c in worker["topologySpreadConstraints"]} == {
        "ScheduleAnyway"
    }


def test_without_hooks_the_migration_is_an_ordinary_job_named_after_what_it_migrates_to() -> None:
    values = {
        **REQUIRED_VALUES,
        "database": {"url": "postgresql://app:example-only@db/dbos", "migration": {"hook": False}},
    }
    objects = render(values)
    job = find(objects, "Job", "")
    assert "helm.sh/hook" not in job["metadata"].get("annotations", {})
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    secret = find(objects, "Secret", "-database")
    assert "helm.sh/hook" not in secret["metadata"].get("annotations", {})
    assert not [o for o in objects if o["metadata"]["name"].endswith("-registry-migrate")]
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["registry"]["configMap"]["name"].endswith("-registry")
    # A Job's template cannot change: another image is another Job.
    other = find(render({**values, "image": {"tag": "9.9.9"}}), "Job", "")
    assert other["metadata"]["name"] != job["metadata"]["name"]
    assert find(render(values), "Job", "")["metadata"]["name"] == job["metadata"]["name"]


def test_keda_takes_over_the_charts_hpa_so_one_upgrade_switches_scalers() -> None:
    hpa = find(render(DEFAULTS), "HorizontalPodAutoscaler", "-worker")
    objects = render({**DEFAULTS, "autoscaling": {"enabled": False}, "keda": {"enabled": True}})
    scaled = find(objects, "ScaledObject", "-worker")
    assert scaled["metadata"]["annotations"] == {
        "scaledobject.keda.sh/transfer-hpa-ownership": "true"
    }
    config = scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]
    assert config["name"] == hpa["metadata"]["name"]
    # The alerts watch the HPA by that name.
    (rule,) = [r for r in alert_rules(objects) if r["alert"] == "QueueWorkerAtMaxReplicas"]
    assert f'horizontalpodautoscaler="{hpa["metadata"]["name"]}"' in rule["expr"]
    # Both scalers off in between (the KEDA-to-HPA way): still no replicas field.
    neither = render({**DEFAULTS, "autoscaling": {"enabled": False}})
    assert "replicas" not in find(neither, "Deployment", "-worker")["spec"]


def _env(deployment: dict[str, Any]) -> dict[str, Any]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container["env"]}


def test_an_earlier_version_keeps_workers_of_its_own_scaled_on_its_own_share() -> None:
    values = values_of(CHART / "ci" / "rollout-values.yaml")
    objects = render(values)
    current = find(objects, "Deployment", "-worker")
    earlier = find(objects, "Deployment", "-worker-v1")
    # The pool's Deployment keeps its name and runs the new version; the earlier version's
    # runs its own image, at its version, on the queues its registry declares.
    assert _env(current)["DBOS__APPVERSION"] == "2"
    assert _env(earlier)["DBOS__APPVERSION"] == "1"
    assert current["spec"]["template"]["spec"]["containers"][0]["image"].endswith("-worker:2.0.0")
    assert earlier["spec"]["template"]["spec"]["containers"][0]["image"].endswith("-worker:1.4.2")
    assert _env(earlier)["WORKER_QUEUES"] == "workflow-queue"
    assert _env(current)["WORKER_QUEUES"] == ",".join(sorted(REGISTRY.queues))
    volumes = {
        d["metadata"]["name"]: next(
            v["configMap"]["name"]
            for v in d["spec"]["template"]["spec"]["volumes"]
            if v["name"] == "registry"
        )
        for d in (current, earlier)
    }
    assert volumes == {
        current["metadata"]["name"]: f"{RELEASE}-dbos-queue-worker-registry",
        earlier["metadata"]["name"]: f"{RELEASE}-dbos-queue-worker-registry-v1",
    }
    own = workflow_registry.parse(
        find(objects, "ConfigMap", "-registry-v1")["data"]["registry.json"], "configmap"
    )
    assert sorted(own.queues) == ["workflow-queue"]
    # Two Deployments never select each other's pods.
    selectors = [d["spec"]["selector"]["matchLabels"] for d in (current, earlier)]
    assert selectors[0] != selectors[1]
    for deployment in (current, earlier):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        for selector in selectors:
            matches = all(labels.get(k) == v for k, v in selector.items())
            assert matches == (selector == deployment["spec"]["selector"]["matchLabels"])
    # Each autoscaler reads its version's share only; the earlier one may fall to one worker.
    hpas = {
        o["spec"]["scaleTargetRef"]["name"]: o["spec"]
        for o in objects
        if o["kind"] == "HorizontalPodAutoscaler"
    }
    assert set(hpas) == {current["metadata"]["name"], earlier["metadata"]["name"]}
    for deployment, version in ((current, "2"), (earlier, "1")):
        spec = hpas[deployment["metadata"]["name"]]
        selector = spec["metrics"][0]["external"]["metric"]["selector"]
        assert selector["matchLabels"]["application_version"] == version
    assert hpas[earlier["metadata"]["name"]]["minReplicas"] == 1
    assert hpas[earlier["metadata"]["name"]]["maxReplicas"] == 4
    # Its own Service, ServiceMonitor and PDB, so its pods are scraped and protected.
    for kind in ("Service", "ServiceMonitor", "PodDisruptionBudget"):
        find(objects, kind, "-worker-v1")
    (drained,) = [r for r in alert_rules(objects) if r["alert"] == "QueueWorkerVersionDrained"]
    assert 'application_version="1"' in drained["expr"]
    # With KEDA the earlier version's fleet goes to zero once its work is done.
    keda = render({**values, "autoscaling": {"enabled": False}, "keda": {"enabled": True}})
    scaled = {o["metadata"]["name"]: o["spec"] for o in keda if o["kind"] == "ScaledObject"}
    assert scaled[earlier["metadata"]["name"]]["minReplicaCount"] == 0
    assert scaled[current["metadata"]["name"]]["minReplicaCount"] == 1
    query = scaled[earlier["metadata"]["name"]]["triggers"][0]["metadata"]["query"]
    scope = f'namespace="{NAMESPACE}", queue_worker_release="{RELEASE}"'
    assert query == (
        f'max(queue_worker_queue_load{{{scope}, application_version="1", '
        f'queue=~"workflow-queue"}}) or (0 * max(queue_worker_version_workflows{{{scope}}}))'
    )
    # While the load can't be read, the earlier fleet holds: a drained one stays at zero.
    assert scaled[earlier["metadata"]["name"]]["fallback"]["replicas"] == 0
    assert scaled[current["metadata"]["name"]]["fallback"]["replicas"] == 2


def test_an_earlier_versions_dropped_queue_and_own_pool_images_keep_their_workers() -> None:
    values = {
        **DEFAULTS,
        "database": {"existingSecret": "db", "maxConnections": 400},
        "applicationVersion": "2",
        "workerPools": [
            {"name": "default"},
            {"name": "fan", "queues": ["fanout", "fanout-items"], "image": "example.com/fan:2"},
        ],
        "previousVersions": [
            {
                "version": "1",
                "image": {"tag": "1.0"},
                "images": {"fan": "example.com/fan:1"},
                "registry": _OLD,
            }
        ],
    }
    objects = render(values)
    default_v1 = find(objects, "Deployment", "-worker-v1")
    fan_v1 = find(objects, "Deployment", "-worker-fan-v1")
    # The open pool serves, for version 1, the queue that version 2 dropped.
    assert sorted(_env(default_v1)["WORKER_QUEUES"].split(",")) == ["legacy", "workflow-queue"]
    assert _env(fan_v1)["WORKER_QUEUES"] == "fanout,fanout-items"
    images = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["image"]
        for d in (default_v1, fan_v1)
    }
    assert sorted(images.values()) == [
        "example.com/fan:1",
        "ghcr.io/dbos-queue-worker/dbos-queue-worker-worker:1.0",
    ]


def test_the_api_needs_tokens_from_a_secret_of_the_users_unless_told_otherwise() -> None:
    api = find(render(DEFAULTS), "Deployment", "-api")["spec"]["template"]["spec"]
    container = api["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["API_AUTH"] == "tokens"
    path = env["API_AUTH_TOKENS_FILE"]
    (volume,) = [v for v in api["volumes"] if v["name"] == "auth"]
    assert volume["secret"] == {
        "secretName": "api-tokens",
        "items": [{"key": "tokens", "path": "tokens"}],
    }
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "auth"]
    # No subPath: the kubelet updates the file when the Secret changes (rotation).
    assert "subPath" not in mount and path == f"{mount['mountPath']}/tokens"
    # The chart makes no Secret of tokens.
    assert not [o for o in render(DEFAULTS) if o["kind"] == "Secret"]
    open_api = render({"database": {"existingSecret": "db"}, "api": {"auth": {"mode": "none"}}})
    container = find(open_api, "Deployment", "-api")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["API_AUTH"] == "none" and "API_AUTH_TOKENS_FILE" not in env


def test_the_apis_metrics_have_a_port_the_apis_service_does_not_expose() -> None:
    objects = render(DEFAULTS)
    services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
    public = services[f"{RELEASE}-dbos-queue-worker-api"]
    assert [p["name"] for p in public["spec"]["ports"]] == ["http"]
    metrics = services[f"{RELEASE}-dbos-queue-worker-api-metrics"]
    assert metrics["spec"]["clusterIP"] == "None"
    assert metrics["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert metrics["spec"]["selector"] == public["spec"]["selector"]
    monitor = find(objects, "ServiceMonitor", "-api")
    labels = monitor["spec"]["selector"]["matchLabels"]
    assert all(metrics["metadata"]["labels"][k] == v for k, v in labels.items())
    assert any(public["metadata"]["labels"].get(k) != v for k, v in labels.items())
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    container = find(objects, "Deployment", "-api")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["API_METRICS_PORT"] == "9090"
    assert {"name": "metrics", "containerPort": 9090, "protocol": "TCP"} in container["ports"]


def test_network_policies_let_each_pod_reach_only_what_it_needs() -> None:
    values = {
        **values_of(CHART / "ci" / "network-policy-values.yaml"),
        "database": {"existingSecret": "db", "maxConnections": 400},
        "applicationVersion": "2",
        "previousVersions": [{"version": "1", "image": {"tag": "1.0"}}],
    }
    objects = render(values)
    policies = {
        o["metadata"]["name"].removeprefix(f"{RELEASE}-dbos-queue-worker-"): o["spec"]
        for o in objects
        if o["kind"] == "NetworkPolicy"
    }
    assert set(policies) == {"api", "workers", "migrate"}
    # Every worker Deployment's pods, earlier versions' included, are under the workers' policy.
    selector = policies["workers"]["podSelector"]
    (components,) = [e["values"] for e in selector["matchExpressions"]]
    components_of = [
        o["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        for o in objects
        if o["kind"] == "Deployment"
    ]
    workers = sorted(c for c in components_of if c.startswith("worker"))
    assert sorted(components) == workers == ["worker", "worker-v1"]
    api = policies["api"]
    assert [r["ports"][0]["port"] for r in api["ingress"]] == ["http", "metrics"]
    assert api["ingress"][0]["from"] == values["networkPolicy"]["apiFrom"]
    assert [r["ports"][0]["port"] for r in policies["workers"]["ingress"]] == ["metrics"]
    assert policies["migrate"]["ingress"] == []
    for name, policy in policies.items():
        ports = [p["port"] for rule in policy["egress"] for p in rule["ports"]]
        assert 53 in ports and 5432 in ports and 4318 in ports, name
        assert (443 in ports) == (name == "workers"), name


def test_the_api_may_take_jwts_of_an_identity_provider() -> None:
    jwt_values = {
        "issuer": "https://id.example.com/",
        "audience": "dbos-queue-worker",
        "jwksUrl": "https://id.example.com/.well-known/jwks.json",
        "roleClaim": "groups",
        "operateValues": ["platform", "ops"],
    }
    values = {
        "database": {"existingSecret": "db"},
        "api": {"auth": {"mode": "jwt", "jwt": jwt_values}},
    }
    pod = find(render(values), "Deployment", "-api")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["API_AUTH"] == "jwt"
    assert env["API_AUTH_JWT_ISSUER"] == "https://id.example.com/"
    assert env["API_AUTH_JWKS_URL"].endswith("/jwks.json")
    assert (env["API_AUTH_JWT_ROLE_CLAIM"], env["API_AUTH_JWT_OPERATE_VALUES"]) == (
        "groups",
        "platform,ops",
    )
    assert env["API_AUTH_JWT_READ_VALUES"] == "read"
    # No Secret named: no token file; with one, its tokens are accepted beside the JWTs.
    assert "API_AUTH_TOKENS_FILE" not in env and not [
        v for v in pod["volumes"] if v["name"] == "auth"
    ]
    values["api"]["auth"]["existingSecret"] = "machines"  # type: ignore[index]
    pod = find(render(values), "Deployment", "-api")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["API_AUTH_TOKENS_FILE"].endswith("/tokens")
    with pytest.raises(helm_python.HelmError, match=r"api\.auth\.mode=jwt needs"):
        render({"database": {"existingSecret": "db"}, "api": {"auth": {"mode": "jwt"}}})
    keys_file = {**jwt_values, "jwksUrl": "", "jwksFile": "/etc/jwks/keys.json"}
    values = {
        "database": {"existingSecret": "db"},
        "api": {"auth": {"mode": "jwt", "jwt": keys_file}},
    }
    pod = find(render(values), "Deployment", "-api")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["API_AUTH_JWKS_FILE"] == "/etc/jwks/keys.json" and "API_AUTH_JWKS_URL" not in env
    both = {**jwt_values, "jwksFile": "/etc/jwks/keys.json"}
    with pytest.raises(helm_python.HelmError, match="jwksUrl or jwksFile, not both"):
        render(
            {"database": {"existingSecret": "db"}, "api": {"auth": {"mode": "jwt", "jwt": both}}}
        )
