"""The .mcpp lexer: one compiled regex, tokens typed for the grammar's LALR table.

Lark's contextual lexer asks the parser which terminals fit at each step; this lexer
gets the same result from one token of look-behind (a word after `.`, `@` or `has`
is a name, so `context.input.when` works) and one character of look-ahead (a word
before `:` is a record key). It is several times faster, which is what lets the
language server re-parse a 2,000-line policy on every keystroke. Tokens carry
absolute positions: a chunk of a file (error recovery) is lexed with its base.
"""

from __future__ import annotations

import re


# Leading blanks are consumed by the same match as the token after them: half as many
# regex calls as a separate whitespace token.
_TOKEN = re.compile(
    r"[ \t\f\r\n]*(?:"
    r"(?P<COMMENT>//[^\n]*)"
    # `context.input.a.b` is one token (not 5 and 2 reductions); a segment followed by `(`
    # is a method, so it stays out (possessive `*+` stops backtracking into the name)
    r"|(?P<INPUT_PATH>context\.input(?![_a-zA-Z0-9])(?:\.[_a-zA-Z][_a-zA-Z0-9]*+(?![ \t\r\n]*\())*)"
    r'|(?P<ENTITY_TYPE>[_a-zA-Z][_a-zA-Z0-9]*(?:::[_a-zA-Z][_a-zA-Z0-9]*)*::(?="))'
    r"|(?P<WORD>[_a-zA-Z][_a-zA-Z0-9]*)"
    r"|(?P<NUMBER>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)"
    r'|(?P<STRING>"(?:[^"\\\n]|\\.)*")'
    r"|(?P<OP>&&|\|\||==|!=|<=|>=|::|[<>(){}\[\],;.@=!+\-*:]))"
)
_BLANKS = " \t\f\r\n"

# Words with a named terminal of their own; allow/deny depend on the word before.
_WORD_TYPES = {
    "permit": "EFFECT", "forbid": "EFFECT",
    "when": "CLAUSE_KIND", "unless": "CLAUSE_KIND",
    "principal": "VAR", "action": "VAR", "resource": "VAR", "context": "VAR",
    "true": "TRUE", "false": "FALSE", "null": "NULL",
    "hidden": "ASSERT_KIND", "visible": "ASSERT_KIND",
}
_COMPARE = {"==", "!=", "<=", ">=", "<", ">"}
_NAME_AFTER = {"DOT", "AT", "HAS"}
_OPERAND_END = {"INPUT_PATH", "NAME", "STRING", "NUMBER", "VAR", "TRUE", "FALSE", "NULL", "RPAR", "RSQB"}


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


class Job:
    """Where the text being lexed sits in its file, and where its comments go."""

    def __init__(self, line_base: int = 0, col_base: int = 0, pos_base: int = 0):
        self.line_base, self.col_base, self.pos_base = line_base, col_base, pos_base
        self.comments: list[Tok] = []


def tokenize(text: str, job: Job, literal_types: dict[str, str]):
    """Yield the tokens of `text`. `literal_types` maps the grammar's anonymous
    literals to their terminal names ("(" → "LPAR", "default" → "DEFAULT", …)."""
    minus = literal_types["-"]
    keywords = {w: t for w, t in literal_types.items() if w.isalpha()}
    lb, cb, pb = job.line_base, job.col_base, job.pos_base
    match = _TOKEN.match
    comments = job.comments
    pos = 0
    n = len(text)
    line = 1
    line_start = 0
    prev_type = ""
    prev_value = ""
    while pos < n:
        m = match(text, pos)
        if m is None:
            bad = n - len(text[pos:].lstrip(_BLANKS))
            if bad >= n:
                break  # trailing blanks
            nl = text.count("\n", pos, bad)
            if nl:
                line += nl
                line_start = text.rindex("\n", pos, bad) + 1
            col = bad - line_start + 1
            raise LexError(bad + pb, line + lb, col + (cb if line == 1 else 0), text[bad])
        kind = m.lastgroup
        start = m.start(kind)
        if start != pos:
            nl = text.count("\n", pos, start)
            if nl:
                line += nl
                line_start = text.rindex("\n", pos, start) + 1
            pos = start
        value = m.group(kind)
        end = m.end()
        col = pos - line_start + 1 + (cb if line == 1 else 0)
        if kind == "WORD":
            if prev_type in _NAME_AFTER:
                kind = "NAME"
            else:
                kind = _WORD_TYPES.get(value) or keywords.get(value)
                if kind is None:
                    if value == "allow" or value == "deny":
                        kind = "DEFAULT_KIND" if prev_value == "default" else (
                            "ASSERT_KIND" if prev_value == "assert" else "NAME"
                        )
                    else:
                        kind = "NAME"
                elif _before_colon(text, end):  # a keyword used as a record key
                    kind = "NAME"
        elif kind == "INPUT_PATH" and prev_type in _NAME_AFTER:
            kind, value, end = "NAME", "context", pos + 7  # `x.context…`: an attribute named context
        elif kind == "OP":
            if value in _COMPARE:
                kind = "COMPARE"
            elif value == "-":
                kind = "ADD_OP" if prev_type in _OPERAND_END else minus
            elif value in ("+", "*"):
                kind = "ADD_OP"
            else:
                kind = literal_types[value]
        tok = Tok(kind, value, pos + pb, line + lb, col, line + lb, col + len(value), end + pb)
        if kind == "COMMENT":
            comments.append(tok)
        else:
            yield tok
            prev_type, prev_value = kind, value
        pos = end


def _before_colon(text: str, i: int) -> bool:
    """Is the next non-blank character a single `:` (a record key), not `::`?"""
    n = len(text)
    while i < n and text[i] in " \t\r\n\f":
        i += 1
    return i < n and text[i] == ":" and not (i + 1 < n and text[i + 1] == ":")
