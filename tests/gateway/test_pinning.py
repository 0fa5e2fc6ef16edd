"""Catalog pinning through real peers: the SDK fixture upstream (which can change its own
tools after the pin, with its `rug_pull` control tool, and pages its `tools/list`), the
catalog captured from it with `mcpp catalog pull`, `mcpp serve` pinning that catalog, and
the official SDK client in both protocol eras."""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
import time

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from .peers import ALLOW_ALL, FIXTURE, Upstream, call_tool, create_grant, free_port, mcpp, result_text, write

RUG_ENV = {"MCPP_FIXTURE_RUG_PULL": "1", "MCPP_FIXTURE_PAGE_SIZE": "7"}
MODES = ["auto", "legacy"]


def client(url: str, token: str | None, mode: str):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0))
    return http, Client(streamable_http_client(url, http_client=http), mode=mode)


async def list_all(c) -> list[str]:
    """Every page of tools/list, as the client sees it (never from the client's cache)."""
    names, cursor, pages = [], None, 0
    while True:
        page = await c.list_tools(cursor=cursor, cache_mode="refresh")
        names += [t.name for t in page.tools]
        pages += 1
        cursor = page.next_cursor
        if not cursor:
            return names
        assert pages < 50


async def rug_pull(upstream: Upstream, *changes: str) -> None:
    """The upstream's operator changes its tools, behind the gateway's back."""
    async with httpx2.AsyncClient(timeout=30) as http, Client(streamable_http_client(upstream.url, http_client=http)) as c:
        for change in changes:
            r = await c.call_tool("rug_pull", {"change": change})
            assert not r.is_error and r.content[0].text == f"changed: {change}"


def pull(tmp_path, upstream: Upstream, name: str = "tools.json"):
    out = tmp_path / name
    r = mcpp("catalog", "pull", "--url", upstream.url, "-o", str(out))
    assert "tools from mcpp-fixture-upstream" in r.stderr + r.stdout
    return out


def audit_rows(state, *args) -> list[dict]:
    return [json.loads(x) for x in mcpp("audit", "--state", str(state), "--json", *args).stdout.splitlines()]


async def until(pred, timeout: float = 15.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached")


@pytest.fixture
def rug(tmp_path):
    """A fixture upstream of our own: the tests change its tools."""
    up = Upstream(tmp_path, env=RUG_ENV)
    yield up
    up.stop()


@pytest.mark.parametrize("mode", MODES)
async def test_matching_pin_passes_and_changed_tools_are_hidden_and_refused(tmp_path, rug, start_gateway, mode):
    catalog = pull(tmp_path, rug)
    pinned = json.loads(catalog.read_text())["tools"]
    policy = write(tmp_path / "policy.mcpp", ALLOW_ALL)
    state = tmp_path / "state"
    grant = create_grant(state, "agent")
    g = start_gateway("--policy", str(policy), "--upstream", rug.url, "--pin-catalog", str(catalog), state=state)
    assert g.health()["servers"]["default"]["catalog"]["in_force"] is True
    http, c = client(g.url(), grant["token"], mode)
    async with http, c:
        # the pin matches: every tool is listed (5 pages of 7) and calls pass
        names = await list_all(c)
        assert sorted(names) == sorted(pinned)
        r = await c.call_tool("echo", {"text": "before"})
        assert not r.is_error and r.content[0].text == "before"

        await rug_pull(rug, "description", "schema", "add")
        start = len(rug.ran())
        names = await list_all(c)
        # changed and added tools are gone from the listing; the rest are still there
        assert "echo" not in names and "delete_pod" not in names and "exfiltrate" not in names
        assert "add" in names and "charge" in names and len(names) == len(pinned) - 2

        r = await c.call_tool("echo", {"text": "after"})
        assert r.is_error
        text = r.content[0].text
        assert text.startswith("[POLICY DENIED] Tool echo does not match the pinned catalog: the definition of tool 'echo' "
                               "changed since it was pinned (description differ;")
        assert "until an operator reviews the change and pins the catalog again" in text
        assert (r.meta or {})["io.mcpp/decision"]["rule"] == "/catalog/echo"
        assert r.meta["io.mcpp/decision"]["catalog"]["kind"] == "changed"
        assert r.meta["io.mcpp/decision"]["catalog"]["pinned"] == pinned["echo"]["sha256"]

        # (arguments that fit the pinned schema: a new argument is refused earlier, by the typed-call check)
        r = await c.call_tool("delete_pod", {"namespace": "dev", "name": "x"})
        assert r.is_error and "the definition of tool 'delete_pod' changed since it was pinned (inputSchema differ" in r.content[0].text

        r = await c.call_tool("exfiltrate", {"data": "secrets"})
        assert r.is_error and r.content[0].text.startswith(
            "[POLICY DENIED] Tool exfiltrate does not match the pinned catalog: tool 'exfiltrate' is not in the pinned catalog "
            "'tools.json': it was added after the policy was reviewed.")
        assert str(tmp_path) not in r.content[0].text  # no server paths in what the client reads

        r = await c.call_tool("add", {"a": 2, "b": 3})  # unchanged: still works
        assert not r.is_error and r.content[0].text == "5.0"

    # none of the refused calls reached the upstream
    assert [(x["tool"], x["args"]) for x in rug.ran()[start:]] == [("add", {"a": 2, "b": 3})]
    # the audit rows say why
    rows = {r["tool"]: r for r in audit_rows(state, "--decision", "deny")}
    assert set(rows) == {"echo", "delete_pod", "exfiltrate"}
    assert rows["echo"]["rule"] == "/catalog/echo" and rows["echo"]["outcome"] == "denied"
    assert rows["echo"]["message"].startswith("Tool echo does not match the pinned catalog: the definition of tool 'echo' changed")
    assert rows["delete_pod"]["rule"] == "/catalog/delete_pod" and rows["delete_pod"]["arg_keys"] == ["name", "namespace"]
    assert rows["exfiltrate"]["rule"] == "/catalog/exfiltrate" and "added after the policy was reviewed" in rows["exfiltrate"]["message"]
    assert [r["tool"] for r in audit_rows(state, "--decision", "allow")] == ["echo", "add"]
    # the log has the drift (once per definition) and each refusal, with the reason
    logs = g.log_records()
    drift = {e["tool"]: e for e in logs if e["event"] == "catalog_drift"}
    assert len([e for e in logs if e["event"] == "catalog_drift"]) == 3  # once per definition, however often listed
    assert {k: v["kind"] for k, v in drift.items()} == {"echo": "changed", "delete_pod": "changed", "exfiltrate": "added"}
    assert drift["echo"]["pinned"] == pinned["echo"]["sha256"] and drift["echo"]["live"].startswith("sha256:")
    assert "description differ" in drift["echo"]["reason"] and drift["echo"]["level"] == "warning"
    denied = [e for e in logs if e["event"] == "catalog_denied"]
    assert [(e["tool"], e["kind"]) for e in denied] == [("echo", "changed"), ("delete_pod", "changed"), ("exfiltrate", "added")]
    assert all(e["reason"] and e["grant_label"] == "agent" and e["audit_seq"] for e in denied)
    metrics = httpx2.get(f"{g.base}/metrics").text
    assert 'mcpp_catalog_denials_total{server="default",kind="changed"} 2' in metrics
    assert 'mcpp_catalog_denials_total{server="default",kind="added"} 1' in metrics
    assert 'mcpp_catalog_drift_total{server="default",kind="changed"} 2' in metrics
    assert 'mcpp_decisions_total{server="default",decision="deny",rule="/catalog/echo"} 1' in metrics


async def test_calls_without_a_listing_are_checked_and_stale_listings_are_refreshed(tmp_path, rug, start_gateway):
    """A client that never lists: the gateway lists (every page) itself before the first call,
    and again once the listing is older than catalog_max_age."""
    pull(tmp_path, rug, "pinned.json")
    write(tmp_path / "policy.mcpp", ALLOW_ALL)
    port = free_port()
    cfg = write(tmp_path / "gateway.toml", f"""
[gateway]
port = {port}
state_dir = "state"

[[servers]]
id = "api"
url = "{rug.url}"
policy = "policy.mcpp"
catalog = "pinned.json"
catalog_max_age = 1
""")
    grant = json.loads(mcpp("grant", "create", "--server", "api", "--label", "bot", "--config", str(cfg), "--json").stdout)
    g = start_gateway("--config", str(cfg), port=port)
    async with httpx2.AsyncClient(timeout=30) as http:
        r = await call_tool(http, g.url("api"), grant["token"], "echo", {"text": "one"})
        assert result_text(r) == "one"
        await rug_pull(rug, "description", "add")
        # within catalog_max_age the listing the gateway has is trusted ...
        start = len(rug.ran())
        await asyncio.sleep(1.2)
        # ... after it, the next call re-lists first, and the changed tool is refused
        r = await call_tool(http, g.url("api"), grant["token"], "echo", {"text": "two"}, rid=2)
        assert r["result"]["isError"] is True
        assert result_text(r).startswith("[POLICY DENIED] Tool echo does not match the pinned catalog")
        r = await call_tool(http, g.url("api"), grant["token"], "exfiltrate", {"data": "x"}, rid=3)
        assert "is not in the pinned catalog" in result_text(r)
        r = await call_tool(http, g.url("api"), grant["token"], "add", {"a": 1, "b": 1}, rid=4)
        assert result_text(r) == "2.0"
        # a tool the upstream does not list at all cannot be checked: refused, never forwarded
        r = await call_tool(http, g.url("api"), grant["token"], "no_such_tool", {}, rid=5)
        assert result_text(r).startswith("[POLICY DENIED] Tool no_such_tool is not in the upstream's tool list")
    assert [x["tool"] for x in rug.ran()[start:]] == ["add"]
    rules = [(r["tool"], r["rule"]) for r in audit_rows(g.tmp / "state", "--decision", "deny")]
    assert rules == [("echo", "/catalog/echo"), ("exfiltrate", "/catalog/exfiltrate"), ("no_such_tool", "/catalog/no_such_tool")]
    metrics = httpx2.get(f"{g.base}/metrics").text
    assert 'mcpp_catalog_listings_total{server="api",result="ok"}' in metrics
    assert 'mcpp_catalog_denials_total{server="api",kind="unlisted"} 1' in metrics


async def test_no_listing_no_call(tmp_path, upstream, start_gateway):
    """Fail closed: the pin is configured but the upstream's listing cannot be obtained."""
    catalog = pull(tmp_path, upstream)
    policy = write(tmp_path / "policy.mcpp", ALLOW_ALL)
    state = tmp_path / "state"
    grant = create_grant(state, "agent")
    dead = f"http://127.0.0.1:{free_port()}/mcp"  # nothing listens there
    g = start_gateway("--policy", str(policy), "--upstream", dead, "--pin-catalog", str(catalog), state=state)
    async with httpx2.AsyncClient(timeout=30) as http:
        r = await call_tool(http, g.url(), grant["token"], "echo", {"text": "x"})
    assert r["status"] == 200 and r["result"]["isError"] is True
    text = result_text(r)
    assert text.startswith("[POLICY DENIED] Tool echo cannot be checked against the pinned catalog: "
                           "the upstream's tool list could not be obtained (")
    assert text.endswith("The call was not forwarded.")
    row = audit_rows(state)[-1]
    assert row["decision"] == "deny" and row["rule"] == "/catalog/echo" and row["outcome"] == "denied"
    failed = [e for e in g.log_records() if e["event"] == "catalog_listing_failed"]
    assert failed and failed[0]["tool"] == "echo" and failed[0]["error"]
    assert any(e["event"] == "catalog_denied" and e["kind"] == "unverifiable" for e in g.log_records())


async def test_pin_reloads_broken_is_refused_and_repinning_applies(tmp_path, rug, start_gateway):
    catalog = pull(tmp_path, rug, "pinned.json")
    good = catalog.read_text()
    write(tmp_path / "policy.mcpp", ALLOW_ALL)
    port = free_port()
    cfg = write(tmp_path / "gateway.toml", f"""
[gateway]
port = {port}
state_dir = "state"
reload_interval = 0.2

[[servers]]
id = "default"
url = "{rug.url}"
policy = "policy.mcpp"
catalog = "pinned.json"
""")
    grant = create_grant(tmp_path / "state", "agent")
    g = start_gateway("--config", str(cfg), port=port)
    http, c = client(g.url(), grant["token"], "auto")
    async with http, c:
        assert "echo" in await list_all(c)
        # an edited catalog no longer verifies: refused, the last good pin stays in force
        catalog.write_text(good.replace('"Echo the text back."', '"Echo the text back!"'))
        await until(lambda: g.health()["servers"]["default"]["catalog"]["error"] is not None)
        health = g.health()
        assert health["status"] == "degraded" and health["servers"]["default"]["catalog"]["in_force"] is True
        assert "hash mismatch" in health["servers"]["default"]["catalog"]["error"]
        assert (await c.call_tool("echo", {"text": "still"})).content[0].text == "still"
        assert any(e["event"] == "catalog_refused" and "hash mismatch" in e["error"] for e in g.log_records())

        await rug_pull(rug, "description")
        assert "echo" not in await list_all(c)
        assert (await c.call_tool("echo", {"text": "no"})).is_error
        # the change is reviewed and pinned again: the new definition is the pin
        mcpp("catalog", "pull", "--url", rug.url, "-o", str(catalog))
        await until(lambda: g.health()["servers"]["default"]["catalog"]["error"] is None)
        assert g.health()["status"] == "ok"
        r = await c.call_tool("echo", {"text": "re-pinned"})
        assert not r.is_error and r.content[0].text == "re-pinned"
        assert "echo" in await list_all(c)


async def test_pin_that_never_loaded_refuses_everything(tmp_path, upstream, start_gateway):
    write(tmp_path / "policy.mcpp", ALLOW_ALL)
    write(tmp_path / "pinned.json", '{"mcppCatalog": 1, "tools": []}')  # tools must be an object
    port = free_port()
    cfg = write(tmp_path / "gateway.toml", f"""
[gateway]
port = {port}
state_dir = "state"

[[servers]]
id = "default"
url = "{upstream.url}"
policy = "policy.mcpp"
catalog = "pinned.json"
""")
    grant = create_grant(tmp_path / "state", "agent")
    g = start_gateway("--config", str(cfg), port=port)
    health = g.health()
    assert health["status"] == "degraded" and health["servers"]["default"]["catalog"]["in_force"] is False
    before = len(upstream.ran())
    http, c = client(g.url(), grant["token"], "legacy")
    async with http, c:
        assert await list_all(c) == []  # nothing could be called, so nothing is listed
        r = await c.call_tool("echo", {"text": "x"})
        assert r.is_error and r.content[0].text == (
            "[POLICY DENIED] Tool echo cannot be checked: the pinned catalog pinned.json is not loaded. "
            "No call to this server is forwarded until it loads.")  # why (with its path) is in /healthz and the log
    assert len(upstream.ran()) == before
    assert audit_rows(tmp_path / "state")[-1]["rule"] == "/catalog/echo"


async def test_stdio_sessions_are_pinned_separately(tmp_path, start_gateway):
    """A stdio server runs one child per session, so each session's tools are checked on
    their own; a change announced with tools/list_changed is re-listed before the next call."""
    record = tmp_path / "ran.jsonl"
    record.touch()
    cmd = f"{shlex.quote(sys.executable)} {shlex.quote(str(FIXTURE))} --stdio"
    mcpp("catalog", "pull", "--stdio", cmd, "--env", "MCPP_FIXTURE_RUG_PULL=1", "-o", str(tmp_path / "tools.json"))
    write(tmp_path / "policy.mcpp", ALLOW_ALL)
    port = free_port()
    cfg = write(tmp_path / "gateway.toml", f"""
[gateway]
port = {port}
state_dir = "state"

[[servers]]
id = "default"
command = [{json.dumps(sys.executable)}, {json.dumps(str(FIXTURE))}, "--stdio"]
env = {{ MCPP_FIXTURE_LOG = {json.dumps(str(record))}, MCPP_FIXTURE_RUG_PULL = "1", MCPP_FIXTURE_PAGE_SIZE = "5" }}
policy = "policy.mcpp"
catalog = "tools.json"
""")
    grant = create_grant(tmp_path / "state", "agent")
    g = start_gateway("--config", str(cfg), port=port)
    # a 2026-07-28 call cannot be checked (stdio lists only in a session): the client gets the
    # version error the upstream gives, as without a pin, so a dual-era client falls back
    async with httpx2.AsyncClient(timeout=30) as http:
        r = await call_tool(http, g.url(), grant["token"], "echo", {"text": "modern"})
    assert r["status"] == 400 and r["error"]["code"] == -32022 and "2025-11-25" in r["error"]["data"]["supported"]
    http_a, a = client(g.url(), grant["token"], "auto")
    http_b, b = client(g.url(), grant["token"], "legacy")
    async with http_a, a, http_b, b:
        assert a.protocol_version == "2025-11-25"  # stdio speaks the handshake era
        assert not (await a.call_tool("echo", {"text": "a1"})).is_error
        assert "echo" in await list_all(b)
        # session A's child changes echo and announces it; A does not list again
        assert (await a.call_tool("rug_pull", {"change": "description"})).content[0].text == "changed: description"
        r = await a.call_tool("echo", {"text": "a2"})
        assert r.is_error and "the definition of tool 'echo' changed since it was pinned (description differ" in r.content[0].text
        # session B's child is unchanged: its echo still works
        r = await b.call_tool("echo", {"text": "b1"})
        assert not r.is_error and r.content[0].text == "b1"
    ran = [json.loads(x) for x in record.read_text().splitlines() if x.strip()]
    assert [(x["tool"], x["args"].get("text")) for x in ran if x["tool"] == "echo"] == [("echo", "a1"), ("echo", "b1")]
    rows = audit_rows(tmp_path / "state", "--tool", "echo")
    assert [(r["decision"], r["rule"], r["outcome"]) for r in rows] == [
        ("deny", "/catalog/echo", "rejected"), ("allow", "/policies/policy0", "forwarded"),
        ("deny", "/catalog/echo", "denied"), ("allow", "/policies/policy0", "forwarded")]
    assert any(e["event"] == "catalog_relist_due" for e in g.log_records())


def test_config_and_cli_errors(tmp_path):
    from mcpp.runtime.gateway.config import ConfigError, load_config

    base = '[[servers]]\nid = "a"\nurl = "http://x/mcp"\n'
    for extra, message in (('catalog = 5\n', "servers[0].catalog: expected a string"),
                           ('catalog = "t.json"\ncatalog_max_age = -1\n', "catalog_max_age: must be at least 0")):
        with pytest.raises(ConfigError) as e:
            load_config(write(tmp_path / "c.toml", base + extra))
        assert message in str(e.value)
    cfg = load_config(write(tmp_path / "c.toml", base + 'catalog = "pins/t.json"\n'))
    assert cfg.servers[0].catalog == str(tmp_path / "pins" / "t.json") and cfg.servers[0].catalog_max_age == 300.0
    policy = write(tmp_path / "p.mcpp", ALLOW_ALL)
    r = mcpp("serve", "--policy", str(policy), "--upstream", "http://127.0.0.1:1/mcp", "--pin-catalog", str(tmp_path / "nope.json"), check=False)
    assert r.returncode == 2 and r.stderr.startswith("mcpp: error: --pin-catalog: ") and "no such catalog file" in r.stderr
    assert "Traceback" not in r.stderr
    r = mcpp("serve", "--config", str(tmp_path / "c.toml"), "--pin-catalog", str(tmp_path / "t.json"), check=False)
    assert r.returncode == 2 and "are exclusive" in r.stderr


def test_listing_rounds_follow_their_cursors():
    """Pages of interleaved listings are put together by the cursor that continues them; only a
    listing read from its first page to its last replaces what the scope knew."""
    from mcpp.catalog import Catalog
    from mcpp.runtime.gateway.pinning import ListingTracker, drift_kind, verdict_of

    def tool(name, **extra):
        return {"name": name, "inputSchema": {"type": "object", **extra}}

    pin = Catalog.from_tools([tool("a"), tool("b"), tool("c")])
    t, scope = ListingTracker(), ("srv", "")
    t.observe_page(scope, None, [tool("a")], "r1-2")
    t.observe_page(scope, None, [tool("a")], "r2-2")  # a second client starts listing too
    assert t.get(scope).complete is False and t.get(scope).at == float("-inf")
    acc = t.observe_page(scope, "r2-2", [tool("b"), tool("a", extra=True)], None)
    assert [x["name"] for x in acc] == ["a", "b", "a"]  # round 2 only: its own page 1, then page 2
    assert verdict_of(pin, acc) == {"a": "the server lists tool 'a' twice with different definitions"}
    assert drift_kind(pin, acc, "a") == "duplicate"
    listing = t.get(scope)
    assert listing.complete and listing.names == {"a", "b"}
    # a page continuing an unknown cursor is merged in, but does not make a complete listing
    t.observe_page(scope, "forged", [tool("c", changed=1)], None)
    listing = t.get(scope)
    assert listing.names == {"a", "b", "c"} and len(listing.tools) == 4
    assert drift_kind(pin, listing.tools, "c") == "changed"
    # tools/list_changed: the listing stays, but is no longer current
    t.invalidate(scope)
    assert t.get(scope).at == float("-inf")
    t.forget(scope)
    assert t.get(scope) is None and (scope, "r1-2") not in t.rounds
