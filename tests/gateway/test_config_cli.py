"""Configuration, credentials by reference, hot reload of the config, and the CLI's
contract: clear errors (never a traceback), tokens printed once, audit filters and export."""

from __future__ import annotations

import asyncio
import json
import os
import time

import httpx2
import pytest

from mcpp.runtime.gateway.config import ConfigError, load_config

from .peers import ALLOW_ALL, call_tool, free_port, mcpp, result_text, write


def _bad(tmp_path, text: str) -> str:
    path = write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    return str(e.value)


def test_config_errors_say_where(tmp_path):
    assert "credentials are never inline" in _bad(tmp_path, """
[[servers]]
id = "gh"
url = "https://example.com/mcp"
[[servers.credentials]]
header = "Authorization"
token = "ghp_inline"
""")
    assert "credentials in the URL" in _bad(tmp_path, '[[servers]]\nid = "a"\nurl = "https://u:p@example.com/mcp"\n')
    assert "exactly one of url" in _bad(tmp_path, '[[servers]]\nid = "a"\nurl = "http://x/mcp"\ncommand = ["x"]\n')
    assert "unknown key 'polcy'" in _bad(tmp_path, '[[servers]]\nid = "a"\nurl = "http://x/mcp"\npolcy = "p"\n')
    assert "duplicate server id" in _bad(tmp_path, '[[servers]]\nid = "a"\nurl = "http://x/mcp"\n[[servers]]\nid = "a"\nurl = "http://y/mcp"\n')
    assert "invalid TOML" in _bad(tmp_path, "[[servers]\n")
    assert "header, not env" in _bad(tmp_path, '[[servers]]\nid = "a"\nurl = "http://x/mcp"\n[[servers.credentials]]\nenv = "X"\nfrom_env = "Y"\n')
    assert "set by the gateway" in _bad(tmp_path, '[[servers]]\nid = "a"\nurl = "http://x/mcp"\n[[servers.credentials]]\nheader = "Mcp-Session-Id"\nfrom_env = "Y"\n')
    srv = '[[servers]]\nid = "a"\nurl = "http://x/mcp"\n'
    assert "another port" in _bad(tmp_path, '[gateway]\nport = 9000\nops_listen = "127.0.0.1:9000"\n' + srv)
    assert "expected host:port" in _bad(tmp_path, '[gateway]\nops_listen = "nowhere"\n' + srv)
    assert "expected host:port" in _bad(tmp_path, '[gateway]\nops_listen = "127.0.0.1:\u00b2"\n' + srv)  # (H41-10's digit: was a ValueError)
    assert "MCPP_NO_SUCH_OPS_TOKEN is not set" in _bad(tmp_path, '[gateway]\nops_token_env = "MCPP_NO_SUCH_OPS_TOKEN"\n' + srv)
    assert "gateway.max_headers: expected an integer" in _bad(tmp_path, '[gateway]\nmax_headers = 8.5\n' + srv)
    assert "gateway.header_timeout: must be at least" in _bad(tmp_path, '[gateway]\nheader_timeout = 0\n' + srv)
    # hostile16 F2: TOML's nan and inf passed every `at least` check (nan compares false);
    # store_busy_timeout = nan then meant "wait forever" for one store, "never" for another
    for key in ("store_busy_timeout", "upstream_timeout", "approval_ttl", "redis_timeout", "shutdown_timeout"):
        for v in ("nan", "inf", "+inf", "-nan"):
            assert f"gateway.{key}: must be a finite number" in _bad(tmp_path, f'[gateway]\n{key} = {v}\n' + srv), (key, v)
    assert "servers[0].catalog_max_age: must be a finite number" in _bad(tmp_path, srv + "catalog_max_age = inf\n")
    assert "gateway.store_busy_timeout: must be at least 0" in _bad(tmp_path, '[gateway]\nstore_busy_timeout = -1\n' + srv)
    assert "gateway.shutdown_timeout: must be at least 0" in _bad(tmp_path, '[gateway]\nshutdown_timeout = -1\n' + srv)
    for v in ("0", "33"):  # (max_sessions 32 by default)
        assert "max_sessions_per_caller: must be between 1 and max_sessions (32)" in _bad(
            tmp_path, srv + f"max_sessions_per_caller = {v}\n")


def test_a_callers_share_of_stdio_sessions_is_a_quarter_by_default(tmp_path):
    for sessions, share in ((32, 8), (4, 1), (1, 1), (10, 2)):
        cfg = load_config(write(tmp_path / "ok.toml", f'[[servers]]\nid = "a"\ncommand = ["x"]\nmax_sessions = {sessions}\n'))
        assert cfg.servers[0].max_sessions_per_caller == share, sessions


def test_cli_errors_are_messages_not_tracebacks(tmp_path):
    cases = [
        ("serve", "--policy", str(tmp_path / "missing.mcpp"), "--upstream", "http://127.0.0.1:1/mcp"),
        ("serve", "--policy", str(write(tmp_path / "p.mcpp", ALLOW_ALL)), "--upstream", "ftp://x"),
        ("serve", "--policy", str(tmp_path / "p.mcpp"), "--upstream", "http://x/mcp", "--stdio", "cat"),
        ("serve", "--config", str(write(tmp_path / "c.toml", "[gateway]\nport = 'x'\n"))),
        ("serve", "--policy", str(tmp_path / "p.mcpp"), "--upstream", "http://x/mcp", "--anonymous", "--host", "0.0.0.0"),
        ("grant", "create", "--server", "default", "--label", "a", "--state", str(tmp_path / "st"), "--config", "x.toml"),
        ("grant", "revoke", "g_nope", "--state", str(tmp_path / "st")),
        ("audit", "--state", str(tmp_path / "empty")),
    ]
    for args in cases:
        r = mcpp(*args, check=False)
        assert r.returncode in (1, 2), (args, r.returncode, r.stderr)
        assert "Traceback" not in r.stderr and r.stderr.startswith("mcpp: error:"), (args, r.stderr)


def test_grant_policy_must_load(tmp_path):
    broken = write(tmp_path / "broken.mcpp", "permit (principal, action, resource) when { ;\n")
    r = mcpp("grant", "create", "--server", "default", "--label", "a", "--state", str(tmp_path / "st"), "--policy", str(broken), check=False)
    assert r.returncode == 1 and "does not load" in r.stderr
    assert not (tmp_path / "st" / "grants.db").exists() or "g_" not in mcpp("grant", "list", "--state", str(tmp_path / "st")).stdout


async def test_credentials_by_reference_and_per_grant_policy_and_reload(tmp_path, upstream, start_gateway):
    port = free_port()
    secret_file = write(tmp_path / "api-key", "key-from-file\n")
    write(tmp_path / "server.mcpp", 'default deny;\npermit (principal, action in [Action::"whoami", Action::"echo"], resource);\n')
    write(tmp_path / "strict.mcpp", 'default deny;\n@reason("Interns may only echo.")\npermit (principal, action == Action::"echo", resource);\n')
    cfg_text = f"""
[gateway]
port = {port}
state_dir = "state"
reload_interval = 0.2

[groups]
staff = ["alice"]

[[servers]]
id = "api"
url = "{upstream.url}"
policy = "server.mcpp"
grant_policies = {{ intern = "strict.mcpp" }}

[[servers.credentials]]
header = "Authorization"
prefix = "Bearer "
from_env = "MCPP_TEST_UPSTREAM_TOKEN"

[[servers.credentials]]
header = "X-Api-Key"
from_file = "{secret_file}"
"""
    cfg = write(tmp_path / "gateway.toml", cfg_text)
    env = dict(os.environ, MCPP_TEST_UPSTREAM_TOKEN="upstream-secret")
    alice = json.loads(mcpp("grant", "create", "--server", "api", "--label", "alice", "--config", str(cfg), "--json").stdout)
    intern = json.loads(mcpp("grant", "create", "--server", "api", "--label", "intern", "--config", str(cfg), "--json").stdout)
    r = mcpp("grant", "create", "--server", "nope", "--label", "x", "--config", str(cfg), check=False)
    assert r.returncode == 2 and "no server 'nope'" in r.stderr
    g = start_gateway("--config", str(cfg), port=port, env=env)
    async with httpx2.AsyncClient(timeout=30) as http:
        r = await call_tool(http, g.url("api"), alice["token"], "whoami", {})
        seen = json.loads(result_text(r))
        # the upstream sees the gateway's credentials, never the grant token
        assert seen == {"authorization": "Bearer upstream-secret", "x-api-key": "key-from-file", "cookie": None}
        r = await call_tool(http, g.url("api"), intern["token"], "whoami", {}, rid=2)
        assert result_text(r) == "[POLICY DENIED] Tool whoami is not allowed by policy (default deny)."  # strict.mcpp is in force
        assert result_text(await call_tool(http, g.url("api"), intern["token"], "echo", {"text": "hi"}, rid=3)) == "hi"
        # rotating the credential file reaches the upstream without a restart
        secret_file.write_text("rotated-key\n")
        async def rotated():
            r = await call_tool(http, g.url("api"), alice["token"], "whoami", {}, rid=9)
            return json.loads(result_text(r))["x-api-key"] == "rotated-key"
        deadline = time.time() + 15
        while not await rotated():
            assert time.time() < deadline, "the rotated credential never reached the upstream"
            await asyncio.sleep(0.2)
        # a broken config is refused and the running one stays
        cfg.write_text(cfg_text.replace("[[servers]]", "[[servers]\n", 1))
        await _until(lambda: g.health()["config"]["error"] is not None)
        assert "invalid TOML" in g.health()["config"]["error"]
        assert result_text(await call_tool(http, g.url("api"), intern["token"], "echo", {"text": "still"}, rid=4)) == "still"
        # a good change (a second server) applies without a restart
        cfg.write_text(cfg_text + f'\n[[servers]]\nid = "second"\nurl = "{upstream.url}"\npolicy = "strict.mcpp"\n')
        await _until(lambda: "second" in g.health()["servers"])
        assert g.health()["config"]["error"] is None
        bob = json.loads(mcpp("grant", "create", "--server", "second", "--label", "bob", "--config", str(cfg), "--json").stdout)
        assert result_text(await call_tool(http, g.url("second"), bob["token"], "echo", {"text": "2nd"}, rid=5)) == "2nd"
    whoami = upstream.ran("whoami")
    assert all(alice["token"] not in json.dumps(w) for w in whoami)


async def _until(pred, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached")


async def test_audit_cli_filters_export_and_metrics(tmp_path, upstream, start_gateway):
    from .peers import POLICY, create_grant

    policy = write(tmp_path / "policy.mcpp", POLICY)
    state = tmp_path / "state"
    a, b = create_grant(state, "alice"), create_grant(state, "bob")
    g = start_gateway("--policy", str(policy), "--upstream", upstream.url, state=state)
    async with httpx2.AsyncClient(timeout=30) as http:
        await call_tool(http, g.url(), a["token"], "echo", {"text": "x"})
        await call_tool(http, g.url(), a["token"], "delete_pod", {"namespace": "prod", "name": "n"}, rid=2)
        await call_tool(http, g.url(), b["token"], "add", {"a": 1, "b": 2}, rid=3)
    def rows(*args):
        return [json.loads(x) for x in mcpp("audit", "--state", str(state), "--json", *args).stdout.splitlines()]
    assert [r["tool"] for r in rows()] == ["echo", "delete_pod", "add"]
    assert [r["tool"] for r in rows("--grant", "alice")] == ["echo", "delete_pod"]
    assert [r["tool"] for r in rows("--grant", b["id"])] == ["add"]
    assert [r["tool"] for r in rows("--decision", "deny")] == ["delete_pod"]
    assert [r["tool"] for r in rows("--since", "1h", "--tool", "add")] == ["add"]
    assert rows("--until", "2000-01-01T00:00:00Z") == []
    assert [r["tool"] for r in rows("--limit", "1")] == ["add"]
    text = mcpp("audit", "--state", str(state), "--decision", "deny").stdout
    assert "deny  tool=delete_pod rule=/tools/delete_pod/require/args.namespace-in grant=alice(" in text
    assert "args=[name namespace]" in text and 'reason="Namespace is outside the allowed non-production set."' in text
    row = rows()[0]
    assert set(row) >= {"time", "request_id", "trace_id", "grant_id", "grant_label", "server", "tool", "decision",
                        "rule", "message", "arg_keys", "outcome"}
    metrics = httpx2.get(f"{g.base}/metrics").text
    assert 'mcpp_decisions_total{server="default",decision="deny",rule="/tools/delete_pod/require/args.namespace-in"} 1' in metrics
    assert "mcpp_request_duration_seconds_bucket" in metrics and "mcpp_decision_duration_seconds_count" in metrics
    logs = g.log_records()
    assert any(e["event"] == "decision" and e["decision"] == "deny" for e in logs)
    assert all(isinstance(e, dict) and "ts" in e and "level" in e for e in logs)


async def test_audit_follow_tails_new_rows(tmp_path, upstream, start_gateway):
    import subprocess
    import sys

    from .peers import create_grant

    policy = write(tmp_path / "policy.mcpp", ALLOW_ALL)
    state = tmp_path / "state"
    grant = create_grant(state, "tail")
    g = start_gateway("--policy", str(policy), "--upstream", upstream.url, state=state)
    async with httpx2.AsyncClient(timeout=30) as http:
        await call_tool(http, g.url(), grant["token"], "echo", {"text": "first"})
        tail = subprocess.Popen([sys.executable, "-m", "mcpp", "audit", "--state", str(state), "--follow", "--json"],
                                stdout=subprocess.PIPE, text=True)
        try:
            async def line():
                return json.loads(await asyncio.wait_for(asyncio.to_thread(tail.stdout.readline), 20))

            assert (await line())["tool"] == "echo"
            await call_tool(http, g.url(), grant["token"], "add", {"a": 1, "b": 1}, rid=2)
            assert (await line())["tool"] == "add"
        finally:
            tail.kill()
            tail.wait(5)
