"""The log stream's formats: one parseable line per record, whatever the record holds."""

import json
import logging
import sys
import threading
from collections.abc import Iterator

import pytest

from services.contract import logs


class Stream:
    """The process's stream (stderr, which configure() writes to), as captured."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.seen: list[str] = []

    def lines(self) -> list[str]:
        self.seen += self.capsys.readouterr().err.splitlines()
        return self.seen


@pytest.fixture
def stream(capsys: pytest.CaptureFixture[str]) -> Iterator[Stream]:
    """stderr, captured; logging as it was afterwards."""
    root, dbos = logging.getLogger(), logging.getLogger("dbos")
    saved = (root.handlers[:], root.level, dbos.handlers[:], dbos.level, dbos.propagate)
    hooks = (sys.excepthook, threading.excepthook)
    yield Stream(capsys)
    root.handlers[:], root.level = saved[0], saved[1]
    dbos.handlers[:], dbos.level, dbos.propagate = saved[2], saved[3], saved[4]
    sys.excepthook, threading.excepthook = hooks


def lines(out: Stream) -> list[str]:
    return out.lines()


def test_json_lines_carry_event_fields_context_and_process_fields(stream: Stream) -> None:
    logs.configure("INFO", "json", service="worker", executor_id="w-1")
    log = logs.get_logger("services.worker.test")
    with logs.context(workflow_id="wf-1", request_id=None):
        log.info("workflow.ended", outcome="success", duration_ms=1.5, time="not the time")
    log.debug("hidden.at_info")
    logging.getLogger("some.library").warning("two\nlines")
    (first, second) = [json.loads(line) for line in lines(stream)]
    assert first["event"] == "workflow.ended" and first["logger"] == "services.worker.test"
    assert (first["service"], first["executor_id"], first["workflow_id"]) == (
        "worker",
        "w-1",
        "wf-1",
    )
    assert "request_id" not in first  # a None in the context is left out
    assert first["outcome"] == "success" and first["duration_ms"] == 1.5
    # A field may not take a reserved key's place.
    assert first["time"] != "not the time" and first["time_"] == "not the time"
    assert second == {**second, "level": "warning", "message": "two\nlines"}
    assert "event" not in second and "workflow_id" not in second  # out of the context


def test_an_exception_stays_inside_its_line(stream: Stream) -> None:
    logs.configure("INFO", "json")
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        logs.get_logger("x").error("api.unhandled_error", exc_info=exc, path="/a\nb")
    (line,) = lines(stream)
    record = json.loads(line)
    assert "RuntimeError: boom" in record["exception"] and record["path"] == "/a\nb"


def test_text_is_one_readable_line_with_quoted_values(stream: Stream) -> None:
    logs.configure("INFO", "text", service="api")
    log = logs.get_logger("x")
    log.info("auth.token_file_problem", problem='line 3: "x y"', count=2, empty="")
    logging.getLogger("uvicorn.error").info("Started\nserver")
    first, second = lines(stream)
    assert first.split(" ", 2)[1:] == [
        "INFO",
        ' auth.token_file_problem problem="line 3: \\"x y\\"" count=2 empty=""',
    ]
    assert second.endswith("INFO  uvicorn.error: Started\\nserver")
    assert "service=" not in first  # the process's fields are for JSON lines only


def test_dbos_start_up_chatter_is_debug_and_dbos_gets_no_handler_of_its_own(
    stream: Stream,
) -> None:
    logs.configure("INFO", "json")
    dbos = logging.getLogger("dbos")
    assert dbos.handlers == logging.getLogger().handlers and not dbos.propagate
    dbos.info("Applying DBOS system database schema migration 7")
    dbos.info("To view and manage workflows, connect to DBOS Conductor at: https://example")
    dbos.info("Attempting to shut down DBOS. 2 workflows remain active.")
    (line,) = lines(stream)
    assert json.loads(line)["message"].startswith("Attempting to shut down")
    logs.configure("DEBUG", "json")
    dbos.info("Applying DBOS system database schema migration 8")
    assert json.loads(lines(stream)[-1])["level"] == "debug"


def test_uvicorn_writes_no_access_log_of_its_own(stream: Stream) -> None:
    logs.configure("INFO", "text")
    assert not logging.getLogger("uvicorn.access").hasHandlers()
    assert logging.getLogger("uvicorn.error").hasHandlers()


def test_an_uncaught_exception_in_a_thread_is_one_line_with_its_traceback(
    stream: Stream,
) -> None:
    logs.configure("INFO", "json")

    def fail() -> None:
        raise ValueError("no database")

    thread = threading.Thread(target=fail, name="heartbeat")
    thread.start()
    thread.join()
    (line,) = lines(stream)
    record = json.loads(line)
    assert (record["level"], record["event"], record["thread"]) == (
        "critical",
        "thread.uncaught_exception",
        "heartbeat",
    )
    assert "ValueError: no database" in record["exception"]


def test_a_line_separator_in_a_field_does_not_split_the_line(stream: Stream) -> None:
    logs.configure("INFO", "json")
    logs.get_logger("x").error("api.unhandled_error", path="/a\u2028b\u0085c")
    (line,) = stream.capsys.readouterr().err.splitlines()
    assert json.loads(line)["path"] == "/a\u2028b\u0085c"


def test_an_inner_context_without_a_value_drops_the_outer_one(stream: Stream) -> None:
    logs.configure("INFO", "json")
    log = logs.get_logger("x")
    with logs.context(workflow_id="parent", request_id="r-1"):
        with logs.context(workflow_id="child", request_id=None):
            log.info("workflow.ended")
        log.info("workflow.ended")
    child, parent = (json.loads(line) for line in lines(stream))
    assert child["workflow_id"] == "child" and "request_id" not in child
    assert (parent["workflow_id"], parent["request_id"]) == ("parent", "r-1")
