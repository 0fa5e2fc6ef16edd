"""The .mcpp lexer: Lark's contextual lexer for grammar.lark, at a fraction of its cost.

Lark's contextual lexer (what `Lark(grammar, parser="lalr")` uses) tries, at each step,
only the terminals the current parser state accepts, in a fixed order — priority, then
longest possible match, then pattern length, then name — and takes the first that
matches; a string terminal that a regex terminal of the same priority fully matches is
found through that regex (Lark's "unless" rule). That is what makes `context.input.when`
a name and `{if: 1}` a record, and what makes this lexer's answers the grammar's.

This lexer gives the same answers without Lark's per-token machinery. One compiled regex
(built from the grammar's own terminal patterns) finds where the next lexeme is and its
shape: a word, an argument path, an entity type, a number, a string, a run of symbols.
Which terminal it is depends on the parser state: the candidates for a lexeme — every
grammar terminal that matches a sample of it, in Lark's order — are found once, and the
choice for a state is the first candidate the state accepts (cached per state). When no
candidate fits, the token gets the type it would have with every terminal allowed (Lark's
"root lexer"), so the parser reports it as unexpected. The shapes rest on assumptions
about the grammar that `Lexicon` checks (a `GrammarError` names the terminal that breaks
one); tests/lang/test_grammar_agreement.py compares every choice with Lark's own lexer.

Tokens carry absolute positions: a chunk of a file (error recovery) is lexed with its base.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BLANKS = " \t\f\r\n"


class Tok:
    """A token: its grammar terminal name, text and absolute position (1-based line/column)."""

    __slots__ = ("type", "value", "line", "column", "end_line", "end_column", "start_pos", "end_pos")

    def __init__(self, type, value, start_pos, line, column, end_line, end_column, end_pos):
        self.type = type
        self.value = value
        self.start_pos = start_pos
        self.line = line
        self.column = column
        self.end_line = end_line
        self.end_column = end_column
        self.end_pos = end_pos

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"Tok({self.type}, {self.value!r}, {self.line}:{self.column})"


class LexError(Exception):
    def __init__(self, pos: int, line: int, column: int, char: str):
        super().__init__(f"unexpected character {char!r}")
        self.pos, self.line, self.column, self.char = pos, line, column, char


class GrammarError(Exception):
    """grammar.lark breaks an assumption this lexer is built on (raised when loading it)."""


class Job:
    """Where the text being lexed sits in its file, and where its comments go."""

    def __init__(self, line_base: int = 0, col_base: int = 0, pos_base: int = 0):
        self.line_base, self.col_base, self.pos_base = line_base, col_base, pos_base
        self.comments: list[Tok] = []


@dataclass(frozen=True)
class Terminal:
    """One grammar terminal as Lark's lexer sees it (from `lark.Lark(...).terminals`)."""

    name: str
    regex: str  # the pattern as a Python regex (Lark's `to_regexp()`)
    priority: int
    max_width: int  # Lark's `pattern.max_width`
    value_len: int  # len(Lark's `pattern.value`): the third key of Lark's order
    string: str | None = None  # the text of a string terminal ("(", "::"); None for a regex

    def order(self):
        """Lark's BasicLexer order (lark/lexer.py: `terminals.sort(key=…)`)."""
        return (-self.priority, -self.max_width, -self.value_len, self.name)


# Lexeme shapes and the grammar terminal whose regex finds each: an argument path is
# tried before a word it starts with, an entity type before its first word.
SHAPES = {"PATH": "INPUT_PATH", "ETYPE": "ENTITY_TYPE", "WORD": "NAME", "NUMBER": "NUMBER", "STRING": "STRING"}
_SYMBOL = r"[!#-/:-@\[-^`{-~]"  # ASCII punctuation but `"` (strings) and `_` (words)
_IDENT = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
_PLAIN = "zq_plain_word"  # stands for every word no terminal but NAME claims
_SAMPLE = {"PATH": "context.input.zq ", "NUMBER": "1 ", "STRING": '"" '}
WHOLE, WORD = -1, -2  # a choice's length: the whole lexeme, or its leading word


class Lexicon:
    """What the grammar's terminals make of each lexeme, and the choice per parser state.

    `terminals` are all the grammar's terminals; `ignore` the names of those skipped
    between tokens, of which `comment` is kept (for the formatter)."""

    def __init__(self, terminals: list[Terminal], ignore: set[str], comment: str):
        self.terms = {t.name: t for t in terminals}
        missing = [v for v in SHAPES.values() if v not in self.terms]
        if missing:
            raise GrammarError(f"grammar.lark has no terminal {', '.join(missing)}")
        self.ordered = sorted((t for t in terminals if t.name not in ignore), key=Terminal.order)
        self.compiled = {t.name: re.compile(t.regex) for t in terminals}
        # Lark's "unless": a string terminal that a same-priority regex terminal fully
        # matches is found through that regex when both are allowed.
        self.embeds: dict[str, dict[str, str]] = {}
        self.embedded_by: dict[str, list[str]] = {}
        for r in self.ordered:
            if r.string is not None:
                continue
            for s in self.ordered:
                if s.string is not None and s.priority == r.priority:
                    m = self.compiled[r.name].match(s.string)
                    if m is not None and m.group(0) == s.string:
                        self.embeds.setdefault(r.name, {})[s.string] = s.name
                        self.embedded_by.setdefault(s.name, []).append(r.name)
        blanks = "|".join(self.terms[n].regex for n in sorted(ignore) if n != comment)
        shapes = "|".join(f"(?P<{k}>{self.terms[v].regex})" for k, v in SHAPES.items())
        self.regex = re.compile(
            f"(?:{blanks})*(?:(?P<COMMENT>{self.terms[comment].regex})|{shapes}|(?P<SYM>{_SYMBOL}+))"
        )
        # the longest run of symbols one terminal can match (a finite width: not a word's)
        self.symbol_width = max(
            (t.max_width for t in self.ordered if t.string is not None and not _IDENT.match(t.string)), default=1
        )
        self.candidates: dict[tuple[str, str], tuple] = {}
        self.keywords = self._keywords()
        self._choices: dict[int, dict] = {}

    # -- what the grammar says about a lexeme ----------------------------------
    def _matches(self, sample: str) -> tuple[tuple[str, int, str], ...]:
        """Every terminal matching at the start of `sample`, in Lark's order, with the
        length and text it matches."""
        out = []
        for t in self.ordered:
            m = self.compiled[t.name].match(sample)
            if m is not None and m.end() > 0:
                out.append((t.name, m.end(), m.group(0)))
        return tuple(out)

    def _keywords(self) -> frozenset[str]:
        """The words a terminal other than NAME-like ones claims (a keyword's words are
        written out in its pattern). Every other word is lexed like any name."""
        plain = [(n, k) for n, k, _ in self._matches(_PLAIN + " ")]
        words = set()
        for t in self.terms.values():
            words.update(_IDENT.findall(t.string if t.string is not None else t.regex))
        keywords = set()
        for w in words:
            if [(n, k - len(w) + len(_PLAIN)) for n, k, _ in self._matches(w + " ")] != plain:
                keywords.add(w)
            for name, k, _ in self._matches(w + "_q "):
                if k != len(w) + 2:  # a keyword must be a whole word: `in` never starts `inside`
                    raise GrammarError(f"terminal {name} matches the start of the word {w}_q (make it a whole word)")
        return frozenset(keywords)

    def _candidates(self, shape: str, key: str) -> tuple:
        if shape == "WORD":
            sample = (key or _PLAIN) + " "
        elif shape == "ETYPE":
            sample = (key or _PLAIN) + '::"x"'
        elif shape == "SYM":
            sample = key
            for after in ("a", " ", "0", '"'):
                longer = self._matches(key + after)
                if longer != self._matches(key):
                    raise GrammarError(f"a terminal matches symbols {key!r} differently before {after!r}")
        else:
            sample = _SAMPLE[shape]
        cands = self._matches(sample)
        self.candidates[(shape, key)] = cands
        return cands

    def word_terminals(self, word: str) -> list[str]:
        """The terminals that match `word`, in Lark's order (NAME-like ones included)."""
        key = word if word in self.keywords else ""
        return [c[0] for c in (self.candidates.get(("WORD", key)) or self._candidates("WORD", key))]

    def choose(self, state: int, row, shape: str, key: str):
        """The terminal a lexeme is in the parser state `state`, whose table row is `row`
        (a mapping with the accepted terminal names as keys): `(name, length)` with length
        WHOLE, WORD (its leading word) or a count of characters; None when no terminal
        matches it at all. The first candidate the state accepts; if none, the root
        lexer's choice (every terminal allowed), which the parser will reject."""
        cache = self._choices.get(state)
        if cache is None:
            cache = self._choices[state] = {}
        k = (shape, key)
        hit = cache.get(k, False)
        if hit is not False:
            return hit
        cands = self.candidates.get(k) or self._candidates(shape, key)
        choice = None
        for allowed in (row, None):
            for name, n, text in cands:
                if allowed is not None and name not in allowed:
                    continue
                if any(allowed is None or r in allowed for r in self.embedded_by.get(name, ())):
                    continue  # found through its regex instead
                embeds = self.embeds.get(name)
                if embeds is not None and text in embeds and (allowed is None or embeds[text] in allowed):
                    name = embeds[text]
                if SHAPES.get(shape) == name or (shape == "NUMBER" or shape == "STRING"):
                    length = WHOLE
                elif shape == "SYM":
                    length = n
                else:
                    lead = _IDENT.match(text)
                    if lead is None or lead.end() != n:
                        raise GrammarError(f"terminal {name} matches part of a {shape} lexeme: {text!r}")
                    length = WORD
                choice = (name, length)
                break
            if choice is not None:
                break
        cache[k] = choice
        return choice


class Scanner:
    """Lexes `text` one token at a time, as the parser state it is asked in accepts."""

    __slots__ = ("text", "job", "lexicon", "pos", "line", "line_start", "n", "match", "keywords", "width")

    def __init__(self, text: str, job: Job, lexicon: Lexicon):
        self.text = text
        self.job = job
        self.lexicon = lexicon
        self.pos = 0
        self.line = 1
        self.line_start = 0
        self.n = len(text)
        self.match = lexicon.regex.match
        self.keywords = lexicon.keywords
        self.width = lexicon.symbol_width

    def _lines(self, a: int, b: int) -> None:
        nl = self.text.count("\n", a, b)
        if nl:
            self.line += nl
            self.line_start = self.text.rindex("\n", a, b) + 1

    def _col(self, pos: int) -> int:
        return pos - self.line_start + 1 + (self.job.col_base if self.line == 1 else 0)

    def next(self, state: int, row) -> Tok | None:
        """The next token as the parser in `state` (table row `row`) lexes it; None at the
        end of the text. Comments go to the job. Raises LexError."""
        text = self.text
        job = self.job
        choices = self.lexicon._choices.get(state)
        if choices is None:
            choices = self.lexicon._choices[state] = {}
        while True:
            pos = self.pos
            if pos >= self.n:
                return None
            m = self.match(text, pos)
            if m is None:
                bad = self.n - len(text[pos:].lstrip(_BLANKS))
                self._lines(pos, bad)
                self.pos = bad
                if bad >= self.n:
                    return None  # trailing blanks
                return self._fail(bad)
            shape = m.lastgroup
            assert shape is not None  # every alternative of the pattern is a named group
            start = m.start(shape)
            if start != pos and "\n" in text[pos:start]:
                self._lines(pos, start)
            end = m.end()
            if shape == "WORD":
                key = m.group(shape)
                if key not in self.keywords:
                    key = ""
            elif shape == "SYM":
                key = text[start : min(end, start + self.width)]
            elif shape == "COMMENT":
                job.comments.append(self._tok("COMMENT", start, end))
                self.pos = end
                continue
            elif shape == "ETYPE":
                ident = _IDENT.match(text, start)
                assert ident is not None  # an ETYPE starts with an identifier
                key = ident.group(0)
                if key not in self.keywords:
                    key = ""
            else:
                key = ""
            choice = choices.get((shape, key), False)
            if choice is False:
                choice = self.lexicon.choose(state, row, shape, key)
            if choice is None:
                self.pos = start
                return self._fail(start)
            name, length = choice
            if length == WORD:
                ident = _IDENT.match(text, start)
                assert ident is not None  # the lexicon says a word starts here
                end = ident.end()
            elif length != WHOLE:
                end = start + length
            self.pos = end
            line = self.line
            col = start - self.line_start + 1 + (job.col_base if line == 1 else 0)
            line += job.line_base
            value = text[start:end]
            pb = job.pos_base
            return Tok(name, value, start + pb, line, col, line, col + end - start, end + pb)

    def _fail(self, at: int):
        job = self.job
        raise LexError(at + job.pos_base, self.line + job.line_base, self._col(at), self.text[at])

    def _tok(self, type_: str, start: int, end: int) -> Tok:
        job = self.job
        col = self._col(start)
        value = self.text[start:end]
        line = self.line + job.line_base
        return Tok(type_, value, start + job.pos_base, line, col, line, col + len(value), end + job.pos_base)
