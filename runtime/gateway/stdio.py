"""stdio upstreams: the gateway spawns the server and speaks Streamable HTTP for it.

Each client session (`initialize` … `DELETE`) gets its own child process, so the child
sees exactly one client, with that client's capabilities, as a stdio server expects.
The gateway supervises the children: each runs in its own process group with a minimal
environment (PATH, HOME, locale, the configured `env` and credentials; never the
gateway's own environment), stderr goes to the log, an idle or deleted session's
process group is terminated, and a child that exits ends its session (the client's next
request gets 404 and it re-initialises). The command comes from the config only, never
from a request.

stdio servers speak the handshake era, so a 2026-07-28 request is answered as a
handshake-era server answers it: HTTP 400 with `-32022` naming the versions served,
which makes dual-era clients (the SDK's default mode) fall back to `initialize`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import time
from collections import deque

from . import jsonrpc as rpc
from .http_client import LANE, UpstreamError

HANDSHAKE_VERSIONS = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"]
_BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ", "SYSTEMROOT")


class _Reply:
    """What `HTTPUpstream.request` returns, for a reply the gateway composes itself."""

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes = b"", stream=None):
        self.status, self.headers = status, headers
        self._body, self._stream = body, stream
        self._reusable = True

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)

    async def chunks(self, timeout):
        if self._stream is None:
            if self._body:
                yield self._body
            return
        async with contextlib.aclosing(self._stream(timeout)) as stream:
            async for c in stream:
                yield c

    async def read(self, timeout, limit: int = 64 * 1024 * 1024, until=None) -> bytes:  # noqa: ARG002 (the upstream reply's signature)
        parts = []
        async with contextlib.aclosing(self.chunks(timeout)) as chunks:  # (a stop at `until` ends the stream's request)
            async for c in chunks:
                parts.append(c)
                if until is not None and until(c):
                    break
        return b"".join(parts)

    def release(self) -> None:
        pass


def _json(status: int, obj, extra=()) -> _Reply:
    body = rpc.dumps(obj) if obj is not None else b""
    headers = [("content-type", "application/json")] if obj is not None else []
    return _Reply(status, headers + list(extra), body)


def _key(id_) -> str:
    return json.dumps(id_, sort_keys=True)


class StdioSession:
    def __init__(self, upstream: "StdioUpstream"):
        self.up = upstream
        self.id = secrets.token_hex(16)
        self.proc: asyncio.subprocess.Process | None = None
        self.pending: dict[str, asyncio.Queue] = {}
        self.inflight: list[str] = []  # request keys, oldest first
        self.progress: dict[str, str] = {}
        self.standalone: asyncio.Queue | None = None
        self.backlog: deque = deque(maxlen=256)
        self.last_used = time.monotonic()
        self.owner = LANE.get()  # the caller whose `initialize` started it (http_client.LANE: the proxy sets it)
        self.starting = False  # its child is being started and initialized: counted, never replaced
        self.dead = False
        self._tasks: list[asyncio.Task] = []
        self._write_lock = asyncio.Lock()

    async def spawn(self) -> None:
        s = self.up.server
        self.proc = await asyncio.create_subprocess_exec(
            *s.command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=self.up.child_env(), cwd=s.cwd, start_new_session=True, limit=16 * 1024 * 1024,
        )
        self.up.log.info("stdio_spawned", server=s.id, session=self.id[:8], pid=self.proc.pid, command=s.command[0])
        self._tasks = [asyncio.ensure_future(self._read_stdout()), asyncio.ensure_future(self._read_stderr())]

    async def send(self, msg_bytes: bytes) -> None:
        if self.dead or self.proc is None or self.proc.stdin is None:
            raise UpstreamError("the upstream process has exited", "closed", False)
        async with self._write_lock:
            try:
                self.proc.stdin.write(msg_bytes.rstrip(b"\r\n") + b"\n")
                await self.proc.stdin.drain()
            except (ConnectionError, OSError) as e:
                raise UpstreamError(f"cannot write to the upstream process: {e}", "closed", False) from None

    def open(self, key: str, progress_token) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue()
        self.pending[key] = q
        self.inflight.append(key)
        if progress_token is not None:
            self.progress[_key(progress_token)] = key
        return q

    def close_request(self, key: str) -> None:
        self.pending.pop(key, None)
        if key in self.inflight:
            self.inflight.remove(key)
        for t, k in list(self.progress.items()):
            if k == key:
                del self.progress[t]

    def _route(self, msg: dict) -> None:
        if "method" not in msg and "id" in msg:
            q = self.pending.get(_key(msg["id"]))
            if q is not None:
                q.put_nowait(msg)
            return
        target = None
        if msg.get("method") == "notifications/progress":
            params = msg.get("params") or {}
            k = self.progress.get(_key(params.get("progressToken")))
            target = self.pending.get(k) if k else None
        if target is None and self.inflight:
            target = self.pending.get(self.inflight[-1])  # requests and logs belong to the call in flight
        if target is None:
            target = self.standalone
        if target is not None:
            target.put_nowait(msg)
        else:
            self.backlog.append(msg)

    async def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    break
                msg = rpc.parse_message(line.decode("utf-8", "replace"))
                if isinstance(msg, dict):
                    self._route(msg)
                elif line.strip():
                    self.up.log.warning("stdio_bad_output", server=self.up.server.id, session=self.id[:8], line=line[:200].decode("utf-8", "replace"))
        except (asyncio.LimitOverrunError, ValueError):
            self.up.log.error("stdio_line_too_long", server=self.up.server.id, session=self.id[:8])
        finally:
            await self._died()

    async def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        try:
            while True:
                line = await self.proc.stderr.readline()
                if not line:
                    break
                self.up.log.debug("stdio_stderr", server=self.up.server.id, session=self.id[:8], line=line[:500].decode("utf-8", "replace").rstrip())
        except (asyncio.LimitOverrunError, ValueError):
            # a stderr line past the stream's limit: stop reading it (the process is
            # watched through stdout; its exit is logged by `_died`), and say so
            self.up.log.warning("stdio_stderr_line_too_long", server=self.up.server.id, session=self.id[:8])
        except (ConnectionError, OSError) as e:  # the pipe broke: the process is going away
            self.up.log.debug("stdio_stderr_closed", server=self.up.server.id, session=self.id[:8], error=str(e))
        except Exception as e:  # none expected: logged, never silent (stderr is diagnostics only)
            self.up.log.error("stdio_stderr_failed", server=self.up.server.id, session=self.id[:8],
                              error=f"{type(e).__name__}: {e}")

    async def _died(self) -> None:
        if self.dead:
            return
        self.dead = True
        code = None
        if self.proc is not None:
            try:
                code = await asyncio.wait_for(self.proc.wait(), 5)
            except asyncio.TimeoutError:
                pass
        self.up.log.info("stdio_exited", server=self.up.server.id, session=self.id[:8], returncode=code)
        self.up.metrics.inc("mcpp_upstream_errors_total", (("server", self.up.server.id), ("kind", "stdio_exit")))
        for q in list(self.pending.values()):
            q.put_nowait(None)  # wakes every waiter: the call broke off
        if self.standalone is not None:
            self.standalone.put_nowait(None)
        self.up.sessions.pop(self.id, None)

    async def terminate(self) -> None:
        p = self.proc
        if p is None or p.returncode is not None:
            return
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            await asyncio.wait_for(p.wait(), 3)
        except asyncio.TimeoutError:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def kill_now(self) -> None:
        p = self.proc
        if p is not None and p.returncode is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class StdioUpstream:
    def __init__(self, server, cred_env: list[tuple[str, str]], log, metrics):
        self.server = server
        self.cred_env = cred_env
        self.log, self.metrics = log, metrics
        self.sessions: dict[str, StdioSession] = {}
        self.spawned = 0
        self._reaper: asyncio.Task | None = None

    def child_env(self) -> dict[str, str]:
        env = {k: os.environ[k] for k in _BASE_ENV if k in os.environ}
        env.update(dict(self.server.env))
        env.update(dict(self.cred_env))
        return env

    def health(self) -> dict:
        return {"sessions": len(self.sessions), "spawned": self.spawned}

    def _ensure_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.ensure_future(self._reap())

    async def _reap(self) -> None:
        while self.sessions:
            await asyncio.sleep(min(30.0, self.server.session_idle_seconds))
            now = time.monotonic()
            for s in list(self.sessions.values()):
                if not s.inflight and now - s.last_used > self.server.session_idle_seconds:
                    self.sessions.pop(s.id, None)
                    self.log.info("stdio_idle_closed", server=self.server.id, session=s.id[:8])
                    await s.terminate()

    async def request(self, method: str, headers: list[tuple[str, str]], body: bytes, timeout) -> _Reply:
        h = dict(headers)
        version = h.get("mcp-protocol-version")
        if version is not None and version not in HANDSHAKE_VERSIONS:
            return _json(400, rpc.error(None, rpc.UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version",
                                        {"supported": HANDSHAKE_VERSIONS, "requested": version}))
        sid = h.get("mcp-session-id")
        session = self.sessions.get(sid) if sid else None
        if method == "DELETE":
            if session is None:
                return _json(404 if sid else 400, rpc.error(None, rpc.INVALID_REQUEST, "Session not found" if sid else "Missing session ID"))
            self.sessions.pop(session.id, None)
            await session.terminate()
            return _Reply(200, [])
        if method == "GET":
            if session is None:
                return _json(404 if sid else 400, rpc.error(None, rpc.INVALID_REQUEST, "Session not found" if sid else "Missing session ID"))
            if session.standalone is not None:
                return _json(409, rpc.error(None, rpc.INVALID_REQUEST, "a standalone stream is already open for this session"))
            return self._standalone(session)
        msg = rpc.parse_message(body.decode("utf-8", "replace"))
        if not isinstance(msg, dict):
            return _json(400, rpc.error(None, rpc.PARSE_ERROR, "Parse error"))
        if msg.get("method") == "initialize" and sid is None:
            return await self._initialize(msg, body, timeout)
        if session is None:
            return _json(404 if sid else 400, rpc.error(None, rpc.INVALID_REQUEST, "Session not found" if sid else "Bad Request: Missing session ID"))
        session.last_used = time.monotonic()
        if "method" not in msg or "id" not in msg:  # a notification, or the client's answer to a server request
            await session.send(body)
            return _Reply(202, [])
        key = _key(msg["id"])
        given = msg.get("params")
        params = given if isinstance(given, dict) else {}
        given_meta = params.get("_meta")
        meta = given_meta if isinstance(given_meta, dict) else {}
        q = session.open(key, meta.get("progressToken"))
        try:
            await session.send(body)
        except UpstreamError:
            session.close_request(key)
            raise
        if "text/event-stream" in h.get("accept", ""):
            return _Reply(200, [("content-type", "text/event-stream"), ("cache-control", "no-cache"),
                                ("x-accel-buffering", "no")], stream=self._events(session, key, q))
        final = await self._final(session, key, q, timeout)
        return _json(200, final)

    async def _initialize(self, msg: dict, body: bytes, timeout) -> _Reply:
        # decided and the session's place taken with no await in between: checked before an
        # awaited spawn and taken after it, 14 concurrent `initialize`s of one grant all passed
        # both bounds (hostile review 33, H33-1)
        refused, victim = self._room_for(LANE.get())
        if refused is not None:
            return _json(503, rpc.error(msg.get("id"), rpc.GATEWAY_ERROR, refused))
        if len(self.sessions) >= self.server.max_sessions:
            return _json(503, rpc.error(msg.get("id"), rpc.GATEWAY_ERROR, f"too many sessions (max_sessions = {self.server.max_sessions})"))
        session = StdioSession(self)
        session.starting = True
        self.sessions[session.id] = session
        try:
            if victim is not None:
                await victim.terminate()
            await session.spawn()
        except (OSError, ValueError) as e:
            self.sessions.pop(session.id, None)
            raise UpstreamError(f"cannot start the upstream command: {e}", "connect", False) from None
        except BaseException:
            self.sessions.pop(session.id, None)
            session.kill_now()
            raise
        self.spawned += 1
        self._ensure_reaper()
        key = _key(msg.get("id"))
        q = session.open(key, None)
        try:
            await session.send(body)
            final = await self._final(session, key, q, timeout)
        except UpstreamError:
            self.sessions.pop(session.id, None)
            session.kill_now()
            raise
        if "error" in final:
            self.sessions.pop(session.id, None)
            await session.terminate()
            return _json(200, final)
        session.starting = False
        return _json(200, final, [("mcp-session-id", session.id)])

    def _room_for(self, owner) -> tuple[str | None, "StdioSession | None"]:
        """Whether `owner` (a caller) may start a session within its share,
        `max_sessions_per_caller`: (None, None) yes; (None, a session) yes, in place of the
        caller's own session idle longest (no request in flight, no listening stream, not
        starting), which is taken out here and is to be stopped — a client that reconnects
        without ending its old session gets in at once; (why, None) no: every one of its
        sessions is busy. Never another caller's session. One grant sent `initialize` four
        times and held every child of `max_sessions = 4` until the idle reaper, 30 minutes
        later; every other caller got 503 meanwhile (hostile review 31, H31-5)."""
        share = self.server.max_sessions_per_caller
        own = [s for s in self.sessions.values() if s.owner == owner]
        if len(own) < share:
            return None, None
        idle = sorted((s for s in own if not s.inflight and s.standalone is None and not s.starting),
                      key=lambda s: s.last_used)
        if not idle:
            return (f"too many sessions for one caller (max_sessions_per_caller = {share}), each with a request "
                    "in progress"), None
        victim = idle[0]
        self.sessions.pop(victim.id, None)
        self.log.info("stdio_session_replaced", server=self.server.id, session=victim.id[:8],
                      why=f"its caller started another past max_sessions_per_caller = {share}")
        return None, victim

    async def _final(self, session: StdioSession, key: str, q: asyncio.Queue, timeout) -> dict:
        try:
            while True:
                m = await _next_message(q, timeout)
                if "method" not in m:
                    return m
        finally:
            session.close_request(key)

    def _events(self, session: StdioSession, key: str, q: asyncio.Queue):
        async def stream(timeout):
            try:
                while True:
                    m = await _next_message(q, timeout)
                    yield rpc.sse_event(m)
                    if "method" not in m:
                        return
            finally:
                session.close_request(key)
        return stream

    def _standalone(self, session: StdioSession) -> _Reply:
        q: asyncio.Queue = asyncio.Queue()
        while session.backlog:
            q.put_nowait(session.backlog.popleft())
        session.standalone = q

        async def stream(timeout):  # noqa: ARG001 (a _Reply stream; this one keeps itself alive)
            try:
                yield b": stream open\n\n"
                while True:
                    try:
                        m = await asyncio.wait_for(q.get(), 15)
                    except asyncio.TimeoutError:
                        yield b": keep-alive\n\n"
                        continue
                    if m is None:
                        return
                    yield rpc.sse_event(m)
            finally:
                if session.standalone is q:
                    session.standalone = None
        return _Reply(200, [("content-type", "text/event-stream"), ("cache-control", "no-cache"), ("x-accel-buffering", "no")], stream=stream)

    def close(self) -> None:
        for s in list(self.sessions.values()):
            s.kill_now()
        self.sessions.clear()

    async def aclose(self) -> None:
        self.close()


async def _next_message(q: asyncio.Queue, timeout) -> dict:
    """The next message for one request; a timeout or an exited process is an upstream error."""
    try:
        m = await asyncio.wait_for(q.get(), timeout)
    except asyncio.TimeoutError:
        raise UpstreamError(f"upstream did not answer within {timeout:g}s", "timeout", True) from None
    if m is None:
        raise UpstreamError("the upstream process exited mid-call", "closed", True)
    return m
