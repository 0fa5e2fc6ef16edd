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
    # what Z3 sees of the text: a code point from U+2FA20 up is the block that stands for it
    seen = "".join(c if ord(c) < rx.HIGH else chr(rx.HIGH) for c in text)
    r = z3.simplify(z3.InRe(string_val(seen, CTX, raw=True), lang))
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


# ---- the zone the high block stands for (U+2FA20..U+10FFFF) ------------------------------------
#
# Z3 strings stop at U+2FFFF, and U+2FA20.. stands for every code point above it. An atom
# naming a code point in U+2FA20..U+2FFFF (U+2FFFF itself above all) is *not* uniform above
# U+2FFFF: `[\x{0}-\x{2FFFF}]` stops there, `[^\x{2FA20}-\x{2FFFF}]` holds U+30000 (H41-2).

HIGH_PROBES = (0x2FA1F, 0x2FA20, 0x2FFFF, 0x30000, 0x31350, 0xE0001, 0xF0000, 0x10FFFD, 0x10FFFF)
_ZONE = (0x0, 0x61, 0x10000, 0x20000, 0x2F800, 0x2FA1F, 0x2FA20, 0x2FFFE, 0x2FFFF, 0x30000, 0x31350, 0xE0001,
         0x10FFFE, 0x10FFFF)


def _cp(cp: int, literal: bool) -> str:
    return chr(cp) if literal and cp > 0x7F else f"\\x{{{cp:X}}}"


def _zone_atoms() -> list[str]:
    out = []
    for literal in (False, True):
        for lo, hi in [(0x0, 0x2FFFF), (0x20000, 0x2FFFF), (0x2FA20, 0x2FFFF), (0x2FA00, 0x2FFFF), (0x10000, 0x2FFFF),
                       (0x2FA1F, 0x2FFFF), (0x2FA20, 0x2FFFE), (0x2FFFF, 0x30000), (0x2FFFF, 0x10FFFF),
                       (0x30000, 0x10FFFF), (0x2FA20, 0x10FFFF), (0x0, 0x2FA1F), (0x0, 0x10FFFF), (0x10FFFF, 0x10FFFF),
                       (0x2FFFF, 0x2FFFF), (0x20000, 0x2FA1F)]:
            rng = f"{_cp(lo, literal)}-{_cp(hi, literal)}"
            out += [f"[{rng}]", f"[^{rng}]", f"[{rng}a]", f"[^a{rng}]"]
        out += [_cp(0x2FFFF, literal), _cp(0x30000, literal), _cp(0x10FFFF, literal),
                f"[{_cp(0x2FFFF, literal)}]", f"[^{_cp(0x2FFFF, literal)}]", f"[^{_cp(0x2FA20, literal)}b]",
                f"[^{_cp(0x2FFFE, literal)}{_cp(0x2FFFF, literal)}{_cp(0x2FA20, literal)}-{_cp(0x2FFFD, literal)}]"]
    return out


def _model_agrees_with_re2(atom: str, fold: bool, probes) -> None:
    """Where the translator accepts the atom, its set is RE2's at every probe, and a code
    point of the high block is in it iff every code point it stands for is."""
    import re2

    try:
        ivs = rx.charset(atom, fold, False)
        rx._check_high(ivs)
    except rx.Unsupported:
        return  # the match is then an unconstrained boolean: no proof rests on it
    real = re2.compile(("(?i)" if fold else "") + f"^(?:{atom})$")
    for cp in probes:
        want = real.search(chr(cp)) is not None
        assert any(lo <= cp <= hi for lo, hi in ivs) == want, (atom, fold, hex(cp))
        modelled = min(cp, rx.HIGH)  # what Z3 sees of it
        assert any(lo <= modelled <= hi for lo, hi in ivs) == want, (atom, fold, hex(cp), "as the high block")


@pytest.mark.parametrize("atom", _zone_atoms())
@pytest.mark.parametrize("fold", [False, True])
def test_character_sets_naming_the_high_zone_agree_with_re2(atom, fold):
    _model_agrees_with_re2(atom, fold, HIGH_PROBES)


@pytest.mark.parametrize("atom,high", [
    ("[\\x{20000}-\\x{2FFFF}]", False), ("[\\x{0}-\\x{2FFFF}]", False), ("[^\\x{2FA20}-\\x{2FFFF}]", True),
    ("[^\\x{0}-\\x{2FFFF}]", True), ("[^\U0002FA20-\U0002FFFF]", True), ("[\U00020000-\U0002FFFF]", False),
])
def test_a_range_ending_at_the_last_z3_character_is_not_read_as_reaching_the_top(atom, high):
    """H41-2: U+30000 and up is on the other side of such a range from U+2FFFF; the atom is
    refused (it splits the block), never modelled as holding (or lacking) all of it."""
    import re2

    assert (re2.compile(f"^(?:{atom})$").search("\U00030000") is not None) == high
    with pytest.raises(rx.Unsupported):
        rx._set(atom, {"i": False, "s": False})
    with pytest.raises(rx.Unsupported):
        rx.search_ast(f"^{atom}*$")


_zone_cps = st.sampled_from(_ZONE) | st.integers(0x2FA00, 0x30010) | st.integers(0, 0x10FFFF).filter(
    lambda c: not 0xD800 <= c <= 0xDFFF)


@st.composite
def _zone_classes(draw) -> str:
    """Classes whose members and range endpoints come from the zone the high block stands for."""
    items = []
    for _ in range(draw(st.integers(1, 3))):
        a, b = sorted((draw(_zone_cps), draw(_zone_cps)))
        lit = draw(st.booleans())
        items.append(_cp(a, lit) if a == b or draw(st.booleans()) else f"{_cp(a, lit)}-{_cp(b, lit)}")
    if draw(st.booleans()):
        items.append(draw(st.sampled_from(["a", "\\d", "[:alpha:]", "\\x{1F600}", "\\W"])))
    return ("[^" if draw(st.booleans()) else "[") + "".join(items) + "]"


@given(_zone_classes(), st.booleans(), st.lists(_zone_cps, max_size=4))
def test_zone_classes_agree_with_re2(atom, fold, extra):
    _model_agrees_with_re2(atom, fold, HIGH_PROBES + tuple(extra))
