"""lang/nesting.py: the nesting bound's two measures agree. `too_deep` walks Python values
(with the pointer of the first value too deep); `text_too_deep` measures the JSON text a
JSON encoder wrote for them, in C (the gateway's check of a large body: hostile review 24,
F4). Strings full of brackets, quotes and backslashes must not count; keys neither."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from mcpp.lang.jsontext import arguments_too_deep, message_too_deep
from mcpp.lang.nesting import MAX_NESTING, may_nest_deeper, text_too_deep, too_deep

TRICKY = st.text(alphabet='[]{}"\\ab:,\n\u00e9\U0001f600', max_size=6)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TRICKY,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TRICKY, inner, max_size=3),
    max_leaves=120)


@settings(max_examples=1500, deadline=None)
@given(VALUES, st.integers(1, 12))  # (past ROUNDS: the run-by-run measure too)
def test_the_text_measure_agrees_with_the_walk(value, limit):
    deep = too_deep(value, limit) is not None
    for text in (json.dumps(value, ensure_ascii=False, separators=(",", ":")), json.dumps(value), json.dumps(value, indent=1)):
        assert text_too_deep(text, limit) == deep, text
        assert text_too_deep(text.encode("utf-8", "surrogatepass"), limit) == deep, text  # (the gateway's body: bytes)


def chain(levels: int, kind: str):
    v: object = [] if kind == "list" else {}
    for i in range(levels - 1):
        v = [v] if kind == "list" else {"k[{": v} if kind == "dict" else ([1, "]}", v] if i % 2 else {"\\\"[": v})
    return v


@pytest.mark.parametrize("kind", ["list", "dict", "mixed"])
@pytest.mark.parametrize("levels", [1, MAX_NESTING - 1, MAX_NESTING, MAX_NESTING + 1, 300])
def test_at_the_bound(levels, kind):
    value = chain(levels, kind)
    deep = too_deep(value) is not None
    assert deep == (levels > MAX_NESTING)
    assert text_too_deep(json.dumps(value, separators=(",", ":"))) == deep
    assert arguments_too_deep(value) == deep
    # a message whose arguments are that deep: within the message bound exactly when they are within theirs
    assert message_too_deep(json.dumps({"params": {"arguments": value}})) == deep
    assert message_too_deep(json.dumps({"params": {"_meta": value}, "result": [value]})) == deep


def test_the_bracket_count_only_ever_errs_towards_measuring():
    assert not may_nest_deeper("[" * MAX_NESTING)
    assert may_nest_deeper('{"s": "' + "[" * MAX_NESTING + '"}')  # (in a string: counted, then measured)
    assert not text_too_deep('{"s": "' + "[" * 500 + '"}')


def test_values_json_cannot_write_are_walked():
    deep = chain(MAX_NESTING + 1, "list")
    assert arguments_too_deep([{1, 2}, deep]) and not arguments_too_deep([{1, 2}])


def test_python_s_own_non_finite_numbers_are_grammar_not_brackets():
    """hostile review 26, F9: json.dumps writes NaN and Infinity (refused elsewhere first)."""
    text = json.dumps({"a": float("nan"), "b": [float("inf"), -float("inf")]} | {f"k{i}": [[1]] for i in range(40)})
    assert not text_too_deep(text) and not text_too_deep(text.encode())
