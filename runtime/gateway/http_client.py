"""A small HTTP/1.1 client for Streamable HTTP upstreams: keep-alive pool, streaming bodies.

Written for this one job because every microsecond on the forwarding path is added
latency: requests are written in one `write`, headers parsed from one `readuntil`,
bodies streamed chunk by chunk (SSE responses arrive as they are produced). A pooled
connection idle longer than `keepalive` seconds is dropped rather than reused, so the
gateway never sends a request on a socket the upstream is about to close; nothing is
ever retried, since a retried `tools/call` could run twice.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import ssl
import time
from collections import deque
from urllib.parse import urlsplit

log = logging.getLogger("mcpp.gateway")


class UpstreamError(Exception):
    """The upstream could not be reached or broke off; `sent` says whether the request left."""

    def __init__(self, message: str, kind: str, sent: bool):
        super().__init__(message)
        self.kind = kind  # connect | timeout | protocol | closed
        self.sent = sent


# Whose request this is (the caller's key, set by the gateway for the task serving it;
# None: the gateway's own). A kept-alive connection is reused only for requests of the
# caller it last served: bytes an upstream sends after an answer (a late second answer, the
# rest of an answered event stream) cannot be told from the next answer by HTTP/1.1, and
# must not become another caller's. (The gateway-assigned ids catch them where an answer
# has an id; a notification's 202, a GET stream or an error without an id has none.)
LANE: contextvars.ContextVar[object] = contextvars.ContextVar("mcpp_upstream_lane", default=None)


class _Conn:
    __slots__ = ("reader", "writer", "idle_since", "lane")

    def __init__(self, reader, writer, lane=None):
        self.reader, self.writer = reader, writer
        self.idle_since = time.monotonic()
        self.lane = lane

    def close(self) -> None:
        """Drop the connection. A socket already gone (OSError) or a loop already closed
        (RuntimeError, at shutdown) leaves nothing to close; anything else is a bug and is
        logged, not swallowed (closing still must not fail the request it ends)."""
        try:
            self.writer.close()
        except (OSError, RuntimeError):
            pass  # nothing left to close
        except Exception:
            log.exception("closing an upstream connection failed")


class Response:
    """Status and headers of an upstream response; the body is read with `chunks()`."""

    def __init__(self, pool: "HTTPUpstream", conn: _Conn, status: int, headers: list[tuple[str, str]], framing, length):
        self.pool = pool
        self.conn: _Conn | None = conn
        self._pooled: _Conn | None = None  # the connection, once its ended body put it back in the pool
        self.status = status
        self.headers = headers
        self._framing = framing  # "none" | "length" | "chunked" | "eof"
        self._left = length
        self._done = framing == "none"
        self._reusable = framing in ("none", "length", "chunked") and not any(
            k == "connection" and v.lower() == "close" for k, v in headers
        )

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None

    async def chunks(self, timeout: float | None):
        """Yield body bytes as they arrive; `timeout` bounds the wait for each piece."""
        assert self.conn is not None, "the body is read once"
        r = self.conn.reader
        try:
            if self._framing == "length":
                while self._left > 0:
                    data = await _wait(r.read(min(self._left, _PIECE)), timeout)
                    if not data:
                        raise UpstreamError("upstream closed the connection mid-body", "closed", True)
                    self._left -= len(data)
                    yield data
            elif self._framing == "chunked":
                while True:
                    # a chunk that fits one piece (an SSE event: nearly every chunk) is read
                    # with its size line and its CRLF under one timeout: each timeout is a
                    # timer armed and cancelled, three per chunk otherwise
                    data = await _wait(_small_chunk(r), timeout)
                    if data is None:  # the last chunk, and the trailers, were read
                        break
                    if isinstance(data, bytes):
                        yield data
                        continue
                    # a chunk may be any size: hand it on in pieces, never hold it whole
                    size = data
                    while size > 0:
                        piece = await _wait(r.read(min(size, _PIECE)), timeout)
                        if not piece:
                            raise UpstreamError("upstream closed the connection mid-body", "closed", True)
                        size -= len(piece)
                        yield piece
                    if await _wait(r.readexactly(2), timeout) != b"\r\n":
                        raise ValueError("chunk not followed by CRLF")
            elif self._framing == "eof":
                while True:
                    data = await _wait(r.read(_PIECE), timeout)
                    if not data:
                        break
                    yield data
            self._done = True
        except asyncio.IncompleteReadError:
            raise UpstreamError("upstream closed the connection mid-body", "closed", True) from None
        except (ConnectionError, OSError) as e:
            raise UpstreamError(f"upstream connection failed mid-body: {e}", "closed", True) from None
        except (ValueError, asyncio.LimitOverrunError):
            raise UpstreamError("upstream sent a malformed chunked body", "protocol", True) from None
        finally:
            self.release()

    async def read(self, timeout: float | None, limit: int | None = None, until=None) -> bytes:
        """The whole body, refused once its running total passes `limit` (the pool's
        `max_response_bytes` by default): at most the limit and one piece is ever held.
        With `until(piece)`, reading stops at the first piece for which it is true (the
        caller has what it waits for: an event stream's answer); the rest is not read, and
        the connection is closed rather than reused. A body that came whole with its head is
        returned without calling it."""
        limit = self.pool.max_response_bytes if limit is None else limit
        if self._framing == "length" and self._left > limit:
            self.release()
            raise UpstreamError(f"upstream response too large ({self._left} bytes; the limit is {limit})", "protocol", True)
        if self._framing == "length" and self.conn is not None and _buffered(self.conn.reader) >= self._left:
            # the whole body came with the head (a JSON answer nearly always does): taken
            # from the buffer, which cannot wait, so no timer is armed and no chunk
            # generator run for it. (`timeout` bounds waiting; here nothing waits.)
            try:
                data = await self.conn.reader.readexactly(self._left)
            except (ConnectionError, OSError) as e:  # (a connection that broke after the bytes came)
                self.release()
                raise UpstreamError(f"upstream connection failed mid-body: {e}", "closed", True) from None
            self._left, self._done = 0, True
            self.release()
            return data
        parts, size = [], 0
        chunks = self.chunks(timeout)
        try:
            # `timeout` bounds the whole body too, not only each read: an upstream that
            # sends its answer a byte at a time cannot hold the call past it
            async with asyncio.timeout(timeout):
                async for c in chunks:
                    size += len(c)
                    if size > limit:
                        raise UpstreamError(f"upstream response too large (more than {limit} bytes)", "protocol", True)
                    parts.append(c)
                    if until is not None and until(c):
                        break  # (the body unfinished: `release` closes the connection)
        except TimeoutError:
            raise UpstreamError(f"upstream did not send its whole answer within {timeout:g}s", "timeout", True) from None
        finally:
            await chunks.aclose()
        return b"".join(parts)

    def release(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        if self._done and self._reusable:
            if self.pool._put(conn):
                self._pooled = conn
        else:
            conn.close()

    def discard(self) -> None:
        """Never reuse this response's connection: the answer on it was not the answer to
        the request sent (a late second answer to an earlier request, say), so the
        connection is out of step and what comes next on it belongs to nobody. Closed when
        released, or taken back out of the pool if its body already ended. (Call it before
        any `await` after reading the body: until then no other request can have taken
        the connection from the pool.)"""
        self._reusable = False
        conn, self._pooled = self._pooled, None
        if conn is None:
            return
        if self.pool._unpool(conn):
            conn.close()


_PIECE = 262144  # the most of a body held at once
# RFC 9112 §7.1: chunk-size = 1*HEXDIG, then optional extensions (BWS ";" …); nothing else
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?\r\n\Z")


async def _small_chunk(r: asyncio.StreamReader) -> bytes | int | None:
    """One chunk of a chunked body: its data when it is at most `_PIECE` bytes (read with
    its CRLF), else its size (the caller reads it in pieces), or None after the last chunk
    and its trailers."""
    line = await r.readuntil(b"\r\n")
    m = _CHUNK_SIZE.match(line)
    if m is None:  # (int(…, 16) alone would take "", "0x1a", "1_a", "+1a")
        raise ValueError("bad chunk size line")
    size = int(m.group(1), 16)
    if size == 0:
        while (await r.readuntil(b"\r\n")) != b"\r\n":
            pass  # trailers
        return None
    if size > _PIECE:
        return size
    data = await r.readexactly(size + 2)
    if data[-2:] != b"\r\n":
        raise ValueError("chunk not followed by CRLF")
    return data[:-2]


def _unread(reader: asyncio.StreamReader) -> bool:
    """Bytes the upstream sent after the response ended. HTTP/1.1 has no unsolicited data:
    such a connection is out of step (what follows would be read as the next call's
    answer, possibly another caller's), so it is closed rather than pooled. (StreamReader
    has no public view of its buffer; without one, every connection counts as clean.)"""
    return _buffered(reader) > 0


def _buffered(reader: asyncio.StreamReader) -> int:
    """Bytes received and not yet read (0 when the reader has no view of its buffer)."""
    return len(getattr(reader, "_buffer", b""))


async def _wait(aw, timeout):
    """`aw` bounded by `timeout` (asyncio.timeout: no extra task per read, unlike wait_for)."""
    if timeout is None:
        return await aw
    try:
        async with asyncio.timeout(timeout):
            return await aw
    except TimeoutError:
        raise UpstreamError(f"upstream did not answer within {timeout:g}s", "timeout", True) from None


class HTTPUpstream:
    def __init__(self, url: str, connect_timeout: float = 10.0, keepalive: float = 2.0, max_idle: int = 128,
                 max_response_bytes: int = 64 * 1024 * 1024):
        u = urlsplit(url)
        self.url = url
        self.tls = u.scheme == "https"
        assert u.hostname is not None, url  # the config takes only http(s) URLs with a host
        self.host = u.hostname
        self.port = u.port or (443 if self.tls else 80)
        self.path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        default = (self.tls and self.port == 443) or (not self.tls and self.port == 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = host if default else f"{host}:{self.port}"
        self.connect_timeout = connect_timeout
        self.keepalive = keepalive
        self.max_idle = max_idle
        self.max_response_bytes = max_response_bytes
        self._idle: dict[object, deque[_Conn]] = {}  # lane → its idle connections (LANE)
        self._n_idle = 0
        self._ssl = ssl.create_default_context() if self.tls else None

    def _put(self, conn: _Conn) -> bool:
        """Pool the connection in its lane (True), or close it (False)."""
        if self._n_idle >= self.max_idle or conn.writer.is_closing() or conn.reader.at_eof() or _unread(conn.reader):
            conn.close()
            return False
        conn.idle_since = time.monotonic()
        idle = self._idle.get(conn.lane)
        if idle is None:
            idle = self._idle[conn.lane] = deque()
        idle.append(conn)
        self._n_idle += 1
        return True

    def _get(self, lane) -> _Conn | None:
        idle = self._idle.get(lane)
        if idle is None:
            return None
        now = time.monotonic()
        conn = None
        while idle:
            c = idle.pop()
            self._n_idle -= 1
            if now - c.idle_since > self.keepalive or c.writer.is_closing() or c.reader.at_eof() or _unread(c.reader):
                c.close()
                continue
            conn = c
            break
        if not idle:
            del self._idle[lane]
        return conn

    async def _connect(self, lane) -> _Conn:
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self._ssl, limit=1 << 20)
        except TimeoutError:
            raise UpstreamError(f"connecting to the upstream timed out after {self.connect_timeout:g}s", "connect", False) from None
        except (OSError, ssl.SSLError) as e:
            raise UpstreamError(f"cannot connect to the upstream: {e.strerror or e}", "connect", False) from None
        return _Conn(reader, writer, lane)

    async def request(self, method: str, headers: list[tuple[str, str]], body: bytes, timeout: float | None) -> Response:
        """Send one request; return once the status line and headers are in. It goes on a
        connection of its caller's lane (LANE), or a new one."""
        lane = LANE.get()
        conn = self._get(lane) or await self._connect(lane)
        lines = [f"{method} {self.path} HTTP/1.1", f"host: {self.host_header}"]
        for k, v in headers:
            lines.append(f"{k}: {v}")
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"content-length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            conn.writer.write(head + body if len(body) < 65536 else head)
            if len(body) >= 65536:
                conn.writer.write(body)
        except (ConnectionError, OSError) as e:
            conn.close()
            raise UpstreamError(f"cannot send to the upstream: {e}", "connect", False) from None
        try:
            raw = await _wait(conn.reader.readuntil(b"\r\n\r\n"), timeout)
        except UpstreamError:
            conn.close()
            raise
        except asyncio.IncompleteReadError as e:
            conn.close()
            raise UpstreamError("upstream closed the connection before answering", "closed", bool(e.partial) or True) from None
        except asyncio.LimitOverrunError:
            conn.close()
            raise UpstreamError("upstream sent oversized headers", "protocol", True) from None
        except (ConnectionError, OSError) as e:
            conn.close()
            raise UpstreamError(f"upstream connection failed: {e}", "closed", True) from None
        try:
            status, hdrs = _parse_head(raw)
        except ValueError as e:
            conn.close()
            raise UpstreamError(f"upstream sent a malformed response: {e}", "protocol", True) from None
        framing, length = "eof", None
        te = cl = None
        for k, v in hdrs:  # (the first of each counts)
            if k == "transfer-encoding":
                te = v if te is None else te
            elif k == "content-length":
                cl = v if cl is None else cl
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            framing = "none"
        elif te is not None and "chunked" in te.lower():
            framing = "chunked"
        elif cl is not None:
            try:
                length = int(cl)
            except ValueError:
                conn.close()
                raise UpstreamError("upstream sent a bad content-length", "protocol", True) from None
            framing = "length" if length > 0 else "none"
        return Response(self, conn, status, hdrs, framing, length)

    def _unpool(self, conn: _Conn) -> bool:
        """Take a pooled connection out of the pool; False if it is no longer there
        (already taken, or dropped: idle too long, closed by the upstream)."""
        idle = self._idle.get(conn.lane)
        if idle is None or conn not in idle:
            return False
        idle.remove(conn)
        self._n_idle -= 1
        if not idle:
            del self._idle[conn.lane]
        return True

    def idle_connections(self) -> list[_Conn]:
        """Every pooled connection, lane by lane (for tests and diagnostics)."""
        return [c for idle in self._idle.values() for c in idle]

    def close(self) -> None:
        for conn in self.idle_connections():
            conn.close()
        self._idle.clear()
        self._n_idle = 0


def discard(resp) -> None:
    """Never reuse the connection of an answer not taken: it was not the answer to the
    request sent, so what comes next on it belongs to nobody (`Response.discard`; a stdio
    upstream's reply has no connection). Call it before any await after reading the body."""
    drop = getattr(resp, "discard", None)
    if drop is not None:
        drop()


def _parse_head(raw: bytes) -> tuple[int, list[tuple[str, str]]]:
    text = raw.decode("latin-1")
    lines = text.split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise ValueError(f"bad status line {lines[0][:80]!r}")
    status = int(parts[1])
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        k, sep, v = line.partition(":")
        if not sep:
            raise ValueError("bad header line")
        headers.append((k.strip().lower(), v.strip()))
    return status, headers
