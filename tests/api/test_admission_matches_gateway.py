"""Every tool that decides a call against a catalog outside the gateway (`mcpp eval`, the
Python API, `mcpp test`, the language server: `CatalogAdmission`) admits it exactly as the
gateway does: the same refusal (kind, rule pointer, reason, message) or the same filled
arguments, for every call to a tool the catalog lists. Before, a call whose arguments
broke the schema was decided by the policy, so `{"amount": "5000"}` for a declared number
got a policy decision no gateway ever gives (the examples' own tests asserted one); a
first fix still let a call that only left out required arguments through, and hostile
review 18 found the policy then deciding calls the gateway refuses in every completion
(defaults filled unchecked, `dependentSchemas`, `if`/`then`, `maxProperties`, a default
too large to fill giving the policy no arguments at all)."""

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
from mcpp.catalog.conformance import SchemaCache

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
# hostile review 18: partial calls the policy decided although no completion can be forwarded
BAD_DEFAULT = {"type": "object", "properties": {"order_id": {"type": "string"},
                                                "amount": {"type": "number", "default": "5000"}}, "required": ["order_id"]}
DEP_SCHEMAS = {"type": "object", "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}},
               "required": ["order_id"], "dependentSchemas": {"order_id": {"properties": {"amount": {"maximum": 100}}}}}
MAX_PROPS = {"type": "object", "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"},
                                              "note": {"type": "string"}}, "required": ["order_id"], "maxProperties": 2}
FALSE_PROP = {"type": "object", "properties": {"x": False, "y": {"type": "string"}}, "required": ["x"]}
HUGE_DEFAULT = {"type": "object", "properties": {"id": {"type": "string"},  # more values than filling may add
                                                 "opts": {"type": "object", "default": {f"k{i}": i for i in range(1500)}}},
                "required": ["id"]}
RE2_LOOKAHEAD = {"type": "object", "properties": {"path": {"type": "string", "pattern": "^(?!/etc/).*$"}}}
SCHEMAS = {"amount": AMOUNT, "nested": NESTED, "ref": REF, "any": ANY, "allof": ALLOF, "if_then": IF_THEN,
           "dependent": DEPENDENT, "unresolved": UNRESOLVED, "bad_default": BAD_DEFAULT, "dep_schemas": DEP_SCHEMAS,
           "max_props": MAX_PROPS, "false_prop": FALSE_PROP, "huge_default": HUGE_DEFAULT, "re2": RE2_LOOKAHEAD}
CAT = Catalog.from_tools([{"name": n, "inputSchema": s} for n, s in SCHEMAS.items()])


def gateway(tool: str, args):
    """What `mcpp serve` does with the call: its own pure admission step (proxy.py
    `schema_check` → catalog/admission.py `admit`), for the tool listed with its schema."""
    return admit(tool_checker(SchemaCache(), [{"inputSchema": SCHEMAS[tool]}], tool), tool, args)


# (tool, arguments, the gateway's outcome kind: None when it forwards the call)
TABLE = [
    ("amount", {"charge_id": "ch_abcd", "amount": "5000"}, "invalid_arguments"),  # a string where a number is declared
    ("amount", {"charge_id": "ch_abcd", "amount": 5000, "note": "x"}, "invalid_arguments"),  # an undeclared argument
    ("amount", {"charge_id": "ch_abcd", "amount": 0}, "invalid_arguments"),  # out of bounds
    ("amount", {"charge_id": "../ch_abcd"}, "invalid_arguments"),  # a pattern
    ("amount", {"charge_id": "ch_abcd", "reason": "customer asked"}, "invalid_arguments"),  # an enum
    ("amount", {"amount": "5000"}, "invalid_arguments"),
    ("amount", {"amount": True}, "invalid_arguments"),  # a boolean is no number
    ("amount", {"amount": 5000}, "invalid_arguments"),  # a required argument left out
    ("amount", {}, "invalid_arguments"),
    ("amount", {"charge_id": "ch_abcd", "amount": 12.5}, None),
    ("nested", {}, "invalid_arguments"),
    ("nested", {"target": {}}, "invalid_arguments"),
    ("ref", {}, "invalid_arguments"),
    ("ref", {"q": "x"}, None),
    ("any", {}, "invalid_arguments"),
    ("any", {"a": "x"}, None),
    ("allof", {}, "invalid_arguments"),
    ("allof", {"x": 1}, None),  # the default of y is filled in
    ("if_then", {"mode": "b"}, "invalid_arguments"),
    ("dependent", {"p": "x"}, "invalid_arguments"),
    ("unresolved", {"a": 1}, "unusable_schema"),  # the gateway cannot check it: refused as unusable
    ("bad_default", {}, "invalid_arguments"),  # hostile18 F1: the default "5000" reached the policy
    ("bad_default", {"order_id": "o1"}, "invalid_default"),
    ("bad_default", {"order_id": "o1", "amount": 5}, None),
    ("huge_default", {}, "invalid_arguments"),  # hostile18 F2: the policy got no arguments at all
    ("huge_default", {"id": "i"}, "invalid_default"),
    ("dep_schemas", {"amount": 5000}, "invalid_arguments"),  # hostile18 F3
    ("dep_schemas", {"order_id": "o", "amount": 5000}, "invalid_arguments"),
    ("max_props", {"amount": 1, "note": "n"}, "invalid_arguments"),
    ("false_prop", {"y": "v"}, "invalid_arguments"),
    ("re2", {"path": "/etc/shadow"}, "unusable_schema"),  # hostile18 F4: a pattern RE2 cannot run
    ("re2", {}, "unusable_schema"),  # every call to the tool, as at the gateway
]


@pytest.mark.parametrize("tool,args,want", TABLE, ids=[f"{t}-{json.dumps(a)[:40]}" for t, a, _ in TABLE])
def test_outside_the_gateway_a_call_is_admitted_as_the_gateway_admits_it(tool, args, want):
    g_refusal, g_args = gateway(tool, args)
    assert (g_refusal or {}).get("kind") == want, g_refusal
    refusal, out = CatalogAdmission(CAT).admit(tool, args)
    assert refusal == g_refusal  # kind, pointer, reason and message: what the gateway answers
    if g_refusal is None:
        assert out == g_args  # the arguments the gateway forwards, defaults filled in


JSON = st.recursive(st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-2, 2, allow_nan=False)
                    | st.sampled_from(["", "a", "b", "ch_abcd", "duplicate", "5000"]),
                    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from(["ns", "q", "x"]), inner, max_size=2),
                    max_leaves=4)
KEYS = st.sampled_from(["charge_id", "amount", "reason", "target", "q", "a", "b", "x", "y", "mode", "key", "p", "note",
                        "order_id", "id", "path"])


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(SCHEMAS)), st.dictionaries(KEYS, JSON, max_size=4))
def test_every_call_gets_the_gateway_outcome(tool, args):
    g_refusal, g_args = gateway(tool, args)
    refusal, out = CatalogAdmission(CAT).admit(tool, args)
    assert refusal == g_refusal
    if g_refusal is None:
        assert out == g_args


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


# hostile18 F8: values no JSON text can carry — NaN, ±Infinity, a lone surrogate (in a
# value or a key, at any depth). The gateway refuses such a call before its schema check,
# whether or not it checks schemas (proxy.py `call_tool`: 400 with the reason), so the API
# refuses it too, with or without a catalog: decision deny, rule `/request`, the gateway's
# reason as the message. NaN passed `maximum: 1000` (every comparison with it is false).
CAPPED = {"type": "object", "properties": {"amount": {"type": "number", "maximum": 1000}, "note": {},
                                           "tags": {"type": "array"}}}
NOT_FINITE, NOT_UNICODE = "numbers must be finite JSON numbers", "strings must be valid Unicode (a lone surrogate is not)"
UNSAFE_INTEGER = ("integers must be within ±9007199254740991 (2^53-1, I-JSON: a JavaScript server reads larger ones "
                  "rounded); send a larger one as a string")
CAPPED_CAT = Catalog.from_tools([{"name": "capped", "inputSchema": CAPPED}])
ALLOW_CAPPED = 'permit (principal, action == Action::"capped", resource) unless { context.input.amount > 1000 };'
NOT_JSON = [  # (arguments, the gateway's reason)
    ({"amount": float("nan")}, NOT_FINITE),
    ({"amount": float("inf")}, NOT_FINITE),
    ({"amount": -float("inf")}, NOT_FINITE),
    ({"amount": 5, "tags": [1, [2, {"deep": [float("nan")]}]]}, NOT_FINITE),  # nested in lists and objects
    ({"amount": 5, "note": "a\ud800b"}, NOT_UNICODE),
    ({"amount": 5, "note": "\udfff"}, NOT_UNICODE),
    ({"amount": 5, "tags": [{"k": ["x", "\udc80"]}]}, NOT_UNICODE),
    ({"amount": 5, "note": {"\ud800": 1}}, NOT_UNICODE),  # a key
    ({"\ud800": 5}, NOT_UNICODE),  # a top-level key
    # an integer beyond ±(2^53-1): I-JSON, a JavaScript upstream runs another (hostile review 41, H41-5)
    ({"amount": 9007199254740993}, UNSAFE_INTEGER),
    ({"amount": 5, "tags": [1, [2, {"deep": [-(2**53)]}]]}, UNSAFE_INTEGER),
]
NOT_JSON_IDS = [json.dumps(a)[:48] for a, _ in NOT_JSON]


def gateway_reason(tool: str, args) -> str | None:
    """The gateway's answer to the call before any schema or policy: the reason of its 400,
    or None when it goes on (what proxy.py `call_tool` runs on the request it read)."""
    from mcpp.catalog.admission import NotJSONText, json_bytes, unsafe_integer  # (as proxy.py imports them)
    from mcpp.runtime.gateway.proxy import _nesting_refusal

    msg = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": args}}
    try:
        body = json_bytes(msg)
    except NotJSONText as e:
        return str(e)
    refusal = _nesting_refusal(msg, body)
    return refusal[1] if refusal is not None else unsafe_integer(args)


@pytest.mark.parametrize("args,reason", NOT_JSON, ids=NOT_JSON_IDS)
@pytest.mark.parametrize("with_catalog", [True, False], ids=["catalog", "no-catalog"])
def test_a_call_no_json_text_can_carry_is_refused_as_the_gateway_refuses_it(args, reason, with_catalog):
    assert gateway_reason("capped", args) == reason
    policy = mcpp.load_policy(ALLOW_CAPPED, catalog=CAPPED_CAT if with_catalog else None)
    for d in (policy.decide("capped", args, dry_run=True), policy.explain("capped", args).decision):
        assert (d.decision, d.rule, d.policy, d.message) == ("deny", "/request", None, reason)
    if with_catalog:  # `mcpp test` and the language server admit through CatalogAdmission
        refusal, out = CatalogAdmission(CAPPED_CAT).admit("capped", args)
        assert refusal == {"kind": "not_json", "pointer": "/request", "reason": reason, "message": reason}
        assert out is args


@pytest.mark.parametrize("args", [{"amount": 5}, {"amount": 999.5, "note": {"é日\U0001f600": "\U0001f600"},
                                                 "tags": [None, True, -0.0, 1e308, -(2**53 - 1), ""]}], ids=json.dumps)
@pytest.mark.parametrize("with_catalog", [True, False], ids=["catalog", "no-catalog"])
def test_json_values_still_reach_the_policy(args, with_catalog):
    assert gateway_reason("capped", args) is None
    policy = mcpp.load_policy(ALLOW_CAPPED, catalog=CAPPED_CAT if with_catalog else None)
    d = policy.decide("capped", args, dry_run=True)
    assert (d.decision, d.rule) == ("allow", "/tools/capped")


def test_a_tool_name_no_json_text_can_carry_is_refused():
    policy = mcpp.load_policy("default allow;")
    d = policy.decide("to\ud800l", {})
    assert gateway_reason("to\ud800l", {}) == NOT_UNICODE
    assert (d.decision, d.rule, d.message) == ("deny", "/request", NOT_UNICODE)


@pytest.mark.parametrize("args", [{"s": {1, 2}}, {"b": b"bytes"}, {"o": object()}], ids=["set", "bytes", "object"])
def test_python_values_with_no_json_form_are_refused(args):
    """Only the API can be handed these (the gateway reads JSON text): fail closed."""
    d = mcpp.load_policy("default allow;").decide("t", args)
    assert (d.decision, d.rule) == ("deny", "/request") and "JSON values" in d.message


def test_mcpp_eval_calls_refuses_a_lone_surrogate_as_eval_call_does(tmp_path):
    """`--calls` decides each line as `--call` (Policy.decide) does: NaN is refused when
    the line is read; a lone surrogate (valid JSON syntax) is the gateway's refusal."""
    policy = tmp_path / "p.mcpp"
    policy.write_text("default allow;\n")
    line = json.dumps({"name": "t", "arguments": {"a": [{"\ud800": "x"}]}})
    calls = tmp_path / "calls.jsonl"
    calls.write_text(line + "\n" + json.dumps({"name": "t", "arguments": {"a": "ok"}}) + "\n")
    single = subprocess.run([sys.executable, "-m", "mcpp", "eval", str(policy), "--call", line],
                            capture_output=True, text=True, timeout=120)
    many = subprocess.run([sys.executable, "-m", "mcpp", "eval", str(policy), "--calls", str(calls)],
                          capture_output=True, text=True, timeout=120)
    assert single.returncode == many.returncode == 0, single.stderr + many.stderr
    first, second = (json.loads(x) for x in many.stdout.splitlines())
    assert first == json.loads(single.stdout)
    assert (first["decision"], first["rule"], first["message"]) == ("deny", "/request", NOT_UNICODE)
    assert second["decision"] == "allow"


TEXT = st.text(st.sampled_from("a\u00e9\U0001f600\ud800\udfff"), max_size=3)  # lone surrogates among the rest
ANY_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([float("nan"), float("inf"), -float("inf")]) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8)
ALLOW_ALL = mcpp.load_policy("default allow;")


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(TEXT, ANY_VALUE, max_size=3))
def test_the_api_allows_exactly_what_the_gateway_lets_through(args):
    """On `default allow`, a call is allowed iff the gateway would read it on to the policy."""
    d = ALLOW_ALL.decide("t", args)
    reason = gateway_reason("t", args)
    assert (d.decision, d.message) == (("allow", "Tool t is allowed by default.") if reason is None
                                       else ("deny", reason)), (args, d)
