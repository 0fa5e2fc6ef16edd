"""Gateway-assigned upstream request ids (docs/gateway.md, "Request ids").

Every request goes upstream with an id the gateway chose, and only an answer carrying that
id is relayed, with the client's id put back. The threat: an upstream that answers a
request twice, on a kept-alive connection the pool has meanwhile handed to another call
(another caller's, maybe), whose client used the same id (clients nearly all start at 1).
The upstream here (a ScriptedUpstream with a few more behaviours) writes the second answer
only once the next request has arrived on that connection, so the stale answer is always
the one the next call reads first: the case HTTP/1.1 itself cannot tell apart.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3

import httpx2
import pytest

from mcpp.runtime.gateway import jsonrpc as rpc
from mcpp.runtime.gateway.http_client import HTTPUpstream, Response, _Conn
from mcpp.runtime.gateway.proxy import upstream_id

from .peers import call_tool, create_grant, free_port, result_text, write
from .scripted import ScriptedUpstream, tool_def

POLICY = 'permit (principal, action, resource);\nlimit "calls" (principal, action, resource) max 1000 per hour scope grant;\n'
LEGACY = "2025-06-18"
TOOLS = ("ok", "late_second", "client_id", "sse_foreign", "sse_only_foreign", "hang", "huge", "sse_unreadable")


class IdUpstream(ScriptedUpstream):
    """Records every message it receives; sessions (`initialize` opens "s-1");
    - `late_second`: answers, and answers again (same id, text "STALE …") in front of the
      answer to the next request on the same connection;
    - `client_id`: answers with id 1, whatever id the request had (what a stale answer
      to a client that used id 1 looked like before the gateway chose the ids);
    - `sse_foreign`: a stream with a response to another id, a notification, then the answer;
    - `sse_only_foreign`: a stream with a response to another id only;
    - `huge`: an answer with a number no double holds (`1e400`, valid JSON);
    - `sse_unreadable`: a stream whose answer has the right id but no result and no error;
    - `resources/read` of `foreign://x`: answered with another id."""

    def __init__(self) -> None:
        super().__init__()
        self.tools = [tool_def(n) for n in TOOLS]
        self.seen: list[dict] = []
        self.raw: list[bytes] = []  # the bodies as they came
        self.stale: dict = {}  # writer → a second answer, written before the next one
        self.got_cancel = asyncio.Event()
        self.hanging = asyncio.Event()

    def ids_of(self, method: str) -> list:
        return [m.get("id") for m in self.seen if m.get("method") == method]

    async def _answer(self, body: bytes, writer) -> bool:
        msg = json.loads(body) if body else {}
        self.seen.append(msg)
        self.raw.append(body)
        stale = self.stale.pop(writer, None)
        if stale is not None:
            writer.write(stale)  # the late second answer to the previous request: it comes first
        rid, method = msg.get("id"), msg.get("method")
        params = msg.get("params") or {}
        if method == "initialize":
            res = {"protocolVersion": LEGACY, "capabilities": {"tools": {}}, "serverInfo": {"name": "ids", "version": "1"}}
            self._send(writer, 200, json.dumps({"jsonrpc": "2.0", "id": rid, "result": res}).encode(), extra="mcp-session-id: s-1\r\n")
            await writer.drain()
            return True
        if method is None or "id" not in msg:  # a notification (a cancellation, say) or a client's answer
            stale = {"jsonrpc": "2.0", "id": 41, "result": {"content": [{"type": "text", "text": "SECRET-OTHER"}]}}
            if method == "notifications/stale_batch":  # a late answer inside a batch array
                self._send(writer, 200, json.dumps([stale]).encode())
                await writer.drain()
                return True
            if method == "notifications/stale_text":  # … as text/plain
                self._send(writer, 200, json.dumps(stale).encode(), "text/plain")
                await writer.drain()
                return True
            if method == "notifications/stale_stream":  # … in an event stream, beside a notification
                note = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "note"}}
                payload = b"".join(b"event: message\r\ndata: " + json.dumps(e).encode() + b"\r\n\r\n" for e in (stale, note))
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                             + b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload))
                await writer.drain()
                return True
            if method == "notifications/cancelled":
                self.got_cancel.set()
            self._send(writer, 202, b"")
            await writer.drain()
            return True
        if method == "resources/read" and params.get("uri") == "foreign://x":
            other = {"jsonrpc": "2.0", "id": rid + 1 if isinstance(rid, int) else 1, "result": {"contents": [{"text": "SECRET-OTHER"}]}}
            self._send(writer, 200, json.dumps(other).encode())
            await writer.drain()
            return True
        name = params.get("name") if method == "tools/call" else None
        if name not in TOOLS[1:]:
            return await super()._answer(body, writer)
        self.calls.append((name, params.get("arguments") or {}))
        who = (params.get("arguments") or {}).get("who", "")
        ok = {"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", "text": f"ran {name} for {who}"}]}}
        if name == "late_second":
            self._send(writer, 200, json.dumps(ok).encode())
            again = {"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", "text": f"STALE answer for {who}"}]}}
            data = json.dumps(again).encode()
            self.stale[writer] = (f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n"
                                  .encode() + data)
        elif name == "client_id":
            self._send(writer, 200, json.dumps({**ok, "id": 1}).encode())
        elif name == "huge":
            self._send(writer, 200, b'{"jsonrpc":"2.0","id":%d,"result":{"content":[],"structuredContent":{"n":1e400}}}' % rid)
        elif name == "sse_unreadable":
            payload = b"event: message\r\ndata: " + json.dumps({"jsonrpc": "2.0", "id": rid}).encode() + b"\r\n\r\n"
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n%s"
                         % (len(payload), payload))
        elif name == "hang":
            self.hanging.set()
            try:
                async with asyncio.timeout(20):
                    await self.release.wait()
            except TimeoutError:
                return False
            self._send(writer, 200, json.dumps(ok).encode())
        else:
            foreign = {"jsonrpc": "2.0", "id": rid + 1 if isinstance(rid, int) else 1,
                       "result": {"content": [{"type": "text", "text": "SECRET-OTHER"}]}}
            events = [foreign]
            if name == "sse_foreign":
                events += [{"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "note"}}, ok]
            payload = b"".join(b"event: message\r\ndata: " + json.dumps(e).encode() + b"\r\n\r\n" for e in events)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                         + b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload))
        await writer.drain()
        return True


def charged(state) -> float:
    db = state / "counters.db"
    if not db.exists():
        return 0
    return sqlite3.connect(db).execute("SELECT COALESCE(SUM(value), 0) FROM counters").fetchone()[0]


def audit(state) -> list[tuple]:
    return sqlite3.connect(state / "audit.db").execute(
        "SELECT tool, outcome, request_id, grant_label FROM audit ORDER BY seq").fetchall()


@pytest.fixture
async def gw(tmp_path, start_gateway):
    async with IdUpstream() as up:
        port = free_port()
        write(tmp_path / "policy.mcpp", POLICY)
        # typed calls off: no listing of the gateway's own shares the connection with the calls
        config = write(tmp_path / "gateway.toml", f"""
[gateway]
port = {port}
state_dir = "state"
upstream_timeout = 5

[[servers]]
id = "default"
url = "{up.url}"
policy = "policy.mcpp"
enforce_input_schema = false
""")
        a = create_grant(tmp_path / "state", "a")
        b = create_grant(tmp_path / "state", "b")
        g = start_gateway("--config", str(config), port=port)
        g.a, g.b, g.state = a["token"], b["token"], tmp_path / "state"
        yield up, g


def _headers(token: str, session: str | None = None) -> dict:
    h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
         "MCP-Protocol-Version": LEGACY, "Authorization": f"Bearer {token}"}
    if session is not None:
        h["Mcp-Session-Id"] = session
    return h


async def _rpc(http, g, token: str, method: str, params: dict | None, rid, session: str | None = None):
    body = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        body["params"] = params
    return await http.post(g.url(), headers=_headers(token, session), content=json.dumps(body))


def _one(r) -> dict:
    """The response in an answer: the JSON body, or the last response event of a stream."""
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        msgs = [json.loads(line[5:]) for line in r.text.splitlines() if line.startswith("data:") and line[5:].strip()]
        answers = [m for m in msgs if "method" not in m]
        assert len(answers) == 1, msgs
        return answers[0]
    return r.json()


async def test_a_late_second_answer_never_reaches_the_next_caller(gw):
    """A's call is answered twice; the second answer comes first on the connection's next
    exchange. Another caller never gets that connection (connections are reused per caller:
    http_client.LANE), so B's call is answered as usual, whatever B sends. A's own next
    call reads the stale answer, which carries an id the gateway did not send: it is not
    relayed, the call is an upstream error (sent, so counted), and the connection dropped."""
    up, g = gw
    async with httpx2.AsyncClient(timeout=30) as http:
        for i in range(3):
            before = charged(g.state)
            ra = await call_tool(http, g.url(), g.a, "late_second", {"who": f"A{i}"}, rid=1)
            assert result_text(ra) == f"ran late_second for A{i}"
            rb = await call_tool(http, g.url(), g.b, "ok", {"who": f"B{i}"}, rid=1)
            assert result_text(rb) == "ran ok" and "STALE" not in json.dumps(rb) and f"A{i}" not in json.dumps(rb), rb
            # a notification of B's: its own 202, never A's answer (hostile17 F1)
            n = await http.post(g.url(), headers=_headers(g.b), content=json.dumps(
                {"jsonrpc": "2.0", "method": "notifications/initialized"}))
            assert n.status_code == 202 and b"STALE" not in n.content, n.content
            ra2 = await call_tool(http, g.url(), g.a, "ok", {"who": f"A{i}-next"}, rid=1)
            assert ra2["id"] == 1 and ra2["result"]["isError"] is True, ra2
            text = result_text(ra2)
            assert "STALE" not in json.dumps(ra2) and text.startswith("[GATEWAY ERROR]") and "may or may not have run" in text
            assert audit(g.state)[-3:] == [("late_second", "forwarded", "1", "a"), ("ok", "forwarded", "1", "b"),
                                           ("ok", "upstream_error", "1", "a")]
            assert charged(g.state) - before == 3  # every call kept: A's second may have run (OUTCOME_COUNTED)
            assert up.executed("ok")[-1] == {"who": f"A{i}-next"}  # it did reach the upstream
            # the connection that carried the stale answer was not reused: A's next call is answered
            ra3 = await call_tool(http, g.url(), g.a, "ok", {"who": f"A{i}-again"}, rid=1)
            assert result_text(ra3) == "ran ok" and up.executed("ok")[-1] == {"who": f"A{i}-again"}, ra3
    # the upstream never saw the client's id 1, and never one id twice
    ids = up.ids_of("tools/call")
    assert len(ids) == 12 and len(set(ids)) == 12 and all(type(i) is int and i != 1 for i in ids), ids


async def test_an_answer_with_another_id_is_never_relayed(gw):
    up, g = gw
    async with httpx2.AsyncClient(timeout=30) as http:
        # a JSON answer carrying the id the client used (1), not the one the gateway sent
        r = await call_tool(http, g.url(), g.a, "client_id", {"who": "A"}, rid=1)
        assert r["result"]["isError"] is True and "ran client_id" not in json.dumps(r), r
        assert audit(g.state)[-1][:2] == ("client_id", "upstream_error")
        # a stream: the response to another id is dropped, the notification and the answer pass
        r = await _rpc(http, g, g.a, "tools/call", {"name": "sse_foreign", "arguments": {"who": "A"}}, 7)
        assert "SECRET-OTHER" not in r.text, r.text
        msgs = [json.loads(line[5:]) for line in r.text.splitlines() if line.startswith("data:")]
        assert [m.get("method") for m in msgs] == ["notifications/message", None], msgs
        assert msgs[-1] == {"jsonrpc": "2.0", "id": 7, "result": {"content": [{"type": "text", "text": "ran sse_foreign for A"}]}}
        assert audit(g.state)[-1][:2] == ("sse_foreign", "forwarded")
        # a stream with only a response to another id: no answer, an upstream error (counted)
        before = charged(g.state)
        r = await _rpc(http, g, g.a, "tools/call", {"name": "sse_only_foreign", "arguments": {}}, 8)
        assert "SECRET-OTHER" not in r.text, r.text
        m = _one(r)
        assert m["id"] == 8 and "ended its stream without answering" in m["result"]["content"][0]["text"], m
        assert audit(g.state)[-1][:2] == ("sse_only_foreign", "upstream_error")
        assert charged(g.state) - before == 1
        # another method's answer with another id: HTTP 502, -32002, nothing of the answer
        r = await _rpc(http, g, g.a, "resources/read", {"uri": "foreign://x"}, 9)
        assert r.status_code == 502 and "SECRET-OTHER" not in r.text, r.text
        assert r.json()["id"] == 9 and r.json()["error"]["code"] == -32002
    dropped = [x for x in g.log_records() if x.get("event") == "upstream_events_dropped"]
    assert any(x.get("why") == "an answer to another request" for x in dropped), dropped


@pytest.mark.parametrize("cid", [1, 0, -5, 2**53, "abc", ""], ids=repr)
async def test_the_client_gets_its_own_id_back_exactly(gw, cid):
    up, g = gw
    async with httpx2.AsyncClient(timeout=30) as http:
        for method, params in (("tools/call", {"name": "ok", "arguments": {}}), ("tools/list", None), ("ping", None),
                               ("tools/call", {"name": "sse_foreign", "arguments": {}})):
            r = await _rpc(http, g, g.a, method, params, cid)
            assert r.status_code == 200, r.text
            m = _one(r)
            assert m["id"] == cid and type(m["id"]) is type(cid), (method, m)
            assert "result" in m, (method, m)
            sent = up.seen[-1]
            assert sent["method"] == method and type(sent["id"]) is int and sent["id"] != cid, sent
    assert audit(g.state)[-1][2] == json.dumps(cid)  # the audit row keeps the client's id


async def test_a_cancellation_names_the_gateways_id(gw):
    up, g = gw
    async with httpx2.AsyncClient(timeout=30) as http:
        r = await _rpc(http, g, g.a, "initialize", {"protocolVersion": LEGACY, "capabilities": {},
                                                     "clientInfo": {"name": "t", "version": "1"}}, 0)
        assert r.status_code == 200 and r.json()["id"] == 0, r.text
        session = r.headers["mcp-session-id"]
        call = asyncio.create_task(_rpc(http, g, g.a, "tools/call", {"name": "hang", "arguments": {}}, 5, session))
        async with asyncio.timeout(15):
            await up.hanging.wait()
        sent = up.seen[-1]
        assert sent["method"] == "tools/call" and sent["id"] != 5
        cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 5, "reason": "enough"}}
        r = await http.post(g.url(), headers=_headers(g.a, session), content=json.dumps(cancel))
        assert r.status_code == 202, r.text
        async with asyncio.timeout(15):
            await up.got_cancel.wait()
        got = up.seen[-1]
        assert got["method"] == "notifications/cancelled"
        assert got["params"] == {"requestId": sent["id"], "reason": "enough"} and "id" not in got
        up.release.set()
        async with asyncio.timeout(15):
            r = await call
        assert _one(r)["id"] == 5
        # once the call is answered its id is no longer in flight: a cancellation goes as sent
        up.got_cancel.clear()
        r = await http.post(g.url(), headers=_headers(g.a, session), content=json.dumps(cancel))
        assert r.status_code == 202
        async with asyncio.timeout(15):
            await up.got_cancel.wait()
        assert up.seen[-1]["params"]["requestId"] == 5
        # a client's answer to the upstream's own request (no method) keeps the upstream's id
        answer = {"jsonrpc": "2.0", "id": 42, "result": {}}
        r = await http.post(g.url(), headers=_headers(g.a, session), content=json.dumps(answer))
        assert r.status_code == 202 and up.seen[-1] == answer


class _Writer:
    def __init__(self) -> None:
        self.closed = False

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def test_a_discarded_answer_takes_its_connection_out_of_the_pool():
    async def go():
        pool = HTTPUpstream("http://127.0.0.1:9/mcp")
        conns = []
        for _ in range(2):
            r = asyncio.StreamReader()
            r.feed_data(b"ok")
            conns.append(_Conn(r, _Writer()))
        kept, dropped = (Response(pool, c, 200, [("content-length", "2")], "length", 2) for c in conns)
        assert await kept.read(5) == b"ok" and await dropped.read(5) == b"ok"
        assert pool.idle_connections() == conns  # both ended: both pooled
        dropped.discard()  # its answer was not the request's: out of step
        assert pool.idle_connections() == [conns[0]] and conns[1].writer.closed and not conns[0].writer.closed
        # a stream still being read: closed when released, never pooled
        r = asyncio.StreamReader()
        r.feed_data(b"2\r\nok\r\n0\r\n\r\n")
        held = Response(pool, _Conn(r, _Writer()), 200, [("transfer-encoding", "chunked")], "chunked", None)
        writer = held.conn.writer
        held.discard()
        assert await held.read(5) == b"ok"
        assert writer.closed and pool.idle_connections() == [conns[0]]
    asyncio.run(go())


def test_upstream_ids_are_unique_integers_a_javascript_number_holds():
    ids = [upstream_id() for _ in range(1000)]
    assert len(set(ids)) == 1000 and all(type(i) is int and 0 <= i < 2**53 for i in ids)


@pytest.mark.parametrize("obj, finite", [
    ({"jsonrpc": "2.0", "id": 2**53, "result": {"content": [{"type": "text", "text": "é \"q\" \u2028 \\"}],
                                                "x": [1.5, -0.0, 1e300, None, True]}}, True),
    ({"id": "", "a": {}}, True), ([], True), ("s", True), (0, True), ({"n": float("nan")}, False), ([float("inf")], False),
])
def test_the_compact_encoder_writes_what_json_dumps_writes(obj, finite):
    assert rpc.compact(obj) == json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    if finite:
        assert rpc.compact_finite(obj) == rpc.compact(obj)
    else:
        with pytest.raises(ValueError):
            rpc.compact_finite(obj)


async def test_every_message_goes_upstream_as_the_gateway_read_it(gw):
    """hostile17 F10: a forbidden tools/call dressed as a client's answer (a duplicate
    `method`, the last one null) or as a notification went upstream as raw bytes, undecided:
    an upstream whose JSON reader keeps the first of duplicate keys ran it. Every message is
    now re-serialised as the gateway read it; F5: ids JSON-RPC forbids are refused."""
    up, g = gw
    async with httpx2.AsyncClient(timeout=30) as http:
        disguised = [
            b'{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"ok","arguments":{}},"result":{},"method":null}',
            b'{"jsonrpc":"2.0","method":"tools/call","params":{"name":"ok","arguments":{}},"method":"notifications/progress"}',
        ]
        for body in disguised:
            before = len(up.raw)
            r = await http.post(g.url(), headers=_headers(g.a), content=body)
            assert r.status_code == 202, r.text
            assert len(up.raw) == before + 1 and b"tools/call" not in up.raw[-1], up.raw[-1]
        # (and hostile22 F3/F5: ids the gateway could not write back in any answer: NaN,
        # 1e400, a lone surrogate — a tools/call with one was forwarded and ran, and its
        # answer was no JSON; the stop's 503 for it a plain-text 500)
        for bad in (b"{}", b"[1]", b"true", b"false", b"NaN", b"-Infinity", b"1e400", b'"\\ud800"', b'"a\\udfff"'):
            for method in (b'"ping"', b'"tools/call","params":{"name":"ok","arguments":{}}'):
                before = len(up.raw)
                r = await http.post(g.url(), headers=_headers(g.a),
                                    content=b'{"jsonrpc":"2.0","id":%s,"method":%s}' % (bad, method))
                assert r.status_code == 400 and r.json() == {"jsonrpc": "2.0", "id": None, "error": {
                    "code": -32600, "message": "Invalid JSON-RPC id"}}, (bad, r.text)
                assert len(up.raw) == before
    assert not any(m.get("method") == "tools/call" and m["params"]["name"] == "ok" and m.get("id") == 4 for m in up.seen)


async def test_numbers_json_cannot_write_are_never_passed_on(gw):
    """hostile17 F6: `1e400` (valid JSON, no double holds it) was written on as `Infinity`,
    which is no JSON: a strict client refuses the whole answer. An answer with one is an
    upstream error (the call was sent: counted); a request with one is refused."""
    up, g = gw
    async with httpx2.AsyncClient(timeout=30) as http:
        r = await call_tool(http, g.url(), g.a, "huge", {}, rid=3)
        assert r["result"]["isError"] is True and "Infinity" not in json.dumps(r), r
        assert audit(g.state)[-1][:2] == ("huge", "upstream_error")
        before = len(up.raw)
        body = b'{"jsonrpc":"2.0","id":5,"method":"resources/read","params":{"uri":"x://y","_meta":{"n":1e400}}}'
        r2 = await http.post(g.url(), headers=_headers(g.a), content=body)
        assert r2.status_code == 400 and "number out of range" in r2.text and len(up.raw) == before


async def test_an_unreadable_answer_on_a_stream_is_not_relayed(gw):
    """hostile17 F11: an answer event with the call's id but neither result nor error was
    settled as an upstream error and still relayed; it is replaced by the gateway's error."""
    up, g = gw
    async with httpx2.AsyncClient(timeout=30) as http:
        r = await _rpc(http, g, g.a, "tools/call", {"name": "sse_unreadable", "arguments": {}}, 9)
        m = _one(r)
        assert m["id"] == 9 and m["result"]["isError"] is True and "not a JSON-RPC response" in m["result"]["content"][0]["text"]
        assert audit(g.state)[-1][:2] == ("sse_unreadable", "upstream_error")


async def test_a_cancellation_names_only_the_callers_own_requests(gw):
    """hostile17 F2: with an upstream that gives every client the same session id, B's
    cancellation of its id 5 was rewritten to A's call 5. The in-flight map is per caller:
    B's cancellation of an id it has not in flight goes as sent and names none of A's."""
    up, g = gw
    async with httpx2.AsyncClient(timeout=30) as http:
        init = {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
        sa = (await _rpc(http, g, g.a, "initialize", init, 0)).headers["mcp-session-id"]
        sb = (await _rpc(http, g, g.b, "initialize", init, 0)).headers["mcp-session-id"]
        up.release.clear()
        up.hanging.clear()
        call = asyncio.create_task(_rpc(http, g, g.a, "tools/call", {"name": "hang", "arguments": {}}, 5, sa))
        async with asyncio.timeout(15):
            await up.hanging.wait()
        a_gid = up.seen[-1]["id"]
        up.got_cancel.clear()
        cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 5}}
        r = await http.post(g.url(), headers=_headers(g.b, sb), content=json.dumps(cancel))
        assert r.status_code == 202
        async with asyncio.timeout(15):
            await up.got_cancel.wait()
        assert up.seen[-1]["params"]["requestId"] == 5 != a_gid  # not A's call
        up.release.set()
        async with asyncio.timeout(15):
            assert _one(await call)["id"] == 5


async def test_a_notification_is_never_answered_with_another_requests_answer(gw):
    """hostile review 33, H33-5: a late answer in the reply to a notification — inside a
    batch array, as `text/plain`, or in an event stream — is never relayed."""
    up, g = gw
    async with httpx2.AsyncClient(timeout=30) as http:
        for how in ("batch", "text"):
            r = await http.post(g.url(), headers=_headers(g.a), content=json.dumps({"jsonrpc": "2.0", "method": f"notifications/stale_{how}"}))
            assert r.status_code == 502 and "SECRET-OTHER" not in r.text, (how, r.status_code, r.text)
        r = await http.post(g.url(), headers=_headers(g.a), content=json.dumps({"jsonrpc": "2.0", "method": "notifications/stale_stream"}))
        assert r.status_code == 200 and "SECRET-OTHER" not in r.text, r.text
        msgs = [json.loads(line[5:]) for line in r.text.splitlines() if line.startswith("data:")]
        assert [m.get("method") for m in msgs] == ["notifications/message"], msgs  # the notification passes
        # the connection that carried them is not reused: the next call is answered as usual
        assert result_text(await call_tool(http, g.url(), g.a, "ok", {"who": "A"}, rid=3)) == "ran ok"
    dropped = [x for x in g.log_records() if x.get("event") == "upstream_events_dropped"]
    assert any(x.get("why") == "an answer to another request" for x in dropped), dropped


@pytest.mark.parametrize("body, answer", [
    (b'{"jsonrpc": "2.0", "id": 7, "result": {}}', True),  # another request's: never relayed for a notification
    (b'[{"jsonrpc": "2.0", "id": 7, "result": {}}]', True),  # in a batch array (H33-5)
    (b'  [{"jsonrpc": "2.0", "method": "notifications/message"}, {"jsonrpc": "2.0", "id": "x", "error": {"code": 1, "message": "m"}}]', True),
    (b'[{"jsonrpc": "2.0", "method": "notifications/message", "params": {}}]', False),
    (b'<html>{"jsonrpc": "2.0", "id": 7, "result": {}}</html>', False),  # no JSON at all
    # read as a client's JSON reader reads bytes (hostile review 35, H35-1)
    (b'\xef\xbb\xbf{"jsonrpc": "2.0", "id": 7, "result": {}}', True),  # a byte-order mark
    ('{"jsonrpc": "2.0", "id": 7, "result": {}}'.encode("utf-16-le"), True),
    ('{"jsonrpc": "2.0", "id": 7, "result": {}}'.encode("utf-16"), True),  # with its byte-order mark
    ('[{"jsonrpc": "2.0", "id": 7, "result": {}}]'.encode("utf-32-be"), True),
    (b'\xff\xfe\x00', False),  # no text in any encoding
    (b'{"jsonrpc": "2.0", "id": null, "result": {}}', True),  # hostile review 31, H31-8: a result answers some request
    (b'{"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "Parse error"}}', False),  # about the message
    (b'{"jsonrpc": "2.0", "method": "notifications/message", "params": {}}', False),
    (b"", False),
])
def test_what_counts_as_an_answer_to_some_request(body, answer):
    from mcpp.runtime.gateway.proxy import _is_answer

    assert _is_answer(body) is answer  # whatever the content type says (H33-5)
