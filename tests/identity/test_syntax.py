"""`entity User …` and the principal in the syntax: what parses to what, the builder's
errors, the formatter's round trip, and stock Lark agreeing with mcpp's parser."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from mcpp.lang import ir
from mcpp.lang.formatter import format_document, format_source
from mcpp.lang.parser import STATEMENT_KEYWORDS, parse, parse_partial

from ..lang.test_grammar_agreement import agree
from .strategies import identity_documents

A = ir.AttrDecl

PARSES = [
    ("entity User;", ir.EntityDecl("User")),
    ("entity User in Group;", ir.EntityDecl("User", ("Group",))),
    ("entity User in [Group];", ir.EntityDecl("User", ("Group",))),
    ("entity User in [];", ir.EntityDecl("User")),
    ("entity User {};", ir.EntityDecl("User")),
    ("entity User = { email: String };", ir.EntityDecl("User", (), (A("email", "String"),))),
    ("entity User in [Group] { email: String, scopes: Set<String>, refund_cap?: Long };",
     ir.EntityDecl("User", ("Group",), (A("email", "String"), A("scopes", "Set<String>"), A("refund_cap", "Long", True)))),
    ('entity User { "x-team": Set < Bool >, if: Long, };',
     ir.EntityDecl("User", (), (A("x-team", "Set<Bool>"), A("if", "Long")))),
    ('@doc("who") entity User { a?: Bool };',
     ir.EntityDecl("User", (), (A("a", "Bool", True),), (ir.Annotation("doc", "who"),))),
]


@pytest.mark.parametrize("text, want", PARSES)
def test_declarations_parse(text, want):
    (got,) = parse(text).statements
    assert got == want
    assert agree(text)


ERRORS = [
    ("entity User { a: Int };", "unknown attribute type 'Int'"),
    ("entity User { a: Set };", "Set needs an element type"),
    ("entity User { a: String<Long> };", "String takes no element type"),
    ("entity User { a: Set<Set<String>> };", "sets of sets are not supported"),
    ("entity User { a: Set<Decimal> };", "unknown set element type 'Decimal'"),
    ("entity User { a: String, a: Long };", "attribute 'a' is declared twice"),
    ('limit "c" (principal, action, resource) max 1 per hour scope user;', "use grant, principal or policy"),
]


@pytest.mark.parametrize("text, message", ERRORS)
def test_builder_errors(text, message):
    _, diags = parse_partial(text, "t.mcpp")
    assert any(message in d.message for d in diags), [d.message for d in diags]
    assert agree(text)


SYNTAX_ERRORS = [
    "entity;",
    "entity User in Group, Server;",
    "entity User { a String };",
    "entity User { a: };",
    "entity User { a?: Set<String };",
    "entity User::\"x\";",
    "entity User { a: Long } when { true };",
]


@pytest.mark.parametrize("text", SYNTAX_ERRORS)
def test_malformed_declarations_are_rejected_alike(text):
    assert not agree(text)
    _, diags = parse_partial(text, "t.mcpp")
    assert diags and all(d.span.line == 1 for d in diags)


def test_entity_is_a_statement_keyword_and_a_name_elsewhere():
    assert "entity" in STATEMENT_KEYWORDS
    text = 'permit (principal, action, resource) when { context.input.entity == "x" && {entity: 1} has entity };'
    assert agree(text)
    # a broken statement does not swallow the declaration after it
    _, diags = parse_partial("permit (principal, action resource)\nentity User { a: Long };", "t.mcpp")
    assert len(diags) == 1 and diags[0].span.line == 1


def test_limit_scope_principal():
    (lim,) = parse('limit "c" (principal, action, resource) max 5 per day scope principal;').statements
    assert lim.scope_kind == "principal"


FORMATTED = [
    ("entity User in Group {email:String,refund_cap ? : Long,};",
     "entity User in [Group] { email: String, refund_cap?: Long };\n"),
    ("entity User = {};", "entity User;\n"),
    ('entity User { "a b": String };', 'entity User { "a b": String };\n'),
    ("entity User in [Group] { email: String, scopes: Set<String>, refund_cap?: Long, team: String, on_call: Bool };",
     "entity User in [Group] {\n  email: String,\n  scopes: Set<String>,\n  refund_cap?: Long,\n  team: String,\n"
     "  on_call: Bool\n};\n"),
    ("// who\nentity User { a: Long }; // after\n", "// who\nentity User { a: Long }; // after\n"),
    ("entity User { a: Long, // why\n b: Bool };", "// why\nentity User { a: Long, b: Bool };\n"),
]


@pytest.mark.parametrize("text, want", FORMATTED)
def test_formatter(text, want):
    got = format_source(text)
    assert got == want
    assert format_source(got) == got


@settings(max_examples=settings.default.max_examples, deadline=None)
@given(identity_documents())
def test_round_trip_and_agreement_on_random_documents(doc):
    text = format_document(doc)
    assert parse(text).statements == doc.statements
    assert format_source(text) == text
    assert agree(text)
