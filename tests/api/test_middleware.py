"""`mcpp.PolicyMiddleware` inside servers built with the official SDK, driven by the
official SDK client in both protocol eras (2026-07-28 and 2025-11-25): in-process for
`MCPServer` and the low-level `Server`, and over Streamable HTTP with bearer auth for the
identity. Every tool records its runs: a denied call must never appear there."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx2
import mcp.types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server import Server
from mcp.server.mcpserver import MCPServer

import mcpp
from tests.gateway.peers import Proc, free_port, wait_http

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
MODES = {"auto": "2026-07-28", "legacy": "2025-11-25"}

POLICY = '''\
default deny;
hide Action::"get_secret";
permit (principal, action in [Action::"echo", Action::"flaky"], resource);
@reason("Namespace is outside the allowed non-production set.")
permit (principal, action == Action::"delete_pod", resource)
when { context.input.namespace in ["dev", "staging"] };
permit (principal, action == Action::"charge", resource);
@reason("Charge budget exhausted.")
limit "charges" (principal, action == Action::"charge", resource) max 2 per hour scope grant;
'''


def mcpserver(policy: mcpp.Policy, ran: list, **kw) -> MCPServer:
    server = MCPServer("guarded", middleware=[mcpp.PolicyMiddleware(policy, **kw)])

    @server.tool()
    def echo(text: str) -> str:
        ran.append(("echo", {"text": text}))
        return text

    @server.tool()
    def delete_pod(namespace: str, name: str) -> str:
        ran.append(("delete_pod", {"namespace": namespace, "name": name}))
        return f"deleted {namespace}/{name}"

    @server.tool()
    def get_secret(name: str) -> str:
        ran.append(("get_secret", {"name": name}))
        return "s3cr3t"

    @server.tool()
    def charge(amount: float) -> str:
        ran.append(("charge", {"amount": amount}))
        return f"charged {amount}"

    @server.tool()
    def unlisted_by_policy() -> str:
        ran.append(("unlisted_by_policy", {}))
        return "no"

    return server


def lowlevel(policy: mcpp.Policy, ran: list, **kw) -> Server:
    schema = {"type": "object"}
    names = ["echo", "delete_pod", "get_secret", "charge", "unlisted_by_policy", "flaky"]

    async def list_tools(ctx, params) -> types.ListToolsResult:  # noqa: ARG001 (the MCP SDK's handler signature)
        return types.ListToolsResult(tools=[types.Tool(name=n, input_schema=schema) for n in names])

    async def call_tool(ctx, params) -> types.CallToolResult:  # noqa: ARG001 (the MCP SDK's handler signature)
        ran.append((params.name, dict(params.arguments or {})))
        if params.name == "flaky":
            raise RuntimeError("the tool failed before answering")
        return types.CallToolResult(content=[types.TextContent(type="text", text=f"ran {params.name}")])

    server = Server("guarded-lowlevel", on_list_tools=list_tools, on_call_tool=call_tool)
    server.middleware.append(mcpp.PolicyMiddleware(policy, **kw))
    return server


SERVERS = {"mcpserver": mcpserver, "lowlevel": lowlevel}


@pytest.fixture(params=sorted(SERVERS))
def kind(request):
    return request.param


@pytest.mark.parametrize("mode", sorted(MODES))
async def test_denied_calls_never_run_and_answer_like_the_gateway(kind, mode, tmp_path):
    ran: list = []
    audit = mcpp.SQLiteAudit(tmp_path)
    server = SERVERS[kind](mcpp.load_policy(POLICY), ran, audit=audit)
    async with Client(server, mode=mode) as c:
        assert c.protocol_version == MODES[mode]
        r = await c.call_tool("echo", {"text": f"hello {mode}"})
        assert not r.is_error
        r = await c.call_tool("delete_pod", {"namespace": "prod-zz9", "name": "secret-value-xyz"})
        assert r.is_error
        assert r.content[0].text == "[POLICY DENIED] Namespace is outside the allowed non-production set."
        assert r.meta["io.mcpp/decision"] == {"decision": "deny", "rule": "/tools/delete_pod/require/args.namespace-in"}
        r = await c.call_tool("get_secret", {"name": "db"})
        assert r.is_error and r.content[0].text.startswith("[POLICY DENIED] Tool get_secret is not available")
        r = await c.call_tool("unlisted_by_policy", {})
        assert r.is_error and r.content[0].text == "[POLICY DENIED] Tool unlisted_by_policy is not allowed by policy (default deny)."
        r = await c.call_tool("delete_pod", {"namespace": "dev", "name": "api-1"})
        assert not r.is_error
    # the denied calls never reached a tool function; the allowed ones ran once each
    assert ran == [("echo", {"text": f"hello {mode}"}), ("delete_pod", {"namespace": "dev", "name": "api-1"})]
    rows = audit.query()
    assert [(x["tool"], x["decision"], x["outcome"]) for x in rows] == [
        ("echo", "allow", "forwarded"), ("delete_pod", "deny", "denied"), ("get_secret", "deny", "denied"),
        ("unlisted_by_policy", "deny", "denied"), ("delete_pod", "allow", "forwarded")]
    assert rows[1]["arg_keys"] == ["name", "namespace"] and rows[1]["rule"] == "/tools/delete_pod/require/args.namespace-in"
    raw = repr(sqlite3.connect(tmp_path / "audit.db").execute("SELECT * FROM audit").fetchall())
    assert "secret-value-xyz" not in raw and "prod-zz9" not in raw  # argument values are never stored


@pytest.mark.parametrize("mode", sorted(MODES))
async def test_tools_list_is_filtered_as_the_gateway_filters_it(kind, mode):
    policy = mcpp.load_policy(POLICY)
    async with Client(SERVERS[kind](policy, []), mode=mode) as c:
        listed = await c.list_tools()
        names = {t.name for t in listed.tools}
    served = ["echo", "delete_pod", "get_secret", "charge", "unlisted_by_policy"] + (["flaky"] if kind == "lowlevel" else [])
    assert names == policy.visible(served)  # what the gateway lists: the analyzer's answer
    assert {"echo", "delete_pod", "charge"} <= names
    assert "get_secret" not in names and "unlisted_by_policy" not in names  # hidden; no permit under default deny


@pytest.mark.parametrize("mode", sorted(MODES))
async def test_limits_deny_the_call_after_the_budget(kind, mode):
    ran: list = []
    async with Client(SERVERS[kind](mcpp.load_policy(POLICY), ran, principal=mcpp.Grant("g-billing")), mode=mode) as c:
        results = [await c.call_tool("charge", {"amount": 5}) for _ in range(3)]
    assert [r.is_error for r in results] == [False, False, True]
    assert results[2].content[0].text.startswith("[POLICY DENIED] Charge budget exhausted. (limit charges: 2 per hour per grant")
    meta = results[2].meta["io.mcpp/decision"]
    assert meta["rule"] == "/tools/charge/limits/charges" and meta["limit"]["max"] == 2
    assert [t for t, _ in ran] == ["charge", "charge"]


USER_POLICY = '''\
entity User in [Group] { email: String };
permit (principal is User, action == Action::"echo", resource) when { principal.email like "*@example.com" };
'''


@pytest.mark.parametrize("mode", sorted(MODES))
async def test_a_user_principal_is_decided_by_its_attributes(kind, mode, tmp_path):
    """The configured principal (or what `identify` returns) may be a `mcpp.User`: decided,
    listed and audited by its id and claims, as the gateway does for an OAuth user."""
    ran: list = []
    audit = mcpp.SQLiteAudit(tmp_path)
    for email, allowed in (("alice@example.com", True), ("alice@evil.test", False), (None, False)):
        user = mcpp.User("alice", {"email": email} if email else {})  # no email: does not fit `entity User`
        server = SERVERS[kind](mcpp.load_policy(USER_POLICY), ran, principal=user, audit=audit)
        async with Client(server, mode=mode) as c:
            listed = {t.name for t in (await c.list_tools()).tools}
            r = await c.call_tool("echo", {"text": "hi"})
        assert listed == ({"echo"} if allowed else set()), email
        assert r.is_error is not allowed, email
    assert ran == [("echo", {"text": "hi"})]
    assert [(x["grant_id"], x["grant_label"], x["decision"], x["rule"]) for x in audit.query()] == [
        ("alice", "", "allow", "/tools/echo"), ("alice", "", "deny", "/policies/policy0"), ("alice", "", "deny", "/principal")]


@pytest.mark.parametrize("mode", sorted(MODES))
async def test_concurrent_calls_get_exactly_the_budget(mode):
    """Calls in flight together: the limit holds (reservations are taken before the tool runs)."""
    import anyio

    ran: list = []
    server = MCPServer("guarded", middleware=[mcpp.PolicyMiddleware(mcpp.load_policy(POLICY))])

    @server.tool()
    async def charge(amount: float) -> str:
        ran.append(amount)
        await anyio.sleep(0.05)  # still running while the others are decided
        return "charged"

    results: list = []
    async with Client(server, mode=mode) as c:
        async def one(i: int) -> None:
            results.append(await c.call_tool("charge", {"amount": i}))

        async with anyio.create_task_group() as tg:
            for i in range(6):
                tg.start_soon(one, i)
    assert sum(1 for r in results if not r.is_error) == 2 and len(ran) == 2
    assert all(r.content[0].text.startswith("[POLICY DENIED] Charge budget exhausted.") for r in results if r.is_error)


@pytest.mark.parametrize("mode", sorted(MODES))
async def test_a_call_that_fails_before_answering_gives_its_budget_back(mode, tmp_path):
    policy = mcpp.load_policy(POLICY + 'limit "flaky" (principal, action == Action::"flaky", resource) max 1 per hour scope grant;\n')
    ran: list = []
    audit = mcpp.SQLiteAudit(tmp_path)
    async with Client(lowlevel(policy, ran, audit=audit), mode=mode) as c:
        for _ in range(3):  # each attempt is allowed: the one before failed and gave the budget back
            with pytest.raises(Exception):
                await c.call_tool("flaky", {})
    assert [t for t, _ in ran] == ["flaky"] * 3
    assert [x["outcome"] for x in audit.query()] == ["error"] * 3


def test_the_audit_is_the_gateways_and_mcpp_audit_reads_it(tmp_path):
    import anyio

    async def go():
        async with Client(mcpserver(mcpp.load_policy(POLICY), [], audit=mcpp.SQLiteAudit(tmp_path)), mode="auto") as c:
            await c.call_tool("delete_pod", {"namespace": "prod", "name": "x"})

    anyio.run(go)
    p = subprocess.run([sys.executable, "-m", "mcpp", "audit", "--state", str(tmp_path), "--json"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr
    row = json.loads(p.stdout.splitlines()[-1])
    assert (row["tool"], row["decision"], row["grant_id"], row["arg_keys"]) == ("delete_pod", "deny", "anonymous", ["name", "namespace"])


def test_the_middleware_needs_a_policy():
    with pytest.raises(TypeError):
        mcpp.PolicyMiddleware(POLICY)  # type: ignore[arg-type]


# ---- identity from the SDK's auth context, over HTTP ----------------------------------------

AUTH_POLICY = '''\
permit (principal, action == Action::"list_pods", resource == Server::"k8s");
@reason("Only admins delete pods.")
permit (principal in Group::"admin", action == Action::"delete_pod", resource);
@reason("Only alice.")
permit (principal, action == Action::"whoami", resource) when { principal.label == "alice" };
'''


@pytest.fixture
def guarded(tmp_path):
    port = free_port()
    policy = tmp_path / "policy.mcpp"
    policy.write_text(AUTH_POLICY)
    runs, state = tmp_path / "runs.jsonl", tmp_path / "state"
    proc = Proc([sys.executable, str(HERE / "fixtures" / "guarded_server.py"), "--port", str(port), "--policy", str(policy),
                 "--runs", str(runs), "--state", str(state)], tmp_path / "server.log", cwd=ROOT)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        wait_http(url, proc.p, log=tmp_path / "server.log")
        yield url, runs, state
    finally:
        proc.kill()


def client(url: str, token: str, mode: str):
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30.0))
    return http, Client(streamable_http_client(url, http_client=http), mode=mode)


def ran(runs: Path) -> list:
    return [json.loads(x)["tool"] for x in runs.read_text().splitlines()] if runs.exists() else []


@pytest.mark.parametrize("mode", sorted(MODES))
async def test_the_principal_comes_from_the_access_token(guarded, mode):
    url, runs, state = guarded
    http, c = client(url, "tok-reader", mode)
    async with http, c:
        assert c.protocol_version == MODES[mode]
        assert {t.name for t in (await c.list_tools()).tools} == {"list_pods"}
        assert not (await c.call_tool("list_pods", {"namespace": "dev"})).is_error
        r = await c.call_tool("delete_pod", {"namespace": "dev", "name": "x"})
        assert r.is_error and r.content[0].text == "[POLICY DENIED] Only admins delete pods."
        assert (await c.call_tool("whoami", {})).is_error
    assert ran(runs) == ["list_pods"]
    http, c = client(url, "tok-admin", mode)
    async with http, c:
        assert {t.name for t in (await c.list_tools()).tools} == {"list_pods", "delete_pod", "whoami"}
        assert not (await c.call_tool("delete_pod", {"namespace": "dev", "name": "x"})).is_error
        assert not (await c.call_tool("whoami", {})).is_error
    assert ran(runs) == ["list_pods", "delete_pod", "whoami"]
    rows = mcpp.SQLiteAudit(state).query()
    assert [(r["grant_id"], r["grant_label"], r["tool"], r["decision"]) for r in rows] == [
        ("agent-2", "agent-2", "list_pods", "allow"), ("agent-2", "agent-2", "delete_pod", "deny"),
        ("agent-2", "agent-2", "whoami", "deny"), ("agent-1", "alice", "delete_pod", "allow"),
        ("agent-1", "alice", "whoami", "allow")]


async def test_no_token_no_call(guarded):
    url, runs, _ = guarded
    r = httpx2.post(url, headers={"Content-Type": "application/json", "Accept": "application/json, text/event-stream"},
                    content=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                        "params": {"name": "list_pods", "arguments": {"namespace": "dev"}}}))
    assert r.status_code == 401
    assert ran(runs) == []
