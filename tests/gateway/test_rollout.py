"""Shadow policies and log-only mode through `mcpp serve` with real peers (the SDK client
in both eras, the SDK fixture upstream that records what ran; docs/rollout.md)."""

from __future__ import annotations

import json
import re
import sqlite3
import time

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from .peers import create_grant, free_port, mcpp, write

MODES = ["auto", "legacy"]
ENFORCING = """
default deny;
permit (principal, action in [Action::"echo", Action::"add", Action::"charge"], resource);
hide Action::"get_secret";
limit "charges" (principal, action == Action::"charge", resource) max 3 per hour;
"""
SHADOW = """
default deny;
permit (principal, action == Action::"echo", resource);
permit (principal, action == Action::"charge", resource);
@reason("One charge an hour in the new policy.")
limit "charges" (principal, action == Action::"charge", resource) max 1 per hour;
"""


def client(url: str, token: str, mode: str):
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30.0))
    return http, Client(streamable_http_client(url, http_client=http), mode=mode)


def rows(state) -> list[dict]:
    db = sqlite3.connect(state / "audit.db")
    db.row_factory = sqlite3.Row
    return [dict(r) for r in db.execute("SELECT * FROM audit ORDER BY seq")]


def metric(text: str, name: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, _, value = line.rpartition(" ")
            out[labels[len(name):]] = float(value)
    return out


def config(tmp_path, upstream, port: int, shadow: str | None = "shadow.mcpp", mode: str = "enforce", extra: str = "") -> tuple:
    write(tmp_path / "policy.mcpp", ENFORCING)
    if shadow and not (tmp_path / shadow).exists():
        write(tmp_path / shadow, SHADOW)
    cfg = write(tmp_path / "gateway.toml", f"""
[gateway]
port = {port}
state_dir = "state"
reload_interval = 0.2
mode = "{mode}"
[[servers]]
id = "default"
url = "{upstream.url}"
policy = "policy.mcpp"
""" + (f'shadow = "{shadow}"\n' if shadow else "") + extra)
    return cfg, tmp_path / "state"


@pytest.mark.parametrize("mode", MODES)
async def test_shadow_mismatches_are_audited_and_counted_never_enforced(tmp_path, upstream, start_gateway, mode):
    port = free_port()
    cfg, state = config(tmp_path, upstream, port)
    alice = create_grant(state, "alice")
    g = start_gateway("--config", str(cfg), port=port)
    http, c = client(g.url(), alice["token"], mode)
    async with http, c:
        before = len(upstream.ran())
        assert not (await c.call_tool("echo", {"text": "x"})).is_error        # both allow
        assert not (await c.call_tool("add", {"a": 1, "b": 2})).is_error      # the shadow denies: still runs
        for _ in range(3):  # the enforcing limit is 3; the shadow's 1 reads the same counter
            assert not (await c.call_tool("charge", {"amount": 1})).is_error
        r = await c.call_tool("charge", {"amount": 1})
        assert r.is_error  # the shadow never reserved: the enforcing count is exactly 3
        ran = [x["tool"] for x in upstream.ran()[before:]]
        assert ran == ["echo", "add", "charge", "charge", "charge"]
    audit = [r for r in rows(state) if r["tool"] in ("echo", "add", "charge")]
    got = [(r["tool"], r["decision"], r["shadow_decision"], r["shadow_rule"]) for r in audit]
    assert got == [
        ("echo", "allow", "allow", "/tools/echo"),
        ("add", "allow", "deny", "/default"),
        ("charge", "allow", "allow", "/tools/charge"),  # count 0: within the shadow's max 1
        ("charge", "allow", "deny", "/tools/charge/limits/charges"),
        ("charge", "allow", "deny", "/tools/charge/limits/charges"),
        ("charge", "deny", "deny", "/tools/charge/limits/charges"),
    ]
    assert len({r["shadow_sha256"] for r in audit}) == 1 and audit[0]["shadow_sha256"]
    out = mcpp("audit", "--state", str(state), "--mismatches").stdout.splitlines()
    assert len(out) == 3 and all("MISMATCH" in line for line in out)
    assert "tool=add" in out[0] and "shadow=deny shadow_rule=/default" in out[0]
    m = metric(httpx2.get(f"{g.base}/metrics").text, "mcpp_shadow_decisions_total")
    assert m == {
        '{server="default",result="agree",decision="allow",shadow_decision="allow",rule="/tools/echo",shadow_rule="/tools/echo"}': 1,
        '{server="default",result="mismatch",decision="allow",shadow_decision="deny",rule="/tools/add",shadow_rule="/default"}': 1,
        '{server="default",result="agree",decision="allow",shadow_decision="allow",rule="/tools/charge",shadow_rule="/tools/charge"}': 1,
        '{server="default",result="mismatch",decision="allow",shadow_decision="deny",rule="/tools/charge",shadow_rule="/tools/charge/limits/charges"}': 2,
        '{server="default",result="agree",decision="deny",shadow_decision="deny",rule="/tools/charge/limits/charges",shadow_rule="/tools/charge/limits/charges"}': 1,
    }


async def test_shadow_labels_come_from_closed_sets(tmp_path, upstream, start_gateway):
    """Tool names nobody wrote down do not become label values, in either policy's rule."""
    port = free_port()
    write(tmp_path / "shadow.mcpp", 'default allow;\nlimit "all" (principal, action, resource) max 0 per hour;\n')
    cfg, state = config(tmp_path, upstream, port, extra="enforce_input_schema = false\n")
    g = start_gateway("--config", str(cfg), port=port)
    alice = create_grant(state, "alice")
    headers = {"Authorization": f"Bearer {alice['token']}", "Content-Type": "application/json",
               "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2026-07-28",
               "Mcp-Method": "tools/call"}
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
    for i in range(5):
        name = f"made_up_{i}"
        httpx2.post(g.url(), headers={**headers, "Mcp-Name": name}, content=json.dumps(
            {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": name, "arguments": {}, "_meta": meta}}))
    text = httpx2.get(f"{g.base}/metrics").text
    assert "made_up" not in text
    assert [(r["shadow_decision"], r["shadow_rule"]) for r in rows(state)] == [
        ("deny", f"/tools/made_up_{i}/limits/all") for i in range(5)]  # the audit keeps the real pointer
    m = metric(text, "mcpp_shadow_decisions_total")
    assert m == {'{server="default",result="agree",decision="deny",shadow_decision="deny",rule="/default",'
                 'shadow_rule="/tools/other/limits/all"}': 5}


async def test_shadow_reloads_and_a_broken_one_never_touches_enforcement(tmp_path, upstream, start_gateway):
    port = free_port()
    write(tmp_path / "shadow.mcpp", "this is not a policy;\n")  # broken from the start
    cfg, state = config(tmp_path, upstream, port)
    alice = create_grant(state, "alice")
    g = start_gateway("--config", str(cfg), port=port)  # starts anyway
    h = g.health()
    assert h["status"] == "degraded" and h["servers"]["default"]["shadow"]["in_force"] is False
    assert "shadow.mcpp:1:" in h["servers"]["default"]["shadow"]["error"]
    assert h["servers"]["default"]["policies"][0]["in_force"] is True
    assert any(r.get("event") == "shadow_refused" for r in g.log_records())
    http, c = client(g.url(), alice["token"], "auto")
    async with http, c:
        assert not (await c.call_tool("add", {"a": 1, "b": 2})).is_error
        assert rows(state)[-1]["shadow_decision"] is None
        # a good shadow is picked up like a policy
        write(tmp_path / "shadow.mcpp", SHADOW)
        deadline = time.time() + 20
        while g.health()["servers"]["default"]["shadow"]["in_force"] is not True and time.time() < deadline:
            time.sleep(0.2)
        assert (await c.call_tool("add", {"a": 1, "b": 2})).is_error is False
        assert rows(state)[-1]["shadow_decision"] == "deny"
        good = rows(state)[-1]["shadow_sha256"]
        # broken again: the last good shadow keeps deciding, enforcement as before
        write(tmp_path / "shadow.mcpp", "permit (principal, action, resource)\n")
        while g.health()["servers"]["default"]["shadow"]["error"] is None and time.time() < deadline + 20:
            time.sleep(0.2)
        assert not (await c.call_tool("echo", {"text": "y"})).is_error
        assert rows(state)[-1]["shadow_sha256"] == good
    m = metric(httpx2.get(f"{g.base}/metrics").text, "mcpp_shadow_reloads_total")
    assert m['{server="default",result="ok"}'] >= 1 and m['{server="default",result="refused"}'] >= 1


@pytest.mark.parametrize("mode", MODES)
async def test_log_only_never_denies_and_marks_everything(tmp_path, upstream, start_gateway, mode):
    policy = write(tmp_path / "policy.mcpp", ENFORCING + """
@approval("a person") permit (principal, action == Action::"delete_pod", resource);
""")
    state = tmp_path / "state"
    alice = create_grant(state, "alice")
    g = start_gateway("--policy", str(policy), "--upstream", upstream.url, "--mode", "log-only", state=state)
    h = g.health()
    assert h["mode"] == "log-only" and h["status"] == "degraded" and "LOG-ONLY MODE" in h["warning"]
    starts = [r for r in g.log_records() if r.get("event") == "log_only_mode"]
    assert starts and r"LOG-ONLY MODE" in starts[0]["warning"]
    http, c = client(g.url(), alice["token"], mode)
    async with http, c:
        before = len(upstream.ran())
        calls = [("echo", {"text": "a"}), ("delete_pod", {"namespace": "p", "name": "n"}),  # approval-bound
                 ("get_secret", {"name": "db"}),  # hidden
                 ("whoami", {})] + [("charge", {"amount": 1})] * 5  # default deny; a limit of 3
        for name, args in calls:
            r = await c.call_tool(name, args)
            assert not r.is_error, (name, r.content[0].text)
        # typed-call refusals still apply: they are not the policy's to waive
        r = await c.call_tool("add", {"a": "1", "b": 2})
        assert r.is_error and "must be a number" in r.content[0].text
        ran = [x["tool"] for x in upstream.ran()[before:]]
        assert ran == [n for n, _ in calls]
    audit = rows(state)
    assert audit and all(r["mode"] == "log-only" for r in audit)
    got = [(r["tool"], r["decision"], r["outcome"]) for r in audit]
    assert got == [("echo", "allow", "forwarded"), ("delete_pod", "approval", "forwarded"),
                   ("get_secret", "deny", "forwarded"), ("whoami", "deny", "forwarded")] + \
        [("charge", "allow", "forwarded")] * 3 + [("charge", "deny", "forwarded")] * 2 + [("add", "deny", "denied")]
    text = mcpp("audit", "--state", str(state)).stdout
    assert len(re.findall("mode=LOG-ONLY", text)) == len(audit)
    m = metric(httpx2.get(f"{g.base}/metrics").text, "mcpp_log_only_passed_total")
    assert m == {'{server="default",decision="approval"}': 1, '{server="default",decision="deny"}': 4}
    assert "mcpp_log_only 1" in httpx2.get(f"{g.base}/metrics").text
    assert g.health()["log_only_passed"] == 5


OLD_POD = """
default deny;
permit (principal, action == Action::"delete_pod", resource) when { context.input.namespace in ["dev", "staging"] };
permit (principal, action == Action::"echo", resource);
"""
NEW_POD = """
default deny;
permit (principal, action == Action::"delete_pod", resource) when { context.input.namespace == "dev" };
permit (principal, action == Action::"echo", resource);
"""


@pytest.mark.parametrize("values", ["none", "hashed", "full"])
async def test_diff_audit_replays_the_calls_the_gateway_audited(tmp_path, upstream, start_gateway, values):
    """Calls through a real gateway, then `mcpp diff OLD NEW --audit`: which of them the
    change would have decided differently, as precisely as the retained values allow."""
    port = free_port()
    write(tmp_path / "old.mcpp", OLD_POD)
    new = write(tmp_path / "new.mcpp", NEW_POD)
    cfg = write(tmp_path / "gateway.toml", f"""
[gateway]
port = {port}
state_dir = "state"
audit_values = "{values}"
[[servers]]
id = "default"
url = "{upstream.url}"
policy = "old.mcpp"
""")
    state = tmp_path / "state"
    alice = create_grant(state, "alice")
    g = start_gateway("--config", str(cfg), port=port)
    http, c = client(g.url(), alice["token"], "auto")
    async with http, c:
        for ns in ("staging", "dev", "staging", "prod"):
            await c.call_tool("delete_pod", {"namespace": ns, "name": "api"})
        await c.call_tool("echo", {"text": "secret-value-123"})
    g.stop()
    stored = [r["arg_values"] for r in rows(state)]
    if values == "none":
        assert stored == [None] * 5
    else:
        assert all(stored)
        assert ("secret-value-123" in stored[-1]) == (values == "full")
    out = mcpp("diff", str(tmp_path / "old.mcpp"), str(new), "--audit", str(state / "audit.db"), "--format", "json")
    audit = json.loads(out.stdout)["audit"]
    assert audit["rows"] == 5 and audit["hash_key"] == (values == "hashed")
    calls = {(c["tool"], c["status"], c["rows"]) for c in audit["calls"]}
    if values == "none":
        # keys only: every delete_pod row looks alike; whether it changes depends on the value
        assert calls == {("delete_pod", "may-change", 4)}
        assert audit["rows_that_may_change"] == 4 and audit["rows_unchanged"] == 1
    else:
        assert calls == {("delete_pod", "changes", 2)}  # the two staging deletions, and only they
        assert audit["rows_changing"] == 2 and audit["rows_unchanged"] == 3
    text = mcpp("diff", str(tmp_path / "old.mcpp"), str(new), "--audit", str(state / "audit.db")).stdout
    assert "past calls in" in text and "limits are compared at zero counts" in text


async def test_retained_values_are_erased_past_their_bound(tmp_path, upstream, start_gateway):
    port = free_port()
    cfg, state = config(tmp_path, upstream, port, shadow=None)
    cfg.write_text(cfg.read_text().replace('mode = "enforce"', 'mode = "enforce"\naudit_values = "full"'))
    alice = create_grant(state, "alice")
    g = start_gateway("--config", str(cfg), port=port)
    http, c = client(g.url(), alice["token"], "auto")
    async with http, c:
        await c.call_tool("echo", {"text": "kept for now"})
    g.stop()
    assert rows(state)[-1]["arg_values"] is not None
    # the next gateway on this state, with a bound these rows are past, erases them at its first sweep
    cfg.write_text(cfg.read_text().replace('audit_values = "full"', 'audit_values = "full"\naudit_values_days = 0'))
    g2 = start_gateway("--config", str(cfg), port=port, name="gateway2")
    deadline = time.time() + 20
    while rows(state)[-1]["arg_values"] is not None and time.time() < deadline:
        time.sleep(0.2)
    assert rows(state)[-1]["arg_values"] is None
    assert any(r.get("event") == "audit_values_purged" for r in g2.log_records())


async def test_shadow_and_approval_limits_read_redis_counters_without_reserving(tmp_path, upstream, start_gateway, redis_url):
    """With counters in Redis, the non-reserving checks (a shadow's limits, an
    approval-bound call's limits) read the shared counts with one awaited read."""
    port = free_port()
    cfg, state = config(tmp_path, upstream, port)
    write(tmp_path / "policy.mcpp", ENFORCING + '@approval("x") permit (principal, action == Action::"delete_pod", resource);\n'
          'limit "charges" (principal, action == Action::"delete_pod", resource) max 3 per hour;\n')
    cfg.write_text(cfg.read_text().replace('mode = "enforce"', f'mode = "enforce"\nredis_url = "{redis_url}"'))
    alice = json.loads(mcpp("grant", "create", "--server", "default", "--label", "alice-redis", "--config", str(cfg),
                            "--json").stdout)
    g = start_gateway("--config", str(cfg), port=port)
    http, c = client(g.url(), alice["token"], "auto")
    async with http, c:
        for _ in range(2):
            assert not (await c.call_tool("charge", {"amount": 1})).is_error
        r = await c.call_tool("delete_pod", {"namespace": "a", "name": "b"})  # counts 2 of 3: asks for approval
        assert r.is_error and "[APPROVAL REQUIRED]" in r.content[0].text
        assert not (await c.call_tool("charge", {"amount": 1})).is_error
        r = await c.call_tool("delete_pod", {"namespace": "a", "name": "b"})  # the budget is spent: the limit denies
        assert r.is_error and r.content[0].text.startswith("[POLICY DENIED] Limit 'charges' exceeded.")
    audit = [(r["tool"], r["decision"], r["shadow_decision"], r["shadow_rule"]) for r in rows(state)]
    assert audit == [
        ("charge", "allow", "allow", "/tools/charge"),
        ("charge", "allow", "deny", "/tools/charge/limits/charges"),
        ("delete_pod", "approval", "deny", "/default"),
        ("charge", "allow", "deny", "/tools/charge/limits/charges"),
        ("delete_pod", "deny", "deny", "/default"),
    ]
    assert not any(r.get("event") == "limit_store_unavailable" for r in g.log_records())
