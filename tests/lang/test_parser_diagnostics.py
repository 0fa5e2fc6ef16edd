"""Syntax diagnostics a user reads: where they point, in words (never a grammar name), in
file order."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings

from mcpp.lang.diagnostics import MCPPError
from mcpp.lang.parser import _parser, parse_partial
from mcpp.lang.program import load_program

from .texts import mutations, soups

POLICY = "permit (principal, action, resource)"


@pytest.mark.parametrize(
    "src, message, at",
    [
        # a `;` missing mid-file: at the next statement's start, not "end of input"
        (f"{POLICY}\n{POLICY};", "expected ';' before 'permit'", "permit (principal, action, resource);"),
        (f"{POLICY} when {{ true }}\nforbid (principal, action, resource);", "expected ';' before 'forbid'", "forbid"),
        (f'{POLICY}\n@id("x") {POLICY};', "expected ';' before '@id'", "@id"),
        (f"default deny\n{POLICY};", "expected ';' before 'permit'", "permit"),
        (f'{POLICY}\nlimit "c" (principal, action, resource) max 1 per hour;', "expected ';' before 'limit'", "limit"),
        ('hide Action::"x"\nassert deny (principal, action, resource);', "expected ';' before 'assert'", "assert"),
        # missing at the very end: the end of the input is where it is missing
        (f"{POLICY} when {{ true }}", "unexpected end of input, expected one of ';'", "\0"),
        # grammar names never leak: an entity, in words
        ('group Action::"g" = [foo];', """expected one of ']', an entity (Type::"id")""", "foo"),
        ("hide x;", "an entity (Type::\"id\")", "x"),
        ("default maybe;", "expected 'allow' or 'deny'", "maybe"),
        (f"{POLICY} when {{ principal is 1 }};", "expected a name", "1"),
        (f"{POLICY} when {{ context.input.x inside() }};", "unexpected 'inside', expected one of an operator", "inside"),
    ],
)
def test_syntax_error_messages(src, message, at):
    _, diags = parse_partial(src, "p.mcpp")
    assert len(diags) == 1, diags
    d = diags[0]
    assert message in d.message, d.message
    want = len(src.rstrip()) if at == "\0" else src.index(at)
    assert d.span.start == want


TERMINAL_NAME = re.compile(r"\b(__ANON\w*|[A-Z][A-Z_]*[A-Z])\b")


def _no_grammar_names(src: str) -> None:
    terminals = set(_parser().lexicon.terms) | {"$END"}
    for d in parse_partial(src, "t.mcpp")[1]:
        leaked = {m for m in TERMINAL_NAME.findall(d.message) if m in terminals or m.startswith("__ANON")}
        assert not leaked, (src, d.message)


@settings(max_examples=settings.default.max_examples * 3, deadline=None)
@given(soups())
def test_messages_never_name_grammar_terminals_soups(src):
    _no_grammar_names(src)


@settings(max_examples=settings.default.max_examples * 3, deadline=None)
@given(mutations())
def test_messages_never_name_grammar_terminals_mutations(src):
    _no_grammar_names(src)


@settings(max_examples=settings.default.max_examples * 3, deadline=None)
@given(mutations())
def test_diagnostics_are_in_file_order(src):
    diags = parse_partial(src, "t.mcpp")[1]
    starts = [(d.span.start, d.span.line, d.span.col) for d in diags]
    assert starts == sorted(starts)


def test_diagnostics_sorted_across_statements_and_builder_errors():
    src = (
        f'{POLICY} when {{ context.input.a.lessThan(1) }};\n'
        f"{POLICY} when {{ context.input.x == }};\n"
        f'{POLICY} when {{ "\\q" == context.input.y && decimal("1") }};\n'
        f"{POLICY}\n{POLICY};\n"
    )
    diags = parse_partial(src, "t.mcpp")[1]
    assert [d.span.line for d in diags] == [1, 2, 3, 3, 5]
    assert "expected ';' before 'permit'" in diags[-1].message


@pytest.mark.parametrize(
    "regex, words",
    [
        ("(a)\\\\1", "RE2 has no backreferences"),
        ("(?P<n>a)(?P=n)", "RE2 has no backreferences"),
        ("\\\\k<n>", "RE2 has no backreferences"),
        ("(?=a)", "no lookahead or lookbehind"),
        ("(?<!a)b", "no lookahead or lookbehind"),
    ],
)
def test_regex_messages_say_what_re2_lacks(regex, words):
    with pytest.raises(MCPPError) as exc:
        load_program(f'{POLICY} when {{ context.input.s.matches("{regex}") }};')
    assert words in str(exc.value)


@pytest.mark.parametrize("number", ["1" * 5000, "1e999", str(int(1.7976931348623157e308) + 1)])
@pytest.mark.parametrize("where", ["when { context.input.x == N }", "max N per hour"])
def test_numbers_beyond_a_double_are_errors_not_crashes(number, where):
    head = 'limit "c" (principal, action, resource) ' if where.startswith("max") else f"{POLICY} "
    src = head + where.replace("N", number) + (";" if where.startswith("max") else ";")
    _, diags = parse_partial(src, "t.mcpp")
    assert [d.message.split(" is ")[-1] for d in diags] == ["out of range"]


# counters are kept as doubles, exact for every integer up to 2^53: a larger max is an
# error at its place (hostile review 41, H41-1b: past 2^53 a spent budget admitted small calls)
@pytest.mark.parametrize("mx, error", [
    ("1000000000000000000", True),
    ("9007199254740993", True),
    ("9.1e15", True),
    ("9007199254740992", False),
    ("9007199254740991", False),
    ("9e15", False),
])
def test_a_limit_max_beyond_2_53_is_an_error_at_its_span(mx, error):
    src = f'{POLICY};\nlimit "c" (principal, action, resource) max {mx} per hour;'
    if not error:
        load_program(src, "p.mcpp")
        return
    with pytest.raises(MCPPError) as exc:
        load_program(src, "p.mcpp")
    [d] = exc.value.diagnostics
    assert d.message == "limit max must be at most 2^53 (9007199254740992): counters are kept as doubles, exact up to it"
    assert d.span.start == src.index("max ") and d.span.end == src.index(" per")
    assert (d.file, d.span.line, d.span.col) == ("p.mcpp", 2, src.index("max ") - src.index("limit") + 1)
