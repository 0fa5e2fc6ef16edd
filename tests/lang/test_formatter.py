"""Formatter: canonical, idempotent, comment-preserving; parse(fmt(p)) == p."""

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

import pytest

from mcpp.lang import ir
from mcpp.lang.formatter import format_document, format_source
from mcpp.lang.parser import parse
from tests.strategies import documents

EXAMPLES = sorted(Path(__file__).resolve().parents[2].joinpath("examples").glob("*.mcpp"))


def test_canonical_layout():
    src = (
        "// header\n\n"
        "default   deny ;\n"
        "@id(\"x\") permit(principal,action in [Action::\"a\",Action::\"b\"],resource)"
        " when{context.input.n>=1&&context.input.s like \"a*\"} // trailing\n"
        "  unless {  principal in Group::\"ops\" };"
    )
    assert format_source(src) == (
        "// header\n\n"
        "default deny;\n\n"
        '@id("x")\n'
        'permit (principal, action in [Action::"a", Action::"b"], resource)\n'
        'when { context.input.n >= 1 && context.input.s like "a*" } // trailing\n'
        'unless { principal in Group::"ops" };\n'
    )


def test_long_conditions_break_at_top_level_operator():
    cond = " && ".join(f'context.input.k{i} == "value-{i}"' for i in range(4))
    out = format_source(f"forbid (principal, action, resource) when {{ {cond} }};")
    assert out.splitlines()[1:] == [
        "when {",
        '  context.input.k0 == "value-0" &&',
        '  context.input.k1 == "value-1" &&',
        '  context.input.k2 == "value-2" &&',
        '  context.input.k3 == "value-3"',
        "};",
    ]


def test_comments_are_kept_everywhere():
    src = (
        "// a\n"
        "permit (\n"
        "  principal, // in the scope\n"
        '  action == Action::"t",\n'
        "  resource\n"
        ")\n"
        "// before the clause\n"
        "when { context.input.a == 1 } // after the clause\n"
        "unless { context.input.b == 2 }; // after the statement\n"
        "// the end\n"
    )
    out = format_source(src)
    for c in ("// a", "// in the scope", "// before the clause", "// after the clause", "// after the statement", "// the end"):
        assert c in out
    assert format_source(out) == out


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_formatted(path):
    text = path.read_text()
    assert format_source(text) == text


def test_precedence_parentheses_are_minimal_and_correct():
    src = "permit (principal, action, resource) when { (context.input.a || true) && !(context.input.c == 1) };"
    out = format_source(src)
    assert "when { (context.input.a || true) && !(context.input.c == 1) }" in out
    assert parse(out).statements == parse(src).statements
    src2 = "permit (principal, action, resource) when { -context.input.d < 0 && !context.input.e.f };"
    assert "when { -context.input.d < 0 && !context.input.e.f }" in format_source(src2)


@given(documents(cedar=False))
def test_parse_fmt_roundtrip_on_random_policies(doc):
    text = format_document(doc)
    again = parse(text)
    assert again.statements == doc.statements
    assert format_document(again) == text


@given(
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20
    )
)
def test_strings_roundtrip_through_quoting(s):
    doc = ir.Document(
        (
            ir.Policy(
                "permit",
                ir.Scope(),
                (ir.Clause("when", ir.Compare("==", ir.GetAttr(ir.GetAttr(ir.Var("context"), "input"), s or "k"), ir.Lit(s))),),
                (ir.Annotation("reason", s),),
            ),
        )
    )
    text = format_document(doc)
    assert parse(text).statements == doc.statements


def test_comments_in_lists_stay_with_their_items():
    src = 'hide [\n  // destructive\n  Action::"delete_channel", // never\n  Action::"kick_user"   // people\n];\n'
    out = format_source(src)
    assert out == 'hide [\n  // destructive\n  Action::"delete_channel", // never\n  Action::"kick_user" // people\n];\n'


@given(documents(cedar=False), st.data())
def test_fmt_keeps_every_comment_and_is_idempotent(doc, data):
    lines = format_document(doc).splitlines()
    out = []
    for i, line in enumerate(lines):
        if data.draw(st.booleans(), label=f"above {i}"):
            out.append(f"// above {i}")
        out.append(line + (f" // after {i}" if data.draw(st.booleans(), label=f"after {i}") else ""))
    text = "\n".join(out) + "\n"
    formatted = format_source(text)
    for c in [line[line.index("//"):] for line in out if "//" in line]:
        for part in c.split("//")[1:]:
            assert "//" + part.rstrip() in formatted or ("//" + part).rstrip() in formatted
    assert format_source(formatted) == formatted
    assert parse(formatted).statements == doc.statements
