"""Which pods a scale-down removes first: the ReplicaSet controller's documented order
(ActivePodsWithRanks in Kubernetes' pkg/controller/controller_utils.go), on pods without
processes; and the Deployment stand-in applying it to pods that never start."""

from pathlib import Path

import pytest

from benchmarks.rehearsal.deployment import (
    DELETION_COST,
    Deployment,
    Phase,
    Pod,
    PodTemplate,
    deletion_order,
)

NOW = 10_000.0


def pod(
    name: str,
    *,
    age: float = 1000.0,
    phase: Phase = "Running",
    ready_for: float | None = None,
    cost: int = 0,
    uid: str | None = None,
) -> Pod:
    """A pod created `age` seconds before NOW, ready for the last `ready_for` seconds if given."""
    return Pod(
        name=name,
        created_at=NOW - age,
        phase=phase,
        ready=ready_for is not None,
        ready_since=None if ready_for is None else NOW - ready_for,
        annotations={DELETION_COST: str(cost)} if cost else {},
        uid=uid or name,
    )


def names(pods: list[Pod]) -> list[str]:
    return [p.name for p in pods]


def test_pending_pods_go_before_started_ones_whatever_else() -> None:
    pending = pod("pending", phase="Pending", age=5000.0, cost=100)
    starting = pod("starting", age=1.0, cost=-100)
    ready = pod("ready", age=1.0, ready_for=0.5, cost=-100)
    assert names(deletion_order([ready, starting, pending], NOW)) == [
        "pending",
        "starting",
        "ready",
    ]


def test_not_ready_before_ready_whatever_the_cost() -> None:
    unready = pod("unready", age=5000.0, cost=100)
    ready = pod("ready", age=1.0, ready_for=0.5, cost=-100)
    assert names(deletion_order([ready, unready], NOW)) == ["unready", "ready"]


def test_lower_deletion_cost_before_recency() -> None:
    newest = pod("newest", age=2.0, ready_for=1.0, cost=5)
    middle = pod("middle", age=20.0, ready_for=10.0)
    oldest = pod("oldest", age=200.0, ready_for=100.0)
    negative = pod("negative", age=2000.0, ready_for=1000.0, cost=-1)
    assert names(deletion_order([newest, middle, oldest, negative], NOW)) == [
        "negative",
        "middle",
        "oldest",
        "newest",
    ]


def test_among_ready_pods_the_one_ready_most_recently_goes_first_not_the_newest() -> None:
    # Created long ago, but ready again only lately (its readiness was lost and regained).
    regained = pod("regained", age=500.0, ready_for=2.0, uid="z")
    steady = pod("steady", age=100.0, ready_for=50.0, uid="a")
    assert names(deletion_order([steady, regained], NOW)) == ["regained", "steady"]


def test_ready_times_within_one_power_of_two_tie_and_the_uid_decides() -> None:
    # 10 s and 12 s are both in [2**33, 2**34) nanoseconds: the same bucket.
    recent = pod("recent", ready_for=10.0, uid="b")
    earlier = pod("earlier", ready_for=12.0, uid="a")
    assert names(deletion_order([recent, earlier], NOW)) == ["earlier", "recent"]
    recent.uid, earlier.uid = "a", "b"
    assert names(deletion_order([earlier, recent], NOW)) == ["recent", "earlier"]


def test_the_buckets_are_whole_powers_of_two_of_nanoseconds() -> None:
    # 8 s is just under 2**33 ns, 9 s just over: different buckets though not twice as old.
    recent = pod("recent", ready_for=8.0, uid="b")
    earlier = pod("earlier", ready_for=9.0, uid="a")
    assert names(deletion_order([earlier, recent], NOW)) == ["recent", "earlier"]


def test_equal_ready_times_fall_through_to_creation_newest_first() -> None:
    older = pod("older", age=300.0, ready_for=5.0, uid="a")
    newer = pod("newer", age=30.0, ready_for=5.0, uid="b")
    assert names(deletion_order([older, newer], NOW)) == ["newer", "older"]


@pytest.mark.parametrize("phase", ["Pending", "Running"])
def test_pods_not_ready_go_newest_created_first_bucketed(phase: Phase) -> None:
    newest = pod("newest", age=1.0, phase=phase, uid="z")
    older = pod("older", age=30.0, phase=phase, uid="b")
    # 40 s is in the same bucket as 60 s (2**35 ns is 34.4 s, 2**36 ns 68.7 s).
    same_bucket = pod("same-bucket", age=40.0, phase=phase, uid="c")
    oldest = pod("oldest", age=60.0, phase=phase, uid="a")
    assert names(deletion_order([oldest, same_bucket, older, newest], NOW)) == [
        "newest",
        "older",
        "oldest",
        "same-bucket",
    ]


def test_ranking_leaves_its_input_alone() -> None:
    pods = [pod("a", age=100.0), pod("b", age=1.0)]
    assert names(deletion_order(pods, NOW)) == ["b", "a"]
    assert names(pods) == ["a", "b"]


@pytest.mark.parametrize("phase", ["Terminating", "Gone"])
def test_only_active_pods_are_ranked(phase: Phase) -> None:
    with pytest.raises(ValueError, match="only Pending or Running"):
        deletion_order([pod("a"), pod("leaving", phase=phase)], NOW)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_scale_down_of_pods_not_started_removes_the_newest_and_names_never_repeat(
    tmp_path: Path,
) -> None:
    clock = Clock()
    never_starts = PodTemplate(env={}, termination_grace_seconds=1, start_delay_seconds=1e9)
    with Deployment("worker", never_starts, tmp_path, clock=clock) as deployment:
        deployment.scale(1)
        deployment.reconcile()
        clock.now = 100.0
        deployment.scale(3)
        deployment.reconcile()
        first, *later = deployment.pods()
        assert [p.phase for p in deployment.pods()] == ["Pending"] * 3
        assert all(p.container is None and p.pid is None for p in deployment.pods())
        assert all(p.name.startswith("worker-") and len(p.name) == 12 for p in deployment.pods())

        clock.now = 101.0
        deployment.scale(1)
        deployment.reconcile()
        assert deployment.pods() == [first]
        assert [(p.phase, p.exit_code, p.gone_at) for p in later] == [("Gone", None, 101.0)] * 2

        deployment.kill(first)
        assert first.phase == "Gone"
        deployment.reconcile()
        (replacement,) = deployment.pods()
        deployment.scale(0)
        deployment.reconcile()
        assert deployment.pods() == []
        deployment.scale(4)
        deployment.reconcile()
        assert len(deployment.pods()) == 4
        everyone = [p.name for p in deployment.history()]
        assert len(everyone) == len(set(everyone)) == 8
        assert replacement.name not in (first.name, *(p.name for p in later))
    assert deployment.pods() == []
    assert deployment.ready_replicas() == 0


@pytest.mark.parametrize(
    ("annotation", "cost"),
    [
        (None, 0),
        ("7", 7),
        ("-3", -3),
        ("0", 0),
        ("2147483647", 2**31 - 1),
        ("-2147483648", -(2**31)),
        # What GetDeletionCostFromPodAnnotations refuses reads as 0.
        ("2147483648", 0),
        ("+5", 0),
        ("007", 0),
        ("", 0),
        ("-", 0),
        ("1.5", 0),
        ("1_000", 0),
        (" 5", 0),
    ],
)
def test_the_cost_is_read_from_the_annotation_as_kubernetes_reads_it(
    annotation: str | None, cost: int
) -> None:
    annotations = {} if annotation is None else {DELETION_COST: annotation}
    assert Pod(name="p", created_at=NOW, annotations=annotations).deletion_cost == cost


def test_the_annotation_is_the_one_kubernetes_reads() -> None:
    assert DELETION_COST == "controller.kubernetes.io/pod-deletion-cost"
