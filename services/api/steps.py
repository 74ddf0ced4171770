"""A workflow's steps, read from DBOS's `operation_outputs`: what ran, when, and how it ended.

DBOS 3.4 records an operation when it has completed, so the step in progress is not listed yet;
a `DBOS.sleep` is recorded as it begins, with its wake time as completion, and is RUNNING until
then by the database's clock. Rows written before DBOS recorded times have none.

Errors stored as portable JSON (DBOS's `{"name", "message", ...}`) are shown as stored. Errors
DBOS pickled (its default for step errors) are read from the pickle's opcodes, never unpickled:
the class named, and the text among its arguments, which is what a message is. Nothing of the
pickle is executed or built (pickletools only parses).
"""

import base64
import binascii
import json
import pickletools
import re
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

import sqlalchemy as sa

from services.contract import fleet
from services.contract.dbos_tables import operation_outputs, workflow_status

PORTABLE_JSON: Final = "portable_json"
PICKLE: Final = "py_pickle"
# Bounds on what is read of a pickled error: its size, its opcodes, and the message.
MAX_PICKLE_BYTES: Final = 64 * 1024
MAX_OPCODES: Final = 2000
MAX_ERROR_MESSAGE: Final = 1000
_MODULE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
# The opcodes that push text, and those that name a class (GLOBAL by its argument, STACK_GLOBAL
# by the two texts before it).
_TEXT_OPCODES: Final = frozenset(
    {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING"}
)


@dataclass(frozen=True)
class StepError:
    name: str | None
    message: str


@dataclass(frozen=True)
class StepRecord:
    step_id: int
    name: str
    status: str  # "ERROR", "RUNNING" (completes later, by the database's clock) or "SUCCESS"
    started_at_ms: int | None
    completed_at_ms: int | None
    error: StepError | None
    child_workflow_id: str | None


def read_steps(conn: sa.Connection, workflow_id: str) -> list[StepRecord] | None:
    """The workflow's steps in order, or None when no workflow has this id."""
    rows = conn.execute(_steps_statement(conn.dialect.name), {"workflow_id": workflow_id}).all()
    if not rows:
        return None
    # An outer join from the workflow: one row with no step when it has none yet.
    return [_step(row) for row in rows if row.function_id is not None]


@cache
def _steps_statement(dialect: str) -> sa.Select[Any]:
    ws, ops = workflow_status, operation_outputs
    return (
        sa.select(
            ops.c.function_id,
            ops.c.function_name,
            ops.c.error,
            ops.c.child_workflow_id,
            ops.c.started_at_epoch_ms,
            ops.c.completed_at_epoch_ms,
            ops.c.serialization,
            (ops.c.completed_at_epoch_ms > fleet.clock_ms(dialect)).label("completes_later"),
        )
        .select_from(ws.outerjoin(ops, ops.c.workflow_uuid == ws.c.workflow_uuid))
        .where(ws.c.workflow_uuid == sa.bindparam("workflow_id", type_=sa.Text))
        .order_by(ops.c.function_id)
    )


def _step(row: sa.Row[Any]) -> StepRecord:
    error = None if row.error is None else decode_error(row.error, row.serialization)
    if error is not None:
        status = "ERROR"
    elif row.completes_later:
        status = "RUNNING"
    else:
        status = "SUCCESS"
    return StepRecord(
        step_id=row.function_id,
        name=row.function_name,
        status=status,
        started_at_ms=row.started_at_epoch_ms,
        completed_at_ms=row.completed_at_epoch_ms,
        error=error,
        child_workflow_id=row.child_workflow_id,
    )


def decode_error(stored: str, serialization: str | None) -> StepError:
    """A stored step error as name and message; never unpickled."""
    if serialization == PORTABLE_JSON:
        try:
            data = json.loads(stored)
        except (ValueError, RecursionError):
            data = None
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            name = data.get("name")
            return StepError(name if isinstance(name, str) else None, data["message"])
    if serialization in (PICKLE, None):
        read = _read_pickled_error(stored)
        if read is not None:
            return read
    return StepError(None, f"not shown: stored as {serialization or 'an unknown format'}")


def _read_pickled_error(stored: str) -> StepError | None:
    """The class and texts of a pickled exception, from its opcodes: "Name" and "its first
    text (Cause: its text; ...)" for the exceptions it carries (a step that exhausted its
    retries carries the errors of its attempts)."""
    if len(stored) > MAX_PICKLE_BYTES * 4 // 3 + 4:
        return None
    try:
        data = base64.b64decode(stored, validate=True)
        items: list[tuple[str, str]] = []  # ("class", name) or ("text", value), in order
        for count, (opcode, argument, _) in enumerate(pickletools.genops(data)):
            if count >= MAX_OPCODES:
                break
            if opcode.name in _TEXT_OPCODES and isinstance(argument, str | bytes):
                text = argument if isinstance(argument, str) else argument.decode("latin-1")
                items.append(("text", text))
            elif opcode.name == "GLOBAL" and isinstance(argument, str):
                items.append(("class", argument.split(" ")[-1]))
            elif opcode.name == "STACK_GLOBAL" and items and items[-1][0] == "text":
                # The name, and the module before it unless a memo reference stood for it.
                name = items.pop()[1]
                if items and items[-1][0] == "text" and _MODULE.fullmatch(items[-1][1]):
                    items.pop()
                items.append(("class", name))
    except (ValueError, binascii.Error, EOFError, KeyError, IndexError):
        return None
    classes = [i for i, (kind, _) in enumerate(items) if kind == "class"]
    if not classes:
        return None

    def first_text(after: int) -> str:
        following = items[after + 1 : after + 2]
        return following[0][1] if following and following[0][0] == "text" else ""

    name = items[classes[0]][1]
    causes = [f"{items[i][1]}: {first_text(i)}" for i in classes[1:4] if items[i][1] != name]
    message = first_text(classes[0]) + (f" ({'; '.join(causes)})" if causes else "")
    return StepError(name, message[:MAX_ERROR_MESSAGE])
