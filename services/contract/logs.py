"""One log stream per process, for both services: every line, the project's, DBOS's, uvicorn's
and any library's, in one format, `text` (a readable line per record, for a terminal) or
`json` (one object per line, for a log pipeline).

The project logs events: a stable name and fields, never text to parse.

    log = logs.get_logger(__name__)
    log.info("worker.ready", executor_id=executor_id, queues="a,b")

Text:  2026-11-30T22:11:13.494Z INFO  worker.ready executor_id=w-1 queues=a,b
JSON:  {"time": "2026-11-30T22:11:13.494Z", "level": "info", "logger": "services.worker.runner",
        "event": "worker.ready", "executor_id": "w-1", "queues": "a,b", "service": "worker"}

A line of another library has no event: its text is its `message` (JSON), or follows its
logger's name (text). Fields bound with `context(...)` (a request's id, a workflow's id and
queue) go on every line logged inside it, in that thread or task, whoever logs it; the
process's own fields (`configure`) on every JSON line.
"""

import contextlib
import logging
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from types import MappingProxyType, TracebackType
from typing import Any, Final, Literal

from services.contract.log_formats import (
    BOUND_FIELDS,
    EVENT_FIELDS,
    JsonFormatter,
    TextFormatter,
)

LogFormat = Literal["text", "json"]

_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})
_CONTEXT: ContextVar[Mapping[str, Any]] = ContextVar("log_context", default=_EMPTY)

# DBOS's start-up lines, at INFO in DBOS: the engine's parameters, each schema migration, an
# invitation to a hosted console, the executor's id and version, each queue over two lines
# (the worker says all that in two lines of its own: schema.ready and worker.ready). Demoted
# to DEBUG.
DBOS_CHATTER: Final = (
    "Initializing DBOS",
    "Using SQLite as a system database",
    "DBOS system database engine parameters",
    "Applying DBOS",  # ... [SQLite ]system database schema migration N
    "Migration 10 skipped",
    "Creating system database",
    "To view and manage workflows, connect to DBOS Conductor",
    "Executor ID:",
    "Application version:",
    "Application name:",
    "DBOS launched!",
    "No workflows to recover",
    "Listening to ",
    "Registered and listening to new queue",
    "Queue: ",
)
# ... and a warning that is not one here: logs go to the stream, never to an OTLP endpoint, so
# DBOS finds no OpenTelemetry logger provider when tracing is on (services.contract.tracing).
DBOS_QUIET_WARNINGS: Final = ("OTLP is enabled but logger provider not set",)


class EventLogger:
    """A logger of events: `log.info("name", key=value, ...)`."""

    def __init__(self, name: str) -> None:
        self.logger = logging.getLogger(name)

    def log(self, level: int, event: str, /, **fields: Any) -> None:
        self._log(level, event, fields)

    def debug(self, event: str, /, **fields: Any) -> None:
        self._log(logging.DEBUG, event, fields)

    def info(self, event: str, /, **fields: Any) -> None:
        self._log(logging.INFO, event, fields)

    def warning(self, event: str, /, **fields: Any) -> None:
        self._log(logging.WARNING, event, fields)

    def error(self, event: str, /, exc_info: BaseException | None = None, **fields: Any) -> None:
        self._log(logging.ERROR, event, fields, exc_info)

    def _log(
        self,
        level: int,
        event: str,
        fields: dict[str, Any],
        exc_info: BaseException | None = None,
    ) -> None:
        if self.logger.isEnabledFor(level):
            self.logger.log(
                level, event, exc_info=exc_info, extra={EVENT_FIELDS: fields}, stacklevel=3
            )


def get_logger(name: str) -> EventLogger:
    return EventLogger(name)


def event_fields(record: logging.LogRecord) -> Mapping[str, Any]:
    """The fields an event was logged with (none for a line of another library)."""
    fields: Mapping[str, Any] = getattr(record, EVENT_FIELDS, _EMPTY)
    return fields


@contextlib.contextmanager
def context(**fields: Any) -> Iterator[None]:
    """Bind fields to every line logged inside the block (in this thread or task); a field
    whose value is None is left out, an outer block's value included (a child workflow run
    inline does not speak with its parent's request id)."""
    merged = {**_CONTEXT.get(), **fields}
    token = _CONTEXT.set({k: v for k, v in merged.items() if v is not None})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def bind(**fields: Any) -> object:
    """`context` for middleware that cannot wrap a block: returns the token for `unbind`."""
    return _CONTEXT.set({**_CONTEXT.get(), **fields})


def unbind(token: object) -> None:
    _CONTEXT.reset(token)  # type: ignore[arg-type]


# Functions that give fields of the moment for every line (the current trace's ids).
_SOURCES: list[Callable[[], Mapping[str, Any]]] = []


def add_context_source(source: Callable[[], Mapping[str, Any]]) -> None:
    """Add fields of the moment to every line (services.contract.tracing adds the trace's)."""
    if source not in _SOURCES:
        _SOURCES.append(source)


class _Context(logging.Filter):
    """Notes the bound fields on the record, in the thread that logs it."""

    def filter(self, record: logging.LogRecord) -> bool:
        bound = _CONTEXT.get()
        for source in _SOURCES:
            bound = {**bound, **source()}
        # DBOS names the workflow a line of its comes from.
        workflow_id = getattr(record, "operationUUID", None)
        if workflow_id and "workflow_id" not in bound:
            bound = {**bound, "workflow_id": workflow_id}
        setattr(record, BOUND_FIELDS, bound)
        return True


class _DemoteChatter(logging.Filter):
    """DBOS's start-up lines (DBOS_CHATTER) at DEBUG: dropped unless DEBUG is on."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.msg
        demoted = DBOS_CHATTER if record.levelno == logging.INFO else DBOS_QUIET_WARNINGS
        if record.levelno <= logging.WARNING and isinstance(msg, str) and msg.startswith(demoted):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger("dbos").isEnabledFor(logging.DEBUG)
        return True


def configure(level: str, log_format: LogFormat, **process_fields: Any) -> None:
    """The process's one log stream (stderr), at `level`, for every logger. Called once at
    start; again, it replaces the first setup (a uvicorn process calls it for its app)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(process_fields) if log_format == "json" else TextFormatter())
    handler.addFilter(_Context())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # DBOS adds its own console handler unless its logger has one: it gets ours.
    dbos = logging.getLogger("dbos")
    for old in list(dbos.handlers):
        dbos.removeHandler(old)
    dbos.addHandler(handler)
    dbos.propagate = False
    dbos.setLevel(level)
    if not any(isinstance(f, _DemoteChatter) for f in dbos.filters):
        dbos.addFilter(_DemoteChatter())
    # uvicorn's lines through the same handler (it is run with log_config=None), but for its
    # access log: the API writes its own (services.api.middleware), and uvicorn writes one
    # only when that logger has a handler.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.propagate = name != "uvicorn.access"
    logging.captureWarnings(True)
    # An exception nobody caught, in any thread, is a line of the stream too (with its
    # traceback), not a bare traceback in the middle of it.
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(
    kind: type[BaseException], value: BaseException, trace: TracebackType | None
) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, trace)
        return
    logging.getLogger("uncaught").critical(
        "process.uncaught_exception", exc_info=(kind, value, trace), extra={EVENT_FIELDS: {}}
    )


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or issubclass(args.exc_type, SystemExit):
        return
    thread = args.thread.name if args.thread is not None else None
    logging.getLogger("uncaught").critical(
        "thread.uncaught_exception",
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
        extra={EVENT_FIELDS: {"thread": thread}},
    )
