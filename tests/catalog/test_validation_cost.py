"""Checking a call against its tool's schema costs what the call's size says, not what its
errors or its items' pairings say (hostile review 18, F5 and F9): jsonschema's own
`uniqueItems` compared unhashable items pairwise (a 43 kB array of objects: 32 s), and its
`anyOf`/`oneOf` built every error of every branch, each message holding the whole
instance, and `check` weighed them all (a 0.2 MB array under a four-way anyOf: 16.7 s) —
on the gateway's event loop. The replacements (catalog/conformance.py) give the stock
keywords' verdicts, which the properties here hold with jsonschema itself as the oracle.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings, strategies as st
from jsonschema import Draft202012Validator
from jsonschema._utils import equal, uniq

from mcpp.catalog.admission import admit, tool_checker
from mcpp.catalog.conformance import SchemaCache, compile_schema

SCALARS = st.none() | st.booleans() | st.sampled_from([0, 1, -1, 0.0, 1.0, 2.5]) | st.sampled_from(["", "a", "1", "true"])
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=2),
                    max_leaves=6)


def _pairwise_unique(items) -> bool:
    """The keyword's definition, with jsonschema's own equality, pair by pair (what
    jsonschema's `uniq` falls back to; its sorted shortcut misses a repeat that sorting
    leaves apart, such as [[1], [true], [1]]: hostile review 20, F2 — mcpp refuses it)."""
    return not any(equal(a, b) for i, a in enumerate(items) for b in items[i + 1:])


@settings(max_examples=400, deadline=None)
@given(st.lists(JSON, max_size=6))
def test_unique_items_agrees_with_jsonschemas_equality(items):
    """True is not 1, 1 is 1.0, [1] is [1.0], {"a": 1} is {"a": 1.0}: jsonschema's `equal`."""
    ours = compile_schema({"type": "array", "uniqueItems": True})
    assert ours.is_valid(items) == _pairwise_unique(items), items


@pytest.mark.parametrize("items", [[[1], [True], [1]], [[0], [False], [0.0]], [[1, "a"], [True, "a"], [1, "a"]]])
def test_a_repeat_jsonschemas_sorted_shortcut_misses_is_refused(items):
    assert uniq(items)  # jsonschema's keyword would pass it
    assert not compile_schema({"type": "array", "uniqueItems": True}).is_valid(items)


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"s": {"$schema": "https://json-schema.org/draft/2020-12/schema", "pattern": "^(a|a)+$"}}},
    {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
     "properties": {"s": {"type": "string", "pattern": "^(a|a)+$"}, "child": {"$ref": "#"}}},
], ids=["nested-$schema", "root-$schema-reached-by-$ref"])
def test_every_subschema_is_checked_with_mcpps_keywords(schema):
    """A subschema naming its `$schema`, or the root reached again through `$ref: "#"`,
    switched jsonschema to its stock class: Python `re` (a 26-byte argument took 8.8 s on
    the gateway's event loop), pairwise `uniqueItems`, unbounded `anyOf` (hostile review 20, F1)."""
    checker = tool_checker(SchemaCache(), [{"inputSchema": schema}], "t")
    evil = "a" * 28 + "!"  # (Python's `re`: about 36 s; RE2: microseconds)
    t0 = time.perf_counter()
    refusal, _ = admit(checker, "t", {"s": evil, "child": {"s": evil}} if "child" in str(schema) else {"s": evil})
    assert refusal is not None and refusal["pointer"].endswith("/pattern")
    assert time.perf_counter() - t0 < 3.0


BRANCHES = [
    {"type": "array", "items": {"type": "string"}},
    {"type": "array", "items": {"type": "integer"}, "maxItems": 2},
    {"type": "object", "required": ["a"]},
    {"type": "string", "minLength": 1},
    {"type": "number", "minimum": 0},
    {"type": "null"},
    {"const": True},
]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["anyOf", "oneOf"]), st.lists(st.sampled_from(BRANCHES), min_size=1, max_size=4), JSON)
def test_any_of_and_one_of_agree_with_jsonschema(keyword, branches, instance):
    schema = {keyword: branches}
    ours = compile_schema(schema)
    stock = Draft202012Validator(schema)
    assert ours.is_valid(instance) == stock.is_valid(instance), (schema, instance)
    if not stock.is_valid(instance):
        assert {e.validator for e in ours.iter_errors(instance)} == {e.validator for e in stock.iter_errors(instance)}


UNEVALUATED = [
    {"type": "array", "prefixItems": [{"type": "integer"}], "unevaluatedItems": False},
    {"type": "array", "prefixItems": [{"type": "integer"}], "unevaluatedItems": {"type": "string"}},
    {"type": "array", "anyOf": [{"prefixItems": [{"type": "string"}]}, {"items": {"type": "integer"}}], "unevaluatedItems": False},
    {"type": "array", "contains": {"type": "null"}, "unevaluatedItems": {"type": "boolean"}},
    {"type": "object", "properties": {"a": {"type": "integer"}}, "unevaluatedProperties": False},
    {"type": "object", "oneOf": [{"properties": {"a": {}}, "required": ["a"]}, {"properties": {"b": {}}, "required": ["b"]}],
     "unevaluatedProperties": {"type": "string"}},
    {"type": "object", "allOf": [{"$ref": "#/$defs/a"}], "$defs": {"a": {"properties": {"a": {"const": 1}}}},
     "unevaluatedProperties": False},
]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(UNEVALUATED), JSON)
def test_unevaluated_keywords_agree_with_jsonschema(schema, instance):
    assert compile_schema(schema).is_valid(instance) == Draft202012Validator(schema).is_valid(instance), (schema, instance)


ARRAY_OF_STRINGS = {"type": "array", "items": {"type": "string"}}
# (name, schema of the one argument `x`, its value, the refusal's pointer or None)
COSTLY = [
    ("300k wrong items", ARRAY_OF_STRINGS, list(range(300_000)), "/properties/x/items/type"),
    ("anyOf of four forms over 100k items", {"anyOf": [ARRAY_OF_STRINGS, {"type": "array", "items": {"type": "boolean"}},
                                                       {"type": "array", "items": {"type": "null"}},
                                                       {"type": "array", "items": {"type": "object"}}]},
     list(range(100_000)), "/properties/x/anyOf"),
    ("oneOf of three forms over 100k items", {"oneOf": [ARRAY_OF_STRINGS, {"type": "array", "items": {"type": "boolean"}},
                                                        {"type": "array", "items": {"type": "null"}}]},
     list(range(100_000)), "/properties/x/oneOf"),
    ("uniqueItems over 4000 objects", {"type": "array", "uniqueItems": True, "items": {"type": "object"}},
     [{"k": i} for i in range(4000)], None),
    ("uniqueItems over 4000 objects, one repeated", {"type": "array", "uniqueItems": True},
     [{"k": i} for i in range(4000)] + [{"k": 0.0}], "/properties/x/uniqueItems"),
    ("unevaluatedItems beside items over 40k items", {"type": "array", "items": {"type": "integer"}, "unevaluatedItems": False},
     list(range(40_000)), None),
    ("unevaluatedProperties over 20k properties", {"type": "object", "allOf": [{"additionalProperties": {"type": "integer"}}],
                                                   "unevaluatedProperties": False}, {f"k{i}": i for i in range(20_000)}, None),
]


@pytest.mark.parametrize("schema,value,pointer", [c[1:] for c in COSTLY], ids=[c[0] for c in COSTLY])
def test_a_costly_call_is_checked_in_bounded_time(schema, value, pointer):
    checker = tool_checker(SchemaCache(), [{"inputSchema": {"type": "object", "properties": {"x": schema}}}], "t")
    t0 = time.perf_counter()
    refusal, _ = admit(checker, "t", {"x": value})
    took = time.perf_counter() - t0
    assert (refusal["pointer"].removeprefix("/tools/t/schema") if refusal else None) == pointer, refusal
    # a safety bound, not a speed target (bench/ holds those): each took 6 to 32 s before
    assert took < 3.0, took
