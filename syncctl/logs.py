"""Logging set-up for the CLI: plain text or one JSON object per line. Messages carry ids,
counts and sequence numbers only; nothing here adds record contents."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
        exit_code = getattr(record, "exit_code", None)
        if isinstance(exit_code, int):
            entry["exit_code"] = exit_code
        return json.dumps(entry)


_json_lines = False


def json_lines_active() -> bool:
    """Whether log lines (and so a command's final error) are JSON: as configured, or, before
    the options are read, as SYNCCTL_LOG_FORMAT says."""
    return _json_lines or os.environ.get("SYNCCTL_LOG_FORMAT") == "json"


def configure(level: int, json_lines: bool) -> None:
    global _json_lines
    _json_lines = json_lines
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if json_lines
        else logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    )
    root = logging.getLogger("syncctl")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
