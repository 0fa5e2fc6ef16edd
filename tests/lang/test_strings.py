"""String literals and `like` patterns mean what they mean in Cedar: each escape case is
checked against cedarpy (the reference), not only against the expected answer written here."""

from __future__ import annotations

import cedarpy
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcpp.lang import ir
from mcpp.lang.diagnostics import MCPPError
from mcpp.lang.parser import parse
from mcpp.lang.regex import compile_regex, like_to_regex
from mcpp.lang.strings import quote, quote_like, unescape


def cedar(op: str, literal: str, value: str) -> str:
    """cedarpy's answer for `context.s <op> "<literal>"`: Allow, Deny or error."""
    policy = f'permit(principal, action, resource) when {{ context.s {op} "{literal}" }};'
    request = {"principal": 'User::"u"', "action": 'Action::"a"', "resource": 'R::"r"', "context": {"s": value}}
    r = cedarpy.is_authorized(request, policy, [])
    if r.diagnostics.errors:
        return "error"
    return str(r.decision).rsplit(".", 1)[-1]


def mcpp(op: str, literal: str, value: str) -> str:
    """mcpp's answer for the same condition: the parsed literal, compared or matched."""
    try:
        doc = parse(f'permit (principal, action, resource) when {{ context.input.s {op} "{literal}" }};')
    except MCPPError:
        return "error"
    e = doc.statements[0].clauses[0].expr
    if isinstance(e, ir.Like):
        hit = compile_regex(like_to_regex(e.pattern)).search(value) is not None
    else:
        hit = e.right.value == value
    return "Allow" if hit else "Deny"


LIKE = [
    # pattern as written in the source, text, Cedar's answer
    (r"a\u{2a}b", "axxb", "Allow"),  # a star written as a Unicode escape is a wildcard
    (r"a\u{2a}b", "a*b", "Allow"),
    (r"a\u{2A}b", "ab", "Allow"),
    (r"a\x2ab", "axb", "Allow"),  # so is one written as a hex escape
    (r"\u{2a}\u{2a}", "", "Allow"),
    (r"a\*b", "a*b", "Allow"),  # only \* is a literal star
    (r"a\*b", "axb", "Deny"),
    (r"\*\u{2a}", "*x", "Allow"),
    (r"\*\u{2a}", "x", "Deny"),
    (r"a\\*b", "a\\xb", "Allow"),  # an escaped backslash, then a wildcard
    (r"a\\*b", "a*b", "Deny"),
    (r"a\\\*b", "a\\*b", "Allow"),  # an escaped backslash, then a literal star
    (r"a\\\*b", "a\\xb", "Deny"),
    (r"\u{5c}*", "\\x", "Allow"),  # a backslash written as an escape does not escape the star
    (r"\u{5c}\*", "\\*", "Allow"),
    (r"\u{5c}\*", "\\x", "Deny"),
    (r"\x5c*", "\\x", "Allow"),
    (r"\u{2a}\n", "x\n", "Allow"),
    (r"\u{2a}\n", "x", "Deny"),
    ("**", "", "Allow"),
    ("prod-*", "prod-1\nx", "Allow"),  # a wildcard takes newlines too
    (r"\q", "q", "error"),
]

EQUALS = [
    (r"\x2a", "*", "Allow"),
    (r"\x2A", "*", "Allow"),
    (r"\x7f", "\x7f", "Allow"),
    (r"\x00", "\0", "Allow"),
    (r"\x80", "\x80", "error"),  # \x stops at 7f
    (r"\x7", "\x07", "error"),
    (r"\X2a", "*", "error"),
    (r"\u{0}", "\0", "Allow"),
    (r"\u{00002a}", "*", "Allow"),
    (r"\u{000002a}", "*", "error"),  # at most 6 digits
    (r"\u{}", "", "error"),
    (r"\u{D800}", "", "error"),  # not a scalar value
    (r"\u{110000}", "", "error"),
    (r"\u{10FFFF}", "\U0010ffff", "Allow"),
    (r"\u2a", "*", "error"),
    (r"\*", "*", "error"),  # \* only in a like pattern
    (r"\'", "'", "Allow"),
    (r"\"", '"', "Allow"),
    (r"\0", "\0", "Allow"),
    (r"\r\t", "\r\t", "Allow"),
]


@pytest.mark.parametrize("literal, value, want", LIKE)
def test_like_escapes_as_cedar(literal, value, want):
    assert cedar("like", literal, value) == want
    assert mcpp("like", literal, value) == want


@pytest.mark.parametrize("literal, value, want", EQUALS)
def test_string_escapes_as_cedar(literal, value, want):
    assert cedar("==", literal, value) == want
    assert mcpp("==", literal, value) == want


def test_like_chunks():
    assert unescape(r'"a\u{2a}b"', star=True) == ("a", "b")
    assert unescape(r'"a\*b"', star=True) == ("a*b",)
    assert unescape(r'"a\\*b"', star=True) == ("a\\", "b")
    assert unescape(r'"a\u{2a}b"') == "a*b"


@given(st.lists(st.text(max_size=4), min_size=1, max_size=4))
def test_like_patterns_round_trip_through_quote_like(chunks):
    chunks = tuple(chunks)
    assert unescape(quote_like(chunks), star=True) == chunks


@given(st.text(max_size=12))
def test_strings_round_trip_through_quote(s):
    assert unescape(quote(s)) == s
