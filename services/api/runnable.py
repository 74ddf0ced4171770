"""How much of a queue's in-flight work (ENQUEUED + PENDING) could run at once: in total, and
for each application version's workers.

A queue's global_concurrency and partition_concurrency bound the PENDING workflows of every
version together (DBOS counts them without regard to version), so:

- the total counts each partition up to its limit, then the queue up to its global limit;
- a version's share counts what its workers could run now: each partition up to its limit less
  what other versions already run in it, then the queue up to its global limit less what other
  versions already run. While nothing runs, each version's share may take the whole limit, so
  during a rollout the shares may add up to more than the total: either fleet could take the
  free places, and the queue's limits keep the two from running more than the limit.

The autoscaling signal must not ask for workers that the queue's own limits would leave idle
(one fan-out of 200 children, 4 at a time, needs no 20 workers).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass
class InFlight:
    """Workflows ENQUEUED or PENDING (`workflows`), and of them PENDING (`running`)."""

    workflows: int = 0
    running: int = 0

    def add(self, workflows: int, running: int) -> None:
        self.workflows += workflows
        self.running += running


@dataclass(frozen=True)
class Limits:
    global_limit: int | None = None
    per_partition: int | None = None


@dataclass
class Runnable:
    # queue -> workflows that could run at once.
    totals: dict[str, int] = field(default_factory=dict)
    # (queue, version) -> that version's share.
    shares: dict[tuple[str, str], int] = field(default_factory=dict)


def runnable(
    in_flight: Mapping[tuple[str, str], InFlight],
    partitions: Iterable[tuple[str, str, str, InFlight]],
    limits: Mapping[str, Limits],
) -> Runnable:
    """`in_flight`: (queue, version) -> its in-flight work; `partitions`: (queue, version,
    partition key, in-flight work) of the queues with a partition limit, keyed work only."""
    keyed: dict[str, dict[str, dict[str, InFlight]]] = {}
    for queue, version, key, work in partitions:
        keyed.setdefault(queue, {}).setdefault(key, {})[version] = work
    result = Runnable()
    by_queue: dict[str, dict[str, InFlight]] = {}
    for (queue, version), work in in_flight.items():
        by_queue.setdefault(queue, {})[version] = work
    for queue, versions in by_queue.items():
        limit = limits.get(queue, Limits())
        total = sum(w.workflows for w in versions.values())
        shares = {version: w.workflows for version, w in versions.items()}
        if limit.per_partition is not None:
            for in_partition in keyed.get(queue, {}).values():
                count = sum(w.workflows for w in in_partition.values())
                running = sum(w.running for w in in_partition.values())
                total -= count - min(count, limit.per_partition)
                for version, work in in_partition.items():
                    free = max(0, limit.per_partition - (running - work.running))
                    shares[version] -= work.workflows - min(work.workflows, free)
        if limit.global_limit is not None:
            total = min(total, limit.global_limit)
            running = sum(w.running for w in versions.values())
            for version, work in versions.items():
                free = max(0, limit.global_limit - (running - work.running))
                shares[version] = min(shares[version], free)
        result.totals[queue] = total
        for version, share in shares.items():
            result.shares[queue, version] = share
    return result
