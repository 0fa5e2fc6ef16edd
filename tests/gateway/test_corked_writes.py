"""How the gateway's HTTP server coalesces a connection's writes (http_server.py `_Corked`):
each write is a syscall, a TCP segment and a wake-up of the client, and uvicorn writes a
response's head, body and a stream's end separately. Table: what the app writes, in which
event-loop turns, and the writes that reach the socket; then the bounded close."""

from __future__ import annotations

import asyncio

import pytest

from mcpp.runtime.gateway.http_server import _Corked

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


# (what the app does, in order: bytes to write, "turn" (let the loop run), "close", "eof"),
# and the writes the socket gets
CASES = [
    ("a head and its body in one turn: one write", [HEAD, EVENT, "turn"], [HEAD + EVENT]),
    ("...at once, not at the turn's end", [HEAD, EVENT], [HEAD + EVENT]),
    ("a head alone goes out at the end of its turn (the client reads it meanwhile)", [HEAD, "turn"], [HEAD]),
    ("...and a stream's events each in their own", [HEAD, "turn", EVENT, "turn", END, "turn"], [HEAD, EVENT, END]),
    ("an event and the stream's end in one turn: one write", [HEAD, "turn", EVENT, END], [HEAD, EVENT + END]),
    ("100 Continue", [CONTINUE, "turn"], [CONTINUE]),
    ("an error answer", [ERROR_HEAD + b"no", "turn"], [ERROR_HEAD + b"no"]),
    ("a close sends what is pending first", [HEAD, "close"], [HEAD]),
    ("the FIN sends what is pending first", [HEAD, "eof"], [HEAD]),
    ("nothing after the FIN", [HEAD, "eof", EVENT, "turn"], [HEAD]),
]


@pytest.mark.parametrize("steps,want", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_writes_reach_the_socket_as_the_table_says(steps, want):
    t = Transport()
    c = _Corked(t, asyncio.get_running_loop())
    for step in steps:
        if step == "turn":
            await _turn()
        elif step == "close":
            c.close_now()
        elif step == "eof":
            c.end_writing()
        else:
            c.write(step)
    assert [d for _, d in t.writes] == want


async def test_nothing_is_written_to_a_closed_transport():
    t = Transport()
    c = _Corked(t, asyncio.get_running_loop())
    c.write(HEAD)
    t.closed = True  # (the client went away meanwhile)
    await _turn()
    assert t.writes == []


class Timers:
    """A loop whose timers run when the test says (`call_later` only records them)."""

    def __init__(self) -> None:
        self.due: list = []
        self.delays: list[float] = []

    def call_later(self, delay, fn, *args):
        self.delays.append(delay)
        entry = (fn, args)
        self.due.append(entry)
        due = self.due

        class Handle:
            def cancel(self) -> None:
                if entry in due:
                    due.remove(entry)

        return Handle()

    def call_soon(self, fn, *args):
        self.due.append((fn, args))

    def run_one(self) -> None:
        fn, args = self.due.pop(0)
        fn(*args)


@pytest.mark.parametrize("reads,reset", [
    ([], True),  # reads nothing in a period: reset (hostile review 25, F5)
    ([2000, 2000, 0], True),  # reads, then stops: reset a period after it stopped
    ([1500] * 4 + [None], False),  # reads slowly to the end: never reset (hostile review 26, F5)
    ([2000, 100], True),  # reads less than MIN_PROGRESS_BYTES in a period: a slow-read attack, reset
])
@pytest.mark.parametrize("how", ["close", "paused"])
def test_a_close_with_unread_bytes_waits_while_the_client_reads(reads, reset, how):
    """`reads`: what the client reads in each grace period (None: the rest). `how`: the
    connection was closed with the bytes unsent, or writing was paused on them (the buffer
    past its high-water mark: a streamed answer, or a pipelined request's answer behind
    one the client did not read, hostile review 27, F5) — the same rule either way."""
    t = Transport()
    left = [8000]
    t.get_extra_info = {}.get  # type: ignore[attr-defined]  (no socket: the buffer alone)
    t.get_write_buffer_size = lambda: left[0]  # type: ignore[method-assign]
    aborted = []
    t.abort = lambda: aborted.append(True)  # type: ignore[attr-defined]
    loop = Timers()
    c = _Corked(t, loop, flush_grace=1.0)
    if how == "close":
        c.close_now()
        assert t.closed and not aborted
    else:
        c.watch_progress()
        c.watch_progress()  # (paused again before the check: one watch, not two)
        assert len(loop.due) == 1 and not aborted
    for n in reads + [0]:
        if not loop.due:
            break
        left[0] = 0 if n is None else left[0] - n
        loop.run_one()
    assert aborted == ([True] if reset else []), (reads, left)
    assert not loop.due and set(loop.delays) == {1.0}  # (every period is the grace; nothing left pending)


def test_the_watch_ends_with_the_connection():
    t = Transport()
    t.get_extra_info = {}.get  # type: ignore[attr-defined]
    t.get_write_buffer_size = lambda: 8000  # type: ignore[method-assign]
    loop = Timers()
    c = _Corked(t, loop, flush_grace=1.0)
    c.watch_progress()
    c.unwatch()  # (connection_lost)
    assert not loop.due


def test_a_steady_reader_of_a_stream_the_gateway_keeps_writing_is_not_reset():
    """hostile review 28, F1: while a client reads a streamed answer, the gateway writes
    more, so what waits unsent stays level (or grows, as the kernel's send queue grows):
    counting that alone reset 1-10 MB/s readers. What counts is what the client received:
    written less unsent."""
    class Written(Transport):
        def write(self, data: bytes) -> None:
            self.writes.append((0.0, data))

    t = Written()
    t.get_extra_info = {}.get  # type: ignore[attr-defined]
    t.get_write_buffer_size = lambda: 8000  # type: ignore[method-assign]  (level: read as fast as written)
    aborted = []
    t.abort = lambda: aborted.append(True)  # type: ignore[attr-defined]
    loop = Timers()
    c = _Corked(t, loop, flush_grace=1.0)
    c.watch_progress()  # (writing paused)
    for _ in range(5):
        c.write(b"e" * 5000)  # an event: the client read as much meanwhile
        fn, _args = loop.due[-1]
        loop.due.pop()  # (the turn's end: the write goes out)
        fn(*_args)
        loop.run_one()  # the period's check
        assert not aborted and len(loop.due) == 1
    loop.run_one()  # the client stops reading, and the stream stops: a period without progress
    assert aborted == [True]
