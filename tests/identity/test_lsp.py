"""The language server knows who the caller is: after `principal.` it offers a grant's
`label` and the attributes `entity User` declares; hovers explain `entity` and `User`."""

from __future__ import annotations

from mcpp.lsp.completion import Completer
from mcpp.lsp.documents import PolicyDocument
from mcpp.lsp.reference import hover_markdown


def complete(text: str, marker: str = "|") -> dict:
    at = text.index(marker)
    text = text.replace(marker, "")
    doc = PolicyDocument("file:///p.mcpp", "/p.mcpp", None)
    doc.update(text, 1, None, None, [])
    return {i.label: i for i in Completer(doc, None, "").complete(at).items}


def test_principal_attributes_are_offered():
    items = complete(
        'entity User in [Group] { email: String, scopes: Set<String>, refund_cap?: Long, "x-y": Bool };\n'
        "permit (principal, action, resource) when { principal.| };"
    )
    assert set(items) == {"label", "email", "scopes", "refund_cap"}  # a quoted name is not read after a dot
    assert items["refund_cap"].detail == "user attribute: Long?"
    doc = items["refund_cap"].documentation
    assert "principal has refund_cap" in (doc if isinstance(doc, str) else doc.value)
    assert items["scopes"].detail == "user attribute: Set<String>"


def test_without_a_declaration_only_label():
    assert set(complete("permit (principal, action, resource) when { principal.la| };")) == {"label"}


def test_limit_scopes_and_statement_snippets():
    assert set(complete('limit "c" (principal, action, resource) max 1 per hour scope |')) == {"grant", "principal", "policy"}
    assert "entity" in complete("|")


def test_hovers():
    assert "entity User in [Group]" in hover_markdown("entity", "")
    assert "OAuth" in hover_markdown("User", "")


def test_a_misspelt_declaration_gets_a_fix():
    from mcpp.lang.program import check_source
    from mcpp.lsp.fixes import language_fix

    text = "entity Usr { a: Long };"
    (d,) = check_source(text)[1]
    assert language_fix(d, text) == {"title": "Replace with User", "edits": [{"start": 7, "end": 10, "text": "User"}]}
