"""Failures the gateway tolerates are the expected ones, named; anything else is logged.

Closing an upstream connection and reading a child's stderr must not fail a request, but
a handler that swallows every exception also hides bugs (issue 9, "Narrow exception
handlers"): the expected errors keep their quiet outcome, the rest reach the log."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest

from mcpp.runtime.gateway.http_client import _Conn
from mcpp.runtime.gateway.stdio import StdioSession


class _Writer:
    def __init__(self, error: BaseException | None):
        self.error = error
        self.closed = False

    def close(self):
        self.closed = True
        if self.error is not None:
            raise self.error


@pytest.mark.parametrize("error, logged", [
    (None, False),
    (ConnectionResetError("gone"), False),
    (RuntimeError("Event loop is closed"), False),
    (TypeError("a bug"), True),
])
def test_closing_a_connection_tolerates_a_dead_socket_and_logs_the_rest(caplog, error, logged):
    conn = _Conn(None, _Writer(error))
    with caplog.at_level(logging.ERROR, logger="mcpp.gateway"):
        conn.close()  # never raises: closing ends a request, it must not fail it
    assert conn.writer.closed
    assert any("closing an upstream connection failed" in r.getMessage() for r in caplog.records) == logged


class _Log:
    def __init__(self):
        self.records: list[tuple[str, str, dict]] = []

    def __getattr__(self, level):
        return lambda event, **f: self.records.append((level, event, f))


class _Stderr:
    def __init__(self, lines, error):
        self.lines, self.error = list(lines), error

    async def readline(self):
        if self.lines:
            return self.lines.pop(0)
        raise self.error


@pytest.mark.parametrize("error, level, event", [
    (ValueError("Separator is found, but chunk is longer than limit"), "warning", "stdio_stderr_line_too_long"),
    (BrokenPipeError("pipe"), "debug", "stdio_stderr_closed"),
    (TypeError("a bug"), "error", "stdio_stderr_failed"),
])
async def test_reading_a_childs_stderr_names_how_it_ended(error, level, event):
    log = _Log()
    up = SimpleNamespace(log=log, server=SimpleNamespace(id="srv"))
    session = StdioSession(up)
    session.proc = SimpleNamespace(stderr=_Stderr([b"starting\n"], error))
    await session._read_stderr()
    assert ("debug", "stdio_stderr") == log.records[0][:2] and log.records[0][2]["line"] == "starting"
    assert [(lv, ev) for lv, ev, _ in log.records[1:]] == [(level, event)]
    if level == "error":
        assert "TypeError: a bug" in log.records[1][2]["error"]


async def test_reading_stderr_stops_when_cancelled():
    log = _Log()
    session = StdioSession(SimpleNamespace(log=log, server=SimpleNamespace(id="srv")))
    session.proc = SimpleNamespace(stderr=_Stderr([], asyncio.CancelledError()))
    with pytest.raises(asyncio.CancelledError):
        await session._read_stderr()
    assert log.records == []
