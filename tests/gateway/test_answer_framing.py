"""How a request's answer is framed to the client when the upstream answers with an event
stream (docs/gateway.md, "Answers as JSON").

The gateway waits for the stream's first message before it sends the response's head:
when that message is the request's answer and the client accepts `application/json`,
the answer goes out alone as a JSON body (with the client's id); anything else first —
a notification, a keep-alive, an event that primes resumption — starts the event stream
as it came, every message in order. The official SDK client closes an event-stream
response at its answer, before the stream's end, and the connection with it: a JSON
answer lets it keep its connection (the last test counts them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sqlite3
import time

import httpx2
import pytest

from .peers import MODERN_META, POLICY, configured_gateway, create_grant, parse_response, write
from mcpp.runtime.gateway.proxy import _accepts_json
from .scripted import ScriptedUpstream
from .test_sdk_clients import client

BOTH = "application/json, text/event-stream"

# tool (scripted behaviour), the client's Accept → the answer's content type, what the client reads
ROWS = [
    ("sse_ok", BOTH, "application/json", "ran sse_ok"),
    ("sse_ok", "text/event-stream, application/json", "application/json", "ran sse_ok"),
    ("sse_ok", "*/*", "application/json", "ran sse_ok"),
    ("sse_ok", "application/*;q=0.5, text/event-stream", "application/json", "ran sse_ok"),
    ("sse_ok", "text/event-stream", "text/event-stream", "ran sse_ok"),  # JSON not accepted: the stream
    ("sse_ok", "application/json;q=0, text/event-stream", "text/event-stream", "ran sse_ok"),
    ("sse_ok", "application/json; q=zero, text/event-stream", "text/event-stream", "ran sse_ok"),  # unreadable q
    # the most specific range sets JSON's quality (RFC 9110 §12.5.1; hostile review 34, H34-2)
    ("sse_ok", "application/json;q=0, */*", "text/event-stream", "ran sse_ok"),
    ("sse_ok", "text/event-stream, */*;q=0.1, application/json;q=0", "text/event-stream", "ran sse_ok"),
    ("sse_ok", 'application/json;x="a,b";q=0, text/event-stream', "text/event-stream", "ran sse_ok"),  # a quoted comma
    ("sse_ok", "*/*;q=0, application/json", "application/json", "ran sse_ok"),
    ("sse_progress", BOTH, "text/event-stream", "ran sse_progress"),  # a notification came first
    ("sse_primed", BOTH, "text/event-stream", "ran sse_primed"),  # an event that primes resumption came first
    ("sse_late", BOTH, "text/event-stream", "ran sse_late"),  # a keep-alive came first
    ("sse_two", BOTH, "application/json", "ran sse_two"),  # the first answer ends it; the second never reaches the client
    ("sse_cr", BOTH, "application/json", "ran sse_cr"),  # CR-only line ends: the final CR ends the answer's event
    ("sse_cr", "text/event-stream", "text/event-stream", "ran sse_cr"),
    # the answer's event ended by the stream's end, not a blank line: read, as the SDK client reads it (H36-2)
    ("sse_no_blank", BOTH, "application/json", "ran sse_no_blank"),
    ("sse_no_blank", "text/event-stream", "text/event-stream", "ran sse_no_blank"),
    # no answer: the gateway's error result is the first message, so it goes out as JSON
    ("sse_garbage", BOTH, "application/json", "may or may not have run"),
    ("sse_drop", BOTH, "application/json", "may or may not have run"),
    ("sse_garbage", "text/event-stream", "text/event-stream", "may or may not have run"),
    ("sse_hang", BOTH, "text/event-stream", "may or may not have run"),  # a keep-alive first, then the end
    # the answer in an `event: result`, which no client dispatches: no answer, the gateway's error (H37-3)
    ("sse_typed", BOTH, "application/json", "may or may not have run"),
    ("sse_typed", "text/event-stream", "text/event-stream", "may or may not have run"),
    ("sse_untyped", BOTH, "application/json", "ran sse_untyped"),  # `event:` with no value is `message` (H38-1)
    ("sse_untyped", "text/event-stream", "text/event-stream", "ran sse_untyped"),
]


@pytest.fixture
async def scripted(tmp_path, start_gateway):
    async with ScriptedUpstream() as up:
        g = configured_gateway(tmp_path, start_gateway, f'url = "{up.url}"', "permit (principal, action, resource);\n",
                               gateway="upstream_timeout = 2")
        g.up = up
        up.release.set()  # sse_late answers at once
        yield g


async def post(http, g, name: str, accept: str, rid, era: str, method: str = "tools/call") -> httpx2.Response:
    headers = {"Authorization": f"Bearer {g.token}", "Content-Type": "application/json", "Accept": accept}
    params: dict = {"name": name, "arguments": {}}
    if era == "2026-07-28":
        headers |= {"MCP-Protocol-Version": era, "Mcp-Method": method, "Mcp-Name": name}
        params["_meta"] = MODERN_META
    else:
        headers |= {"MCP-Protocol-Version": era}
    body = {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}
    return await http.post(g.url(), headers=headers, content=json.dumps(body))


@pytest.mark.parametrize("era", ["2026-07-28", "2025-06-18"])
async def test_answer_framing_table(scripted, era):
    g = scripted
    async with httpx2.AsyncClient(timeout=30) as http:
        for i, (tool, accept, ctype, reads) in enumerate(ROWS):
            rid = f"client-{i}"
            r = await post(http, g, tool, accept, rid, era)
            assert r.status_code == 200, (tool, accept, r.text)
            assert r.headers["content-type"].split(";")[0] == ctype, (tool, accept)
            m = parse_response(r)
            assert m["id"] == rid, (tool, accept, m)
            text = m["result"]["content"][0]["text"]
            assert reads in text, (tool, accept, text)
            if ctype == "application/json":
                # the answer alone, whole: its length stated, no event-stream framing
                assert int(r.headers["content-length"]) == len(r.content)
                assert json.loads(r.content) == {k: v for k, v in m.items() if k != "status"}
                assert "x-accel-buffering" not in r.headers
            if tool == "sse_progress":
                events = [json.loads(line[5:]) for line in r.text.splitlines() if line.startswith("data:") and line[5:].strip()]
                assert [e.get("method") for e in events] == ["notifications/progress", None]
            if tool == "sse_two":
                assert "second answer" not in r.text


# a request other than tools/call (prompt behaviour), the client's Accept → the answer's
# content type, and the answer: the prompt's text, or the gateway's JSON-RPC error
REQUEST_ROWS = [
    ("sse_ok", BOTH, "application/json", "ran sse_ok"),
    ("sse_progress", BOTH, "text/event-stream", "ran sse_progress"),
    ("sse_cr", BOTH, "application/json", "ran sse_cr"),
    ("sse_two", BOTH, "application/json", "ran sse_two"),
    ("sse_no_blank", BOTH, "application/json", "ran sse_no_blank"),
    ("sse_ok", "text/event-stream", "text/event-stream", "ran sse_ok"),
    # no answer in the stream: the client gets a JSON-RPC error with its id, never an empty stream
    ("sse_garbage", BOTH, "application/json", -32002),
    ("sse_drop", BOTH, "application/json", -32002),
    ("sse_hang", BOTH, "text/event-stream", -32002),  # a keep-alive began the stream; its end is unanswered
    ("sse_garbage", "text/event-stream", "text/event-stream", -32002),
    ("sse_typed", BOTH, "application/json", -32002),  # an answer no client reads (H37-3)
    ("sse_untyped", BOTH, "application/json", "ran sse_untyped"),  # `event:` with no value is `message` (H38-1)
]


@pytest.mark.parametrize("era", ["2026-07-28", "2025-06-18"])
async def test_a_requests_stream_without_its_answer_ends_with_an_error(scripted, era):
    """A request other than tools/call (here prompts/get) whose event stream ends without
    its answer gets a JSON-RPC error with its own id (-32002, as for an upstream that
    failed before streaming), as JSON when nothing was sent yet; it used to get an empty
    200 stream and wait for an answer that never came (hostile review 34's note)."""
    g = scripted
    async with httpx2.AsyncClient(timeout=30) as http:
        for i, (prompt, accept, ctype, reads) in enumerate(REQUEST_ROWS):
            rid = f"p-{i}"
            r = await post(http, g, prompt, accept, rid, era, method="prompts/get")
            assert r.status_code == 200, (prompt, accept, r.text)
            assert r.headers["content-type"].split(";")[0] == ctype, (prompt, accept, r.text)
            m = parse_response(r)
            assert m["id"] == rid, (prompt, accept, m)
            if isinstance(reads, int):
                assert m["error"]["code"] == reads and "upstream unavailable" in m["error"]["message"], (prompt, m)
            else:
                assert m["result"]["messages"][0]["content"]["text"] == reads, (prompt, m)
            if ctype == "application/json":
                assert int(r.headers["content-length"]) == len(r.content)
    assert not [x for x in g.log_records() if x.get("event") in ("internal_error", "internal_error_unanswered")]


async def test_a_sdk_client_keeps_its_connection_through_the_gateway(tmp_path, upstream, start_gateway):
    """The SDK client in 2025-11-25 (a session, event-stream answers from the SDK
    upstream): through the gateway, twenty calls open no new connection."""
    policy = write(tmp_path / "policy.mcpp", POLICY)
    state = tmp_path / "state"
    grant = create_grant(state, "alice")
    g = start_gateway("--policy", str(policy), "--upstream", upstream.url, state=state)
    accepted = 0

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        ur, uw = await asyncio.open_connection("127.0.0.1", g.port)

        async def pump(src, dst) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except ConnectionError:
                pass
            finally:
                dst.close()

        with contextlib.suppress(asyncio.CancelledError):  # (at the test's end, with the loop)
            await asyncio.gather(pump(reader, uw), pump(ur, writer))

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        http, c = client(g.url().replace(f":{g.port}/", f":{port}/"), grant["token"], "legacy")
        async with http, c:
            for _ in range(2):  # (the session's own connections: initialize, its listening stream)
                r = await c.call_tool("echo", {"text": "warm"})
                assert not r.is_error
            await asyncio.sleep(0.2)
            before = accepted
            for i in range(20):
                r = await c.call_tool("echo", {"text": f"call {i}"})
                assert not r.is_error and r.content[0].text == f"call {i}"
            assert accepted == before, f"{accepted - before} new connections for 20 calls"
    finally:
        server.close()


@pytest.mark.parametrize("accept, takes", [
    ("application/json, text/event-stream", True),
    ("APPLICATION/JSON", True),
    ("*/*", True),
    ("application/*;q=0.5", True),
    ("application/json;q=0.0, application/json;q=0.3", True),  # equally specific: the higher
    ('application/json;x="a,b;q=1";q=0.2', True),  # the quoted value is one parameter
    ("text/event-stream", False),
    ("", False),
    ("application/json;q=0, */*", False),
    ("application/json;q=0, application/*", False),
    ("application/json;q=0, application/*;q=0.5, text/event-stream", False),
    ("application/json;q=nan", False),
    ("application/json;q=zero", False),
    ("application/json-seq, application/jsonx, */*;q=0", False),
    ('"' * 20000, False),  # an unterminated quote: read in one pass, not quadratically
    ('"\\' * 10000 + ", application/json", False),
], ids=lambda v: repr(v)[:48] if isinstance(v, str) else str(v))
def test_what_accepts_json(accept, takes):
    assert _accepts_json([("accept", accept)]) is takes


async def _read_to_end(s: socket.socket) -> bytes:
    """What a non-blocking socket receives until the peer closes (or 5 s of silence, 20 s
    in all); the socket is closed."""
    loop, data = asyncio.get_running_loop(), b""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            chunk = await asyncio.wait_for(loop.sock_recv(s, 1 << 20), 5)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    s.close()
    return data


def _request(port: int, token: str, name: str, rid: str) -> bytes:
    body = json.dumps({"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                       "params": {"name": name, "arguments": {}, "_meta": MODERN_META}}).encode()
    head = (f"POST /mcp/default/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nAccept: {BOTH}\r\nMCP-Protocol-Version: 2026-07-28\r\n"
            f"Mcp-Method: tools/call\r\nMcp-Name: {name}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


STOP_POLICY = """
default deny;
permit (principal, action in [Action::"big_json", Action::"sse_slow", Action::"sse_slow_note", Action::"sse_garbage",
                              Action::"ok", Action::"rpc_32602"], resource);
@approval("needs a person")
permit (principal, action == Action::"is_error", resource);
"""


@pytest.mark.parametrize("tool, ctype, reads, outcome", [
    ("sse_slow", "application/json", "ran sse_slow", "forwarded"),  # settled and answered: the client gets it
    # the notification's write (the stream's head first) was cancelled unwritten by the stop:
    # the stopped result is the first message the client gets, so it goes out as JSON
    ("sse_slow_note", "application/json", "The gateway stopped before the upstream answered", "gateway_stopped"),
    # the stream ended without the answer: the gateway's answer, settled `upstream_error`, was
    # waiting to be written when the stop came; it is what the client gets (hostile review 37, H37-2)
    ("sse_garbage", "application/json", "The upstream ended its stream without answering", "upstream_error"),
    # a whole JSON answer, relayed, or refused before it ran (refunded): the same (H38-2)
    ("ok", "application/json", "ran ok", "forwarded"),
    ("rpc_32602", "application/json", "rpc_32602", "not_executed"),
    # the gateway's own settled answers: a denial (H38-2), the approval step's (H39-2)
    ("hang", "application/json", "not allowed by policy", "denied"),
    ("is_error", "application/json", "needs a person's approval", "awaiting_approval"),
])
async def test_a_stop_while_the_answer_waits_on_a_client_slow_to_read(tmp_path, start_gateway, tool, ctype, reads, outcome):
    """hostile review 34, H34-1: two pipelined calls on one connection whose client reads
    nothing yet — an 8 MiB answer first, so the gateway's writing is paused, then a call
    whose stream's first message comes a second later. The gateway is stopped
    (shutdown_timeout 1 s) while the second answer's head waits to be written. The client
    gets what the audit row says, never a 500: the answer (the call was settled
    `forwarded`) or the gateway's stopped result (`gateway_stopped`)."""
    async with ScriptedUpstream() as up:
        g = configured_gateway(tmp_path, start_gateway, f'url = "{up.url}"', STOP_POLICY,
                               gateway="upstream_timeout = 30\nshutdown_timeout = 1\nidle_timeout = 60\njson_answer_wait = 5")
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", g.port))
        s.sendall(_request(g.port, g.token, "big_json", "big") + _request(g.port, g.token, tool, "late"))
        await asyncio.sleep(2.5)  # `late` answered (or its notification sent) upstream; its head waits on the paused connection
        g.proc.p.send_signal(signal.SIGTERM)
        await asyncio.sleep(1.8)  # past shutdown_timeout: the waiting write is cancelled
        s.setblocking(False)
        data = await _read_to_end(s)
        g.proc.p.wait(20)
    second = data[data.find(b"HTTP/1.1", 100):]
    assert second.startswith(b"HTTP/1.1 200 "), second[:300]
    head, _, body = second.partition(b"\r\n\r\n")
    assert f"content-type: {ctype}".encode() in head.lower(), head
    assert reads.encode() in body and b'"id":"late"' in body.replace(b" ", b""), body[:300]
    rows = dict(sqlite3.connect(g.state / "audit.db").execute("SELECT request_id, outcome FROM audit").fetchall())
    assert rows == {'"big"': "forwarded", '"late"': outcome}, rows
    assert not [r for r in g.log_records() if r.get("event") in ("internal_error", "internal_error_unanswered")]


@pytest.mark.parametrize("wait, ctype, head_within", [
    (0.3, "text/event-stream", 0.9),  # the wait ran out: the stream begins, the answer comes in it a second later
    (5, "application/json", None),  # the answer came within the wait
    (0, "text/event-stream", 0.9),  # 0: never held, the stream begins at once, as the upstream's did
])
async def test_the_head_is_held_json_answer_wait_seconds_at_most(tmp_path, start_gateway, wait, ctype, head_within):
    """A proxy in front of the gateway may want a response begun within some time: an
    answer's event stream is held for its first message `json_answer_wait` seconds at
    most (`sse_slow` answers a second after its head)."""
    async with ScriptedUpstream() as up:
        g = configured_gateway(tmp_path, start_gateway, f'url = "{up.url}"', "permit (principal, action, resource);\n",
                               gateway=f"json_answer_wait = {wait}")
        body = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                           "params": {"name": "sse_slow", "arguments": {}, "_meta": MODERN_META}})
        headers = {"Authorization": f"Bearer {g.token}", "Content-Type": "application/json", "Accept": BOTH,
                   "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "sse_slow"}
        async with httpx2.AsyncClient(timeout=30) as http:
            t0 = time.monotonic()
            async with http.stream("POST", g.url(), headers=headers, content=body) as r:
                head_at = time.monotonic() - t0
                data = await r.aread()
        assert r.headers["content-type"].split(";")[0] == ctype
        if head_within is not None:
            assert head_at < head_within, head_at
        else:
            assert head_at >= 0.9, head_at  # held until the answer came
        m = parse_response(httpx2.Response(200, headers=r.headers, content=data))
        assert m["id"] == 7 and m["result"]["content"][0]["text"] == "ran sse_slow", m
        assert sqlite3.connect(g.state / "audit.db").execute("SELECT outcome FROM audit").fetchall() == [("forwarded",)]


async def test_an_upstream_header_http_cannot_carry_is_dropped(scripted):
    """hostile review 35, H35-2: a control character in a header value the gateway passes on
    made uvicorn refuse the client's head whole (the client got no answer at all). The
    header is dropped (and logged); the answer goes out."""
    g = scripted
    async with httpx2.AsyncClient(timeout=30) as http:
        for i, tool in enumerate(("bad_header", "sse_bad_header")):
            r = await post(http, g, tool, BOTH, i, "2026-07-28")
            assert r.status_code == 200 and "cache-control" not in r.headers, (tool, r.headers)
            assert parse_response(r)["result"]["content"][0]["text"] == f"ran {tool}"
    dropped = [x for x in g.log_records() if x.get("event") == "upstream_header_dropped"]
    assert len(dropped) == 2 and {x["header"] for x in dropped} == {"cache-control"}, dropped
    assert not [x for x in g.log_records() if x.get("event") in ("internal_error", "stream_relay_failed")]


@pytest.mark.parametrize("how, code, says", [
    ("timeout", -32002, "upstream unavailable"),  # upstream_timeout with no event: the stream is cut, the client told
    ("stop", -32603, "the gateway is stopping"),  # the gateway stops (shutdown_timeout) while the stream is open
])
async def test_a_requests_open_stream_cut_by_the_gateway_is_answered(tmp_path, start_gateway, how, code, says):
    """A prompts/get whose event stream (begun with a keep-alive) goes silent: when the
    gateway cuts it — `upstream_timeout`, or its own stop — the stream's last event is a
    JSON-RPC error with the request's id, not an end with no answer."""
    async with ScriptedUpstream() as up:
        g = configured_gateway(tmp_path, start_gateway, f'url = "{up.url}"', "permit (principal, action, resource);\n",
                               gateway=f"upstream_timeout = {1.5 if how == 'timeout' else 30}\nshutdown_timeout = 1")
        async with httpx2.AsyncClient(timeout=30) as http:
            task = asyncio.ensure_future(post(http, g, "sse_hang", BOTH, "cut", "2026-07-28", method="prompts/get"))
            if how == "stop":
                await asyncio.sleep(0.8)
                g.proc.p.send_signal(signal.SIGTERM)
            r = await task
        if how == "stop":
            g.proc.p.wait(20)
        assert r.headers["content-type"].split(";")[0] == "text/event-stream", r.headers
        m = parse_response(r)
        assert m["id"] == "cut" and m["error"]["code"] == code and says in m["error"]["message"], m
        assert not [x for x in g.log_records() if x.get("event") in ("internal_error", "internal_error_unanswered")]


@pytest.mark.parametrize("method", ["tools/call", "prompts/get"])
@pytest.mark.parametrize("accept", [BOTH, "text/event-stream"])
async def test_an_answer_ended_by_a_cr_is_relayed_at_once(tmp_path, start_gateway, method, accept):
    """hostile review 36, H36-1: an upstream writing CR-only line ends sends a complete
    answer (`…\\r\\r`) and keeps its stream open. The final CR ends the answer's event when it
    comes: the client has the answer at once, not a timeout error `upstream_timeout` later."""
    async with ScriptedUpstream() as up:
        g = configured_gateway(tmp_path, start_gateway, f'url = "{up.url}"', "permit (principal, action, resource);\n",
                               gateway="upstream_timeout = 10")
        async with httpx2.AsyncClient(timeout=30) as http:
            t0 = time.monotonic()
            r = await post(http, g, "sse_cr_open", accept, "cr", "2026-07-28", method=method)
            took = time.monotonic() - t0
        up.release.set()
        m = parse_response(r)
        text = (m["result"]["content"][0]["text"] if method == "tools/call" else m["result"]["messages"][0]["content"]["text"])
        assert m["id"] == "cr" and text == "ran sse_cr_open", m
        assert took < 5, took
        if method == "tools/call":
            assert sqlite3.connect(g.state / "audit.db").execute("SELECT outcome FROM audit").fetchall() == [("forwarded",)]


@pytest.mark.parametrize("method", ["tools/call", "prompts/get"])
async def test_a_stream_the_upstream_ends_unanswered_while_the_gateway_stops(tmp_path, start_gateway, method):
    """hostile review 37, H37-1: the gateway is stopping (SIGTERM; `shutdown_timeout` 10 s,
    not passed) when the upstream ends a request's stream without its answer — an upstream
    stopped with its gateway does that. The relay was not cut by the stop, so the stream is
    answered as any unanswered stream is: the `[GATEWAY ERROR]` result, settled
    `upstream_error` (was: an empty stream, audited `forwarded`), or -32002."""
    async with ScriptedUpstream() as up:
        g = configured_gateway(tmp_path, start_gateway, f'url = "{up.url}"', "permit (principal, action, resource);\n",
                               gateway="upstream_timeout = 30\nshutdown_timeout = 10")
        async with httpx2.AsyncClient(timeout=30) as http:
            task = asyncio.ensure_future(post(http, g, "sse_end_later", BOTH, "unanswered", "2026-07-28", method=method))
            await asyncio.sleep(0.5)
            g.proc.p.send_signal(signal.SIGTERM)
            r = await task
        g.proc.p.wait(20)
        m = parse_response(r)
        assert m["id"] == "unanswered", m
        if method == "tools/call":
            assert "The upstream ended its stream without answering" in m["result"]["content"][0]["text"], m
            rows = sqlite3.connect(g.state / "audit.db").execute("SELECT outcome FROM audit").fetchall()
            assert rows == [("upstream_error",)], rows
        else:
            assert m["error"]["code"] == -32002 and "ended its stream without answering" in m["error"]["message"], m
        assert not [x for x in g.log_records() if x.get("event") in ("internal_error", "internal_error_unanswered")]


async def test_a_stop_while_an_approved_calls_answer_waits_on_a_slow_client(tmp_path, start_gateway):
    """hostile review 39, H39-1: a 2025 session's call approved through the gateway's
    elicitation on the call's own stream; the upstream answers with two 2 MiB notifications
    and the answer, and the client reads nothing after the elicitation, so the answer (settled
    `forwarded`) waits to be written when the stop (shutdown_timeout 1 s) cancels it. The
    client still gets it, and the stream's end (was: a cut stream, no answer)."""
    era = "2025-06-18"
    async with ScriptedUpstream() as up:
        up.session_id = "sess-1"
        g = configured_gateway(tmp_path, start_gateway, f'url = "{up.url}"',
                               '@approval("needs a person")\npermit (principal, action == Action::"sse_big_notes", resource);\n',
                               gateway="upstream_timeout = 30\nshutdown_timeout = 1\nidle_timeout = 60\napproval_wait = 30",
                               server="approval_elicitation = true")
        headers = {"Authorization": f"Bearer {g.token}", "Content-Type": "application/json", "Accept": BOTH,
                   "MCP-Protocol-Version": era}
        async with httpx2.AsyncClient(timeout=30) as http:
            r = await http.post(g.url(), headers=headers, content=json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                                "params": {"protocolVersion": era, "capabilities": {"elicitation": {}},
                                           "clientInfo": {"name": "t", "version": "1"}}}))
            headers["Mcp-Session-Id"] = r.headers["mcp-session-id"]
            await http.post(g.url(), headers=headers, content=json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            body = json.dumps({"jsonrpc": "2.0", "id": "call", "method": "tools/call", "params": {"name": "sse_big_notes", "arguments": {}}})
            head = (f"POST /mcp/default/ HTTP/1.1\r\nHost: 127.0.0.1:{g.port}\r\n"
                    + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + f"Content-Length: {len(body)}\r\n\r\n")
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", g.port))
            s.setblocking(False)
            loop = asyncio.get_running_loop()
            await loop.sock_sendall(s, head.encode() + body.encode())
            got, eid = b"", None
            deadline = time.monotonic() + 15
            while eid is None and time.monotonic() < deadline:  # small reads: the elicitation, no more
                got += await asyncio.wait_for(loop.sock_recv(s, 1024), 15)
                for line in got.replace(b"\r\n", b"\n").split(b"\n"):
                    if line.startswith(b"data:") and b"elicitation/create" in line:
                        eid = json.loads(line[5:])["id"]
            assert eid is not None, got[:500]
            r = await http.post(g.url(), headers=headers, content=json.dumps(
                {"jsonrpc": "2.0", "id": eid, "result": {"action": "accept", "content": {"approve": True}}}))
            assert r.status_code == 202, r.text
        await asyncio.sleep(1.5)  # approved, forwarded, the notifications fill the socket; the answer waits
        g.proc.p.send_signal(signal.SIGTERM)
        await asyncio.sleep(2.5)  # past shutdown_timeout: the waiting write is cancelled
        data = await _read_to_end(s)
        g.proc.p.wait(20)
    whole = got + data
    assert b'"ran sse_big_notes"' in whole.replace(b" ", b"") or b"ran sse_big_notes" in whole, whole[-400:]
    assert whole.endswith(b"0\r\n\r\n"), whole[-200:]
    rows = sqlite3.connect(g.state / "audit.db").execute("SELECT request_id, outcome FROM audit WHERE request_id IS NOT NULL").fetchall()
    assert rows == [('"call"', "forwarded")], rows
    assert not [x for x in g.log_records() if x.get("event") in ("internal_error", "internal_error_unanswered")]


@pytest.mark.parametrize("reader", ["reads_late", "never_reads", "reads_slowly"])
async def test_an_answer_already_written_reaches_a_slow_client_through_the_stop(tmp_path, start_gateway, reader):
    """hostile review 39, H39-3: one call, an 8 MiB answer, a client that reads nothing yet.
    Its write returned (the bytes wait in the connection's buffer), its request is done, and
    the stop (shutdown_timeout 1 s) had nothing to wait for: the process exited with the
    answer's bytes, and the client read 2.8 MB of it. The stop now waits while answers
    written wait to be taken (`_flush_answers`), `FLUSH_SECONDS` at most: a client that
    begins reading half a second into that wait gets the whole answer; one that reads
    16 KiB/s with a large receive buffer is waited for to the end (a stall rule, which reads
    the client's progress from TCP's coarse window updates, gave it up at 3 s: hostile
    review 40, H40-1); one that never reads holds the stop no longer, and the cut is logged."""
    from mcpp.runtime.gateway import stopping

    async with ScriptedUpstream() as up:
        g = configured_gateway(tmp_path, start_gateway, f'url = "{up.url}"', "permit (principal, action, resource);\n",
                               gateway="upstream_timeout = 30\nshutdown_timeout = 1\nidle_timeout = 60")
        s = socket.socket()
        if reader != "reads_slowly":  # (its kernel buffer as the system sizes it: the window opens in 64 KiB steps)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", g.port))
        s.sendall(_request(g.port, g.token, "big_json", "big"))
        await asyncio.sleep(2)  # answered: the answer waits in the connection's buffer
        g.proc.p.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        if reader == "reads_slowly":  # 16 KiB/s: TCP shows it in 64 KiB steps; it is waited for (H40-1)
            s.setblocking(False)
            while g.proc.p.poll() is None and time.monotonic() - t0 < 30:
                with contextlib.suppress(BlockingIOError):
                    s.recv(16 << 10)
                await asyncio.sleep(1)
            took = time.monotonic() - t0
            s.close()
            cut = [r for r in g.log_records() if r.get("event") == "answers_cut_at_stop"]
            assert cut and cut[0]["why"] == "flush time over" and took >= stopping.FLUSH_SECONDS, (took, cut)
            return
        if reader == "never_reads":
            g.proc.p.wait(30)
            took = time.monotonic() - t0
            s.close()
            assert stopping.FLUSH_SECONDS <= took < 1 + stopping.FLUSH_SECONDS + 3, took  # (shutdown_timeout, the flush, the rest)
            cut = [r for r in g.log_records() if r.get("event") == "answers_cut_at_stop"]
            assert cut and cut[0]["connections"] == 1 and cut[0]["why"] == "flush time over", cut
            # what the exit takes (the transport's buffer); the kernel's queue is still sent (H40-3)
            assert 0 < cut[0]["bytes"] < 8_400_000 and cut[0]["in_kernel"] >= 0, cut
            return
        await asyncio.sleep(1.5)  # past shutdown_timeout, within the stall allowance
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        s.setblocking(False)
        data = await _read_to_end(s)
        g.proc.p.wait(20)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head[:300]
    length = int(next(v for k, _, v in (line.partition(b":") for line in head.split(b"\r\n")) if k.lower() == b"content-length"))
    assert len(body) == length > 8_000_000, (len(body), length)
    assert json.loads(body)["id"] == "big"
    assert not [r for r in g.log_records() if r.get("event") == "answers_cut_at_stop"]


LIST_ROWS = [  # (the upstream's tools/list answer, the client's Accept, the framing with json_answer_wait > 0, the note relayed)
    ("ok", BOTH, "application/json", False),
    ("sse", BOTH, "application/json", False),  # the answer alone: JSON, as for any other request
    ("sse_note_after", BOTH, "application/json", False),  # (what follows an answer is dropped, as after any)
    ("sse_primed", BOTH, "text/event-stream", False),  # an event before the answer: the stream as it came
    ("sse_note", BOTH, "text/event-stream", True),
    ("sse", "application/json;q=0, text/event-stream", "text/event-stream", False),  # JSON refused
    ("sse_comment", BOTH, "text/event-stream", False),  # a keep-alive first starts the stream, as in `_HeadWaits` (H40-5)
    # what follows the answer is dropped, whatever the framing (hostile review 40, H40-4: a
    # client taking JSON got the listing, one taking only a stream a 502)
    ("sse_then_garbage", BOTH, "application/json", False),
    ("sse_then_garbage", "application/json;q=0, text/event-stream", "text/event-stream", False),
    ("sse_held_open", BOTH, "application/json", False),  # read to its answer, not its end (H40-6)
    ("sse_held_open", "application/json;q=0, text/event-stream", "text/event-stream", False),
]


@pytest.mark.parametrize("wait", [1, 0])
async def test_a_listing_answered_with_an_event_stream_is_framed_as_other_answers(tmp_path, start_gateway, wait):
    """A `tools/list` the upstream answers with an event stream holding only its answer went
    to the client as an event stream even when the client takes JSON, unlike every other
    request ("Answers as JSON"): the SDK client then closed its connection for each listing.
    The listing is read whole (to check and filter it), so it is answered as `_HeadWaits`
    answers: JSON when the answer comes first and the client takes JSON, unless
    `json_answer_wait = 0`, which relays every event stream as it came."""
    async with ScriptedUpstream() as up:
        g = configured_gateway(tmp_path, start_gateway, f'url = "{up.url}"', "permit (principal, action, resource);\n",
                               gateway=f"upstream_timeout = 5\njson_answer_wait = {wait}")
        async with httpx2.AsyncClient(timeout=30) as http:
            for i, (mode, accept, ctype, note) in enumerate(LIST_ROWS):
                up.list_mode = mode
                headers = {"Authorization": f"Bearer {g.token}", "Content-Type": "application/json", "Accept": accept,
                           "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list"}
                body = {"jsonrpc": "2.0", "id": f"list-{i}", "method": "tools/list", "params": {"_meta": MODERN_META}}
                t0 = time.monotonic()
                r = await http.post(g.url(), headers=headers, content=json.dumps(body))
                assert r.status_code == 200 and time.monotonic() - t0 < 4, (mode, accept, r.text)  # (upstream_timeout 5)
                want = ctype if wait or mode == "ok" else "text/event-stream"
                assert r.headers["content-type"].split(";")[0] == want, (mode, accept, wait, r.headers)
                if want == "application/json":
                    assert int(r.headers["content-length"]) == len(r.content)
                    m = r.json()
                else:
                    messages = [json.loads(line[5:]) for line in r.text.splitlines() if line.startswith("data:") and line[5:].strip()]
                    assert [x.get("method") for x in messages if "id" not in x] == (["notifications/message"] if note else []), (
                        mode, messages)
                    m = next(x for x in messages if "id" in x)
                assert m["id"] == f"list-{i}" and {t["name"] for t in m["result"]["tools"]} >= {"ok", "hang"}, (mode, m)
                assert r.headers["cache-control"] == "private, no-store", r.headers
