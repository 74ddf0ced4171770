"""Enqueues: DBOS's rows, written in bulk (enqueue_rows), those of concurrent requests in one
transaction (enqueue_groups), each with its audit row and the request's id and trace."""

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from dbos import DBOSClient, EnqueueOptions, WorkflowSerializationFormat

from services.api import audit, enqueue_rows
from services.api.audit import AuditEntry
from services.api.auth import Identity
from services.api.db_threads import DatabaseThreads
from services.api.enqueue_groups import EnqueueGroups
from services.api.enqueue_input import Enqueue, same_request
from services.api.listing import REQUEST_DIGEST_ATTRIBUTE, records
from services.api.store import Store
from services.api.workflows import WorkflowConflict
from services.contract import tracing
from services.contract.dbos_tables import REQUEST_ID_ATTRIBUTE

# Workflows of concurrent requests written in one transaction, at most, and such transactions
# in flight at once.
MAX_ENQUEUE_GROUP = 100
ENQUEUE_WRITERS = 2

# One workflow to enqueue: its options, its keyword arguments, and the audit log's row to write
# with it if it is created (its target set to the workflow's id then).
Item = tuple[EnqueueOptions, dict[str, Any], AuditEntry | None]


class BatchConflict(Exception):
    """An item of a batch reuses an idempotency key of another request, or a deduplication id
    a queued or running workflow holds; nothing was enqueued. The message says which."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


@dataclass(frozen=True)
class Origin:
    """Where an enqueue comes from: who asked (None without authentication), the id of its
    HTTP request, and the audit log's row of the call (None when not audited)."""

    caller: Identity | None = None
    request_id: str | None = None
    audit_entry: AuditEntry | None = None


class Enqueues:
    def __init__(
        self,
        client: DBOSClient,
        store: Store,
        threads: DatabaseThreads,
        application_version: str,
    ) -> None:
        self._client = client
        self._store = store
        self._application_version = application_version
        self._threads = threads
        self._enqueues = EnqueueGroups(
            threads, self._enqueue_many, MAX_ENQUEUE_GROUP, ENQUEUE_WRITERS
        )

    def _options(
        self,
        enqueue: Enqueue,
        workflow_id: str | None,
        origin: Origin,
        trace_context: dict[str, str] | None,
    ) -> EnqueueOptions:
        attributes: dict[str, Any] = {
            # What a retry with the same idempotency key is compared with.
            REQUEST_DIGEST_ATTRIBUTE: enqueue.digest,
        }
        if origin.request_id is not None:
            # The worker's log lines for the workflow name the request that made it.
            attributes[REQUEST_ID_ATTRIBUTE] = origin.request_id
        if trace_context is not None:
            # DBOS's spans of the workflow and its steps continue the request's trace.
            attributes[tracing.OTEL_CARRIER_ATTRIBUTE] = trace_context
        options: EnqueueOptions = {
            "queue_name": enqueue.queue,
            "workflow_name": enqueue.workflow,
            # Pinned, so only workers of this version take it (see README: versions).
            "app_version": self._application_version,
            "serialization_type": WorkflowSerializationFormat.PORTABLE,
            "attributes": attributes,
        }
        if enqueue.priority is not None:
            options["priority"] = enqueue.priority
        if enqueue.delay_seconds is not None:
            options["delay_seconds"] = enqueue.delay_seconds
        if enqueue.timeout_seconds is not None:
            options["workflow_timeout"] = enqueue.timeout_seconds
        if enqueue.partition_key is not None:
            options["queue_partition_key"] = enqueue.partition_key
        if enqueue.deduplication_id is not None:
            options["deduplication_id"] = enqueue.deduplication_id
        if workflow_id is not None:
            options["workflow_id"] = workflow_id
        if origin.caller is not None:
            # Who asked, as DBOS records it with the workflow (and its steps can read).
            options["authenticated_user"] = origin.caller.name
            options["authenticated_roles"] = origin.caller.roles
        return options

    async def enqueue(
        self, enqueue: Enqueue, workflow_id: str | None, origin: Origin
    ) -> tuple[str, bool]:
        """Enqueue one workflow; returns its id and whether an earlier request already made it.

        Committed together with the enqueues of concurrent requests (one transaction for all),
        but for one with a deduplication id: its collision would fail the others' transaction,
        so it goes alone. The origin's audit entry is written in the same transaction when the
        workflow is created (not on a replay), with the workflow's id as its target.
        """
        options = self._options(enqueue, workflow_id, origin, tracing.carrier())
        item = (options, enqueue.input, origin.audit_entry)
        if enqueue.deduplication_id is None:
            written = await self._enqueues.submit(item)
        else:
            written = await self._threads.run(self._enqueue_alone, item)
        if written.created:
            return written.workflow_id, False
        existing = await self._threads.run(self._store.get, written.workflow_id)
        if existing is None or not same_request(existing, enqueue):
            raise WorkflowConflict("this Idempotency-Key was already used for a different request")
        return written.workflow_id, True

    def _enqueue_many(self, batch: Sequence[Item]) -> list[enqueue_rows.Written]:
        with self._store.begin() as conn:
            written = enqueue_rows.write(conn, self._client, [(o, k) for o, k, _ in batch])
            entries = [
                dataclasses.replace(entry, target=w.workflow_id)
                for (_, _, entry), w in zip(batch, written, strict=True)
                if entry is not None and w.created
            ]
            if entries:
                audit.insert(conn, entries)
            return written

    def _enqueue_alone(self, item: Item) -> enqueue_rows.Written:
        try:
            (written,) = self._enqueue_many([item])
        except sa.exc.IntegrityError as exc:
            if not _deduplication_clash(exc):
                raise
            options = item[0]
            holder = self._store.deduplication_holder(
                options["queue_name"], options.get("deduplication_id")
            )
            raise WorkflowConflict(_held(options, holder)) from None
        return written

    def enqueue_batch(
        self, batch: list[tuple[Enqueue, str | None]], origin: Origin
    ) -> list[tuple[str, bool]]:
        """Enqueue all of the batch in one transaction, or none of it.

        Returns each workflow's id and whether an earlier request with its idempotency key
        already made it; BatchConflict (and nothing enqueued) when a key was used for
        another request, or a deduplication id is held. The ids with a key must be distinct,
        and so must the (queue, deduplication id) pairs. The origin's audit entry is written in
        the same transaction when the batch creates any workflow, with their ids in its detail.
        """
        trace_context = tracing.carrier()  # the request's, the same for every item
        items = [
            (self._options(e, workflow_id, origin, trace_context), e.input)
            for e, workflow_id in batch
        ]
        audit_entry = origin.audit_entry
        try:
            with self._store.begin() as conn:
                written = enqueue_rows.write(conn, self._client, items)
                existing = [w.workflow_id for w in written if not w.created]
                found = records(conn, existing) if existing else {}
                for index, ((enqueue, _), w) in enumerate(zip(batch, written, strict=True)):
                    # A row that vanished since (retention) cannot be compared: not the same.
                    if not w.created and (
                        w.workflow_id not in found
                        or not same_request(found[w.workflow_id], enqueue)
                    ):
                        raise BatchConflict(
                            index,
                            f"workflows.{index}.idempotency_key was already used for a "
                            "different request; nothing was enqueued",
                        )
                created = [w.workflow_id for w in written if w.created]
                if audit_entry is not None and created:
                    detail = {**(audit_entry.detail or {}), "workflows": created}
                    audit.insert(conn, [dataclasses.replace(audit_entry, detail=detail)])
        except sa.exc.IntegrityError as exc:
            deduplicated = [i for i, (o, _) in enumerate(items) if o.get("deduplication_id")]
            if not deduplicated or not _deduplication_clash(exc):
                raise
            for index, (options, _) in enumerate(items):
                holder = self._store.deduplication_holder(
                    options["queue_name"], options.get("deduplication_id")
                )
                # An item's own workflow (a keyed retry) holding its id is no conflict.
                if holder is not None and holder != options.get("workflow_id"):
                    message = f"workflows.{index}.deduplication_id: {_held(options, holder)}"
                    raise BatchConflict(index, message + "; nothing was enqueued") from None
            # The holder finished between the failed write and this look: a retry may pass.
            first = deduplicated[0]
            message = f"workflows.{first}.deduplication_id: {_held(items[first][0], None)}"
            raise BatchConflict(first, message + "; nothing was enqueued") from None
        return [(w.workflow_id, not w.created) for w in written]


def _deduplication_clash(exc: sa.exc.IntegrityError) -> bool:
    """Whether the write failed on DBOS's unique (queue, deduplication id), and not on another
    constraint (the audit log's, say), which is no conflict of the caller's to report."""
    diag = getattr(exc.orig, "diag", None)
    constraint = getattr(diag, "constraint_name", None)
    if constraint is not None:  # PostgreSQL names it (uq_workflow_status_dedup_id in DBOS 3.4)
        return getattr(diag, "table_name", None) == "workflow_status" and "dedup" in constraint
    return "deduplication_id" in str(exc.orig)  # SQLite names the columns


def _held(options: EnqueueOptions, holder: str | None) -> str:
    by = f"workflow {holder}" if holder is not None else "another workflow"
    return (
        f"deduplication_id {options.get('deduplication_id')!r} is held by {by}, queued or "
        f"running on queue {options['queue_name']!r}; retry once it has finished"
    )
