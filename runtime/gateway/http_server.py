"""The gateway's HTTP/1.1 server protocol: uvicorn's httptools protocol with bounds on what a
client can make the gateway hold before it has shown a token.

uvicorn reads a request head of any size, for as long as the client likes: a 16 MiB
header was read whole, and a connection that sent half a header stayed open (300 such
connections were held for 40 s and more). This subclass adds, per connection:

- `max_header_bytes`: the request line and all header lines together; more is answered
  `431 Request Header Fields Too Large` and the connection closed. What is buffered before
  the refusal is at most the limit plus one socket read.
- `max_headers`: the number of header lines (431 too).
- `header_timeout`: seconds from the first byte of a request (or from the connection
  opening) until its head is complete; then 408 and close. A new connection that sends
  nothing is closed after the same time.
- `idle_timeout`: seconds a kept-alive connection may sit between requests (uvicorn's
  keep-alive timeout).

The body is bounded by the app (`max_body_bytes`, 413; `body_timeout`, 408), which reads it.

It also sends a response's head and its first body write as one write (`_Corked`): uvicorn
writes a response's status line and headers, its body, and a chunked stream's terminator as
separate writes, each a syscall, a TCP segment and a wake-up of the client. The pair goes
out as soon as the body is written, not at the end of the event-loop turn, so the answer
does not wait for what the handler does after it (audit outcome, metrics); a lone write
goes out at the end of the turn.

A connection closed while its client is still sending the request (an answer given
before the body was read, with `Connection: close` or while the gateway stops) is not
closed at once: the answer is ended with a FIN, the rest is read and dropped, and the
close follows the request's end (bounded), since a close with unread bytes makes the
kernel reset the connection and the client loses the answer (`_put_off_close`).

The head limits are checked exactly once per request, when the head is complete (from the
URL and header fields uvicorn has collected), and on the running byte count of reads that
end inside a head; a per-header-line check cost every request a dozen Python calls.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass
from itertools import chain

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol


@dataclass(frozen=True)
class HeadLimits:
    max_header_bytes: int = 32768
    max_headers: int = 100
    header_timeout: float = 10.0
    # everything one request may send (head, body with its chunk framing, trailers): the
    # body itself is bounded by the app, which may answer without reading it
    max_message_bytes: int = 32768 + 2 * 4 * 1024 * 1024 + 65536


class _Trailers(list):
    """The header list after the head is complete: a chunked body's trailer section is
    parsed by the same callback (uvicorn appends each field to `headers`), so its fields
    are counted against the same limit; the scope keeps the head's own list."""

    __slots__ = ("_max",)

    def __init__(self, max_fields: int):
        super().__init__()
        self._max = max_fields

    def append(self, item) -> None:
        if len(self) >= self._max:
            raise _HeadRefused(431, f"more than {self._max} trailer fields")
        super().append(item)


class _Drained(Exception):
    """Raised from the parser's callback to stop reading a connection being closed."""


class _HeadRefused(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


MIN_PROGRESS_BYTES = 1024  # what a client closed with unread answer bytes must read per idle timeout


class _Corked:
    """A connection's transport whose writes within one event-loop turn go out as one, and
    whose `close()` (uvicorn's, once an answer is complete) asks `put_off` first: the
    protocol may end writing instead and close once the client has sent its request
    (`BoundedHttpToolsProtocol._put_off_close`).

    A response's head is not held for its body beyond the turn: holding a relayed event
    stream's head (5 ms at most) for its first event, so that both went out as one write,
    made the 2025-era SDK client's calls slower, not faster (added p50 +0.97-1.79 ms held,
    +0.79-1.50 ms not, four alternating runs): the client reads the head while the
    upstream is still working, and held, that reading waited for the event. (The proxy
    does wait for a request's event stream's first message before answering — `_HeadWaits`
    in proxy.py —, for another reason: when that message is the answer, it goes out as a
    JSON body, which the SDK client reads to its end and so keeps its connection; that is
    what made the 2025-era calls faster.)"""

    __slots__ = ("_t", "_loop", "_buf", "_scheduled", "_put_off", "_ended", "_grace", "_watch", "_sent")

    def __init__(self, transport, loop, put_off=None, flush_grace: float = 5.0):
        self._t, self._loop = transport, loop
        self._grace = flush_grace  # how long a close waits for a client to read what is still unsent
        self._buf: list[bytes] = []
        self._scheduled = False
        self._put_off = put_off
        self._ended = False  # `end_writing` was called: nothing more can be sent
        self._watch: asyncio.TimerHandle | None = None  # the next `_check_progress`
        self._sent = 0  # bytes handed to the transport, ever

    def write(self, data: bytes) -> None:
        if not data or self._ended:  # (after the FIN: the connection is closing, nothing is read as an answer)
            return
        if self._buf:
            # a second write in this turn (a response's body after its head, a stream's
            # first event after its head): both go out now, as one, rather than after
            # whatever else this turn runs (the rest of the request's handler)
            self._buf.append(data)
            self._flush()
            return
        self._buf.append(data)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._turn_ended)

    def _turn_ended(self) -> None:
        self._scheduled = False
        self._flush()

    def is_closing(self) -> bool:  # (asked on every request: spared the __getattr__ hop)
        return self._t.is_closing()

    def _flush(self) -> None:
        if self._buf:
            data = b"".join(self._buf)
            self._buf.clear()
            if not self._t.is_closing():
                self._t.write(data)
                self._sent += len(data)

    def close(self) -> None:
        if self._put_off is not None and self._put_off():
            return
        self.close_now()

    def close_now(self) -> None:
        self._flush()
        self._t.close()
        if self._t.get_write_buffer_size():
            # a transport's close waits for its buffer to be sent, for as long as the client
            # does not read: a client that asked for a large answer and read none of it held
            # its connection, and a `max_connections` slot, for good (hostile review 25, F5)
            self.watch_progress()

    def watch_progress(self) -> None:
        """From now on, while answer bytes wait in the transport's buffer (the kernel's is
        full), the client must read MIN_PROGRESS_BYTES per `flush_grace` (the idle timeout)
        or the connection is reset. Called when the connection is closed with bytes unsent,
        and whenever writing is paused (the buffer passed its high-water mark): a client
        that pipelined a second request behind a large answer and read nothing held its
        connection and slot for good, since the second answer waited on the drain and no
        close or idle timer ever came (hostile review 27, F5); so did one that stopped
        reading a streamed answer. One that is reading gets everything (hostile review 26,
        F5), however much the gateway writes meanwhile (`_delivered`)."""
        if self._watch is None:
            try:
                before = self._delivered()
            except Exception:  # the transport is gone already
                return
            self._watch = self._loop.call_later(self._grace, self._check_progress, before)

    def unwatch(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None

    def _unsent(self) -> int:
        """Answer bytes the client has not yet received: the transport's buffer and the
        kernel's send queue (`TIOCOUTQ`, where the platform has it)."""
        n = self._t.get_write_buffer_size()
        try:
            import fcntl
            import termios

            sock = self._t.get_extra_info("socket")
            if sock is not None:
                n += struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
        except (ImportError, OSError, ValueError, TypeError, AttributeError):  # (no such ioctl here: the buffer alone)
            pass
        return n

    def _delivered(self) -> int:
        """Bytes the client has received, ever: what was handed to the transport less what
        waits in its buffer and the kernel's send queue. Counting what is still unsent
        alone cut steady readers of a streamed answer: while they read, the gateway writes
        more, and what waits stays level (hostile review 28, F1); and the transport's own
        buffer shrinks only in steps of about a megabyte (hostile review 27, F1)."""
        return self._sent - self._unsent()

    def _check_progress(self, before: int) -> None:
        self._watch = None
        try:
            if not self._t.get_write_buffer_size():
                return  # (all of it handed to the kernel: a close completes on its own)
            now = self._delivered()
        except Exception:  # the transport is gone already
            return
        if now - before >= MIN_PROGRESS_BYTES:  # the client is reading: another period
            self._watch = self._loop.call_later(self._grace, self._check_progress, now)
            return
        try:
            self._t.abort()  # (after the close completed: nothing happens)
        except Exception:
            pass

    def end_writing(self) -> None:
        """Everything written goes out, then the end of the stream (FIN): the client reads
        the whole answer and its end while it may still be sending."""
        self._flush()
        self._ended = True
        if self._t.can_write_eof() and not self._t.is_closing():
            self._t.write_eof()

    def __getattr__(self, name):
        return getattr(self._t, name)


def bounded_protocol(limits: HeadLimits, on_refusal=None) -> type:
    """An httptools protocol class with these limits (uvicorn instantiates it per connection).
    `on_refusal(status, reason)` is told about each refused head (for metrics)."""

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        _limits = limits

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            # (flow control keeps the real one; _Corked stands in for the transport by duck typing)
            self._corked = _Corked(transport, self.loop, self._put_off_close, float(self.timeout_keep_alive))
            self.transport = self._corked  # type: ignore[assignment]
            self._draining = False  # answered and closing: the request's rest is read and dropped
            self._in_head = False
            self._head_raw = 0  # raw bytes of reads that ended inside the head
            self._in_message = False
            self._msg_raw = 0  # raw bytes of reads since the request began
            self._rest_timer: asyncio.TimerHandle | None = None  # an answered request's unread rest
            self._head_timer: asyncio.TimerHandle | None = self.loop.call_later(self._limits.header_timeout, self._head_timeout)

        def connection_lost(self, exc) -> None:
            self._cancel_head_timer()
            self._corked.unwatch()
            if self._rest_timer is not None:
                self._rest_timer.cancel()
                self._rest_timer = None
            super().connection_lost(exc)

        def pause_writing(self) -> None:
            # (the transport's buffer passed its high-water mark: the client must keep reading)
            super().pause_writing()
            self._corked.watch_progress()

        def _cancel_head_timer(self) -> None:
            timer = getattr(self, "_head_timer", None)
            if timer is not None:
                timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            if self._in_head or self.cycle is None:
                self._refuse(408, "request head not received in time")

        def _put_off_close(self) -> bool:
            """Whether a close of the connection is put off (uvicorn closes it once an
            answer is complete and the connection is not kept alive: `Connection: close`,
            a 408, or the gateway stopping). While the client is still sending its request,
            closing would leave its bytes unread, and the kernel answers unread bytes with
            a reset, which destroys the answer before the client reads it (hostile review
            20, F4: an upload at SIGTERM got no answer at all). So the answer is ended with
            a FIN instead, the rest of the request is read and dropped, and the connection
            closes when the request ends — or, bounded, after `header_timeout` (the rest
            timer), at the idle timeout, or when the gateway's stop ends, whichever is first."""
            cycle = self.cycle
            # (a head still arriving is a next request, not this answer's: closed at once, as before)
            if (self._draining or not self._in_message or self._in_head or cycle is None or not cycle.response_complete
                    or self.transport.is_closing()):
                return False
            self._draining = True
            self._corked.end_writing()
            if self._rest_timer is None:
                self._rest_timer = self.loop.call_later(self._limits.header_timeout, self._rest_timeout)
            return True

        @property
        def draining(self) -> bool:
            """Answered, and reading the rest of the request only to close cleanly: the
            gateway's stop waits for such a connection only briefly (stopping.py
            `DRAIN_GRACE_SECONDS`), not for its `header_timeout`."""
            return self._draining

        def _drain(self, data: bytes) -> None:
            """A read while the request's rest is dropped: parsed only to find where it ends
            (`on_message_complete` closes), bounded by `max_message_bytes`."""
            self._msg_raw += len(data)
            if self._msg_raw > self._limits.max_message_bytes:
                self._corked.close_now()
                return
            try:
                self.parser.feed_data(data)
            except Exception:  # (malformed, or a request pipelined after it: not read)
                self._corked.close_now()

        def _refuse(self, status: int, reason: str) -> None:
            if on_refusal is not None:
                try:
                    on_refusal(status, reason)  # (a metrics counter)
                except Exception:  # telemetry must not keep the refusal from being sent
                    self.logger.exception("counting a refused request head failed")
            if self.transport.is_closing():
                return
            cycle = self.cycle
            if self.pipeline or (cycle is not None and not cycle.response_complete):
                # an earlier request on this connection is still being answered (or this
                # one is): an answer written now would be read as that request's. Close.
                self._corked.close_now()
                self._in_head = False
                self._cancel_head_timer()
                return
            body = reason.encode()
            self.transport.write(b"".join([
                STATUS_LINE[status], b"content-type: text/plain; charset=utf-8\r\n",
                b"content-length: ", str(len(body)).encode(), b"\r\n", b"connection: close\r\n\r\n", body,
            ]))
            self._corked.close_now()
            self._in_head = False
            self._cancel_head_timer()

        def data_received(self, data: bytes) -> None:
            if self.transport.is_closing():
                return
            if self._draining:
                self._drain(data)
                return
            self._unset_keepalive_if_required()
            try:
                self.parser.feed_data(data)
            except _HeadRefused as e:
                self._refuse(e.status, e.reason)
                return
            except httptools.HttpParserCallbackError as e:
                cause = e.__context__ or e.__cause__
                if isinstance(cause, _HeadRefused):
                    self._refuse(cause.status, cause.reason)
                    return
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
                return
            except httptools.HttpParserError:
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
                return
            except httptools.HttpParserUpgrade:
                self._refuse(400, "protocol upgrades are not supported")
                return
            if self._in_message:
                # everything a request sends counts, including a body or trailers sent
                # after the gateway has answered without reading them
                self._msg_raw += len(data)
                if self._msg_raw > self._limits.max_message_bytes:
                    self._refuse(413, "request too large")
                    return
            if self._in_head:
                # a head still incomplete after this read: all of it counts (the parser
                # holds partial header values in memory until a line ends)
                self._head_raw += len(data)
                if self._head_raw > self._limits.max_header_bytes:
                    self._refuse(431, "request header fields too large")
                elif len(self.headers) > self._limits.max_headers:
                    self._refuse(431, f"more than {self._limits.max_headers} header fields")

        def on_message_begin(self) -> None:
            if self._draining:  # a request pipelined after one answered while it was sent: not read
                raise _Drained
            timer = self.timeout_keep_alive_task
            if timer is not None:
                # a request begins: the connection is not idle. (uvicorn unsets this timer at
                # the start of each read; one armed within this read, when an early-answered
                # request's body ended, would close the connection under the request that
                # follows it in the same read: hostile review 26, F4)
                timer.cancel()
                self.timeout_keep_alive_task = None
            super().on_message_begin()
            self._in_head = True
            self._head_raw = 0
            self._in_message = True
            self._msg_raw = 0
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(self._limits.header_timeout, self._head_timeout)

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._cancel_head_timer()
            # the exact check, once per request rather than once per header line: uvicorn's
            # own callbacks have collected the URL and the header fields; no more than the
            # limit and one socket read can have been parsed (data_received counts every
            # read that ended inside a head)
            headers = self.headers
            if len(headers) > self._limits.max_headers:
                raise _HeadRefused(431, f"more than {self._limits.max_headers} header fields")
            if len(self.url) + 4 * len(headers) + sum(map(len, chain.from_iterable(headers))) > self._limits.max_header_bytes:
                raise _HeadRefused(431, "request header fields too large")
            super().on_headers_complete()
            self.headers = _Trailers(self._limits.max_headers)  # the scope keeps the head's list

        def on_message_complete(self) -> None:
            self._in_message = False
            if self._rest_timer is not None:
                self._rest_timer.cancel()
                self._rest_timer = None
            if self._draining:  # all of it read: the close put off happens now, with nothing unread
                self._corked.close_now()
                return
            super().on_message_complete()
            cycle = self.cycle
            if (cycle is not None and cycle.response_complete and not self.pipeline and self.timeout_keep_alive_task is None
                    and not self.transport.is_closing()):
                # answered before its body arrived (a 401 before the body): the answer armed the
                # idle timer, and the body's arrival took it back (uvicorn unsets it on every
                # read), so the connection had no timer left and held its slot for good
                # (hostile review 25, F2): it is idle again from here
                self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

        def on_response_complete(self) -> None:
            cycle = self.cycle
            if cycle is not None and cycle.response_complete and cycle.more_body and not self.pipeline and self._rest_timer is None:
                # answered before its request was read to the end (a 401 before the body):
                # the rest is read and dropped for at most `header_timeout`, then the
                # connection is closed, however slowly the rest comes. (Closing at once would
                # make the kernel reset a connection whose client is still sending, and a
                # reset can destroy the answer before the client reads it.)
                self._rest_timer = self.loop.call_later(self._limits.header_timeout, self._rest_timeout)
            super().on_response_complete()

        def _rest_timeout(self) -> None:
            self._rest_timer = None
            if self._in_message:
                self._corked.close_now()

    return BoundedHttpToolsProtocol
