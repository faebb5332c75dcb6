"""Logs: one JSON object per line (SPICE_LOG_FORMAT=text for a terminal), carrying the command, database,
aggregate and event a line is about, so one command's path through the processes is one grep."""
from __future__ import annotations

import json
import logging
import logging.config
import os
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

FIELDS = ("command_id", "db_name", "aggregate_id", "event_id")
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# What the running task is working on. asyncio copies the context into each task it creates, so a value
# bound while handling one command stays with that command's task and the tasks it starts.
_context: ContextVar[Mapping[str, str]] = ContextVar("spice_log_context", default=MappingProxyType({}))


def bind(**fields: Any) -> None:
    """Name what this task's further log lines are about (None leaves a field out)."""
    _context.set({**_context.get(), **{k: str(v) for k, v in fields.items() if v is not None}})


class JsonFormatter(logging.Formatter):
    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname, "logger": record.name, "process": self.process, "pid": record.process,
            "message": record.getMessage(),
        }
        line.update(_context.get())
        for name in FIELDS:  # given with extra={...} on the call itself
            if name in record.__dict__:
                line[name] = str(record.__dict__[name])
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


# The long-running processes log JSON; the command line's one-shot commands (up, down, test, …) talk to a
# person at a terminal. SPICE_LOG_FORMAT=json|text decides for all.
SERVICES = frozenset({"web", "worker", "relay"})


def _formatter(process: str) -> dict[str, Any]:
    chosen = os.environ.get("SPICE_LOG_FORMAT") or ("json" if process in SERVICES else "text")
    if chosen == "text":
        return {"format": TEXT}
    return {"()": JsonFormatter, "process": process}


def config(process: str, level: str = "INFO") -> dict[str, Any]:
    """A logging.config.dictConfig for `process`: to stderr, as JSON or as text."""
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"spice": _formatter(process)},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "spice"}},
        "root": {"level": level, "handlers": ["stderr"]},
    }


def configure(process: str, level: str = "INFO") -> None:
    logging.config.dictConfig(config(process, level))
