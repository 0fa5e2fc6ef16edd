"""`mcpp.PolicyMiddleware`: an mcpp policy enforced inside an MCP server built with the
official Python SDK (2.x), without a gateway in front of it.

The SDK runs every inbound message through `Server.middleware` (the same list as
`MCPServer.middleware`), `async (ctx, call_next) -> result`, before it validates the
params and calls a handler. The middleware uses that seam the way `mcpp serve` uses
the wire:

- `tools/call`: decided (`Policy.decide`) before anything else; a denial is answered
  here with the gateway's result (`isError: true`, one text block `[POLICY DENIED] …`,
  `_meta["io.mcpp/decision"]`), so the tool function never runs. An allowed call holds
  its limit budget, given back if the call fails before a result or asks for input
  (`input_required`: the retry is decided and counted again), as the gateway does.
- `tools/list`: the listed tools lose those this principal can never call
  (`Policy.visible`, the analyzer's answer the gateway uses), and the result is private.
- every decided call is an audit row (argument keys, never values) written before the
  tool runs: no row, no call.

Who calls: the SDK's auth context (`get_access_token()`, set when the server has a token
verifier) mapped by `identify`, else the configured `principal`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from mcpp.runtime.engine import Grant, User
from mcpp.runtime.gateway.audit import AuditLog, AuditRow

from ._policy import Policy, Principal, _principal

if TYPE_CHECKING:
    from mcp.server.auth.provider import AccessToken

__all__ = ["AuditRow", "AuditSink", "PolicyMiddleware", "SQLiteAudit", "token_principal"]

log = logging.getLogger("mcpp.middleware")

DENIED_PREFIX = "[POLICY DENIED] "  # the gateway's (runtime/gateway/jsonrpc.py)
DECISION_META = "io.mcpp/decision"
INVALID_PARAMS = -32602
AUDIT_UNAVAILABLE = -32003  # the gateway's own-failure code


class AuditSink(Protocol):
    """Where decided calls are recorded. `write` stores a row and returns a handle for
    `set_outcome` (what happened after the decision: `forwarded` — the tool ran —,
    `denied`, `error`, `input_required`). The gateway's `AuditLog` is one."""

    def write(self, row: AuditRow) -> Any: ...

    def set_outcome(self, seq: Any, outcome: str) -> None: ...


class SQLiteAudit(AuditLog):
    """The gateway's audit log: SQLite (WAL) at `<state_dir>/audit.db`, one committed row
    per decided call, read by `mcpp audit --state <state_dir>`."""


def token_principal(token: AccessToken) -> Grant:
    """The default identity of an authenticated request: a grant whose id is the OAuth
    client, whose label is the token's subject (the user, when the verifier gives one)
    or the client, and whose groups are the token's scopes — so a policy can say
    `principal in Group::"admin"` of a scope and `principal.label` of a user."""
    return Grant(token.client_id, token.subject or token.client_id, frozenset(token.scopes))


CallNext = Callable[[Any], Awaitable[Any]]


class PolicyMiddleware:
    """Enforce `policy` in an SDK server: `MCPServer(..., middleware=[PolicyMiddleware(policy)])`,
    or append it to `server.middleware` (the low-level `Server` too).

    `principal` is who calls when the request carries no authenticated token (default:
    the anonymous grant); `identify` maps an SDK `AccessToken` to a principal (default
    `token_principal`). `server` is the resource id policies see (`Server::"…"`).
    `audit` receives one row per decided call (`SQLiteAudit(dir)`, or any `AuditSink`).
    Limits count in the policy's counter store. Thread- and task-safe."""

    def __init__(
        self,
        policy: Policy,
        *,
        principal: Principal | None = None,
        identify: Callable[[AccessToken], Principal] | None = None,
        server: str = "default",
        audit: AuditSink | None = None,
    ) -> None:
        if not isinstance(policy, Policy):
            raise TypeError("PolicyMiddleware needs a mcpp.Policy (mcpp.load_policy(...))")
        self.policy = policy
        self.principal = _principal(principal)
        self.identify = identify or token_principal
        self.server = server
        self.audit = audit

    # -- the SDK's middleware protocol ------------------------------------------------------
    async def __call__(self, ctx: Any, call_next: CallNext) -> Any:
        method = ctx.method
        if method == "tools/call":
            if ctx.request_id is None:
                return None  # a notification-shaped call is never a call: nothing runs
            return await self._call(ctx, call_next)
        if method == "tools/list" and ctx.request_id is not None:
            return await self._list(ctx, call_next)
        return await call_next(ctx)

    # -- who calls ---------------------------------------------------------------------------
    def caller(self) -> Grant | User:
        """The principal of the current request: its access token's, else the configured one."""
        from mcp.server.auth.middleware.auth_context import get_access_token

        token = get_access_token()
        if token is None:
            return self.principal
        return _principal(self.identify(token))

    # -- tools/call ----------------------------------------------------------------------------
    async def _call(self, ctx: Any, call_next: CallNext) -> Any:
        from mcp.shared.exceptions import MCPError

        params = ctx.params if isinstance(ctx.params, Mapping) else {}
        name = params.get("name")
        if not isinstance(name, str):
            raise MCPError(INVALID_PARAMS, "tools/call needs params.name (a string)")
        args = params.get("arguments")
        if args is None:
            args = {}
        elif isinstance(args, Mapping) and type(args) is not dict:
            args = dict(args)  # a read-only view from the SDK or a middleware: the same object
        try:
            grant = self.caller()
        except Exception as e:  # an identity that cannot be established calls nothing
            log.warning("identity failed: %s: %s", type(e).__name__, e)
            return _denied(ctx, "/identity", f"The caller's identity could not be established ({type(e).__name__}).")
        decision = self.policy.decide(name, args, principal=grant, server=self.server)
        seq = None
        if self.audit is not None:
            row = AuditRow(
                ts=time.time(), request_id=json.dumps(ctx.request_id), trace_id=_trace_id(ctx),
                grant_id=grant.id, grant_label=getattr(grant, "label", ""), server=self.server, tool=name,
                decision=decision.decision, rule=decision.rule, message=decision.message,
                arg_keys=sorted(str(k) for k in args) if isinstance(args, dict) else [],
                outcome="forwarded" if decision.allowed else "denied",
            )
            try:
                seq = self.audit.write(row)
            except Exception as e:  # no audit row, no call
                decision.release()
                log.error("audit write failed: %s: %s", type(e).__name__, e)
                raise MCPError(AUDIT_UNAVAILABLE, "audit log unavailable; the call was not run") from None
        if not decision.allowed:
            log.info("denied %s for %s: %s (%s)", name, grant.id, decision.rule, decision.message)
            limit = decision.limit.to_dict() if decision.limit is not None else None
            return _denied(ctx, decision.rule, decision.message, limit)
        try:
            result = await call_next(ctx)
        except Exception:
            decision.release()  # the call failed before a result: its budget goes back
            self._outcome(seq, "error")
            raise
        if _input_required(result):
            decision.release()  # the call is not done; the retry is decided (and counted) again
            self._outcome(seq, "input_required")
        return result

    def _outcome(self, seq: Any, outcome: str) -> None:
        if self.audit is None or seq is None:
            return
        try:
            self.audit.set_outcome(seq, outcome)
        except Exception as e:
            log.error("audit write failed: %s: %s", type(e).__name__, e)

    # -- tools/list ----------------------------------------------------------------------------
    async def _list(self, ctx: Any, call_next: CallNext) -> Any:
        import anyio

        result = _wire(await call_next(ctx))
        if not isinstance(result, dict):
            return result
        tools = result.get("tools")
        if isinstance(tools, list):
            try:
                grant = self.caller()
            except Exception as e:  # nobody known: nothing listed
                log.warning("identity failed: %s: %s", type(e).__name__, e)
                visible: set[str] = set()
            else:
                names = [t["name"] for t in tools if isinstance(t, dict) and isinstance(t.get("name"), str)]
                visible = await anyio.to_thread.run_sync(
                    lambda: self.policy.visible(names, principal=grant, server=self.server))
            result["tools"] = [t for t in tools if isinstance(t, dict) and t.get("name") in visible]
        # the list depends on who asks: never a shared cache entry (as the gateway does)
        if _modern(ctx) or "ttlMs" in result or "cacheScope" in result:
            result["cacheScope"] = "private"
            result.setdefault("ttlMs", 0)
        return result


def _modern(ctx: Any) -> bool:
    from mcp_types.version import MODERN_PROTOCOL_VERSIONS

    return getattr(ctx, "protocol_version", None) in MODERN_PROTOCOL_VERSIONS


def _denied(ctx: Any, rule: str, message: str, limit: dict | None = None) -> dict[str, Any]:
    """The gateway's denial (`rpc.tool_error_result`): a result the model can read."""
    meta: dict[str, Any] = {"decision": "deny", "rule": rule}
    if limit is not None:
        meta["limit"] = limit
    result: dict[str, Any] = {"content": [{"type": "text", "text": DENIED_PREFIX + message}], "isError": True,
                              "_meta": {DECISION_META: meta}}
    if _modern(ctx):
        result["resultType"] = "complete"
    return result


def _wire(result: Any) -> Any:
    """A handler result as its wire dict (what the SDK sends), to read and filter."""
    if isinstance(result, dict):
        return dict(result)
    dump = getattr(result, "model_dump", None)
    if dump is not None:
        return dump(by_alias=True, mode="json", exclude_none=True)
    return result


def _input_required(result: Any) -> bool:
    r = _wire(result)
    return isinstance(r, dict) and r.get("resultType") == "input_required"


def _trace_id(ctx: Any) -> str | None:
    """The W3C trace id of `params._meta.traceparent`, when the request has one."""
    params = ctx.params if isinstance(ctx.params, Mapping) else {}
    meta = params.get("_meta")
    tp = meta.get("traceparent") if isinstance(meta, Mapping) else None
    if isinstance(tp, str):
        parts = tp.split("-")
        if len(parts) >= 4 and len(parts[1]) == 32:
            return parts[1]
    return None
