"""The official SDK client, in both modes, through the gateway to a real SDK upstream."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from .peers import POLICY, create_grant, mcpp, write

MODES = ["auto", "legacy"]


def client(url: str, token: str | None, mode: str):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0))
    return http, Client(streamable_http_client(url, http_client=http), mode=mode)


@pytest.fixture
def gw(tmp_path, upstream, start_gateway):
    policy = write(tmp_path / "policy.mcpp", POLICY)
    state = tmp_path / "state"
    alice = create_grant(state, "alice")
    g = start_gateway("--policy", str(policy), "--upstream", upstream.url, state=state)
    g.alice = alice
    return g


@pytest.mark.parametrize("mode", MODES)
async def test_allowed_denied_hidden(gw, upstream, mode):
    http, c = client(gw.url(), gw.alice["token"], mode)
    async with http, c:
        assert c.protocol_version == ("2026-07-28" if mode == "auto" else "2025-11-25")
        before = len(upstream.ran())
        r = await c.call_tool("echo", {"text": f"hello {mode}"})
        assert not r.is_error and r.content[0].text == f"hello {mode}"
        r = await c.call_tool("delete_pod", {"namespace": "prod", "name": "api-1"})
        assert r.is_error
        assert r.content[0].text == "[POLICY DENIED] Namespace is outside the allowed non-production set."
        r = await c.call_tool("get_secret", {"name": "db"})
        assert r.is_error and r.content[0].text.startswith("[POLICY DENIED] Tool get_secret is not available")
        r = await c.call_tool("delete_pod", {"namespace": "dev", "name": "api-1"})
        assert not r.is_error and r.content[0].text == "deleted dev/api-1"
        ran = upstream.ran()[before:]
        # denied calls never reached the upstream; allowed ones did, once each
        assert [(x["tool"], x["args"]) for x in ran] == [
            ("echo", {"text": f"hello {mode}"}),
            ("delete_pod", {"namespace": "dev", "name": "api-1"}),
        ]


@pytest.mark.parametrize("mode", MODES)
async def test_tools_list_filtered_and_private(gw, mode):
    http, c = client(gw.url(), gw.alice["token"], mode)
    async with http, c:
        tools = await c.list_tools()
        names = {t.name for t in tools.tools}
        # hidden, and no permit for them under default deny: never listed
        assert "get_secret" not in names and "test_simple_text" not in names
        assert {"echo", "add", "delete_pod", "charge", "slow", "die"} <= names
    # the raw result is private to this grant
    r = httpx2.post(gw.url(), headers={
        "Authorization": f"Bearer {gw.alice['token']}", "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json", "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list",
    }, content=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}}))
    assert r.status_code == 200
    assert r.headers["cache-control"] == "private, no-store"
    body = r.json() if r.headers["content-type"].startswith("application/json") else json.loads(
        [ln for ln in r.text.splitlines() if ln.startswith("data:")][-1][5:])
    assert body["result"]["cacheScope"] == "private"


@pytest.mark.usefixtures("upstream")
async def test_denial_shape_and_audit_row(gw):
    http, c = client(gw.url(), gw.alice["token"], "auto")
    async with http, c:
        r = await c.call_tool("delete_pod", {"namespace": "prod-zz9", "name": "secret-value-xyz"})
    assert r.is_error
    meta = r.meta or {}
    assert meta["io.mcpp/decision"]["rule"] == "/tools/delete_pod/require/args.namespace-in"
    rows = [json.loads(x) for x in mcpp("audit", "--state", str(gw.state), "--json", "--tool", "delete_pod").stdout.splitlines()]
    row = rows[-1]
    assert row["decision"] == "deny" and row["grant_label"] == "alice" and row["grant_id"] == gw.alice["id"]
    assert row["rule"] == "/tools/delete_pod/require/args.namespace-in"
    assert row["arg_keys"] == ["name", "namespace"] and row["server"] == "default"
    # argument values are never stored, anywhere in the audit database
    raw = sqlite3.connect(gw.state / "audit.db").execute("SELECT * FROM audit").fetchall()
    assert "secret-value-xyz" not in repr(raw) and "prod-zz9" not in repr(raw)


async def test_tokens_never_logged_or_forwarded(gw, upstream):
    http, c = client(gw.url(), gw.alice["token"], "legacy")
    async with http, c:
        await c.call_tool("echo", {"text": "x"})
    bad = httpx2.post(gw.url(), headers={"Authorization": "Bearer " + gw.alice["token"] + "x"}, content=b"{}")
    assert bad.status_code == 401
    secret = gw.alice["token"].split(".")[2]
    assert secret not in gw.log.read_text()
    assert secret not in upstream.proc.log.read_text()


def test_auth_and_routing(gw):
    post = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"})
    r = httpx2.post(gw.url(), headers=post, content=body)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    r = httpx2.post(gw.url(), headers={**post, "Authorization": "Bearer mcpp.g_0000.nope"}, content=body)
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
    r = httpx2.post(gw.url(), headers={**post, "Authorization": "Basic dXNlcjpwYXNz"}, content=body)
    assert r.status_code == 401
    r = httpx2.post(gw.url("nope"), headers={**post, "Authorization": f"Bearer {gw.alice['token']}"}, content=body)
    assert r.status_code == 404
    # a grant for another server id is refused on this route
    other = create_grant(gw.state, "bob", "other-server")
    r = httpx2.post(gw.url(), headers={**post, "Authorization": f"Bearer {other['token']}"}, content=body)
    assert r.status_code == 401


async def test_revoked_grant_gets_401_on_next_request(gw):
    http, c = client(gw.url(), gw.alice["token"], "legacy")
    async with http, c:
        assert not (await c.call_tool("echo", {"text": "before"})).is_error
        mcpp("grant", "revoke", gw.alice["id"], "--state", str(gw.state))
        r = await http.post(gw.url(), content=b'{"jsonrpc":"2.0","id":9,"method":"ping"}',
                            headers={"Content-Type": "application/json", "Accept": "application/json, text/event-stream"})
        assert r.status_code == 401
    listed = mcpp("grant", "list", "--state", str(gw.state), "--json").stdout
    assert json.loads(listed.splitlines()[0])["revoked_at"] is not None
    assert "token" not in listed


async def test_session_is_bound_to_its_grant(gw):
    bob = create_grant(gw.state, "bob")
    http, c = client(gw.url(), gw.alice["token"], "legacy")
    async with http, c:
        init = await http.post(gw.url(), headers={"Content-Type": "application/json", "Accept": "application/json, text/event-stream"},
                               content=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                                   "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
        sid = init.headers["mcp-session-id"]
    r = httpx2.post(gw.url(), headers={"Authorization": f"Bearer {bob['token']}", "Mcp-Session-Id": sid,
                                        "Content-Type": "application/json", "Accept": "application/json, text/event-stream"},
                    content=b'{"jsonrpc":"2.0","id":2,"method":"tools/list"}')
    assert r.status_code == 404  # alice's session is unknown to bob


async def test_input_required_rounds_pass_through_and_each_retry_is_decided(tmp_path, upstream, start_gateway):
    from .peers import MODERN_META, parse_response

    tool = "test_input_required_result_elicitation"
    policy = write(tmp_path / "policy.mcpp", f'permit (principal, action == Action::"{tool}", resource);\n')
    state = tmp_path / "state"
    grant = create_grant(state, "mrtr")
    g = start_gateway("--policy", str(policy), "--upstream", upstream.url, state=state)
    headers = {"Authorization": f"Bearer {grant['token']}", "Content-Type": "application/json",
               "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2026-07-28",
               "Mcp-Method": "tools/call", "Mcp-Name": tool}

    def body(rid, **extra):
        return json.dumps({"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                           "params": {"name": tool, "arguments": {}, "_meta": MODERN_META, **extra}})

    before = len(upstream.ran(tool))
    async with httpx2.AsyncClient(timeout=30) as http:
        r1 = parse_response(await http.post(g.url(), headers=headers, content=body(1)))
        assert r1["result"]["resultType"] == "input_required" and "user_name" in r1["result"]["inputRequests"]
        answer = {"user_name": {"action": "accept", "content": {"name": "Ada"}}}
        extra = {"inputResponses": answer}
        if "requestState" in r1["result"]:
            extra["requestState"] = r1["result"]["requestState"]  # passed back untouched
        r2 = parse_response(await http.post(g.url(), headers=headers, content=body(2, **extra)))
        assert r2["result"]["content"][0]["text"] == "Hello, Ada!"
        # the policy changes between rounds: the next retry is decided again, and denied
        policy.write_text(f'forbid (principal, action == Action::"{tool}", resource);\npermit (principal, action, resource);\n')
        for _ in range(100):
            r3 = parse_response(await http.post(g.url(), headers=headers, content=body(3, **extra)))
            if r3["result"].get("isError"):
                break
            await asyncio.sleep(0.1)
        assert r3["result"]["content"][0]["text"].startswith("[POLICY DENIED]")
    assert len(upstream.ran(tool)) - before >= 2
    rows = [json.loads(x) for x in mcpp("audit", "--state", str(state), "--json", "--tool", tool).stdout.splitlines()]
    assert [r["outcome"] for r in rows[:2]] == ["input_required", "forwarded"]
    assert rows[-1]["decision"] == "deny"
