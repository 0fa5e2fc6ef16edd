"""How the gateway's HTTP server coalesces a connection's writes (http_server.py `_Corked`):
each write is a syscall, a TCP segment and a wake-up of the client, and uvicorn writes a
response's head, body and a stream's end separately. Table: what the app writes, in which
event-loop turns, and the writes that reach the socket."""

from __future__ import annotations

import asyncio

import pytest

from mcpp.runtime.gateway.http_server import HEAD_HOLD_SECONDS, _Corked

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
EVENT = b"a\r\nevent: x\r\n\r\n"
END = b"0\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
ERROR_HEAD = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\n\r\n"


class Transport:
    def __init__(self) -> None:
        self.writes: list[tuple[float, bytes]] = []
        self.closed = False
        self.eof = False

    def write(self, data: bytes) -> None:
        self.writes.append((asyncio.get_running_loop().time(), data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def get_write_buffer_size(self) -> int:
        return 0


async def _turn() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


# (what the app does, in order: bytes to write, "turn" (let the loop run), ("wait", s), "close", "eof"),
# the writes the socket gets, and whether the first one waited for the hold
CASES = [
    ("a head and its body in one turn: one write", [HEAD, EVENT, "turn"], [HEAD + EVENT], False),
    ("a 200 head alone waits for the first event of a later turn", [HEAD, "turn", EVENT, "turn"], [HEAD + EVENT], False),
    ("...and the stream's end after it goes out on its own", [HEAD, "turn", EVENT, "turn", END, "turn"],
     [HEAD + EVENT, END], False),
    ("a stream with nothing to say gets its head after the hold", [HEAD, "turn", ("wait", 3 * HEAD_HOLD_SECONDS)], [HEAD], True),
    ("...and its first event later on its own", [HEAD, "turn", ("wait", 3 * HEAD_HOLD_SECONDS), EVENT, "turn"],
     [HEAD, EVENT], True),
    ("100 Continue is never held", [CONTINUE, "turn"], [CONTINUE], False),
    ("an error head is never held", [ERROR_HEAD, "turn"], [ERROR_HEAD], False),
    ("a close sends a held head first", [HEAD, "turn", "close"], [HEAD], False),
    ("the FIN sends a held head first", [HEAD, "turn", "eof"], [HEAD], False),
    ("a lone body write is not held", [HEAD, EVENT, "turn", EVENT, "turn"], [HEAD + EVENT, EVENT], False),
]


@pytest.mark.parametrize("steps,want,held", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_writes_reach_the_socket_as_the_table_says(steps, want, held):
    loop = asyncio.get_running_loop()
    t = Transport()
    c = _Corked(t, loop)
    start = loop.time()
    for step in steps:
        if step == "turn":
            await _turn()
        elif step == "close":
            c.close_now()
        elif step == "eof":
            c.end_writing()
        elif isinstance(step, tuple):
            await asyncio.sleep(step[1])
        else:
            c.write(step)
    assert [d for _, d in t.writes] == want
    assert (t.writes[0][0] - start >= HEAD_HOLD_SECONDS) is held


async def test_a_held_head_is_not_written_to_a_closed_transport():
    t = Transport()
    c = _Corked(t, asyncio.get_running_loop())
    c.write(HEAD)
    await _turn()
    t.closed = True  # (the client went away meanwhile)
    await asyncio.sleep(3 * HEAD_HOLD_SECONDS)
    assert t.writes == []
