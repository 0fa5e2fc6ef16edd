"""A policy that does not load or fails an assert never decides (issue 10): `mcpp serve`
refuses to start on it (exit 1, the reason on stderr); on reload the last good one stays
(test_faults.py); and where no policy is in force, what the agent reads is a plain denial —
the file path, the parse error or the counterexample go to the log, /healthz and the audit."""

from __future__ import annotations

import subprocess
import sys


from mcpp.runtime.gateway.policies import PolicyRefused, load_verified

from .peers import ALLOW_ALL, POLICY, free_port, write

BROKEN = 'permit (principal, action == Action::"echo", resource) when { context.input.text == ;\n'
FAILS_ASSERT = ALLOW_ALL + '@id("no-echo")\nassert deny (principal, action == Action::"echo", resource);\n'


def serve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mcpp", "serve", *args], capture_output=True, text=True, timeout=120)


def test_serve_refuses_to_start_on_a_policy_that_does_not_load_or_fails_an_assert(tmp_path, upstream):
    broken = write(tmp_path / "broken.mcpp", BROKEN)
    failing = write(tmp_path / "failing.mcpp", FAILS_ASSERT)
    port = str(free_port())
    for policy, words in ((broken, ["broken.mcpp:1:", "error"]), (failing, ["failing.mcpp", "no-echo", "fails"])):
        r = serve("--policy", str(policy), "--upstream", upstream.url, "--port", port, "--state", str(tmp_path / "st"))
        assert r.returncode == 1, (r.returncode, r.stderr)
        last = r.stderr.strip().splitlines()[-1]  # (the log's policy_refused line comes before it)
        assert last.startswith("mcpp: error: server default: policy refused: ") and "Traceback" not in r.stderr, r.stderr
        for w in words:
            assert w in last, (w, r.stderr)
    # the same for a config file, and for a per-grant-label policy of a server
    write(tmp_path / "good.mcpp", POLICY)
    cfg = write(tmp_path / "gw.toml", f"""
[gateway]
port = {port}
state_dir = "st"
[[servers]]
id = "api"
url = "{upstream.url}"
policy = "good.mcpp"
grant_policies = {{ contractor = "failing.mcpp" }}
""")
    r = serve("--config", str(cfg))
    assert r.returncode == 1 and "server api: policy refused: " in r.stderr and "no-echo" in r.stderr, r.stderr


BYPASSABLE = (
    'permit (principal, action == Action::"refund_payment", resource);\n'
    'forbid (principal, action == Action::"refund_payment", resource) when { context.input.amount > 1000 };\n'
)
REFUND_TOOL = {
    "name": "refund_payment", "description": "Refund a charge",
    "inputSchema": {"type": "object", "properties": {"charge_id": {"type": "string"}, "amount": {"type": "number"}},
                    "required": ["charge_id", "amount"]},
}


def test_a_bypassable_forbid_keeps_the_policy_out_unless_calls_are_typed(tmp_path):
    """The lint gate (analyzer/safety.py): a forbid a caller skips with `{"amount": "5000"}`
    refuses the policy; with the tool's catalog (the policy's own `@catalog`, or the
    server's pin), the gateway's schema check makes that call impossible and it loads."""
    from mcpp.catalog.model import Catalog

    untyped = tmp_path / "refunds.mcpp"
    untyped.write_text(BYPASSABLE)
    try:
        load_verified(str(untyped))
    except PolicyRefused as e:
        assert "forbid-bypass" in str(e), e
    else:
        raise AssertionError("a bypassable forbid was accepted")
    Catalog.from_tools([REFUND_TOOL]).write(tmp_path / "tools.json")
    typed = tmp_path / "typed.mcpp"
    typed.write_text('@catalog("tools.json")\ndefault deny;\n' + BYPASSABLE)
    load_verified(str(typed))
    load_verified(str(untyped), catalog=str(tmp_path / "tools.json"))  # a server's pinned catalog




def test_a_server_that_does_not_check_schemas_analyses_its_policies_untyped(tmp_path):
    """`enforce_input_schema = false`: no call is checked against its schema, so a proof
    that assumed one would be about calls that are not the ones forwarded. The policy is
    analysed untyped whatever it or the server names (and the bypassable forbid refused)."""
    from mcpp.catalog.model import Catalog
    from mcpp.runtime.gateway.policies import route_catalog

    Catalog.from_tools([REFUND_TOOL]).write(tmp_path / "tools.json")
    typed = tmp_path / "typed.mcpp"
    typed.write_text('@catalog("tools.json")\ndefault deny;\n' + BYPASSABLE)
    load_verified(str(typed), route_catalog(None, enforce_input_schema=True))
    for pinned in (None, str(tmp_path / "tools.json")):
        load_verified(str(typed), route_catalog(pinned, enforce_input_schema=True))
        try:
            load_verified(str(typed), route_catalog(pinned, enforce_input_schema=False))
        except PolicyRefused as e:
            assert "forbid-bypass" in str(e), e
        else:
            raise AssertionError("typed analysis without the gateway's schema check")
    # and through `mcpp serve`: the quick start with its schema check off refuses to start
    port = str(free_port())
    r = serve("--policy", str(typed), "--upstream", "http://127.0.0.1:9/mcp", "--port", port, "--state",
              str(tmp_path / "st"), "--no-enforce-input-schema")
    assert r.returncode == 1 and "forbid-bypass" in r.stderr and "Traceback" not in r.stderr, r.stderr
