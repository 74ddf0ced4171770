"""The fleet snapshot's queries (services.api.fleet), each served by an index of DBOS's."""

from typing import Any

import sqlalchemy as sa

from services.contract import APP_NAME
from services.contract import fleet as rules
from services.contract.dbos_tables import application_versions, workflow_status


def latest_version_query() -> sa.Select[Any]:
    """DBOS's latest version as this application sees it: the newest registered by it or by no
    application in particular (DBOS's own rule)."""
    av = application_versions
    return (
        sa.select(av.c.version_name)
        .where(sa.or_(av.c.application_name == APP_NAME, av.c.application_name.is_(None)))
        .order_by(av.c.version_timestamp.desc())
        .limit(1)
    )


def work_query() -> sa.CompoundSelect[Any]:
    # Two parts so each uses its partial index: a single status IN (...) over all three
    # statuses matches neither and reads the whole table.
    ws = workflow_status

    def count(*statuses: str) -> sa.Select[Any]:
        return (
            sa.select(ws.c.queue_name, ws.c.application_version, ws.c.status, sa.func.count())
            .where(ws.c.status.in_(statuses), ws.c.queue_name.is_not(None))
            .group_by(ws.c.queue_name, ws.c.application_version, ws.c.status)
        )

    return sa.union_all(count("ENQUEUED", "PENDING"), count("DELAYED"))


def partitions_query(partitioned: list[str]) -> sa.Select[Any]:
    """Per partitioned queue, version and partition: its in-flight workflows and how many of
    them run (found by DBOS's partial index of partitioned in-flight rows)."""
    ws = workflow_status
    return (
        sa.select(
            ws.c.queue_name,
            ws.c.application_version,
            ws.c.queue_partition_key,
            sa.func.count(),
            sa.func.sum(sa.case((ws.c.status == "PENDING", 1), else_=0)),
        )
        .where(
            ws.c.status.in_(("ENQUEUED", "PENDING")),
            ws.c.queue_partition_key.is_not(None),
            ws.c.queue_name.in_(partitioned),
        )
        .group_by(ws.c.queue_name, ws.c.application_version, ws.c.queue_partition_key)
    )


def orphaned_query(
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


def oldest_enqueued_query(queue: str) -> sa.Select[Any]:
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
