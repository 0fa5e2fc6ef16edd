"""A policy that does not load or fails an assert never decides (issue 10): `mcpp serve`
refuses to start on it (exit 1, the reason on stderr); on reload the last good one stays
(test_faults.py); and where no policy is in force, what the agent reads is a plain denial —
the file path, the parse error or the counterexample go to the log, /healthz and the audit."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import httpx2

from mcpp.runtime.gateway import policies
from mcpp.runtime.gateway.policies import PolicyRefused, load_verified, register_policy_gate

from .peers import ALLOW_ALL, POLICY, call_tool, create_grant, free_port, result_text, write

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


def test_policy_gates_can_be_added():
    """The hook the lint gate (error-level findings) plugs into: a gate's reasons refuse."""
    def no_default_allow(program, path):
        return [f"{path}: default allow is not accepted here"] if program.default == "allow" else []

    register_policy_gate(no_default_allow)
    try:
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "open.mcpp"
            p.write_text("default allow;\n")
            try:
                load_verified(str(p))
            except PolicyRefused as e:
                assert "default allow is not accepted here" in str(e)
            else:
                raise AssertionError("the gate did not refuse")
            p.write_text(ALLOW_ALL)
            load_verified(str(p))
    finally:
        policies.POLICY_GATES.remove(no_default_allow)


async def test_what_the_agent_reads_never_has_paths_parse_errors_or_counterexamples(tmp_path, upstream, start_gateway):
    """A grant's own policy is verified when the grant is created, then broken before the
    gateway first uses it: that grant's calls are denied with a plain message; the reason
    (with the file path and the parse error) is in /healthz, the log and the audit row."""
    server_policy = write(tmp_path / "server.mcpp", ALLOW_ALL)
    own = write(tmp_path / "own-policy.mcpp", ALLOW_ALL)
    state = tmp_path / "state"
    grant = create_grant(state, "bob", "default", "--policy", str(own))
    g = start_gateway("--policy", str(server_policy), "--upstream", upstream.url, state=state)
    own.write_text(BROKEN)
    async with httpx2.AsyncClient(timeout=30) as http:
        r = await call_tool(http, g.url(), grant["token"], "echo", {"text": "x"})
    text = result_text(r)
    assert text == "[POLICY DENIED] " + policies.DenyAll.DENIAL
    assert "own-policy" not in text and "/" not in text and "error" not in text.lower()
    assert r["result"]["_meta"]["io.mcpp/decision"]["rule"] == "/no-policy"
    health = g.health()
    errors = [p["error"] for p in health["servers"]["default"]["policies"] if p["error"]]
    assert errors and "own-policy.mcpp:1:" in errors[0]
    row = sqlite3.connect(state / "audit.db").execute("SELECT message FROM audit ORDER BY seq DESC LIMIT 1").fetchone()[0]
    assert row.startswith(policies.DenyAll.DENIAL) and "own-policy.mcpp:1:" in row
    assert any(e.get("event") == "policy_refused" and "own-policy.mcpp" in json.dumps(e) for e in g.log_records())
