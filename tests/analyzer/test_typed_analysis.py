"""Typed analysis (docs/analyzer.md, "Typed analysis"): with a catalog, the analyzer judges
exactly the catalog's tools, each call conforming to its tool's inputSchema (the gateway
refuses the rest), with no stand-in for "every other tool"; every witness it shows is a
call the gateway's own validator accepts, and one that is not is UNKNOWN, never a FAIL."""

from __future__ import annotations

import pytest

from mcpp.analyzer import analyze
from mcpp.analyzer.diff import diff_programs
from mcpp.analyzer.lints import lint
from mcpp.analyzer.safety import blocking_findings
from mcpp.analyzer.typed import typed_session
from mcpp.analyzer.verify import verify
from mcpp.catalog import Catalog
from mcpp.catalog.conformance import check as conforms, closed_world, compile_schema
from mcpp.lang.program import load_program

NUM = {"type": "number"}
STR = {"type": "string"}


def catalog(**tools) -> Catalog:
    """tool name → (properties, required)."""
    return Catalog.from_tools([
        {"name": name, "inputSchema": {"type": "object", "properties": props, "required": list(req)}}
        for name, (props, req) in tools.items()
    ])


PAYMENTS = catalog(refund_payment=({"charge_id": STR, "amount": NUM}, ("charge_id", "amount")),
                   get_charge=({"charge_id": STR}, ("charge_id",)))
REFUND = """default deny;
permit (principal, action in [Action::"refund_payment", Action::"get_charge"], resource);
@id("big-refunds")
forbid (principal, action == Action::"refund_payment", resource) when { context.input.amount > 1000 };
"""


def prog(text: str):
    return load_program(text, "p.mcpp")


def lint_codes(text: str, cat: Catalog | None) -> list[tuple[str, str]]:
    return sorted((d.code, d.severity) for d in lint(prog(text), timeout_ms=10000, session=typed_session(cat, 10000)))


def _witness_conforms(cat: Catalog, witness: dict) -> None:
    params = witness["request"]["params"]
    validator = compile_schema(closed_world(cat.tools[params["name"]].input_schema))
    assert conforms(validator, params["arguments"]) is None, witness


# ---- the refund policy: the bypass lint reports only what the schema still allows ----------


@pytest.mark.parametrize("cat, expected", [
    # untyped: "1500" skips the forbid, and the permit lets it through
    (None, [("forbid-bypass", "error")]),
    # amount: a required number: the gateway refuses a string or a missing amount, no bypass is left
    (PAYMENTS, []),
    # optional number: only omitting it bypasses the forbid (a warning, as the untyped missing case)
    (catalog(refund_payment=({"amount": NUM}, ()), get_charge=({}, ())), [("forbid-bypass", "warning")]),
    # a schema that still allows a string: the mistyped bypass stays an error
    (catalog(refund_payment=({"amount": {"type": ["number", "string"]}}, ("amount",)), get_charge=({}, ())),
     [("forbid-bypass", "error")]),
])
def test_refund_bypass_reports_only_what_the_schema_allows(cat, expected):
    found = [x for x in lint_codes(REFUND, cat) if x[0] == "forbid-bypass"]
    assert found == expected
    blocking = blocking_findings(prog(REFUND), cat, timeout_ms=10000)
    assert [d.code for d in blocking] == [c for c, sev in expected if sev == "error"]
    for d in lint(prog(REFUND), timeout_ms=10000, session=typed_session(cat, 10000)):
        if cat is not None and "counterexample" in d.data:
            _witness_conforms(cat, d.data["counterexample"])


# ---- closed world: the catalog's tools, no stand-in ------------------------------------------------


@pytest.mark.parametrize("text, untyped, typed", [
    # default deny: the stand-in of a typed analysis has no calls, so it "allows every call" vacuously;
    # with the catalog's tools instead, nothing is found
    ("default deny;\npermit (principal, action == Action::\"get_charge\", resource);\n", [], []),
    # default allow: untyped, the stand-in is open to everyone; typed, the catalog tools the policy
    # does not name are (named in the finding)
    ("default allow;\nforbid (principal, action == Action::\"refund_payment\", resource);\n",
     [("always-allows", "warning")], [("always-allows", "warning")]),
])
def test_no_stand_in_findings(text, untyped, typed):
    assert [x for x in lint_codes(text, None) if x[0].startswith("always")] == untyped
    assert [x for x in lint_codes(text, PAYMENTS) if x[0].startswith("always")] == typed
    if typed:
        (d,) = [d for d in lint(prog(text), session=typed_session(PAYMENTS)) if d.code == "always-allows"]
        assert d.data["tools"] == ["get_charge"] and "delete_everything" not in d.message


@pytest.mark.parametrize("text, cat, status, checked", [
    # an assertion about every tool covers every catalog tool, including those the policy never names
    ("default allow;\nassert deny (principal, action, resource);\n", PAYMENTS, "fail", 2),
    ("default deny;\npermit (principal, action == Action::\"get_charge\", resource);\n"
     "assert deny (principal, action, resource) when { context.input has amount };\n", PAYMENTS, "pass", 2),
    # untyped, a call to get_charge may carry an `amount` (the gateway refuses it: get_charge declares none)
    ("default deny;\npermit (principal, action == Action::\"get_charge\", resource);\n"
     "assert deny (principal, action, resource) when { context.input has amount };\n", None, "fail", 2),
    # typed: amount is a number, so `amount > 1000` selects every large refund, and the forbid denies them all
    (REFUND + "assert deny (principal, action == Action::\"refund_payment\", resource) when { context.input.amount > 1000 };\n",
     PAYMENTS, "pass", 1),
])
def test_assertions_cover_the_catalog(text, cat, status, checked):
    (r,) = verify(prog(text), timeout_ms=10000, session=typed_session(cat, 10000))
    assert (r.status, r.tools_checked) == (status, checked), r.message
    if r.status == "fail" and cat is not None:
        _witness_conforms(cat, r.to_dict()["counterexample"])


def test_an_assert_about_a_tool_the_catalog_lacks_is_never_proved():
    text = "default deny;\nassert deny (principal, action == Action::\"delete_repo\", resource);\n"
    (untyped,) = verify(prog(text))
    assert untyped.status == "pass"  # untyped it speaks about a tool the policy does not govern
    (typed,) = verify(prog(text), session=typed_session(PAYMENTS))
    assert typed.status == "unknown" and "delete_repo" in typed.message
    (d,) = [d for d in analyze(prog(text), catalog=PAYMENTS) if d.code.startswith("assert")]
    assert d.code == "assert-unknown" and "delete_repo" in d.message


def test_a_group_name_in_an_assert_is_not_a_missing_tool():
    """`in` is reflexive, so a group's own name is among the tools an assert names; with a
    catalog that has no tool of that name it is simply never called — not an unknown tool."""
    text = ('group Action::"payments" = [Action::"refund_payment", Action::"get_charge"];\n' + REFUND
            + 'assert deny (principal, action in Action::"payments", resource) when { context.input.amount > 1000 };\n')
    (r,) = verify(prog(text), timeout_ms=10000, session=typed_session(PAYMENTS, 10000))
    assert (r.status, r.tools_checked) == ("pass", 2), r.message
    assert not [d for d in analyze(prog(text), catalog=PAYMENTS) if d.severity == "error"]


def test_typed_diff_has_no_stand_in_case():
    old = prog("default deny;\npermit (principal, action == Action::\"get_charge\", resource);\n")
    new = prog("default allow;\nforbid (principal, action == Action::\"refund_payment\", resource);\n")
    untyped = diff_programs(old, new)
    assert any(d.other for d in untyped)
    typed = diff_programs(old, new, session=typed_session(PAYMENTS))
    assert [(d.tool, d.other, d.status) for d in typed] == [("get_charge", False, "equivalent"),
                                                            ("refund_payment", False, "equivalent")]


# ---- witnesses are checked by the gateway's validator ------------------------------------------------


@pytest.mark.parametrize("schema, condition", [
    # the encoding widens `multipleOf`: amount == 1 is a model, but no conforming call has it
    ({"amount": {"type": "number", "multipleOf": 7}}, "context.input.amount == 1"),
    # ... and the item types of arrays: [5] is a model, the schema wants strings
    ({"tags": {"type": "array", "items": STR}}, "context.input.tags.contains(5)"),
])
def test_a_nonconforming_witness_is_unknown_never_a_fail(schema, condition):
    cat = catalog(t=(schema, tuple(schema)))
    text = (f"default deny;\npermit (principal, action == Action::\"t\", resource);\n"
            f"assert deny (principal, action == Action::\"t\", resource) when {{ {condition} }};\n")
    (untyped,) = verify(prog(text))
    assert untyped.status == "fail"
    (r,) = verify(prog(text), session=typed_session(cat))
    assert r.status == "unknown" and "does not conform" in r.message and r.witness is None


@pytest.mark.parametrize("schema, condition, status, value", [
    # H41-6: a member holding a character from U+2FA20 up was read as "any string"
    ({"s": {"type": "string", "enum": ["a", "\U00030000"]}}, 'context.input.s != "a"', "fail", "\U00030000"),
    ({"s": {"const": "\U00030000x"}}, "true", "fail", "\U00030000x"),
    ({"s": {"type": "string", "enum": ["a", "\U0002fa20"]}}, 'context.input.s != "a"', "fail", "\U0002fa20"),
    ({"s": {"type": "string", "enum": ["\U0002fa20", "\U0010ffff"]}}, 'context.input.s like "*"', "fail", None),
    # two such members stay apart, from each other and from the block's own characters
    ({"s": {"enum": ["\U00030000"]}, "t": {"enum": ["\U00030001", "\U0002fa20", "\U0002fa21"]}},
     "context.input.s == context.input.t", "pass", None),
    # a free string can be the member
    ({"s": {"enum": ["\U00030000"]}, "t": STR}, "context.input.s == context.input.t", "fail", "\U00030000"),
])
def test_schema_strings_above_the_z3_alphabet(schema, condition, status, value):
    cat = catalog(t=(schema, tuple(schema)))
    text = (f"default deny;\npermit (principal, action == Action::\"t\", resource);\n"
            f"assert deny (principal, action == Action::\"t\", resource) when {{ {condition} }};\n")
    (r,) = verify(prog(text), timeout_ms=10000, session=typed_session(cat, 10000))
    assert r.status == status, r.message
    if status == "fail":
        cx = r.to_dict()["counterexample"]
        _witness_conforms(cat, cx)
        if value is not None:
            assert cx["request"]["params"]["arguments"]["s"] == value


def test_nonconforming_names_the_argument():
    s = typed_session(PAYMENTS)
    assert s.nonconforming("refund_payment", {"charge_id": "c", "amount": 5}) is None
    assert "amount" in s.nonconforming("refund_payment", {"charge_id": "c", "amount": "5000"})
    assert "pth" in s.nonconforming("get_charge", {"charge_id": "c", "pth": 1})  # closed world
    assert "no tool" in s.nonconforming("delete_repo", {})
    assert typed_session(None).nonconforming("anything", {"x": object()}) is None  # untyped: no check


# ---- a misspelt argument is never repeated in a suggested fix ----------------------------------------


FS = catalog(read_file=({"path": STR, "head": NUM}, ("path",)))
TYPO = """default deny;
permit (principal, action == Action::"read_file", resource);
@id("no-secrets")
forbid (principal, action == Action::"read_file", resource) when { context.input.pth like "*secret*" };
"""


@pytest.mark.parametrize("text, cat", [
    (TYPO, FS),  # typed: the schema says `pth` does not exist and `path` does
    # untyped: another rule for the tool reads `path`
    (TYPO.replace("resource);\n@id", "resource) when { context.input.path like \"/srv/*\" };\n@id", 1), None),
])
def test_lint_fix_never_repeats_a_typo(text, cat):
    (d,) = [d for d in lint(prog(text), timeout_ms=10000, session=typed_session(cat, 10000)) if d.code == "forbid-bypass"]
    assert "did you mean `path`" in d.notes[0]
    edits = d.data["fix"]["edits"]
    assert edits and all(e["text"] == "context.input.path" for e in edits)
    assert not any("pth" in e["text"] for e in edits) and "pth" not in d.data["fix"]["title"]


def test_an_undeclared_argument_of_an_open_schema_with_no_near_name_is_guarded():
    """`additionalProperties: true`: the call may carry `note`, nothing declared is near it, so
    the usual guard is the advice (no claim that the name is wrong)."""
    cat = Catalog.from_tools([{"name": "read_file", "inputSchema": {
        "type": "object", "properties": {"path": STR}, "required": ["path"], "additionalProperties": True}}])
    text = TYPO.replace("context.input.pth", "context.input.note")
    (d,) = [d for d in lint(prog(text), timeout_ms=10000, session=typed_session(cat, 10000)) if d.code == "forbid-bypass"]
    assert "did you mean" not in d.notes[0] and "guard it where an error denies" in d.notes[0]


# ---- schemas the gateway's validator reads otherwise than 2020-12 (hostile review) -----------

CAPPED = {"type": "number", "maximum": 1000}
# (schema, "the analysis reads the cap"): each is a schema the gateway validates
# by its own dialect and reference rules; where that is not the 2020-12 reading, a proof
# must not lean on the cap
DIALECTS = [
    ({"type": "object", "properties": {"amount": CAPPED}, "required": ["amount"]}, True),
    ({"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
      "properties": {"amount": CAPPED}, "required": ["amount"]}, True),
    # draft-07: a keyword beside `$ref` is ignored, so the cap is no cap
    ({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "definitions": {"money": NUM},
      "properties": {"amount": {"$ref": "#/definitions/money", "maximum": 1000}}, "required": ["amount"]}, False),
    # draft-07 without a `$ref`: read as written
    ({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
      "properties": {"amount": CAPPED}, "required": ["amount"]}, True),
    # draft-04 (no `const`, boolean exclusive bounds): not read at all
    ({"$schema": "http://json-schema.org/draft-04/schema#", "type": "object",
      "properties": {"amount": CAPPED}, "required": ["amount"]}, False),
    # a nested `$id` moves the base `#` refers to; a percent-encoded pointer
    ({"type": "object", "properties": {"amount": {"$id": "https://x.example/m", "$ref": "#/$defs/m",
                                                   "$defs": {"m": NUM}}}, "$defs": {"m": CAPPED}, "required": ["amount"]},
     False),
    ({"type": "object", "$defs": {"money capped": CAPPED}, "properties": {"amount": {"$ref": "#/$defs/money%20capped"}},
      "required": ["amount"]}, False),
]


@pytest.mark.parametrize("schema, capped", DIALECTS)
def test_a_proof_leans_only_on_what_the_gateway_validates(schema, capped):
    cat = Catalog.from_tools([{"name": "refund_payment", "inputSchema": schema}])
    text = ('default deny;\npermit (principal, action == Action::"refund_payment", resource);\n'
            'assert deny (principal, action == Action::"refund_payment", resource) when { context.input.amount > 1000 };\n')
    (r,) = verify(prog(text), timeout_ms=10000, session=typed_session(cat, 10000))
    # not read: never a PASS; a FAIL only with a call the gateway forwards, else UNKNOWN
    # (draft-04's `maximum` and the percent-decoded pointer do cap: the gateway refuses 1001)
    assert r.status == "pass" if capped else r.status in ("fail", "unknown"), r.message
    if r.status == "fail":  # the counterexample is a call the gateway's own validator forwards
        _witness_conforms(cat, r.to_dict()["counterexample"])
