"""Hover, completion, go to definition, the outline and formatting, end to end."""

from __future__ import annotations

from lsprotocol import types as t

from .conftest import doc_id, open_doc, pos, wait_diags

POLICY = '''// a policy checked against the k8s catalog
@catalog("k8s.tools.json")
default deny;

group Action::"writes" = [Action::"delete_pod", Action::"scale_deployment"];

hide Action::"get_secret";

@id("non-prod")
@reason("Namespace is outside the allowed non-production set.")
permit (principal, action in Action::"writes", resource)
when { context.input.namespace in ["dev", "staging"] };

@id("manifests")
permit (principal, action == Action::"apply_manifest", resource)
when { context.input has kind && context.input.kind != "Namespace" };

@id("pod-budget")
limit "pod_deletes" (principal, action == Action::"delete_pod", resource)
  max 5 per hour scope grant;

// see "non-prod" and /policies/manifests for the write rules
@id("no-prod")
assert deny (principal, action == Action::"delete_pod", resource)
when { context.input.namespace == "prod" };
'''


async def opened(client, name="k.mcpp", text=POLICY):
    uri = open_doc(client, name, text)
    await wait_diags(client, uri, lambda _d: True)
    return uri


async def hover_at(client, uri, text, needle, delta=1, nth=0):
    return await client.text_document_hover_async(t.HoverParams(
        text_document=doc_id(uri), position=pos(text, needle, delta, nth)))


async def test_hover_tool_shows_catalog_description_and_schema(client):
    uri = await opened(client)
    h = await hover_at(client, uri, POLICY, 'Action::"apply_manifest"', 10)
    md = h.contents.value
    assert h.contents.kind == t.MarkupKind.Markdown
    assert "**tool** `apply_manifest`" in md
    assert "Apply a Kubernetes manifest." in md
    assert "`kind`: a string, one of" in md and '"Namespace"' in md
    assert "```json" in md and '"manifest"' in md  # the input schema
    assert "permit `manifests`" in md
    assert h.range.start == pos(POLICY, 'Action::"apply_manifest"')


async def test_hover_group_and_hidden_tool(client):
    uri = await opened(client)
    h = await hover_at(client, uri, POLICY, 'Action::"writes"', 10, nth=1)
    assert "**action group** `writes`" in h.contents.value
    assert "`delete_pod`" in h.contents.value and "`scale_deployment`" in h.contents.value
    h = await hover_at(client, uri, POLICY, 'Action::"get_secret"', 10)
    assert "Read a secret." in h.contents.value and "hidden" in h.contents.value


async def test_hover_argument_path_shows_schema_type(client):
    uri = await opened(client)
    h = await hover_at(client, uri, POLICY, "context.input.namespace in", len("context.input.n"))
    md = h.contents.value
    assert "**argument** `context.input.namespace`" in md
    assert "- `delete_pod`: a string — The namespace the pod lives in." in md
    assert "- `scale_deployment`: a string" in md
    h = await hover_at(client, uri, POLICY, "has kind", 5)
    assert "`context.input.kind`" in h.contents.value and "optional" not in h.contents.value.split("\n")[0]


async def test_hover_keywords_operators_methods(client):
    text = 'permit (principal, action, resource) when { context.input.u.matches("^a$") && context.input.n >= 2 };\n'
    uri = await opened(client, "h.mcpp", text)
    for needle, delta, expect in [("permit", 1, "**permit**"), ("when", 1, "**when { e }**"),
                                  ("matches", 2, "unanchored"), ("&&", 0, "**a && b**"),
                                  (">=", 1, "both must be numbers"), ("principal", 2, "**principal**")]:
        h = await hover_at(client, uri, text, needle, delta)
        assert h is not None, needle
        assert expect in h.contents.value, (needle, h.contents.value)
        assert "docs/language.md#" in h.contents.value
    assert await hover_at(client, uri, text, '"^a$"', 1) is None  # a string literal: nothing to say


async def completion_at(client, uri, text, needle, delta):
    res = await client.text_document_completion_async(t.CompletionParams(
        text_document=doc_id(uri), position=pos(text, needle, delta)))
    return {i.label: i for i in res.items}


async def test_completion_tool_names_inside_action_strings(client):
    text = POLICY + 'permit (principal, action == Action::"del", resource);\n'
    uri = await opened(client, "c.mcpp", text)
    items = await completion_at(client, uri, text, 'Action::"del"', len('Action::"del'))
    assert {"delete_pod", "list_pods", "apply_manifest", "writes"} <= set(items)
    it = items["delete_pod"]
    assert it.kind == t.CompletionItemKind.Function and it.detail == "Delete a pod"
    assert it.text_edit.range.start == pos(text, 'del", resource);')  # replaces what was typed
    assert items["writes"].detail == "action group"


async def test_completion_arguments_of_the_tool_in_scope(client):
    text = POLICY + 'forbid (principal, action == Action::"apply_manifest", resource) when { context.input. };\n'
    uri = await opened(client, "a.mcpp", text)
    items = await completion_at(client, uri, text, "when { context.input. }", len("when { context.input."))
    assert {"namespace", "kind", "manifest", "x-dry-run"} == {k for k, v in items.items() if v.kind == t.CompletionItemKind.Property}
    assert items["kind"].detail.startswith("a string, one of")
    assert items["x-dry-run"].text_edit.new_text == '["x-dry-run"]'  # not an identifier: index form
    assert "optional" in items["x-dry-run"].detail and "optional" not in items["kind"].detail
    # a group in scope: the union of its tools' arguments
    text2 = POLICY + 'forbid (principal, action in Action::"writes", resource) when { context.input.r };\n'
    uri2 = await opened(client, "g.mcpp", text2)
    items = await completion_at(client, uri2, text2, "when { context.input.r", len("when { context.input.r"))
    assert {"namespace", "name", "replicas", "grace_seconds"} == {k for k, v in items.items() if v.kind == t.CompletionItemKind.Property}
    assert "scale_deployment" in items["replicas"].detail


async def test_completion_snippets_keywords_operators_methods(client):
    text = POLICY + "\n"
    uri = await opened(client, "s.mcpp", text)
    res = await client.text_document_completion_async(t.CompletionParams(
        text_document=doc_id(uri), position=t.Position(line=POLICY.count("\n"), character=0)))
    items = {i.label: i for i in res.items}
    assert {"permit", "forbid", "limit", "assert", "default", "hide", "group"} <= set(items)
    assert items["permit"].insert_text_format == t.InsertTextFormat.Snippet
    assert "${2:tool}" in items["permit"].insert_text
    assert "max ${4:10} per ${5|minute,hour,day|}" in items["limit"].insert_text
    clause = 'permit (principal, action, resource) when { context.input.x  };\n'
    uri = await opened(client, "e.mcpp", clause)
    items = await completion_at(client, uri, clause, "context.input.x  }", len("context.input.x "))
    assert {"&&", "||", "==", "<=", "has", "like", "in", "context", "principal", "Action::"} <= set(items)
    assert items["&&"].kind == t.CompletionItemKind.Operator
    meth = 'permit (principal, action, resource) when { context.input.tags. };\n'
    uri = await opened(client, "m.mcpp", meth)
    items = await completion_at(client, uri, meth, "tags. }", len("tags."))
    assert {"contains", "containsAll", "containsAny", "isEmpty"} <= set(items)


async def test_definition_group_policy_ids_and_catalog(client):
    uri = await opened(client)
    # Action::"writes" in a scope → its group declaration
    locs = await client.text_document_definition_async(t.DefinitionParams(
        text_document=doc_id(uri), position=pos(POLICY, 'Action::"writes"', 12, nth=1)))
    assert len(locs) == 1 and locs[0].uri == uri
    assert locs[0].range.start == pos(POLICY, 'group Action::"writes"')
    # a policy id mentioned in a comment → that policy
    locs = await client.text_document_definition_async(t.DefinitionParams(
        text_document=doc_id(uri), position=pos(POLICY, '"non-prod" and', 3)))
    assert locs[0].range.start == pos(POLICY, '@id("non-prod")')
    # a decision's rule pointer → the policy it names
    locs = await client.text_document_definition_async(t.DefinitionParams(
        text_document=doc_id(uri), position=pos(POLICY, "/policies/manifests", 12)))
    assert locs[0].range.start == pos(POLICY, '@id("manifests")')
    # a tool → its entry in the catalog file
    locs = await client.text_document_definition_async(t.DefinitionParams(
        text_document=doc_id(uri), position=pos(POLICY, 'Action::"apply_manifest"', 12)))
    assert locs[0].uri.endswith("k8s.tools.json")
    catalog = (client.ws / "k8s.tools.json").read_text()
    assert locs[0].range.start == pos(catalog, '"name": "apply_manifest"')
    # the @id itself is the definition: nothing to jump to
    assert await client.text_document_definition_async(t.DefinitionParams(
        text_document=doc_id(uri), position=pos(POLICY, '@id("non-prod")', 6))) is None


async def test_document_symbols_outline_by_policy_id(client):
    uri = await opened(client)
    syms = await client.text_document_document_symbol_async(t.DocumentSymbolParams(text_document=doc_id(uri)))
    names = [(s.name, s.kind) for s in syms]
    assert names == [
        ("default deny", t.SymbolKind.Constant),
        ("writes", t.SymbolKind.Namespace),
        ("hide", t.SymbolKind.Key),
        ("non-prod", t.SymbolKind.Function),
        ("manifests", t.SymbolKind.Function),
        ("pod-budget", t.SymbolKind.Event),
        ("no-prod", t.SymbolKind.Boolean),
    ]
    writes = syms[1]
    assert [c.name for c in writes.children] == ["delete_pod", "scale_deployment"]
    non_prod = syms[3]
    assert non_prod.detail == "permit · in writes"
    assert non_prod.selection_range.start == pos(POLICY, '@id("non-prod")')
    assert non_prod.range.end == pos(POLICY, '"staging"] };', len('"staging"] };'))


async def test_formatting_whole_document(client):
    messy = '@id("x")   permit(principal,action==Action::"list_pods",resource)when{context.input.namespace=="dev"};\n'
    uri = await opened(client, "f.mcpp", messy)
    edits = await client.text_document_formatting_async(t.DocumentFormattingParams(
        text_document=doc_id(uri), options=t.FormattingOptions(tab_size=2, insert_spaces=True)))
    assert len(edits) == 1
    assert edits[0].range.start == t.Position(line=0, character=0)
    assert edits[0].new_text == ('@id("x")\npermit (principal, action == Action::"list_pods", resource)\n'
                                 'when { context.input.namespace == "dev" };\n')
    # formatted text formats to nothing; broken text is left alone
    uri2 = await opened(client, "g.mcpp", edits[0].new_text)
    assert list(await client.text_document_formatting_async(t.DocumentFormattingParams(
        text_document=doc_id(uri2), options=t.FormattingOptions(tab_size=2, insert_spaces=True)))) == []
    uri3 = await opened(client, "h.mcpp", "permit (principal,\n")
    assert await client.text_document_formatting_async(t.DocumentFormattingParams(
        text_document=doc_id(uri3), options=t.FormattingOptions(tab_size=2, insert_spaces=True))) is None


async def test_hover_and_completion_work_in_a_statement_that_does_not_parse_yet(client):
    text = POLICY + 'forbid (principal, action == Action::"delete_pod", resource) when { context.input.\n'
    uri = await opened(client, "t.mcpp", text)
    h = await hover_at(client, uri, text, 'Action::"delete_pod", resource) when', 12)
    assert "Delete one pod by name in a namespace." in h.contents.value
    items = await completion_at(client, uri, text, "when { context.input.\n", len("when { context.input."))
    assert {"namespace", "name", "grace_seconds"} <= set(items)
