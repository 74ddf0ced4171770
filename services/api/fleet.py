"""Reads about queues and the workers serving them: depth, live executors, stuck work."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from services.contract import dbos_tables
from services.contract import fleet as rules
from services.contract.dbos_tables import now_ms, queues, with_schemas, workflow_status
from services.contract.fleet import heartbeats

# The statuses that make up a queue's depth (the metrics report each, 0 when none).
QUEUED_STATUSES = dbos_tables.QUEUED_STATUSES


@dataclass(frozen=True)
class Executor:
    executor_id: str
    application_version: str
    hostname: str
    started_at_ms: int
    heartbeat_at_ms: int
    stopped_at_ms: int | None
    alive: bool


@dataclass(frozen=True)
class FleetSnapshot:
    # (queue, status, workflows) for ENQUEUED, PENDING and DELAYED.
    depth: list[tuple[str, str, int]]
    executors: list[Executor]
    # (queue, workflows): PENDING on executors that are not alive.
    orphaned: list[tuple[str, int]]
    # (queue, application_version, workflows): ENQUEUED for a version no live executor runs;
    # None when not read this time.
    stranded: list[tuple[str, str, int]] | None
    # (queue, worker_concurrency or None) of every queue registered in the database.
    queues: list[tuple[str, int | None]]
    # (queue, ENQUEUED + PENDING workflows that could run at once): each partition counted up
    # to the queue's partition_concurrency, the queue up to its global concurrency. Queues
    # without such limits are not listed (all their in-flight work could run).
    runnable: list[tuple[str, int]]
    # (queue, age in seconds) of the oldest ENQUEUED workflow, for queues that have one.
    oldest_age_seconds: list[tuple[str, float]]


class Fleet:
    def __init__(self, engine: sa.Engine, queue_names: Sequence[str]) -> None:
        self._engine = with_schemas(engine)
        # The registry's queues: the work the reaper recovers, and so what counts as orphaned.
        self._queue_names = list(queue_names)

    def snapshot(
        self, grace_ms: int, *, with_stranded: bool = True, max_executors: int = 500
    ) -> FleetSnapshot:
        """Everything above in one connection, each query served by an index of DBOS's, but
        `stranded`: it reads every queued row (no index has the version), so callers that
        poll often (metrics) ask for it less often."""
        hb = heartbeats
        with self._engine.connect() as conn:
            # One "now" for every query, so they agree on who is alive.
            now_value = int(conn.execute(sa.select(now_ms(self._engine))).scalar_one())
            now = sa.literal(now_value)
            is_alive = rules.is_alive(now, grace_ms)
            depth = [tuple(r) for r in conn.execute(_depth_query())]
            executors = [
                Executor(*row)
                for row in conn.execute(
                    sa.select(
                        hb.c.executor_id,
                        hb.c.application_version,
                        hb.c.hostname,
                        hb.c.started_at,
                        hb.c.heartbeat_at,
                        hb.c.stopped_at,
                        is_alive.label("alive"),
                    )
                    .order_by(hb.c.heartbeat_at.desc())
                    .limit(max_executors)
                )
            ]
            live_versions = sa.select(hb.c.application_version).where(is_alive)
            orphaned = [
                tuple(r) for r in conn.execute(_orphaned_query(now, grace_ms, self._queue_names))
            ]
            stranded = None
            if with_stranded:
                stranded = [tuple(r) for r in conn.execute(_stranded_query(live_versions))]
            # Every registered queue's limits, in one read: its per-worker concurrency (the
            # load's divisor), and the global and per-partition limits (what may run at once).
            q = queues
            settings = conn.execute(
                sa.select(
                    q.c.name, q.c.worker_concurrency, q.c.concurrency, q.c.partition_concurrency
                )
            ).all()
            configured = [(name, per_worker) for name, per_worker, _, _ in settings]
            limits = {
                name: (global_limit, per_partition)
                for name, _, global_limit, per_partition in settings
                if global_limit is not None or per_partition is not None
            }
            oldest = []
            for queue in sorted({q for q, status, n in depth if status == "ENQUEUED" and n}):
                enqueued_at = conn.execute(_oldest_enqueued_query(queue)).scalar()
                if enqueued_at is not None:
                    oldest.append((queue, max(0.0, (now_value - enqueued_at) / 1000)))
            runnable = _runnable(conn, depth, limits)
        return FleetSnapshot(
            depth=depth,
            executors=executors,
            orphaned=orphaned,
            stranded=stranded,
            queues=configured,
            oldest_age_seconds=oldest,
            runnable=runnable,
        )


def _depth_query() -> sa.CompoundSelect[Any]:
    # Two parts so each uses its partial index (index-only for the in-flight one): a single
    # status IN (...) over all three statuses matches neither and reads the whole table.
    ws = workflow_status

    def count(*statuses: str) -> sa.Select[Any]:
        return (
            sa.select(ws.c.queue_name, ws.c.status, sa.func.count())
            .where(ws.c.status.in_(statuses), ws.c.queue_name.is_not(None))
            .group_by(ws.c.queue_name, ws.c.status)
        )

    return sa.union_all(count("ENQUEUED", "PENDING"), count("DELAYED"))


def _runnable(
    conn: sa.Connection,
    depth: Sequence[tuple[Any, ...]],
    limits: dict[str, tuple[int | None, int | None]],
) -> list[tuple[str, int]]:
    """ENQUEUED + PENDING that could run at once, on the queues that bound it (see
    FleetSnapshot.runnable; `limits`: each such queue's global and per-partition limits): the
    autoscaling signal must not ask for workers that the queue's own limits would leave idle
    (one fan-out of 200 children, 4 at a time, needs no 20 workers).
    """
    if not limits:
        return []
    in_flight: dict[str, int] = {}
    for queue, status, count in depth:
        if status in ("ENQUEUED", "PENDING"):
            in_flight[queue] = in_flight.get(queue, 0) + int(count)
    capped: dict[str, int] = {}
    partitioned = [name for name, (_, per_partition) in limits.items() if per_partition]
    if partitioned:
        for queue, runnable, total in conn.execute(_partitions_query(partitioned)):
            in_flight[queue] = in_flight.get(queue, 0) - int(total) + int(runnable)
    for name, (global_limit, _) in limits.items():
        busy = in_flight.get(name, 0)
        capped[name] = busy if global_limit is None else min(busy, global_limit)
    return sorted(capped.items())


def _partitions_query(partitioned: list[str]) -> sa.Select[Any]:
    """Per partitioned queue: its in-flight workflows counted up to partition_concurrency per
    partition, and all of them (served by DBOS's partial index of partitioned in-flight rows)."""
    ws = workflow_status
    per_partition = (
        sa.select(ws.c.queue_name, ws.c.queue_partition_key, sa.func.count().label("n"))
        .where(
            ws.c.status.in_(("ENQUEUED", "PENDING")),
            ws.c.queue_partition_key.is_not(None),
            ws.c.queue_name.in_(partitioned),
        )
        .group_by(ws.c.queue_name, ws.c.queue_partition_key)
        .subquery("partitions")
    )
    limit = queues.c.partition_concurrency
    capped = sa.case((per_partition.c.n > limit, limit), else_=per_partition.c.n)
    return (
        sa.select(per_partition.c.queue_name, sa.func.sum(capped), sa.func.sum(per_partition.c.n))
        .select_from(per_partition.join(queues, queues.c.name == per_partition.c.queue_name))
        .group_by(per_partition.c.queue_name)
    )


def _orphaned_query(
    now: sa.ColumnElement[int], grace_ms: int, queue_names: list[str]
) -> sa.Select[Any]:
    # Work of executors not heard from within the grace period, on the queues the reaper
    # covers: what it will recover once a live worker has beaten through the grace period.
    ws = workflow_status
    return (
        sa.select(ws.c.queue_name, sa.func.count())
        .where(
            ws.c.status == "PENDING",
            ws.c.queue_name.in_(queue_names),
            rules.owner_is_gone(ws.c.executor_id, ws.c.updated_at, grace_ms, rules.by_clock(now)),
        )
        .group_by(ws.c.queue_name)
    )


def _stranded_query(live_versions: sa.Select[Any]) -> sa.Select[Any]:
    ws = workflow_status
    return (
        sa.select(ws.c.queue_name, ws.c.application_version, sa.func.count())
        .where(
            ws.c.status == "ENQUEUED",
            ws.c.queue_name.is_not(None),
            ws.c.application_version.is_not(None),
            ws.c.application_version.not_in(live_versions),
        )
        .group_by(ws.c.queue_name, ws.c.application_version)
    )


def _oldest_enqueued_query(queue: str) -> sa.Select[Any]:
    """When the oldest ENQUEUED workflow of a queue was enqueued (epoch ms), in a few seeks.

    DBOS's in-flight index is ordered by (queue, status, priority, created_at): the head of each
    priority is one seek, and the distinct priorities are found by a recursive skip scan, so
    this costs a few index lookups however long the queue or the history. A workflow that was
    DELAYED counts from when its delay ended (DELAYED ones are not ENQUEUED, so never count).
    """
    ws = workflow_status
    waiting = (ws.c.queue_name == queue, ws.c.status == "ENQUEUED")
    first = sa.select(sa.func.min(ws.c.priority).label("priority")).where(*waiting)
    priorities = first.cte("priorities", recursive=True)
    following = (
        sa.select(sa.func.min(ws.c.priority))
        .where(*waiting, ws.c.priority > priorities.c.priority)
        .scalar_subquery()
    )
    priorities = priorities.union_all(
        sa.select(following).where(priorities.c.priority.is_not(None))
    )
    head = (
        sa.select(sa.func.coalesce(ws.c.delay_until_epoch_ms, ws.c.created_at))
        .where(*waiting, ws.c.priority == priorities.c.priority)
        .order_by(ws.c.created_at)
        .limit(1)
        .scalar_subquery()
    )
    return sa.select(sa.func.min(head)).where(priorities.c.priority.is_not(None))
