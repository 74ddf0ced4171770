"""What of a queue's in-flight work could run at once, in total and by version, within the
queue's limits, which DBOS applies to every version's running work together."""

from services.api.runnable import InFlight, Limits, runnable


def test_without_limits_all_in_flight_work_could_run() -> None:
    result = runnable({("q", "1"): InFlight(5, 2), ("q", "2"): InFlight(3, 0)}, [], {})
    assert result.totals == {"q": 8}
    assert result.shares == {("q", "1"): 5, ("q", "2"): 3}


def test_the_global_limit_holds_over_every_versions_running_work() -> None:
    # Version 1 runs 3 of the 4 places: version 2's workers could start 1 more, not 4.
    in_flight = {("q", "1"): InFlight(6, 3), ("q", "2"): InFlight(6, 0)}
    result = runnable(in_flight, [], {"q": Limits(global_limit=4)})
    assert result.totals == {"q": 4}
    assert result.shares == {("q", "1"): 4, ("q", "2"): 1}


def test_while_nothing_runs_either_version_could_take_the_whole_limit() -> None:
    in_flight = {("q", "1"): InFlight(6, 0), ("q", "2"): InFlight(6, 0)}
    result = runnable(in_flight, [], {"q": Limits(global_limit=4)})
    assert result.totals == {"q": 4}
    assert result.shares == {("q", "1"): 4, ("q", "2"): 4}


def test_each_partition_counts_up_to_its_limit_less_what_other_versions_run_in_it() -> None:
    # Partition a: version 1 runs 2 and waits with 4, version 2 waits with 5; partition b:
    # version 2 waits with 1; one more of version 2 has no partition key.
    in_flight = {("q", "1"): InFlight(6, 2), ("q", "2"): InFlight(7, 0)}
    partitions = [
        ("q", "1", "a", InFlight(6, 2)),
        ("q", "2", "a", InFlight(5, 0)),
        ("q", "2", "b", InFlight(1, 0)),
    ]
    result = runnable(in_flight, partitions, {"q": Limits(per_partition=4)})
    # a: 4 of 11; b: 1; no key: 1.
    assert result.totals == {"q": 6}
    # Version 1: 4 in a. Version 2: the 2 places version 1 leaves in a, 1 in b, 1 without key.
    assert result.shares == {("q", "1"): 4, ("q", "2"): 4}


def test_partition_and_global_limits_together() -> None:
    in_flight = {("q", "1"): InFlight(10, 0)}
    partitions = [("q", "1", key, InFlight(5, 0)) for key in ("a", "b")]
    result = runnable(in_flight, partitions, {"q": Limits(global_limit=6, per_partition=4)})
    assert result.totals == {"q": 6}
    assert result.shares == {("q", "1"): 6}
