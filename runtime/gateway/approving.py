"""Human approval on the call path (docs/approval.md): what the gateway does with a call
an `@approval` permit holds.

1. The call is bound to an approval by its hash (approvals.binding). If that approval is
   approved and unused, the call is decided again with `approved=True` (its limits are
   reserved now, when it runs), the approval is used up, and the call is forwarded.
2. If it was rejected, the call is denied until the rejection expires.
3. Otherwise (a new or pending approval) the gateway asks:
   - 2026-07-28, client declares `elicitation`: the answer is an `input_required` result
     whose `inputRequests` holds an `elicitation/create` form; the client's retry carries
     the person's answer (`inputResponses`) and the gateway's `requestState` (an HMAC of
     the approval id and the call's binding, so it answers this call only);
   - 2025 session whose `initialize` declared `elicitation`: the call's response becomes
     an event stream carrying an `elicitation/create` request; the client POSTs its answer
     on the session, the gateway takes it (it never reaches the upstream) and, approved,
     forwards the call and relays the upstream's answer on the same stream;
   - otherwise, or with `approval_elicitation = false`, or when nobody answers within
     `approval_wait`: an `isError` result saying the call awaits approval, with its id, for
     `mcpp approve ID` / `mcpp reject ID` or the admin HTTP endpoint.
Every answer is audited with who gave it and how; every call is audited as usual.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mcpp import Decision

from . import jsonrpc as rpc
from .approvals import ApprovalError, Unbindable, answer_row, binding, shown_arguments
from .audit import iso_ms
from .deferred import ClientGone, StoreUnavailable, is_locked
from .http_client import UpstreamError, discard
from .principals import Caller
from .stopping import through_stop

if TYPE_CHECKING:
    from .audit import AuditRow
    from .config import ServerConfig
    from .server import Runtime

INPUT_KEY = "io.mcpp/approval"  # the gateway's key in inputRequests / inputResponses
STATE_PREFIX = "mcpp-approval:"  # the gateway's requestState
ELICIT_PREFIX = "mcpp-approval-"  # JSON-RPC ids of the gateway's own elicitation requests (2025 sessions)
APPROVAL_PREFIX = "[APPROVAL REQUIRED] "
MAX_SESSIONS_TRACKED = 10_000
_IDS = itertools.count(1)


@dataclass
class CallContext:
    """One tools/call as the decision path sees it."""

    server: ServerConfig
    caller: Caller
    name: str
    args: dict
    rid: object
    engine: Any  # the mcpp.Policy that decided, or the registry's DenyAll stand-in
    policy_sha: str | None
    decided: str  # the enforcing policy's decision: allow | deny | approval
    rule: str
    modern: bool
    params: dict
    headers: dict
    shadow: Decision | None = None
    shadow_sha: str | None = None
    shadow_engine: Any = None


@dataclass
class Approved:
    """What the approval step hands back: the approval used (None if none was), the
    request body without the gateway's own MRTR fields, and the stream of a 2025
    session's elicitation, already open."""

    id: str | None = None
    args: dict = field(default_factory=dict)
    body: bytes | None = None
    sse: "Stream | None" = None

    def restore(self, rt) -> None:
        """The call certainly did not run: its approval may run it later."""
        if self.id is None:
            return
        try:
            rt.approvals.restore(self.id, self.args)
        except Exception as e:
            if not is_locked(e):
                rt.log.error("approval_restore_failed", approval_id=self.id, error=f"{type(e).__name__}: {e}")
                return
            # approvals.db is locked by another process: restored in the background, waiting
            # on the lock without stalling the gateway (lost, and logged, after the timeout)
            task = asyncio.get_running_loop().create_task(self._restore_later(rt))
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)
            return
        rt.metrics.inc("mcpp_approvals_total", (("server", "-"), ("event", "restored")))

    async def _restore_later(self, rt) -> None:
        assert self.id is not None
        approval_id, args = self.id, self.args
        try:
            await rt.approvals_write(lambda: rt.approvals.restore(approval_id, args), background=True)
        except Exception as e:
            rt.log.error("approval_restore_failed", approval_id=approval_id, error=f"{type(e).__name__}: {e}")
            return
        rt.metrics.inc("mcpp_approvals_total", (("server", "-"), ("event", "restored")))


class Stream:
    """A tools/call answered as an event stream the gateway writes itself. Its last write
    (`finish`: the call's answer, settled) goes through the gateway's stop
    (`stopping.through_stop`): a stop that cancelled it left the client a cut stream with no
    answer (hostile review 39, H39-1)."""

    def __init__(self, send, rt):
        self.send = send
        self.rt = rt
        self.started = False
        self.done = False

    async def start(self) -> None:
        await self.send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream"), (b"cache-control", b"no-store"), (b"x-accel-buffering", b"no")]})
        self.started = True

    async def event(self, message: dict) -> None:
        await self.send({"type": "http.response.body", "body": rpc.sse_event(message), "more_body": True})

    async def finish(self, message: dict | None = None) -> None:
        if self.done:
            return
        self.done = True
        last = {"type": "http.response.body", "body": rpc.sse_event(message) if message is not None else b"", "more_body": False}
        await through_stop(self.rt, self.send, last)


def form_elicitation(caps) -> bool:
    """The client can show a form: `elicitation: {}` (form, by the spec's default) or with `form`."""
    e = caps.get("elicitation") if isinstance(caps, dict) else None
    return isinstance(e, dict) and (not e or "form" in e)


def client_elicits_modern(params: dict) -> bool:
    meta = params.get("_meta") if isinstance(params, dict) else None
    return form_elicitation(meta.get("io.modelcontextprotocol/clientCapabilities") if isinstance(meta, dict) else None)


def elicitation_params(ctx: CallContext, a) -> dict:
    who = ctx.caller.actor
    reason = f" {a.reason}" if a.reason else ""
    message = (f"Approve this call? {who} asks to run the tool {ctx.name} on {ctx.server.id} with the arguments "
               f"{shown_arguments(a)}.{reason} (approval {a.id}; one run of exactly this call)")
    return {"mode": "form", "message": message, "requestedSchema": {
        "type": "object",
        "properties": {"approve": {"type": "boolean", "title": "Approve",
                                   "description": "Run this exact call once"}},
        "required": ["approve"]}}


def _approves(answer) -> bool | None:
    """True (approve), False (reject) or None (no usable answer) from an ElicitResult."""
    if not isinstance(answer, dict):
        return None
    action = answer.get("action")
    if action in ("decline", "cancel"):
        return False
    if action == "accept":
        content = answer.get("content")
        return isinstance(content, dict) and content.get("approve") is True
    return None


class ApprovalSteps:
    """Mixed into GatewayApp: the approval step of the tools/call path, the 2025 sessions'
    elicitation answers, and the admin endpoint."""

    rt: Runtime  # set by GatewayApp

    if TYPE_CHECKING:  # GatewayApp's, which this is mixed into
        def grant_caller(self, record) -> Caller: ...

        def call_row(self, ctx: CallContext, decision, outcome: str, detail=None, approval_id=None,
                     decision_kind: str | None = None, rule: str | None = None,
                     message: str | None = None) -> AuditRow: ...

        async def write_audit(self, send, ctx: CallContext, row: AuditRow, decision=None, sse=None) -> int | None: ...

        def count_decision(self, ctx: CallContext, row: AuditRow, seq: int, passed: bool = False) -> None: ...

        @staticmethod
        async def read_body(scope, receive, limit: int) -> bytes: ...

    # -- the step ------------------------------------------------------------------------------
    async def approval_step(self, receive, send, fwd, msg, ctx: CallContext, decision: Decision):
        rt = self.rt
        server, caller = ctx.server, ctx.caller
        try:
            bind = binding(ctx.name, ctx.args, caller.key, server.id)
        except Unbindable:
            d = Decision(False, ctx.name, "/approval/unbindable", None, (
                "This call needs a person's approval, but its arguments hold a number that canonical JSON "
                "(RFC 8785) cannot represent exactly, so no approval can be bound to it; it was denied."))
            await self._deny(send, ctx, d, None)
            return None
        step = Approved(args=ctx.args)
        answer = self._modern_answer(ctx, bind, msg, step)
        if answer is not None:
            approval_id, verdict = answer
            await self._apply_answer(approval_id, verdict, f"elicitation:{caller.actor}",
                                     "elicitation", server.id)
        a = None
        for _ in range(3):  # a used-up approval (a racing identical call) asks anew
            try:
                a, created = await rt.approvals_write(lambda: rt.approvals.request(
                    bind, server=server.id, grant_id=caller.actor_id, grant_label=caller.grant_label, tool=ctx.name,
                    arguments=ctx.args, reason=decision.approval or "", rule=decision.rule,
                    policy_sha256=ctx.policy_sha, ttl=rt.config.approval_ttl))
            except ClientGone:  # (call_tool's: no decision, no row)
                raise
            except StoreUnavailable as e:
                await self._deny(send, ctx, approvals_down(ctx.name, rt, e), None, prefix=rpc.ERROR_PREFIX)
                return None
            if created:
                rt.metrics.inc("mcpp_approvals_total", (("server", server.id), ("event", "requested")))
                rt.log.info("approval_requested", server=server.id, approval_id=a.id, **rt.who(caller),
                            tool=ctx.name, rule=decision.rule, expires=iso_ms(a.expires))
            if a.status != "approved":
                break
            run = await self._run_approved(ctx, a, step)
            if run is not None:
                return run
        assert a is not None  # the loop ran
        if a.status == "rejected":
            d = Decision(False, ctx.name, decision.rule, decision.policy, (
                f"A person rejected this call (approval {a.id}); it was not forwarded. The same call is refused until "
                f"{iso_ms(a.expires)}."))
            await self._deny(send, ctx, d, a.id)
            return None
        # pending: ask where the client can show the question, else say it waits
        if server.approval_elicitation:
            if ctx.modern and client_elicits_modern(ctx.params):
                await self._ask_modern(send, ctx, decision, a, bind)
                return None
            caps = rt.session_caps.get((server.id, _session(fwd)))
            if not ctx.modern and form_elicitation(caps):
                return await self._ask_legacy(receive, send, fwd, ctx, decision, a, step)
        await self._awaiting(send, ctx, decision, a)
        return None

    async def _run_approved(self, ctx: CallContext, a, step: Approved):
        """An approved call: decided again as approved (reserving its limits now), then the
        approval is used up. None when another call used it first.

        Decided as things stand now, not as they stood when the call came in: a 2025 call
        waits here for its approval (up to `approval_wait`) within the request it came in
        with, and was decided again with the policy of before its wait and run for a grant
        revoked meanwhile (hostile review 31, H31-9: a reload to `forbid` the tool, or
        `mcpp grant revoke`, did not stop a call parked in the wait). So the caller's grant
        (or token) must still hold, and the policy in force now decides."""
        rt = self.rt
        now = await self._as_things_stand(ctx)
        if isinstance(now, str):
            return Decision(False, ctx.name, "/principal", None, now), step
        server, caller = now
        ctx.engine, ctx.policy_sha = await rt.engine_for(server, caller)
        d = await rt.decide(ctx.engine, ctx.name, ctx.args, caller.principal, server.id, approved=True)
        if not d.allowed:  # e.g. its limit is spent: denied, the approval stays for a later run
            return d, step
        try:
            consumed = await rt.approvals_write(lambda: rt.approvals.consume(a.id))
        except ClientGone:  # its client left while the approval's use waited: not used, nothing forwarded
            d.release()
            raise
        except StoreUnavailable as e:
            d.release()
            return approvals_down(ctx.name, rt, e), step
        if not consumed:
            d.release()
            return None
        step.id = a.id
        rt.metrics.inc("mcpp_approvals_total", (("server", ctx.server.id), ("event", "used")))
        rt.log.info("approval_used", server=ctx.server.id, approval_id=a.id, tool=ctx.name, **rt.who(ctx.caller))
        return d, step

    async def _as_things_stand(self, ctx: CallContext):
        """(the server's configuration in force, the caller as it stands), or why the caller
        may no longer call: its grant revoked, gone or moved to another server, its token
        expired, the server gone from the configuration. Its grant's record and groups and
        the server's policy mapping are read again: a configuration reload during the wait
        that pointed the server (or the grant) at another policy was not applied to the call
        (hostile review 33, H33-2)."""
        rt = self.rt
        server = rt.config.server(ctx.server.id)
        if server is None:
            return "This call's server is no longer configured; it was not forwarded."
        caller = ctx.caller
        record: Any = caller.record  # (a GrantRecord)
        if record is not None:
            try:
                rec = await rt.grant_record(record.id)
            except Exception as e:  # the grant store is down: the grant cannot be shown to hold
                rt.log.error("grant_store_error", server=server.id, error=f"{type(e).__name__}: {e}")
                return "The grant store could not be read to confirm this call's grant still holds; it was not forwarded."
            if rec is None or rec.revoked_at or rec.server != server.id:
                return "This call's grant was revoked while the call waited for approval; it was not forwarded."
            caller = self.grant_caller(rec)
        expires = caller.identity.expires_at if caller.identity is not None else None
        if expires is not None and expires <= time.time():
            return "This call's access token expired while the call waited for approval; it was not forwarded."
        return server, caller

    # -- 2026-07-28: input_required with an elicitation form -------------------------------------
    def _state_token(self, approval_id: str, bind: str) -> str:
        mac = hmac.new(self.rt.sessions.key, f"approval\0{approval_id}\0{bind}".encode(), hashlib.sha256).hexdigest()[:32]
        return f"{STATE_PREFIX}{approval_id}.{mac}"

    def _modern_answer(self, ctx: CallContext, bind: str, msg: dict, step: Approved):
        """The person's answer carried by a retry, if it answers this very call; the
        gateway's own fields are taken out of what is forwarded either way."""
        params = ctx.params
        state = params.get("requestState")
        responses = params.get("inputResponses")
        ours_state = state if isinstance(state, str) and state.startswith(STATE_PREFIX) else None
        ours_response = responses if isinstance(responses, dict) and INPUT_KEY in responses else None
        if ours_state is None and ours_response is None:
            return None
        answer = ours_response.get(INPUT_KEY) if ours_response is not None else None
        clean = dict(params)
        if ours_state is not None:
            clean.pop("requestState")
        if ours_response is not None:
            rest = {k: v for k, v in ours_response.items() if k != INPUT_KEY}
            if rest:
                clean["inputResponses"] = rest
            else:
                clean.pop("inputResponses")
        step.body = json.dumps({**msg, "params": clean}, separators=(",", ":"), ensure_ascii=False).encode()
        if ours_state is None:
            return None
        approval_id, _, mac = ours_state[len(STATE_PREFIX):].partition(".")
        if not hmac.compare_digest(ours_state, self._state_token(approval_id, bind)):
            # another call's state (an argument changed), or a forged one: it answers nothing
            self.rt.log.warning("approval_state_mismatch", server=ctx.server.id, tool=ctx.name,
                                **self.rt.who(ctx.caller))
            return None
        verdict = _approves(answer)
        return None if verdict is None else (approval_id, verdict)

    async def _ask_modern(self, send, ctx: CallContext, decision: Decision, a, bind: str) -> None:
        rt = self.rt
        row = self.call_row(ctx, decision, "awaiting_approval", approval_id=a.id)
        seq = await self.write_audit(send, ctx, row)
        if seq is None:
            return
        self.count_decision(ctx, row, seq)
        rt.metrics.inc("mcpp_approvals_total", (("server", ctx.server.id), ("event", "elicited")))
        result = {"resultType": "input_required",
                  "inputRequests": {INPUT_KEY: {"method": "elicitation/create", "params": elicitation_params(ctx, a)}},
                  "requestState": self._state_token(a.id, bind),
                  "_meta": {"io.mcpp/decision": {"decision": "approval", "rule": decision.rule,
                                                  "approval": {"id": a.id, "status": a.status, "expires_at": iso_ms(a.expires)}}}}
        from .proxy import _respond

        await _respond(send, 200, rpc.dumps({"jsonrpc": "2.0", "id": ctx.rid, "result": result}), settled=self.rt)

    # -- 2025 sessions: an elicitation/create request on the call's own stream -------------------
    async def _ask_legacy(self, receive, send, fwd, ctx: CallContext, decision: Decision, a, step: Approved):
        rt = self.rt
        eid = f"{ELICIT_PREFIX}{a.id}-{next(_IDS)}"
        fut = asyncio.get_running_loop().create_future()
        rt.elicitations[eid] = (fut, ctx.caller.key, ctx.server.id, _session(fwd))
        sse = Stream(send, rt)
        try:
            await sse.start()
            await sse.event({"jsonrpc": "2.0", "id": eid, "method": "elicitation/create", "params": elicitation_params(ctx, a)})
            rt.metrics.inc("mcpp_approvals_total", (("server", ctx.server.id), ("event", "elicited")))
            gone = asyncio.ensure_future(_disconnected(receive))
            try:
                await asyncio.wait({fut, gone}, timeout=rt.config.approval_wait, return_when=asyncio.FIRST_COMPLETED)
            finally:
                gone.cancel()
        finally:
            rt.elicitations.pop(eid, None)
        answered = fut.done() and not fut.cancelled()
        if answered:
            reply = fut.result()
            verdict = _approves(reply.get("result") if isinstance(reply, dict) else None)
            if verdict is not None:
                await self._apply_answer(a.id, verdict, f"elicitation:{ctx.caller.actor}",
                                         "elicitation", ctx.server.id)
        elif gone.done() and not gone.cancelled():
            # the client went away unanswered: nothing runs; the approval stays pending for an approver
            row = self.call_row(ctx, decision, "awaiting_approval", approval_id=a.id)
            seq = await self.write_audit(send, ctx, row, sse=sse)
            if seq is not None:
                self.count_decision(ctx, row, seq)
            return None
        cur = rt.approvals.get(a.id)
        step.sse = sse
        if cur is not None and cur.status == "approved":
            run = await self._run_approved(ctx, cur, step)
            if run is not None:
                return run
            cur = rt.approvals.get(a.id)
        if cur is not None and cur.status == "rejected":
            d = Decision(False, ctx.name, decision.rule, decision.policy, (
                f"A person rejected this call (approval {a.id}); it was not forwarded. The same call is refused until "
                f"{iso_ms(cur.expires)}."))
            await self._deny(send, ctx, d, a.id, sse)
            return None
        if not answered:
            rt.metrics.inc("mcpp_approvals_total", (("server", ctx.server.id), ("event", "expired_wait")))
        await self._awaiting(send, ctx, decision, cur or a, sse)
        return None

    async def elicitation_response(self, send, server, caller, fwd, msg: dict) -> None:
        """A 2025 client's answer to the gateway's own elicitation: taken here, never forwarded."""
        from .proxy import _respond

        pending = self.rt.elicitations.get(msg.get("id"))
        if pending is None or pending[1:] != (caller.key, server.id, _session(fwd)):
            await _respond(send, 404, rpc.dumps(rpc.error(None, rpc.INVALID_REQUEST, "no such pending elicitation")))
            return
        fut = pending[0]
        if not fut.done():
            fut.set_result(msg)
        await _respond(send, 202, b"", None)

    # -- answers, denials, waiting ------------------------------------------------------------------
    async def _apply_answer(self, approval_id: str, approve: bool, by: str, via: str, server_id: str) -> None:
        rt = self.rt
        try:
            a = await rt.approvals_write(lambda: rt.approvals.decide(approval_id, approve, by, via))
        except ApprovalError as e:  # already answered elsewhere, or expired: the current state stands
            rt.log.info("approval_answer_ignored", approval_id=approval_id, reason=str(e), via=via)
            return
        except StoreUnavailable as e:  # the answer is not recorded: the approval stays pending
            rt.log.warning("approval_answer_lost", approval_id=approval_id, error=str(e), via=via)
            return
        rt.metrics.inc("mcpp_approvals_total", (("server", server_id), ("event", a.status)))
        rt.log.info("approval_" + a.status, server=server_id, approval_id=a.id, by=by, via=via, tool=a.tool,
                    grant_id=a.grant_id)
        try:
            await rt.audit_writer.submit(answer_row(a, rt.replica, rt.config.mode))
        except Exception as e:
            rt.log.error("audit_write_failed", server=server_id, error=f"{type(e).__name__}: {e}")

    async def _deny(self, send, ctx: CallContext, d: Decision, approval_id, sse=None, prefix: str = rpc.DENIED_PREFIX) -> None:
        from .proxy import _respond

        row = self.call_row(ctx, d, "denied", approval_id=approval_id, decision_kind="deny")
        seq = await self.write_audit(send, ctx, row, sse=sse)
        if seq is None:
            return
        self.count_decision(ctx, row, seq)
        out = rpc.tool_error_result(ctx.rid, prefix + d.message, ctx.modern,
                                    {"io.mcpp/decision": {"decision": "deny", "rule": d.rule}})
        if sse is not None:
            await sse.finish(out)
        else:
            await _respond(send, 200, rpc.dumps(out), settled=self.rt)  # (audited: what the client gets, whatever the stop)

    async def _awaiting(self, send, ctx: CallContext, decision: Decision, a, sse=None) -> None:
        from .proxy import _respond

        row = self.call_row(ctx, decision, "awaiting_approval", approval_id=a.id)
        seq = await self.write_audit(send, ctx, row, sse=sse)
        if seq is None:
            return
        self.count_decision(ctx, row, seq)
        reason = f": {a.reason}" if a.reason else "."
        text = (f"{APPROVAL_PREFIX}This call needs a person's approval{reason} Approval id {a.id} (expires "
                f"{iso_ms(a.expires)}). Once an approver has approved it (mcpp approve {a.id}), make the same call "
                "again with the same arguments; it runs once. The call was not forwarded.")
        meta = {"io.mcpp/decision": {"decision": "approval", "rule": decision.rule,
                                     "approval": {"id": a.id, "status": a.status, "expires_at": iso_ms(a.expires)}}}
        out = rpc.tool_error_result(ctx.rid, text, ctx.modern, meta)
        if sse is not None:
            await sse.finish(out)
        else:
            await _respond(send, 200, rpc.dumps(out), settled=self.rt)  # (audited: what the client gets, whatever the stop)

    # -- forwarding an approved call on an open stream ---------------------------------------------
    async def forward_into_stream(self, sse: Stream, upstream, fwd, body: bytes, rid, modern: bool, settle) -> str:
        """Forward a call whose answer goes on a stream the gateway already opened (a 2025
        session's elicitation): the upstream's answer is read whole and relayed as events."""
        from .proxy import _jsonrpc_error, _outcome, _same_id

        rt = self.rt
        timeout = rt.config.upstream_timeout

        def fail(text: str, outcome: str) -> dict:
            settle(outcome)
            fate = "may or may not have run" if outcome in ("upstream_error",) else "was not executed"
            return rpc.tool_error_result(rid, f"{rpc.ERROR_PREFIX}The upstream server failed ({text}); the call {fate}.", modern)

        try:
            resp = await upstream.request("POST", fwd, body, timeout)
        except UpstreamError as e:
            await sse.finish(fail(str(e), "upstream_error" if e.sent else "not_executed"))
            return "upstream_error" if e.sent else "not_executed"
        try:
            data = await resp.read(timeout)
        except UpstreamError as e:
            await sse.finish(fail(str(e), "upstream_error"))
            return "upstream_error"
        ctype = (resp.header("content-type") or "").lower()
        if resp.status != 200:
            err = _jsonrpc_error(data, ctype) if 400 <= resp.status < 500 else None
            outcome = "rejected" if 300 <= resp.status < 500 else "upstream_error"
            if err is not None and err.get("id") is not None and not _same_id(err.get("id"), rid):
                # an error about another request (`rid` is the id this call went upstream
                # with): this call was sent and may have run, so it stays counted
                err, outcome = None, "upstream_error"
                discard(resp)
            if err is not None:
                settle("rejected")
                await sse.finish(err)
                return "rejected"
            await sse.finish(fail(f"HTTP {resp.status}", outcome))
            return outcome
        answer = None
        if ctype.startswith("text/event-stream"):
            parser = rpc.SSEParser(rt.config.max_response_bytes)
            try:
                events = parser.feed(data) + parser.end()
            except rpc.EventTooLarge as e:
                await sse.finish(fail(str(e), "upstream_error"))
                return "upstream_error"
            for ev in events:
                m = rpc.event_message(ev)
                if not (isinstance(m, dict) and m.get("jsonrpc") == "2.0"):
                    continue
                if "method" not in m and m.get("id") == rid and answer is None:
                    answer = m
                elif "method" in m:
                    await sse.event(m)  # the upstream's notifications and requests, in order
        elif ctype.startswith("application/json"):
            answer = rpc.parse_message(data.decode("utf-8", "replace"))
        outcome = _outcome(answer, rid)
        if outcome == "unreadable":
            discard(resp)  # out of step: never reused (before any await)
            await sse.finish(fail("its answer is not a JSON-RPC response to this call", "upstream_error"))
            return "upstream_error"
        settle(outcome)
        await sse.finish(answer)
        return outcome

    # -- the admin endpoint -------------------------------------------------------------------------
    async def approvals_http(self, scope, receive, send, path: str) -> None:
        """`GET /approvals[/<id>]`, `POST /approvals/<id>/approve|reject` with
        `{"by": "<who>"}` and `Authorization: Bearer <admin token>` (admin_token_file /
        admin_token_env). Without an admin token configured the endpoint does not exist."""
        from .proxy import _headers, _host_ok, _respond

        rt = self.rt
        if rt.admin_secret is None:
            await _respond(send, 404, rpc.dumps({"error": "not found"}))
            return
        headers = _headers(scope)
        if not _host_ok(headers.get("host"), rt.config.host_allowlist()):
            await _respond(send, 421, rpc.dumps({"error": "Invalid Host header"}))
            return
        origin = headers.get("origin")
        if origin is not None and not _host_ok(origin, rt.config.origin_allowlist()):
            await _respond(send, 403, rpc.dumps({"error": "Invalid Origin header"}))
            return
        auths = [v for k, v in scope["headers"] if k == b"authorization"]
        scheme, _, token = (auths[0].decode("latin-1") if len(auths) == 1 else "").partition(" ")
        if not (scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), rt.admin_secret.encode())):
            rt.metrics.inc("mcpp_auth_failures_total", (("server", "-"), ("reason", "admin_token")))
            await _respond(send, 401, rpc.dumps({"error": "the approvals endpoint needs the admin token"}), b"application/json",
                           [(b"www-authenticate", b'Bearer realm="mcpp-admin"')])
            return
        parts = [p for p in path.split("/") if p][1:]
        method = scope["method"]
        if method == "GET" and not parts:
            await _respond(send, 200, rpc.dumps({"approvals": [a.public() for a in rt.approvals.list("pending")]}))
            return
        if method == "GET" and len(parts) == 1:
            a = rt.approvals.get(parts[0])
            await _respond(send, 200 if a else 404, rpc.dumps(a.public() if a else {"error": f"no approval {parts[0]}"}))
            return
        if method != "POST" or len(parts) != 2 or parts[1] not in ("approve", "reject"):
            await _respond(send, 404, rpc.dumps({"error": "not found",
                                                 "hint": "GET /approvals, GET /approvals/<id>, POST /approvals/<id>/approve|reject"}))
            return
        try:
            body = await self.read_body(scope, receive, 65536)
            by = json.loads(body or b"{}").get("by")
        except Exception:
            by = None
        if not isinstance(by, str) or not 1 <= len(by) <= 128:
            await _respond(send, 400, rpc.dumps({"error": 'the body must be {"by": "<who decides>"} (1 to 128 characters)'}))
            return
        try:
            a = await rt.approvals_write(lambda: rt.approvals.decide(parts[0], parts[1] == "approve", by, "http"))
        except ApprovalError as e:
            await _respond(send, 409 if rt.approvals.get(parts[0]) else 404, rpc.dumps({"error": str(e)}))
            return
        except StoreUnavailable as e:
            rt.log.warning("approval_answer_lost", approval_id=parts[0], error=str(e), via="http")
            await _respond(send, 503, rpc.dumps({"error": "the approval store is unavailable; the answer was not recorded, try again"}))
            return
        rt.metrics.inc("mcpp_approvals_total", (("server", a.server), ("event", a.status)))
        rt.log.info("approval_" + a.status, server=a.server, approval_id=a.id, by=by, via="http", tool=a.tool,
                    grant_id=a.grant_id)
        try:
            await rt.audit_writer.submit(answer_row(a, rt.replica, rt.config.mode))
        except Exception as e:
            rt.log.error("audit_write_failed", server=a.server, error=f"{type(e).__name__}: {e}")
        await _respond(send, 200, rpc.dumps(a.public()))


def _session(fwd) -> str:
    for k, v in fwd:
        if k == "mcp-session-id":
            return v
    return ""


async def _disconnected(receive) -> None:
    while True:
        m = await receive()
        if m["type"] == "http.disconnect":
            return


def track_session_caps(rt, server_id: str, inner: str, caps) -> None:
    """Remember what a 2025 client declared at initialize (bounded: oldest forgotten)."""
    if not isinstance(caps, dict):
        return
    store = rt.session_caps
    if len(store) >= MAX_SESSIONS_TRACKED:
        store.pop(next(iter(store)))
    store[(server_id, inner)] = caps


APPROVALS_DOWN = "/approvals/store-unavailable"  # the rule of a call refused while approvals.db cannot be written
_BACKGROUND: set = set()  # approval restores waiting on a locked approvals.db (kept referenced)


def approvals_down(tool: str, rt, e: Exception) -> Decision:
    """A call that needs the approval store while it cannot be written: refused (fail closed)."""
    rt.log.warning("approval_store_unavailable", tool=tool, error=str(e))
    return Decision(False, tool, APPROVALS_DOWN, None, (
        "The approval store is unavailable, so a call that needs a person's approval cannot be asked for or run; "
        "the call was not forwarded. Try again shortly."))
