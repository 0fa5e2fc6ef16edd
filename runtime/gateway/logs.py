"""Structured logs: one JSON object per line on stderr.

Callers pass fields, never raw headers, so a bearer token cannot reach a log line by
accident; `redact` is a second guard for free-form strings (exception messages).
"""

from __future__ import annotations

import json
import re
import sys
import time

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
_TOKEN = re.compile(r"mcpp\.g_[0-9a-f]+\.[A-Za-z0-9_-]+|Bearer\s+\S+", re.I)


def redact(text: str) -> str:
    return _TOKEN.sub("[REDACTED]", text)


class Logger:
    def __init__(self, level: str = "info", stream=None):
        self.threshold = LEVELS.get(level, 20)
        self.stream = stream or sys.stderr

    def enabled(self, level: str) -> bool:
        return LEVELS[level] >= self.threshold

    def log(self, level: str, event: str, **fields) -> None:
        if LEVELS[level] < self.threshold:
            return
        rec = {"ts": round(time.time(), 3), "level": level, "event": event}
        for k, v in fields.items():
            rec[k] = redact(v) if isinstance(v, str) else v
        try:
            self.stream.write(json.dumps(rec, default=str, ensure_ascii=False) + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed stderr must not take the gateway down

    def debug(self, event: str, **f) -> None:
        self.log("debug", event, **f)

    def info(self, event: str, **f) -> None:
        self.log("info", event, **f)

    def warning(self, event: str, **f) -> None:
        self.log("warning", event, **f)

    def error(self, event: str, **f) -> None:
        self.log("error", event, **f)
