"""The Evaluate lens and the `mcpp.evaluate` command: decisions on sample calls."""

from __future__ import annotations

import json

import pytest
from lsprotocol import types as t
from pygls.exceptions import JsonRpcException

from .conftest import change, doc_id, open_doc, pos, wait_diags

POLICY = '''default deny;

@id("non-prod")
@reason("Namespace is outside the allowed non-production set.")
permit (principal, action == Action::"delete_pod", resource)
when { context.input.namespace in ["dev", "staging"] };

@id("ops-only")
permit (principal in Group::"ops", action == Action::"scale_deployment", resource);

hide Action::"get_secret";
'''

SAMPLES = [
    {"name": "delete_pod", "arguments": {"namespace": "dev"}},
    {"name": "delete_pod", "arguments": {"namespace": "prod"}},
    {"name": "scale_deployment", "arguments": {"replicas": 3}, "grant": {"id": "g1", "groups": ["ops"]}},
    {"name": "scale_deployment", "arguments": {"replicas": 3}, "grant": "g2"},
    {"name": "get_secret", "arguments": {"name": "db"}},
]


def write_samples(client, name="k.calls.jsonl", lines=None):
    lines = lines if lines is not None else [json.dumps(s) for s in SAMPLES]
    (client.ws / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


async def lenses(client, uri):
    return await client.text_document_code_lens_async(t.CodeLensParams(text_document=doc_id(uri)))


async def test_lenses_show_decisions_of_sample_calls(client):
    write_samples(client)
    uri = open_doc(client, "k.mcpp", POLICY)
    await wait_diags(client, uri, lambda _d: True)
    ls = await lenses(client, uri)
    top = ls[0]
    assert top.range.start == t.Position(line=0, character=0)
    assert top.command.title == "▶ Evaluate 5 sample calls (k.calls.jsonl): 2 allow, 3 deny"
    assert top.command.command == "mcpp.evaluate" and len(top.command.arguments) == 5
    by_line = {}
    for lens in ls[1:]:
        by_line.setdefault(lens.range.start.line, []).append(lens.command.title)
    # each decision sits on the rule that made it
    assert by_line[pos(POLICY, '@id("non-prod")').line] == [
        'delete_pod {"namespace": "dev"} → allow']
    assert by_line[pos(POLICY, "when { context.input.namespace").line] == [
        'delete_pod {"namespace": "prod"} → deny']
    assert by_line[pos(POLICY, '@id("ops-only")').line] == [
        'scale_deployment {"replicas": 3} → allow', 'scale_deployment {"replicas": 3} → deny']
    assert by_line[pos(POLICY, 'Action::"get_secret"').line] == ['get_secret {"name": "db"} → deny']


async def test_evaluate_command_returns_and_shows_the_decision(client):
    uri = open_doc(client, "k.mcpp", POLICY)
    await wait_diags(client, uri, lambda _d: True)
    d = await client.workspace_execute_command_async(t.ExecuteCommandParams(
        command="mcpp.evaluate",
        arguments=[{"uri": uri, "name": "delete_pod", "arguments": {"namespace": "prod"}}]))
    assert d["decision"] == "deny"
    assert d["rule"] == "/tools/delete_pod/require/args.namespace-in"
    assert d["message"] == "Namespace is outside the allowed non-production set."
    assert d["policy"] == "non-prod"
    assert d["range"]["start"] == {"line": 5, "character": 0}
    assert any("delete_pod" in m.message and "DENY" in m.message for m in client.messages)
    # grants with groups; several calls at once; the only open document is the default
    ds = await client.workspace_execute_command_async(t.ExecuteCommandParams(
        command="mcpp.evaluate",
        arguments=[{"name": "scale_deployment", "arguments": {}, "grant": {"id": "g", "groups": ["ops"]}},
                   {"name": "get_secret", "arguments": {}}]))
    assert [x["decision"] for x in ds] == ["allow", "deny"]
    assert ds[1]["rule"] == "/hide"


async def test_evaluate_rejects_bad_calls_and_broken_policies(client):
    uri = open_doc(client, "k.mcpp", POLICY)
    await wait_diags(client, uri, lambda _d: True)
    for bad, why in [({"uri": uri, "arguments": {}}, '"name" (the tool) must be a non-empty string'),
                     ({"uri": uri, "name": "x", "grant": 7}, '"grant" must be a grant id'),
                     ({"uri": "file:///nowhere.mcpp", "name": "x"}, "is not open")]:
        with pytest.raises(JsonRpcException) as e:
            await client.workspace_execute_command_async(t.ExecuteCommandParams(command="mcpp.evaluate",
                                                                                 arguments=[bad]))
        assert why in e.value.message, e.value.message
        assert e.value.code == -32602
    change(client, uri, 2, POLICY + "permit (\n")
    await wait_diags(client, uri, lambda d: any(x.code == "syntax" for x in d))
    with pytest.raises(JsonRpcException) as e:
        await client.workspace_execute_command_async(t.ExecuteCommandParams(
            command="mcpp.evaluate", arguments=[{"uri": uri, "name": "delete_pod"}]))
    assert "fix them before evaluating" in e.value.message
    write_samples(client)
    ls = await lenses(client, uri)
    assert ls[0].command.title.startswith("▶ Evaluate: fix the 1 error first")


async def test_bad_sample_lines_are_reported_in_the_lens(client):
    write_samples(client, lines=[json.dumps(SAMPLES[0]), "{not json", json.dumps({"arguments": {}})])
    uri = open_doc(client, "k.mcpp", POLICY)
    await wait_diags(client, uri, lambda _d: True)
    top = (await lenses(client, uri))[0]
    assert top.command.title.startswith("▶ Evaluate 1 sample call (k.calls.jsonl): 1 allow, 0 deny · 2 bad lines")
    assert "k.calls.jsonl:2: not JSON" in top.command.title


async def test_no_samples_no_lenses(client):
    uri = open_doc(client, "lonely.mcpp", POLICY)
    await wait_diags(client, uri, lambda _d: True)
    assert list(await lenses(client, uri)) == []


async def test_changed_samples_file_refreshes_lenses(client):
    write_samples(client, lines=[json.dumps(SAMPLES[0])])
    uri = open_doc(client, "k.mcpp", POLICY)
    await wait_diags(client, uri, lambda _d: True)
    assert (await lenses(client, uri))[0].command.title.startswith("▶ Evaluate 1 sample call")
    write_samples(client)
    client.workspace_did_change_watched_files(t.DidChangeWatchedFilesParams(changes=[t.FileEvent(
        uri=(client.ws / "k.calls.jsonl").as_uri(), type=t.FileChangeType.Changed)]))
    import asyncio

    for _ in range(100):
        if (await lenses(client, uri))[0].command.title.startswith("▶ Evaluate 5 sample calls"):
            break
        await asyncio.sleep(0.05)
    assert (await lenses(client, uri))[0].command.title.startswith("▶ Evaluate 5 sample calls")
    assert client.code_lens_refreshes >= 1


async def test_evaluate_fills_declared_defaults_with_the_policys_catalog(client):
    """As the gateway decides it: a call that omits `amount` runs with the schema's 5000."""
    (client.ws / "pay.tools.json").write_text(json.dumps({"tools": [{"name": "refund_payment", "inputSchema": {
        "type": "object", "required": ["charge_id"],
        "properties": {"charge_id": {"type": "string"}, "amount": {"type": "number", "default": 5000}}}}]}))
    uri = open_doc(client, "pay.mcpp", '@catalog("pay.tools.json")\ndefault deny;\n'
                   'permit (principal, action == Action::"refund_payment", resource);\n@id("cap")\n'
                   'forbid (principal, action == Action::"refund_payment", resource)\n'
                   'when { context.input has amount && context.input.amount > 1000 };\n')
    await wait_diags(client, uri, lambda _d: True)
    ds = await client.workspace_execute_command_async(t.ExecuteCommandParams(
        command="mcpp.evaluate", arguments=[{"uri": uri, "name": "refund_payment", "arguments": {"charge_id": "c"}},
                                            {"uri": uri, "name": "refund_payment",
                                             "arguments": {"charge_id": "c", "amount": 10}}]))
    assert [x["decision"] for x in ds] == ["deny", "allow"] and ds[0]["policy"] == "cap"
    assert ds[0]["call"]["arguments"] == {"charge_id": "c"}  # shown as sent


def test_hover_names_a_default_the_gateway_fills():
    from mcpp.lsp.hover import _filled_text

    schema = {"type": "object", "properties": {"amount": {"type": "number", "default": 5000},
                                               "opts": {"type": "object", "properties": {"m": {"default": "s"}}},
                                               "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}}}
    assert _filled_text(schema, ("amount",)) == " (default `5000`, filled in by the gateway)"
    assert _filled_text(schema, ("opts", "m")) == ' (default `"s"`, filled in by the gateway)'
    assert _filled_text(schema, ("note",)) == ""  # null defaults are never filled
