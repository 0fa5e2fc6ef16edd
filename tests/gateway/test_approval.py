"""Human approval through `mcpp serve` with real peers: the official SDK client (with and
without an elicitation handler, both protocol eras) to the SDK fixture upstream, which
records every tool it ran. An approval-bound call runs only after approval, never twice
on one approval, never with changed arguments; approvals and rejections are audited with
who decided (docs/approval.md)."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import httpx2
import pytest
from mcp import Client, types
from mcp.client.streamable_http import streamable_http_client

from .peers import call_tool, configured_gateway, create_grant, mcpp, result_text, write

MODES = ["auto", "legacy"]
POLICY = """
default deny;
permit (principal, action in [Action::"echo", Action::"add"], resource);
permit (principal, action == Action::"charge", resource) when { context.input.amount <= 100 };
@approval("Charges over 100 need a person.")
permit (principal, action == Action::"charge", resource) when { context.input.amount > 100 };
@reason("Charge budget exhausted.")
limit "charges" (principal, action == Action::"charge", resource) max 3 per hour;
"""


def client(url: str, token: str, mode: str, answer=None, seen=None):
    """The SDK client; `answer(params)` is its elicitation handler (None: it has none)."""
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30.0))
    async def handler(context, params):  # noqa: ARG001 (the MCP SDK's handler signature)
        if seen is not None:
            seen.append(params)
        return answer(params)

    return http, Client(streamable_http_client(url, http_client=http), mode=mode,
                        elicitation_callback=handler if answer is not None else None)


def accept(_params):
    return types.ElicitResult(action="accept", content={"approve": True})


def decline(_params):
    return types.ElicitResult(action="decline")


@pytest.fixture
def gw(tmp_path, upstream, start_gateway):
    policy = write(tmp_path / "policy.mcpp", POLICY)
    state = tmp_path / "state"
    g = start_gateway("--policy", str(policy), "--upstream", upstream.url, "--approval-elicitation", state=state)
    g.alice = create_grant(state, "alice")
    g.bob = create_grant(state, "bob")
    return g


def rows(state) -> list[dict]:
    db = sqlite3.connect(state / "audit.db")
    db.row_factory = sqlite3.Row
    return [dict(r) for r in db.execute("SELECT * FROM audit ORDER BY seq")]


def charges(upstream, before: int) -> list[float]:
    return [r["args"]["amount"] for r in upstream.ran()[before:] if r["tool"] == "charge"]


@pytest.mark.parametrize("mode", MODES)
async def test_elicitation_approves_one_run_of_the_exact_call(gw, upstream, mode):
    seen: list = []
    http, c = client(gw.url(), gw.alice["token"], mode, accept, seen)
    async with http, c:
        before = len(upstream.ran())
        r = await c.call_tool("charge", {"amount": 500})
        assert not r.is_error and r.content[0].text == "charged 500.0"
        assert charges(upstream, before) == [500.0]
        (q,) = seen
        assert "alice asks to run the tool charge on default" in q.message and '{"amount": 500}' in q.message
        assert "Charges over 100 need a person." in q.message
        # an ordinary permit allows it: no person is asked
        r = await c.call_tool("charge", {"amount": 50})
        assert not r.is_error and len(seen) == 1
        # the next identical call needs a new approval: the person is asked again
        r = await c.call_tool("charge", {"amount": 500})
        assert not r.is_error and len(seen) == 2
        assert charges(upstream, before) == [500.0, 50.0, 500.0]
    audit = rows(gw.state)
    answers = [r for r in audit if r["outcome"] == "approval"]
    assert [r["decision"] for r in answers] == ["approved", "approved"]
    assert all(r["message"].endswith("approved by elicitation:alice via elicitation") for r in answers)
    ran = [r for r in audit if r["tool"] == "charge" and r["outcome"] == "forwarded" and r["decision"] == "approval"]
    assert len(ran) == 2 and {r["approval_id"] for r in ran} == {r["approval_id"] for r in answers}


@pytest.mark.parametrize("mode", MODES)
async def test_elicitation_declined_never_runs_and_stays_rejected(gw, upstream, mode):
    seen: list = []
    http, c = client(gw.url(), gw.alice["token"], mode, decline, seen)
    async with http, c:
        before = len(upstream.ran())
        r = await c.call_tool("charge", {"amount": 700})
        assert r.is_error and r.content[0].text.startswith("[POLICY DENIED] A person rejected this call (approval ap_")
        # asked again: the rejection stands until it expires, nobody is asked twice
        r = await c.call_tool("charge", {"amount": 700})
        assert r.is_error and "A person rejected this call" in r.content[0].text
        assert len(seen) == 1
        assert charges(upstream, before) == []
    assert [r["decision"] for r in rows(gw.state) if r["outcome"] == "approval"] == ["rejected"]


@pytest.mark.parametrize("mode", MODES)
async def test_without_elicitation_the_agent_gets_an_id_and_an_approver_decides(gw, upstream, mode):
    http, c = client(gw.url(), gw.alice["token"], mode)
    async with http, c:
        before = len(upstream.ran())
        r = await c.call_tool("charge", {"amount": 250})
        text = r.content[0].text
        assert r.is_error and text.startswith("[APPROVAL REQUIRED] This call needs a person's approval: Charges over 100")
        approval_id = text.split("Approval id ")[1].split(" ")[0]
        meta = r.meta["io.mcpp/decision"]
        assert meta["decision"] == "approval" and meta["approval"]["id"] == approval_id
        # asking again while pending: the same approval, still nothing ran
        r = await c.call_tool("charge", {"amount": 250})
        assert approval_id in r.content[0].text
        listed = json.loads(mcpp("approvals", "--state", str(gw.state), "--json").stdout.splitlines()[0])
        assert listed["id"] == approval_id and json.loads(listed["arguments"]) == {"amount": 250}
        out = mcpp("approve", approval_id, "--by", "carol", "--state", str(gw.state))
        assert out.stdout.startswith(f"approved {approval_id}: tool charge on default for alice")
        # a changed argument is another call: it needs its own approval
        r = await c.call_tool("charge", {"amount": 251})
        assert r.is_error and "[APPROVAL REQUIRED]" in r.content[0].text and approval_id not in r.content[0].text
        # another grant making the same call: not approved for it
        http2, c2 = client(gw.url(), gw.bob["token"], mode)
        async with http2, c2:
            r = await c2.call_tool("charge", {"amount": 250})
            assert r.is_error and "[APPROVAL REQUIRED]" in r.content[0].text
        assert charges(upstream, before) == []
        # the approved call runs once …
        r = await c.call_tool("charge", {"amount": 250})
        assert not r.is_error and r.content[0].text == "charged 250.0"
        # … and never twice on one approval
        r = await c.call_tool("charge", {"amount": 250})
        assert r.is_error and "[APPROVAL REQUIRED]" in r.content[0].text and approval_id not in r.content[0].text
        assert charges(upstream, before) == [250.0]
        again = mcpp("approve", approval_id, "--state", str(gw.state), check=False)
        assert again.returncode == 1 and f"approval {approval_id} is already used" in again.stderr
    answers = [r for r in rows(gw.state) if r["outcome"] == "approval"]
    assert [(r["decision"], r["approval_id"]) for r in answers] == [("approved", approval_id)]
    assert answers[0]["message"] == f"approval {approval_id} approved by carol via cli"


async def test_concurrent_identical_calls_run_once_on_one_approval(gw, upstream):
    """Ten identical calls race after one approval: exactly one reaches the upstream."""
    async with httpx2.AsyncClient(timeout=30) as http:
        r = await call_tool(http, gw.url(), gw.alice["token"], "charge", {"amount": 900})
        approval_id = r["result"]["_meta"]["io.mcpp/decision"]["approval"]["id"]
        mcpp("approve", approval_id, "--state", str(gw.state))
        before = len(upstream.ran())
        results = await asyncio.gather(*(call_tool(http, gw.url(), gw.alice["token"], "charge", {"amount": 900}, rid=i)
                                         for i in range(10)))
    ok = [x for x in results if not x["result"].get("isError")]
    assert len(ok) == 1 and charges(upstream, before) == [900.0]


async def test_an_approved_call_still_counts_against_its_limit(gw, upstream):
    """Limits are checked when the call asks and reserved when it runs: with the budget
    spent, the approved call is denied by the limit and its approval stays usable."""
    async with httpx2.AsyncClient(timeout=30) as http:
        r = await call_tool(http, gw.url(), gw.alice["token"], "charge", {"amount": 400})
        approval_id = r["result"]["_meta"]["io.mcpp/decision"]["approval"]["id"]
        mcpp("approve", approval_id, "--state", str(gw.state))
        before = len(upstream.ran())
        for i in range(3):  # spend the budget (3 per hour) with ordinary calls
            r = await call_tool(http, gw.url(), gw.alice["token"], "charge", {"amount": 1}, rid=i)
            assert not r["result"].get("isError")
        r = await call_tool(http, gw.url(), gw.alice["token"], "charge", {"amount": 400})
        assert result_text(r).startswith("[POLICY DENIED] Charge budget exhausted.")
        assert charges(upstream, before) == [1.0, 1.0, 1.0]
        listed = [json.loads(x) for x in mcpp("approvals", "--status", "approved", "--state", str(gw.state), "--json").stdout.splitlines()]
        assert [a["id"] for a in listed] == [approval_id]
        # with the budget spent the pending question is not even asked: the limit denies first
        r = await call_tool(http, gw.url(), gw.alice["token"], "charge", {"amount": 401})
        assert result_text(r).startswith("[POLICY DENIED] Charge budget exhausted.")


async def test_modern_retry_with_a_forged_or_stale_state_is_not_an_approval(gw, upstream):
    """The requestState is bound to the approval and the call: changed arguments or a
    made-up state answer nothing, and the gateway's fields never reach the upstream."""
    caps = {"elicitation": {}}
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": caps}
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "charge",
               "Authorization": f"Bearer {gw.alice['token']}"}

    async def post(args, extra=None, rid=1):
        params = {"name": "charge", "arguments": args, "_meta": meta, **(extra or {})}
        r = await http.post(gw.url(), headers=headers, content=json.dumps(
            {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": params}))
        return r.json()

    yes = {"io.mcpp/approval": {"action": "accept", "content": {"approve": True}}}
    async with httpx2.AsyncClient(timeout=30) as http:
        before = len(upstream.ran())
        first = await post({"amount": 300})
        res = first["result"]
        assert res["resultType"] == "input_required"
        form = res["inputRequests"]["io.mcpp/approval"]
        assert form["method"] == "elicitation/create" and form["params"]["requestedSchema"]["required"] == ["approve"]
        state = res["requestState"]
        # the state of 300 does not approve 3000
        r = await post({"amount": 3000}, {"inputResponses": yes, "requestState": state}, 2)
        assert r["result"]["resultType"] == "input_required"
        # a forged state answers nothing either
        r = await post({"amount": 300}, {"inputResponses": yes, "requestState": state[:-4] + "0000"}, 3)
        assert r["result"]["resultType"] == "input_required"
        assert charges(upstream, before) == []
        # the real retry runs it, without the gateway's fields
        r = await post({"amount": 300}, {"inputResponses": yes, "requestState": state}, 4)
        assert r["result"]["content"][0]["text"] == "charged 300.0"
        assert charges(upstream, before) == [300.0]
        # replaying the same approved retry does not run it again
        r = await post({"amount": 300}, {"inputResponses": yes, "requestState": state}, 5)
        assert r["result"]["resultType"] == "input_required"
        assert charges(upstream, before) == [300.0]


async def test_admin_endpoint_needs_the_admin_token(tmp_path, upstream, start_gateway):
    token = write(tmp_path / "admin.token", "s3cret-admin\n")
    policy = write(tmp_path / "policy.mcpp", POLICY)
    state = tmp_path / "state"
    cfg = write(tmp_path / "gateway.toml", f"""
[gateway]
port = 0
state_dir = "state"
admin_token_file = "{token}"
approval_ttl = 600
[[servers]]
id = "default"
url = "{upstream.url}"
policy = "{policy}"
approval_elicitation = false
""")
    from .peers import free_port

    port = free_port()
    cfg.write_text(cfg.read_text().replace("port = 0", f"port = {port}"))
    alice = create_grant(state, "alice")
    g = start_gateway("--config", str(cfg), port=port)
    async with httpx2.AsyncClient(timeout=30) as http:
        r = await call_tool(http, g.url(), alice["token"], "charge", {"amount": 999})
        approval_id = r["result"]["_meta"]["io.mcpp/decision"]["approval"]["id"]
        base = f"{g.base}/approvals"
        assert (await http.get(base)).status_code == 401
        assert (await http.post(f"{base}/{approval_id}/approve", headers={"Authorization": "Bearer nope"},
                                content=b'{"by": "x"}')).status_code == 401
        auth = {"Authorization": "Bearer s3cret-admin"}
        pending = (await http.get(base, headers=auth)).json()["approvals"]
        assert [a["id"] for a in pending] == [approval_id]
        assert (await http.post(f"{base}/{approval_id}/approve", headers=auth, content=b"{}")).status_code == 400
        r = await http.post(f"{base}/{approval_id}/reject", headers=auth, content=b'{"by": "dave"}')
        assert r.status_code == 200 and r.json()["status"] == "rejected" and r.json()["decided_via"] == "http"
        assert (await http.post(f"{base}/{approval_id}/approve", headers=auth, content=b'{"by": "dave"}')).status_code == 409
        r = await call_tool(http, g.url(), alice["token"], "charge", {"amount": 999})
        assert "A person rejected this call" in result_text(r)
    answers = [r for r in rows(state) if r["outcome"] == "approval"]
    assert [(r["decision"], r["message"]) for r in answers] == [("rejected", f"approval {approval_id} rejected by dave via http")]


@pytest.mark.usefixtures("upstream")
async def test_a_client_that_can_only_open_urls_is_not_sent_a_form(gw):
    async with httpx2.AsyncClient(timeout=30) as http:
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
                   "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "charge",
                   "Authorization": f"Bearer {gw.alice['token']}"}
        meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"url": {}}}}
        r = await http.post(gw.url(), headers=headers, content=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                            "params": {"name": "charge", "arguments": {"amount": 123}, "_meta": meta}}))
        res = r.json()["result"]
        assert res["resultType"] == "complete" and res["content"][0]["text"].startswith("[APPROVAL REQUIRED]")


def _wait_for_event(g, event: str, count: int, timeout: float = 15.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(1 for r in g.log_records() if r.get("event") == event) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"no {count}th {event} in the gateway's log")


async def test_a_2025_approval_wait_is_decided_by_the_policy_in_force_when_it_ends(gw, upstream):
    """hostile review 31, H31-9: a 2025 call waits for its approval within its own request,
    and was decided again with the policy of before the wait: a reload that forbids the
    tool, made while the person looked at the question, did not stop it."""
    loads = sum(1 for r in gw.log_records() if r.get("event") == "policy_loaded")

    def forbid_then_accept(params):
        write(gw.tmp / "policy.mcpp", POLICY + 'forbid (principal, action == Action::"charge", resource);\n')
        _wait_for_event(gw, "policy_loaded", loads + 1)
        return accept(params)

    http, c = client(gw.url(), gw.alice["token"], "legacy", forbid_then_accept)
    async with http, c:
        before = len(upstream.ran())
        r = await c.call_tool("charge", {"amount": 500})
        assert r.is_error and r.content[0].text.startswith("[POLICY DENIED]"), r.content[0].text
        assert charges(upstream, before) == []
    ran = [x for x in rows(gw.state) if x["tool"] == "charge" and x["outcome"] == "forwarded"]
    assert ran == []


async def test_a_2025_approval_wait_does_not_outlive_its_grant(tmp_path, upstream, start_gateway):
    """hostile review 31, H31-9: a grant revoked while its call waited for approval (its next
    request gets 401), and an approver then approving the call from the queue, ran the call
    when the wait ended. The grant must still hold when the approved call is decided."""
    import re

    g = configured_gateway(tmp_path, start_gateway, f'url = "{upstream.url}"', POLICY, gateway="approval_wait = 8",
                           server="approval_elicitation = true", label="alice")
    state = g.state

    def revoke_approve_then_answer(params):
        mcpp("grant", "revoke", g.grant_id, "--state", str(state))
        approval = re.search(r"\(approval (ap_[0-9a-f]+);", params.message).group(1)
        mcpp("approve", approval, "--by", "ops", "--state", str(state))
        return types.ElicitResult(action="cancel")  # (the revoked client's own answer would get 401)

    http, c = client(g.url(), g.token, "legacy", revoke_approve_then_answer)
    async with http, c:
        before = len(upstream.ran())
        r = await c.call_tool("charge", {"amount": 500})
        assert r.is_error and "grant was revoked while the call waited for approval" in r.content[0].text, r.content
        assert charges(upstream, before) == []


async def test_a_call_checked_against_one_pin_is_not_forwarded_under_another(tmp_path, upstream, start_gateway):
    """hostile review 31, H31-6: a call's arguments were checked against the pin in force
    when it came in, and the pin check before forwarding compared the upstream's listing
    with the pin in force then. Re-pinned while a 2025 call waited for its approval, a
    call only the old pin's schema allowed passed both. The pin check now refuses a call
    whose tool's pinned definition changed since its arguments were checked."""
    from mcpp.catalog import Catalog, load_catalog

    from .test_pinning import pull

    live = pull(tmp_path, upstream)
    tools = [dict(t.definition) for t in load_catalog(live).tools.values()]
    loose = [{**t, "inputSchema": {"type": "object", "properties": {"amount": {}}}} if t["name"] == "charge" else t
             for t in tools]
    pinned = tmp_path / "pinned.json"
    Catalog.from_tools(loose).write(pinned)  # v1: `amount` anything
    policy = POLICY.replace("context.input.amount <= 100", "false").replace("when { context.input.amount > 100 }", "")
    g = configured_gateway(tmp_path, start_gateway, f'url = "{upstream.url}"', policy, label="alice",
                           server=f'catalog = "{pinned}"\ncatalog_max_age = 0\napproval_elicitation = true')
    pins = sum(1 for r in g.log_records() if r.get("event") == "catalog_pinned")

    def repin_then_accept(params):
        pinned.write_bytes(live.read_bytes())  # the operator pins what the upstream lists: `amount` a number
        _wait_for_event(g, "catalog_pinned", pins + 1)
        return accept(params)

    http, c = client(g.url(), g.token, "legacy", repin_then_accept)
    async with http, c:
        before = len(upstream.ran())
        r = await c.call_tool("charge", {"amount": "500"})  # valid under v1 only
        assert r.is_error and "pinned definition changed while this call was being checked" in r.content[0].text, r.content
        assert charges(upstream, before) == []
        r = await c.call_tool("charge", {"amount": "500"})  # checked against the pin now in force
        assert r.is_error and "[POLICY DENIED]" in r.content[0].text and "amount" in r.content[0].text, r.content
        assert charges(upstream, before) == []


async def test_a_2025_approval_wait_is_decided_under_the_configuration_in_force_when_it_ends(tmp_path, upstream,
                                                                                               start_gateway):
    """hostile review 33, H33-2: the approved call was decided again with the server's
    configuration (and the grant's record) of before its wait: a reload that pointed the
    server at another policy stopped new calls, and the waiting one, once approved, ran."""
    g = configured_gateway(tmp_path, start_gateway, f'url = "{upstream.url}"', POLICY,
                           server="approval_elicitation = true", label="alice")
    write(tmp_path / "deny.mcpp", "default deny;\n")
    reloads = sum(1 for r in g.log_records() if r.get("event") == "config_reloaded")

    def reconfigure_then_accept(params):
        g.config.write_text(g.config.read_text().replace('policy = "policy.mcpp"', 'policy = "deny.mcpp"'))
        _wait_for_event(g, "config_reloaded", reloads + 1)
        return accept(params)

    http, c = client(g.url(), g.token, "legacy", reconfigure_then_accept)
    async with http, c:
        before = len(upstream.ran())
        r = await c.call_tool("charge", {"amount": 500})
        assert r.is_error and r.content[0].text.startswith("[POLICY DENIED]"), r.content[0].text
        assert charges(upstream, before) == []
