"""The two formats of the log stream (services.contract.logs): JSON, one object per line, and
text, one readable line per record (a traceback's lines indented under it)."""

import json
import logging
import time
from collections.abc import Mapping
from typing import Any, Final

# Keys every JSON line has; a field of the same name is written with a trailing underscore.
RESERVED: Final = frozenset({"time", "level", "logger", "event", "message", "exception"})
EVENT_FIELDS: Final = "event_fields"  # the LogRecord attribute that holds an event's fields
BOUND_FIELDS: Final = "context_fields"  # ... and the context's fields when it was logged


def _time(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The bound fields, then the event's own: what the line says besides its event."""
    fields = {**getattr(record, BOUND_FIELDS, {}), **getattr(record, EVENT_FIELDS, {})}
    return {(f"{k}_" if k in RESERVED else k): v for k, v in fields.items()}


class JsonFormatter(logging.Formatter):
    def __init__(self, process_fields: Mapping[str, Any]) -> None:
        super().__init__()
        self._process = {(f"{k}_" if k in RESERVED else k): v for k, v in process_fields.items()}

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if hasattr(record, EVENT_FIELDS):
            line["event"] = record.msg
        else:
            line["message"] = record.getMessage()
        line.update(self._process)
        line.update(_fields(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            line["exception"] = self.formatStack(record.stack_info)
        # ASCII only: a U+2028 in a field (a request's path) must not read as a line break.
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if hasattr(record, EVENT_FIELDS):
            what = str(record.msg)
        else:
            what = f"{record.name}: {_one_line(record.getMessage())}"
        parts = [_time(record), f"{record.levelname:<5}", what]
        parts += [f"{key}={_text_value(value)}" for key, value in _fields(record).items()]
        line = " ".join(parts)
        if record.exc_info:
            trace = self.formatException(record.exc_info)
            line += "\n" + "\n".join(f"  {part}" for part in trace.splitlines())
        return line


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text == "" or any(c.isspace() or c in "\"='" for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text
