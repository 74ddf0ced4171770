"""The audit log as the API keeps it: every state-changing call that got past authorization
(enqueue, batch, cancel, resume), with who made it, when, what on which workflow, the answer's
status and the request's id, and GET /audit to read it (services.contract.audit holds the
table).

An enqueue (or batch) that creates workflows writes its row, outcome 202, in the same
transaction as the workflows: both are committed, or neither. Every other call is recorded once
its answer is known, refused ones included (a 409, a 422); if that row cannot be written (the
database went away in between), the answer stands and the failure is logged with the request's
id. So an enqueue that answered 503 on its deadline while its write went through has two rows
under its request id: the enqueue's (202, naming the workflow) and the answer's (503).

A replay of an idempotent request changes nothing and is not recorded again, unless the call it
repeats was not recorded as done (as 0.2.0 recorded an enqueue that timed out while its write
went through: a 503 only): then the replay is, so no workflow is without a record of it. Calls
refused before they could act (no or a bad token, a cross-site or non-JSON POST) are logged,
not written: an anonymous flood must not fill the database.
"""

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa

from services.contract import fleet as rules
from services.contract.audit import audit_log
from services.contract.dbos_tables import with_schemas

# An X-Request-Id the caller sends is kept if it looks like an id; otherwise one is made.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
ANONYMOUS = "anonymous"


def request_id(header: str | None) -> str:
    return header if header is not None and _REQUEST_ID.fullmatch(header) else uuid.uuid4().hex


@dataclass(frozen=True)
class AuditEntry:
    actor: str
    roles: list[str]
    action: str
    target: str | None
    outcome: int
    request_id: str
    detail: dict[str, Any] | None


def insert(conn: sa.Connection, entries: Sequence[AuditEntry]) -> None:
    """The entries' rows, in the caller's transaction (an enqueue's rows are written with its
    workflows: both are there, or neither). The connection maps the fleet's schema."""
    rows = [
        {
            "actor": e.actor,
            "roles": json.dumps(e.roles),
            "action": e.action,
            "target": e.target,
            "outcome": e.outcome,
            "request_id": e.request_id,
            "detail": None if e.detail is None else json.dumps(e.detail),
        }
        for e in entries
    ]
    if conn.dialect.name == "postgresql":
        # One statement for all, the same text every time: a quarter of what an executemany
        # costs, which was a third of an enqueue's time under load.
        conn.execute(_INSERT_POSTGRESQL, {"rows": json.dumps(rows)})
    else:
        conn.execute(sa.insert(audit_log).values(at_ms=rules.clock_ms(conn.dialect.name)), rows)


def _insert_from_json() -> sa.Insert:
    """INSERT ... SELECT FROM json_to_recordset(:rows): the rows as one JSON parameter."""
    columns = [c for c in audit_log.c if c.name not in ("id", "at_ms")]
    rows = (
        sa.func.json_to_recordset(sa.cast(sa.bindparam("rows"), sa.JSON))
        .table_valued(*(sa.column(c.name, c.type) for c in columns))
        .render_derived(name="r", with_types=True)
    )
    select = sa.select(rules.clock_ms("postgresql"), *(rows.c[c.name] for c in columns))
    return sa.insert(audit_log).from_select(["at_ms", *(c.name for c in columns)], select)


_INSERT_POSTGRESQL: Final = _insert_from_json()


class AuditLog:
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = with_schemas(engine)

    def record_many(self, entries: Sequence[AuditEntry]) -> list[None]:
        """The rows of concurrent calls, in one transaction (through EnqueueGroups, as the
        enqueues themselves: a row of its own per call would cost each enqueue a transaction)."""
        with self._engine.begin() as conn:
            insert(conn, entries)
        return [None] * len(entries)

    def page(self, limit: int, before_id: int | None) -> list[dict[str, Any]]:
        """Newest first: `limit` rows with an id below `before_id` (all, when None)."""
        log = audit_log
        query = sa.select(log).order_by(log.c.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(log.c.id < before_id)
        with self._engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def recorded(self, target: str, action: str) -> bool:
        """Whether a call of `action` on `target` was recorded as done (a 2xx)."""
        log = audit_log
        query = (
            sa.select(log.c.id)
            .where(
                log.c.target == target,
                log.c.action == action,
                log.c.outcome.between(200, 299),
            )
            .limit(1)
        )
        with self._engine.connect() as conn:
            return conn.execute(query).first() is not None
