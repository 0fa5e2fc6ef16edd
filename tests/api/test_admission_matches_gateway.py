"""Every tool that decides a call against a catalog outside the gateway (`mcpp eval`, the
Python API, `mcpp test`, the language server: `CatalogAdmission`) refuses a call whose
arguments break the tool's schema exactly as the gateway refuses it: the same rule
pointer and message. Before, such a call was decided by the policy, so `{"amount":
"5000"}` for a declared number got a policy decision no gateway ever gives (the
examples' own tests asserted one). The one documented difference: a *partial* call,
whose only fault is leaving out properties the arguments object requires, is still
decided by the policy (docs/api.md, "Typed calls")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

import mcpp
from mcpp.catalog import Catalog
from mcpp.catalog.admission import CatalogAdmission, admit, tool_checker
from mcpp.catalog.conformance import SchemaCache, only_missing

ROOT = Path(__file__).resolve().parents[2]

AMOUNT = {"type": "object", "properties": {"charge_id": {"type": "string", "pattern": "^ch_[a-z0-9]{4,}$"},
                                           "amount": {"type": "number", "exclusiveMinimum": 0},
                                           "reason": {"enum": ["duplicate", "fraud"]}},
          "required": ["charge_id"]}
NESTED = {"type": "object", "properties": {"target": {"type": "object", "properties": {"ns": {"type": "string"}},
                                                      "required": ["ns"]}}, "required": ["target"]}
REF = {"type": "object", "$ref": "#/$defs/args", "$defs": {"args": {"properties": {"q": {"type": "string"}},
                                                                     "required": ["q"]}}}
ANY = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
       "anyOf": [{"required": ["a"]}, {"required": ["b"]}]}
ALLOF = {"type": "object", "allOf": [{"properties": {"x": {"type": "integer"}}, "required": ["x"]},
                                     {"properties": {"y": {"type": "integer", "default": 3}}}]}
IF_THEN = {"type": "object", "properties": {"mode": {"enum": ["a", "b"]}, "key": {"type": "string"}},
           "if": {"properties": {"mode": {"const": "b"}}, "required": ["mode"]}, "then": {"required": ["key"]}}
DEPENDENT = {"type": "object", "properties": {"p": {"type": "string"}, "q": {"type": "string"}},
             "dependentRequired": {"p": ["q"]}}
UNRESOLVED = {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}
SCHEMAS = {"amount": AMOUNT, "nested": NESTED, "ref": REF, "any": ANY, "allof": ALLOF, "if_then": IF_THEN,
           "dependent": DEPENDENT, "unresolved": UNRESOLVED}
CAT = Catalog.from_tools([{"name": n, "inputSchema": s} for n, s in SCHEMAS.items()])


def gateway(tool: str, args):
    """What `mcpp serve` does with the call: its own pure admission step (proxy.py
    `schema_check` → catalog/admission.py `admit`), for the tool listed with its schema."""
    return admit(tool_checker(SchemaCache(), [{"inputSchema": SCHEMAS[tool]}], tool), tool, args)


# (tool, arguments, what the tools outside the gateway do): "refused" — the gateway's
# refusal, rule and message alike; "partial" — decided by the policy although the gateway
# refuses it (only required properties left out); "forwarded" — the gateway's arguments
TABLE = [
    ("amount", {"charge_id": "ch_abcd", "amount": "5000"}, "refused"),  # a string where a number is declared
    ("amount", {"charge_id": "ch_abcd", "amount": 5000, "note": "x"}, "refused"),  # an undeclared argument
    ("amount", {"charge_id": "ch_abcd", "amount": 0}, "refused"),  # out of bounds
    ("amount", {"charge_id": "../ch_abcd"}, "refused"),  # a pattern
    ("amount", {"charge_id": "ch_abcd", "reason": "customer asked"}, "refused"),  # an enum
    ("amount", {"amount": "5000"}, "refused"),  # left out *and* mistyped: the gateway's message, whichever it names
    ("amount", {"amount": True}, "refused"),  # a boolean is no number
    ("amount", {"amount": 5000}, "partial"),  # only the required charge_id left out
    ("amount", {}, "partial"),
    ("amount", {"charge_id": "ch_abcd", "amount": 12.5}, "forwarded"),
    ("nested", {}, "partial"),
    ("nested", {"target": {}}, "refused"),  # an object the case gives, incomplete: not the arguments object itself
    ("nested", {"target": "ns1"}, "refused"),
    ("ref", {}, "partial"),  # required through $ref
    ("ref", {"q": 1}, "refused"),
    ("any", {}, "refused"),  # which of a or b is meant cannot be told: anyOf fails as a whole
    ("any", {"a": "x"}, "forwarded"),
    ("allof", {}, "partial"),  # required through allOf; the default of y is still filled in
    ("allof", {"x": "1"}, "refused"),
    ("allof", {"x": 1}, "forwarded"),
    ("if_then", {"mode": "b"}, "partial"),  # required through if/then
    ("if_then", {"mode": "c"}, "refused"),
    ("dependent", {"p": "x"}, "refused"),  # dependentRequired is a rule between arguments, not a left-out one
    ("unresolved", {"a": 1}, "refused"),  # the gateway cannot check it: refused as unusable
]


@pytest.mark.parametrize("tool,args,want", TABLE, ids=[f"{t}-{json.dumps(a)}" for t, a, _ in TABLE])
def test_outside_the_gateway_a_call_is_refused_as_the_gateway_refuses_it(tool, args, want):
    g_refusal, g_args = gateway(tool, args)
    refusal, out = CatalogAdmission(CAT).admit(tool, args)
    if want == "refused":
        assert g_refusal is not None
        assert refusal == g_refusal  # kind, pointer, reason and message: what the gateway answers
    elif want == "partial":
        assert g_refusal is not None and g_refusal["kind"] == "invalid_arguments"
        assert refusal is None  # decided by the policy
        assert only_missing(tool_checker(SchemaCache(), [{"inputSchema": SCHEMAS[tool]}], tool), args)
    else:
        assert g_refusal is None and refusal is None
        assert out == g_args  # the arguments the gateway forwards, defaults filled in


JSON = st.recursive(st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-2, 2, allow_nan=False)
                    | st.sampled_from(["", "a", "b", "ch_abcd", "duplicate", "5000"]),
                    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from(["ns", "q", "x"]), inner, max_size=2),
                    max_leaves=4)
KEYS = st.sampled_from(["charge_id", "amount", "reason", "target", "q", "a", "b", "x", "y", "mode", "key", "p", "note"])


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(SCHEMAS)), st.dictionaries(KEYS, JSON, max_size=4))
def test_every_call_gets_the_gateway_outcome_unless_it_only_leaves_out_required_arguments(tool, args):
    g_refusal, g_args = gateway(tool, args)
    refusal, out = CatalogAdmission(CAT).admit(tool, args)
    if g_refusal is None:
        assert refusal is None and out == g_args
    elif refusal is not None:
        assert refusal == g_refusal
    else:  # decided by the policy: only a partial call may be
        assert g_refusal["kind"] == "invalid_arguments"
        assert only_missing(tool_checker(SchemaCache(), [{"inputSchema": SCHEMAS[tool]}], tool), args)


REFUNDS = ROOT / "examples" / "refunds.mcpp"
STRING_AMOUNT = {"charge_id": "ch_12345678", "amount": "5000"}
TYPE_RULE = "/tools/refund_payment/schema/properties/amount/type"


def test_the_api_refuses_a_string_amount_as_the_gateway_does():
    policy = mcpp.load_policy(REFUNDS, catalog=ROOT / "examples" / "catalogs" / "refunds.json")
    d = policy.decide("refund_payment", STRING_AMOUNT, dry_run=True)
    assert (d.decision, d.rule) == ("deny", TYPE_RULE)
    assert "must be a number" in d.message and "not forwarded" in d.message
    x = policy.explain("refund_payment", STRING_AMOUNT)
    assert x.decision.rule == TYPE_RULE and not x.satisfied  # no policy was reached
    ok = policy.decide("refund_payment", {"charge_id": "ch_12345678", "amount": 50}, dry_run=True)
    assert ok.decision == "allow"


def test_mcpp_eval_refuses_a_string_amount_as_the_gateway_does():
    call = json.dumps({"name": "refund_payment", "arguments": STRING_AMOUNT})
    p = subprocess.run([sys.executable, "-m", "mcpp", "eval", str(REFUNDS), "--call", call],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert (out["decision"], out["rule"]) == ("deny", TYPE_RULE), out


def test_a_mcpp_test_case_expecting_the_policy_for_a_string_amount_fails(tmp_path):
    """What the examples' own test asserted before: a policy decision for a call the
    gateway refuses first. Now the case fails and names the gateway's rule."""
    test = tmp_path / "refunds.test.toml"
    test.write_text(f'policies = [{json.dumps(str(REFUNDS))}]\n[[case]]\nname = "string amount"\n'
                    f'tool = "refund_payment"\narguments = {{ charge_id = "ch_12345678", amount = "5000" }}\n'
                    'decision = "deny"\npolicy = "refund-cap"\n')
    p = subprocess.run([sys.executable, "-m", "mcpp", "test", str(test)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, p.stdout + p.stderr
    assert TYPE_RULE in p.stdout and "1 failed" in p.stdout, p.stdout
