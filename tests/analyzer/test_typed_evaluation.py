"""Schemas whose meaning the gateway's validator decides beyond what one alternative lists
(hostile review 41): a subschema that names its own `$schema` (the validator switches
dialect there, H41-3), and `unevaluatedProperties`, which skips every key some valid
subschema evaluated — `then`/`else`, `dependentSchemas`, an `allOf` member with several
alternatives (H41-4). The analyzer must not prove what the gateway does not enforce, and
`mcpp check` must not call an argument the gateway forwards absent or mistyped."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcpp.analyzer.typed import typed_session, unmodelled
from mcpp.analyzer.verify import verify
from mcpp.catalog import Catalog, validate
from mcpp.catalog.conformance import check as violation, closed_world, compile_schema
from mcpp.catalog.schema import root_view
from mcpp.lang.program import check_source, load_program

D4 = "http://json-schema.org/draft-04/schema#"
D7 = "http://json-schema.org/draft-07/schema#"

RUN = {"type": "object", "properties": {"mode": {"type": "string", "enum": ["safe", "raw"]}}, "required": ["mode"],
       "if": {"properties": {"mode": {"const": "raw"}}}, "then": {"properties": {"cmd": {"type": "string"}}},
       "unevaluatedProperties": False}
EXPORT = {"type": "object", "properties": {"format": {"type": "string", "enum": ["csv", "bulk"]}}, "required": ["format"],
          "if": {"properties": {"format": {"const": "bulk"}}, "required": ["format"]},
          "then": {"properties": {"rows": {"type": "integer", "minimum": 1}}}, "unevaluatedProperties": {"type": "string"}}
DEP = {"type": "object", "properties": {"mode": {"type": "string"}},
       "dependentSchemas": {"mode": {"properties": {"limit": {"type": "integer"}}}}, "unevaluatedProperties": {"type": "string"}}
MIX = {"type": "object", "allOf": [{"anyOf": [{"properties": {"limit": {"type": "integer"}}, "required": ["limit"]},
                                              {"properties": {"name": {"type": "string"}}, "required": ["name"]}]}],
       "unevaluatedProperties": {"type": "string"}}
DEPLOY = {"type": "object", "properties": {"env": {"$schema": D4, "type": "string", "const": "staging"},
                                           "replicas": {"$schema": D4, "type": "integer", "exclusiveMaximum": 10}},
          "required": ["env", "replicas"]}
REFUND = {"type": "object", "properties": {"order": {"$schema": D7, "type": "object",
                                                     "properties": {"amount": {"$ref": "#/$defs/Money", "maximum": 1000}},
                                                     "required": ["amount"]}},
          "required": ["order"], "$defs": {"Money": {"type": "number"}}}

# (tool schema, the condition an assert denies, a call the gateway forwards that meets it)
UNENFORCED = [
    pytest.param(DEPLOY, 'context.input.env != "staging"', {"env": "production", "replicas": 2}, id="draft-04 const"),
    pytest.param(DEPLOY, "context.input.replicas >= 10", {"env": "staging", "replicas": 500}, id="draft-04 exclusiveMaximum"),
    pytest.param(REFUND, "context.input.order.amount > 1000", {"order": {"amount": 999999}}, id="draft-07 $ref+sibling"),
    pytest.param(RUN, 'context.input has cmd && context.input.cmd == "ls"', {"mode": "raw", "cmd": "ls"},
                 id="if/then + unevaluatedProperties false"),
    pytest.param(EXPORT, "context.input has rows && [1000000, 5000000].contains(context.input.rows)",
                 {"format": "bulk", "rows": 1000000}, id="then-typed integer + unevaluatedProperties string"),
    pytest.param(DEP, "context.input has limit && [5000].contains(context.input.limit)", {"mode": "a", "limit": 5000},
                 id="dependentSchemas"),
    pytest.param(MIX, "context.input has limit && [5000].contains(context.input.limit)", {"limit": 5000},
                 id="allOf of anyOf"),
    # hostile review 42: a `$ref` into a position the dialect walk reads as data or skips,
    # where the validator still switches dialect (H42-1)
    pytest.param({"type": "object", "examples": [{"$schema": D4, "type": "string", "const": "staging"}],
                  "properties": {"env": {"$ref": "#/examples/0"}}, "required": ["env"]},
                 'context.input.env != "staging"', {"env": "production"}, id="$ref into examples"),
    pytest.param({"type": "object", "x-defs": {"const": {"$schema": D4, "type": "string", "const": "staging"}},
                  "properties": {"env": {"$ref": "#/x-defs/const"}}, "required": ["env"]},
                 'context.input.env != "staging"', {"env": "production"}, id="$ref into an unknown keyword's const"),
    pytest.param({"type": "object", "x": {"properties": {"$schema": D4, "type": "string", "const": "staging"}},
                  "properties": {"env": {"$ref": "#/x/properties"}}, "required": ["env"]},
                 'context.input.env != "staging"', {"env": "production"}, id="$ref into a name map"),
    # `#/` is the root's member named "" (RFC 6901), not the root (H42-4)
    pytest.param({"type": "object", "": {}, "properties": {"mode": {"enum": ["safe", "fast"]}, "env": {"$ref": "#/"}},
                  "required": ["mode"]},
                 'context.input has env && ["production"].contains(context.input.env)', {"mode": "safe", "env": "production"},
                 id="#/ is the member named empty"),
    # a draft-07 root keeps an argument named like a 2020-12 keyword (H42-5)
    pytest.param({"$schema": D7, "type": "object", "properties": {"format": {"enum": ["csv", "json"]},
                                                                    "maxContains": {"type": "integer", "minimum": 1}},
                  "additionalProperties": {"type": "string"}, "required": ["format"]},
                 "context.input has maxContains && [1000000].contains(context.input.maxContains)",
                 {"format": "csv", "maxContains": 1000000}, id="an argument named maxContains under draft-07"),
    # hostile review 43, H43-1: a `$ref` into a data value or onto a map of names, which the
    # validator reads as a schema in the root's dialect (H42-5 kept those values whole)
    pytest.param({"$schema": D7, "type": "object", "definitions": {"s": {"type": "string"}},
                  "examples": [{"$ref": "#/definitions/s", "const": "staging"}],
                  "properties": {"env": {"$ref": "#/examples/0"}}, "required": ["env"]},
                 'context.input.env != "staging"', {"env": "production"}, id="draft-07 $ref into examples"),
    pytest.param({"$schema": D7, "type": "object", "definitions": {"s": {"type": "string"}},
                  "properties": {"env": {"$ref": "#/properties/mode/default"},
                                 "mode": {"type": "object", "default": {"$ref": "#/definitions/s", "enum": ["staging"]}}},
                  "required": ["env"]},
                 'context.input.env != "staging"', {"env": "production"}, id="draft-07 $ref into a default"),
    pytest.param({"$schema": D7, "type": "object", "examples": [{"type": "object", "properties": {"dry": {}},
                                                                 "unevaluatedProperties": False}],
                  "properties": {"cfg": {"$ref": "#/examples/0"}}, "required": ["cfg"]},
                 "context.input.cfg has admin", {"cfg": {"admin": True}}, id="draft-07 $ref into examples (unevaluated)"),
    pytest.param({"$schema": D7, "type": "object", "definitions": {"unevaluatedProperties": False, "x": {}},
                  "properties": {"cfg": {"$ref": "#/definitions"}}, "required": ["cfg"]},
                 "context.input.cfg has admin && context.input.cfg.admin == true", {"cfg": {"admin": True}},
                 id="draft-07 $ref onto the definitions map"),
]


def _forwards(schema: dict, args: dict) -> bool:
    return violation(compile_schema(closed_world(schema)), args) is None


@pytest.mark.parametrize("schema, condition, call", UNENFORCED)
def test_no_proof_of_what_the_gateway_forwards(schema, condition, call):
    assert _forwards(schema, call)  # the premise: the gateway's own validator lets the call through
    cat = Catalog.from_tools([{"name": "t", "inputSchema": schema}])
    text = ('default deny;\npermit (principal, action == Action::"t", resource);\n'
            f'assert deny (principal, action == Action::"t", resource) when {{ {condition} }};\n')
    (r,) = verify(load_program(text, "p.mcpp"), timeout_ms=10000, session=typed_session(cat, 10000))
    assert r.status in ("fail", "unknown"), r.message
    if r.status == "fail":  # a counterexample is a call the gateway forwards
        params = r.to_dict()["counterexample"]["request"]["params"]
        assert _forwards(schema, params["arguments"]), params


def test_the_h4_permit_is_found_to_apply():
    """h4/p2.mcpp: a permit on `cmd` (declared by `then`) lets a raw run through."""
    cat = Catalog.from_tools([{"name": "run", "inputSchema": RUN}])
    text = ('default deny;\npermit (principal, action, resource) when { context.input has cmd && context.input.cmd == "ls" };\n'
            'permit (principal, action == Action::"run", resource) when { context.input.mode == "safe" };\n'
            'assert deny (principal, action == Action::"run", resource) when { context.input.mode == "raw" };\n')
    (r,) = verify(load_program(text, "p.mcpp"), timeout_ms=10000, session=typed_session(cat, 10000))
    assert r.status == "fail", r.message
    params = r.to_dict()["counterexample"]["request"]["params"]
    assert params["arguments"].get("cmd") == "ls" and _forwards(RUN, params["arguments"])


@pytest.mark.parametrize("schema", [
    DEPLOY, REFUND,
    # a property named like a data keyword is still a subschema
    {"type": "object", "properties": {"default": {"$schema": D4, "type": "string", "const": "staging"}}},
    {"type": "object", "$defs": {"const": {"$schema": D4, "const": "x"}}, "properties": {"a": {"$ref": "#/$defs/const"}}},
])
def test_a_nested_dialect_is_unmodelled(schema):
    assert unmodelled(closed_world(schema)) == "a subschema names its own $schema"


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"a": {"$schema": "https://json-schema.org/draft/2020-12/schema#", "type": "string"}}},
    {"$schema": D7, "type": "object", "properties": {"a": {"$schema": "http://json-schema.org/draft-07/schema", "type": "string"}}},
])
def test_a_nested_dialect_equal_to_the_roots_is_read(schema):
    assert unmodelled(schema) is None


def test_a_property_named_schema_is_not_a_dialect():
    schema = {"type": "object", "properties": {"$schema": {"type": "string"}},
              "default": {"$schema": D4}, "examples": [{"$schema": D4}]}
    assert unmodelled(schema) is None and root_view(schema).child("$schema").view.types == {"string"}


def test_a_draft_04_property_named_default_reads_as_anything():
    schema = {"type": "object", "properties": {"default": {"$schema": D4, "type": "string", "const": "staging"}}}
    assert root_view(schema).child("default").view.values is None


# what is still proved: `unevaluatedProperties` where every evaluating subschema is modelled
CLOSED = [
    {"type": "object", "properties": {"mode": {"type": "string"}}, "unevaluatedProperties": False},
    {"type": "object", "$defs": {"B": {"properties": {"mode": {"type": "string"}}}}, "allOf": [{"$ref": "#/$defs/B"}],
     "unevaluatedProperties": False},
]


@pytest.mark.parametrize("schema", CLOSED)
def test_unevaluated_properties_of_modelled_schemas_still_close(schema):
    cat = Catalog.from_tools([{"name": "t", "inputSchema": schema}])
    text = ('default deny;\npermit (principal, action == Action::"t", resource);\n'
            'assert deny (principal, action == Action::"t", resource) when { !(context.input has cmd) };\n'
            'assert deny (principal, action == Action::"t", resource) when { context.input has mode };\n')
    r1, r2 = verify(load_program(text, "p.mcpp"), timeout_ms=10000, session=typed_session(cat, 10000))
    # `cmd` can never be present (PASS is not expected of the first: calls without it exist)
    assert r2.status == "fail"
    text = ('default deny;\npermit (principal, action == Action::"t", resource);\n'
            'assert deny (principal, action == Action::"t", resource) when { context.input has cmd };\n')
    (r,) = verify(load_program(text, "p.mcpp"), timeout_ms=10000, session=typed_session(cat, 10000))
    assert r.status == "pass", r.message


# ---- mcpp check: no false "has no argument" / "is a string" ----------------------------------

@pytest.mark.parametrize("schema, condition", [
    (RUN, 'context.input has cmd && context.input.cmd like "*rm*"'),
    (EXPORT, "context.input has rows && context.input.rows > 100"),
    (EXPORT, "context.input has rows && context.input.rows in [1000000]"),
    (DEP, "context.input has limit && context.input.limit > 100"),
    (MIX, "context.input has limit && context.input.limit > 100"),
    (DEPLOY, "context.input.replicas > 100"),
    # (inside a subschema of another dialect nothing is known to be required: guarded)
    (REFUND, "context.input.order has amount && context.input.order.amount > 1000"),
    # a draft-07 root with a draft-04 object inside
    ({"$schema": D7, "type": "object", "properties": {"order": {"$schema": D4, "type": "object",
                                                                "properties": {"amount": {"type": "number"}}}}},
     "context.input has order && context.input.order has amount && context.input.order.amount > 1000"),
])
def test_check_reports_no_false_error(schema, condition):
    cat = Catalog.from_tools([{"name": "t", "inputSchema": schema}])
    src = f'default allow;\nforbid (principal, action == Action::"t", resource) when {{ {condition} }};\n'
    prog, base = check_source(src, "p.mcpp")
    assert [d for d in base if d.severity == "error"] == []
    errors = [d.message for d in validate(prog, cat) if d.severity == "error"]
    assert errors == []


def test_check_still_reports_an_argument_unevaluated_properties_forbids():
    cat = Catalog.from_tools([{"name": "t", "inputSchema": CLOSED[0]}])
    src = 'default allow;\nforbid (principal, action == Action::"t", resource) when { context.input has cmd };\n'
    prog, _ = check_source(src, "p.mcpp")
    assert any("has no argument 'cmd'" in d.message for d in validate(prog, cat))


# ---- H41-7: the refusal names only the keys refused ------------------------------------------

def test_an_unevaluated_refusal_names_only_the_unevaluated_keys():
    v = violation(compile_schema(closed_world(RUN)), {"mode": "safe", "cmd": "ls"})
    assert v is not None and "'cmd'" in v.message and "'mode'" not in v.message, v.message


# ---- differential: what the analyzer's view calls impossible, the gateway refuses ------------

KEYS = ["a", "b", "c"]
LEAF = st.sampled_from([{"type": "string"}, {"type": "integer"}, {"const": "x"}, {"type": "integer", "maximum": 5},
                        {"$schema": D4, "const": "x"}, {"$schema": D4, "type": "integer", "exclusiveMaximum": 5},
                        {"$schema": D7, "$ref": "#/$defs/S", "maximum": 5}])
PROPS = st.dictionaries(st.sampled_from(KEYS), LEAF, max_size=2).map(lambda p: {"properties": p})


@st.composite
def schemas(draw):
    s: dict = {"type": "object", "$defs": {"S": {"type": "integer"}}, **draw(PROPS)}
    for key in draw(st.lists(st.sampled_from(["if", "dependentSchemas", "allOf-anyOf", "allOf", "ref"]), max_size=2,
                             unique=True)):
        if key == "if":
            s["if"] = {"properties": {"a": {"const": "x"}}, "required": ["a"]}
            s["then"] = draw(PROPS)
            if draw(st.booleans()):
                s["else"] = draw(PROPS)
        elif key == "dependentSchemas":
            s["dependentSchemas"] = {draw(st.sampled_from(KEYS)): draw(PROPS)}
        elif key == "allOf-anyOf":
            s["allOf"] = [{"anyOf": [draw(PROPS), draw(PROPS)]}]
        elif key == "allOf":
            s["allOf"] = [draw(PROPS)]
        else:
            s["$defs"]["R"] = draw(PROPS)
            s["$ref"] = "#/$defs/R"
    s["unevaluatedProperties"] = draw(st.sampled_from([False, {"type": "string"}, {"type": "integer"}]))
    return s


VALUES = st.sampled_from(["x", "y", 3, 7, 500, True])


@given(schemas(), st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=3))
@settings(max_examples=300, deadline=None)
def test_what_the_view_rules_out_the_gateway_refuses(schema, args):
    # (the analysis assumes nothing of a tool whose schema switches dialect, `unmodelled`;
    # `mcpp check` reads the view, which must hold for it too)
    view = root_view(closed_world(schema))
    impossible = False
    for k, v in args.items():
        ch = view.child(k)
        if ch.status == "absent":
            impossible = True
            continue
        kind = "string" if isinstance(v, str) else "boolean" if isinstance(v, bool) else "number"
        if not ch.view.may_be(kind):
            impossible = True
        values = ch.view.values
        if values is not None and not any(type(v) is type(x) and v == x for x in values):
            impossible = True
    if impossible:
        assert not _forwards(schema, args), (schema, args)
