"""`catalog.defaults`: which declared defaults the gateway fills into a call, and which it
does not (each a caveat). Tables over the shapes that matter — top level, nested, `$ref`,
`allOf`, pydantic's `X | None`, the combinators that make a default ambiguous, null,
defaults that do not conform to their own schema — and the schemas the official Python
SDK really publishes for optional arguments."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Literal, Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from mcpp.catalog.defaults import caveats, fill, plan
from mcpp.catalog.schema import follow, root_view

NUM5000 = {"type": "number", "default": 5000}
OPTS = {"type": "object", "properties": {"mode": {"type": "string", "default": "safe"}, "depth": {"type": "integer"}}}


def obj(props: dict, **extra) -> dict:
    return {"type": "object", "properties": props, **extra}


# (id, schema, arguments, the filled arguments)
FILLS = [
    ("top-level", obj({"amount": NUM5000, "id": {"type": "string"}}), {"id": "c"}, {"id": "c", "amount": 5000}),
    ("present-kept", obj({"amount": NUM5000}), {"amount": 7}, {"amount": 7}),
    ("null-default-not-filled", obj({"p": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}}), {}, {}),
    ("explicit-null-kept", obj({"amount": NUM5000}), {"amount": None}, {"amount": None}),
    ("optional-with-default", obj({"e": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": "y"}}), {}, {"e": "y"}),
    ("falsy-defaults", obj({"a": {"default": 0}, "b": {"default": False}, "c": {"default": ""}, "d": {"default": []}}),
     {}, {"a": 0, "b": False, "c": "", "d": []}),
    ("nested-present", obj({"opts": OPTS}), {"opts": {}}, {"opts": {"mode": "safe"}}),
    ("nested-absent-not-created", obj({"opts": OPTS}), {}, {}),
    ("nested-wrong-type-left", obj({"opts": OPTS}), {"opts": "x"}, {"opts": "x"}),
    ("nested-default-then-inside", obj({"opts": {**OPTS, "default": {}}}), {}, {"opts": {"mode": "safe"}}),
    ("ref-with-default-sibling", {"$defs": {"O": OPTS}, **obj({"o": {"$ref": "#/$defs/O", "default": {"depth": 1}}})},
     {}, {"o": {"depth": 1, "mode": "safe"}}),
    ("default-behind-ref", {"$defs": {"Amt": NUM5000}, **obj({"a": {"$ref": "#/$defs/Amt"}})}, {}, {"a": 5000}),
    ("ref-and-target-agree", {"$defs": {"Amt": NUM5000}, **obj({"a": {"$ref": "#/$defs/Amt", "default": 5000}})},
     {}, {"a": 5000}),
    ("root-behind-ref", {"$ref": "#/$defs/Args", "$defs": {"Args": obj({"a": NUM5000})}}, {}, {"a": 5000}),
    ("allOf-member", {"type": "object", "allOf": [obj({"a": NUM5000}), obj({"b": {"default": "x"}})]}, {},
     {"a": 5000, "b": "x"}),
    ("optional-model-present", {"$defs": {"O": OPTS}, **obj({"o": {"anyOf": [{"$ref": "#/$defs/O"}, {"type": "null"}],
                                                                  "default": None}})},
     {"o": {}}, {"o": {"mode": "safe"}}),
    ("optional-model-null", {"$defs": {"O": OPTS}, **obj({"o": {"anyOf": [{"$ref": "#/$defs/O"}, {"type": "null"}],
                                                               "default": None}})},
     {"o": None}, {"o": None}),
    ("pattern-without-default", obj({"amount": NUM5000}, patternProperties={"^a": {"type": "number"}}), {},
     {"amount": 5000}),
    ("recursive", {"$defs": {"N": obj({"name": {"default": "n"}, "child": {"$ref": "#/$defs/N"}})},
                   "$ref": "#/$defs/N"},
     {"child": {"child": {}}}, {"child": {"child": {"name": "n"}, "name": "n"}, "name": "n"}),
    ("a-list-is-not-filled", obj({"a": NUM5000}), [1], [1]),
    ("no-arguments", obj({"a": NUM5000}), None, None),
    # a default that does not conform is filled all the same: the gateway re-checks the
    # filled call and refuses it (test_admit below)
    ("wrong-typed-default", obj({"amount": {"type": "number", "default": "5000"}}), {}, {"amount": "5000"}),
    # a recursive default whose filling ends is filled, inside itself as far as it goes
    ("recursive-default-that-ends", {"$defs": {"N": obj({"name": {"default": "n"},
                                                         "child": {"$ref": "#/$defs/N", "default": {"child": None}}})},
                                     "$ref": "#/$defs/N"},
     {}, {"name": "n", "child": {"child": None, "name": "n"}}),
    # an endless one is not (AMBIGUOUS below), while the others beside it still are
    ("self-default-beside-a-default", obj({"a": {"$ref": "#", "default": {}}, "d": {"type": "integer", "default": 1}}),
     {"a": {}}, {"a": {"d": 1}, "d": 1}),
]

# (id, schema, arguments: nothing is filled, the caveat's argument path, words in its reason)
AMBIGUOUS = [
    # hostile review 32, H32-6: pydantic's `dict[str, Opts]` (and a patternProperties entry):
    # a server fills the defaults inside each value, the plan (by property name) cannot
    ("map-values", {"$defs": {"Opts": obj({"mode": {"type": "string", "default": "dry-run"}})},
                    **obj({"o": {"type": "object", "additionalProperties": {"$ref": "#/$defs/Opts"}}})},
     ("o",), "does not declare by name"),
    ("pattern-values", obj({"o": {"type": "object", "patternProperties": {
        "^j": obj({"limit": {"type": "integer", "default": 10}})}}}), ("o",), "does not declare by name"),
    ("only-in-a-branch", obj({"k": {"anyOf": [{"const": "a", "default": "a"}, {"const": "b"}]}}), ("k",), "conditional"),
    ("branches-disagree", obj({"k": {"default": "a", "anyOf": [{"type": "string", "default": "b"}, {"type": "null"}]}}),
     ("k",), "different defaults"),
    ("ref-and-target-disagree", {"$defs": {"Amt": NUM5000}, **obj({"a": {"$ref": "#/$defs/Amt", "default": 1}})},
     ("a",), "different defaults"),
    ("if-then", {**obj({"mode": {"type": "string", "default": "safe"}, "fast": {"type": "boolean"}}),
                 "if": obj({"fast": {"const": True}}, required=["fast"]), "then": obj({"mode": {"default": "fast"}})},
     ("mode",), "different defaults"),
    ("dependentSchemas", {**obj({"a": {"type": "string"}, "b": {"type": "number"}}),
                          "dependentSchemas": {"a": obj({"b": {"default": 1}})}}, ("b",), "conditional"),
    ("two-object-branches", obj({"o": {"anyOf": [obj({"m": {"default": 1}}), obj({"m": {"default": 2}})]}}),
     ("o", "m"), "conditional"),
    ("pattern-disagrees", obj({"amount": NUM5000}, patternProperties={"^a": {"default": 1}}), ("amount",),
     "different defaults"),
    ("oneOf-at-the-root", {"type": "object", "oneOf": [obj({"a": {"default": 1}}), obj({"b": {"default": 2}})]},
     ("a",), "conditional"),
    ("array-items", obj({"xs": {"type": "array", "items": OPTS}}), ("xs",), "array items"),
    ("not-a-local-ref", obj({"a": {"$ref": "https://example.com/amount.json", "default": 5}}), ("a",), "cannot be resolved"),
    # hostile review 26, F7: filling these never ends (the default's object is filled with
    # the same default again), which refused every call; they are not filled
    ("self-default", obj({"a": {"$ref": "#", "default": {}}}), ("a",), "without end"),
    ("linked-list", {"$defs": {"n": obj({"next": {"$ref": "#/$defs/n", "default": {"v": 0}}, "v": {"type": "integer"}})},
                     "$ref": "#/$defs/n"}, ("next",), "without end"),
    ("two-step-cycle", {"$defs": {"A": obj({"b": {"$ref": "#", "default": {}}})},
                        **obj({"a": {"$ref": "#/$defs/A", "default": {}}})}, ("a",), "without end"),
    ("cycle-inside-the-default", {"$defs": {"B": obj({"c": {"$ref": "#", "default": {}}})},
                                  **obj({"a": {"type": "object", "properties": {"x": {"$ref": "#/$defs/B"}},
                                               "default": {"x": {}}}})}, ("a",), "without end"),
]


@pytest.mark.parametrize("schema,args,want", [c[1:] for c in FILLS], ids=[c[0] for c in FILLS])
def test_fill(schema, args, want):
    snapshot = (copy.deepcopy(schema), copy.deepcopy(args))
    out = fill(schema, args)
    assert out == want
    assert (schema, args) == snapshot  # pure: neither the schema nor the call is changed
    if want == args:
        assert out is args  # nothing filled: the very same object
    else:  # what was filled is a copy: changing the call never changes the schema
        json.dumps(out)
        for v in out.values():
            if isinstance(v, (dict, list)):
                v.append(1) if isinstance(v, list) else v.update(x=1)
        assert schema == snapshot[0]


@pytest.mark.parametrize("schema,path,words", [c[1:] for c in AMBIGUOUS], ids=[c[0] for c in AMBIGUOUS])
def test_ambiguous_defaults_are_not_filled_and_are_caveats(schema, path, words):
    args = {"o": {}, "xs": [{}]} if path[0] in ("o", "xs") else {}
    assert fill(schema, args) == args
    found = [c for c in caveats(schema) if c.path == path]
    assert found and found[0].kind == "unfilled" and words in found[0].reason, caveats(schema)
    # the analyzer's view: the argument stays possibly absent
    info = follow(schema, path, "t")
    assert info.view is not None and info.optional_at is not None


def test_a_filled_default_is_always_present_for_the_analyzer():
    schema = {"$defs": {"O": OPTS}, **obj({"amount": NUM5000, "o": {"anyOf": [{"$ref": "#/$defs/O"}, {"type": "null"}],
                                                                    "default": None}})}
    root = root_view(schema)
    assert root.child("amount").required and root.child("amount").filled
    assert not root.child("o").required  # a null default: absent stays absent
    assert root.child("o").view.child("mode").required  # filled whenever `o` is an object
    assert not root.child("o").view.child("depth").required
    assert follow(schema, ("amount",), "t").optional_at is None
    assert follow(schema, ("o", "mode"), "t").optional_at == 0


@pytest.mark.parametrize("schema,bad", [
    (obj({"amount": {"type": "number", "default": "5000"}}), "does not conform"),
    (obj({"amount": {"type": "number", "maximum": 1000, "default": 5000}}), "does not conform"),
    ({"$defs": {"N": {"type": "number", "maximum": 10}}, **obj({"n": {"$ref": "#/$defs/N", "default": 50}})},
     "does not conform"),
    (obj({"s": {"type": "string", "default": "\ud800"}}), "not JSON text"),
])
def test_a_default_that_cannot_be_run_is_a_refused_caveat(schema, bad):
    (c,) = caveats(schema)
    assert c.kind == "refused" and bad in c.reason and "refuses every call that omits it" in c.reason


def test_plans_are_made_once_per_schema():
    schema = obj({"amount": NUM5000})
    assert plan(schema) is plan(schema)
    assert plan(copy.deepcopy(schema)) is not plan(schema)


# ---- what the official Python SDK publishes ---------------------------------------------------


class Opts(BaseModel):
    mode: str = "safe"
    limit: int = 10


def _sdk_schema() -> dict:
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("shapes")

    @server.tool()
    def shapes(a: str, b: str | None = None, c: Optional[str] = None, d: str = "x", e: str | None = "y",
               f: str | None = ..., g: float = 5000, h: Opts = Opts(), i: Opts | None = None,
               j: list[Opts] = [], k: Literal["a", "b"] = "a", m: dict = {}) -> str:  # noqa: B006 (the SDK's own idiom)
        return repr((a, b, c, d, e, f, g, h, i, j, k, m))

    tools = asyncio.run(server.list_tools())
    (tool,) = tools
    return json.loads(json.dumps(tool.input_schema if hasattr(tool, "input_schema") else tool.inputSchema))


def test_the_python_sdk_shapes():
    schema = _sdk_schema()
    assert schema["properties"]["b"] == {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "title": "B"}
    filled = fill(schema, {"a": "s", "f": None})
    assert filled == {"a": "s", "f": None, "d": "x", "e": "y", "g": 5000, "h": {"mode": "safe", "limit": 10},
                      "j": [], "k": "a", "m": {}}  # b, c (null defaults) and i stay absent
    assert fill(schema, {"a": "s", "f": "t", "i": {}, "h": {"limit": 3}})["i"] == {"mode": "safe", "limit": 10}
    assert fill(schema, {"a": "s", "f": "t", "h": {"limit": 3}})["h"] == {"limit": 3, "mode": "safe"}
    assert [(c.path, c.kind) for c in caveats(schema)] == [(("j",), "unfilled")]  # defaults inside list items


def _doubling(levels: int) -> dict:
    """Each level defaults two object properties to `{}` through a reference to the next:
    filling a call that omits them all would add 2^levels objects (hostile12 finding 1)."""
    defs = {f"l{i}": {"type": "object", "properties": {"x": {"$ref": f"#/$defs/l{i + 1}", "default": {}},
                                                      "y": {"$ref": f"#/$defs/l{i + 1}", "default": {}}}}
            for i in range(levels)}
    defs[f"l{levels}"] = {"type": "object"}
    return {"type": "object", "$defs": defs, "properties": {"x": {"$ref": "#/$defs/l0", "default": {}}}}


def test_filling_is_bounded_where_references_make_defaults_grow():
    from mcpp.catalog.admission import admit, tool_checker
    from mcpp.catalog.conformance import SchemaCache
    from mcpp.catalog.defaults import MAX_FILLED_VALUES, FillTooLarge, caveats, fill

    small = fill(_doubling(4), {})  # the call and 2^5 - 1 filled objects: filled as declared
    assert json.dumps(small).count("{") == 32
    with pytest.raises(FillTooLarge):
        fill(_doubling(20), {})  # would be 2^21 objects (16 MB from a 2-byte call)
    checker = tool_checker(SchemaCache(), [{"inputSchema": _doubling(20)}], "t")
    refusal, args = admit(checker, "t", {})
    assert refusal is not None and refusal["kind"] == "invalid_default" and str(MAX_FILLED_VALUES) in refusal["reason"]
    assert args == {}
    found = caveats(_doubling(20))
    assert found and found[0].kind == "refused" and found[0].path == ("x",) and str(MAX_FILLED_VALUES) in found[0].reason


# ---- recursive defaults: filled as far as they end, never endlessly ------------------------------

_KEYS = ("p", "q")
_OBJECT_DEFAULTS = ({}, {"p": {}}, {"q": None}, {"p": {"q": {}}})


@st.composite
def _recursive_schemas(draw):
    """Up to three object definitions that refer to each other (and to themselves) through
    properties `p` and `q`, each maybe with an object default, and a scalar `s` default:
    the shapes where filling inside a default just filled in can start over."""
    n = draw(st.integers(1, 3))
    defs = {}
    for i in range(n):
        props: dict = {}
        for k in _KEYS:
            if draw(st.booleans()):
                prop: dict = {"$ref": f"#/$defs/D{draw(st.integers(0, n - 1))}"}
                if draw(st.booleans()):
                    prop["default"] = draw(st.sampled_from(_OBJECT_DEFAULTS))
                props[k] = prop
        if draw(st.booleans()):
            props["s"] = {"type": "string", "default": "z"}
        defs[f"D{i}"] = obj(props)
    return {"$defs": defs, "$ref": "#/$defs/D0"}


_calls = st.recursive(st.just({}), lambda inner: st.dictionaries(st.sampled_from(_KEYS), inner, max_size=2),
                      max_leaves=6)


class _Endless(Exception):
    pass


def _naive_fill(schema: dict, node: dict, value, depth: int = 0):
    """The reference: fill straight from the schema, inside what was just filled too, with
    no plan at all (and no end where the schema has none)."""
    if depth > 30:
        raise _Endless
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    if not isinstance(value, dict):
        return value
    out = dict(value)
    props = node.get("properties", {})
    for k, sub in props.items():
        if k not in out and sub.get("default") is not None:
            out[k] = copy.deepcopy(sub["default"])
    for k, sub in props.items():
        if isinstance(out.get(k), dict):
            out[k] = _naive_fill(schema, sub, out[k], depth + 1)
    return out


def _every_filled_key_present(level, value) -> None:
    """The analyzer's promise (`View.child(...).required`): in every object the plan reaches,
    each key the plan fills is there."""
    if level is None or not isinstance(value, dict):
        return
    assert set(level.defaults) <= set(value)
    for k, child in level.children.items():
        _every_filled_key_present(child, value.get(k))


@given(_recursive_schemas(), _calls)
def test_recursive_defaults_are_filled_as_far_as_they_end(schema, call):
    """Where filling from the schema ends, `fill` is exactly that; where it would not end,
    the call is filled without the endless default (never refused for it) and a caveat
    names it; either way every key the plan promises is in the filled call."""
    out = fill(schema, call)  # never FillTooLarge: nothing here ends deep or wide
    _every_filled_key_present(plan(schema), out)
    try:
        want = _naive_fill(schema, schema, call)
    except _Endless:
        assert any("without end" in c.reason and c.kind == "unfilled" for c in caveats(schema)), caveats(schema)
    else:
        assert out == want


def test_a_tool_with_an_endless_default_is_callable():
    """hostile review 26, F7: every call to such a tool was refused (`invalid_default`, "too
    large to fill in"); the shared admission now forwards it without the endless default."""
    import mcpp
    from mcpp.catalog import Catalog
    from mcpp.catalog.admission import CatalogAdmission

    cat = Catalog.from_tools([{"name": "t", "inputSchema": obj({"a": {"$ref": "#", "default": {}},
                                                                 "d": {"type": "integer", "default": 1}})}])
    pol = mcpp.load_policy("permit (principal, action, resource);\n", catalog=cat)
    for args, decided in (({}, {"d": 1}), ({"a": {}}, {"a": {"d": 1}, "d": 1})):
        d = pol.decide("t", args, dry_run=True)
        assert d.decision == "allow", d.message
        assert CatalogAdmission(cat).admit("t", args) == (None, decided)  # what is decided and forwarded


def test_a_long_chain_of_references_is_planned_to_the_fill_bound():
    """hostile review 28, F5: planning recursed once per `$defs` link, and a 500-link chain
    raised RecursionError: every call to the tool was refused. Levels past
    MAX_FILLED_DEPTH (as deep as filling ever goes) are not filled, and say so."""
    from mcpp.catalog.defaults import MAX_FILLED_DEPTH, level_at

    links = 500
    defs = {f"L{i}": obj({"s": {"type": "integer", "default": i}, **({"n": {"$ref": f"#/$defs/L{i + 1}"}}
                                                                       if i + 1 < links else {})})
            for i in range(links)}
    schema = {"$ref": "#/$defs/L0", "$defs": defs}
    assert fill(schema, {"n": {"n": {}}}) == {"s": 0, "n": {"s": 1, "n": {"s": 2}}}
    deepest = level_at(schema, ("n",) * (MAX_FILLED_DEPTH - 1))
    assert deepest is not None and deepest.defaults == {"s": MAX_FILLED_DEPTH - 1}
    past = level_at(schema, ("n",) * MAX_FILLED_DEPTH)
    assert past is not None and not past.defaults and "more than 64 objects deep" in past.notes[0][1]


def test_caveats_of_levels_shared_by_many_paths_are_bounded():
    """hostile review 30, G6: levels shared through references are reached by exponentially
    many argument paths, and the report probed every default on every one (`mcpp lint` took
    43 s on a 2.4 KB schema). It visits paths breadth first, at most a bound of them, and
    probes each level's defaults once."""
    from mcpp.catalog import defaults as D

    width, depth = 8, 6
    defs = {f"L{i}": obj({**{f"k{j}": {"$ref": f"#/$defs/L{i + 1}", "default": {}} for j in range(width)},
                          "s": {"type": "integer", "default": 1}}) for i in range(depth)}
    defs[f"L{depth}"] = obj({"s": {"type": "integer", "default": 1}})
    schema = {"$defs": defs, **obj({"x": {"$ref": "#/$defs/L0", "default": {}}})}
    calls = []
    real = D._breaks_call
    D._breaks_call = lambda *a: calls.append(1) or real(*a)
    try:
        caveats(schema)
    finally:
        D._breaks_call = real
    levels = D._levels(plan(schema)).values()
    assert 0 < len(calls) <= sum(len(lvl.defaults) + 1 for lvl in levels)  # once per level and key, not per path
    paths = sum(width ** i for i in range(D._MAX_CAVEAT_DEPTH + 1))
    assert paths > D._MAX_CAVEAT_VISITS  # (so the visits were bounded: 8 + 8^2 + … paths reach these levels)


def _chain_to_shared(chain: int, long_first: bool) -> dict:
    """A level X reached two ways: at the end of a `chain`-link `$defs` chain, and in one
    step from the root. X's default three objects deep (`y.v.w`) is well within the bound on
    the short path."""
    defs: dict = {f"L{i}": obj({"n": {"$ref": f"#/$defs/L{i + 1}", "default": {}}}) for i in range(chain)}
    defs[f"L{chain}"] = {"$ref": "#/$defs/X"}
    defs["X"] = obj({"y": {**obj({"v": {**obj({"w": {"type": "integer", "default": 1}}), "default": {}}}),
                           "default": {}}})
    paths = [("long", {"$ref": "#/$defs/L0"}), ("short", {"$ref": "#/$defs/X", "default": {}})]
    return {"$defs": defs, **obj(dict(paths if long_first else paths[::-1]))}


@pytest.mark.parametrize("chain", [58, 60, 61, 62, 63, 64, 70])
@pytest.mark.parametrize("long_first", [True, False], ids=["long-path-first", "short-path-first"])
def test_a_level_is_planned_at_the_least_depth_that_reaches_it(chain, long_first):
    """hostile review 30, G3: planned depth first, a level found first at the end of a long
    chain was cut there at the depth bound, and the same level reached from the root in one
    step reused the cut plan — a default three objects deep went unfilled (with a note
    "more than 64 objects deep") when the long path's key came first. Breadth first, the
    short path decides, whatever the order of the keys."""
    schema = _chain_to_shared(chain, long_first)
    assert fill(schema, {"short": {}}) == {"short": {"y": {"v": {"w": 1}}}}
    assert not [c for c in caveats(schema) if c.path[:1] == ("short",)]


def _reversed_keys(v):
    """`v` with every object's keys in reverse order: equal as JSON, walked in the other order."""
    if isinstance(v, dict):
        return {k: _reversed_keys(v[k]) for k in reversed(list(v))}
    if isinstance(v, list):
        return [_reversed_keys(x) for x in v]
    return v


@given(_recursive_schemas(), _calls)
def test_the_order_of_a_schemas_keys_never_changes_what_is_filled(schema, call):
    """Two schemas equal as JSON fill every call alike (the plan does not depend on which
    key the planner reads first), and report caveats at the same arguments (a refused
    default's reason quotes the violation the validator meets first, which may differ)."""
    other = _reversed_keys(schema)
    assert fill(other, call) == fill(schema, call)
    assert sorted((c.path, c.kind) for c in caveats(other)) == sorted((c.path, c.kind) for c in caveats(schema))


def test_scalar_properties_take_no_planning_level():
    """hostile review 32, H32-1: every declared property took a level, so a sibling with
    2,100 string properties spent the level cap before a default three objects deep
    (planned breadth first), which went unfilled and unreported while the upstream ran it.
    A property whose value cannot be an object has no level of its own."""
    schema = obj({"b": obj({"c": obj({"d": obj({"amount": {"type": "number", "default": 5000}})})}),
                  "z_wide": obj({f"f{i:04d}": {"type": "string"} for i in range(2100)})})
    assert fill(schema, {"b": {"c": {"d": {}}}}) == {"b": {"c": {"d": {"amount": 5000}}}}


def test_past_the_level_cap_a_default_is_a_caveat_not_a_silence():
    """Past `_MAX_LEVELS` distinct objects, what lies deeper is not planned; a default there
    is reported (lint `unfilled-default`), as the depth cut is."""
    from mcpp.catalog import defaults as D

    wide = {f"o{i:04d}": obj({f"k{i}": {"type": "integer"}}) for i in range(D._MAX_LEVELS + 5)}
    schema = obj({"a": obj(wide), "z": obj({"y": obj({"n": {"type": "integer", "default": 7}})})})
    assert fill(schema, {"z": {"y": {}}}) == {"z": {"y": {}}}  # (beyond the cap: not filled…)
    reasons = [c.reason for c in caveats(schema) if c.path[:1] == ("z",)]
    assert any(f"more than {D._MAX_LEVELS} objects to plan" in r for r in reasons), reasons  # (…and said)


def test_sibling_objects_sharing_one_definition_are_planned_once_per_property():
    """hostile review 32, H32-2: 100 sibling objects including one 3,000-property definition
    planned every property once per sibling (8.5 s); closures and item checks are now
    remembered per subschema. Every sibling's own default is filled."""
    from mcpp.catalog import defaults as D

    big = {"allOf": [{"properties": {f"q{j}": {"type": "integer"}}} for j in range(300)]}
    schema = {"type": "object", "$defs": {"Big": big}, "properties": {
        f"o{i:03d}": {"type": "object", "allOf": [{"$ref": "#/$defs/Big"}],
                      "properties": {"v": {"type": "integer", "default": i}}} for i in range(40)}}
    closures = []
    real = D._Planner._closure
    D._Planner._closure = lambda self, *a: closures.append(1) or real(self, *a)
    try:
        out = fill(schema, {f"o{i:03d}": {} for i in range(40)})
    finally:
        D._Planner._closure = real
    assert out == {f"o{i:03d}": {"v": i} for i in range(40)}
    assert len(closures) < 40 * 300  # (once per property, not once per sibling and property)


@pytest.mark.parametrize("variant", ["declared-once", "pattern", "declared-twice"])
def test_a_definition_included_by_many_objects_has_its_properties_planned_once(variant):
    """hostile review 33, H33-9: 100 sibling objects including one definition with 3,000
    defaulted properties (199 KB) took 28 s to plan, in the compile thread the first calls
    wait for: each sibling's level planned every property of the definition again (the
    closures were remembered, H32-2, the rest of each key's planning was not). A key's plan
    is now settled once per distinct declarations, and where nothing else bears on them a
    definition's properties are planned once and copied into each object that includes it;
    counted in reads of a closure, which each key's planning started with. The same holds
    when a pattern or a name declared twice makes the level plan key by key."""
    from mcpp.catalog import defaults as D

    siblings, width = 40, 300
    big: dict = {"allOf": [{"properties": {f"q{j}": {"type": "integer", "default": j} for j in range(p, p + 10)}}
                           for p in range(0, width, 10)]}
    if variant == "pattern":
        big["patternProperties"] = {"^zz": {"type": "string"}}
    own = {"q0": {"type": "integer"}} if variant == "declared-twice" else {}
    schema = {"type": "object", "$defs": {"Big": big}, "properties": {
        f"o{i:03d}": {"type": "object", "allOf": [{"$ref": "#/$defs/Big"}],
                      "properties": {"v": {"type": "integer", "default": i}, **own}} for i in range(siblings)}}
    reads = []
    real = D._Planner.closure
    D._Planner.closure = lambda self, *a, **kw: reads.append(1) or real(self, *a, **kw)
    try:
        out = fill(schema, {"o000": {}, "o039": {"q1": -1}})
    finally:
        D._Planner.closure = real
    want = {f"q{j}": j for j in range(width)}
    assert out == {"o000": {**want, "v": 0}, "o039": {**want, "q1": -1, "v": 39}}
    assert len(reads) < 4 * (width + siblings), len(reads)  # (not once per sibling and property: 12,000)


class _KeyByKey:
    """The planner with neither shortcut: every level plans every key itself, as it did
    before H33-9 (the reference the shortcuts must agree with)."""

    @staticmethod
    def plan(schema):
        from mcpp.catalog import defaults as D

        class Planner(D._Planner):
            def copy_properties(self, *_args):
                return False

            def key(self, *a):
                return self._key(*a)

        return D._prune(D._unfill_endless(Planner(schema).plan()))


def _plan_shape(root) -> list:
    """A plan as plain data: its levels breadth first, each with its defaults, its notes,
    the declarations its defaults are checked against and its children (in order)."""
    index: dict[int, int] = {}
    order, todo = [], [root]
    while todo:
        lvl = todo.pop(0)
        if id(lvl) not in index:
            index[id(lvl)] = len(order)
            order.append(lvl)
            todo.extend(lvl.children.values())
    return [(list(lvl.defaults.items()), list(lvl.notes), [(k, [id(x) for x in v]) for k, v in lvl.sources.items()],
             [(k, index[id(c)]) for k, c in lvl.children.items()]) for lvl in order]


_NAMES = ("a", "b", "c")


@st.composite
def _shared_definitions(draw):
    """Definitions made of `allOf` pieces, included by several sibling objects (some of
    which declare a name again), with defaults, nested and recursive references, patterns
    and conditional subschemas: the shapes where a level may copy its keys' plans."""
    n = draw(st.integers(1, 3))

    def prop():
        return draw(st.sampled_from([
            {"type": "integer", "default": 1}, {"type": "integer", "default": 2}, {"type": "integer"},
            {"type": "string", "default": None}, {"$ref": f"#/$defs/D{draw(st.integers(0, n - 1))}"},
            {"$ref": f"#/$defs/D{draw(st.integers(0, n - 1))}", "default": {}},
            {"anyOf": [{"$ref": f"#/$defs/D{draw(st.integers(0, n - 1))}"}, {"type": "null"}]},
            {"type": "array", "items": {"type": "integer", "default": 3}},
            obj({"a": {"type": "integer", "default": 4}})]))

    def props():
        return {k: prop() for k in draw(st.lists(st.sampled_from(_NAMES), unique=True, max_size=3))}

    defs = {}
    for i in range(n):
        d: dict = {"allOf": [{"properties": props()} for _ in range(draw(st.integers(0, 3)))]}
        if draw(st.booleans()):
            d["properties"] = props()
        extra = draw(st.sampled_from(["", "pattern", "anyOf", "if"]))
        if extra == "pattern":
            d["patternProperties"] = {"^b": {"type": "integer", "default": draw(st.sampled_from([2, 5]))}}
        elif extra == "anyOf":
            d["anyOf"] = [obj({"c": {"default": 6}}), obj({"a": {"type": "integer"}})]
        elif extra == "if":
            d["if"], d["then"] = {"required": ["a"]}, obj({"b": {"default": 7}})
        defs[f"D{i}"] = d
    siblings = {f"s{i}": {"type": "object", "allOf": [{"$ref": f"#/$defs/D{draw(st.integers(0, n - 1))}"}],
                          "properties": props()} for i in range(draw(st.integers(1, 4)))}
    return {"$defs": defs, **obj(siblings)}


@given(_shared_definitions())
def test_copied_key_plans_are_the_plans_made_key_by_key(schema):
    """H33-9's shortcuts (a key's plan settled once, a definition's properties planned once
    and copied) give the plan key-by-key planning gives: the same defaults, notes and
    children, in the same order."""
    from mcpp.catalog import defaults as D

    fast = D._prune(D._unfill_endless(D._Planner(schema).plan()))
    assert _plan_shape(fast) == _plan_shape(_KeyByKey.plan(schema))


@pytest.mark.parametrize("dialect, defs", [("http://json-schema.org/draft-07/schema#", "definitions"),
                                           ("http://json-schema.org/draft-04/schema#", "definitions"),
                                           ("https://json-schema.org/draft/2020-12/schema", "$defs")])
def test_a_type_beside_a_ref_does_not_hide_the_object_behind_it(dialect, defs):
    """hostile review 33, H33-3: up to draft-07 the validator ignores what sits beside a
    `$ref`; the planner read `"type": "string"` there, planned no level, and `{"opts": {}}`
    (which the validator takes) went without `Opts`'s default while the upstream applied it."""
    schema = {"$schema": dialect, defs: {"Opts": obj({"scope": {"type": "string", "default": "all"}})},
              **obj({"opts": {"$ref": f"#/{defs}/Opts", "type": "string"}})}
    assert fill(schema, {"opts": {}}) == {"opts": {"scope": "all"}}


def test_branches_reached_again_through_references_are_read_once():
    """hostile review 33, H33-7: k `anyOf` branches per level over 8 `$defs` levels were read
    k⁸ times (a 1.5 KB schema took 14 s to plan)."""
    from mcpp.catalog import defaults as D

    k, levels = 8, 8
    defs = {f"L{i}": {"anyOf": [{"$ref": f"#/$defs/L{i + 1}"} for _ in range(k)]} for i in range(levels)}
    defs[f"L{levels}"] = {"type": "string"}
    schema = {"$defs": defs, **obj({"p": {"$ref": "#/$defs/L0"}, "q": obj({"r": {"default": 1}})})}
    closures = []
    real = D._Planner._closure
    D._Planner._closure = lambda self, *a: closures.append(1) or real(self, *a)
    try:
        assert fill(schema, {"q": {}}) == {"q": {"r": 1}}
    finally:
        D._Planner._closure = real
    assert len(closures) < 10 * k * levels, len(closures)


def test_the_plan_cache_drops_the_least_recently_used_plan_not_every_plan(monkeypatch):
    """hostile review 33, H33-8: the cache was cleared whole when full, and the gateway then
    made a costly plan again on its event loop (14 s of `/healthz`)."""
    from mcpp.catalog import defaults as D

    monkeypatch.setattr(D, "_PLAN_CACHE", 8)
    kept = obj({"a": {"type": "integer", "default": 1}})
    first = plan(kept)
    others = [obj({f"k{i}": {"type": "integer", "default": i}}) for i in range(20)]
    for i, other in enumerate(others):
        plan(other)
        if i % 4 == 0:
            assert plan(kept) is first  # (used all along: never dropped)
    assert plan(kept) is first and len(D._plans) <= 8
