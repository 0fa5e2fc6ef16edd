"""A declared default valid on its own that makes the *filled call* invalid (hostile review
11, finding 1): `dependentRequired` on the defaulted key, `additionalProperties: false` in
another `allOf` member, `maxProperties`, `not`, `if`/`then`. The gateway refuses a call that
conforms as sent but not once filled (`invalid_default`). Here: `caveats` (lint's
`unfilled-default`, verify's caveat line) reports such a default, every call the gateway
refuses that way is one a refused caveat announced for the probe call, and the API,
`mcpp eval` and `mcpp test` give the gateway's decision, rule and message for it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given, strategies as st

import mcpp
from mcpp.catalog import Catalog
from mcpp.catalog.admission import CatalogAdmission, admit, tool_checker
from mcpp.catalog.conformance import SchemaCache, closed_world
from mcpp.catalog.defaults import caveats, fill

MODE = {"type": "string", "default": "fast"}

# (id, schema, the argument a refused caveat names) — each refuses `{}` once filled
BREAKING = [
    ("dependentRequired", {"type": "object", "properties": {"q": {"type": "string"}, "mode": MODE},
                           "dependentRequired": {"mode": ["q"]}}, ("mode",)),
    ("allOf-additionalProperties", {"type": "object", "allOf": [
        {"properties": {"mode": MODE}}, {"properties": {"q": {"type": "string"}}, "additionalProperties": False}]},
     ("mode",)),
    ("maxProperties", {"type": "object", "properties": {"mode": MODE, "q": {"type": "string"}}, "maxProperties": 0},
     ("mode",)),
    ("not-required", {"type": "object", "properties": {"mode": MODE}, "not": {"required": ["mode"]}}, ("mode",)),
    ("if-then", {"type": "object", "properties": {"mode": MODE, "q": {"type": "string"}},
                 "if": {"required": ["mode"]}, "then": {"required": ["q"]}}, ("mode",)),
    ("nested", {"type": "object", "properties": {"o": {"type": "object", "properties": {"mode": MODE},
                                                       "propertyNames": {"maxLength": 2}}}}, ("o", "mode")),
    ("two-together", {"type": "object", "properties": {"a": {"default": 1}, "b": {"default": 2}}, "maxProperties": 1},
     ()),
]


@pytest.mark.parametrize("schema,path", [c[1:] for c in BREAKING], ids=[c[0] for c in BREAKING])
def test_a_default_that_breaks_the_filled_call_is_a_refused_caveat(schema, path):
    checked = closed_world(schema)
    refused = [c for c in caveats(checked) if c.kind == "refused"]
    assert [c.path for c in refused] == [path], caveats(checked)
    assert "so the gateway refuses" in refused[0].reason
    probe: dict = {}
    for k in reversed(path[:-1] if path else ()):
        probe = {k: probe}
    chk = tool_checker(SchemaCache(), [{"inputSchema": schema}], "t")
    refusal, _ = admit(chk, "t", probe)
    assert refusal is not None and refusal["kind"] == "invalid_default", refusal  # what the caveat announced


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"mode": MODE, "q": {"type": "string"}}},
    {"type": "object", "properties": {"mode": MODE}, "dependentRequired": {"q": ["mode"]}},  # the other direction
    {"type": "object", "allOf": [{"properties": {"mode": MODE}}, {"properties": {"mode": {"type": "string"}}}]},
])
def test_a_default_that_keeps_calls_valid_is_no_refused_caveat(schema):
    assert not [c for c in caveats(closed_world(schema)) if c.kind == "refused"]


# ---- the property: the probe's refused caveat ⇔ the gateway refuses the probe ------------
CONSTRAINTS = {
    "none": {},
    "dependentRequired": {"dependentRequired": {"mode": ["q"]}},
    "maxProperties0": {"maxProperties": 0},
    "maxProperties1": {"maxProperties": 1},
    "not-mode": {"not": {"required": ["mode"]}},
    "if-then": {"if": {"required": ["mode"]}, "then": {"required": ["q"]}},
    "allOf-closed": {"allOf": [{"properties": {"q": {}, "n": {}}, "additionalProperties": False}]},
    "allOf-closed-with-mode": {"allOf": [{"properties": {"q": {}, "n": {}, "mode": {}}, "additionalProperties": False}]},
    "propertyNames": {"propertyNames": {"maxLength": 3}},
    "minProperties2": {"minProperties": 2},
}


@given(st.sampled_from(sorted(CONSTRAINTS)), st.sampled_from(sorted(CONSTRAINTS)), st.booleans(),
       st.sampled_from(["fast", 5, None]))
def test_a_refused_caveat_is_given_exactly_when_the_gateway_refuses_the_smallest_call(c1, c2, second, default):
    props: dict = {"q": {"type": "string"}, "mode": {"default": default}}
    if second:
        props["n"] = {"default": 1}
    schema = {"type": "object", "properties": props, **CONSTRAINTS[c1]}
    for k, v in CONSTRAINTS[c2].items():
        schema.setdefault(k, v)
    chk = tool_checker(SchemaCache(), [{"inputSchema": schema}], "t")
    if isinstance(chk, tuple):
        return
    refusal, _ = admit(chk, "t", {})
    refused = [c for c in caveats(chk.schema) if c.kind == "refused"]
    if refusal is not None and refusal["kind"] != "invalid_default":
        return  # `{}` is refused as sent: the probe says nothing about it (other calls may still be refused)
    gateway_refuses_filled = refusal is not None
    assert bool(refused) == gateway_refuses_filled, (schema, refusal, refused)


# ---- the API, eval and mcpp test give the gateway's outcome -------------------------------
SCHEMAS = {name: schema for name, schema, _ in BREAKING}
CAT = Catalog.from_tools([{"name": n, "inputSchema": s} for n, s in SCHEMAS.items()], server_name="h")
POLICY = '@catalog("tools.json")\ndefault deny;\npermit (principal, action, resource);\n'
CALLS = [(n, a) for n in SCHEMAS for a in ({}, {"q": "x"}, {"mode": "m"}, {"o": {}}, {"a": 1}, {"q": "x", "mode": "m"})]


def _gateway(tool: str, args: dict):
    """What the gateway decides under a permit-everything policy: its refusal, or allow."""
    chk = tool_checker(SchemaCache(), [{"inputSchema": SCHEMAS[tool]}], tool)
    refusal, _ = admit(chk, tool, args)
    if refusal is None:
        return "allow", None, None
    return "deny", refusal["pointer"], refusal["message"]


def test_the_api_gives_the_gateway_outcome_for_every_call_it_forwards_or_refuses_for_a_default():
    policy = mcpp.load_policy(POLICY, catalog=CAT)
    adm = CatalogAdmission(CAT)
    for tool, args in CALLS:
        want = _gateway(tool, args)
        d = policy.decide(tool, args, dry_run=True)
        x = policy.explain(tool, args)
        if want[0] == "allow" or adm.admit(tool, args)[0] is not None:  # forwarded, or refused for its default
            assert (d.decision, d.rule if d.decision == "deny" else None, d.message if d.decision == "deny" else None) == \
                want, (tool, args)
            assert x.decision.decision == d.decision and x.decision.rule == d.rule
        else:  # refused as sent: decided by the policy (docs/api.md, "Typed calls")
            assert d.decision == "allow"


def test_eval_and_mcpp_test_give_the_gateway_refusal(tmp_path):
    (tmp_path / "tools.json").write_text(CAT.dumps())
    (tmp_path / "p.mcpp").write_text(POLICY)
    (tmp_path / "calls.jsonl").write_text("".join(json.dumps({"name": t, "arguments": a}) + "\n" for t, a in CALLS))
    r = subprocess.run([sys.executable, "-m", "mcpp", "eval", "p.mcpp", "--calls", "calls.jsonl"], cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = [json.loads(line) for line in r.stdout.splitlines()]
    adm = CatalogAdmission(CAT)
    for (tool, args), got in zip(CALLS, out, strict=True):
        if adm.admit(tool, args)[0] is not None:
            assert (got["decision"], got["rule"], got["message"]) == _gateway(tool, args)
    want = _gateway("dependentRequired", {})
    (tmp_path / "p.test.toml").write_text(
        '[[case]]\nname = "omitting mode and q is refused, as at the gateway"\ntool = "dependentRequired"\n'
        f'arguments = {{}}\ndecision = "deny"\nrule = {json.dumps(want[1])}\n'
        '[[case]]\nname = "sending q is allowed"\ntool = "dependentRequired"\narguments = {q = "x"}\ndecision = "allow"\n')
    r = subprocess.run([sys.executable, "-m", "mcpp", "test", "p.mcpp"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0 and "2 passed" in r.stdout, r.stdout + r.stderr


def test_lint_and_verify_report_it_and_verify_calls_it_no_analyzer_bug(tmp_path):
    (tmp_path / "tools.json").write_text(CAT.dumps())
    (tmp_path / "p.mcpp").write_text(
        '@catalog("tools.json")\ndefault deny;\n'
        'permit (principal, action == Action::"dependentRequired", resource) '
        'when { context.input has mode && context.input.mode == "fast" };\n'
        '@id("a") assert allow (principal, action == Action::"dependentRequired", resource) '
        'when { !(context.input has q) };\n')
    r = subprocess.run([sys.executable, "-m", "mcpp", "lint", "p.mcpp"], cwd=tmp_path, capture_output=True, text=True)
    assert "unfilled-default" in r.stdout and "argument `mode`" in r.stdout and "refuses such calls" in r.stdout, r.stdout
    r = subprocess.run([sys.executable, "-m", "mcpp", "verify", "p.mcpp"], cwd=tmp_path, capture_output=True, text=True)
    assert "analyzer bug" not in r.stdout and "declared default for `mode`" in r.stdout, r.stdout
    assert fill(SCHEMAS["dependentRequired"], {}) == {"mode": "fast"}


@pytest.mark.parametrize("schema,words", [
    ({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}, "dependentRequired": {"a": ["b"]}},
     "does not model `dependentRequired`"),
    ({"type": "object", "$defs": {"X": {"$id": "https://example.com/x", "type": "object"}},
      "properties": {"a": {"type": "string"}, "b": {"$ref": "#/$defs/X"}}, "required": ["b"]},
     "reads nothing of this tool's schema"),
], ids=["unmodelled-keyword", "unmodelled-schema"])
def test_an_expected_non_conforming_witness_is_unknown_with_its_reason_never_an_analyzer_bug(tmp_path, schema, words):
    (tmp_path / "tools.json").write_text(Catalog.from_tools([{"name": "t", "inputSchema": schema}]).dumps())
    (tmp_path / "p.mcpp").write_text('@catalog("tools.json")\ndefault deny;\npermit (principal, action, resource);\n'
                                     '@id("x") assert deny (principal, action == Action::"t", resource) '
                                     'when { context.input has a && !(context.input has b) };\n')
    r = subprocess.run([sys.executable, "-m", "mcpp", "verify", "p.mcpp"], cwd=tmp_path, capture_output=True, text=True)
    assert "UNKNOWN x" in r.stdout and words in r.stdout and "analyzer bug" not in r.stdout, r.stdout
