"""The Helm chart, rendered by Helm's own Go SDK, and the PromQL it and its dashboard hold."""

import json
import re
from pathlib import Path
from typing import Any

import helm_python
import yaml

from tests.support.processes import REPO_ROOT

CHART = REPO_ROOT / "deploy" / "helm" / "dbos-queue-worker"
ADAPTER_VALUES = (
    REPO_ROOT / "deploy" / "helm" / "dbos-queue-worker" / "prometheus-adapter-values.yaml"
)
DASHBOARD = CHART / "dashboards" / "dbos-queue-worker.json"
SCENARIOS = sorted(CHART.glob("ci/*-values.yaml"))
RELEASE, NAMESPACE = "demo", "jobs"
# What an install must name (the chart makes no secret of its own): the database's Secret and
# the Secret of the API's tokens.
REQUIRED_VALUES: dict[str, Any] = {
    "database": {"existingSecret": "db"},
    "api": {"auth": {"existingSecret": "api-tokens"}},
}
# The label the chart's ServiceMonitors add to every sample: the release it belongs to.
RELEASE_LABEL = "queue_worker_release"


def values_of(scenario: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(scenario.read_text()) or {}
    return loaded


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    """Every object the chart renders for these values (NOTES.txt aside)."""
    chart = helm_python.Chart.load(CHART)
    try:
        rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    finally:
        chart.close()
    objects: list[dict[str, Any]] = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def find(objects: list[dict[str, Any]], kind: str, suffix: str = "") -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(suffix)]
    assert len(matches) == 1, f"expected one {kind} named *{suffix}, got {len(matches)}"
    return matches[0]


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def dashboard_variables(namespace: str) -> dict[str, str]:
    return {
        "$__rate_interval": "1m",
        "$namespace": namespace,
        "$queue": ".*",
        "$pool": ".*",
        "$release": RELEASE,
        "$hpa": ".*worker.*",
    }


def substitute(expr: str, variables: dict[str, str]) -> str:
    for name, value in sorted(variables.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(name, value)
    return expr


def adapter_query(
    namespace: str, queues: str | list[str], labels: dict[str, str] | None = None
) -> str:
    """The adapter rule's metricsQuery, as the adapter expands it for an HPA whose selector has
    these matchLabels (by default the release's label alone) and `queue In (queues)`: each
    matchLabel becomes an equality matcher, and In a regex match of the values joined by "|"
    (pkg/external-provider/query_builder.go), even for one value."""
    rule = yaml.safe_load(ADAPTER_VALUES.read_text())["rules"]["external"][0]
    series = re.match(r"^(\w+)", rule["seriesQuery"])
    assert series is not None
    values = [queues] if isinstance(queues, str) else queues
    equal = labels if labels is not None else {RELEASE_LABEL: RELEASE}
    matchers = ",".join(
        [f'namespace="{namespace}"']
        + [f'{name}="{value}"' for name, value in equal.items()]
        + [f'queue=~"{"|".join(values)}"']
    )
    query: str = rule["metricsQuery"]
    return query.replace("<<.Series>>", series.group(1)).replace("<<.LabelMatchers>>", matchers)


def alert_rules(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rule = find(objects, "PrometheusRule")
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def rules_file(objects: list[dict[str, Any]]) -> str:
    """The PrometheusRule's groups as a plain Prometheus rules file (what promtool reads)."""
    dumped: str = yaml.safe_dump({"groups": find(objects, "PrometheusRule")["spec"]["groups"]})
    return dumped
