"""The RE2 → Z3 translation agrees with google-re2's search (the evaluator's meaning)."""

from __future__ import annotations

import pytest
import z3
from hypothesis import given
from hypothesis import strategies as st

from mcpp.analyzer import regex as rx
from mcpp.analyzer.sym import string_val
from mcpp.lang.regex import compile_regex

from .strategies import regexes, texts

CTX = z3.Context()
TR = rx.Z3Regex(CTX)


def z3_search(pattern: str, text: str) -> bool:
    lang = TR(rx.search_ast(pattern))
    r = z3.simplify(z3.InRe(string_val(text, CTX), lang))
    if z3.is_true(r) or z3.is_false(r):
        return z3.is_true(r)
    s = z3.Solver(ctx=CTX)  # pragma: no cover - simplify decides ground membership
    s.add(r)
    return s.check() == z3.sat


def re2_search(pattern: str, text: str) -> bool:
    return compile_regex(pattern).search(text) is not None


@given(regexes, st.lists(texts, min_size=1, max_size=6))
def test_translation_agrees_with_re2(pattern, strings):
    for text in strings:
        assert z3_search(pattern, text) == re2_search(pattern, text), (pattern, text)


@given(regexes)
def test_z3_finds_matching_strings(pattern):
    """Satisfiability direction: a string Z3 says matches really matches, and Z3 finds one
    whenever RE2 matches the empty string or a short sample."""
    lang = TR(rx.search_ast(pattern))
    s = z3.Solver(ctx=CTX)
    x = z3.String("x", CTX)
    s.add(z3.InRe(x, lang), z3.Length(x) <= 6)
    s.set("timeout", 5000)
    r = s.check()
    if r == z3.sat:
        from mcpp.analyzer.sym import string_of

        found = string_of(s.model().eval(x, model_completion=True))
        assert re2_search(pattern, found), (pattern, found)
    elif r == z3.unsat:
        assert not re2_search(pattern, "")


@pytest.mark.parametrize(
    "pattern,text,expected",
    [
        ("^a$", "a\n", False),  # RE2's `$` is only the end of text
        ("a$", "ba", True),
        ("(^|/)secrets?(/|$)", "x/secret/y", True),
        ("(^|/)secrets?(/|$)", "xsecret", False),
        ("a|^b", "cb", False),
        ("a|^b", "ca", True),
        ("^$", "", True),
        ("^$", "x", False),
        ("a{0}", "", True),  # never Loop(r, 0, 0): that is unbounded in Z3
        ("^a{0}$", "a", False),
        ("^x{2,}$", "xxxxx", True),
        ("^x{2,}$", "x", False),
        ("\\s", "\v", False),  # RE2's \s has no \v
        ("[[:space:]]", "\v", True),
        ("(?i)k", "\u212a", True),  # Unicode case folding: KELVIN SIGN
        ("(?i)[^k]", "\u212a", False),
        ("(?i)\\W", "\u212a", False),
        (".", "\n", False),
        ("(?s).", "\n", True),
        ("[^a]", "\n", True),
        ("\\d", "\u0663", False),  # ASCII digits only
        ("\\w", "\u00e9", False),
        ("^\\x{1F600}$", "\U0001f600", True),
        ("\\Qa.b\\E", "axb", False),
        ("a*^b", "b", True),
        ("a*^b", "ab", False),
        ("b$c*", "b", True),
    ],
)
def test_known_cases(pattern, text, expected):
    assert re2_search(pattern, text) == expected
    assert z3_search(pattern, text) == expected


@pytest.mark.parametrize("pattern", ["\\bword\\b", "\\Bx", "(?m)^a", "(?m:a$)", "\\p{L}"])
def test_unsupported_features_are_reported(pattern):
    with pytest.raises(rx.Unsupported):
        rx.search_ast(pattern)


def test_supported_unicode_class():
    # \p{Greek} lies wholly below U+2FA20, so RE2's own table is used exactly
    assert z3_search("^\\p{Greek}+$", "\u03b1\u03b2")
    assert not z3_search("^\\p{Greek}+$", "ab")


def test_invalid_regex_is_rejected():
    from mcpp.lang.regex import RegexError

    with pytest.raises(RegexError):
        rx.search_ast("a(")


@pytest.mark.parametrize(
    "pattern,start,end",
    [("^a$", True, True), ("^a", True, False), ("a$", False, True), ("a", False, False), ("^a|b", False, False),
     ("^(a|b)$", True, True), ("\\Aa\\z", True, True), ("(?:^a|^b)$", True, True),
     ("^https://h/", True, True), ("^https://h(/|$)", True, True), ("^https://(a|b/)", True, False)],
)
def test_anchored(pattern, start, end):
    assert rx.anchored(pattern) == (start, end)


@pytest.mark.parametrize("atom", [".", "[^a]", "\\W", "\\S", "[^\\x{1F600}]", "[[:^alpha:]]", "\\D", "[^\\n]"])
@pytest.mark.parametrize("fold", [False, True])
def test_character_sets_hold_above_the_scanned_planes(atom, fold):
    """The fast scan of the first three planes extends to all of Unicode exactly."""
    import re2

    ivs = rx.charset(atom, fold, False)
    rx_ = re2.compile(("(?i)" if fold else "") + f"^(?:{atom})$")
    for cp in (0x7F, 0x2FA1F, 0x2FFFF, 0x30000, 0x31350, 0xE0001, 0x10FFFF):
        inside = any(lo <= cp <= hi for lo, hi in ivs)
        assert inside == (rx_.search(chr(cp)) is not None), (atom, hex(cp))
