"""A tool definition nested deeper than `catalog.depth.MAX_NESTING` (hostile review 11,
finding 6: a `default` of 500 nested objects crashed eval, verify and lint with a
RecursionError in `sort_keys`, and the gateway blamed the caller's `{}`). Now every
reader refuses it up front, the same way whatever the Python stack depth: the catalog
loader with a `CatalogError` naming the JSON pointer, the validator and the gateway with
`unusable_schema`; a definition at the bound works everywhere."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, strategies as st

import mcpp
from mcpp.catalog import Catalog
from mcpp.catalog.admission import CatalogAdmission, admit, tool_checker
from mcpp.catalog.conformance import SchemaCache, SchemaUnusable, compile_schema
from mcpp.catalog.depth import MAX_NESTING, too_deep
from mcpp.catalog.model import CatalogError, parse_catalog, tool_hash


def nested(levels: int):
    """`levels` objects, one inside another: {"a": {"a": … 0}}."""
    d: object = 0
    for _ in range(levels):
        d = {"a": d}
    return d


def tool_with_default(levels: int) -> dict:
    """A tool whose definition nests `levels` deep in all: tool → inputSchema → properties
    → o → default → the default's own objects."""
    return {"name": "t", "inputSchema": {"type": "object", "properties": {
        "o": {"type": "object", "default": nested(levels - 4)}, "n": {"type": "integer"}}}}


def depth(v) -> int:
    """The reference: the nesting of objects and arrays, recursively."""
    if isinstance(v, dict):
        return 1 + max((depth(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((depth(x) for x in v), default=0)
    return 0


json_values = st.recursive(st.none() | st.integers() | st.text(max_size=3),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner, max_size=3),
                           max_leaves=40)


@given(json_values, st.integers(min_value=0, max_value=8))
def test_too_deep_agrees_with_the_recursive_depth_and_points_at_a_value_that_deep(value, limit):
    ptr = too_deep(value, limit)
    assert (ptr is not None) == (depth(value) > limit)
    if ptr is not None:  # the pointer names an object or array `limit + 1` levels in
        node = value
        tokens = [t.replace("~1", "/").replace("~0", "~") for t in ptr.split("/")[1:]]
        for t in tokens:
            node = node[int(t)] if isinstance(node, list) else node[t]
        assert isinstance(node, (dict, list)) and len(tokens) == limit


def test_too_deep_is_not_recursive():
    assert too_deep(nested(100_000)) == "/a" * MAX_NESTING


def catalog_text(levels: int) -> str:
    """A catalog file holding `tool_with_default(levels)`, written out by hand: `json.dumps`
    itself recurses (the hash is right where it can be computed at all)."""
    n = levels - 4
    default = '{"a": ' * n + "0" + "}" * n
    tool = '{"name": "t", "inputSchema": {"type": "object", "properties": {"o": {"type": "object", "default": ' + \
        default + '}, "n": {"type": "integer"}}}}'
    sha = tool_hash(tool_with_default(levels)) if levels <= 400 else "sha256:" + "0" * 64
    return '{"mcppCatalog": 1, "server": {"name": "h"}, "tools": {"t": {"sha256": "' + sha + '", "tool": ' + tool + "}}}"


@pytest.mark.parametrize("levels", [MAX_NESTING + 1, 500, 700])
def test_the_catalog_loader_refuses_it_with_the_pointer(levels):
    text = catalog_text(levels)
    with pytest.raises(CatalogError) as e:
        parse_catalog(text, "tools.json")
    assert e.value.pointer.startswith("/tools/t/tool/inputSchema/properties/o/default/a/a")
    assert f"nested deeper than {MAX_NESTING} levels" in e.value.message
    with pytest.raises(CatalogError) as e:
        Catalog.from_tools([tool_with_default(levels)])
    assert e.value.pointer.startswith("/tools/0/inputSchema/properties/o/default/a")


def test_a_file_too_deep_for_json_itself_is_a_catalog_error():
    text = '{"mcppCatalog": 1, "tools": ' + "[" * 200_000 + "]" * 200_000 + "}"
    with pytest.raises(CatalogError, match="nested too deeply to read"):
        parse_catalog(text, "tools.json")


@pytest.mark.parametrize("levels", [MAX_NESTING + 1, 500])
def test_the_gateway_refuses_a_listed_schema_too_deep_and_blames_the_schema_not_the_call(levels):
    schema = tool_with_default(levels + 1)["inputSchema"]  # as listed: `levels` deep (one less than the tool)
    chk = tool_checker(SchemaCache(), [{"inputSchema": schema}], "t")
    refusal, args = admit(chk, "t", {})
    assert refusal is not None and refusal["kind"] == "unusable_schema" and args == {}
    assert f"nested deeper than {MAX_NESTING} levels" in refusal["message"] and "/properties/o/default/a" in refusal["reason"]
    with pytest.raises(SchemaUnusable):
        compile_schema(schema)


def test_at_the_bound_everything_works():
    tool = tool_with_default(MAX_NESTING)
    assert too_deep(tool) is None
    cat = parse_catalog(catalog_text(MAX_NESTING), "tools.json")
    refusal, filled = CatalogAdmission(cat).admit("t", {})
    assert refusal is None and too_deep(filled, MAX_NESTING - 3) is None and too_deep(filled, MAX_NESTING - 4) is not None
    policy = mcpp.load_policy('default deny;\npermit (principal, action, resource) when { context.input has o };\n',
                              catalog=cat)
    assert policy.decide("t", {}, dry_run=True).decision == "allow"


@pytest.mark.parametrize("command", ["eval", "verify", "lint"])
def test_the_cli_says_so_with_the_pointer_never_a_traceback(tmp_path, command):
    (tmp_path / "tools.json").write_text(catalog_text(500))
    (tmp_path / "deep.mcpp").write_text('@catalog("tools.json")\ndefault deny;\n'
                                        'permit (principal, action == Action::"t", resource) when { context.input has o };\n'
                                        '@id("x")\nassert allow (principal, action == Action::"t", resource);\n')
    args = ["--call", '{"name":"t","arguments":{}}'] if command == "eval" else []
    r = subprocess.run([sys.executable, "-m", "mcpp", command, "deep.mcpp", *args], cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode != 0 and "internal error" not in r.stderr + r.stdout and "Traceback" not in r.stderr
    out = r.stderr + r.stdout
    assert "/tools/t/tool/inputSchema/properties/o/default/a/a" in out and f"deeper than {MAX_NESTING} levels" in out, out


def test_at_the_bound_the_gateway_checks_even_from_a_deep_stack():
    """The bound leaves room: a schema of nested `properties` as deep as allowed compiles,
    validates a call as deep and fills its default with 500 frames already on the stack
    (the gateway's async stack is far shallower), so whether a tool is usable does not
    depend on where it is checked from."""
    schema: dict = {"type": "object", "properties": {"x": {"type": "integer", "default": 1}}}
    call: dict = {}
    while too_deep({"type": "object", "properties": {"o": schema}}) is None:
        schema, call = {"type": "object", "properties": {"o": schema}}, {"o": call}
    assert too_deep(schema, MAX_NESTING - 2) is not None  # at the bound, give or take the wrapper

    def at(frames: int, f):
        return at(frames - 1, f) if frames else f()

    chk = at(500, lambda: tool_checker(SchemaCache(), [{"inputSchema": schema}], "t"))
    assert not isinstance(chk, tuple), chk
    refusal, filled = at(500, lambda: admit(chk, "t", call))
    assert refusal is None and filled != call  # the innermost `x` was filled in


@pytest.mark.parametrize("rec", ["a", "z"])
def test_defaults_fill_every_level_of_a_recursive_schema_whatever_the_key_order(rec):
    """hostile review 24, F7: with the recursive property sorting before the defaulted one,
    the planner met its own level still empty and filled only two levels down; the SDK
    server fills `d` at every level, so the policy decided another call than the upstream ran."""
    from mcpp.catalog.defaults import fill

    schema = {"type": "object", "properties": {rec: {"$ref": "#"}, "d": {"type": "integer", "default": 5000}}}
    filled = fill(schema, {rec: {rec: {rec: {}}}})
    assert filled == {"d": 5000, rec: {"d": 5000, rec: {"d": 5000, rec: {"d": 5000}}}}
    # and a recursive schema with no default anywhere plans nothing to fill
    bare = {"type": "object", "properties": {rec: {"$ref": "#"}, "d": {"type": "integer"}}}
    value = {rec: {rec: {}}}
    assert fill(bare, value) is value
