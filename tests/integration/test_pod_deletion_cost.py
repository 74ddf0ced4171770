"""The worker's deletion cost against the stand-in's Kubernetes API over TLS: the patch, the
token read again for every request, the answers of a refused patch, and the thread that
coalesces changes, tries again after a failure and logs each state change once."""

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmarks.rehearsal.apiserver import ApiServer
from benchmarks.rehearsal.deployment import DELETION_COST, Deployment, Pod, PodTemplate
from services.contract import logs
from services.worker import deletion_cost
from services.worker.deletion_cost import DeletionCost
from services.worker.pod_api import PodApi, PodApiError
from services.worker.settings import WorkerSettings
from tests.support.polling import wait_for

pytestmark = pytest.mark.requires_tool("openssl")


@dataclass
class Cluster:
    api: ApiServer
    pods: list[Pod]

    def client(self, pod: Pod, pod_name: str | None = None) -> PodApi:
        """A client with `pod`'s service account (a new token), patching `pod_name` (its own
        by default)."""
        directory = self.api.issue_token(pod.name)
        name = pod_name or pod.name
        return PodApi("127.0.0.1", self.api.port, directory, self.api.namespace, name)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Two pods (never started: only their objects matter here) behind the API server."""
    never_starts = PodTemplate(env={}, termination_grace_seconds=1, start_delay_seconds=1e9)
    with ApiServer(tmp_path) as api, Deployment("worker", never_starts, tmp_path) as deployment:
        api.attach(deployment)
        deployment.scale(2)
        deployment.reconcile()
        yield Cluster(api, deployment.pods())


class Counter:
    """A running count that a test moves, as workflows starting and ending would."""

    def __init__(self) -> None:
        self.value = 0
        self.cost: DeletionCost | None = None

    def set(self, value: int) -> None:
        self.value = value
        assert self.cost is not None
        self.cost.changed()

    def __call__(self) -> int:
        return self.value


def test_a_worker_patches_its_own_pod_and_reads_a_rotated_token(cluster: Cluster) -> None:
    own, _ = cluster.pods
    client = cluster.client(own)
    client.patch_annotations({DELETION_COST: "3"})
    assert own.annotations == {DELETION_COST: "3"}
    assert own.deletion_cost == 3

    cluster.api.issue_token(own.name)  # the kubelet rotates the token: the old one is refused
    client.patch_annotations({DELETION_COST: "5"})
    assert own.deletion_cost == 5
    client.patch_annotations({DELETION_COST: None})
    assert own.annotations == {} and own.deletion_cost == 0
    assert [status for _, _, status in cluster.api.patches] == [200, 200, 200]
    # Named in the pod's managedFields and the audit log.
    ((manager, agent),) = cluster.api.clients
    assert manager == "dbos-queue-worker" and agent.startswith("dbos-queue-worker/")


def test_refused_patches_say_why_and_never_show_the_token(cluster: Cluster, tmp_path: Path) -> None:
    own, other = cluster.pods
    client = cluster.client(own)
    token = (cluster.api.issue_token(own.name) / "token").read_text()
    cases = [
        (cluster.client(own, pod_name=other.name), "403 Forbidden: .* only the pod its token"),
        (cluster.client(own, pod_name="worker-gone1"), '404 Not Found: pods "worker-gone1" not'),
    ]
    for wrong, message in cases:
        with pytest.raises(PodApiError, match=message) as caught:
            wrong.patch_annotations({DELETION_COST: "1"})
        assert token not in str(caught.value)
    with pytest.raises(PodApiError, match=r"403 Forbidden: .* only the annotation"):
        client.patch_annotations({"example.com/other": "x"})
    assert other.annotations == {} and own.annotations == {}

    (tmp_path / "kube-api" / "pods" / own.name / "token").write_text("stolen")
    with pytest.raises(PodApiError, match="401 Unauthorized"):
        client.patch_annotations({DELETION_COST: "1"})

    # A CA that did not sign the server's certificate: the connection is refused, not used.
    cluster.api.issue_token(own.name)
    ca = tmp_path / "kube-api" / "pods" / own.name / "ca.crt"
    ca.write_bytes((tmp_path / "kube-api" / "server.crt").read_bytes())
    with pytest.raises(PodApiError, match="SSLCertVerificationError"):
        client.patch_annotations({DELETION_COST: "1"})


def test_bad_settings_fail_at_start_with_what_is_missing(tmp_path: Path) -> None:
    env = {
        "WORKER_POD_DELETION_COST": "true",
        "WORKER_POD_NAME": "worker-abcde",
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": "6443",
        "WORKER_SERVICE_ACCOUNT_DIR": str(tmp_path),
    }
    with pytest.raises(ValueError, match="WORKER_POD_NAME"):
        WorkerSettings.from_env({k: v for k, v in env.items() if k != "WORKER_POD_NAME"})
    with pytest.raises(ValueError, match="KUBERNETES_SERVICE_HOST"):
        WorkerSettings.from_env({k: v for k, v in env.items() if k != "KUBERNETES_SERVICE_HOST"})
    settings = WorkerSettings.from_env(env)
    with pytest.raises(ValueError, match="no WORKER_POD_NAMESPACE and no namespace in"):
        deletion_cost.from_settings(settings, lambda: 0)
    (tmp_path / "namespace").write_text("jobs\n")
    with pytest.raises(ValueError, match=r"token.*automountServiceAccountToken: true"):
        deletion_cost.from_settings(settings, lambda: 0)
    (tmp_path / "token").write_text("t")
    (tmp_path / "ca.crt").write_text("not a certificate")
    with pytest.raises(ValueError, match=r"cannot load .*ca\.crt"):
        deletion_cost.from_settings(settings, lambda: 0)
    assert deletion_cost.from_settings(WorkerSettings.from_env({}), lambda: 0) is None


def test_idle_and_busy_go_out_at_once_other_changes_once_per_interval(
    cluster: Cluster,
) -> None:
    own, _ = cluster.pods
    counter = Counter()
    cost = counter.cost = DeletionCost(
        cluster.client(own), counter, min_interval_seconds=0.05, interval_seconds=5
    )
    cost.start()
    try:
        # Written once at start, even with nothing running.
        wait_for(lambda: DELETION_COST in own.annotations, timeout=10, what="the first patch")
        assert own.deletion_cost == 0
        # Idle to busy: well within the interval.
        counter.set(1)
        wait_for(lambda: own.deletion_cost == 1, timeout=3, what="the cost 1 at once")
        # Busy, the count moving without pause for 1.5 s: one more patch at most meanwhile,
        # then the count as it is once the interval is over.
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            counter.set(counter.value + 1)
        changes = counter.value
        assert changes > 100
        assert len(cluster.api.patches) <= 3, cluster.api.patches
        wait_for(lambda: own.deletion_cost == changes, timeout=10, what=f"the cost {changes}")
        assert len(cluster.api.patches) <= 4, cluster.api.patches
        # Busy to idle: at once again.
        counter.set(0)
        wait_for(lambda: own.deletion_cost == 0, timeout=3, what="the cost 0 at once")
    finally:
        cost.stop()
    assert not cost.is_alive()  # a draining worker patches no more


def test_a_failing_patch_is_logged_once_per_reason_and_tried_again(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    own, other = cluster.pods
    counter = Counter()
    # Patching the other pod: refused (403) until the test gives it the other pod's token.
    client = cluster.client(own, pod_name=other.name)
    own_directory = cluster.api.issue_token(own.name)
    cost = counter.cost = DeletionCost(
        client, counter, min_interval_seconds=0.05, max_retry_seconds=0.1
    )
    with caplog.at_level(logging.INFO, logger="services.worker.deletion_cost"):
        cost.start()
        try:
            wait_for(lambda: len(cluster.api.patches) >= 5, timeout=10, what="five refused patches")
            counter.set(4)
            wait_for(lambda: len(cluster.api.patches) >= 10, timeout=10, what="more tries")
            # The other pod's token in the client's directory: the patch is its own now.
            other_token = (cluster.api.issue_token(other.name) / "token").read_text()
            (own_directory / "token").write_text(other_token)
            wait_for(lambda: other.deletion_cost == 4, timeout=10, what="the patch to succeed")
        finally:
            cost.stop()
    events = [r.getMessage() for r in caplog.records]
    assert events == ["deletion_cost.patch_failed", "deletion_cost.patch_recovered"], events
    assert "403 Forbidden" in logs.event_fields(caplog.records[0])["reason"]
    assert {status for _, _, status in cluster.api.patches} == {403, 200}
