"""Random texts for the parser's property tests: token soups and token-level mutations of
the shipped examples (mostly rejected by the grammar: where parsers could disagree and
where error messages are made)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import strategies as st

from mcpp.lang.parser import tokens

ROOT = Path(__file__).parents[2]
EXAMPLES = {p.name: p.read_text(encoding="utf-8") for p in sorted((ROOT / "examples").glob("*.mcpp"))}

SOUP = [
    "permit", "forbid", "when", "unless", "default", "allow", "deny", "hide", "group", "limit", "assert",
    "max", "per", "scope", "increment", "hidden", "visible", "principal", "action", "resource", "context",
    "input", "in", "inside", "is", "has", "like", "if", "then", "else", "true", "false", "null", "x", "ifx",
    "(", ")", "{", "}", "[", "]", ",", ";", ":", "::", ".", "@", "=", "==", "!=", "<", "<=", ">", ">=", "!",
    "-", "+", "*", "&&", "||", "&", "|", '"s"', '"a*"', "1", "1.5", "-1", "Action::", 'Action::"t"',
    "context.input.a", "context.input", "//c\n", "'q'", "é", "1e999",
]
SEPARATORS = ["", " ", " ", "\n"]


@st.composite
def soups(draw):
    words = draw(st.lists(st.sampled_from(SOUP), max_size=30))
    seps = draw(st.lists(st.sampled_from(SEPARATORS), min_size=len(words), max_size=len(words)))
    return "".join(w + s for w, s in zip(words, seps))


def _tokens_with_gaps(text: str) -> list[tuple[str, str]]:
    """The example as (token, blank-or-comment text after it) pairs."""
    toks, _ = tokens(text)
    out = []
    for i, t in enumerate(toks):
        nxt = toks[i + 1].start_pos if i + 1 < len(toks) else len(text)
        out.append((t.value, text[t.end_pos : nxt]))
    return out


EXAMPLE_TOKENS = {name: _tokens_with_gaps(text) for name, text in EXAMPLES.items()}


@st.composite
def mutations(draw):
    toks = list(draw(st.sampled_from(sorted(EXAMPLE_TOKENS.items())))[1])
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, max(0, len(toks) - 1)))
        op = draw(st.sampled_from(["delete", "insert", "replace", "duplicate", "glue"]))
        if op == "delete":
            del toks[i]
        elif op == "insert":
            toks.insert(i, (draw(st.sampled_from(SOUP)), " "))
        elif op == "replace":
            toks[i] = (draw(st.sampled_from(SOUP)), toks[i][1])
        elif op == "duplicate":
            toks.insert(i, toks[i])
        else:  # glue a token to the next one
            toks[i] = (toks[i][0], "")
    return "".join(a + b for a, b in toks)
