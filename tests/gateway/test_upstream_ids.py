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
TOOLS = ("ok", "late_second", "client_id", "sse_foreign", "sse_only_foreign", "hang")


class IdUpstream(ScriptedUpstream):
    """Records every message it receives; sessions (`initialize` opens "s-1");
    - `late_second`: answers, and answers again (same id, text "STALE …") in front of the
      answer to the next request on the same connection;
    - `client_id`: answers with id 1, whatever id the request had (what a stale answer
      to a client that used id 1 looked like before the gateway chose the ids);
    - `sse_foreign`: a stream with a response to another id, a notification, then the answer;
    - `sse_only_foreign`: a stream with a response to another id only;
    - `resources/read` of `foreign://x`: answered with another id."""

    def __init__(self) -> None:
        super().__init__()
        self.tools = [tool_def(n) for n in TOOLS]
        self.seen: list[dict] = []
        self.stale: dict = {}  # writer → a second answer, written before the next one
        self.got_cancel = asyncio.Event()
        self.hanging = asyncio.Event()

    def ids_of(self, method: str) -> list:
        return [m.get("id") for m in self.seen if m.get("method") == method]

    async def _answer(self, body: bytes, writer) -> bool:
        msg = json.loads(body) if body else {}
        self.seen.append(msg)
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
        if name not in ("late_second", "client_id", "sse_foreign", "sse_only_foreign", "hang"):
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
    up, g = gw
    async with httpx2.AsyncClient(timeout=30) as http:
        for i in range(3):  # (each round on a connection of its own: the stale answer closes it)
            before = charged(g.state)
            ra = await call_tool(http, g.url(), g.a, "late_second", {"who": f"A{i}"}, rid=1)
            assert result_text(ra) == f"ran late_second for A{i}"
            rb = await call_tool(http, g.url(), g.b, "ok", {"who": f"B{i}"}, rid=1)
            # B's call read A's second answer first: not relayed (not A's text, not STALE), and
            # the call is an upstream error, which may have run: its unit is kept
            assert rb["id"] == 1 and rb["result"]["isError"] is True, rb
            text = result_text(rb)
            assert "STALE" not in json.dumps(rb) and f"A{i}" not in json.dumps(rb), rb
            assert text.startswith("[GATEWAY ERROR]") and "may or may not have run" in text, text
            assert audit(g.state)[-2:] == [("late_second", "forwarded", "1", "a"), ("ok", "upstream_error", "1", "b")]
            assert charged(g.state) - before == 2  # A's call and B's: both kept (OUTCOME_COUNTED)
            assert up.executed("ok")[-1] == {"who": f"B{i}"}  # it did reach the upstream
            # the connection that carried the stale answer was not reused: B's next call is answered
            rb2 = await call_tool(http, g.url(), g.b, "ok", {"who": f"B{i}-again"}, rid=1)
            assert result_text(rb2) == "ran ok" and up.executed("ok")[-1] == {"who": f"B{i}-again"}, rb2
            assert audit(g.state)[-1][:2] == ("ok", "forwarded")
    # the upstream never saw the client's id 1, and never one id twice
    ids = up.ids_of("tools/call")
    assert len(ids) == 9 and len(set(ids)) == 9 and all(type(i) is int and i != 1 for i in ids), ids


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
        assert list(pool._idle) == conns  # both ended: both pooled
        dropped.discard()  # its answer was not the request's: out of step
        assert list(pool._idle) == [conns[0]] and conns[1].writer.closed and not conns[0].writer.closed
        # a stream still being read: closed when released, never pooled
        r = asyncio.StreamReader()
        r.feed_data(b"2\r\nok\r\n0\r\n\r\n")
        held = Response(pool, _Conn(r, _Writer()), 200, [("transfer-encoding", "chunked")], "chunked", None)
        writer = held.conn.writer
        held.discard()
        assert await held.read(5) == b"ok"
        assert writer.closed and list(pool._idle) == [conns[0]]
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
