"""The typed-call checker on its own (catalog/conformance.py), as properties: on schemas
drawn from the JSON Schema subset real MCP servers use (types, enum, required, nested
objects, arrays, minimum/maximum, pattern, lengths), the gateway accepts exactly what the
stock `jsonschema` validator accepts (with undeclared top-level arguments refused), its
RE2 keywords agree with Python's `re` on ordinary patterns, a refusal's pointer resolves
in the schema, and its message never carries the value that was sent."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

import pytest

from mcpp.catalog.conformance import SchemaCache, SchemaUnusable, check, closed_world

PATTERNS = ["^[a-z]+$", "^ch_", "[0-9]", "^acme/[A-Za-z0-9_.-]+$", "^(dev|staging)$", "x{2,3}", "^$"]
TYPES = ["string", "number", "integer", "boolean", "null"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(alphabet="abcxyz_/019 ", max_size=8),
)
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["a", "b", "c", "path", "n"]), inner, max_size=3)), max_leaves=8)


@st.composite
def leaf_schema(draw):
    t = draw(st.sampled_from(TYPES))
    s: dict = {"type": t}
    if t == "string":
        if draw(st.booleans()):
            s["pattern"] = draw(st.sampled_from(PATTERNS))
        if draw(st.booleans()):
            s["maxLength"] = draw(st.integers(0, 6))
        if draw(st.booleans()):
            s["enum"] = draw(st.lists(st.text(alphabet="abc", max_size=3), min_size=1, max_size=3, unique=True))
    elif t in ("number", "integer"):
        if draw(st.booleans()):
            s["minimum"] = draw(st.integers(-5, 5))
        if draw(st.booleans()):
            s["maximum"] = draw(st.integers(5, 1000))
    return s


schemas = st.recursive(leaf_schema(), lambda inner: st.one_of(
    st.builds(lambda items: {"type": "array", "items": items}, inner),
    st.builds(lambda props, req: {"type": "object", "properties": props, "required": sorted(set(req) & set(props))},
              st.dictionaries(st.sampled_from(["a", "b", "c", "path", "n"]), inner, min_size=1, max_size=3),
              st.lists(st.sampled_from(["a", "b", "c", "path", "n"]), max_size=3)),
), max_leaves=6)

tool_schemas = st.builds(lambda props, req: {"type": "object", "properties": props, "required": sorted(set(req) & set(props))},
                         st.dictionaries(st.sampled_from(["a", "b", "c", "path", "n"]), schemas, min_size=1, max_size=3),
                         st.lists(st.sampled_from(["a", "b", "c", "path", "n"]), max_size=3))


def resolve(schema, pointer: str):
    node = schema
    for tok in pointer.split("/")[1:]:
        tok = tok.replace("~1", "/").replace("~0", "~")
        node = node[int(tok)] if isinstance(node, list) else node[tok]
    return node


def strings_in(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_in(v)]
    return []


CACHE = SchemaCache()


@settings(max_examples=300)
@given(tool_schemas, st.one_of(json_values, st.dictionaries(st.sampled_from(["a", "b", "c", "path", "n", "zz"]), json_values, max_size=4)))
def test_accepts_exactly_what_jsonschema_accepts(schema, args):
    closed = closed_world(schema)
    stock = Draft202012Validator(closed).is_valid(args)
    v = check(CACHE.get(schema), args)
    assert (v is None) == stock, (schema, args, v)
    if v is not None:
        assert resolve(closed, v.pointer) is not None
        schema_text = json.dumps(closed)
        for s in strings_in(args):
            if len(s) >= 4 and s not in schema_text and s not in ("true", "null"):
                assert s not in v.message, (s, v.message)


def test_undeclared_arguments_and_open_schemas():
    declared = {"type": "object", "properties": {"a": {"type": "string"}}}
    v = check(CACHE.get(declared), {"a": "x", "b": 1})
    assert v is not None and v.pointer == "/additionalProperties" and "'b'" in v.message
    # a schema that says anything about other properties is taken as it is
    for open_ in ({**declared, "additionalProperties": True}, {**declared, "patternProperties": {"^b": {"type": "integer"}}},
                  {"allOf": [declared]}):
        assert check(CACHE.get(open_), {"a": "x", "b": 1}) is None, open_


def test_unusable_schemas_are_refused():
    for bad, why in (
        ({"type": "objekt"}, "not a valid JSON Schema"),
        ({"$schema": "https://example.com/my-dialect"}, "unsupported JSON Schema dialect"),
        ({"type": "object", "properties": {"a": {"type": "string", "pattern": "(?=x)y"}}}, "linear time"),
        ({"type": "object", "unevaluatedProperties": False, "patternProperties": {"^a": {}}}, "not supported"),
        ([], "not a JSON object"),
        # the metaschema's `regex` format check raised OverflowError out of Python's `re`
        # (hostile review 31, H31-2), for `pattern` and for a `patternProperties` key alike
        ({"type": "object", "properties": {"a": {"type": "string", "pattern": "a{4294967296}"}}}, "not a valid JSON Schema"),
        ({"type": "object", "patternProperties": {"a{4294967296}": {}}}, "not a valid JSON Schema"),
    ):
        try:
            CACHE.get(bad)
        except SchemaUnusable as e:
            assert why in str(e), (bad, e)
        else:
            raise AssertionError(f"{bad} was accepted")


@pytest.mark.parametrize("target", ["#/title", "#/$comment", "#/properties/a/description"])
def test_a_reference_to_a_value_that_is_no_schema_refuses_the_calls_that_reach_it(target):
    """hostile review 31, H31-2: `"$ref": "#/title"` passes the metaschema (a URI reference,
    to a string), and jsonschema raised AttributeError when a call reached it: `mcpp eval`
    exited 3, the API raised, the gateway logged an internal error per call. A call that
    reaches it cannot be checked (SchemaUnusable: refused); one that does not is checked."""
    schema = {"type": "object", "title": "x", "$comment": "y",
              "properties": {"a": {"$ref": target, "description": "z"}}}
    validator = CACHE.get(schema)
    assert check(validator, {}) is None
    with pytest.raises(SchemaUnusable, match="refers to a value that is not a schema"):
        check(validator, {"a": 1})


def test_dialects_and_catastrophic_patterns():
    draft7 = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
              "properties": {"n": {"type": "number", "exclusiveMaximum": 10}}}
    assert check(CACHE.get(draft7), {"n": 10}) is not None and check(CACHE.get(draft7), {"n": 9}) is None
    # a pattern Python's backtracking `re` takes exponential time on runs in linear time on RE2
    evil = {"type": "object", "properties": {"s": {"type": "string", "pattern": "^(a+)+$"}}}
    v = check(CACHE.get(evil), {"s": "a" * 50_000 + "!"})
    assert v is not None and v.pointer == "/properties/s/pattern"
    # a lone surrogate in the caller's string is not a match (and not a crash)
    assert check(CACHE.get(evil), {"s": "\ud800"}) is not None


_KEYWORD_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2, 3), st.sampled_from(["string", "object", "objekt", "^a", "#"]),
              st.floats(-2, 3, allow_nan=False)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(
        ["type", "enum", "required", "properties", "items", "minLength", "uniqueItems", "anyOf", "const", "a", "k"]),
        inner, max_size=3)),
    max_leaves=10)
_SCHEMAS = st.dictionaries(st.sampled_from(["type", "enum", "required", "properties", "items", "minLength", "maximum",
                                            "anyOf", "oneOf", "allOf", "not", "uniqueItems", "const", "pattern", "$defs"]),
                           _KEYWORD_VALUES, max_size=4)


@given(_SCHEMAS, st.sampled_from(["http://json-schema.org/draft-04/schema#", "http://json-schema.org/draft-07/schema#",
                                  "https://json-schema.org/draft/2020-12/schema"]))
@settings(max_examples=300, deadline=None)
def test_the_metaschema_check_has_jsonschemas_verdicts(schema, dialect):
    """hostile review 31, H31-4: the metaschema check runs with mcpp's bounded keywords (a
    3,000-object `enum` took 25 s with jsonschema's pairwise `uniqueItems`); it must accept
    and refuse exactly the schemas jsonschema's own `check_schema` does."""
    from jsonschema import validators
    from jsonschema.exceptions import SchemaError

    from mcpp.catalog.conformance import _check_schema

    schema = {"$schema": dialect, **schema}
    base = validators.validator_for(schema)
    try:
        base.check_schema(schema)
        stock = None
    except SchemaError as e:
        stock = list(e.path)
    try:
        _check_schema(base, schema)
        ours = None
    except SchemaError as e:
        ours = list(e.path)
    assert (stock is None) == (ours is None), (stock, ours)


def test_an_enum_of_objects_is_not_compared_pairwise(monkeypatch):
    """The H31-4 shape: 4,000 objects under a draft-04 `enum` (25 s before: jsonschema's
    `uniqueItems` compared the 8 million pairs). No pair is compared now; checked right."""
    from jsonschema import _utils

    pairs = []
    real = _utils.equal
    monkeypatch.setattr(_utils, "equal", lambda a, b: pairs.append(1) or real(a, b))
    schema = {"$schema": "http://json-schema.org/draft-04/schema#", "type": "object",
              "properties": {"a": {"enum": [{"k": i, "t": "A"} for i in range(4000)]}}}
    validator = SchemaCache().get(schema)
    assert len(pairs) < 4000, len(pairs)
    assert check(validator, {"a": {"k": 1, "t": "A"}}) is None and check(validator, {"a": {"k": 1, "t": "B"}}) is not None


D7_URI = "http://json-schema.org/draft-07/schema#"
D2019 = "https://json-schema.org/draft/2019-09/schema"


@pytest.mark.parametrize("schema, args, refused", [
    # hostile review 42, H42-2: draft-04/06/07 have no `unevaluatedProperties`; the gateway
    # enforced it there (as jsonschema's Draft7Validator does not)
    ({"$schema": D7_URI, "type": "object", "properties": {"a": {"type": "string"}}, "unevaluatedProperties": False},
     {"a": "x", "b": 1}, False),
    ({"type": "object", "properties": {"a": {"type": "string"}}, "unevaluatedProperties": False}, {"a": "x", "b": 1}, True),
    ({"$schema": D2019, "type": "object",
      "properties": {"xs": {"type": "array", "items": [{"type": "string"}], "unevaluatedItems": False}}}, {"xs": ["a"]}, False),
])
def test_each_dialect_keeps_its_own_unevaluated_keywords(schema, args, refused):
    from jsonschema import validators

    from mcpp.catalog.conformance import check, compile_schema

    assert (check(compile_schema(schema), args) is not None) is refused
    assert validators.validator_for(schema)(schema).is_valid(args) is not refused  # (as jsonschema reads the dialect)


def test_a_draft_07_tool_with_an_ignored_unevaluated_keyword_is_still_closed():
    """hostile review 43, H43-2: once draft-07's validator ignored `unevaluatedProperties`
    (H42-2), `closed_world` still took it for a word on other arguments and left the tool
    open: an undeclared `admin` reached the upstream."""
    from mcpp.catalog.conformance import check, closed_world, compile_schema

    schema = {"$schema": D7_URI, "type": "object", "properties": {"a": {"type": "string"}}, "unevaluatedProperties": False}
    assert check(compile_schema(closed_world(schema)), {"a": "x", "admin": True}) is not None
    assert check(compile_schema(closed_world(schema)), {"a": "x"}) is None
