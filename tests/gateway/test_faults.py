"""Fault injection: nothing allowed by mistake, nothing answered without an audit row."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time

import httpx2

from .peers import MODERN_META, POLICY, Upstream, call_tool, create_grant, result_text, write

HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def _gw(tmp_path, start_gateway, upstream_url, *extra, policy_text=POLICY):
    policy = write(tmp_path / "policy.mcpp", policy_text)
    state = tmp_path / "state"
    grant = create_grant(state, "ops")
    g = start_gateway("--policy", str(policy), "--upstream", upstream_url, *extra, state=state)
    g.token, g.policy = grant["token"], policy
    return g


async def test_slow_upstream_times_out_to_an_error_result(tmp_path, upstream, start_gateway):
    g = _gw(tmp_path, start_gateway, upstream.url, "--upstream-timeout", "1")
    async with httpx2.AsyncClient(timeout=30) as http:
        r = await call_tool(http, g.url(), g.token, "slow", {"seconds": 3})
        # the gateway's own timeout answered (its message), not the upstream finishing late
        assert r["result"]["isError"] and "did not answer within 1s" in result_text(r)
        r = await call_tool(http, g.url(), g.token, "echo", {"text": "still serving"}, rid=2)
        assert result_text(r) == "still serving"
    rows = sqlite3.connect(g.state / "audit.db").execute("SELECT tool, outcome FROM audit ORDER BY seq").fetchall()
    assert rows == [("slow", "upstream_error"), ("echo", "forwarded")]


async def test_upstream_killed_mid_call(tmp_path, start_gateway):
    up = Upstream(tmp_path)
    try:
        g = _gw(tmp_path, start_gateway, up.url)
        async with httpx2.AsyncClient(timeout=30) as http:
            r = await call_tool(http, g.url(), g.token, "die", {})
            assert r["status"] == 200 and r["result"]["isError"]
            assert "[GATEWAY ERROR]" in result_text(r)
            assert up.proc.p.wait(10) == 17  # it really died with the call in flight
            r = await call_tool(http, g.url(), g.token, "echo", {"text": "down"}, rid=2)
            assert r["result"]["isError"] and "was not executed" in result_text(r)
            up.restart()
            r = await call_tool(http, g.url(), g.token, "echo", {"text": "back"}, rid=3)
            assert result_text(r) == "back"
        assert [x["tool"] for x in up.ran()] == ["die", "echo"]
    finally:
        up.stop()


async def test_malformed_and_oversized_requests(tmp_path, upstream, start_gateway):
    g = _gw(tmp_path, start_gateway, upstream.url, "--max-body-bytes", "4096")
    auth = {**HEADERS, "Authorization": f"Bearer {g.token}"}
    async with httpx2.AsyncClient(timeout=30) as http:
        cases = [
            (b"{not json", 400, -32700),
            (b"[1, 2]", 400, -32600),
            (b'[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]', 400, -32600),
            (b'{"jsonrpc":"2.0","id":1}', 400, -32600),
            (b'{"jsonrpc":"2.0","id":1,"method":42}', 400, -32600),
            (b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{}}}', 400, -32602),
            (b"\xff\xfe", 400, -32700),
            # a notification-shaped call would reach the upstream undecided
            (b'{"jsonrpc":"2.0","method":"tools/call","params":{"name":"delete_pod","arguments":{"namespace":"prod","name":"n"}}}', 400, -32600),
            (b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{"a":NaN,"b":1}}}', 400, -32602),
        ]
        for body, status, code in cases:
            r = await http.post(g.url(), headers=auth, content=body)
            assert r.status_code == status, body
            assert r.json()["error"]["code"] == code, body
        big = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "x" * 10000}}})
        r = await http.post(g.url(), headers=auth, content=big)
        assert r.status_code == 413
        # a header that disagrees with the body is refused before any decision
        r = await http.post(g.url(), headers={**auth, "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "echo"},
                            content=json.dumps({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {
                                "name": "delete_pod", "arguments": {"namespace": "dev", "name": "x"},
                                "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}}))
        assert r.status_code == 400 and r.json()["error"]["code"] == -32020
        r = await call_tool(http, g.url(), g.token, "echo", {"text": "still here"})
        assert result_text(r) == "still here"
        # duplicate keys: the upstream runs exactly the call that was decided (re-serialised)
        before = len(upstream.ran("delete_pod"))
        meta = json.dumps(MODERN_META).encode()
        dup = (b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"delete_pod","_meta":' + meta +
               b',"arguments":{"namespace":"prod","name":"a"},"arguments":{"namespace":"dev","name":"b"}}}')
        r = await http.post(g.url(), headers={**auth, "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call",
                                              "Mcp-Name": "delete_pod"}, content=dup)
        assert r.status_code == 200
        assert [x["args"] for x in upstream.ran("delete_pod")[before:]] == [{"namespace": "dev", "name": "b"}]
    rows = sqlite3.connect(g.state / "audit.db").execute("SELECT tool, decision FROM audit").fetchall()
    assert rows == [("echo", "allow"), ("delete_pod", "allow")]


async def _until(pred, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        await asyncio.sleep(0.2)
    return False


async def test_broken_policy_keeps_the_last_good_one(tmp_path, upstream, start_gateway):
    g = _gw(tmp_path, start_gateway, upstream.url)
    good_sha = g.health()["servers"]["default"]["policies"][0]["sha256"]
    async with httpx2.AsyncClient(timeout=30) as http:
        g.policy.write_text("permit (principal, action == Action::\"delete_pod\", resource) when { context.input.namespace == ;\n")
        assert await _until(lambda: g.health()["status"] == "degraded")
        pol = g.health()["servers"]["default"]["policies"][0]
        assert pol["in_force"] and pol["sha256"] == good_sha and pol["error"]
        # decisions are the last good policy's
        assert result_text(await call_tool(http, g.url(), g.token, "echo", {"text": "ok"})) == "ok"
        r = await call_tool(http, g.url(), g.token, "delete_pod", {"namespace": "prod", "name": "x"}, rid=2)
        assert r["result"]["isError"]
        # a policy whose own assertion fails to verify is refused too
        g.policy.write_text(POLICY + '\n@id("no-echo")\nassert deny (principal, action == Action::"echo", resource);\n')
        assert await _until(lambda: "no-echo" in (g.health()["servers"]["default"]["policies"][0]["error"] or ""))
        assert result_text(await call_tool(http, g.url(), g.token, "echo", {"text": "ok2"}, rid=3)) == "ok2"
        # a good replacement takes over without a restart
        g.policy.write_text('default deny;\n@reason("Echo is switched off.")\nforbid (principal, action == Action::"echo", resource);\npermit (principal, action, resource);\n')
        assert await _until(lambda: g.health()["status"] == "ok")
        r = await call_tool(http, g.url(), g.token, "echo", {"text": "no"}, rid=4)
        assert result_text(r) == "[POLICY DENIED] Echo is switched off."
    events = [e["event"] for e in g.log_records()]
    assert events.count("policy_refused") >= 2 and events.count("policy_loaded") >= 2


async def test_sigkill_under_load_loses_no_audit_row(tmp_path, upstream, start_gateway):
    g = _gw(tmp_path, start_gateway, upstream.url)
    answered: list[tuple[int, dict]] = []
    before = len(upstream.ran())

    async def one(http, i):
        tool, args = ("echo", {"text": f"load-{tmp_path.name}-{i}"}) if i % 3 else ("delete_pod", {"namespace": "prod", "name": f"p{i}"})
        try:
            r = await call_tool(http, g.url(), g.token, tool, args, rid=100000 + i)
        except httpx2.HTTPError:
            return
        if "result" in r:
            answered.append((i, r))

    async def killer():
        await _until(lambda: len(answered) >= 150, 30)
        g.proc.kill(signal.SIGKILL)

    limits = httpx2.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(20.0), limits=limits) as http:
        sem = asyncio.Semaphore(32)

        async def gated(i):
            async with sem:
                await one(http, i)

        await asyncio.gather(killer(), *[gated(i) for i in range(2000)])
    assert 150 <= len(answered) < 2000, len(answered)
    rows = sqlite3.connect(g.state / "audit.db").execute("SELECT request_id, decision, tool FROM audit").fetchall()
    audited = {int(rid): (d, t) for rid, d, t in rows}
    for i, r in answered:
        decision = "deny" if r["result"].get("isError") else "allow"
        assert audited.get(100000 + i) == (decision, "echo" if i % 3 else "delete_pod"), i
    # nothing reached the upstream without an allow row, and no denied call reached it
    ran = upstream.ran()[before:]
    assert all(x["tool"] == "echo" for x in ran)
    allowed_texts = {f"load-{tmp_path.name}-{rid - 100000}" for rid, (d, t) in audited.items() if d == "allow"}
    assert {x["args"]["text"] for x in ran} <= allowed_texts
