"""`catalog.defaults` resolves a `$ref` as the gateway's validator does (hostile review 11,
finding 2): against the base URI of the subschema it sits in, which a nested `$id` moves,
with anchors, absolute URIs and percent-encoding as JSON Schema has them. Before, every
`#/…` was read against the document root: the default the validator's schema declares
was not filled (an unflagged unfilled default) and a default no applicable schema
declares was (the reverse). A table of the shapes, then a property over generated
layouts: what `fill` puts in is exactly the default of the schema the validator applies."""

from __future__ import annotations


import pytest
from hypothesis import given, strategies as st

from mcpp.catalog.admission import admit, tool_checker
from mcpp.catalog.conformance import SchemaCache, check, compile_schema
from mcpp.catalog.defaults import caveats, fill

F_JSON = {"type": "object",
          "$defs": {"Opts": {"type": "object", "properties": {"amount": {"type": "number"}}},
                    "X": {"$id": "https://example.com/x", "$ref": "#/$defs/Opts",
                          "$defs": {"Opts": {"type": "object", "properties": {"amount": {"type": "number", "default": 5000}}}}}},
          "properties": {"opts": {"$ref": "#/$defs/X"}}, "required": ["opts"]}
E_JSON = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
          "$defs": {"Z": {"type": "object", "properties": {"limit": {"type": "integer", "maximum": 10, "default": 5}}},
                    "X": {"$id": "https://example.com/x", "$ref": "#/$defs/Z",
                          "$defs": {"Z": {"type": "object", "properties": {"limit": {"type": "integer", "maximum": 1000000}}}}}},
          "properties": {"opts": {"$ref": "#/$defs/X"}}, "required": ["opts"]}


def amount(default=None) -> dict:
    return {"type": "object", "properties": {"amount": {"type": "number", **({"default": default} if default else {})}}}


# (id, schema, arguments, the filled arguments)
CASES = [
    ("nested-id-own-defs", F_JSON, {"opts": {}}, {"opts": {"amount": 5000}}),
    ("nested-id-root-default-not-applied", E_JSON, {"opts": {}}, {"opts": {}}),
    ("anchor", {"type": "object", "$defs": {"A": {"$anchor": "amt", **amount(7)}},
                "properties": {"opts": {"$ref": "#amt"}}}, {"opts": {}}, {"opts": {"amount": 7}}),
    ("anchor-inside-nested-id", {"type": "object", "$defs": {
        "root-amt": {"$anchor": "amt", **amount(1)},
        "X": {"$id": "https://example.com/x", "$ref": "#amt", "$defs": {"A": {"$anchor": "amt", **amount(2)}}}},
        "properties": {"opts": {"$ref": "#/$defs/X"}}}, {"opts": {}}, {"opts": {"amount": 2}}),
    ("absolute-uri", {"$id": "https://example.com/root", "type": "object",
                      "$defs": {"X": {"$id": "https://example.com/x", "$defs": {"O": amount(3)}}},
                      "properties": {"opts": {"$ref": "https://example.com/x#/$defs/O"}}}, {"opts": {}},
     {"opts": {"amount": 3}}),
    ("relative-id", {"$id": "https://example.com/dir/root", "type": "object",
                     "$defs": {"X": {"$id": "x", "$defs": {"O": amount(4)}}},
                     "properties": {"opts": {"$ref": "https://example.com/dir/x#/$defs/O"}}}, {"opts": {}},
     {"opts": {"amount": 4}}),
    ("percent-encoded-name", {"type": "object", "$defs": {"a%b": amount(6)},
                              "properties": {"opts": {"$ref": "#/$defs/a%25b"}}}, {"opts": {}}, {"opts": {"amount": 6}}),
    ("escaped-slash", {"type": "object", "$defs": {"a/b": amount(8)},
                       "properties": {"opts": {"$ref": "#/$defs/a~1b"}}}, {"opts": {}}, {"opts": {"amount": 8}}),
]


@pytest.mark.parametrize("schema,args,want", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_fill_resolves_as_the_validator(schema, args, want):
    assert fill(schema, args) == want
    chk = tool_checker(SchemaCache(), [{"inputSchema": schema}], "t")
    refusal, filled = admit(chk, "t", args)
    assert refusal is None and filled == want  # the gateway forwards what it filled, and it conforms
    assert not [c for c in caveats(schema) if c.path[-1:] == ("amount",) or c.path[-1:] == ("limit",)]


def test_a_reference_the_schema_cannot_resolve_is_a_caveat_and_the_call_that_needs_it_is_refused():
    schema = {"type": "object", "properties": {"opts": {"$ref": "https://example.com/remote.json", "default": {"a": 1}}}}
    assert fill(schema, {}) == {}
    [c] = caveats(schema)
    assert c.path == ("opts",) and c.kind == "unfilled" and "cannot be resolved" in c.reason
    chk = tool_checker(SchemaCache(), [{"inputSchema": schema}], "t")
    refusal, _ = admit(chk, "t", {"opts": {}})
    assert refusal is not None and refusal["kind"] == "unusable_schema" and "never fetches" in refusal["reason"]


def test_the_validator_never_fetches_a_remote_reference(monkeypatch):
    import urllib.request

    fetched = []

    def urlopen(*args, **kwargs):
        fetched.append((args, kwargs))
        raise OSError("no network in this test")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    v = compile_schema({"type": "object", "properties": {"a": {"$ref": "http://127.0.0.1:9/x"}}})
    with pytest.raises(Exception, match="never fetches"):
        check(v, {"a": 1})
    assert fetched == []


# ---- the property ------------------------------------------------------------------------
# Two (or three) schemas named `Opts` at different bases — the root's `$defs`, the `$defs`
# of a subresource with its own `$id`, one reached by an anchor — each accepting only its
# own marker value (`const`) and some declaring it as the default. A reference, written in
# one of the ways that reach one of them, decides which applies. `fill` must put in the
# applied one's default (the validator accepts the filled call) and nothing when it has none.

MARKERS = (11, 22, 33)


@st.composite
def layouts(draw):
    defaults = [draw(st.booleans()) for _ in MARKERS]

    def opts(i: int) -> dict:
        prop = {"const": MARKERS[i], **({"default": MARKERS[i]} if defaults[i] else {})}
        return {"type": "object", "properties": {"amount": prop}}

    where = draw(st.sampled_from(["root", "x-local", "x-absolute", "anchor", "x-anchor"]))
    x = {"$id": "https://example.com/x", "$defs": {"Opts": opts(1), "A": {"$anchor": "o", **opts(2)}}}
    root_anchor = draw(st.booleans())  # a same-named anchor at the root too: the base decides
    defs: dict = {"Opts": opts(0), "X": x}
    if root_anchor:
        defs["RA"] = {"$anchor": "o", **opts(0)}
    via_x = draw(st.booleans())  # reached through X's own `$ref` (the base moved) or directly
    ref, applied = {
        "root": ("#/$defs/Opts", 0),
        "x-local": ("#/$defs/Opts", 1),
        "x-absolute": ("https://example.com/x#/$defs/Opts", 1),
        "anchor": ("#o", 0 if root_anchor else None),
        "x-anchor": ("#o", 2),
    }[where]
    if where == "anchor" and not root_anchor:
        ref, applied = "#/$defs/Opts", 0
    if where in ("x-local", "x-anchor") or (where == "x-absolute" and via_x):
        x["$ref"] = ref
        prop = {"$ref": "#/$defs/X"}
    else:
        prop = {"$ref": ref}
    schema = {"type": "object", "$defs": defs, "properties": {"opts": prop}, "required": ["opts"]}
    return schema, applied, defaults


@given(layouts())
def test_fill_puts_in_the_default_of_the_schema_the_validator_applies(layout):
    schema, applied, defaults = layout
    v = compile_schema(schema)
    # the validator's own answer: it accepts the applied schema's marker and no other
    accepted = [i for i, m in enumerate(MARKERS) if check(v, {"opts": {"amount": m}}) is None]
    assert accepted == [applied]
    out = fill(schema, {"opts": {}})
    if defaults[applied]:
        assert out == {"opts": {"amount": MARKERS[applied]}}
        assert check(v, out) is None
    else:
        assert out == {"opts": {}}  # no applicable default: nothing injected
    assert not [c for c in caveats(schema) if c.kind == "refused"]


O_A = {"type": "object", "properties": {"a": {"default": 1}}}


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"o": {"$id": 5, **O_A}}},
    {"$id": 5, "type": "object", "properties": {"o": O_A}},
    {"type": "object", "properties": {"o": {"$schema": 5, **O_A}}},
    {"type": "object", "properties": {"o": {"$id": "::not a uri %%", **O_A}}},
    {"type": "object", "properties": {"o": {"$ref": 5}}},
    {"type": "object", "$defs": {"x": O_A}, "properties": {"o": {"$ref": "#/$defs/%"}}},
    {"type": "object", "$defs": {"x": {"$ref": "#/$defs/y"}, "y": {"$ref": "#/$defs/x"}}, "properties": {"o": {"$ref": "#/$defs/x"}}},
], ids=["id-int", "root-id-int", "schema-int", "id-no-uri", "ref-int", "ref-bad-percent", "ref-cycle"])
def test_odd_identifiers_and_references_never_raise(schema):
    """Schemas the validator refuses or cannot resolve: the plan is made all the same (eval
    and the API fill before deciding, whatever the gateway then says), never a traceback."""
    fill(schema, {"o": {}})
    caveats(schema)


def test_a_reference_to_a_metaschema_is_not_read_for_defaults():
    schema = {"type": "object", "properties": {"o": {"$ref": "https://json-schema.org/draft/2020-12/schema",
                                                     "default": {"x": 1}}}}
    assert fill(schema, {"o": {}}) == {"o": {}} and fill(schema, {}) == {}
    [c] = caveats(schema)
    assert c.kind == "unfilled" and "another document" in c.reason


def test_a_reference_to_true_keeps_the_sibling_default():
    schema = {"type": "object", "$defs": {"t": True}, "properties": {"o": {"$ref": "#/$defs/t", "default": 3}}}
    assert fill(schema, {}) == {"o": 3} and caveats(schema) == []
