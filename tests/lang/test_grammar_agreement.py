"""grammar.lark is the definition of the syntax: stock Lark with it accepts exactly the
texts mcpp's parser accepts and, with mcpp's IR builder as its transformer, builds the
same IR (spans included) and the same builder diagnostics.

Random texts of four kinds: formatted random documents (tests/strategies.py), sentences
derived at random from the grammar's own rules, token soups, and token-level mutations
of the shipped examples (mostly rejected: where the two could disagree). Plus, for every
state of the LALR table, mcpp's lexer choice against Lark's contextual lexer's.
"""

from __future__ import annotations

import dataclasses
import random
import string
from pathlib import Path

import lark
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lark.exceptions import UnexpectedCharacters, UnexpectedInput
from lark.lexer import LexerState, TextSlice

from mcpp.lang.builder import IRBuilder
from mcpp.lang.formatter import format_document
from mcpp.lang.lexer import Job, LexError, Scanner
from mcpp.lang.parser import LARK_VERSION, STATEMENT_KEYWORDS, _parser, parse_chunk

from ..strategies import documents
from .texts import EXAMPLES, SOUP, mutations, soups

ROOT = Path(__file__).parents[2]
GRAMMAR_FILE = ROOT / "lang" / "grammar.lark"
MORE = max(1, settings.default.max_examples // 20)  # scale with the hypothesis profile

BUILDER = IRBuilder()
STOCK = lark.Lark(
    GRAMMAR_FILE.read_text(encoding="utf-8"),
    parser="lalr",  # Lark's default lexer for LALR: the contextual one
    transformer=BUILDER,
    keep_all_tokens=True,
    maybe_placeholders=False,
)
STOCK_TREE = lark.Lark(GRAMMAR_FILE.read_text(encoding="utf-8"), parser="lalr")


def _spans(node, out):
    if isinstance(node, tuple):
        for x in node:
            _spans(x, out)
    elif dataclasses.is_dataclass(node):
        out.append((type(node).__name__, getattr(node, "span", None)))
        for f in dataclasses.fields(node):
            if f.name != "span":
                _spans(getattr(node, f.name), out)
    return out


def agree(text: str) -> bool:
    """Assert both parsers treat `text` alike; return whether they accepted it."""
    mine = parse_chunk(text, filename="t.mcpp")
    BUILDER.reset("t.mcpp")
    try:
        theirs = tuple(STOCK.parse(text))
        accepted = True
    except UnexpectedInput:
        accepted = False
    assert mine.accepted == accepted, f"mcpp {'accepts' if mine.accepted else 'rejects'} {text!r}, Lark does not"
    if accepted:
        assert mine.statements == theirs, text
        assert _spans(mine.statements, []) == _spans(theirs, []), text
        assert [(d.message, d.span) for d in mine.diagnostics] == [(d.message, d.span) for d in BUILDER.diags], text
    # the tree-building Lark (no transformer, default options) accepts the same texts
    try:
        STOCK_TREE.parse(text)
        assert accepted, text
    except UnexpectedInput:
        assert not accepted, text
    return accepted


# ---- the shipped examples ----------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_examples_parse_alike(name):
    assert agree(EXAMPLES[name])


# ---- formatted random documents ----------------------------------------------------------

@settings(max_examples=settings.default.max_examples * 2, deadline=None)
@given(documents())
def test_formatted_documents_parse_alike(doc):
    assert agree(format_document(doc))


# ---- sentences of the grammar -------------------------------------------------------------

# A few lexemes per terminal, keywords among the names (a name where a keyword does not fit).
LEXEMES = {
    "NAME": ["x", "when", "in", "if", "principal", "allow", "per", "inside", "permitted", "_a1", "context"],
    "STRING": ['""', '"a"', '"a*b"', '"a\\*b"', '"q\\"x"', '"\\u{2a}"', '"\\n"', '"\\q"', '"é😀"'],
    "NUMBER": ["0", "7", "1000.01", "1e3", "2.5E-2", "1e400", "99999999999999999999"],
    "INPUT_PATH": ["context.input", "context.input.a", "context.input.a.when"],
    "ENTITY_TYPE": ["Action::", "Grant::", "Ns::Type::", "if::"],
    "VAR": ["principal", "action", "resource", "context"],
    "EFFECT": ["permit", "forbid"], "CLAUSE_KIND": ["when", "unless"], "DEFAULT_KIND": ["allow", "deny"],
    "ASSERT_KIND": ["allow", "deny", "hidden", "visible"], "COMPARE": ["==", "!=", "<", "<=", ">", ">="],
    "ADD_OP": ["+", "-", "*"],
}


def _rules():
    by_origin: dict[str, list] = {}
    for r in STOCK_TREE.rules:
        by_origin.setdefault(r.origin.name, []).append([(s.name, s.is_term) for s in r.expansion])
    return by_origin


RULES = _rules()
TERMINALS = {t.name: t for t in STOCK_TREE.terminals}


def _lexeme(name: str, rnd: random.Random) -> str:
    if name in LEXEMES:
        return rnd.choice(LEXEMES[name])
    t = TERMINALS[name]
    if t.pattern.type == "str":
        return t.pattern.value
    words = [w for w in _parser().lexicon.keywords if _parser().lexicon.word_terminals(w)[0] == name]
    return rnd.choice(words)


def sentence(seed: int, depth: int = 7) -> str:
    """A random derivation from `start`, bounded in depth (shortest choices past it)."""
    rnd = random.Random(seed)
    out: list[str] = []

    def derive(sym: str, d: int):
        options = RULES[sym]
        if d <= 0:
            options = sorted(options, key=len)[:1] if sym != "start" else options
        for name, is_term in rnd.choice(options):
            if is_term:
                out.append(_lexeme(name, rnd))
            else:
                derive(name, d - 1)

    derive("start", depth)
    sep = rnd.choice([" ", "\n", " // c\n"])
    return sep.join(out)


@settings(max_examples=settings.default.max_examples * 5, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(3, 12))
def test_grammar_sentences_parse_alike(seed, depth):
    agree(sentence(seed, depth))


def test_grammar_sentences_are_mostly_accepted():
    """The sentence generator reaches the grammar (not a test of rejections only)."""
    accepted = sum(agree(sentence(seed, 8)) for seed in range(300))
    assert accepted >= 150


# ---- token soups and mutations ------------------------------------------------------------

@settings(max_examples=settings.default.max_examples * 5, deadline=None)
@given(soups())
def test_token_soups_parse_alike(text):
    agree(text)


@settings(max_examples=settings.default.max_examples * 5, deadline=None)
@given(mutations())
def test_mutated_examples_parse_alike(text):
    agree(text)


# ---- the lexer, state by state -------------------------------------------------------------

SAMPLES = sorted(set(SOUP) | {
    "inside", "ifx", "true_", "context2", "contextx.input", "context.inputx", "context.input.f(", "context.input.a.f (",
    "context.input.a .b", 'Foo::"x"', 'if::"x"', 'A::B::"x"', 'principal::"x"', "Foo::Bar", "٣", "1.", "1e", ".5",
    '"a\\"b"', '"unterminated', "\\", "%", "$", "#", "->", "=>", "!==", "<<", "|||", "&&&", "::=", "-1", "--", "//",
    "/x", "@@", "~", "`", "^", "?", "\t\n x", "principalx", "permitted", "allowed", "maximum", "_",
}, key=str)


def test_lexer_chooses_as_larks_contextual_lexer_in_every_state():
    """For each distinct set of terminals an LALR state accepts (what Lark's contextual
    lexer keys its per-state lexers by), every sample lexes to the same token as Lark's
    per-state lexer would give; where Lark's fails, mcpp's token is one the state rejects."""
    p = _parser()
    contextual = STOCK_TREE.parser.lexer  # Lark's ContextualLexer (pinned version: internals)
    ignore = set(STOCK_TREE.lexer_conf.ignore)
    checked = 0
    for n, (state, lexer) in enumerate(sorted(contextual.lexers.items())):
        accepts = {t.name for t in lexer.terminals} - ignore
        row = dict.fromkeys(accepts)
        for sample in SAMPLES:
            try:
                tok = lexer.next_token(LexerState(TextSlice.cast_from(sample)))
                want = (tok.type, str(tok))
            except (UnexpectedCharacters, EOFError):
                want = None
            try:
                got_tok = Scanner(sample, Job(), p.lexicon).next(100_000 + n, row)
                got = None if got_tok is None else (got_tok.type, got_tok.value)
            except LexError:
                got = None
            if want is None:
                assert got is None or got[0] not in accepts, (sorted(accepts), sample, got)
            else:
                assert got == want, (sorted(accepts), sample, got, want)
            checked += 1
    assert checked > 5000


# ---- the table and the words ---------------------------------------------------------------

def test_lark_is_pinned_to_the_version_the_parser_reads():
    assert lark.__version__ == LARK_VERSION
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'"lark=={LARK_VERSION}"' in pyproject


def test_statement_keywords_are_what_the_start_state_accepts():
    p = _parser()
    row = p.states[p.start_state]
    words = {w for w in p.lexicon.keywords if any(t in row for t in p.lexicon.word_terminals(w)[:1])}
    assert words == set(STATEMENT_KEYWORDS)


def test_every_terminal_has_words_not_a_grammar_name():
    p = _parser()
    for name in [*p.lexicon.terms, "$END"]:
        if name in ("BLANKS", "COMMENT"):
            continue
        words = p.display[name]
        assert words and name not in words and not words.isupper(), (name, words)


@settings(max_examples=settings.default.max_examples * 3, deadline=None)
@given(st.text(alphabet=st.sampled_from(sorted(set(string.printable) | {"é", "\u00a0", "٣"})), max_size=60))
def test_random_characters_parse_alike(text):
    agree(text)
