"""Limit accounting matches what may have run: one test row per row of the outcome table in
docs/gateway.md ("Limits"). Each allowed `tools/call` reserves one unit; the unit is given
back only when the upstream certainly did not execute the call.

The upstream is the scripted one (scripted.py), which answers each call the way the called
tool's name says and records every call it received, so "executed" is observable.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import json
import sqlite3
import time

import httpx2
import pytest

from .peers import MODERN_META, call_tool, create_grant, free_port, parse_response, write
from .scripted import ScriptedUpstream

POLICY = 'permit (principal, action, resource);\nlimit "calls" (principal, action, resource) max 1000 per hour scope grant;\n'

# tool (scripted behaviour) → (audit outcome, unit kept?, what the client reads)
ROWS = [
    ("ok", "forwarded", True, "result"),
    ("is_error", "forwarded", True, "result"),  # the tool ran and reported an error
    ("sse_ok", "forwarded", True, "result"),
    ("input_required", "input_required", False, "result"),
    ("garbage", "upstream_error", True, "may or may not have run"),  # HTTP 200, not JSON
    ("wrong_id", "upstream_error", True, "may or may not have run"),  # HTTP 200, another id
    ("http500", "upstream_error", True, "may or may not have run"),
    ("http503", "upstream_error", True, "may or may not have run"),
    ("rpc_32603", "upstream_error", True, "error"),  # an internal error may come from a tool that ran
    ("drop", "upstream_error", True, "may or may not have run"),  # connection closed after the request was sent
    ("hang", "upstream_error", True, "may or may not have run"),  # timed out
    ("sse_drop", "upstream_error", True, "may or may not have run"),  # stream broke off mid-event
    ("sse_garbage", "upstream_error", True, "may or may not have run"),  # stream ended without an answer
    ("rpc_32601", "not_executed", False, "error"),  # method not found: refused before dispatch
    ("rpc_32602", "not_executed", False, "error"),  # unknown tool / invalid params
    ("http400", "rejected", False, "error"),  # a JSON-RPC error with HTTP 400: relayed
    ("http404", "rejected", False, "error"),
    ("http401", "rejected", False, "was not executed"),  # the gateway's credential was refused
    ("http302", "rejected", False, "was not executed"),  # a redirect is never followed
]


def charged(state) -> float:
    db = state / "counters.db"
    if not db.exists():
        return 0
    return sqlite3.connect(db).execute("SELECT COALESCE(SUM(value), 0) FROM counters").fetchone()[0]


def outcomes(state) -> list[tuple[str, str]]:
    return sqlite3.connect(state / "audit.db").execute("SELECT tool, outcome FROM audit ORDER BY seq").fetchall()


def what_client_read(r: dict) -> str:
    if "error" in r:
        return "error"
    res = r["result"]
    if res.get("isError") and res["content"][0]["text"].startswith("[GATEWAY ERROR]"):
        text = res["content"][0]["text"]
        return "may or may not have run" if "may or may not have run" in text else (
            "was not executed" if "was not executed" in text else text)
    return "result"


@pytest.fixture
async def scripted(tmp_path, start_gateway, request):
    # (indirect parametrisation: a longer upstream_timeout, or (upstream_timeout, shutdown_timeout))
    # (…, or (upstream_timeout, shutdown_timeout, more [gateway] lines))
    param = getattr(request, "param", 1.0)
    timeout, shutdown, more = (param + ("",))[:3] if isinstance(param, tuple) else (param, 1.5, "")
    async with ScriptedUpstream() as up:
        port = free_port()
        dead = free_port()  # nothing listens here
        write(tmp_path / "policy.mcpp", POLICY)
        config = write(tmp_path / "gateway.toml", f"""
[gateway]
port = {port}
state_dir = "state"
upstream_timeout = {timeout}
shutdown_timeout = {shutdown}
{more}

[[servers]]
id = "default"
url = "{up.url}"
policy = "policy.mcpp"

[[servers]]
id = "down"
url = "http://127.0.0.1:{dead}/mcp"
policy = "policy.mcpp"
enforce_input_schema = false  # with typed calls on, the gateway would refuse it for want of a tool list
""")
        grant = create_grant(tmp_path / "state", "acct")
        down = create_grant(tmp_path / "state", "acct-down", "down")
        g = start_gateway("--config", str(config), port=port)
        g.token, g.down_token, g.state = grant["token"], down["token"], tmp_path / "state"
        yield up, g


async def test_every_outcome_row_counts_or_refunds_as_documented(scripted):
    up, g = scripted
    async with httpx2.AsyncClient(timeout=30) as http:
        for i, (tool, outcome, kept, reads) in enumerate(ROWS):
            before, ran_before = charged(g.state), len(up.executed(tool))
            r = await call_tool(http, g.url(), g.token, tool, {"i": i}, rid=i)
            assert what_client_read(r) == reads, (tool, r)
            assert outcomes(g.state)[-1] == (tool, outcome), tool
            assert charged(g.state) - before == (1 if kept else 0), tool
            assert len(up.executed(tool)) == ran_before + 1, tool  # it did reach the upstream
        # the one row that never reaches an upstream: nothing listens on the other server's port
        before = charged(g.state)
        r = await call_tool(http, g.url("down"), g.down_token, "ok", {}, rid=99)
        assert what_client_read(r) == "was not executed"
        assert outcomes(g.state)[-1] == ("ok", "not_executed")
        assert charged(g.state) == before


@contextlib.asynccontextmanager
async def _hanging_stream(g):
    """A 2026-07-28 tools/call of `sse_hang`, streamed and open: its head and a comment have
    come, its answer never will. Leaving the block closes the client's side."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": "sse_hang", "arguments": {}, "_meta": MODERN_META}})
    headers = {"Authorization": f"Bearer {g.token}", "Content-Type": "application/json",
               "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2026-07-28",
               "Mcp-Method": "tools/call", "Mcp-Name": "sse_hang"}
    async with httpx2.AsyncClient(timeout=30) as http:
        async with http.stream("POST", g.url(), headers=headers, content=body) as resp:
            assert resp.status_code == 200
            chunks = resp.aiter_bytes()
            async for _ in chunks:
                break  # the stream is open upstream
            yield chunks  # (the rest of the stream, for a test that reads on)


async def test_client_that_disconnects_mid_stream_keeps_the_unit(scripted):
    up, g = scripted
    before = charged(g.state)
    async with _hanging_stream(g):
        pass  # the client leaves
    deadline = time.time() + 15
    while time.time() < deadline and outcomes(g.state)[-1][1] == "forwarded":
        await asyncio.sleep(0.1)
    assert outcomes(g.state)[-1] == ("sse_hang", "client_disconnected")
    assert charged(g.state) - before == 1
    assert len(up.executed("sse_hang")) == 1


async def _leave_a_2025_stream(g, rid: int) -> None:
    """A 2025-06-18 tools/call of `sse_late` (streamed; answered only once the upstream is
    released): its stream opened, then the client hangs up."""
    body = json.dumps({"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": {"name": "sse_late", "arguments": {}}})
    headers = {"Authorization": f"Bearer {g.token}", "Content-Type": "application/json",
               "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18"}
    async with httpx2.AsyncClient(timeout=30) as http:
        async with http.stream("POST", g.url(), headers=headers, content=body) as resp:
            assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
            async for _ in resp.aiter_bytes():
                break  # the call is running upstream


@pytest.mark.parametrize("scripted", [(30.0, 1.5, "max_requests_per_caller = 2")], indirect=True)
async def test_a_2025_call_whose_client_left_is_cancelled_upstream_and_counts_until_it_ends(scripted):
    """hostile review 31, H31-1: in a 2025 session the upstream goes on with a call whose
    stream the client closed (only `notifications/cancelled` stops it there), while the
    caller's request slot was given back at once: one grant ran any number of calls at once
    past `max_requests_per_caller` by hanging up each one. The gateway now tells the upstream
    to cancel (with its own id for the call), and the call holds its slot until the upstream
    answers or ends it (or `upstream_timeout`)."""
    up, g = scripted
    before = charged(g.state)
    for rid in (1, 2):
        await _leave_a_2025_stream(g, rid)
    gids = [m["id"] for m in up.messages if m.get("method") == "tools/call"]
    deadline = time.time() + 10
    cancels: list = []
    while time.time() < deadline and len(cancels) < 2:
        cancels = [m["params"]["requestId"] for m in up.messages if m.get("method") == "notifications/cancelled"]
        await asyncio.sleep(0.05)
    assert sorted(cancels, key=str) == sorted(gids, key=str) and len(gids) == 2, up.messages
    async with httpx2.AsyncClient(timeout=30) as http:
        r = await http.post(g.url(), headers={"Authorization": f"Bearer {g.token}", "Content-Type": "application/json",
                                              "Accept": "application/json, text/event-stream",
                                              "MCP-Protocol-Version": "2025-06-18"},
                            content=json.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                                                "params": {"name": "ok", "arguments": {}}}))
        assert r.status_code == 429, r.text  # both still run upstream: the caller's share is taken
        up.release.set()  # the upstream answers them (to no one)
        deadline, status = time.time() + 10, 429
        while time.time() < deadline and status == 429:
            r = await http.post(g.url(), headers={"Authorization": f"Bearer {g.token}", "Content-Type": "application/json",
                                                  "Accept": "application/json, text/event-stream",
                                                  "MCP-Protocol-Version": "2025-06-18"},
                                content=json.dumps({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
                                                    "params": {"name": "ok", "arguments": {}}}))
            status = r.status_code
            await asyncio.sleep(0.05)
        assert status == 200, r.text
    assert [o for o in outcomes(g.state) if o[0] == "sse_late"] == [("sse_late", "client_disconnected")] * 2
    assert charged(g.state) - before >= 2  # (and the `ok` call's unit)


async def test_a_2026_stream_whose_client_left_is_closed_upstream(scripted):
    """In 2026-07-28 closing the request's stream is how a call is cancelled: the gateway
    closes it at once, sends no `notifications/cancelled`, and the caller's slot ends with it."""
    up, g = scripted
    async with _hanging_stream(g):
        pass
    deadline = time.time() + 10
    while time.time() < deadline and outcomes(g.state)[-1][1] == "forwarded":
        await asyncio.sleep(0.1)
    assert outcomes(g.state)[-1] == ("sse_hang", "client_disconnected")
    assert not [m for m in up.messages if m.get("method") == "notifications/cancelled"]


@pytest.mark.parametrize("scripted", [60.0], indirect=True)
async def test_a_stream_cut_by_the_gateway_stopping_keeps_the_unit(scripted):
    # SIGTERM while a call's stream is open upstream (before its answer, and well within
    # upstream_timeout): the gateway waits `shutdown_timeout` (1.5 s here, 10 by default),
    # then cancels the request; the call may still run upstream, so its unit is kept and
    # the audit says why (not `forwarded`, which means a result)
    up, g = scripted
    before = charged(g.state)
    async with _hanging_stream(g) as rest:
        t0 = time.monotonic()
        g.proc.kill(signal.SIGTERM, wait=30)  # (returns once the gateway has exited)
        assert time.monotonic() - t0 < 8  # shutdown_timeout, not the default 10 s
        # the stream is ended, not cut: the client reads the call's error result
        tail = b"".join([chunk async for chunk in rest])
    assert b"The gateway stopped before the upstream answered; the call may or may not have run." in tail, tail
    assert outcomes(g.state)[-1] == ("sse_hang", "gateway_stopped")
    assert charged(g.state) - before == 1
    assert len(up.executed("sse_hang")) == 1
    _stopped_cleanly(g)


async def _hanging_call(http, up, g, rid: int) -> asyncio.Task:
    """A tools/call of `hang` in flight: sent, at the upstream, unanswered."""
    pending = asyncio.create_task(call_tool(http, g.url(), g.token, "hang", {}, rid=rid))
    deadline = time.time() + 15
    while time.time() < deadline and not up.executed("hang"):
        await asyncio.sleep(0.05)
    assert up.executed("hang")
    return pending


def _stopped_cleanly(g) -> None:
    """The stop is in the log as records, with no traceback (uvicorn logged one for every
    request it cancelled at the shutdown timeout)."""
    text = g.log.read_text()
    assert "Traceback" not in text and "Exception in ASGI application" not in text, text[-3000:]
    assert all(line.startswith("{") for line in text.splitlines()), text[-3000:]  # JSON lines only
    events = [r.get("event") for r in g.log_records()]
    assert "stopping" in events and "shutdown_timeout_exceeded" in events, events


@pytest.mark.parametrize("scripted", [60.0], indirect=True)
async def test_a_call_waiting_for_its_answer_when_the_gateway_stops_keeps_the_unit(scripted):
    # the same with a whole (JSON) answer awaited: the row said `forwarded` (a result) and
    # the client's connection was cut; now the row says why and the client is answered
    up, g = scripted
    before = charged(g.state)
    async with httpx2.AsyncClient(timeout=30) as http:
        pending = await _hanging_call(http, up, g, rid=7)
        g.proc.kill(signal.SIGTERM, wait=30)
        r = await pending
    assert r["id"] == 7 and what_client_read(r) == "may or may not have run", r
    assert "The gateway stopped before the upstream answered" in r["result"]["content"][0]["text"]
    assert outcomes(g.state)[-1] == ("hang", "gateway_stopped")
    assert charged(g.state) - before == 1
    _stopped_cleanly(g)


@pytest.mark.parametrize("scripted", [60.0], indirect=True)
async def test_a_listing_open_when_the_gateway_stops_is_answered_503_without_a_traceback(scripted):
    up, g = scripted
    up.list_mode = "hang"
    body = {"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"_meta": MODERN_META}}
    headers = {"Authorization": f"Bearer {g.token}", "Content-Type": "application/json",
               "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2026-07-28",
               "Mcp-Method": "tools/list"}
    async with httpx2.AsyncClient(timeout=30) as http:
        pending = asyncio.create_task(http.post(g.url(), headers=headers, content=json.dumps(body)))
        deadline = time.time() + 15
        while time.time() < deadline and not up.lists:
            await asyncio.sleep(0.05)
        assert up.lists
        g.proc.kill(signal.SIGTERM, wait=30)
        r = await pending
    assert r.status_code == 503 and "stopping" in r.json()["error"]["message"], r.text
    _stopped_cleanly(g)
    assert any(x.get("event") == "request_cancelled_at_shutdown" for x in g.log_records())


@pytest.mark.parametrize("scripted", [(60.0, 30.0)], indirect=True)
async def test_listening_streams_are_ended_at_once_when_the_gateway_stops(scripted):
    # a GET stream carries no call: it must not hold the stop for shutdown_timeout (30 s here)
    up, g = scripted
    headers = {"Authorization": f"Bearer {g.token}", "Accept": "text/event-stream"}
    async with httpx2.AsyncClient(timeout=30) as http:
        async with http.stream("GET", g.url(), headers=headers) as resp:
            assert resp.status_code == 200
            chunks = resp.aiter_bytes()
            async for _ in chunks:
                break  # open, upstream too
            assert up.listening == 1
            t0 = time.monotonic()
            g.proc.kill(signal.SIGTERM, wait=30)
            assert time.monotonic() - t0 < 8, "the stop waited for the listening stream"
            rest = b"".join([c async for c in chunks])  # ended cleanly: no error reading to its end
    assert rest == b""
    records = g.log_records()
    assert [r.get("listening_streams_ended") for r in records if r.get("event") == "stopping"] == [1]
    text = g.log.read_text()
    assert "Traceback" not in text and all(line.startswith("{") for line in text.splitlines()), text[-3000:]


@pytest.mark.parametrize("scripted", [(60.0, 30.0)], indirect=True)
@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGTERM])
async def test_a_second_signal_stops_at_once_and_still_answers_and_audits(scripted, second):
    """`kill` then Ctrl-C (or a supervisor escalating): uvicorn's force-exit skipped the
    cancelling and the application's shutdown, and the re-raised SIGTERM killed the process:
    the client got nothing and the row stayed `forwarded` (hostile review 19, F1, F2). A
    second signal now only ends the wait for open requests."""
    up, g = scripted
    before = charged(g.state)
    async with httpx2.AsyncClient(timeout=30) as http:
        pending = await _hanging_call(http, up, g, rid=9)
        t0 = time.monotonic()
        os.killpg(g.proc.p.pid, signal.SIGTERM)
        await asyncio.sleep(0.5)  # the stop has begun: it would wait shutdown_timeout (30 s) for the call
        g.proc.kill(second, wait=30)
        assert time.monotonic() - t0 < 8
        r = await pending
    assert r["id"] == 9 and "The gateway stopped before the upstream answered" in r["result"]["content"][0]["text"], r
    assert outcomes(g.state)[-1] == ("hang", "gateway_stopped")
    assert charged(g.state) - before == 1
    text = g.log.read_text()
    assert "Traceback" not in text and all(line.startswith("{") for line in text.splitlines()), text[-3000:]
    assert "stopping_at_second_signal" in [x.get("event") for x in g.log_records()]


async def test_a_call_whose_row_waits_on_a_locked_audit_db_at_the_stop_is_refused_and_refunded(scripted):
    """It never reached the upstream, so its unit goes back and no row claims otherwise
    (hostile review 19, F6: it was refused 503 and kept its unit)."""
    import sqlite3 as sq

    up, g = scripted
    before, ran = charged(g.state), len(up.executed("ok"))
    other = sq.connect(g.state / "audit.db", isolation_level=None, timeout=10)
    other.execute("BEGIN IMMEDIATE")  # another process holds audit.db's write lock
    try:
        async with httpx2.AsyncClient(timeout=30) as http:
            pending = asyncio.create_task(call_tool(http, g.url(), g.token, "ok", {}, rid=4))
            await asyncio.sleep(0.5)  # decided, unit reserved, its row waiting for the lock
            g.proc.kill(signal.SIGTERM, wait=30)
            r = await pending
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert r.get("status") == 503, r
    assert charged(g.state) == before and len(up.executed("ok")) == ran
    assert ("ok", "forwarded") not in outcomes(g.state)


# what a request is waiting on when `shutdown_timeout` ends, and its JSON-RPC id
STOP_WAITS = [("listing", "list-3"), ("audit.db", 4), ("counters.db", "c-5")]


@pytest.mark.parametrize("scripted", [60.0], indirect=True)
@pytest.mark.parametrize("waiting,rid", STOP_WAITS, ids=[w for w, _ in STOP_WAITS])
async def test_a_request_cancelled_at_the_stop_is_answered_with_its_own_id(scripted, waiting, rid):
    """The 503 for a request still open at the shutdown timeout (a listing the upstream
    has not answered; a call whose row, or whose limit reservation, waits for a database
    another process holds locked) names the request's id, which the gateway had read: a
    client matches answers to requests by id, and `null` is for a request whose id could
    not be read (hostile review 19, F7: it was always null)."""
    up, g = scripted
    async with httpx2.AsyncClient(timeout=30) as http:
        assert what_client_read(await call_tool(http, g.url(), g.token, "ok", {}, rid=0)) == "result"  # both dbs exist
        other = None
        if waiting != "listing":
            other = sqlite3.connect(g.state / waiting, isolation_level=None, timeout=10)
            other.execute("BEGIN IMMEDIATE")  # another process holds its write lock
        try:
            if waiting == "listing":
                up.list_mode, lists = "hang", up.lists  # (the first call's schema check listed the tools)
                body = {"jsonrpc": "2.0", "id": rid, "method": "tools/list", "params": {"_meta": MODERN_META}}
                headers = {"Authorization": f"Bearer {g.token}", "Content-Type": "application/json",
                           "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2026-07-28",
                           "Mcp-Method": "tools/list"}
                pending = asyncio.create_task(http.post(g.url(), headers=headers, content=json.dumps(body)))
                deadline = time.time() + 15
                while time.time() < deadline and up.lists == lists:
                    await asyncio.sleep(0.05)
                assert up.lists > lists
            else:
                pending = asyncio.create_task(call_tool(http, g.url(), g.token, "ok", {}, rid=rid))
                await asyncio.sleep(0.5)  # decided; waiting for the lock (store_busy_timeout: 10 s)
            g.proc.kill(signal.SIGTERM, wait=30)
            r = await pending
        finally:
            if other is not None:
                other.execute("ROLLBACK")
                other.close()
    if waiting == "listing":
        r = parse_response(r)
    assert r == {"status": 503, "jsonrpc": "2.0", "id": rid,
                 "error": {"code": -32603, "message": "the gateway is stopping"}}, r
    _stopped_cleanly(g)


# ---- SIGTERM while a client is still uploading its request's body (hostile review 20, F4) ----
UPLOAD = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                     "params": {"name": "ok", "arguments": {"x": "a" * 600_000}, "_meta": MODERN_META}}).encode()
FIRST = 100_000  # sent before the signal; the rest after it


async def _start_upload(g, host: str):
    """A raw HTTP/1.1 POST of UPLOAD whose head and first FIRST bytes are sent."""
    r, w = await asyncio.open_connection("127.0.0.1", g.port)
    fields = {"Host": host, "Content-Length": str(len(UPLOAD)), "Authorization": f"Bearer {g.token}",
              "Content-Type": "application/json", "Accept": "application/json, text/event-stream",
              "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "ok"}
    head = "POST /mcp/default/ HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
    w.write(head.encode() + UPLOAD[:FIRST])
    await w.drain()
    return r, w


async def _send_rest(w, seconds: float) -> int:
    """The rest of UPLOAD in 50 kB pieces (bounded: at most `seconds`); how much was sent."""
    sent, until = FIRST, time.monotonic() + seconds
    try:
        while sent < len(UPLOAD) and time.monotonic() < until:
            w.write(UPLOAD[sent:sent + 50_000])
            sent = min(sent + 50_000, len(UPLOAD))
            await asyncio.wait_for(w.drain(), 5)
            await asyncio.sleep(0.02)
    except (ConnectionError, OSError, TimeoutError):
        pass
    return sent


async def _answer(r) -> bytes:
    """Everything the gateway sends until it closes (bounded), or how the read failed."""
    try:
        return await asyncio.wait_for(r.read(), 10)
    except (ConnectionError, OSError) as e:
        return f"<{type(e).__name__}>".encode()


def _head(answer: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = dict((k.lower(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:]))
    return lines[0], fields, body


STOPPING_BODY = {"jsonrpc": "2.0", "id": None, "error": {"code": -32603, "message": "the gateway is stopping"}}
# (the request's Host, what the uploader reads once it has sent the rest, whether the call
# ran): a request whose head had arrived is in flight, so its upload may finish within
# shutdown_timeout and it is then decided and served like any other; one answered before
# its body (a bad Host: 421) keeps its answer. Before, the stop closed the second at once
# with the client's bytes unread, the kernel reset the connection, and the answer was lost.
UPLOADS = [("good", "200", True), ("evil.example", "421", False)]


@pytest.mark.parametrize("scripted", [(60.0, 3.0)], indirect=True)
@pytest.mark.parametrize("host,status,runs", UPLOADS, ids=[s for _, s, _ in UPLOADS])
async def test_an_upload_in_progress_at_the_stop_is_answered_not_reset(scripted, host, status, runs):
    up, g = scripted
    ran = len(up.executed("ok"))
    r, w = await _start_upload(g, f"127.0.0.1:{g.port}" if host == "good" else host)
    await asyncio.sleep(0.3)  # the head is read, the body is being read (or the 421 is written)
    os.killpg(g.proc.p.pid, signal.SIGTERM)
    t0 = time.monotonic()
    sent = await _send_rest(w, seconds=2.5)
    answer = await _answer(r)
    w.close()
    await asyncio.to_thread(g.proc.p.wait, 30)
    assert time.monotonic() - t0 < 3.0 + 2, "the stop outlasted shutdown_timeout"
    assert sent == len(UPLOAD)
    line, fields, body = _head(answer)
    assert line.startswith(f"HTTP/1.1 {status} "), answer[:300]
    if runs:  # answered after the stop began: no next request on this connection
        assert fields.get("connection") == "close", fields
        assert json.loads(body)["result"]["content"][0]["text"] == "ran ok"
    assert len(up.executed("ok")) == ran + runs
    text = g.log.read_text()
    assert "Traceback" not in text and all(line.startswith("{") for line in text.splitlines()), text[-3000:]


async def _trickle(w, seconds: float) -> None:
    """The rest of UPLOAD far too slowly (1 kB every 0.1 s), for at most `seconds`."""
    until, sent = time.monotonic() + seconds, FIRST
    try:
        while time.monotonic() < until and sent < len(UPLOAD):
            w.write(UPLOAD[sent:sent + 1000])
            sent += 1000
            await asyncio.wait_for(w.drain(), 2)
            await asyncio.sleep(0.1)
    except (ConnectionError, OSError, TimeoutError):
        pass


@pytest.mark.parametrize("scripted", [(60.0, 2.0)], indirect=True)
@pytest.mark.parametrize("pace", ["stalled", "trickling"])
async def test_an_upload_that_cannot_finish_does_not_hold_the_stop(scripted, pace):
    """A client that stops sending part-way, or sends too slowly to finish, holds the stop
    no longer than shutdown_timeout; its call was never decided, so it is refused (503)
    and nothing runs. The stalled one reads that answer (all it sent was read, so the close
    is clean); one still sending when the process exits may see a reset instead."""
    up, g = scripted
    r, w = await _start_upload(g, f"127.0.0.1:{g.port}")
    await asyncio.sleep(0.3)
    t0 = time.monotonic()
    os.killpg(g.proc.p.pid, signal.SIGTERM)
    trickle = asyncio.create_task(_trickle(w, 10) if pace == "trickling" else asyncio.sleep(0))
    await asyncio.to_thread(g.proc.p.wait, 30)
    assert time.monotonic() - t0 < 2.0 + 2, "an unfinished upload held the stop"
    await trickle
    answer = await _answer(r)
    w.close()
    if pace == "stalled":
        line, _, body = _head(answer)
        assert line.startswith("HTTP/1.1 503 ") and json.loads(body) == STOPPING_BODY, answer[:300]
    assert not up.executed("ok")
    assert "shutdown_timeout_exceeded" in [x.get("event") for x in g.log_records()]
