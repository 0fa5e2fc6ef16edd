"""Policies on who the caller is, through the gateway: a real authorization server's tokens,
the config's claims mapping, and a policy with `entity User` deciding on `principal.*`.
"""

from __future__ import annotations

import sqlite3
import time

import pytest

from .oauth_peers import AuthServer, gateway_env, oauth_config
from .peers import MODERN_META, Gateway, call_tool, free_port, parse_response, write

POLICY = """
entity User in [Group] { email: String, scopes: Set<String>, refund_cap?: Long };
default deny;
@reason("Refunds above your refund cap need a supervisor.")
permit (principal is User, action == Action::"refund_payment", resource)
when { principal has refund_cap && context.input.amount <= principal.refund_cap };
permit (principal, action in [Action::"echo", Action::"delete_pod"], resource);
@reason("Deleting pods needs the k8s:write scope.")
forbid (principal, action == Action::"delete_pod", resource)
unless { principal is User && principal.scopes.contains("k8s:write") };
permit (principal in Group::"sre", action == Action::"whoami", resource);
"""
CLAIMS = """email = { claim = "email", type = "String" }
scopes = { claim = "scope", type = "Set<String>" }
refund_cap = { claim = ["https://acme.test/claims", "refund_cap"], type = "Long" }
"""


@pytest.fixture(scope="module")
def peers(tmp_path_factory, upstream):
    tmp = tmp_path_factory.mktemp("identity")
    auth = AuthServer(tmp)
    port = free_port()
    policy = write(tmp / "policy.mcpp", POLICY)
    cfg = oauth_config(tmp, auth, upstream.url, policy, port, oauth='groups_claim = "groups"', claims=CLAIMS)
    g = Gateway(tmp, ["--config", str(cfg)], port, tmp / "state", env=gateway_env())
    yield auth, g, tmp
    g.stop()
    auth.stop()


def token(auth, g, sub="alice", scope="mcp", cap=None, **claims):
    extra = {"https://acme.test/claims": {"refund_cap": cap}} if cap is not None else {}
    return auth.mint({"sub": sub, "aud": f"http://127.0.0.1:{g.port}/mcp/pay", "scope": scope,
                      "email": f"{sub}@acme.test", **extra, **claims})


async def _call(g, tok, name, args):
    import httpx2

    async with httpx2.AsyncClient(timeout=30) as h:
        return await call_tool(h, g.url("pay"), tok, name, args)


async def _listed(g, tok) -> set[str]:
    import json

    import httpx2

    body = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": MODERN_META}}
    async with httpx2.AsyncClient(timeout=30) as h:
        r = await h.post(g.url("pay"), headers={
            "Authorization": f"Bearer {tok}", "Content-Type": "application/json", "MCP-Protocol-Version": "2026-07-28",
            "Accept": "application/json, text/event-stream", "Mcp-Method": "tools/list"}, content=json.dumps(body))
    msg = parse_response(r)
    return {t["name"] for t in msg["result"]["tools"]}


def _text(r) -> str:
    return r["result"]["content"][0]["text"]


async def test_principal_attributes_decide(peers, upstream):
    auth, g, _ = peers
    before = len(upstream.ran())
    capped = token(auth, g, cap=1000)
    r = await _call(g, capped, "refund_payment", {"charge_id": "ch_1", "amount": 500})
    assert not r["result"]["isError"], r
    r = await _call(g, capped, "refund_payment", {"charge_id": "ch_1", "amount": 5000})
    assert r["result"]["isError"] and _text(r) == "[POLICY DENIED] Refunds above your refund cap need a supervisor."
    r = await _call(g, token(auth, g), "refund_payment", {"charge_id": "ch_1", "amount": 1})  # no cap claim
    assert r["result"]["isError"]
    r = await _call(g, token(auth, g, scope="mcp"), "delete_pod", {"namespace": "dev", "name": "a"})
    assert r["result"]["isError"] and _text(r) == "[POLICY DENIED] Deleting pods needs the k8s:write scope."
    r = await _call(g, token(auth, g, scope="mcp k8s:write"), "delete_pod", {"namespace": "dev", "name": "a"})
    assert not r["result"]["isError"], r
    assert [(x["tool"], x["args"]) for x in upstream.ran()[before:]] == [
        ("refund_payment", {"charge_id": "ch_1", "amount": 500.0}), ("delete_pod", {"namespace": "dev", "name": "a"})]


async def test_tools_list_is_exact_per_user(peers):
    """Two users with different groups and claims get different `tools/list` answers, each
    exact for that user (analyzer.visibility with the user fixed): a tool is listed when
    some call by *this* user could be allowed. A rule's scope alone would list delete_pod
    and refund_payment for dana (permits whose scope matches every user); her claims rule
    them out. The same person with other claims is another principal, with its own answer."""
    auth, g, _ = peers
    sam = token(auth, g, sub="sam", scope="mcp k8s:write", cap=1000, groups=["sre"])
    dana = token(auth, g, sub="dana", scope="mcp", groups=["dev"])
    assert await _listed(g, sam) == {"echo", "delete_pod", "refund_payment", "whoami"}
    assert await _listed(g, dana) == {"echo"}
    dana_writer = token(auth, g, sub="dana", scope="mcp k8s:write", groups=["dev"])
    assert await _listed(g, dana_writer) == {"echo", "delete_pod"}
    assert await _listed(g, dana) == {"echo"}  # the cache keeps her first token's answer apart
    # what is listed is what the engine lets each of them run
    r = await _call(g, dana, "delete_pod", {"namespace": "dev", "name": "a"})
    assert r["result"]["isError"]
    r = await _call(g, sam, "whoami", {})
    assert not r["result"]["isError"], r


async def test_a_claim_of_another_type_is_left_out_and_named_in_the_log(peers):
    auth, g, _ = peers
    bad = auth.mint({"sub": "eve", "aud": f"http://127.0.0.1:{g.port}/mcp/pay", "scope": "mcp", "email": "eve@acme.test",
                     "https://acme.test/claims": {"refund_cap": "999999"}})
    r = await _call(g, bad, "refund_payment", {"charge_id": "c", "amount": 1})
    assert r["result"]["isError"]  # the string cap is no Long: the user has no refund_cap
    time.sleep(0.3)
    unusable = [x for x in g.log_records() if x.get("event") == "claim_unusable" and x.get("attribute") == "refund_cap"]
    assert unusable and unusable[-1]["why"] == "expected a 64-bit integer, got a string"
    assert "999999" not in g.log.read_text()
    # a required attribute missing from the token: the engine denies (/principal), fail closed
    no_mail = auth.mint({"sub": "nomail", "aud": f"http://127.0.0.1:{g.port}/mcp/pay", "scope": "mcp"})
    r = await _call(g, no_mail, "echo", {"text": "x"})
    assert r["result"]["isError"] and r["result"]["_meta"]["io.mcpp/decision"]["rule"] == "/principal"
    row = sqlite3.connect(g.state / "audit.db").execute(
        "SELECT rule, subject FROM audit WHERE subject = 'nomail'").fetchone()
    assert row == ("/principal", "nomail")


def test_serve_refuses_a_mapping_the_policy_cannot_use(tmp_path):
    import subprocess
    import sys
    from types import SimpleNamespace

    policy = write(tmp_path / "policy.mcpp", POLICY)
    issuer = SimpleNamespace(issuer="http://127.0.0.1:9/")  # nothing is fetched before the refusal
    cfg = oauth_config(tmp_path, issuer, "http://127.0.0.1:9/mcp", policy, free_port(),
                       claims='email = { claim = "email", type = "String" }\nrefund_cap = "String"\n')
    r = subprocess.run([sys.executable, "-m", "mcpp", "serve", "--config", str(cfg)], capture_output=True, text=True,
                       timeout=120, env=gateway_env())
    assert r.returncode == 1, r.stderr
    assert "entity User requires attribute 'scopes' (Set<String>), but no claim is mapped to it" in r.stderr
    assert "Traceback" not in r.stderr


async def test_a_reloaded_policy_that_needs_an_unmapped_attribute_is_refused(peers):
    auth, g, tmp = peers
    write(tmp / "policy.mcpp", POLICY.replace("refund_cap?: Long", "refund_cap?: Long, region: String"))
    deadline = time.time() + 15
    while time.time() < deadline:
        pols = g.health()["servers"]["pay"]["policies"]
        if pols and pols[0]["error"]:
            break
        time.sleep(0.3)
    assert "entity User requires attribute 'region' (String)" in pols[0]["error"] and pols[0]["in_force"]
    r = await _call(g, token(auth, g, scope="mcp k8s:write"), "delete_pod", {"namespace": "dev", "name": "b"})
    assert not r["result"]["isError"]  # the last good policy still decides
    write(tmp / "policy.mcpp", POLICY)
