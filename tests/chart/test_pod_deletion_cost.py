"""worker.podDeletionCost rendered: nothing new while off; when on, the workers' own service
account with its token, a Role that may only patch pods, its binding, the pod's name and
namespace, and a ValidatingAdmissionPolicy whose CEL is evaluated here on the patches a worker
may and may not make (with the `cel` package: a CEL evaluator, without Kubernetes' typing)."""

import copy
import functools
import shutil
from pathlib import Path
from typing import Any

import cel
import helm_python
import pytest

from benchmarks.rehearsal import config as rehearsal_config
from tests.support.chart import CHART, NAMESPACE, RELEASE, REQUIRED_VALUES, find, render

DEFAULTS = REQUIRED_VALUES
ON = {**DEFAULTS, "worker": {"podDeletionCost": {"enabled": True}}}
NEW_KINDS = {"Role", "RoleBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
COST = "controller.kubernetes.io/pod-deletion-cost"
POD_NAME_CLAIM = "authentication.kubernetes.io/pod-name"


def pod_spec(objects: list[dict[str, Any]], suffix: str) -> dict[str, Any]:
    spec: dict[str, Any] = find(objects, "Deployment", suffix)["spec"]["template"]["spec"]
    return spec


def workers_account(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (account,) = [
        o
        for o in objects
        if o["kind"] == "ServiceAccount"
        and o["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"
    ]
    return account


def env_of(spec: dict[str, Any]) -> dict[str, Any]:
    (container,) = [c for c in spec["containers"] if c["name"] in ("api", "worker")]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_off_by_default_it_renders_nothing_new() -> None:
    objects = render(DEFAULTS)
    assert not [o for o in objects if o["kind"] in NEW_KINDS]
    assert len([o for o in objects if o["kind"] == "ServiceAccount"]) == 1
    worker = pod_spec(objects, "-worker")
    assert worker["serviceAccountName"] == pod_spec(objects, "-api")["serviceAccountName"]
    assert worker["automountServiceAccountToken"] is False
    assert not [name for name in env_of(worker) if "POD_" in name]


def test_on_the_workers_get_an_account_that_may_only_patch_pods() -> None:
    objects = render(ON)
    account = workers_account(objects)
    name = account["metadata"]["name"]
    assert account["automountServiceAccountToken"] is False  # the worker pods mount it
    role = find(objects, "Role")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["patch"]}]
    binding = find(objects, "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}]

    worker = pod_spec(objects, "-worker")
    assert (worker["serviceAccountName"], worker["automountServiceAccountToken"]) == (name, False)
    # The token, the cluster's CA and the namespace, for the worker container alone (not its
    # sidecars or init containers), where in-cluster clients look for them.
    (volume,) = [v for v in worker["volumes"] if v["name"] == "kube-api-access"]
    sources = volume["projected"]["sources"]
    assert sources[0] == {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}
    assert sources[1]["configMap"]["name"] == "kube-root-ca.crt"
    assert sources[2]["downwardAPI"]["items"][0]["path"] == "namespace"
    mounts = {
        c["name"]: [
            m["mountPath"] for m in c.get("volumeMounts", []) if m["name"] == volume["name"]
        ]
        for c in worker["containers"]
    }
    assert mounts == {"worker": ["/var/run/secrets/kubernetes.io/serviceaccount"]}
    env = env_of(worker)
    assert env["WORKER_POD_DELETION_COST_INTERVAL_SECONDS"] == "10"
    assert env["WORKER_POD_DELETION_COST"] == "true"
    assert env["WORKER_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["WORKER_POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    # The API keeps the chart's account, which no Role names, and no token.
    api = pod_spec(objects, "-api")
    assert api["serviceAccountName"] != name and api["automountServiceAccountToken"] is False
    assert not [n for n in env_of(api) if "POD_" in n]


def test_a_pool_sets_its_own_and_the_account_exists_while_any_pool_uses_it() -> None:
    pools: list[dict[str, Any]] = [
        {"name": "default"},
        {
            "name": "fanout",
            "queues": ["fanout", "fanout-items"],
            "podDeletionCost": {"enabled": True},
        },
    ]
    fanout_only = {
        # Two pools at their maximum exceed the default connection budget: not the point here.
        **REQUIRED_VALUES,
        "database": {"existingSecret": "db", "maxConnections": None},
        "workerPools": pools,
    }
    objects = render(fanout_only)
    assert "WORKER_POD_NAME" in env_of(pod_spec(objects, "-worker-fanout"))
    assert "WORKER_POD_NAME" not in env_of(pod_spec(objects, "-worker"))
    assert pod_spec(objects, "-worker")["automountServiceAccountToken"] is False
    assert {o["kind"] for o in objects} >= NEW_KINDS

    pools[1]["podDeletionCost"] = {"enabled": False}
    all_but_fanout = {**fanout_only, "worker": {"podDeletionCost": {"enabled": True}}}
    objects = render(all_but_fanout)
    assert "WORKER_POD_NAME" not in env_of(pod_spec(objects, "-worker-fanout"))
    assert "WORKER_POD_NAME" in env_of(pod_spec(objects, "-worker"))

    pools[0]["podDeletionCost"] = {"enabled": False}
    assert not [o for o in render(all_but_fanout) if o["kind"] in NEW_KINDS]


@pytest.mark.parametrize(
    ("kube_version", "served", "refused"),
    [("v1.29.9", False, True), ("v1.29.9", True, False), ("v1.30.0", False, False)],
)
def test_the_policy_needs_kubernetes_1_30(
    kube_version: str, served: bool, refused: bool, tmp_path: Path
) -> None:
    """The chart's own check, rendered by Helm for a cluster of the version given (offline,
    Helm renders for its own newest Kubernetes: a chart of two files puts the check there)."""
    (tmp_path / "templates").mkdir()
    (tmp_path / "Chart.yaml").write_text("apiVersion: v2\nname: check\nversion: 0.1.0\n")
    shutil.copy(CHART / "templates" / "worker" / "_pod-deletion-cost.tpl", tmp_path / "templates")
    (tmp_path / "templates" / "check.yaml").write_text(
        '{{ include "dqw.podDeletionCost.requirePolicy" '
        f'(dict "kubeVersion" "{kube_version}" "served" {str(served).lower()}) }}}}\n'
    )
    chart = helm_python.Chart.load(tmp_path)
    try:
        if refused:
            with pytest.raises(helm_python.HelmRenderError, match="admissionPolicy=false"):
                chart.render({})
        else:
            chart.render({})
    finally:
        chart.close()


def test_without_the_policy_the_role_stands_alone() -> None:
    accepted = {
        **DEFAULTS,
        "worker": {"podDeletionCost": {"enabled": True, "admissionPolicy": False}},
    }
    objects = render(accepted)
    assert not [o for o in objects if o["kind"].startswith("ValidatingAdmissionPolicy")]
    assert find(objects, "Role") and find(objects, "RoleBinding")


def test_the_policy_binds_to_the_release_namespace_and_the_workers_account() -> None:
    objects = render(ON)
    policy = find(objects, "ValidatingAdmissionPolicy")
    binding = find(objects, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert NAMESPACE in policy["metadata"]["name"]  # cluster-scoped: one per namespace
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert binding["spec"]["matchResources"] == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}}
    }
    account = workers_account(objects)["metadata"]["name"]
    (condition,) = policy["spec"]["matchConditions"]
    assert f"system:serviceaccount:{NAMESPACE}:{account}" in condition["expression"]
    assert policy["spec"]["failurePolicy"] == "Fail"


# The policy's CEL, evaluated as the API server does: the match conditions, then the variables
# in order, then every validation (the first false one refuses, with its message).


@functools.cache
def policy() -> dict[str, Any]:
    spec: dict[str, Any] = find(render(ON), "ValidatingAdmissionPolicy")["spec"]
    return spec


@functools.cache
def workers() -> str:
    """The workers' user name, as the API server knows it."""
    return f"system:serviceaccount:{NAMESPACE}:{workers_account(render(ON))['metadata']['name']}"


def admit(
    user: str, claims: dict[str, list[str]], old: dict[str, Any], new: dict[str, Any]
) -> str | None:
    """None when the policy lets the update through, else the refusing validation's message."""
    bindings: dict[str, Any] = {
        "request": {"userInfo": {"username": user, "extra": claims}},
        "object": new,
        "oldObject": old,
    }
    if not all(cel.evaluate(c["expression"], bindings) for c in policy()["matchConditions"]):
        return None
    variables: dict[str, Any] = {}
    for variable in policy()["variables"]:
        variables[variable["name"]] = cel.evaluate(
            variable["expression"], {**bindings, "variables": variables}
        )
    for validation in policy()["validations"]:
        if cel.evaluate(validation["expression"], {**bindings, "variables": variables}) is not True:
            return str(validation["message"])
    return None


def a_pod(name: str = "demo-worker-abcde", **metadata: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": "w"}, **metadata},
        "spec": {"containers": [{"name": "worker", "image": "w:1"}]},
    }


def patched(pod: dict[str, Any], change: Any) -> dict[str, Any]:
    new = copy.deepcopy(pod)
    change(new)
    return new


OWN = {POD_NAME_CLAIM: ["demo-worker-abcde"]}
OTHER = {POD_NAME_CLAIM: ["demo-worker-zzzzz"]}


def test_every_expression_compiles() -> None:
    expressions = [c["expression"] for c in policy()["matchConditions"]]
    expressions += [v["expression"] for v in policy()["variables"] + policy()["validations"]]
    for expression in expressions:
        cel.compile(expression)
    with pytest.raises(ValueError):
        cel.compile("variables.podName == ")  # the compiler does refuse a broken one


def set_cost(value: str) -> Any:
    return lambda pod: pod["metadata"].setdefault("annotations", {}).__setitem__(COST, value)


@pytest.mark.parametrize(
    ("old", "change"),
    [
        (a_pod(), set_cost("3")),
        (a_pod(annotations={COST: "3", "kept": "x"}), set_cost("0")),
        (a_pod(annotations={COST: "3"}), lambda pod: pod["metadata"]["annotations"].pop(COST)),
        (a_pod(annotations={COST: "3"}), set_cost("999999999")),
    ],
    ids=["first-cost", "cost-changed", "cost-removed", "largest"],
)
def test_a_worker_may_set_its_own_pods_cost(old: dict[str, Any], change: Any) -> None:
    assert admit(workers(), OWN, old, patched(old, change)) is None


def add_annotation(pod: dict[str, Any]) -> None:
    pod["metadata"].setdefault("annotations", {})["example.com/other"] = "x"


def drop_annotation(pod: dict[str, Any]) -> None:
    pod["metadata"]["annotations"].pop("kept")


@pytest.mark.parametrize(
    ("claims", "old", "change", "message"),
    [
        (OTHER, a_pod(), set_cost("1"), "only the pod its token"),
        ({}, a_pod(), set_cost("1"), "only the pod its token"),  # a token bound to no pod
        (OWN, a_pod(), add_annotation, "only the annotation"),
        (OWN, a_pod(annotations={"kept": "x"}), drop_annotation, "only the annotation"),
        (
            OWN,
            a_pod(annotations={"kept": "x"}),
            lambda p: p["metadata"]["annotations"].__setitem__("kept", "y"),
            "only the annotation",
        ),
        (
            OWN,
            a_pod(),
            lambda p: p["metadata"]["labels"].__setitem__("app", "other"),
            "only the annotation",
        ),
        (OWN, a_pod(), lambda p: p["metadata"].pop("labels"), "only the annotation"),
        (
            OWN,
            a_pod(),
            lambda p: p["spec"]["containers"][0].__setitem__("image", "evil:1"),
            "only the annotation",
        ),
        (
            OWN,
            a_pod(),
            lambda p: p["metadata"].__setitem__("finalizers", ["x/y"]),
            "only the annotation",
        ),
        (OWN, a_pod(), set_cost("-1"), "a count"),
        (OWN, a_pod(), set_cost("1000000000"), "a count"),
        (OWN, a_pod(), set_cost("007"), "a count"),
        (OWN, a_pod(), set_cost("lots"), "a count"),
    ],
    ids=[
        "another-pod",
        "no-pod-claim",
        "other-annotation-added",
        "annotation-removed",
        "annotation-changed",
        "label-changed",
        "labels-removed",
        "image-changed",
        "finalizer-added",
        "negative",
        "too-large",
        "leading-zeros",
        "not-a-number",
    ],
)
def test_anything_else_a_worker_tries_is_refused(
    claims: dict[str, list[str]], old: dict[str, Any], change: Any, message: str
) -> None:
    refusal = admit(workers(), claims, old, patched(old, change))
    assert refusal is not None and message in refusal


def test_other_users_are_not_the_policys_business() -> None:
    old = a_pod()
    relabelled = patched(old, lambda p: p["metadata"]["labels"].__setitem__("app", "other"))
    assert admit("system:serviceaccount:jobs:default", {}, old, relabelled) is None
    assert (
        admit("system:serviceaccount:other:" + workers().rsplit(":", 1)[1], OWN, old, relabelled)
        is None
    )


def test_the_rehearsal_takes_the_switch_from_the_chart() -> None:
    """`python -m benchmarks.rehearsal ... --set worker.podDeletionCost.enabled=true` gives its
    workers the variable, and its stage then serves them the stand-in's Kubernetes API."""
    on = rehearsal_config.load("hpa", {"worker": {"podDeletionCost": {"enabled": True}}})
    assert on.worker_env["WORKER_POD_DELETION_COST"] == "true"
    assert "WORKER_POD_DELETION_COST" not in rehearsal_config.load("hpa").worker_env


def test_the_workers_may_run_as_an_existing_account() -> None:
    existing = {"create": False, "name": "irsa-workers"}
    values = {**ON, "worker": {"podDeletionCost": {"enabled": True, "serviceAccount": existing}}}
    objects = render(values)
    assert pod_spec(objects, "-worker")["serviceAccountName"] == "irsa-workers"
    binding = find(objects, "RoleBinding")
    assert binding["subjects"][0]["name"] == "irsa-workers"
    # The chart's own account (the API's) is all it makes.
    accounts = [o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount"]
    assert accounts == [f"{RELEASE}-dbos-queue-worker"]
    unnamed = {
        **ON,
        "worker": {"podDeletionCost": {"enabled": True, "serviceAccount": {"create": False}}},
    }
    with pytest.raises(helm_python.HelmError, match=r"serviceAccount\.create=false needs"):
        render(unnamed)
