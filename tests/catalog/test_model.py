"""The catalog file: stable bytes, per-tool SHA-256, tamper detection, clear errors."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcpp.catalog import Catalog, CatalogError, load_catalog, parse_catalog, tool_hash
from mcpp.catalog.model import canonical_json

from .conftest import FIXTURES, SERVERS

TOOL = {"name": "post_message", "description": "Post to a channel",
        "inputSchema": {"type": "object", "properties": {"channel": {"type": "string"}, "text": {"type": "string"}},
                        "required": ["channel", "text"]},
        "annotations": {"readOnlyHint": False}}


def test_hash_is_sha256_of_canonical_json_without_meta():
    expected = hashlib.sha256(canonical_json(TOOL).encode()).hexdigest()
    assert tool_hash(TOOL) == "sha256:" + expected
    assert tool_hash({**TOOL, "_meta": {"fetchedAt": 1}}) == tool_hash(TOOL)
    assert tool_hash({**TOOL, "description": "Post anywhere"}) != tool_hash(TOOL)


def _shuffle(value, rnd):
    if isinstance(value, dict):
        items = list(value.items())
        rnd.shuffle(items)
        return {k: _shuffle(v, rnd) for k, v in items}
    if isinstance(value, list):
        return [_shuffle(v, rnd) for v in value]
    return value


@given(st.randoms(use_true_random=False))
def test_file_bytes_do_not_depend_on_server_key_or_tool_order(rnd):
    tools = [TOOL, {"name": "list_channels", "inputSchema": {"type": "object"}}]
    a = Catalog.from_tools(tools, server_name="s", server_version="1").dumps()
    shuffled = [_shuffle(t, rnd) for t in tools]
    rnd.shuffle(shuffled)
    assert Catalog.from_tools(shuffled, server_name="s", server_version="1").dumps() == a


def test_annotation_defaults_follow_the_spec():
    cat = Catalog.from_tools([{"name": "t", "inputSchema": {"type": "object"}}])
    assert cat.tools["t"].annotations == {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": False,
                                          "openWorldHint": True}
    assert cat.tools["t"].declared_annotations == {}


def test_round_trip_and_raw_tools_list(tmp_path):
    cat = Catalog.from_tools([TOOL], server_name="slack", server_version="2")
    p = tmp_path / "c.json"
    cat.write(p)
    back = load_catalog(p)
    assert back.dumps() == cat.dumps()
    raw = parse_catalog(json.dumps({"tools": [TOOL], "nextCursor": None}))
    assert raw.tools["post_message"].hash == cat.tools["post_message"].hash
    rpc = parse_catalog(json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"tools": [TOOL]}}))
    assert list(rpc.tools) == ["post_message"]


def test_a_hand_edited_catalog_is_refused(tmp_path):
    doc = Catalog.from_tools([TOOL]).to_json()
    doc["tools"]["post_message"]["tool"]["description"] = "Post to any channel, including #general"
    p = tmp_path / "c.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(CatalogError) as e:
        load_catalog(p)
    assert "/tools/post_message/sha256: hash mismatch" in e.value.render()


@pytest.mark.parametrize("text, message", [
    ("", "not JSON"),
    ("[]", "a catalog is a JSON object"),
    ('{"x": 1}', 'no "mcppCatalog" version'),
    ('{"mcppCatalog": 2, "tools": {}}', "format version 2 is not supported"),
    ('{"mcppCatalog": 1, "tools": []}', "/tools: must be an object"),
    ('{"mcppCatalog": 1, "tools": {}, "extra": 1}', "unknown key 'extra'"),
    ('{"mcppCatalog": 1, "tools": {"a": {"tool": {"name": "b", "inputSchema": {}}}}}', "/tools/a/tool/name"),
    ('{"tools": [{"name": "a"}]}', '"inputSchema" must be a JSON object'),
    ('{"tools": [{"name": "a", "inputSchema": {}}, {"name": "a", "inputSchema": {}}]}', "listed twice"),
    # what JSON text cannot carry back out, at its pointer (hostile review 30, G1)
    ('{"tools": [{"name": "a", "inputSchema": {"maximum": NaN}}]}', "/tools/0/inputSchema/maximum: NaN is not a JSON number"),
    ('{"tools": [{"name": "a", "inputSchema": {"minimum": -Infinity}}]}', "/tools/0/inputSchema/minimum: -Infinity is not"),
    ('{"tools": [{"name": "a", "inputSchema": {"properties": {"n/m": {"default": 1e99999}}}}]}',
     "/tools/0/inputSchema/properties/n~1m/default: number 1e99999 is out of range"),
    ('{"tools": [{"name": "a", "inputSchema": {}}], "x": [1.5, 2e400]}', "/x/1: number 2e400 is out of range"),
    ('{"tools": [{"name": "a\\ud800", "inputSchema": {}}]}', "/tools/0/name: strings must be valid Unicode"),
])
def test_bad_catalogs_get_clear_errors(text, message):
    with pytest.raises(CatalogError) as e:
        parse_catalog(text, "c.json")
    assert message in e.value.render()
    assert e.value.render().startswith("c.json: error: ")


def test_missing_catalog_file(tmp_path):
    with pytest.raises(CatalogError, match="no such catalog file"):
        load_catalog(tmp_path / "nope.json")


@pytest.mark.parametrize("name", SERVERS)
def test_committed_fixtures_load_and_verify(name):
    cat = load_catalog(FIXTURES / f"{name}.json")
    assert cat.tools and cat.server_name and cat.protocol_version
    assert (FIXTURES / f"{name}.json").read_text() == cat.dumps()  # the committed bytes are canonical
