"""Diagnostics on open and on every change: syntax with recovery, validation, catalog
checks; codes with docs links; exact UTF-16 ranges; a break-then-fix cycle."""

from __future__ import annotations

import pytest
from lsprotocol import types as t

from .conftest import change, open_doc, pos, wait_diags

GOOD = '''default deny;

@id("reads")
permit (principal, action == Action::"list_pods", resource);

@id("deletes")
permit (principal, action == Action::"delete_pod", resource)
when { context.input.namespace == "dev" };
'''


async def test_open_reports_one_diagnostic_per_broken_statement(client):
    text = (
        "default deny;\n"
        'permit (principal, action == Action::"a", resource) when { context.input.x = 1 };\n'
        'permit (principal, action == Action::"b", resource);\n'
        'forbid (principal, action == Action::"c", resource) when { context.input.y > };\n'
    )
    uri = open_doc(client, "broken.mcpp", text)
    diags = await wait_diags(client, uri, lambda d: len(d) >= 2)
    syntax = [d for d in diags if d.code == "syntax"]
    assert len(syntax) == 2, diags
    first, second = sorted(syntax, key=lambda d: d.range.start.line)
    assert first.range.start == pos(text, "= 1")
    assert "did you mean '=='" in first.message
    assert first.severity == t.DiagnosticSeverity.Error and first.source == "mcpp"
    assert second.range.start.line == 3
    assert first.code_description.href.endswith("docs/editors.md#syntax")


async def test_change_breaks_then_fixes_the_file(client):
    uri = open_doc(client, "p.mcpp", GOOD)
    await wait_diags(client, uri, lambda d: all(x.severity != t.DiagnosticSeverity.Error for x in d), what="clean")
    # break it with an incremental edit: delete the closing brace of the last clause
    brace = pos(GOOD, '"dev" }', len('"dev" '))
    change(client, uri, 2, "", t.Range(start=brace, end=t.Position(line=brace.line, character=brace.character + 1)))
    broken = await wait_diags(client, uri, lambda d: any(x.code == "syntax" for x in d), what="broken")
    assert any("missing '}'" in x.message for x in broken), [x.message for x in broken]
    # meanwhile a validation error in another (intact) statement is reported too
    at = pos(GOOD, '"list_pods", resource)', len('"list_pods", resource)'))
    change(client, uri, 3, ' when { principal.role == "x" }', t.Range(start=at, end=at))
    both = await wait_diags(client, uri, lambda d: any("a grant has no attribute 'role'" in x.message for x in d))
    assert {x.code for x in both} == {"syntax", "validation"}
    # fix both
    change(client, uri, 4, GOOD)
    fixed = await wait_diags(client, uri, lambda d: not any(x.severity == t.DiagnosticSeverity.Error for x in d))
    assert not [x for x in fixed if x.code in ("syntax", "validation")]


async def test_validation_diagnostic_with_notes_and_docs_link(client):
    text = 'permit (principal, action, resource) when { context.amount > 5 };\n'
    uri = open_doc(client, "v.mcpp", text)
    diags = await wait_diags(client, uri, lambda d: any(x.code == "validation" for x in d))
    d = next(x for x in diags if x.code == "validation")
    assert "context has no attribute 'amount'" in d.message
    assert "note: tool-call arguments are under context.input" in d.message
    assert d.range.start == pos(text, "context.amount")
    assert d.range.end == pos(text, " > 5")
    assert d.code_description.href.endswith("docs/editors.md#validation")


async def test_ranges_count_utf16_code_units(client):
    # an astral-plane character (2 UTF-16 units) and a BMP accent (1 unit) before the error
    text = '// 😀 é\n@reason("🚀🚀 launch") permit (principal, action, resource) when { context.nope };\n'
    uri = open_doc(client, "u.mcpp", text)
    diags = await wait_diags(client, uri, lambda d: any(x.code == "validation" for x in d))
    d = next(x for x in diags if x.code == "validation")
    assert d.range.start == pos(text, "context.nope")
    assert d.range.start.character == len('@reason("🚀🚀 launch") permit (principal, action, resource) when { '.encode("utf-16-le")) // 2


async def test_catalog_findings_with_did_you_mean(client):
    text = ('@catalog("k8s.tools.json")\ndefault deny;\n'
            'permit (principal, action == Action::"delete_pods", resource);\n'
            'permit (principal, action == Action::"delete_pod", resource) when { context.input.namspace == "dev" };\n')
    uri = open_doc(client, "c.mcpp", text)
    diags = await wait_diags(client, uri, lambda d: {"catalog-unknown-tool", "catalog-unknown-argument"} <= {x.code for x in d})
    tool = next(x for x in diags if x.code == "catalog-unknown-tool")
    assert "did you mean 'delete_pod'" in tool.message
    assert tool.range.start == pos(text, 'Action::"delete_pods"')
    assert tool.data["fix"]["edits"][0]["newText"] == 'Action::"delete_pod"'


async def test_missing_catalog_is_an_error_at_the_annotation(client):
    text = '@catalog("nope.json")\ndefault deny;\n'
    uri = open_doc(client, "m.mcpp", text)
    diags = await wait_diags(client, uri, lambda d: any(x.code == "catalog" for x in d))
    d = next(x for x in diags if x.code == "catalog")
    assert "no such catalog file" in d.message
    assert d.range.start == pos(text, "@catalog")


UNREADABLE_CATALOGS = [  # (id, catalog text as written to disk, what the diagnostic names)
    ("lone-surrogate-key", '{"tools": [{"name": "t", "inputSchema": {"type": "object", '
                           '"properties": {"a\\ud800": {"type": "string"}}}}]}', "/tools/0/inputSchema/properties"),
    ("lone-surrogate-name", '{"tools": [{"name": "t\\udc00", "inputSchema": {"type": "object"}}]}', "/tools/0/name"),
    ("nan", '{"tools": [{"name": "t", "inputSchema": {"type": "object", "properties": '
            '{"n": {"type": "number", "maximum": NaN}}}}]}', "/tools/0/inputSchema/properties/n/maximum"),
    ("huge-exponent", '{"tools": [{"name": "t", "inputSchema": {"type": "object", "properties": '
                      '{"n": {"type": "number", "default": -1e99999}}}}]}', "/tools/0/inputSchema/properties/n/default"),
]


@pytest.mark.parametrize("text,where", [c[1:] for c in UNREADABLE_CATALOGS], ids=[c[0] for c in UNREADABLE_CATALOGS])
async def test_an_unreadable_catalog_is_a_diagnostic_and_the_server_goes_on(client, text, where):
    """hostile review 30, G1: a catalog with a lone surrogate or a number no float holds
    made the language server's didOpen fail (nothing published). It is a `catalog`
    diagnostic at the annotation, naming where in the catalog, and the server answers on."""
    (client.ws / "odd.json").write_text(text, encoding="utf-8")
    doc = '@catalog("odd.json")\ndefault deny;\n'
    uri = open_doc(client, "odd.mcpp", doc)
    diags = await wait_diags(client, uri, lambda d: any(x.code == "catalog" for x in d))
    d = next(x for x in diags if x.code == "catalog")
    assert where in d.message, d.message
    assert d.range.start == pos(doc, "@catalog")
    uri2 = open_doc(client, "fine.mcpp", "permit (principal, action, resource) when { 1 < };\n")
    await wait_diags(client, uri2, lambda d: len(d) == 1)


async def test_close_clears_diagnostics(client):
    uri = open_doc(client, "x.mcpp", "permit (principal, action, resource) when { 1 < };\n")
    await wait_diags(client, uri, lambda d: len(d) == 1)
    client.text_document_did_close(t.DidCloseTextDocumentParams(text_document=t.TextDocumentIdentifier(uri=uri)))
    await wait_diags(client, uri, lambda d: d == [])


async def test_quick_fixes_for_language_and_catalog_diagnostics(client):
    text = ('@catalog("k8s.tools.json")\ndefault deny;\n'
            'permit (principal, action == Action::"delete_pods", resource);\n'
            'permit (principal, action == Action::"list_pods", resource) when { context.input.namespace = "dev" };\n'
            'permit (principal, action == Action::"get_secret", resource) when { context.name == "x" };\n')
    uri = open_doc(client, "q.mcpp", text)
    diags = await wait_diags(client, uri, lambda d: {"syntax", "validation", "catalog-unknown-tool"} <= {x.code for x in d})
    actions = await client.text_document_code_action_async(t.CodeActionParams(
        text_document=t.TextDocumentIdentifier(uri=uri),
        range=t.Range(start=t.Position(line=0, character=0), end=t.Position(line=5, character=0)),
        context=t.CodeActionContext(diagnostics=diags)))
    by_title = {a.title: a for a in actions}
    assert set(by_title) == {"Replace '=' with '=='", "Use context.input.name", 'Replace with Action::"delete_pod"'}
    assert all(a.kind == t.CodeActionKind.QuickFix for a in actions)
    (edit,) = by_title["Replace '=' with '=='"].edit.changes[uri]
    assert edit.range.start == pos(text, '= "dev"') and edit.new_text == "=="
    (edit,) = by_title["Use context.input.name"].edit.changes[uri]
    assert edit.range.start == pos(text, "context.name") and edit.new_text == "context.input.name"
    # a fix whose text has changed under it is not offered
    change(client, uri, 2, text.replace('"delete_pods"', '"delete_podz"'))
    await wait_diags(client, uri, lambda d: any("delete_podz" in x.message for x in d))
    stale = await client.text_document_code_action_async(t.CodeActionParams(
        text_document=t.TextDocumentIdentifier(uri=uri),
        range=t.Range(start=t.Position(line=0, character=0), end=t.Position(line=5, character=0)),
        context=t.CodeActionContext(diagnostics=[x for x in diags if x.code == "catalog-unknown-tool"])))
    assert list(stale or []) == []


async def test_catalog_created_later_is_picked_up_when_the_client_reports_it(client):
    text = '@catalog("later.json")\ndefault deny;\npermit (principal, action == Action::"delete_pods", resource);\n'
    uri = open_doc(client, "l.mcpp", text)
    await wait_diags(client, uri, lambda d: any(x.code == "catalog" for x in d))
    import shutil

    shutil.copy(client.ws / "k8s.tools.json", client.ws / "later.json")
    client.workspace_did_change_watched_files(t.DidChangeWatchedFilesParams(changes=[
        t.FileEvent(uri=(client.ws / "later.json").as_uri(), type=t.FileChangeType.Created)]))
    diags = await wait_diags(client, uri, lambda d: any(x.code == "catalog-unknown-tool" for x in d))
    assert not any(x.code == "catalog" for x in diags)


async def test_crlf_line_endings(client):
    text = "default deny;\r\n// note\r\npermit (principal, action, resource) when { context.oops };\r\n"
    uri = open_doc(client, "crlf.mcpp", text)
    diags = await wait_diags(client, uri, lambda d: any(x.code == "validation" for x in d))
    d = next(x for x in diags if x.code == "validation")
    assert d.range.start == t.Position(line=2, character=len("permit (principal, action, resource) when { "))
    assert d.range.end == t.Position(line=2, character=len("permit (principal, action, resource) when { context.oops"))
