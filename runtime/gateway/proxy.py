"""The gateway's ASGI app: route, authenticate, decide, forward, audit.

One endpoint per server, `/mcp/<server-id>/`, speaks both protocol eras the way the
upstream does: messages are forwarded as they came (a request re-serialised, to carry the
gateway's id), except that
- `tools/call` is decided first: a denial is answered here (an `isError` result with
  `[POLICY DENIED] …`) and never reaches the upstream; an allowed call holds its limit
  reservation, and gives it back only when the upstream certainly did not run it
  (OUTCOME_COUNTED: never sent, refused with an HTTP or a request-level JSON-RPC error);
- `tools/list` results lose the tools this grant can never call and become private;
- with a pinned catalog, tools whose definition changed since the pin are removed from
  `tools/list` and their calls refused (pinning.py);
- `Mcp-Session-Id` is bound to the grant that opened the session (an HMAC), so one
  grant cannot ride another's session;
- the client's `Authorization` never leaves the gateway: the upstream sees only the
  credential configured for it;
- every request goes upstream with an id the gateway assigned (`upstream_id`), and its
  answer must carry that id: it is relayed with the client's id put back, and an answer
  with any other id is never relayed (a late answer to an earlier request on a reused
  connection, possibly another caller's).
Every decided call is an audit row committed before the response is sent. Anything
unexpected while deciding denies; anything unexpected while forwarding is an error
result, never a retry.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import hashlib
import hmac
import itertools
import json
import math
import re
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeGuard
from pathlib import Path

from mcp.shared.inbound import (
    ERROR_CODE_HTTP_STATUS,
    InboundLadderRejection,
    NAME_BEARING_METHODS,
    classify_inbound_request,
    decode_header_value,
    find_duplicated_routing_header,
)
from mcp_types.methods import SPEC_CLIENT_METHODS, SPEC_CLIENT_NOTIFICATION_METHODS
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcpp import Decision, Grant
from mcpp.catalog.admission import (
    MAX_MESSAGE_NESTING, MESSAGE_TOO_DEEP, TOO_DEEP, NotJSONText, arguments_too_deep, is_text, json_bytes,
    may_hold_unsafe_integer, may_nest_deeper, message_too_deep, unsafe_integer,
)
from mcpp.runtime.retained import retain

from . import jsonrpc as rpc
from .approving import APPROVALS_DOWN, ELICIT_PREFIX, ApprovalSteps, CallContext, Stream, track_session_caps
from .audit import AuditRow
from .jwks import IdPUnavailable
from .oauth import AuthFailure
from .principals import Caller
from .grants import check_token, grant_id_of
from .redis_store import LIMIT_STORE_DOWN
from .deferred import CALL_DEADLINE, CALL_GONE, ClientGone
from .http_client import LANE, UpstreamError, discard
from .pinning import REFETCH_UNLISTED_AFTER, FetchFailed, drift_kind, fetch_tools, pointer, verdict_of
from .schemas import admit, schema_pointer, tool_checker
from .stopping import through_stop

FORWARD_REQUEST_HEADERS = {
    "accept", "content-type", "mcp-protocol-version", "mcp-method", "mcp-name", "last-event-id",
    "traceparent", "tracestate", "baggage", "user-agent",
}
PASS_RESPONSE_HEADERS = {
    "content-type", "mcp-protocol-version", "allow", "cache-control", "x-accel-buffering", "retry-after",
}
JSON = b"application/json"
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # what a header value may not hold (uvicorn refuses the head)
MAX_TOOL_NAME = 128  # MCP: tool names are 1-128 characters
MAX_METHOD_LENGTH = 128
MAX_AUDIT_ID = 256  # characters of a JSON-RPC id kept in the audit row and the log
MAX_AUDIT_TEXT = 2048  # characters of a rule pointer or message kept
MAX_AUDIT_KEYS = 64  # argument keys kept per row, each at most MAX_TOOL_NAME characters


# JSON-RPC methods a client may send, by the spec: the only method names that become labels
METHOD_LABELS = frozenset(SPEC_CLIENT_METHODS | SPEC_CLIENT_NOTIFICATION_METHODS)


def method_label(mname) -> str:
    if mname is None:
        return "response"
    return mname if mname in METHOD_LABELS else "other"


def clip(text: str, limit: int) -> str:
    """At most `limit` characters; a clipped value says how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…(+{len(text) - limit} chars)"


def audit_keys(args) -> list[str]:
    """The argument keys an audit row keeps: sorted, at most MAX_AUDIT_KEYS, each clipped."""
    if not isinstance(args, dict):
        return []
    keys = sorted(args)
    out = [clip(k, MAX_TOOL_NAME) for k in keys[:MAX_AUDIT_KEYS]]
    if len(keys) > MAX_AUDIT_KEYS:
        out.append(f"…(+{len(keys) - MAX_AUDIT_KEYS} keys)")
    return out


class TooLarge(Exception):
    pass


def _headers(scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


async def _respond(send, status: int, body: bytes = b"", content_type: bytes | None = JSON, extra=(), settled=None) -> None:
    """A whole response. `settled` (the runtime), for an answer whose outcome is settled
    (audited, counted): written through the gateway's stop (`stopping.through_stop`)."""
    headers = [(b"content-length", str(len(body)).encode())]
    if content_type is not None and body:
        headers.append((b"content-type", content_type))
    headers.extend(extra)
    start = {"type": "http.response.start", "status": status, "headers": headers}
    if settled is None:
        await send(start)
        await send({"type": "http.response.body", "body": body})
    else:
        await through_stop(settled, send, start)
        await through_stop(settled, send, {"type": "http.response.body", "body": body})


_HOST_CACHE: dict[tuple, bool] = {}
MAX_HOST_LENGTH = 300  # a DNS name is at most 253 characters; with a scheme and a port, well under this


def _host_ok(host: str | None, allowed) -> bool:
    """Host/Origin against the allowlist's glob patterns (memoised: a handful of values recur).
    A value longer than any real host name is refused unread and never cached, so the cache
    holds at most 4,096 short keys whatever clients send."""
    if allowed is None:
        return True
    if not host or len(host) > MAX_HOST_LENGTH:
        return False
    key = (host, allowed)
    hit = _HOST_CACHE.get(key)
    if hit is None:
        hit = any(fnmatch.fnmatchcase(host.lower(), pat.lower()) for pat in allowed)
        if len(_HOST_CACHE) >= 4096:
            _HOST_CACHE.clear()
        _HOST_CACHE[key] = hit
    return hit


class GatewayApp(ApprovalSteps):
    MAX_GRANT_PRINCIPALS = 10_000
    MAX_INFLIGHT_SESSIONS = 4096  # upstream sessions with requests in flight, tracked for cancellation
    MAX_INFLIGHT_PER_SESSION = 256

    def __init__(self, rt):
        self.rt = rt
        # grant id → (its record, the config, its principal): a grant's principal is built
        # once per record and config, not per request (records come from the grant store,
        # after the token was checked; a changed record or a reloaded config rebuilds it)
        self._grant_principals: dict[str, tuple[Any, Any, Grant]] = {}
        # (server id, upstream session id) → {client's request id: the gateway's id} of the
        # requests in flight in that session: a client's `notifications/cancelled` names
        # its own id, the upstream knows only the gateway's
        self._inflight: dict[tuple, dict[int | str, int]] = {}  # keyed (server, session, caller)
        # the tasks relaying GET streams (a session's listening stream: no call waits on
        # it), ended as soon as the gateway starts stopping (`end_listening`)
        self._listening: set[asyncio.Task] = set()
        # caller key → its requests in progress (`max_requests_per_caller`), and the POSTs read
        # past that share, to let its answers and notifications through (`_take`)
        self._in_progress: dict[Any, int] = {}
        self._unread: dict[Any, int] = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        rt = self.rt
        try:
            local = scope.get("server")
            on_ops = rt.ops_port is not None and local is not None and local[1] == rt.ops_port
            if on_ops:  # the operations listener serves operations only
                if path in ("/healthz", "/metrics"):
                    await self.ops(scope, send, path, rt.config.ops_host_allowlist())
                else:
                    await _respond(send, 404, rpc.dumps({"error": "not found", "hint": "this listener serves /healthz and /metrics"}))
            elif path.startswith("/.well-known/oauth-protected-resource"):
                await self.resource_metadata(scope, send, path)
            elif path.startswith("/mcp/"):
                rest = path[5:]
                server_id, _, tail = rest.partition("/")
                if tail:
                    await _respond(send, 404, rpc.dumps({"error": "not found"}))
                    return
                await self.mcp(scope, receive, send, server_id)
            elif path == "/approvals" or path.startswith("/approvals/"):
                await self.approvals_http(scope, receive, send, path)
            elif path in ("/healthz", "/metrics") and rt.config.ops_listen is None:
                await self.ops(scope, send, path, rt.config.host_allowlist())
            else:
                await _respond(send, 404, rpc.dumps({"error": "not found", "hint": "MCP endpoints are /mcp/<server-id>/"}))
        except asyncio.CancelledError:
            if not rt.stopping:
                raise
            # open when `shutdown_timeout` ended (a listing, a handshake, an approval's wait):
            # a line in the log, not a traceback, and a 503 if nothing was answered yet
            rt.log.warning("request_cancelled_at_shutdown", path=path)
            try:
                # the request's own id when its body was read (a client matches answers to
                # requests by id; null is for an id that could not be read: hostile19 F7)
                await _respond(send, 503, rpc.dumps(rpc.error(scope.get(RPC_ID), rpc.INTERNAL_ERROR, "the gateway is stopping")))
            except (OSError, RuntimeError):  # a stream already open (a call waiting for approval): ended, not cut
                try:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                except (OSError, RuntimeError):
                    pass  # the client is gone
        except Exception as e:  # the last line of defence: a JSON-RPC error, never a traceback to the client
            self.rt.log.error("internal_error", path=path, error=f"{type(e).__name__}: {e}")
            try:
                await _respond(send, 500, rpc.dumps(rpc.error(None, rpc.INTERNAL_ERROR, "internal gateway error")))
            except (OSError, RuntimeError):
                pass  # the client is gone, or part of an answer was already sent: nothing more can be said
            except Exception as e2:
                self.rt.log.error("internal_error_unanswered", path=path, error=f"{type(e2).__name__}: {e2}")

    def end_listening(self) -> int:
        """The gateway is stopping (`Runtime.stopping` is set): end every GET stream now,
        cleanly, instead of holding the shutdown for `shutdown_timeout`. They carry no
        call; a client opens its listening stream again where it reconnects. Returns how
        many were ended."""
        tasks = list(self._listening)
        for task in tasks:
            task.cancel()
        return len(tasks)

    async def _lifespan(self, receive, send):
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    await self.rt.start()
                except Exception as e:
                    await send({"type": "lifespan.startup.failed", "message": str(e)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await self.rt.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def ops(self, scope, send, path: str, hosts) -> None:
        """/healthz and /metrics: the same Host and Origin checks as MCP requests (a page a
        browser was tricked into loading cannot read them), and the ops token when one is set."""
        rt = self.rt
        headers = _headers(scope)
        if not _host_ok(headers.get("host"), hosts):
            await _respond(send, 421, rpc.dumps({"error": "Invalid Host header"}))
            return
        origin = headers.get("origin")
        if origin is not None and not _host_ok(origin, rt.config.origin_allowlist()):
            await _respond(send, 403, rpc.dumps({"error": "Invalid Origin header"}))
            return
        if rt.ops_secret is not None:
            auths = [v for k, v in scope["headers"] if k == b"authorization"]
            scheme, _, token = (auths[0].decode("latin-1") if len(auths) == 1 else "").partition(" ")
            good = scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), rt.ops_secret.encode())
            if not good:
                rt.metrics.inc("mcpp_auth_failures_total", (("server", "-"), ("reason", "ops_token")))
                await _respond(send, 401, rpc.dumps({"error": "the operations endpoints need the ops token"}), JSON,
                               [(b"www-authenticate", b'Bearer realm="mcpp-ops"')])
                return
        if path == "/healthz":
            code, body = await rt.health()
            await _respond(send, code, rpc.dumps(body))
        else:
            await _respond(send, 200, rt.metrics.render().encode(), b"text/plain; version=0.0.4; charset=utf-8")

    async def resource_metadata(self, scope, send, path: str) -> None:
        """RFC 9728 Protected Resource Metadata of an OAuth server: public, readable from any
        origin (browser-based clients discover with it), GET only."""
        rt = self.rt
        sid = rt.metadata_paths.get(path)
        rs = rt.resource_servers.get(sid) if sid is not None else None
        cors = [(b"access-control-allow-origin", b"*"), (b"access-control-allow-methods", b"GET, OPTIONS"),
                (b"access-control-allow-headers", b"mcp-protocol-version")]
        if rs is None:
            await _respond(send, 404, rpc.dumps({"error": "not found", "hint": "no OAuth-protected server at this path"}), extra=cors)
            return
        if not _host_ok(_headers(scope).get("host"), rt.config.host_allowlist()):
            await _respond(send, 421, rpc.dumps({"error": "Invalid Host header"}))
            return
        if scope["method"] == "OPTIONS":
            await _respond(send, 204, b"", None, cors)
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _respond(send, 405, b"", None, [(b"allow", b"GET, OPTIONS"), *cors])
            return
        await _respond(send, 200, rpc.dumps(rs.metadata_document()), JSON,
                       [(b"cache-control", b"public, max-age=300"), *cors])

    # ---- one MCP request -------------------------------------------------------------
    async def mcp(self, scope, receive, send, server_id: str) -> None:
        rt = self.rt
        t0 = time.perf_counter()
        cfg = rt.config
        server = cfg.server(server_id)
        if server is None:
            await _respond(send, 404, rpc.dumps(rpc.error(None, rpc.INVALID_REQUEST, f"unknown server {server_id!r}")))
            return
        headers = _headers(scope)
        # DNS-rebinding protection, as the SDK does it: bad Host 421, bad Origin 403
        if not _host_ok(headers.get("host"), cfg.host_allowlist()):
            await _respond(send, 421, rpc.dumps(rpc.error(None, rpc.INVALID_REQUEST, "Invalid Host header")))
            return
        origin = headers.get("origin")
        if origin is not None and not _host_ok(origin, cfg.origin_allowlist()):
            await _respond(send, 403, rpc.dumps(rpc.error(None, rpc.INVALID_REQUEST, "Invalid Origin header")))
            return
        # a header name given twice makes the dict shorter than the list: only then look closer
        repeated = len(headers) != len(scope["headers"])
        if repeated and sum(1 for k, _ in scope["headers"] if k == b"authorization") > 1:
            # which one would count? Proxies and frameworks disagree (first wins, last wins,
            # joined): refuse rather than pick one
            rt.metrics.inc("mcpp_auth_failures_total", (("server", server.id), ("reason", "duplicate")))
            await _respond(send, 400, rpc.dumps(rpc.error(None, rpc.INVALID_REQUEST, "more than one Authorization header")))
            return
        caller = await self.authenticate(send, server, headers)
        if caller is None:
            return
        # upstream connections are reused per caller (http_client.LANE); uvicorn serves each
        # request in a task of its own, so this holds for this request only
        LANE.set(caller.key)
        method = scope["method"]
        if method not in ("POST", "GET", "DELETE"):
            await _respond(send, 405, b"", None, [(b"allow", b"GET, POST, DELETE")])
            return
        upstream = rt.upstreams.get(server.id)
        if upstream is None:
            await _respond(send, 503, rpc.dumps(rpc.error(None, rpc.UPSTREAM_UNAVAILABLE, "upstream not configured")))
            return
        fwd = self.forward_headers(headers, server)
        if caller.identity is not None and server.oauth is not None and server.oauth.token_exchange is not None:
            # the upstream gets a token of its own for this user (RFC 8693), never the caller's
            try:
                fwd.append(await rt.exchange_header(server, caller, headers["authorization"].partition(" ")[2].strip()))
            except IdPUnavailable as e:
                rt.metrics.inc("mcpp_upstream_errors_total", (("server", server.id), ("kind", "token_exchange")))
                rt.log.error("token_exchange_failed", server=server.id, **rt.who(caller), error=str(e))
                await _respond(send, 502, rpc.dumps(rpc.error(None, rpc.UPSTREAM_UNAVAILABLE,
                                                              "the upstream credential for this user could not be obtained")))
                return
        sid = headers.get("mcp-session-id")
        if sid is not None:
            inner = rt.sessions.unwrap(sid, caller.key, server.id)
            if inner is None:
                await _respond(send, 404, rpc.dumps(rpc.error(None, rpc.INVALID_REQUEST, "Session not found")))
                return
            fwd.append(("mcp-session-id", inner))
        if method != "POST":
            counted = method == "GET"  # (a listening stream; a DELETE ends a session, and is short)
            if counted and not self._take(server, caller):
                await self._busy(send, server, None)
                return
            try:
                await self.forward(receive, send, server, caller, upstream, method, fwd, b"", None)
            finally:
                if counted:
                    self._give_back(server, caller)
            if method == "DELETE" and sid is not None and server.catalog:
                rt.listings.forget((server.id, inner))
            if method == "DELETE" and sid is not None:
                rt.session_caps.pop((server.id, inner), None)
            rt.metrics.inc("mcpp_requests_total", (("server", server.id), ("method", method), ("status", "-")))
            return
        # the caller's share is taken before the body is read: a request whose body trickles in
        # holds a connection as long as any other (hostile review 30, G5)
        share = self._take(server, caller, unread=True)
        if share is None:
            await self._busy(send, server, None)
            return
        try:
            await self._read_post(scope, receive, send, server, caller, upstream, fwd, headers, repeated, sid,
                                  inner if sid is not None else None, share, t0)
        finally:
            self._give_back(server, caller, share)

    async def _read_post(self, scope, receive, send, server, caller: Caller, upstream, fwd, headers, repeated: bool,
                         sid, inner, share: str, t0: float) -> None:
        """A POST of an authenticated caller (`mcp`): its message read, checked and sent on
        its way (`_post`)."""
        rt = self.rt
        cfg = rt.config
        try:
            async with asyncio.timeout(cfg.body_timeout):
                body = await self.read_body(scope, receive, cfg.max_body_bytes)
        except TimeoutError:
            rt.metrics.inc("mcpp_requests_total", (("server", server.id), ("method", "?"), ("status", "408")))
            await _respond(send, 408, rpc.dumps(rpc.error(None, rpc.INVALID_REQUEST, f"request body not received within {cfg.body_timeout:g}s")),
                           extra=[(b"connection", b"close")])
            return
        except TooLarge:
            rt.metrics.inc("mcpp_requests_total", (("server", server.id), ("method", "?"), ("status", "413")))
            await _respond(send, 413, rpc.dumps(rpc.error(None, rpc.INVALID_REQUEST, f"request body exceeds {cfg.max_body_bytes} bytes")))
            return
        msg = rpc.parse_message(body.decode("utf-8", "replace")) if body else None
        if not isinstance(msg, dict):
            code, text = (rpc.PARSE_ERROR, "Parse error") if msg is None else (rpc.INVALID_REQUEST, "Body must be a single JSON-RPC message object (batches are not supported)")
            await _respond(send, 400, rpc.dumps(rpc.error(None, code, text)))
            return
        mname = msg.get("method")
        has_id = "id" in msg
        if has_id and not _valid_id(msg["id"]):
            # JSON-RPC ids are strings, numbers or null: an object, array or boolean would
            # become a valid request upstream under the gateway's id (hostile17 F5); an id
            # the gateway cannot write back (NaN, 1e400, a lone surrogate) would break every
            # answer to it, this one's first (hostile22 F3, F5). Checked before any answer
            # names the id.
            await _respond(send, 400, rpc.dumps(rpc.error(None, rpc.INVALID_REQUEST, "Invalid JSON-RPC id")))
            return
        if mname is not None and (not isinstance(mname, str) or msg.get("jsonrpc") != "2.0"):
            await _respond(send, 400, rpc.dumps(rpc.error(msg.get("id") if has_id else None, rpc.INVALID_REQUEST, "Invalid JSON-RPC request")))
            return
        if mname is not None and len(mname) > MAX_METHOD_LENGTH:
            # no MCP method comes near this; a longer one is caller text that would otherwise
            # travel into logs and labels
            await _respond(send, 400, rpc.dumps(rpc.error(None, rpc.INVALID_REQUEST, f"method name longer than {MAX_METHOD_LENGTH} characters")))
            return
        if mname is None and not (has_id and ("result" in msg or "error" in msg)):
            await _respond(send, 400, rpc.dumps(rpc.error(None, rpc.INVALID_REQUEST, "Invalid JSON-RPC message")))
            return
        if mname == "tools/call" and not has_id:
            # a notification-shaped call would reach the upstream undecided: never forward one
            await _respond(send, 400, rpc.dumps(rpc.error(None, rpc.INVALID_REQUEST, "tools/call must be a request with an id")))
            return
        if mname != "tools/call" and may_nest_deeper(body, MAX_MESSAGE_NESTING):
            # deeper than every recursive reader (the upstream's) is known to manage at any
            # stack depth: refused (`_nesting_refusal`; a call, in `call_tool`, in the order
            # the API checks it). Measured in C, off the event loop for a large body
            refusal = (await asyncio.to_thread(_nesting_refusal, msg, body) if len(body) > OFF_LOOP_CHECK_BYTES
                       else _nesting_refusal(msg, body))
            if refusal is not None:
                rid = msg.get("id") if has_id and mname is not None else None
                await _respond(send, 400, rpc.dumps(rpc.error(rid, *refusal)))
                return
        modern = headers.get("mcp-protocol-version") in MODERN_PROTOCOL_VERSIONS
        if mname is not None and has_id:
            rej = self.check_routing_headers(scope, headers, msg, modern, repeated)
            if rej is not None:
                code, message = rej
                await _respond(send, ERROR_CODE_HTTP_STATUS.get(code, 400), rpc.dumps(rpc.error(msg.get("id"), code, message)))
                return
        if mname is None and isinstance(msg.get("id"), str) and msg["id"].startswith(ELICIT_PREFIX):
            # a 2025 client's answer to the gateway's own elicitation (docs/approval.md): never forwarded
            await self.elicitation_response(send, server, caller, fwd, msg)
            return
        if share == "unread" and mname is not None and has_id:
            # (read only because its caller was at its share, to let answers and
            # notifications through: a request is refused now)
            await self._busy(send, server, msg["id"])
            return
        await self._post(receive, send, server, caller, upstream, fwd, headers, sid, inner, msg, mname, has_id, modern,
                         body, scope, t0)

    # ---- one caller's share of the connections ---------------------------------------------
    def _share_key(self, server, caller: Caller):
        """Whose requests count together: a grant's or a user's, wherever they go; the
        anonymous callers of one server (they share the grant `anonymous`) per server."""
        return (server.id, caller.key) if caller.record is None and caller.identity is None else caller.key

    def _take(self, server, caller: Caller, unread: bool = False) -> str | None:
        """Count a request of `caller` in progress: "counted", or None (nothing counted)
        when it already has `max_requests_per_caller`. Every request in progress holds a
        connection, and a `max_connections` slot: one token holder with listening streams or
        calls that never end could otherwise take every slot from every other caller.

        `unread`: a POST whose body is not read yet — it may be a notification or a client's
        answer (to an elicitation the gateway or the upstream asked, which a waiting call
        needs to end: hostile review 29, F1), which must get through at the share. At the
        share, up to MAX_UNREAD_PER_CALLER more are read ("unread"), and those that are
        requests are refused once read. (A DELETE is never counted: it is short and ends a
        session, F7.)"""
        key = self._share_key(server, caller)
        busy = self._in_progress.get(key, 0)
        if busy < self.rt.config.max_requests_per_caller:
            self._in_progress[key] = busy + 1
            return "counted"
        if unread and self._unread.get(key, 0) < MAX_UNREAD_PER_CALLER:
            self._unread[key] = self._unread.get(key, 0) + 1
            return "unread"
        return None

    def _give_back(self, server, caller: Caller, share: str = "counted") -> None:
        key = self._share_key(server, caller)
        counts = self._in_progress if share == "counted" else self._unread
        left = counts[key] - 1
        if left:
            counts[key] = left
        else:
            del counts[key]

    async def _busy(self, send, server, rid) -> None:
        cap = self.rt.config.max_requests_per_caller
        self.rt.metrics.inc("mcpp_requests_total", (("server", server.id), ("method", "?"), ("status", "429")))
        await _respond(send, 429, rpc.dumps(rpc.error(rid, rpc.INVALID_REQUEST, (
            f"at most {cap} requests of one caller may be in progress at once; retry when one has ended"))),
                       extra=[(b"retry-after", b"1")])

    async def _post(self, receive, send, server, caller: Caller, upstream, fwd, headers, sid, inner, msg: dict,
                    mname, has_id: bool, modern: bool, body: bytes, scope, t0: float) -> None:
        """A POSTed message, read and checked (`mcp`): sent on its way."""
        rt = self.rt
        # a request goes upstream with the gateway's id, never the client's (upstream_id);
        # a client's answer to the upstream's own request (no method) keeps the upstream's id
        gid = tracked = None
        session = inner if sid is not None else None
        if has_id and mname is not None:
            scope[RPC_ID] = msg["id"]  # read: an answer the gateway gives from here on can name it
        # every message goes upstream as the gateway read it, re-serialised: a duplicate key or
        # an odd encoding cannot make the upstream read a request where the gateway read a
        # notification or a client's answer, which are forwarded undecided (hostile17 F10)
        lane = (server.id, session, caller.key)  # (cancellations name only the caller's own requests)
        try:
            if mname is not None and has_id:
                gid = upstream_id()
                if mname != "tools/call":  # (call_tool puts it in the body it decided)
                    body = _request_bytes(msg, gid)
                if session is not None:
                    tracked = self._track(lane, msg["id"], gid)
            elif mname == "notifications/cancelled" and session is not None:
                body = self._cancel_body(lane, msg) or _encode(msg)
            else:
                body = _encode(msg)
        except (ValueError, RecursionError):  # (a number JSON cannot write, or nested too deep)
            await _respond(send, 400, rpc.dumps(rpc.error(None, rpc.INVALID_REQUEST, UNWRITABLE)))
            return
        try:
            if mname == "tools/call" and gid is not None:
                await self.call_tool(receive, send, server, caller, upstream, fwd, msg, modern, headers, gid)
            elif mname == "tools/list" and gid is not None:
                await self.list_tools(send, server, caller, upstream, fwd, body, msg, modern, gid)
            else:
                await self.forward(receive, send, server, caller, upstream, "POST", fwd, body, msg, gid=gid)
        finally:
            if tracked is not None:
                self._untrack(tracked, gid)
            rt.metrics.observe("mcpp_request_duration_seconds", (("server", server.id), ("method", method_label(mname))), time.perf_counter() - t0)

    # ---- request ids: the gateway's upstream, the client's downstream ---------------------
    def _track(self, scope: tuple, cid, gid: int) -> tuple | None:
        """Note a request in flight in an upstream session, so that the client's
        cancellation of it can name the gateway's id. Bounded: past the bounds a request is
        not noted (its cancellation goes upstream as the client sent it, and names no
        request there)."""
        if type(cid) is not int and type(cid) is not str:
            return None  # (JSON-RPC ids are strings and numbers; a fractional one is not noted)
        ids = self._inflight.get(scope)
        if ids is None:
            if len(self._inflight) >= self.MAX_INFLIGHT_SESSIONS:
                return None
            ids = self._inflight[scope] = {}
        elif len(ids) >= self.MAX_INFLIGHT_PER_SESSION:
            return None
        ids[cid] = gid
        return scope, cid

    def _untrack(self, tracked: tuple, gid: int | None) -> None:
        scope, cid = tracked
        ids = self._inflight.get(scope)
        if ids is not None and ids.get(cid) == gid:  # (not a later request that reused the client's id)
            del ids[cid]
            if not ids:
                del self._inflight[scope]

    def _cancel_body(self, scope: tuple, msg: dict) -> bytes | None:
        """A client's `notifications/cancelled` with the gateway's id of the request it
        cancels, when that request is in flight in this session; else None (forwarded as sent)."""
        params = msg.get("params")
        if not isinstance(params, dict):
            return None
        cid = params.get("requestId")
        if type(cid) is not int and type(cid) is not str:
            return None
        gid = self._inflight.get(scope, {}).get(cid)
        if gid is None:
            return None
        return _encode({**msg, "params": {**params, "requestId": gid}})

    async def authenticate(self, send, server, headers) -> Caller | None:
        """The caller, or None when the request was answered (401, 403, 503). A server with
        `[servers.oauth]` takes OAuth access tokens (and grant tokens, unless
        `accept_grants = false`); its challenges point to its resource metadata."""
        rt = self.rt
        auth = headers.get("authorization")
        if auth is None and server.anonymous:
            grant = Grant("anonymous", "anonymous", rt.config.groups_of("anonymous", "anonymous"))
            return Caller(grant, None)
        rs = rt.resource_servers.get(server.id) if server.oauth is not None else None
        scheme, _, token = (auth or "").partition(" ")
        token = token.strip()
        bearer = auth is not None and scheme.lower() == "bearer" and bool(token)
        gid = grant_id_of(token) if bearer else None
        if rs is not None and bearer and gid is None:
            return await self.authenticate_oauth(send, server, rs, token)
        reason = None
        record = None
        if auth is None:
            reason = "missing"
        elif not bearer:
            reason = "malformed"
        elif rs is not None and not rs.oauth.accept_grants:
            reason = "grants_not_accepted"
        else:
            try:
                record = await rt.grant_record(gid) if gid else None
            except Exception as e:  # the grant store is down: nobody gets in
                rt.log.error("grant_store_error", server=server.id, error=f"{type(e).__name__}: {e}")
                await _respond(send, 503, rpc.dumps(rpc.error(None, rpc.GATEWAY_ERROR, "grant store unavailable")))
                return None
            if not check_token(record, token):
                reason = "revoked" if record is not None and record.revoked_at and _same(record, token) else "invalid"
            elif record.server != server.id:
                reason = "wrong_server"
        if reason is not None:
            rt.metrics.inc("mcpp_auth_failures_total", (("server", server.id), ("reason", reason)))
            rt.log.info("auth_failed", server=server.id, reason=reason, grant_id=record.id if record else None)
            err = "invalid_request" if reason in ("missing", "malformed") else "invalid_token"
            text = {"missing": "a grant token is required (Authorization: Bearer <token>)",
                    "malformed": "the Authorization header must be 'Bearer <grant token>'",
                    "revoked": "this grant has been revoked", "invalid": "invalid grant token",
                    "wrong_server": "this grant is not for this server",
                    "grants_not_accepted": "this server accepts OAuth access tokens only"}[reason]
            if rs is not None:
                if reason == "missing":
                    text = "an access token is required (Authorization: Bearer <token>)"
                www = rs.challenge(None if reason == "missing" else AuthFailure(401, err, text, reason))
            else:
                www = f'Bearer realm="mcpp", error="{err}"'.encode() if reason != "missing" else b'Bearer realm="mcpp"'
            await _respond(send, 401, rpc.dumps(rpc.error(None, rpc.INVALID_REQUEST, f"Unauthorized: {text}")), JSON,
                           [(b"www-authenticate", www)])
            return None
        assert record is not None  # a reason was set otherwise
        return self.grant_caller(record)

    def grant_caller(self, record) -> Caller:
        """The caller a grant record makes under the configuration in force (its groups)."""
        cfg = self.rt.config
        hit = self._grant_principals.get(record.id)
        if hit is None or hit[0] is not record or hit[1] is not cfg:
            groups = frozenset(record.groups) | cfg.groups_of(record.id, record.label)
            if len(self._grant_principals) >= self.MAX_GRANT_PRINCIPALS:
                self._grant_principals.clear()
            hit = self._grant_principals[record.id] = (record, cfg, Grant(record.id, record.label, groups))
        return Caller(hit[2], record)

    async def authenticate_oauth(self, send, server, rs, token: str) -> Caller | None:
        """An OAuth access token (oauth.py): 401 with the challenge when it is not valid for
        this server, 403 `insufficient_scope` when a required scope is missing, 503 when
        its issuer cannot be reached to check it."""
        rt = self.rt
        identity = None
        try:
            identity = await rs.authenticate(token)
            rs.check_scopes(identity)
        except AuthFailure as f:
            rt.metrics.inc("mcpp_auth_failures_total", (("server", server.id), ("reason", f.reason)))
            who = {} if identity is None else {"issuer": identity.issuer, "subject": identity.log_subject(rt.pseudonym)}
            rt.log.info("auth_failed", server=server.id, reason=f.reason, **who)
            word = "Forbidden" if f.status == 403 else "Unauthorized"
            await _respond(send, f.status, rpc.dumps(rpc.error(None, rpc.INVALID_REQUEST, f"{word}: {f.description}")), JSON,
                           [(b"www-authenticate", rs.challenge(f))])
            return None
        except IdPUnavailable as e:  # the token cannot be checked: nobody gets in
            rt.metrics.inc("mcpp_auth_failures_total", (("server", server.id), ("reason", "idp_unavailable")))
            rt.log.error("idp_unavailable", server=server.id, error=str(e))
            await _respond(send, 503, rpc.dumps(rpc.error(None, rpc.GATEWAY_ERROR,
                                                          "the identity provider is unavailable; try again shortly")),
                           extra=[(b"retry-after", b"5")])
            return None
        return Caller(None, None, identity, shown=identity.log_subject(rt.pseudonym))

    def forward_headers(self, headers: dict, server) -> list[tuple[str, str]]:
        out = [(k, v) for k, v in headers.items() if k in FORWARD_REQUEST_HEADERS or k[:10] == "mcp-param-"]
        out.extend(self.rt.credential_headers.get(server.id, ()))
        return out

    @staticmethod
    def check_routing_headers(scope, headers, msg, modern, repeated: bool = True):
        """`repeated`: some header name occurs more than once (else no routing header can)."""
        if repeated:
            dup = find_duplicated_routing_header((k.decode("latin-1"), v) for k, v in scope["headers"])
            if dup is not None:
                return rpc.HEADER_MISMATCH, f"{dup} header given more than once"
        if modern:
            verdict = classify_inbound_request(msg, headers=headers, supported_modern_versions=MODERN_PROTOCOL_VERSIONS)
            if isinstance(verdict, InboundLadderRejection):
                return verdict.code, verdict.message
            return None
        # a legacy request need not carry them, but if it does they must agree with the body
        hm = headers.get("mcp-method")
        if hm is not None and hm != msg.get("method"):
            return rpc.HEADER_MISMATCH, "mcp-method header does not match the request body's method"
        key = NAME_BEARING_METHODS.get(msg.get("method"))
        hn = headers.get("mcp-name")
        if key is not None and hn is not None:
            params = msg.get("params")
            value = params.get(key) if isinstance(params, dict) else None
            if value is not None and decode_header_value(hn) != value:
                return rpc.HEADER_MISMATCH, f"mcp-name header does not match the request body's {key!r} parameter"
        return None

    @staticmethod
    async def read_body(scope, receive, limit: int) -> bytes:
        for k, v in scope["headers"]:
            if k == b"content-length":
                try:
                    if int(v) > limit:
                        raise TooLarge
                except ValueError:
                    pass
        parts, size = [], 0
        while True:
            m = await receive()
            if m["type"] == "http.disconnect":
                break
            chunk = m.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise TooLarge
            parts.append(chunk)
            if not m.get("more_body"):
                break
        return b"".join(parts)

    # ---- tools/call --------------------------------------------------------------------
    async def call_tool(self, receive, send, server, caller, upstream, fwd, msg, modern, headers, gid: int):
        """`gid`: the id the call goes upstream with (upstream_id); `msg` keeps the client's."""
        rt = self.rt
        # every wait for a locked store (counters.db, then audit.db) ends by this one deadline,
        # or as soon as the client has gone
        CALL_DEADLINE.set(time.monotonic() + rt.config.store_busy_timeout)
        CALL_GONE.set(lambda: _client_gone(receive))
        rid = msg.get("id")
        params = msg.get("params")
        name = params.get("name") if isinstance(params, dict) else None
        if not isinstance(name, str):
            await _respond(send, 400, rpc.dumps(rpc.error(rid, rpc.INVALID_PARAMS, "tools/call needs params.name (a string)")))
            return
        if not 1 <= len(name) <= MAX_TOOL_NAME:
            # MCP tool names are 1-128 characters: anything else names no tool, and is refused
            # before it can reach the audit log, the log, the metrics or the engine's caches
            await _respond(send, 400, rpc.dumps(rpc.error(rid, rpc.INVALID_PARAMS, f"tool name must be 1 to {MAX_TOOL_NAME} characters")))
            return
        args = params.get("arguments")
        if args is None:
            args = {}
        try:
            # NaN, ±Infinity or a lone surrogate anywhere in the message: refused before the
            # schema and the policy, with the reason (lang/jsontext.py, which the API's
            # `Policy.decide` applies too, so both refuse the same calls)
            decided_body = json_bytes({**msg, "id": gid})
        except NotJSONText as e:
            await _respond(send, 400, rpc.dumps(rpc.error(rid, rpc.INVALID_PARAMS, str(e))))
            return
        large = len(decided_body) > OFF_LOOP_CHECK_BYTES
        if may_nest_deeper(decided_body, MAX_MESSAGE_NESTING):
            # deeper than every recursive reader (the schema check, the engine) is known to
            # manage at any stack depth: arguments refused the same way the API and `mcpp
            # eval` refuse them, any other member as any other message (`_nesting_refusal`).
            # Measured in C, and off the event loop for a large body (hostile review 24, F4)
            refusal = (await asyncio.to_thread(_nesting_refusal, msg, decided_body) if large
                       else _nesting_refusal(msg, decided_body))
            if refusal is not None:
                await _respond(send, 400, rpc.dumps(rpc.error(rid, *refusal)))
                return
        # an integer beyond ±(2^53-1) in the arguments: a JavaScript upstream would run
        # another number than the one decided (I-JSON; hostile review 41, H41-5). Refused
        # the same way, and by the API and `mcpp eval` alike (lang/jsontext.py)
        # (the message as forwarded has no run of 16 digits, as nearly none has: nothing to walk)
        why = None if not may_hold_unsafe_integer(decided_body) else (
            await asyncio.to_thread(unsafe_integer, args) if large else unsafe_integer(args))
        if why is not None:
            await _respond(send, 400, rpc.dumps(rpc.error(rid, rpc.INVALID_PARAMS, why)))
            return
        t0 = time.perf_counter()
        engine, policy_sha, role = None, None, "server"
        typed = None
        # the pin this call is checked against, by the schema check and the pin check alike
        # (hostile review 31, H31-6: re-pinned between them, a call only the old pin's schema
        # allowed passed both and ran)
        pin_seen = rt.pin_for(server).current if server.catalog else None
        if server.enforce_input_schema:
            # typed calls: the arguments must conform to the tool's declared schema before
            # the policy sees them, so no condition can be bypassed with a wrong type
            try:
                typed, filled = await self.schema_check(server, name, args, upstream, fwd, params, modern,
                                                        large=large, pin=pin_seen)
                if filled is not args:  # the tool's declared defaults, filled in: what is decided, audited and forwarded
                    args, msg = filled, {**msg, "params": {**params, "arguments": filled}}
                    decided_body = rpc.compact_finite({**msg, "id": gid}).encode()
            except ClientGone:  # nothing was decided or reserved: no row, nothing forwarded
                rt.log.info("client_gone_before_forwarding", server=server.id, **rt.who(caller), tool=name,
                            request_id=clip(json.dumps(rid), MAX_AUDIT_ID), audit_seq=None)
                return
            except StillCompiling as e:  # fail closed, and say so: a later call may find it compiled
                rt.log.warning("schema_still_compiling", server=server.id, tool=name, error=str(e))
                typed = {"kind": "unverifiable", "pointer": schema_pointer(name), "reason": str(e),
                         "message": f"Tool {name} cannot be checked yet: {e}. The call was not forwarded; call it again later."}
            except Exception as e:  # fail closed
                rt.log.error("schema_check_failed", server=server.id, tool=name, error=f"{type(e).__name__}: {e}")
                typed = {"kind": "error", "pointer": schema_pointer(name), "reason": type(e).__name__,
                         "message": f"Tool {name} could not be checked against its input schema (internal error); the call was not forwarded."}
        ctx = CallContext(server, caller, name, args, rid, None, None, "deny", "", modern, params, headers)
        try:
            engine, policy_sha = await rt.engine_for(server, caller)
            role = rt.policy_role(server, caller)
            if typed is not None:
                decision = Decision(False, name, typed["pointer"], None, typed["message"])
            else:
                if server.shadow:
                    # a candidate policy beside the one in force, decided first so that it reads
                    # the limit counts as they stood before this call; it reserves nothing, never acts
                    await self.shadow_decide(ctx, role)
                decision = await rt.decide(engine, name, args, caller.principal, server.id)
        except ClientGone:
            # its client left while the decision waited on a locked counters.db: nothing was
            # reserved, nothing is forwarded, and no row is written (the call was never decided)
            rt.log.info("client_gone_before_forwarding", server=server.id, **rt.who(caller), tool=name,
                        request_id=clip(json.dumps(rid), MAX_AUDIT_ID), audit_seq=None)
            return
        except Exception as e:  # fail closed
            decision = Decision(False, name, "/error", None, f"policy evaluation failed: {type(e).__name__}")
        # what went wrong is for the operator (the log, /healthz, the audit row), never for
        # the agent: no file path, parse error or counterexample in what it reads
        detail = None
        if decision.rule == "/error" and typed is None:
            detail = decision.message
            rt.log.error("decision_error", server=server.id, tool=name, error=clip(detail, 500))
            decision = Decision(False, name, decision.rule, None, "The policy could not be evaluated for this call; it was denied.")
        elif decision.rule == "/no-policy":
            detail = getattr(engine, "why", None)
        rt.metrics.observe("mcpp_decision_duration_seconds", (("server", server.id),), time.perf_counter() - t0)
        # the policy decided (not a typed-call refusal, no missing policy, no engine failure):
        # only such decisions have a shadow to compare with and may be passed in log-only mode
        policy_decided = typed is None and decision.rule not in ("/no-policy", "/error", LIMIT_STORE_DOWN)
        ctx.engine, ctx.policy_sha, ctx.decided, ctx.rule = engine, policy_sha, decision.decision, decision.rule
        if not policy_decided:  # nothing the policy decided to compare the shadow with
            ctx.shadow = ctx.shadow_sha = None
        log_only = rt.config.mode == "log-only"
        approval = None
        if decision.needs_approval and not decision.allowed and policy_decided and not log_only:
            # human approval (docs/approval.md): the call runs only once a person said yes
            try:
                step = await self.approval_step(receive, send, fwd, msg, ctx, decision)
            except ClientGone:  # its client left while approvals.db (or counters.db) was locked
                rt.log.info("client_gone_before_forwarding", server=server.id, **rt.who(caller), tool=name,
                            request_id=clip(json.dumps(rid), MAX_AUDIT_ID), audit_seq=None)
                return
            if step is None:
                return  # answered here (asked, waiting, rejected or refused), and audited
            decision, approval = step
            if approval.body:  # the call without the gateway's own fields (approving.py), still with the client's id
                decided_body = _request_bytes(rpc.parse_message(approval.body.decode()), gid)
        # log-only: what the policy denies (or holds for approval) is forwarded anyway, marked
        passed = log_only and not decision.allowed and policy_decided
        pinned = None
        if (decision.allowed or passed) and server.catalog:
            # the policy allows it; the tool must also still be the one that was reviewed
            try:
                pinned = await self.pin_check(server, name, upstream, fwd, params, modern, seen=pin_seen)
            except Exception as e:  # fail closed
                rt.log.error("catalog_check_failed", server=server.id, tool=name, error=f"{type(e).__name__}: {e}")
                pinned = {"kind": "error", "reason": f"{type(e).__name__}", "message": (
                    f"Tool {name} could not be checked against the pinned catalog (internal error); the call was not forwarded.")}
            if pinned is not None:
                decision.release()
                decision = Decision(False, name, pointer(name), None, pinned["message"])
                passed = False
                if approval is not None:  # it did not run: the approval may run it later
                    approval.restore(rt)
                    approval.id = None
        forwarding = decision.allowed or passed
        if forwarding:
            outcome = "forwarded"
        else:
            outcome = "rejected" if (pinned or typed or {}).get("rejection") else "denied"
        ran_approved = approval is not None and approval.id is not None and decision.allowed
        row = self.call_row(ctx, decision, outcome, detail, approval_id=approval.id if ran_approved and approval is not None else None,
                            decision_kind="approval" if ran_approved else None)
        seq = await self.write_audit(send, ctx, row, decision, sse=approval.sse if approval else None)
        if seq is None:
            if approval is not None:
                approval.restore(rt)
            return
        if forwarding and _client_gone(receive):
            # the client went away while the call waited (a store locked by another process,
            # the upstream's listing fetched for a pin): nobody reads the answer, and an agent
            # whose HTTP client gave up may be sending the call again already: not forwarded,
            # its unit given back, its row says so (hostile16 F3)
            try:
                decision.release()
            except Exception as e:  # over-counts (the safe direction)
                rt.log.warning("limit_refund_lost", server=server.id, error=f"{type(e).__name__}: {e}")
            if approval is not None:
                approval.restore(rt)
            try:
                rt.audit_writer.set_outcome(seq, "not_executed")
            except Exception as e:
                rt.log.error("audit_write_failed", server=server.id, error=f"{type(e).__name__}: {e}")
            rt.log.info("client_gone_before_forwarding", server=server.id, **rt.who(caller), tool=name,
                        request_id=row.request_id, audit_seq=seq)
            row.outcome = "not_executed"  # (the decision's log line and metrics say what the row says)
            self.count_decision(ctx, row, seq, False)
            return
        if not forwarding:  # (a forwarded call is counted once its answer is on its way)
            self.count_decision(ctx, row, seq, passed)
        if pinned is not None:
            rt.metrics.inc("mcpp_catalog_denials_total", (("server", server.id), ("kind", pinned["kind"])))
            rt.log.warning("catalog_denied", server=server.id, **rt.who(caller),
                           tool=name, kind=pinned["kind"], reason=pinned["reason"], catalog=server.catalog,
                           pinned=pinned.get("pinned"), live=pinned.get("live"), request_id=row.request_id, audit_seq=seq)
        if typed is not None:
            rt.metrics.inc("mcpp_schema_denials_total", (("server", server.id), ("kind", typed["kind"])))
            rt.log.log("info" if typed["kind"] in ("invalid_arguments", "unlisted") else "warning", "schema_denied",
                       server=server.id, **rt.who(caller), tool=name, kind=typed["kind"], reason=clip(typed["reason"], 500),
                       rule=clip(typed["pointer"], 500), request_id=row.request_id, audit_seq=seq)
        refused = pinned if pinned is not None else typed
        if refused is not None and refused.get("rejection"):
            # the upstream refused the protocol version: answer as it would have answered the
            # call itself, so a dual-era client falls back to the handshake
            err = refused["rejection"]
            await _respond(send, 400, rpc.dumps(rpc.error(rid, err.get("code"), str(err.get("message", "")), err.get("data"))))
            return
        if not forwarding:
            meta: dict[str, dict[str, Any]] = {"io.mcpp/decision": {"decision": "deny", "rule": decision.rule}}
            if decision.limit is not None:
                meta["io.mcpp/decision"]["limit"] = decision.limit.to_dict()
            if pinned is not None:
                meta["io.mcpp/decision"]["catalog"] = {"kind": pinned["kind"], "pinned": pinned.get("pinned"), "live": pinned.get("live")}
            if typed is not None:
                meta["io.mcpp/decision"]["schema"] = {"kind": typed["kind"]}
            prefix = rpc.ERROR_PREFIX if decision.rule in (LIMIT_STORE_DOWN, APPROVALS_DOWN) else rpc.DENIED_PREFIX
            out = rpc.tool_error_result(rid, prefix + decision.message, modern, meta)
            if approval is not None and approval.sse is not None:
                await approval.sse.finish(out)
            else:
                await _respond(send, 200, rpc.dumps(out), settled=rt)  # (audited `denied`: what the client gets)
            return
        # forward what was decided, re-serialised: a duplicate key or an odd encoding in the
        # original bytes cannot make the upstream read a different call than the policy did
        settled = []

        def settle(outcome: str) -> None:
            settled.append(outcome)
            if not OUTCOME_COUNTED.get(outcome, True):
                try:
                    decision.release()
                except Exception as e:  # a refund that fails over-counts (the safe direction); the outcome is still recorded
                    rt.log.warning("limit_refund_lost", server=server.id, error=f"{type(e).__name__}: {e}")
                if approval is not None:  # it certainly did not run: the approval is not spent
                    approval.restore(rt)
            if outcome != "forwarded":
                try:
                    rt.audit_writer.set_outcome(seq, outcome)
                except Exception as e:
                    rt.log.error("audit_write_failed", server=server.id, error=f"{type(e).__name__}: {e}")

        try:
            if approval is not None and approval.sse is not None:
                # a 2025 session's call that waited on an elicitation: its stream is already open
                outcome = await self.forward_into_stream(_MappedStream(approval.sse, gid, rid), upstream, fwd, decided_body,
                                                         gid, modern, settle)
            else:
                outcome = await self.forward(receive, send, server, caller, upstream, "POST", fwd, decided_body, msg,
                                             watch_id=rid, modern=modern, settle=settle, gid=gid)
            if not settled:
                settle(outcome)
        except asyncio.CancelledError:
            # sent, and unanswered when the gateway stopped (or its client left): it may
            # still run upstream, so the unit stays, and the audit says why, not `forwarded`
            if not settled:
                settle("gateway_stopped")
            if not rt.stopping:
                raise
            out = rpc.tool_error_result(rid, STOPPED_TEXT, modern)
            if approval is not None and approval.sse is not None:
                await approval.sse.finish(out)
            else:
                await _respond(send, 200, rpc.dumps(out))
        finally:
            # metrics and the decision log line: telemetry, kept off the path to the answer
            self.count_decision(ctx, row, seq, passed)

    # ---- audit rows, metrics and the shadow policy (docs/rollout.md) ---------------------------
    def call_row(self, ctx: "CallContext", decision, outcome: str, detail=None, approval_id=None,
                 decision_kind: str | None = None, rule: str | None = None, message: str | None = None) -> AuditRow:
        """The audit row of a decided call. `decision` is the policy's word (allow, deny,
        approval), `outcome` what the gateway did; in log-only mode they may disagree."""
        rt = self.rt
        text = message if message is not None else decision.message
        return AuditRow(
            ts=time.time(), request_id=clip(json.dumps(ctx.rid), MAX_AUDIT_ID), trace_id=_trace_id(ctx.params, ctx.headers),
            grant_id=ctx.caller.grant_id, grant_label=ctx.caller.grant_label, server=ctx.server.id, tool=ctx.name,
            decision=decision_kind or decision.decision, rule=clip(rule or decision.rule, MAX_AUDIT_TEXT),
            message=clip(text + (f" [operator detail: {detail}]" if detail else ""), MAX_AUDIT_TEXT),
            arg_keys=audit_keys(ctx.args), outcome=outcome, policy_sha256=ctx.policy_sha, replica=rt.replica,
            mode=rt.config.mode, shadow_decision=ctx.shadow.decision if ctx.shadow is not None else None,
            shadow_rule=clip(ctx.shadow.rule, MAX_AUDIT_TEXT) if ctx.shadow is not None else None,
            shadow_sha256=ctx.shadow_sha, approval_id=approval_id,
            grant_groups=sorted(ctx.caller.principal.groups) if not (ctx.caller.identity and ctx.caller.identity.groups_private) else None,
            arg_values=retain(ctx.args, rt.config.audit_values, rt.values_key),
            issuer=ctx.caller.identity.issuer if ctx.caller.identity is not None else None,
            subject=ctx.caller.identity.log_subject(rt.pseudonym) if ctx.caller.identity is not None else None,
        )

    async def write_audit(self, send, ctx: "CallContext", row: AuditRow, decision=None, sse=None) -> int | None:
        """Commit the row; if it cannot be written, nothing is forwarded (503, or an error
        event on a stream already open) and None is returned."""
        rt = self.rt
        committed = rt.audit_writer.submit(row)
        try:
            return await committed
        except asyncio.CancelledError:
            # the gateway stopped while the row waited (a locked audit.db): the call is never
            # forwarded, so its unit goes back, and a row already committed says so
            if decision is not None:
                decision.release()
            if committed.done() and not committed.cancelled() and committed.exception() is None:
                rt.audit_writer.set_outcome(committed.result(), "not_executed")
            raise
        except ClientGone:  # its client left while the row waited on a locked audit.db: no row, no call
            if decision is not None:
                decision.release()
            rt.log.info("client_gone_before_forwarding", server=ctx.server.id, **rt.who(ctx.caller), tool=ctx.name,
                        request_id=row.request_id, audit_seq=None)
            return None
        except Exception as e:  # no audit row, no call
            if decision is not None:
                decision.release()
            rt.log.error("audit_write_failed", server=ctx.server.id, error=f"{type(e).__name__}: {e}")
            err = rpc.error(ctx.rid, rpc.GATEWAY_ERROR, "audit log unavailable; the call was not forwarded")
            if sse is not None:
                await sse.finish(err)
            else:
                await _respond(send, 503, rpc.dumps(err))
            return None

    def count_decision(self, ctx: "CallContext", row: AuditRow, seq: int, passed: bool = False) -> None:
        rt = self.rt
        server, name = ctx.server, ctx.name
        rule_label = rt.rule_label(row.rule, name, ctx.engine, server)
        rt.metrics.inc("mcpp_decisions_total", (("server", server.id), ("decision", row.decision), ("rule", rule_label)))
        if ctx.shadow is not None:
            agree = ctx.shadow.decision == ctx.decided
            rt.metrics.inc("mcpp_shadow_decisions_total", (
                ("server", server.id), ("result", "agree" if agree else "mismatch"), ("decision", ctx.decided),
                ("shadow_decision", ctx.shadow.decision), ("rule", rt.rule_label(ctx.rule, name, ctx.engine, server)),
                ("shadow_rule", rt.rule_label(ctx.shadow.rule, name, ctx.shadow_engine, server))))
            if not agree:
                rt.log.info("shadow_mismatch", server=server.id, **rt.who(ctx.caller), tool=name,
                            decision=ctx.decided, rule=ctx.rule, shadow_decision=ctx.shadow.decision,
                            shadow_rule=ctx.shadow.rule, request_id=row.request_id, audit_seq=seq)
        if passed:
            rt.log_only_passed += 1
            rt.metrics.inc("mcpp_log_only_passed_total", (("server", server.id), ("decision", row.decision)))
        level = "info" if row.outcome != "forwarded" or passed else "debug"  # the audit log has every allow
        if rt.log.enabled(level):
            extra = {"mode": "log-only", "enforced": False} if passed else {}
            rt.log.log(level, "decision", server=server.id, **rt.who(ctx.caller),
                       tool=name, decision=row.decision, rule=row.rule, outcome=row.outcome, request_id=row.request_id,
                       audit_seq=seq, **extra)

    async def shadow_decide(self, ctx: "CallContext", role: str) -> None:
        """The shadow policy's decision of this call, against the same limit counters and
        reserving nothing (`reserve=False`). Whatever happens here never changes what the
        enforcing policy decided: a failure is logged and leaves no shadow decision."""
        rt = self.rt
        try:
            engine, sha = rt.shadow_for(ctx.server, role)
            if engine is None:
                return
            d = await rt.decide(engine, ctx.name, ctx.args, ctx.caller.principal, ctx.server.id, reserve=False)
            if d.rule in ("/error", LIMIT_STORE_DOWN):
                rt.log.warning("shadow_error", server=ctx.server.id, tool=ctx.name, error=clip(d.message, 500))
                return
            ctx.shadow, ctx.shadow_sha, ctx.shadow_engine = d, sha, engine
        except Exception as e:
            rt.log.warning("shadow_error", server=ctx.server.id, tool=ctx.name, error=f"{type(e).__name__}: {e}")

    # ---- tools/list --------------------------------------------------------------------
    async def list_tools(self, send, server, caller, upstream, fwd, body, msg, modern, gid: int):
        """Relay a tools/list answer only after checking it: a JSON-RPC response to this
        request (`gid`, the id it went upstream with) whose `tools` is an array of named
        tools, relayed with the client's id. Anything else becomes the documented upstream
        error (HTTP 502, -32002); an HTTP 400 or 404 that carries a JSON-RPC error (an
        unsupported protocol version, an unknown session) is relayed, re-serialised,
        because clients act on it."""
        rt = self.rt
        rid = msg.get("id")
        pin = None
        if server.catalog or server.enforce_input_schema:
            # the pages are recorded as the scope's listing (pin checks, typed calls)
            params = msg.get("params")
            cursor = params.get("cursor") if isinstance(params, dict) else None
            pin = (rt.pin_for(server) if server.catalog else None, (server.id, _session_of(fwd)),
                   cursor if isinstance(cursor, str) else None)
        parser, events, read_to = rpc.SSEParser(comments=True), [], [False, False]  # (fed a piece; stopped at the answer)

        def answered_yet(piece: bytes) -> bool:
            """An event stream is read up to its answer, as any request's is: what follows
            the answer is dropped, and an upstream that keeps the stream open after it does
            not hold the listing to `upstream_timeout` (hostile review 40, H40-6)."""
            read_to[0] = True
            new = parser.feed(piece)
            events.extend(new)
            read_to[1] = any(_is_response(rpc.event_message(ev)) for ev in new if "comment" not in ev)
            return read_to[1]

        try:
            resp = await upstream.request("POST", fwd, body, rt.config.upstream_timeout)
            ctype = (resp.header("content-type") or "").lower()
            sse = resp.status == 200 and ctype.startswith("text/event-stream")
            data = await resp.read(rt.config.upstream_timeout, until=answered_yet if sse else None)
        except UpstreamError as e:
            await self.upstream_failed(send, server, rid, e, tool_call=False)
            return
        headers = self.response_headers(resp, server, caller)
        headers += [(b"cache-control", b"private, no-store"), (b"vary", b"authorization")]
        headers = [h for h in headers if h[0] != b"cache-control" or h[1] == b"private, no-store"]
        status = resp.status

        def bad(why: str, kind: str = "protocol") -> UpstreamError:
            discard(resp)  # (an answer not taken: its connection is not reused)
            return UpstreamError(f"the upstream's tools/list answer was refused: {why}", kind, True)

        if status != 200:
            err = _jsonrpc_error(data, ctype) if status in (400, 404) else None
            if err is not None and not _own_error(err, gid, rid):
                err = None  # an error about another request: not this one's to relay
            if err is None:
                kind = "auth" if status in (401, 403, 407) else "protocol"
                await self.upstream_failed(send, server, rid, bad(f"HTTP {status}", kind), tool_call=False)
                return
            headers = [h for h in headers if h[0] != b"content-type"] + [(b"content-type", JSON)]
            await self.send_upstream_bytes(send, status, headers, rpc.dumps(err))
            return
        try:
            if sse:
                if not read_to[0]:  # (the body came whole with its head)
                    events = parser.feed(data)
                if not read_to[1]:
                    events += parser.end()
                # JSON when the answer is the stream's first event and the client takes it, as
                # `_HeadWaits` frames any other answer (a keep-alive comment first, too, starts
                # the stream there: H40-5); what follows the answer is dropped in either framing,
                # so the framing never decides whether a listing is refused (H40-4)
                out, answered, first = [], False, True
                as_json = rt.config.json_answer_wait > 0 and _accepts_json(fwd)
                for ev in events:
                    if "comment" in ev:
                        first = False  # (a keep-alive: not relayed, as before)
                        continue
                    m = rpc.event_message(ev)
                    if _is_response(m):
                        if not _same_id(m.get("id"), gid):
                            raise bad("an answer to another request")
                        answered = True
                        await self.checked_listing(m, server, caller, modern, pin, bad)
                        m["id"] = rid
                        try:
                            answer = _encode(m)
                        except ValueError:
                            raise bad("a number out of range") from None
                        as_json = as_json and first
                        out.append(rpc.render_event(ev, answer.decode()))
                        break  # (what follows the answer is dropped, as after any answer)
                    elif isinstance(m, dict) and isinstance(m.get("method"), str):
                        out.append(rpc.render_event(ev))  # the upstream's notifications and requests, as they were
                    elif ev["data"]:
                        raise bad("an event that is not a JSON-RPC message")
                    else:
                        out.append(rpc.render_event(ev))  # a priming event (an id, no data), for resumption
                    first = False
                if not answered:
                    raise bad("no answer to this request")
                data = b"".join(out)
                if as_json:
                    data = answer
                    headers = [h for h in headers if h[0] not in (b"content-type", b"x-accel-buffering")] + [(b"content-type", JSON)]
            elif ctype.startswith("application/json"):
                m = rpc.parse_message(data.decode("utf-8", "replace"))
                if not isinstance(m, dict) or not _same_id(m.get("id"), gid) or not ("result" in m or "error" in m):
                    raise bad("not a JSON-RPC response to this request")
                await self.checked_listing(m, server, caller, modern, pin, bad)
                m["id"] = rid
                try:
                    data = _encode(m)
                except ValueError:
                    raise bad("a number out of range") from None
            else:
                raise bad(f"content type {ctype[:40]!r}")
        except UpstreamError as e:
            await self.upstream_failed(send, server, rid, e, tool_call=False)
            return
        await self.send_upstream_bytes(send, 200, headers, data)

    async def checked_listing(self, m: dict, server, caller, modern: bool, pin, bad) -> None:
        """Validate one tools/list response in place (raising `bad(...)`), then filter it.
        An error response passes as it is; a result must have `tools`, an array; entries that
        name no callable tool (not an object, no name of 1-128 characters) are dropped."""
        if "error" in m:
            if "result" in m or not isinstance(m["error"], dict):
                raise bad("a malformed error")
            return
        result = m.get("result")
        if not isinstance(result, dict):
            raise bad("the result is not an object")
        tools = result.get("tools")
        if not isinstance(tools, list):
            raise bad("`tools` is not an array")
        cursor = result.get("nextCursor")
        if cursor is not None and not isinstance(cursor, str):
            raise bad("`nextCursor` is not a string")
        good = [t for t in tools if _callable_tool(t)]
        if len(good) != len(tools):
            self.rt.log.warning("upstream_tools_dropped", server=server.id, dropped=len(tools) - len(good),
                                why="not an object with a name of 1 to 128 characters")
        result["tools"] = good
        await self.filter_tools(m, server, caller, modern, pin)

    async def filter_tools(self, m: dict, server, caller, modern: bool, pin=None) -> None:
        result = m["result"]
        tools = result["tools"]
        if pin is not None:
            tools = self.pin_filter(server, pin, tools, result.get("nextCursor"))
        names = [t["name"] for t in tools]
        visible = await self.rt.visible(server, caller, names)
        result["tools"] = [t for t in tools if t["name"] in visible]
        if modern or "ttlMs" in result or "cacheScope" in result:
            result["cacheScope"] = "private"
            result.setdefault("ttlMs", 0)

    # ---- catalog pinning (pinning.py) ------------------------------------------------------
    def pin_filter(self, server, pin, tools: list, next_cursor) -> list:
        """Record a listed page and drop the tools that do not match the pin (all of them
        when no pin is in force: nothing could be called)."""
        st, scope, cursor = pin
        rt = self.rt
        acc = rt.listings.observe_page(scope, cursor, tools, next_cursor)
        if st is None:  # typed calls only: the listing is recorded, nothing is removed
            return tools
        cur = st.current
        if cur is None:
            rt.log.warning("catalog_not_loaded", server=server.id, path=st.path, error=st.error, removed=len(tools))
            return []
        try:
            drifted = verdict_of(cur.catalog, acc)
        except Exception as e:  # fail closed: nothing unchecked is listed
            rt.log.error("catalog_check_failed", server=server.id, error=f"{type(e).__name__}: {e}")
            return []
        if not drifted:
            return tools
        self.note_drift(server, cur, acc, drifted)
        return [t for t in tools if not (isinstance(t, dict) and t.get("name") in drifted)]

    def note_drift(self, server, cur, tools, drifted: dict) -> None:
        """Log and count each drifted definition once (per server, tool, live and pinned version)."""
        rt = self.rt
        for name, reason in drifted.items():
            live = _live_hash(tools, name)
            if not rt.listings.first_report((server.id, name, live, cur.sha256)):
                continue
            kind = drift_kind(cur.catalog, tools, name)
            pinned = cur.catalog.tools.get(name)
            rt.metrics.inc("mcpp_catalog_drift_total", (("server", server.id), ("kind", kind)))
            rt.log.warning("catalog_drift", server=server.id, tool=name, kind=kind, reason=reason, catalog=server.catalog,
                           pinned=pinned.hash if pinned else None, live=live)

    async def listing_for(self, server, name: str, upstream, fwd, params, modern: bool, purpose: str):
        """The upstream's current tool listing for this call's scope (server, upstream
        session): the one the gateway has if it is younger than `catalog_max_age` (and lists
        the tool, or was taken within the last REFETCH_UNLISTED_AFTER seconds), else a fresh
        one the gateway lists itself (every page; concurrent calls share one). Raises
        FetchFailed (or anything else) when none can be had."""
        rt = self.rt
        scope = (server.id, _session_of(fwd))
        listing = rt.listings.get(scope)
        age = time.monotonic() - listing.at if listing is not None else float("inf")
        if listing is None or age > server.catalog_max_age or (name not in listing.names and age > REFETCH_UNLISTED_AFTER):
            timeout = rt.config.upstream_timeout
            try:
                listing = await rt.listings.fetch(scope, lambda: fetch_tools(upstream, fwd, params, modern, timeout))
            except Exception:
                rt.metrics.inc("mcpp_catalog_listings_total", (("server", server.id), ("result", "failed")))
                raise
            rt.metrics.inc("mcpp_catalog_listings_total", (("server", server.id), ("result", "ok")))
            if purpose == "pin" or server.catalog:
                cur = rt.pin_for(server).current
                if cur is not None:
                    drifted = rt.listings.verdict(cur, listing)
                    if drifted:
                        self.note_drift(server, cur, listing.tools, drifted)
        return listing

    async def pin_check(self, server, name: str, upstream, fwd, params, modern: bool, seen=None) -> dict | None:
        """None when the tool matches the pinned catalog; else {kind, message, reason, pinned?, live?}.
        Fail closed: no pin in force, no listing to be had, or a tool the upstream does not list refuse.
        `seen`: the pin the call's arguments were checked against (`schema_check`); if the
        tool's pinned definition is another now (re-pinned meanwhile: a validator compiled, an
        approval waited), the call was checked against a schema no longer in force, and is
        refused rather than forwarded (hostile review 31, H31-6)."""
        rt = self.rt
        st = rt.pin_for(server)
        cur = st.current
        if cur is not seen and _pinned_hash(cur, name) != _pinned_hash(seen, name):
            return {"kind": "repinned", "reason": "the pinned catalog changed while the call was checked", "message": (
                f"Tool {name}'s pinned definition changed while this call was being checked; it was not forwarded. "
                "Call it again.")}
        if cur is None:
            why = st.error or "not loaded"
            return {"kind": "no_catalog", "reason": why, "message": (
                f"Tool {name} cannot be checked: the pinned catalog {Path(st.path).name} is not loaded. "
                "No call to this server is forwarded until it loads.")}
        try:
            listing = await self.listing_for(server, name, upstream, fwd, params, modern, "pin")
        except Exception as e:  # FetchFailed, or anything else: the tool cannot be checked, so no call
            why = str(e) if isinstance(e, FetchFailed) else f"{type(e).__name__}: {e}"
            rt.log.warning("catalog_listing_failed", server=server.id, tool=name, error=why)
            return {"kind": "unverifiable", "reason": why, "rejection": getattr(e, "rejection", None), "message": (
                f"Tool {name} cannot be checked against the pinned catalog: the upstream's tool list could not be "
                f"obtained ({why}). The call was not forwarded.")}
        drifted = rt.listings.verdict(cur, listing)
        reason = drifted.get(name)
        if reason is not None:
            pinned = cur.catalog.tools.get(name)
            return {"kind": drift_kind(cur.catalog, listing.tools, name), "reason": reason,
                    "pinned": pinned.hash if pinned else None, "live": _live_hash(listing.tools, name),
                    "message": (f"Tool {name} does not match the pinned catalog: {reason}. Calls to it are refused until "
                                "an operator reviews the change and pins the catalog again.")}
        if name not in listing.names:
            return {"kind": "unlisted", "reason": f"the upstream does not list tool {name!r}", "message": (
                f"Tool {name} is not in the upstream's tool list, so it cannot be checked against the pinned catalog; "
                "the call was not forwarded.")}
        return None

    # ---- typed calls (schemas.py) ----------------------------------------------------------
    async def schema_check(self, server, name: str, args, upstream, fwd, params, modern: bool,
                           large: bool = False, pin=None) -> tuple[dict | None, Any]:
        """(None, the arguments with the tool's declared defaults filled in) when the call's
        arguments conform to the tool's declared inputSchema (schemas.admit); else
        ({kind, message, pointer, reason, rejection?}, args). The schema is the pinned catalog's when
        the server pins one (a tool the pin lacks is left to the pin check, which refuses
        it), otherwise the upstream's own listing's. Fail closed: a tool the upstream does
        not list, a listing that cannot be had, or a schema that cannot be used refuse.
        What a tool's definition means for checking (a validator, or why there is none) is
        worked out once per pin or listing version, not per call. `large`: the call is big
        enough that checking it takes long (a valid 1 MB array of strings takes 0.7 s of
        jsonschema), so it is checked in a worker thread, not on the event loop that serves
        every other request; a small call (nearly all) is checked inline, where a thread's
        hand-off would cost more than the check."""
        rt = self.rt
        if server.catalog:
            cur = pin  # (the pin in force when the call came in: `call_tool`'s, for the pin check too)
            tool = cur.catalog.tools.get(name) if cur is not None else None
            if tool is None:
                return None, args  # refused by the pin check (never forwarded), with the pin's reason
            checker = cur.checkers.get(name)
            if checker is None or isinstance(checker, asyncio.Future):
                defs = [{"inputSchema": tool.input_schema}]
                checker = await _memo_off_loop(cur.checkers, name, lambda: self._checker(defs, name), _schema_size(defs),
                                               rt.config.upstream_timeout)
        else:
            try:
                listing = await self.listing_for(server, name, upstream, fwd, params, modern, "schema")
            except Exception as e:
                why = str(e) if isinstance(e, FetchFailed) else f"{type(e).__name__}: {e}"
                rt.log.warning("schema_listing_failed", server=server.id, tool=name, error=why)
                return {"kind": "unverifiable", "pointer": schema_pointer(name), "reason": why, "rejection": getattr(e, "rejection", None),
                        "message": (f"Tool {name} cannot be checked: the upstream's tool list could not be obtained ({why}). "
                                    "The call was not forwarded.")}, args
            checker = listing.checkers.get(name)
            if checker is None or isinstance(checker, asyncio.Future):
                defs = listing.definitions(name)
                if defs:  # memoised for listed tools only: the names callers send are not cache keys
                    checker = await _memo_off_loop(listing.checkers, name, lambda: self._checker(defs, name),
                                                   _schema_size(defs), rt.config.upstream_timeout)
                else:
                    checker = self._checker(defs, name)  # (nothing to compile: "not offered")
        if large:
            return await asyncio.to_thread(admit, checker, name, args)
        return admit(checker, name, args)

    def _checker(self, defs: list[dict], name: str):
        """A validator for the tool's calls, or (kind, reason, message) saying why there is none."""
        return tool_checker(self.rt.schemas, defs, name)

    # ---- forwarding ----------------------------------------------------------------------
    def response_headers(self, resp, server, caller, caps=None) -> list[tuple[bytes, bytes]]:
        out = []
        for k, v in resp.headers:
            if (k in PASS_RESPONSE_HEADERS or k == "mcp-session-id") and _CONTROL.search(v):
                # a value HTTP cannot carry: the client's head would be refused whole, and
                # the client left with no answer at all (hostile review 35, H35-2)
                self.rt.log.warning("upstream_header_dropped", server=server.id, header=k, why="a control character")
                continue
            if k in PASS_RESPONSE_HEADERS:
                out.append((k.encode(), v.encode("latin-1")))
            elif k == "mcp-session-id":
                out.append((b"mcp-session-id", self.rt.sessions.wrap(v, caller.key, server.id).encode()))
                if caps is not None:  # an initialize: what this session's client can be asked (elicitation)
                    track_session_caps(self.rt, server.id, v, caps)
        return out

    async def send_upstream_bytes(self, send, status, headers, data: bytes) -> None:
        """An upstream's whole answer, relayed: written through the gateway's stop (the
        answer was settled; `stopping.through_stop`)."""
        headers = [h for h in headers if h[0] != b"content-length"] + [(b"content-length", str(len(data)).encode())]
        await through_stop(self.rt, send, {"type": "http.response.start", "status": status, "headers": headers})
        await through_stop(self.rt, send, {"type": "http.response.body", "body": data})

    async def forward(self, receive, send, server, caller, upstream, method, fwd, body, msg,
                      watch_id=None, modern=False, settle=None, gid: int | None = None) -> str:
        """Relay one exchange. With `watch_id` (a tools/call), return its audit outcome, which
        says whether the upstream may have executed it (see OUTCOME_COUNTED):
        forwarded | input_required | upstream_error | not_executed | rejected | client_disconnected.
        `settle(outcome)` is called once, as soon as the outcome is known and before the
        client reads the answer, so a refund is in place before the client can call again.
        `gid`: the id a request went upstream with (in `body`; `msg` has the client's). Its
        answer must carry it, and is relayed with the client's id instead; an answer with
        another id is not relayed. (None: a notification, a client's answer, a GET or a
        DELETE, which have no answer to map.)"""
        rt = self.rt
        rid = msg.get("id") if isinstance(msg, dict) else None
        timeout = rt.config.upstream_timeout
        tool_call = watch_id is not None
        state = {"outcome": None, "settle": settle}
        try:
            resp = await upstream.request(method, fwd, body, timeout)
        except UpstreamError as e:
            return await self.upstream_failed(send, server, rid, e, tool_call, modern, state=state,
                                              outcome="upstream_error" if e.sent else "not_executed")
        status = resp.status
        if 300 <= status < 400:  # never let a client follow the upstream elsewhere (with its token)
            resp.release()
            err = UpstreamError(f"the upstream answered with a redirect (HTTP {status}), which the gateway does not follow", "protocol", True)
            return await self.upstream_failed(send, server, rid, err, tool_call, modern, state=state, outcome="rejected")
        if status in (401, 403, 407):  # the gateway's own upstream credential was refused
            resp.release()
            rt.metrics.inc("mcpp_upstream_errors_total", (("server", server.id), ("kind", f"http_{status}")))
            rt.log.error("upstream_auth_failed", server=server.id, status=status)
            err = UpstreamError(f"the upstream refused the gateway's credential (HTTP {status})", "auth", True)
            return await self.upstream_failed(send, server, rid, err, tool_call, modern, state=state, outcome="rejected")
        caps = None
        if isinstance(msg, dict) and msg.get("method") == "initialize" and isinstance(msg.get("params"), dict):
            caps = msg["params"].get("capabilities")
        headers = self.response_headers(resp, server, caller, caps if isinstance(caps, dict) else None)
        ctype = (resp.header("content-type") or "").lower()
        streaming = ctype.startswith("text/event-stream") and status == 200
        if not streaming:
            try:
                data = await resp.read(timeout)
            except UpstreamError as e:
                return await self.upstream_failed(send, server, rid, e, tool_call, modern, state=state, outcome="upstream_error")
            if not tool_call:
                if gid is not None:
                    data = self.mapped_answer(resp, rid, gid, status, ctype, data)
                    if data is None:
                        bad = UpstreamError("the upstream's answer is not a JSON-RPC response to this request", "protocol", True)
                        return await self.upstream_failed(send, server, rid, bad, False)
                elif _is_answer(data):
                    # a notification, a client's answer, a GET or a DELETE is answered by no
                    # JSON-RPC response: this one is another request's, late (hostile17 F1)
                    discard(resp)
                    bad = UpstreamError("the upstream sent an answer to another request", "protocol", True)
                    return await self.upstream_failed(send, server, rid, bad, False)
                await self.send_upstream_bytes(send, status, headers, data)
                return "forwarded"
            assert gid is not None  # (a tools/call always has one)
            return await self.tool_reply(send, server, rid, status, headers, ctype, data, modern, state, gid, resp)
        # an event stream: pass every byte through as it comes. A client that goes away
        # closes the upstream stream too (in 2026-07-28 that is how a call is cancelled).
        start = {"type": "http.response.start", "status": status, "headers": headers}
        if gid is not None and rt.config.json_answer_wait > 0 and _accepts_json(fwd):
            # a stream whose first message is the answer goes out as JSON
            send = held = _HeadWaits(send, start, rt.config.json_answer_wait)
        else:
            held = None
            await send(start)
        chunk_timeout = None if method == "GET" else timeout
        # with a pinned catalog or typed calls, the stream is watched for tools/list_changed
        pin_scope = (server.id, _session_of(fwd)) if server.catalog or server.enforce_input_schema else None
        # a notification's or a client's answer's POST is answered by no response: one in its
        # stream is another request's, late, and is dropped (hostile review 33, H33-5)
        unanswered = method == "POST" and gid is None
        # the relay runs in this task; a watcher task stops it (by cancelling this task) if
        # the client goes away. (One task per stream, not a relay task and a watcher raced
        # with asyncio.wait: each task and wait is paid on every streamed call.)
        me = asyncio.current_task()
        assert me is not None
        disconnected = asyncio.Event()
        # a 2025 session's (or a stdio child's) call goes on without its client: `_abandoned`
        gone = (lambda: self._abandoned(upstream, fwd, gid, state, me)) if tool_call and not modern else None
        watcher = asyncio.get_running_loop().create_task(_watch_disconnect(receive, disconnected, me, gone))
        stopped = False  # cancelled by the gateway stopping, this call unanswered
        cut = False  # the relay was cancelled by the gateway stopping (`shutdown_timeout` passed)
        if method == "GET":
            self._listening.add(me)
        try:
            await self._pipe(send, resp, chunk_timeout, state, server, watch_id, modern, pin_scope, gid, rid, unanswered)
        except asyncio.CancelledError:
            # the watcher's cancel is taken back; any other (the gateway stopping) goes on
            if not disconnected.is_set() or me.uncancel() > 0:
                if tool_call and state["outcome"] is None:
                    _settle(state, "gateway_stopped")  # before the answer: it may still run upstream
                    stopped = True
                if not rt.stopping:
                    raise
                # `shutdown_timeout` has passed: the stream is ended below, with the call's
                # error result if it had no answer, rather than cut (a traceback in the log)
                cut = True
        except Exception as e:  # the relay broke: say so, the answer is settled below
            rt.log.warning("stream_relay_failed", server=server.id, error=f"{type(e).__name__}: {e}")
        finally:
            # (no await between the relay's end and this: the watcher cannot cancel this
            # task after the relay is over)
            watcher.cancel()
            if held is not None:
                held.close()
            self._listening.discard(me)
            deadline = state.get("deadline")
            if deadline is not None:
                deadline.cancel()
            rest = state.get("rest")
            if rest is not None:
                # answered: read the upstream's end in the background, so the connection goes
                # back to the pool. (Not in this task: the server counts a request as open
                # until its task ends, and an upstream that keeps an answered stream open
                # would hold a connection slot for the drain's whole timeout.)
                task = asyncio.get_running_loop().create_task(_drain(rest, rt.config.max_response_bytes))
                _DRAINS.add(task)
                task.add_done_callback(_DRAINS.discard)
            else:
                resp.release()
        return await self._end_forward(send, state, cut, stopped, disconnected.is_set(), tool_call, gid, rid, watch_id,
                                       modern)

    async def _end_forward(self, send, state, cut: bool, stopped: bool, disconnected: bool, tool_call: bool, gid, rid,
                           watch_id, modern: bool) -> str:
        """End a relayed event stream (`forward`): with the answer it had; a cut by the
        gateway's stop ended with the stop's answer; a stream the upstream ended without the
        request's answer with the gateway's answer (`_end`, whose write a stop does not cut:
        the client gets the answer the audit row and the limit count say — hostile reviews
        34, 37). Returns the call's audit outcome."""
        if cut and not state.get("ended") and not disconnected:
            if stopped:
                await _end(self.rt, send, state, rpc.tool_error_result(watch_id, STOPPED_TEXT, modern))
            elif gid is not None and not tool_call:  # a request unanswered: its answer says why
                await _end(self.rt, send, state, rpc.error(rid, rpc.INTERNAL_ERROR, "the gateway is stopping"))
            else:
                await _end(self.rt, send, state, None, b"")
            return state["outcome"] or "forwarded"
        # (the upstream ended the stream, the gateway stopping or not: hostile review 37, H37-1)
        if state.get("ended"):
            return state["outcome"] or "forwarded"
        if disconnected:
            # the call may still run upstream: keep its reservation (count it), say why
            if tool_call and state["outcome"] is None:
                _settle(state, "client_disconnected")
            return state["outcome"] or "forwarded"
        if tool_call and state["outcome"] is None:
            # the stream ended without this call's answer: it may have run
            _settle(state, "upstream_error")
            text = f"{rpc.ERROR_PREFIX}The upstream ended its stream without answering; the call may or may not have run."
            await _end(self.rt, send, state, rpc.tool_error_result(watch_id, text, modern))
        elif gid is not None and not tool_call:
            # a request's stream ended without its answer: the client is told, not left waiting
            why = "upstream unavailable: the upstream ended its stream without answering"
            await _end(self.rt, send, state, rpc.error(rid, rpc.UPSTREAM_UNAVAILABLE, why))
        else:
            await _end(self.rt, send, state, None, b"")
        return state["outcome"] or "forwarded"

    def _abandoned(self, upstream, fwd, gid, state, relay: asyncio.Task) -> None:
        """The client of a streamed tools/call in a 2025 session (or to a stdio child) went
        away before its answer. The upstream does not stop on its own there — only a
        `notifications/cancelled` stops a request in those protocol versions (in 2026-07-28
        closing the stream does: there the relay is cancelled at once) — and the call kept
        running upstream while its caller's request slot was given back: one grant ran any
        number of calls at once past `max_requests_per_caller` by hanging up each after it
        started (hostile review 31, H31-1). So the call is settled as the client's leaving
        (counted: it may run), the upstream is told to cancel it, and the relay goes on —
        to no one — until the upstream answers or ends the stream, for at most
        `upstream_timeout` more: until then the request, and its slot, stay in progress."""
        _settle(state, "client_disconnected")
        loop = asyncio.get_running_loop()
        state["deadline"] = loop.call_later(self.rt.config.upstream_timeout, relay.cancel)
        task = loop.create_task(_cancel_upstream(upstream, fwd, gid, self.rt.config.connect_timeout))
        _DRAINS.add(task)
        task.add_done_callback(_DRAINS.discard)

    async def upstream_failed(self, send, server, rid, e: UpstreamError, tool_call: bool, modern: bool = False,
                              state=None, outcome: str = "upstream_error") -> str:
        """Answer for an upstream that failed: for a tools/call (settled as `outcome` first),
        an `isError` result saying whether the call was not executed or may have run;
        otherwise HTTP 502 with JSON-RPC -32002. Returns the outcome."""
        rt = self.rt
        rt.metrics.inc("mcpp_upstream_errors_total", (("server", server.id), ("kind", e.kind)))
        rt.log.warning("upstream_error", server=server.id, kind=e.kind, error=str(e))
        if tool_call:
            _settle(state, outcome)
            fate = "may or may not have run" if OUTCOME_COUNTED[outcome] else "was not executed"
            text = f"{rpc.ERROR_PREFIX}The upstream server failed ({e}); the call {fate}."
            await _respond(send, 200, rpc.dumps(rpc.tool_error_result(rid, text, modern)), settled=rt)
        else:
            await _respond(send, 502, rpc.dumps(rpc.error(rid, rpc.UPSTREAM_UNAVAILABLE, f"upstream unavailable: {e}")), settled=rt)
        return outcome

    async def tool_reply(self, send, server, rid, status: int, headers, ctype: str, data: bytes, modern: bool, state,
                         gid: int, resp) -> str:
        """Check a whole (non-stream) answer to a tools/call (sent upstream as `gid`) before
        relaying it with the client's id (`rid`), and settle what it means for the call (its
        audit outcome) before the client reads it. An answer not taken is an upstream error,
        and its connection is not reused."""
        if status != 200:
            err = _jsonrpc_error(data, ctype) if 400 <= status < 500 else None
            if err is not None and not _own_error(err, gid, rid):
                discard(resp)  # another request's error: this call's answer may still come, to nobody
                e = UpstreamError(f"the upstream answered HTTP {status} about another request", "protocol", True)
                return await self.upstream_failed(send, server, rid, e, True, modern, state=state, outcome="upstream_error")
            if err is not None:  # refused before it ran (protocol version, unknown session): relayed, clients act on it
                _settle(state, "rejected")
                headers = [h for h in headers if h[0] != b"content-type"] + [(b"content-type", JSON)]
                await self.send_upstream_bytes(send, status, headers, rpc.dumps(err))
                return "rejected"
            e = UpstreamError(f"the upstream answered HTTP {status}", "protocol", True)
            return await self.upstream_failed(send, server, rid, e, True, modern, state=state,
                                              outcome="rejected" if 400 <= status < 500 else "upstream_error")
        m = rpc.parse_message(data.decode("utf-8", "replace")) if ctype.startswith("application/json") else None
        outcome = _outcome(m, gid)
        if outcome == "unreadable":
            discard(resp)
            e = UpstreamError("the upstream's answer is not a JSON-RPC response to this call", "protocol", True)
            return await self.upstream_failed(send, server, rid, e, True, modern, state=state, outcome="upstream_error")
        assert isinstance(m, dict)  # (_outcome read it as an answer)
        m["id"] = rid
        try:
            data = _encode(m)
        except ValueError:  # a number JSON cannot write: relayed, it would be no JSON at all
            e = UpstreamError("the upstream's answer has a number out of range", "protocol", True)
            return await self.upstream_failed(send, server, rid, e, True, modern, state=state, outcome="upstream_error")
        _settle(state, outcome)
        await self.send_upstream_bytes(send, 200, headers, data)  # checked above: relayed with the client's id
        return outcome

    @staticmethod
    def mapped_answer(resp, rid, gid: int, status: int, ctype: str, data: bytes) -> bytes | None:
        """A whole answer to a request other than tools/call and tools/list, sent upstream
        as `gid`, with the client's id (`rid`) put back; None when it is not this request's
        answer (its connection is then not reused). HTTP 200 must be a JSON-RPC response
        with the gateway's id. Another status may carry a JSON-RPC error about this request
        (its id, or null when the request could not be read) or a body that is no JSON-RPC
        message (relayed as it came); an error naming another id is not this request's.
        (Called with no `await` since the body was read: see Response.discard.)"""
        if not data:
            return data if status != 200 else None
        m = rpc.parse_message(data.decode("utf-8", "replace")) if ctype.startswith("application/json") else None
        if not _is_response(m):
            if status != 200:
                return data  # an HTTP error page: no answer to anyone's request
            discard(resp)
            return None
        aid = m.get("id")
        if _same_id(aid, gid):
            m["id"] = rid
            try:
                return _encode(m)
            except ValueError:  # a number JSON cannot write
                return None
        if aid is None and status != 200 and "error" in m:
            return data
        discard(resp)
        return None

    async def _pipe(self, send, resp, chunk_timeout, state, server, watch_id, modern, pin_scope=None,
                    gid: int | None = None, rid=None, unanswered: bool = False) -> None:
        """Relay an upstream's event stream. `gid`: the id the request went upstream with
        (a tools/call's: `watch_id` is then its client id); the response that carries it is
        relayed with the client's id (`rid`) and ends the stream; a response with another
        id is dropped, as is an event that is no JSON-RPC message. `unanswered`: the stream
        answers a message that has no answer (a notification, a client's answer), so every
        response in it is dropped. The upstream's own requests and notifications pass as
        they came."""
        rt = self.rt
        watched = gid is not None or pin_scope is not None or unanswered
        # a watched stream (a request's, or one that may announce tools/list_changed) is
        # relayed event by event, each one checked: an event whose data is not a JSON-RPC
        # message, or half an event, never reaches the client
        parser = rpc.SSEParser(rt.config.max_response_bytes, comments=True) if watched else None
        dropped = foreign = 0
        chunks = resp.chunks(chunk_timeout)
        more = True
        try:
            while more:
                try:
                    chunk: bytes | None = await chunks.__anext__()
                except StopAsyncIteration:
                    # the stream's end: its last line and event count as ended (SSEParser.end)
                    if parser is None:
                        break
                    chunk, more = None, False
                if parser is None:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    continue
                try:
                    events = parser.feed(chunk) if chunk is not None else parser.end()
                except rpc.EventTooLarge as e:
                    raise UpstreamError(str(e), "protocol", True) from None
                out = []
                answered = False
                for ev in events:
                    if "comment" in ev:  # keep-alives keep the client's connection alive too
                        out.append(rpc.render_event(ev))
                        continue
                    m = rpc.event_message(ev)
                    if ev["data"] and not (isinstance(m, dict) and m.get("jsonrpc") == "2.0"):
                        dropped += 1
                        continue
                    if m is not None:
                        if (gid is not None or unanswered) and "method" not in m:  # a response: this request's, or dropped
                            if gid is None or not _same_id(m.get("id"), gid):
                                foreign += 1
                                discard(resp)  # out of step: the connection is not reused
                                continue
                            m["id"] = rid
                            try:
                                rendered = _render_answer(ev, m) if _outcome(m, rid) != "unreadable" or watch_id is None else None
                            except ValueError:  # a number JSON cannot write
                                rendered = None
                            if watch_id is not None:
                                _settle(state, "upstream_error" if rendered is None else _outcome(m, rid))
                            if rendered is None:
                                # not a readable answer (neither or both of result and error, a
                                # result that is no object, a number out of range): never relayed
                                text = (f"{rpc.ERROR_PREFIX}The upstream's answer is not a JSON-RPC response to this "
                                        "request; the call may or may not have run.")
                                m = (rpc.tool_error_result(rid, text, modern) if watch_id is not None
                                     else rpc.error(rid, rpc.UPSTREAM_UNAVAILABLE, text))
                                rendered = rpc.sse_event(m)
                            if not out:
                                # the stream's first message is its answer: one JSON body, if
                                # the head still waits
                                await _end(self.rt, send, state, m, rendered)
                                state["rest"] = chunks
                                return
                            out.append(rendered)
                            # the answer ends the request's stream: nothing after it (a second
                            # answer for the same id, say) reaches the client, whose call
                            # was settled by this one
                            answered = True
                            break
                        elif pin_scope is not None and m.get("method") == "notifications/tools/list_changed":
                            rt.listings.invalidate(pin_scope)
                            rt.log.info("catalog_relist_due" if server.catalog else "tools_relist_due", server=server.id,
                                        why="notifications/tools/list_changed")
                    out.append(rpc.render_event(ev))
                if answered:
                    # the answer ends a request's stream (the server closes it next): end the
                    # client's now, in the same write, rather than wait for the upstream's end
                    await _end(self.rt, send, state, None, b"".join(out))
                    state["rest"] = chunks
                    return
                if out:
                    await send({"type": "http.response.body", "body": b"".join(out), "more_body": True})
        except UpstreamError as e:
            rt.metrics.inc("mcpp_upstream_errors_total", (("server", server.id), ("kind", e.kind)))
            rt.log.warning("upstream_error", server=server.id, kind=e.kind, error=str(e), during="stream")
            # (a request's stream is watched: an answer ended it, so this one has none yet)
            if watch_id is not None and state["outcome"] is None:
                _settle(state, "upstream_error")
                text = f"{rpc.ERROR_PREFIX}The upstream server failed mid-call ({e}); the call may or may not have run."
                await _end(self.rt, send, state, rpc.tool_error_result(watch_id, text, modern))
            elif gid is not None and watch_id is None:  # a request's answer says why, as upstream_failed's does
                await _end(self.rt, send, state, rpc.error(rid, rpc.UPSTREAM_UNAVAILABLE, f"upstream unavailable: {e}"))
        finally:
            if dropped:
                rt.log.warning("upstream_events_dropped", server=server.id, dropped=dropped, why="not a JSON-RPC message event")
            if foreign:
                rt.log.warning("upstream_events_dropped", server=server.id, dropped=foreign, why="an answer to another request")


UNWRITABLE = "the request cannot be forwarded as read: a number out of range, or nested too deep"
# the scope key of a request's JSON-RPC id, once its body is read and the id found valid: the
# 503 of a request cancelled at the shutdown timeout names it (`GatewayApp.__call__`)
RPC_ID = "mcpp.rpc_id"
_log = logging.getLogger("mcpp.gateway")
_DRAINS: set = set()  # background reads of answered upstream streams (kept referenced)


async def _drain(chunks, budget: int, timeout: float = 5.0) -> None:
    """Read what is left of an answered upstream stream so its connection can be reused;
    a stream that does not end soon (or keeps sending) is closed instead."""
    try:
        async with asyncio.timeout(timeout):
            async for c in chunks:
                budget -= len(c)
                if budget < 0:
                    break
    except (TimeoutError, UpstreamError, asyncio.CancelledError):
        pass  # the stream did not end in time, broke off, or the gateway is stopping: the connection is closed
    except Exception:
        _log.exception("draining an answered upstream stream failed")
    finally:
        await chunks.aclose()  # releases the connection: to the pool if the body ended


# ---- request ids --------------------------------------------------------------------------
# The ids requests go upstream with: integers from one counter per gateway process, starting
# at a random point below 2**52. Integers, because every MCP SDK takes them (a JSON-RPC id is
# a string or a number; the TypeScript SDK reads numbers as doubles, which are exact below
# 2**53, and the counter would need 2**52 requests to get there), they are short on the wire
# and compared with one `==`; and the gateway's own requests upstream (pinning.py's listings)
# use string ids, so they can never be taken for each other. Unique within the process, so
# a late answer to one request can never be taken for another's answer, whoever sent it and
# whatever id its client chose; the random start makes a restarted gateway, or a second
# replica in front of the same upstream session, unlikely to reuse one either.
_UPSTREAM_IDS = itertools.count(secrets.randbelow(1 << 52))


def upstream_id() -> int:
    """A new id for a request to an upstream (see above)."""
    return next(_UPSTREAM_IDS)


def _is_response(m) -> TypeGuard[dict]:
    """Whether a parsed message is a JSON-RPC response (a result or an error, no method)."""
    return isinstance(m, dict) and "method" not in m and ("result" in m or "error" in m)


def _is_answer(data: bytes) -> bool:
    """Whether a whole upstream body is, or holds, a JSON-RPC response to some request:
    one message or a batch array, whatever the content type says (a client may read a
    `text/plain` body as JSON; hostile review 33, H33-5), read the way a client's JSON
    reader reads bytes: with a byte-order mark, or as UTF-16 or UTF-32 (`json.loads` and
    `Response.json()` do; hostile review 35, H35-1)."""
    if not data:
        return False
    try:
        text = data.decode(json.detect_encoding(data), "surrogatepass")
    except (UnicodeDecodeError, LookupError):  # (no JSON reader reads it either)
        return False
    text = text.lstrip("\ufeff \t\r\n")
    if text[:1] not in ("{", "["):
        return False
    m = rpc.parse_message(text)
    # (an *error* about the message itself, which could not be read, has id null; a result
    # with id null answers no message a notification could be: hostile review 31, H31-8)
    return any(_is_response(x) and (x.get("id") is not None or "error" not in x) for x in (m if isinstance(m, list) else [m]))


def _valid_id(value) -> bool:
    """A JSON-RPC id: a string, a number (not a boolean) or null, that the gateway can
    write back in its answers: a finite number (`NaN` and `1e400` read as numbers no JSON
    can carry) and Unicode text (not a lone surrogate). Such an id made every answer to the
    request unwritable or invalid JSON, the stop's 503 a plain-text 500 (hostile review 22,
    F3 and F5), while the call itself was forwarded and ran."""
    t = type(value)
    if value is None or t is int:
        return True
    if t is float:
        return math.isfinite(value)
    if t is str:
        return is_text(value)
    return False


def _same_id(value, rid) -> bool:
    """A JSON-RPC id equal to `rid` in value and in JSON type (1.0 is not 1, true is not 1)."""
    return value == rid and type(value) is type(rid)


def _own_error(err: dict, gid: int, rid) -> bool:
    """Whether the JSON-RPC error of an HTTP error answer (`_jsonrpc_error`) is about the
    request sent as `gid`: it names that id (put back to the client's, `rid`), or none (null:
    the upstream could not read the request or its session). Another id is another request's."""
    eid = err.get("id")
    if eid is None:
        return True
    if _same_id(eid, gid):
        err["id"] = rid
        return True
    return False


def _encode(m) -> bytes:
    """A message the gateway re-serialises, as compact UTF-8 JSON; with a lone surrogate
    in a string (which UTF-8 cannot carry) every non-ASCII character is escaped instead, so
    the message still says what it said. ValueError for a number JSON cannot write
    (`1e400` reads as infinity): written as `Infinity` it would be no JSON at all, which a
    strict reader refuses whole (hostile17 F6), so such a message is not passed on."""
    try:
        return rpc.compact_finite(m).encode()
    except UnicodeEncodeError:
        return json.dumps(m, separators=(",", ":"), allow_nan=False).encode()


def _nesting_refusal(msg: dict, body: bytes) -> tuple[int, str] | None:
    """(code, message) for a message nested deeper than `MAX_MESSAGE_NESTING` levels, else
    None. A call whose arguments are too deep gets the refusal the API and `mcpp eval` give
    it (`TOO_DEEP`); anything else nested that deep — a `_meta`, a result, any member — is
    no message the gateway passes on (hostile review 24, F8: only `arguments` were bounded,
    and the rest was forwarded ~950 levels deep)."""
    if not message_too_deep(body):
        return None
    params = msg.get("params")
    if msg.get("method") == "tools/call" and isinstance(params, dict) and arguments_too_deep(params.get("arguments")):
        return rpc.INVALID_PARAMS, TOO_DEEP
    return rpc.INVALID_REQUEST, MESSAGE_TOO_DEEP


def _request_bytes(msg: dict, gid: int) -> bytes:
    """The client's request as the upstream gets it: with the gateway's id."""
    return _encode({**msg, "id": gid})


def _accepts_json(fwd) -> bool:
    """Whether the client's `Accept` takes an `application/json` answer (MCP's Streamable
    HTTP clients send `application/json, text/event-stream`). Its quality is that of the
    most specific range that matches it — `application/json` over `application/*` over
    `*/*` (RFC 9110 §12.5.1) —, so `application/json;q=0, */*` refuses it (hostile review
    34, H34-2); a `q` that is no number refuses too. Read from the `Accept` the upstream is
    sent (the last one, when a client sent several)."""
    rank, q = -1, 0.0
    for k, v in fwd:
        if k != "accept":
            continue
        for item in _split_outside_quotes(v, ","):
            kind, *params = _split_outside_quotes(item, ";")
            r = _JSON_RANGES.get(kind.strip().lower())
            if r is None or r < rank:
                continue
            this = 1.0
            for p in params:
                name, _, value = p.partition("=")
                if name.strip().lower() == "q":
                    try:
                        this = float(value.strip())
                    except ValueError:
                        this = 0.0
            if r > rank or this > q:
                rank, q = r, this
    return q > 0  # (False for NaN too)


_JSON_RANGES = {"application/json": 2, "application/*": 1, "*/*": 0}  # the ranges that match it, most specific highest


def _split_outside_quotes(value: str, sep: str) -> list[str]:
    """`value` split at `sep` where it is not inside a quoted string (RFC 9110 §5.6.4: a
    parameter's value may be quoted and hold commas and semicolons). One pass, linear in
    the value's length (a regular expression with backtracking, or repeated searches,
    is quadratic on an unterminated quote)."""
    if '"' not in value:
        return value.split(sep)
    out, start, quoted, i, n = [], 0, False, 0, len(value)
    while i < n:
        c = value[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == sep:
            out.append(value[start:i])
            start = i + 1
        i += 1
    out.append(value[start:])
    return out


class _HeadWaits:
    """The `send` of an answer's event stream (a POST request's, its client accepting JSON)
    whose head waits for the stream's first message, `json_answer_wait` seconds at most.
    When that message is the request's answer, the answer goes out alone as an
    `application/json` response (`answer`), which the SDK client reads to its end and so
    keeps its connection: given an event stream, it closes the response at the answer,
    before the stream's end, and the connection with it — a new TCP connection for every
    call. Anything else first (a notification, the upstream's request, a keep-alive), or
    the wait running out (a long call: a proxy between the client and the gateway may
    want the response begun within some time), starts the event stream as it came.

    The head's write is serialised (`lock`): the wait's end starts the stream from a task
    of its own while the relay reads on. A head counts as sent once its write has
    returned: a write waits while the client does not read, and a cancel there (the
    gateway stopping) leaves it unwritten, to be sent again by whatever ends the response
    (hostile review 34, H34-1)."""

    __slots__ = ("send", "start", "framing", "lock", "timer", "starter", "failed")

    def __init__(self, send, start: dict, wait: float):
        self.send, self.start = send, start
        self.framing: str | None = None  # None while the head waits; then "json" or "sse"
        self.lock = asyncio.Lock()
        self.starter: asyncio.Task | None = None
        self.failed: Exception | None = None  # what the wait's end got starting the stream
        self.timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(wait, self._wait_over)

    @property
    def waiting(self) -> bool:
        return self.framing is None

    def _wait_over(self) -> None:
        self.timer = None
        if self.framing is None:
            self.starter = asyncio.get_running_loop().create_task(self._late_stream())

    async def _late_stream(self) -> None:
        try:
            await self._stream()
        except Exception as e:  # raised again by the relay's next write, where it is handled and logged
            self.failed = e

    async def _stream(self) -> None:
        if self.failed is not None:
            raise self.failed
        async with self.lock:
            if self.framing is None:
                await self.send(self.start)
                self.framing = "sse"

    async def __call__(self, message: dict) -> None:
        if self.framing is None:
            await self._stream()
        await self.send(message)

    async def answer(self, data: bytes, event: bytes) -> None:
        """The request's answer, `data` as a JSON body or `event` in the stream, whichever
        the response has begun as (JSON if not begun)."""
        if self.failed is not None:
            raise self.failed
        if self.framing is None:
            async with self.lock:
                if self.framing is None:
                    headers = [h for h in self.start["headers"] if h[0] not in (b"content-type", b"content-length", b"x-accel-buffering")]
                    headers += [(b"content-type", JSON), (b"content-length", str(len(data)).encode())]
                    await self.send({"type": "http.response.start", "status": self.start["status"], "headers": headers})
                    self.framing = "json"
        await self.send({"type": "http.response.body", "body": data if self.framing == "json" else event, "more_body": False})

    def close(self) -> None:
        """The exchange is over: the wait's timer, and a stream start still under way, end."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.starter is not None and not self.starter.done():
            self.starter.cancel()


async def _end(rt, send, state, m: dict | None, event: bytes | None = None) -> None:
    """End a request's response with its answer `m` (the gateway's, or the upstream's
    rendered as `event`): one JSON body when the head still waits (_HeadWaits), else the
    stream's last event. With `m` None, `event` is the stream's last write (events before
    the answer went with it: no JSON then). Written through the gateway's stop
    (`stopping.through_stop`)."""
    if event is None:
        assert m is not None
        event = rpc.sse_event(m)
    if m is not None and isinstance(send, _HeadWaits):
        await through_stop(rt, send.answer, _encode(m), event)
    else:
        await through_stop(rt, send, {"type": "http.response.body", "body": event, "more_body": False})
    state["ended"] = True


def _render_answer(ev: dict, m: dict) -> bytes:
    """An event whose answer the gateway rewrote (its id), serialised again (ValueError:
    see _encode)."""
    return rpc.render_event(ev, _encode(m).decode())


class _MappedStream(Stream):
    """The stream of a 2025 session's approved call (approving.forward_into_stream), which
    forwards the call with the gateway's id `gid` and ends the stream with the upstream's
    answer or an error result built with that id: the client reads its own id `rid`. An
    answer naming any other id (forward_into_stream takes only `gid`'s, but an HTTP error
    may name another) is replaced by an error result."""

    def __init__(self, inner: Stream, gid: int, rid):
        super().__init__(inner.send, inner.rt)
        self.inner, self.gid, self.rid = inner, gid, rid
        self.started = inner.started

    async def event(self, message: dict) -> None:
        await self.inner.event(message)  # the upstream's own requests and notifications

    async def finish(self, message: dict | None = None) -> None:
        if isinstance(message, dict) and "method" not in message:
            mid = message.get("id")
            if _same_id(mid, self.gid):
                message = {**message, "id": self.rid}
            elif mid is not None:
                message = rpc.tool_error_result(self.rid, f"{rpc.ERROR_PREFIX}The upstream server answered another request; "
                                                "the call may or may not have run.", False)
        self.done = True
        await self.inner.finish(message)


def _memo(memo: dict, key, make):
    hit = memo.get(key)
    if hit is None:
        hit = memo[key] = make()
    return hit


_COMPILERS: dict[bool, ThreadPoolExecutor] = {}  # large schema? → the threads that compile such schemas
LARGE_SCHEMA_BYTES = 65536


def _schema_size(defs: list[dict]) -> int:
    """How large a tool's schemas are, written compactly (what picks its compile threads)."""
    try:
        return sum(len(json.dumps(d.get("inputSchema"), separators=(",", ":"), default=str)) for d in defs)
    except (ValueError, TypeError, RecursionError):
        return LARGE_SCHEMA_BYTES + 1


def _compiler(large: bool) -> ThreadPoolExecutor:
    pool = _COMPILERS.get(large)
    if pool is None:
        pool = _COMPILERS[large] = ThreadPoolExecutor(2, thread_name_prefix="mcpp-compile-large" if large else "mcpp-compile")
    return pool


class StillCompiling(Exception):
    """A call waited `upstream_timeout` for its tool's validator, which is still being compiled."""


async def _wait_compiled(fut: asyncio.Future, wait: float | None) -> None:
    """Wait for a compile, for at most `wait` seconds (StillCompiling), and only while the
    call's client is there (ClientGone). A compile has no bound of its own that a caller
    could rely on (its cost is the schema's, which the upstream chooses), and a call
    waiting on one held its caller's request slot with its client long gone: at
    `max_requests_per_caller = 2`, two calls whose clients gave up after 2 s kept the
    caller at 429 for the 22 s the compile took (hostile review 31, H31-7). The compile
    itself goes on for the calls after (it is never cancelled: others may wait on it)."""
    gone = CALL_GONE.get()
    deadline = None if wait is None else time.monotonic() + wait
    while not fut.done():
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise StillCompiling(f"its input schema is still being compiled after {wait:g}s")
        await asyncio.wait({fut}, timeout=COMPILE_POLL if left is None else min(COMPILE_POLL, left))
        if gone is not None and not fut.done() and gone():
            raise ClientGone("the client left while its call waited for the tool's validator")


COMPILE_POLL = 0.25  # seconds between looks at a waiting call's client


async def _memo_off_loop(memo: dict, key, make, size: int = 0, wait: float | None = None):
    """`memo[key]`, made by `make()` in a worker thread the first time, once however many
    requests ask meanwhile (they wait for the same future). A tool's validator is compiled
    on its first call: for a large schema that is seconds of jsonschema's metaschema check,
    which ran on the event loop and stalled every other request, `/healthz` included (22.6 s
    for a 1.3 MB schema: hostile review 28, F4). Schemas over LARGE_SCHEMA_BYTES (`size`)
    compile in threads of their own, and neither kind in asyncio's default threads (which
    check large calls): eight first calls to large-schema tools kept a small tool's first
    call waiting 15.3 s behind them (hostile review 30, G2). What fails is not remembered.
    `wait`: how long this call waits for it (`_wait_compiled`)."""
    hit = memo.get(key)
    if hit is None:
        pool = _compiler(size > LARGE_SCHEMA_BYTES)
        hit = memo[key] = asyncio.get_running_loop().run_in_executor(pool, make)
    if not isinstance(hit, asyncio.Future):
        return hit
    if not hit.done():
        await _wait_compiled(hit, wait)
    try:
        value = hit.result()
    except Exception:
        if memo.get(key) is hit:
            del memo[key]
        raise
    if memo.get(key) is hit:
        memo[key] = value
    return value


def _settle(state, outcome: str) -> None:
    """Record a tools/call's outcome once, and run its settlement (refund, audit) then."""
    if state is None or state["outcome"] is not None:
        return
    state["outcome"] = outcome
    settle = state.get("settle")
    if settle is not None:
        settle(outcome)


def _client_gone(receive) -> bool:
    """Whether the client's connection has closed, as far as the server knows now: uvicorn's
    request cycle (whose `receive` this is) marks it when the connection is lost. Asked, not
    waited for: a request served by anything else counts as present."""
    return getattr(getattr(receive, "__self__", None), "disconnected", False) is True


async def _watch_disconnect(receive, event: asyncio.Event, relay: asyncio.Task, gone=None) -> None:
    """Wait for the client to go away; then stop `relay` (the task relaying its stream), or
    call `gone()` instead, which decides when it stops."""
    try:
        while True:
            m = await receive()
            if m["type"] == "http.disconnect":
                break
    except Exception:  # the connection broke: gone as well
        pass
    event.set()
    if gone is None:
        relay.cancel()
    else:
        gone()


async def _cancel_upstream(upstream, fwd, gid: int, timeout: float) -> None:
    """Tell the upstream to stop the request it has under the gateway's id `gid` (best
    effort: an upstream that cannot be told still answers or ends it, or the relay stops at
    `upstream_timeout`)."""
    body = _encode({"jsonrpc": "2.0", "method": "notifications/cancelled",
                    "params": {"requestId": gid, "reason": "the client went away"}})
    try:
        resp = await upstream.request("POST", fwd, body, timeout)
        try:
            await resp.read(timeout)
        finally:
            resp.release()
    except (UpstreamError, TimeoutError, asyncio.CancelledError):
        pass
    except Exception:
        _log.exception("telling the upstream to cancel an abandoned call failed")


def _pinned_hash(pin, name: str) -> str | None:
    """The hash of tool `name` in a pin in force (None: no pin, or the tool is not in it)."""
    tool = pin.catalog.tools.get(name) if pin is not None else None
    return tool.hash if tool is not None else None


def _session_of(fwd) -> str:
    """The upstream session a request belongs to ("" for sessionless requests)."""
    for k, v in fwd:
        if k == "mcp-session-id":
            return v
    return ""


def _live_hash(tools, name: str) -> str | None:
    from .pinning import _hash_or_none

    for t in reversed(tools):
        if isinstance(t, dict) and t.get("name") == name:
            return _hash_or_none(t)
    return None


def _callable_tool(t) -> bool:
    return isinstance(t, dict) and isinstance(t.get("name"), str) and 1 <= len(t["name"]) <= MAX_TOOL_NAME


def _jsonrpc_error(data: bytes, ctype: str) -> dict | None:
    """The JSON-RPC error object of an upstream's HTTP error body, rebuilt from its parts
    (code, message, data), or None if the body is not one."""
    if not ctype.startswith("application/json"):
        return None
    m = rpc.parse_message(data.decode("utf-8", "replace"))
    err = m.get("error") if isinstance(m, dict) else None
    if not isinstance(err, dict) or type(err.get("code")) is not int or not isinstance(err.get("message"), str):
        return None
    return rpc.error(m.get("id"), err["code"], err["message"], err.get("data"))


# JSON-RPC errors that say a request was refused before it was dispatched: parse error,
# invalid request, unknown method, invalid params (MCP: unknown tool, invalid arguments),
# header mismatch and unsupported protocol version. Any other error may come from a tool
# that ran.
NOT_EXECUTED_CODES = frozenset({-32700, -32600, -32601, -32602, rpc.HEADER_MISMATCH, rpc.UNSUPPORTED_PROTOCOL_VERSION})

# audit outcome of a forwarded tools/call → whether its limit reservation is kept. Given
# back only when the upstream certainly did not execute the call (docs/gateway.md, Limits).
MAX_UNREAD_PER_CALLER = 8  # POSTs of a caller at its share read to see if they are answers (`GatewayApp._take`)
OFF_LOOP_CHECK_BYTES = 65536  # a call larger than this is checked against its schema in a worker thread
STOPPED_TEXT = f"{rpc.ERROR_PREFIX}The gateway stopped before the upstream answered; the call may or may not have run."

OUTCOME_COUNTED = {
    "forwarded": True,  # a result (an isError result too: the tool ran)
    "upstream_error": True,  # timeout, connection lost after sending, 5xx, unreadable answer, other JSON-RPC errors
    "client_disconnected": True,  # the client went away mid-stream; the upstream may still run it
    "gateway_stopped": True,  # the gateway stopped (SIGTERM) before the answer; the upstream may still run it
    "input_required": False,  # the tool asked for input before doing its work; the retry is decided again
    "not_executed": False,  # never sent (connect failed), or a JSON-RPC error in NOT_EXECUTED_CODES
    "rejected": False,  # HTTP 3xx or 4xx: the upstream refused the request
}


def _outcome(m, rid) -> str:
    """The outcome an upstream's answer to tools/call `rid` means ("unreadable" if it is not one)."""
    if not isinstance(m, dict) or not _same_id(m.get("id"), rid) or ("result" in m) == ("error" in m) or "method" in m:
        return "unreadable"
    if "error" in m:
        err = m["error"]
        code = err.get("code") if isinstance(err, dict) else None
        return "not_executed" if type(code) is int and code in NOT_EXECUTED_CODES else "upstream_error"
    result = m.get("result")
    if not isinstance(result, dict):
        return "unreadable"
    if result.get("resultType") == "input_required":
        return "input_required"
    return "forwarded"


def _same(record, token: str) -> bool:
    from .grants import token_hash

    return hmac.compare_digest(record.token_hash, token_hash(token))


def _trace_id(params, headers) -> str | None:
    """W3C trace id from `params._meta.traceparent` (2026-07-28), else the HTTP header."""
    tp = None
    if isinstance(params, dict) and isinstance(params.get("_meta"), dict):
        tp = params["_meta"].get("traceparent")
    tp = tp if isinstance(tp, str) else headers.get("traceparent")
    if isinstance(tp, str):
        parts = tp.split("-")
        if len(parts) >= 4 and len(parts[1]) == 32:
            return parts[1]
    return None


class SessionBinder:
    """`Mcp-Session-Id` seen by clients = upstream id + "." + HMAC(grant, server, upstream id).

    Every request of a session carries the id, and every answer the upstream sends may
    carry it back: the MACs of live sessions are remembered (a bounded memo, cleared when
    full) so each request costs a lookup and a constant-time compare, not an HMAC. Only
    MACs the gateway issued or verified are remembered, never a caller's guess, and only
    for ids of a sane length."""

    _MEMO_ENTRIES = 4096
    _MEMO_ID_CHARS = 256

    def __init__(self, key: bytes):
        self.key = key
        self._known: dict[tuple[str, str, str], str] = {}

    def _mac(self, inner: str, grant_id: str, server: str) -> str:
        return hmac.new(self.key, f"{grant_id}\0{server}\0{inner}".encode(), hashlib.sha256).hexdigest()[:32]

    def _remember(self, ident: tuple[str, str, str], mac: str) -> None:
        if len(ident[0]) <= self._MEMO_ID_CHARS:
            if len(self._known) >= self._MEMO_ENTRIES:
                self._known.clear()
            self._known[ident] = mac

    def wrap(self, inner: str, grant_id: str, server: str) -> str:
        ident = (inner, grant_id, server)
        mac = self._known.get(ident)
        if mac is None:
            mac = self._mac(inner, grant_id, server)
            self._remember(ident, mac)
        return f"{inner}.{mac}"

    def unwrap(self, outer: str, grant_id: str, server: str) -> str | None:
        inner, sep, mac = outer.rpartition(".")
        if not sep or not inner or not mac.isascii():  # (compare_digest takes ASCII text only)
            return None
        ident = (inner, grant_id, server)
        known = self._known.get(ident)
        if known is not None:
            return inner if hmac.compare_digest(mac, known) else None
        good = self._mac(inner, grant_id, server)
        if not hmac.compare_digest(mac, good):
            return None
        self._remember(ident, good)
        return inner
