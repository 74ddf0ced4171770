"""Reads about queues and the workers serving them: depth, live executors, stuck work."""

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from services.api import fleet_queries as queries
from services.api.runnable import InFlight, Limits, Runnable, runnable
from services.contract import dbos_tables
from services.contract import fleet as rules
from services.contract.dbos_tables import (
    now_ms,
    queues,
    with_schemas,
)
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
    # (queue, application_version, status, workflows): the same by version, work enqueued
    # without a version counted under the version the API pins (see Fleet).
    by_version: list[tuple[str, str, str, int]]
    executors: list[Executor]
    # (queue, workflows): PENDING on executors that are not alive.
    orphaned: list[tuple[str, int]]
    # (queue, application_version, workflows): ENQUEUED for a version no live executor runs.
    stranded: list[tuple[str, str, int]]
    # (queue, worker_concurrency or None) of every queue registered in the database.
    queues: list[tuple[str, int | None]]
    # (queue, application_version, ENQUEUED + PENDING workflows that its workers could run
    # now), for every queue and version with such work, within the queue's partition and
    # global limits (see services.api.runnable).
    runnable: list[tuple[str, str, int]]
    # (queue, ENQUEUED + PENDING workflows that could run at once, of any version).
    runnable_totals: list[tuple[str, int]]
    # (queue, age in seconds) of the oldest ENQUEUED workflow, for queues that have one.
    oldest_age_seconds: list[tuple[str, float]]
    # The versions whose share of the load is reported even when it is 0: the API's own, every
    # live worker's, and every one with work. An autoscaler that finds no series holds its
    # size (HPA) or falls back (KEDA): a version's fleet must read 0 to shrink.
    reported_versions: list[str]


class Fleet:
    def __init__(self, engine: sa.Engine, queue_names: Sequence[str], default_version: str) -> None:
        self._engine = with_schemas(engine)
        # The registry's queues: the work the reaper recovers, and so what counts as orphaned.
        self._queue_names = list(queue_names)
        # Where work enqueued without a version (by other clients) is counted: DBOS gives it to
        # its latest version's workers; this API's version while DBOS has none registered.
        self._default_version = default_version

    def snapshot(self, grace_ms: int, *, max_executors: int = 500) -> FleetSnapshot:
        """Everything above in one connection, each query served by an index of DBOS's (the
        work by version reads the in-flight rows the index finds: no index has the version)."""
        hb = heartbeats
        with self._engine.connect() as conn:
            # One "now" for every query, so they agree on who is alive.
            now_value = int(conn.execute(sa.select(now_ms(self._engine))).scalar_one())
            now = sa.literal(now_value)
            is_alive = rules.is_alive(now, grace_ms)
            latest = conn.execute(queries.latest_version_query()).scalar()
            unversioned = str(latest) if latest is not None else self._default_version
            work = [
                (queue, version or unversioned, status, int(n))
                for queue, version, status, n in conn.execute(queries.work_query())
            ]
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
            live_versions = set(
                conn.execute(sa.select(hb.c.application_version).where(is_alive).distinct())
                .scalars()
                .all()
            )
            orphaned = [
                tuple(r)
                for r in conn.execute(queries.orphaned_query(now, grace_ms, self._queue_names))
            ]
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
                name: Limits(global_limit, per_partition)
                for name, _, global_limit, per_partition in settings
                if global_limit is not None or per_partition is not None
            }
            depth: dict[tuple[str, str], int] = {}
            for queue, _, status, n in work:
                depth[queue, status] = depth.get((queue, status), 0) + n
            oldest = []
            for queue in sorted({q for (q, status), n in depth.items() if status == "ENQUEUED"}):
                enqueued_at = conn.execute(queries.oldest_enqueued_query(queue)).scalar()
                if enqueued_at is not None:
                    oldest.append((queue, max(0.0, (now_value - enqueued_at) / 1000)))
            capped = self._runnable(conn, work, limits, unversioned)
        return FleetSnapshot(
            depth=[(queue, status, n) for (queue, status), n in depth.items()],
            by_version=self._versioned(work),
            executors=executors,
            orphaned=orphaned,
            stranded=sorted(
                (queue, version, n)
                for queue, version, status, n in work
                if status == "ENQUEUED" and version not in live_versions
            ),
            queues=configured,
            oldest_age_seconds=oldest,
            runnable=sorted((q, v, n) for (q, v), n in capped.shares.items()),
            runnable_totals=sorted(capped.totals.items()),
            reported_versions=sorted(
                {self._default_version, *live_versions} | {version for _, version, _, _ in work}
            ),
        )

    def _versioned(
        self, work: Sequence[tuple[str, str, str, int]]
    ) -> list[tuple[str, str, str, int]]:
        counts: dict[tuple[str, str, str], int] = {}
        for queue, version, status, n in work:
            key = (queue, version, status)
            counts[key] = counts.get(key, 0) + n
        return sorted((queue, version, status, n) for (queue, version, status), n in counts.items())

    def _runnable(
        self,
        conn: sa.Connection,
        work: Sequence[tuple[str, str, str, int]],
        limits: dict[str, Limits],
        unversioned: str,
    ) -> Runnable:
        """What of the in-flight work could run at once (see services.api.runnable)."""
        in_flight: dict[tuple[str, str], InFlight] = {}
        for queue, version, status, count in work:
            if status in ("ENQUEUED", "PENDING"):
                key = (queue, version)
                in_flight.setdefault(key, InFlight()).add(
                    count, count if status == "PENDING" else 0
                )
        partitioned = [name for name, limit in limits.items() if limit.per_partition]
        partitions = []
        if partitioned:
            for queue, version, key, count, running in conn.execute(
                queries.partitions_query(partitioned)
            ):
                own = version or unversioned
                partitions.append((queue, own, key, InFlight(int(count), int(running or 0))))
        return runnable(in_flight, partitions, limits)
