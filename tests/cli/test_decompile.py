"""`mcpp decompile` keeps `like`: the JSON form writes `x like "prod-*"` as the regex
`^prod-(?s:.*)$`, and decompiling inverts exactly that shape (lang/decompiler.py:
like_chunks), so the author's `like` comes back and compiles to the same JSON again."""

from __future__ import annotations

import json

import re2
from hypothesis import given, strategies as st

from mcpp.lang.compiler import compile_program
from mcpp.lang.decompiler import decompile, like_chunks
from mcpp.lang.program import load_program
from mcpp.lang.regex import like_to_regex
from mcpp.lang.strings import quote_like
from mcpp.lang.values import like_match

from .run import mcpp

# text with every character escape() treats specially: metacharacters, controls, the
# pieces of the wildcard itself, a backslash, quotes, non-ASCII
TEXT = st.text(alphabet=st.sampled_from(list("ab-/.*+?()[]{}|^$\\\"'x:s\n\t\x00\x7f é日")) | st.characters(blacklist_categories=("Cs",)), max_size=8)  # no lone surrogates: not UTF-8
CHUNKS = st.lists(TEXT, min_size=1, max_size=4).map(tuple)


@given(CHUNKS)
def test_like_chunks_inverts_like_to_regex(chunks):
    assert like_chunks(like_to_regex(chunks)) == chunks


@given(st.text(alphabet=st.sampled_from(list("^$\\(?s:.*)ab{}x0fP")), max_size=16) | st.text(max_size=12))
def test_only_regexes_like_to_regex_writes_are_turned_back(regex):
    chunks = like_chunks(regex)
    assert chunks is None or like_to_regex(chunks) == regex


@given(CHUNKS, TEXT)
def test_the_regex_and_the_like_decide_alike(chunks, s):
    """What makes turning one into the other sound: RE2 search of the regex is Cedar's `like`."""
    assert (re2.search(like_to_regex(chunks), s) is not None) == like_match(s, chunks)


def _policy(chunks) -> str:
    return ('default deny;\n'
            f'permit (principal, action == Action::"deploy", resource) when {{ context.input.env like {quote_like(chunks)} }};\n')


@given(CHUNKS)
def test_compile_decompile_compile_is_the_same_json_and_keeps_like(chunks):
    doc = compile_program(load_program(_policy(chunks), "p.mcpp"))
    text = decompile(json.dumps(doc), "p.json")
    assert ".matches(" not in text and " like " in text
    assert compile_program(load_program(text, "back.mcpp")) == doc


def test_other_regexes_stay_matches():
    cases = {
        "^prod-": None,  # not anchored at the end
        "prod-(?s:.*)$": None,  # not anchored at the start
        "^prod-.*$": None,  # `.` does not match newlines: not what `like` means
        "^a\\$": None,  # an escaped `$`
        "^a|b$": None,  # alternation
        "^a\\x{0a}b$": None,  # escape() writes lowercase hex without padding: \x{a}
        "^a\\x{a}b$": ("a\nb",),
        "^(?s:.*)$": ("", ""),
        "^$": ("",),
        "^prod-(?s:.*)$": ("prod-", ""),
        "^a\\*b(?s:.*)c\\\\d$": ("a*b", "c\\d"),
    }
    for regex, chunks in cases.items():
        assert like_chunks(regex) == chunks, regex


def test_cli_round_trip(tmp_path):
    src = tmp_path / "p.mcpp"
    src.write_text(_policy(("prod-", "")))
    out = tmp_path / "p.json"
    assert mcpp("compile", src, "-o", out, "-q").returncode == 0
    assert '"^prod-(?s:.*)$"' in out.read_text()
    p = mcpp("decompile", out)
    assert p.returncode == 0
    assert 'when { context.input.env like "prod-*" };' in p.stdout
