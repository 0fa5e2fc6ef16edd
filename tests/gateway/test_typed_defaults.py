"""Schema defaults at the gateway (catalog/defaults.py): an SDK server runs an omitted
argument with the default its schema declares, so the gateway fills the declared defaults
in after the schema check and before the decision, and forwards the filled call.

Through the gateway, with the SDK fixture upstream (`MCPP_FIXTURE_DEFAULTS=1`:
`refund_default(charge_id, amount: float = 5000, options: RefundOptions | None = None,
note: str | None = None)`, recording the arguments each call *arrived* with):

- the hostile finding: a forbid on `amount > 1000` behind `has amount` now denies the call
  that omits `amount` (the upstream would have refunded 5000), and `mcpp verify` proves the
  matching assert typed by the catalog;
- the upstream receives the filled arguments (top level and inside a present object whose
  schema is pydantic's `Opts | None`), null defaults are not filled, an explicit null stays;
- the audit records the filled call's argument keys;
- a catalog served as captured (`MCPP_FIXTURE_CATALOG`): a default that does not conform to
  its own schema refuses the call that omits it, and nothing reaches the upstream.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import pytest

from mcpp.catalog.model import tool_hash

from .peers import Upstream, call_tool, create_grant, mcpp, result_text, write

POLICY = """@catalog("tools.json")
default deny;

permit (principal, action == Action::"refund_default", resource);

@id("cap")
forbid (principal, action == Action::"refund_default", resource)
when { context.input has amount && context.input.amount > 1000 };

@id("quiet")
forbid (principal, action == Action::"refund_default", resource)
when { context.input has options && context.input.options.notify == false };

@id("no-large-refunds")
assert deny (principal, action == Action::"refund_default", resource)
when { context.input has amount && context.input.amount > 1000 };
"""


def audit(state) -> list[dict]:
    return [json.loads(x) for x in mcpp("audit", "--state", str(state), "--json").stdout.splitlines()]


@pytest.fixture(scope="module")
def sdk_defaults(tmp_path_factory):
    up = Upstream(tmp_path_factory.mktemp("defaults"), env={"MCPP_FIXTURE_DEFAULTS": "1"})
    yield up
    up.stop()


@pytest.mark.parametrize("pinned", [True, False], ids=["pinned", "live-listing"])
async def test_the_omitted_argument_is_decided_and_forwarded_with_its_default(tmp_path, sdk_defaults, start_gateway, pinned):
    mcpp("catalog", "pull", "--url", sdk_defaults.url, "-o", str(tmp_path / "tools.json"), "-q")
    schema = json.loads((tmp_path / "tools.json").read_text())["tools"]["refund_default"]["tool"]["inputSchema"]
    assert schema["properties"]["amount"] == {"default": 5000, "title": "Amount", "type": "number"}
    assert "amount" not in schema["required"]
    policy = write(tmp_path / "policy.mcpp", POLICY)
    r = mcpp("verify", str(policy))  # typed by the policy's @catalog: the omission is covered
    assert "PASS    no-large-refunds" in r.stdout and "caveat" not in r.stdout, r.stdout
    state = tmp_path / "state"
    grant = create_grant(state, "defaults")
    pin = ("--pin-catalog", str(tmp_path / "tools.json")) if pinned else ()
    g = start_gateway("--policy", str(policy), "--upstream", sdk_defaults.url, *pin, state=state)
    before = len(sdk_defaults.ran())
    options = {"notify": True, "reason": "requested_by_customer"}
    cases = [  # (arguments sent, denied by, what the upstream receives)
        ({"charge_id": "c1"}, "cap", None),  # omitted: the SDK would refund 5000
        ({"charge_id": "c2", "amount": 5000}, "cap", None),
        ({"charge_id": "c3", "amount": 500}, None, {"charge_id": "c3", "amount": 500}),  # null defaults: not filled
        ({"charge_id": "c4", "amount": 500, "options": {}}, None, {"charge_id": "c4", "amount": 500, "options": options}),
        ({"charge_id": "c5", "amount": 500, "options": {"notify": False}}, "quiet", None),
        ({"charge_id": "c6", "amount": 500, "options": None, "note": None}, None,
         {"charge_id": "c6", "amount": 500, "options": None, "note": None}),  # an explicit null stays
        ({"charge_id": "c7", "amount": 500, "options": {"reason": "dup"}}, None,
         {"charge_id": "c7", "amount": 500, "options": {"reason": "dup", "notify": True}}),
    ]
    rules: dict[str, set] = {}
    async with httpx2.AsyncClient(timeout=30) as http:
        for i, (args, denied_by, _) in enumerate(cases):
            r = await call_tool(http, g.url(), grant["token"], "refund_default", args, rid=i)
            text = result_text(r)
            if denied_by is None:
                assert not r["result"].get("isError"), (args, text)
            else:
                assert r["result"]["isError"] and text.startswith("[POLICY DENIED] "), (args, text)
                decision = r["result"]["_meta"]["io.mcpp/decision"]
                assert "schema" not in decision, decision  # the policy decided, not the schema check
                rules.setdefault(denied_by, set()).add(decision["rule"])
    # the omitted amount is denied by the very forbid that denies amount 5000
    assert len(rules["cap"]) == 1 and rules["cap"] != rules["quiet"], rules
    ran = sdk_defaults.ran()[before:]
    received = [x["args"] for x in ran if x["tool"] == "received:refund_default"]
    assert received == [want for _, denied_by, want in cases if denied_by is None]
    # what the SDK ran is what the policy decided
    done = [x["args"] for x in ran if x["tool"] == "refund_default"]
    assert [d["amount"] for d in done] == [500, 500, 500, 500]
    assert [d["options"] for d in done] == [None, options, None, {"reason": "dup", "notify": True}]
    rows = [r for r in audit(state) if r["tool"] == "refund_default"]
    assert [(r["decision"], r["arg_keys"]) for r in rows] == [
        ("deny", ["amount", "charge_id"]), ("deny", ["amount", "charge_id"]), ("allow", ["amount", "charge_id"]),
        ("allow", ["amount", "charge_id", "options"]), ("deny", ["amount", "charge_id", "options"]),
        ("allow", ["amount", "charge_id", "note", "options"]), ("allow", ["amount", "charge_id", "options"])]
    assert rows[0]["rule"] == rows[1]["rule"] in rules["cap"]


def _catalog(path: Path, tools: dict[str, dict]) -> Path:
    entries = {}
    for name, schema in tools.items():
        tool = {"name": name, "inputSchema": schema}
        entries[name] = {"sha256": tool_hash(tool), "tool": tool}
    path.write_text(json.dumps({"mcppCatalog": 1, "server": {"name": "defaults", "version": "1"}, "tools": entries}))
    return path


SCHEMAS = {
    # a default its own schema refuses: calls that omit `limit` are refused (fail closed)
    "bad_default": {"type": "object", "required": ["q"],
                    "properties": {"q": {"type": "string"}, "limit": {"type": "number", "maximum": 10, "default": 50}}},
    # defaults behind a $ref, nested, and one only an anyOf branch declares (not filled)
    "nested": {"type": "object", "$defs": {"Opts": {"type": "object", "properties": {
        "mode": {"type": "string", "default": "safe"}, "depth": {"type": "integer", "default": 2}}}},
        "properties": {"opts": {"$ref": "#/$defs/Opts", "default": {}},
                       "kind": {"anyOf": [{"const": "a", "default": "a"}, {"const": "b"}]}}},
}


async def test_a_catalog_upstream_receives_the_filled_call_and_a_bad_default_is_refused(tmp_path, start_gateway):
    cat = _catalog(tmp_path / "tools.json", SCHEMAS)
    up = Upstream(tmp_path, env={"MCPP_FIXTURE_CATALOG": str(cat)})
    try:
        policy = write(tmp_path / "p.mcpp", '@catalog("tools.json")\ndefault deny;\npermit (principal, action, resource);\n')
        r = mcpp("lint", str(policy))
        assert "unfilled-default" not in r.stdout  # no rule reads the arguments
        state = tmp_path / "state"
        grant = create_grant(state, "defaults")
        g = start_gateway("--policy", str(policy), "--upstream", up.url, "--pin-catalog", str(cat), state=state)
        async with httpx2.AsyncClient(timeout=30) as http:
            r = await call_tool(http, g.url(), grant["token"], "bad_default", {"q": "x"}, rid=1)
            text = result_text(r)
            assert r["result"]["isError"] and "declares a default" in text and "pass the argument explicitly" in text, text
            assert r["result"]["_meta"]["io.mcpp/decision"]["schema"] == {"kind": "invalid_default"}
            assert r["result"]["_meta"]["io.mcpp/decision"]["rule"] == "/tools/bad_default/schema/properties/limit/maximum"
            r = await call_tool(http, g.url(), grant["token"], "bad_default", {"q": "x", "limit": 5}, rid=2)
            assert result_text(r) == "ran bad_default"
            r = await call_tool(http, g.url(), grant["token"], "nested", {}, rid=3)
            assert result_text(r) == "ran nested"
            r = await call_tool(http, g.url(), grant["token"], "nested", {"opts": {"depth": 5}, "kind": "b"}, rid=4)
            assert result_text(r) == "ran nested"
        assert [(x["tool"], x["args"]) for x in up.ran()] == [
            ("bad_default", {"q": "x", "limit": 5}),
            ("nested", {"opts": {"mode": "safe", "depth": 2}}),  # `kind`: only a branch declares a default
            ("nested", {"opts": {"depth": 5, "mode": "safe"}, "kind": "b"}),
        ]
        rows = audit(state)
        assert [r["outcome"] for r in rows] == ["denied", "forwarded", "forwarded", "forwarded"]
        assert rows[0]["arg_keys"] == ["q"]  # refused: the call as sent
    finally:
        up.stop()
