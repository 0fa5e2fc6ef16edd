"""Source text → IR `Document`, with error recovery.

grammar.lark is the definition of the syntax. Lark reads it and builds the LALR(1) table
and the per-rule callbacks (the IR builder, builder.py); this module runs that table
itself — one shift/reduce step function, `_step` — with a lexer that makes the choices
Lark's contextual lexer makes (lexer.py), because Lark's generic per-token machinery
dominated the parse time. The table is read from Lark's internals, so the Lark version is
pinned (`LARK_VERSION`, pyproject.toml). Stock Lark with the same grammar and builder
accepts the same texts and builds the same IR (tests/lang/test_grammar_agreement.py).

The fast path is one parse of the whole file with IR built during the parse. When it
fails, the file is cut into top-level statements and each is parsed on its own
(`parse_chunk`), so one broken statement yields one diagnostic and the good ones still
produce IR (what the language server needs while the user types).

Public API: `parse`, `parse_file`, `parse_partial`, `parse_chunks`, `parse_chunk`,
`tokens`, `split_statements`, and the `Parsed` result.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import lark
from lark import Lark
from lark.parsers.lalr_analysis import Shift

from . import ir
from .builder import IRBuilder
from .diagnostics import Diagnostic, MCPPError, Span
from .lexer import Job, LexError, Lexicon, Scanner, Terminal, Tok

# The Lark release whose internals (`parser.parser.parser.parse_table`, `callbacks`,
# `Rule.options.expand1`) this module reads; pinned to the same in pyproject.toml.
LARK_VERSION = "1.3.1"

GRAMMAR = (Path(__file__).with_name("grammar.lark")).read_text()

# The words that start a statement (the grammar's start state accepts them, and `@`);
# tests/lang/test_grammar_agreement.py checks this against the table.
STATEMENT_KEYWORDS = ("permit", "forbid", "default", "hide", "group", "limit", "assert", "entity")

# Words for the terminals that are classes rather than fixed text; every other terminal
# is shown as the text or words it matches (see `_display`).
_CLASS_WORDS = {
    "NAME": "a name", "INPUT_PATH": "an argument (context.input…)", "STRING": "a string",
    "NUMBER": "a number", "ENTITY_TYPE": 'an entity (Type::"id")', "COMPARE": "a comparison",
    "ADD_OP": "an operator", "$END": "end of file",
}


@dataclass(frozen=True, slots=True)
class Parsed:
    """What parsing one text — a whole file, or one statement chunk of it — gave.

    `accepted` says whether the grammar accepted the text; `diagnostics` then holds only
    the builder's errors (an unknown method, a bad escape …), else one syntax error.
    `start`/`end` are the text's offsets in its file; `reads_to` is where the text the
    result depends on ends: past `end` when the error names the token after the chunk."""

    statements: tuple[ir.Statement, ...]
    comments: tuple[ir.Comment, ...]
    diagnostics: tuple[Diagnostic, ...]
    accepted: bool
    start: int = 0
    end: int = 0
    reads_to: int = 0


def _display(lexicon: Lexicon) -> dict[str, str]:
    """Every terminal in words for "expected …" messages: a class ("a name"), its text
    ("';'"), or the keywords it matches ("'when' or 'unless'"). Never a grammar name."""
    out = {"$END": _CLASS_WORDS["$END"]}
    for name, t in lexicon.terms.items():
        if name in _CLASS_WORDS:
            out[name] = _CLASS_WORDS[name]
        elif t.string is not None:
            out[name] = f"'{t.string}'"
        else:
            words = [w for w in lexicon.keywords if name in lexicon.word_terminals(w)]
            if words:
                words.sort(key=t.regex.find)
                quoted = [f"'{w}'" for w in words]
                out[name] = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
    return out


class _Parser:
    """The LALR(1) table and callbacks Lark builds from grammar.lark, the lexicon of its
    terminals, and the builder. Guarded by a lock (the builder holds one parse's errors)."""

    def __init__(self) -> None:
        if lark.__version__ != LARK_VERSION:
            raise RuntimeError(
                f"mcpp needs lark=={LARK_VERSION} (its parser reads that release's LALR table); "
                f"found lark {lark.__version__}: pip install 'lark=={LARK_VERSION}'"
            )
        self.builder = IRBuilder()
        lk = Lark(
            GRAMMAR,
            parser="lalr",
            lexer="basic",  # the table is the same for every lexer; lexer.py does the contextual lexing
            cache=_cache_file(),
            keep_all_tokens=True,
            maybe_placeholders=False,  # the builder drops absent optionals itself
            transformer=self.builder,
            start="start",
        )
        self.lexicon = Lexicon(
            [
                Terminal(
                    t.name, t.pattern.to_regexp(), t.priority, t.pattern.max_width, len(t.pattern.value),
                    t.pattern.value if t.pattern.type == "str" else None,
                )
                for t in lk.terminals
            ],
            set(lk.lexer_conf.ignore),
            "COMMENT",
        )
        inner = lk.parser.parser.parser
        table = inner.parse_table

        # Plain-str keys and pre-resolved reductions: Lark keys rows by Token objects and
        # rules by Rule objects, whose Python-level __eq__ dominated the lookups.
        def reduction(rule):
            size = len(rule.expansion)
            unit = size == 1 and rule.options.expand1 and not rule.alias  # `?a: b` — b stays as is
            return (size, None if unit else inner.callbacks[rule], str(rule.origin.name))

        self.states = {
            state: {str(sym): (arg if action is Shift else reduction(arg)) for sym, (action, arg) in row.items()}
            for state, row in table.states.items()
        }
        self.start_state = table.start_states["start"]
        self.end_state = table.end_states["start"]
        self.display = _display(self.lexicon)
        self.lock = threading.Lock()


@contextlib.contextmanager
def paused_gc():
    """Pause the cyclic GC while building IR: the IR is acyclic, and collections while a
    large tree grows cost more than the parse itself."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def _cache_file() -> str | bool:
    """Lark's pickled LALR table, per user (rebuilding it costs ~0.1 s on every command)."""
    import hashlib
    import os
    import tempfile

    digest = hashlib.sha256((GRAMMAR + LARK_VERSION).encode()).hexdigest()[:16]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "mcpp")
    try:
        os.makedirs(folder, exist_ok=True)
        if os.access(folder, os.W_OK):
            return os.path.join(folder, f"grammar-{digest}.lark.cache")
    except OSError:
        pass
    return os.path.join(tempfile.gettempdir(), f"mcpp-{os.getuid() if hasattr(os, 'getuid') else 0}-grammar-{digest}.lark.cache")


_PARSER: _Parser | None = None
_PARSER_LOCK = threading.Lock()


def _parser() -> _Parser:
    global _PARSER
    with _PARSER_LOCK:
        if _PARSER is None:
            _PARSER = _Parser()
        return _PARSER


# ---- the LALR machine ------------------------------------------------------------------

_SHIFTED = object()


class _Reject(Exception):
    def __init__(self, token: Tok):
        self.token = token


def _step(p: _Parser, stack: list, values: list | None, tok: Tok):
    """Feed one token to the LALR machine: reduce while the table says reduce (calling the
    rules' callbacks, which build IR), then shift it. `$END` instead reduces to `start`
    and returns its value. With `values` None only the states move: what-if questions
    (which terminals fit here?) and replays. A row entry is a state number (shift or goto)
    or a reduction `(size, callback, nonterminal)`. Raises _Reject when the table has no
    entry for the token. Returns _SHIFTED after a shift."""
    states = p.states
    tt = tok.type
    while True:
        entry = states[stack[-1]].get(tt)
        if entry is None:
            raise _Reject(tok)
        if type(entry) is int:
            stack.append(entry)
            if values is not None:
                values.append(tok)
            return _SHIFTED
        size, callback, origin = entry
        if callback is None:  # a unit reduction through a precedence level: only the state changes
            stack[-1] = states[stack[-2]][origin]
            continue
        value = None
        if size:
            del stack[-size:]
            if values is not None:
                children = values[-size:]
                del values[-size:]
                value = callback(children)
        elif values is not None:
            value = callback([])
        new_state = states[stack[-1]][origin]
        if tt == "$END" and new_state == p.end_state:
            return value
        stack.append(new_state)
        if values is not None:
            values.append(value)


def _end_token(last: Tok | None, job: Job) -> Tok:
    if last is None:
        return Tok("$END", "", job.pos_base, job.line_base + 1, job.col_base + 1, job.line_base + 1, job.col_base + 1, job.pos_base)
    return Tok("$END", "", last.end_pos, last.end_line, last.end_column, last.end_line, last.end_column, last.end_pos)


def _drive(p: _Parser, text: str, job: Job, values: list | None, stop: int | None = None):
    """Lex and parse `text`: each token is lexed for the state the parser is in, then fed
    to `_step`. Returns `start`'s value — or, with `stop`, the state stack just before the
    token at offset `stop` (a replay, to ask what would have fit there)."""
    scanner = Scanner(text, job, p.lexicon)
    states = p.states
    stack = [p.start_state]
    last = None
    while True:
        state = stack[-1]
        tok = scanner.next(state, states[state])
        if stop is not None and (tok is None or tok.start_pos >= stop):
            return stack
        if tok is None:
            tok = _end_token(last, job)
        result = _step(p, stack, values, tok)
        if result is not _SHIFTED:
            return result
        last = tok


def _accepts(p: _Parser, stack: list) -> set[str]:
    """The terminals that could really come next. An LALR row also lists lookaheads it
    only reduces on (merged from every context of the state); feeding each candidate
    through `_step`, as Lark's interactive parser does, keeps the true ones."""
    ok = set()
    for t in p.states[stack[-1]]:
        if t != "$END" and t not in p.lexicon.terms:
            continue  # a nonterminal's goto
        try:
            _step(p, list(stack), None, Tok(t, "", 0, 0, 0, 0, 0, 0))
        except _Reject:
            continue
        ok.add(t)
    return ok


def tokens(source: str, start: int = 0, end: int | None = None) -> tuple[list[Tok], list[Tok]]:
    """The tokens of `source[start:end]` at their file positions, lexed as the parser lexes
    them, and its comments — for editors (what is under the cursor). Past a syntax error a
    token is lexed in the state the error left (the token itself is kept but not parsed);
    a lexical error ends the list."""
    p = _parser()
    end = len(source) if end is None else end
    line, col = _line_col_of(source, start)
    job = Job(line - 1, col - 1, start)
    scanner = Scanner(source[start:end], job, p.lexicon)
    stack = [p.start_state]
    out: list[Tok] = []
    try:
        while True:
            tok = scanner.next(stack[-1], p.states[stack[-1]])
            if tok is None:
                break
            out.append(tok)
            trial = list(stack)
            try:
                _step(p, trial, None, tok)
                stack = trial
            except _Reject:
                pass
    except LexError:
        pass
    return out, job.comments


# ---- diagnostics -----------------------------------------------------------------------

def _describe_token(tok: Tok) -> str:
    if tok.type == "$END":
        return "end of file"
    text = str(tok)
    if len(text) > 30:
        text = text[:27] + "..."
    return f"'{text}'"


_CLOSERS = ("RPAR", "RBRACE", "RSQB", "COMMA", "SEMICOLON")
_EXPR_START = {"VAR", "INPUT_PATH", "LPAR", "BANG", "STRING", "NUMBER"}
_OPERATORS = {"COMPARE", "DOT", "LSQB", "HAS", "IN", "IS", "LIKE"}


def _expected(expected: set[str], display: dict[str, str]) -> str:
    """`, expected …` in words: whole classes (an expression, an operator) rather than
    every terminal of the LALR row."""
    words: list[str] = []
    rest = set(expected)
    if _EXPR_START <= rest:
        words.append("an expression")
        rest -= _EXPR_START | {"MINUS", "LSQB", "LBRACE", "TRUE", "FALSE", "NULL", "IF", "ENTITY_TYPE", "NAME"}
    elif len(_OPERATORS & rest) >= 3:
        words.append("an operator (== != < > && || in has like …)")
        rest -= _OPERATORS | {"AND_OP", "OR_OP", "ADD_OP"}
    words += [display[t] for t in _CLOSERS if t in rest]
    rest -= set(_CLOSERS)
    words += sorted(display[t] for t in rest)
    words = list(dict.fromkeys(words))
    if not words:
        return ""
    if len(words) > 8:
        words = words[:8] + ["…"]
    return ", expected " + (words[0] if len(words) == 1 else "one of " + ", ".join(words))


def _lex_diag(e: LexError, filename: str) -> Diagnostic:
    line, col, pos, ch = e.line, e.column, e.pos, e.char
    msg = f"unexpected character {ch!r}"
    if ch == "'":
        msg += " (strings use double quotes)"
    elif ch == "&":
        msg += " (did you mean '&&'?)"
    elif ch == "|":
        msg += " (did you mean '||'?)"
    elif ch == '"':
        msg = "unterminated string"
    return Diagnostic(msg, Span(line, col, line, col + 1, pos, pos + 1), "error", "syntax", filename)


_ANNOTATION = re.compile(r"@[_a-zA-Z][_a-zA-Z0-9]*")


def _syntax_diag(p: _Parser, tok: Tok, expected: set[str], values: list, text: str, job: Job,
                 filename: str, source: str, after: Tok | None) -> Diagnostic:
    """A diagnostic for a token the grammar rejects, at its absolute position. `after` is
    the token that follows the chunk in its file, if any: a chunk that ends too early ran
    into the next statement (a missing `;`), which is where the error is."""
    display = p.display
    width = 1
    if tok.type == "$END" and after is not None:
        line, col, pos = after.line, after.column, after.start_pos
        width = max(1, len(str(after)))
        if "SEMICOLON" in expected:
            what = _describe_token(after)
            if after.value == "@":  # name the annotation: before '@id'
                m = _ANNOTATION.match(source, after.start_pos)
                what = f"'{m.group(0)}'" if m else what
            msg = f"expected ';' before {what}"
        else:
            msg = f"unexpected {_describe_token(after)}{_expected(expected, display)}"
    elif tok.type == "$END":
        # Point just past the last non-blank character, where the text stops.
        stripped = text.rstrip()
        rel_line = stripped.count("\n") + 1
        rel_col = len(stripped) - (stripped.rfind("\n") + 1) + 1
        line = rel_line + job.line_base
        col = rel_col + (job.col_base if rel_line == 1 else 0)
        pos = len(stripped) + job.pos_base
        msg = f"unexpected end of input{_expected(expected, display)}"
    else:
        line, col, pos = tok.line, tok.column, tok.start_pos
        width = max(1, len(str(tok)))
        msg = f"unexpected {_describe_token(tok)}{_expected(expected, display)}"
        if tok.type == "SEMICOLON" and "RBRACE" in expected:
            msg += " (missing '}'?)"
        elif str(tok) == "=":
            msg += " (did you mean '=='?)"
        elif expected == {"LPAR"}:
            last = values[-1] if values else None
            if isinstance(last, Tok) and last.type == "NAME":
                msg = f"unknown name '{last}' (variables are principal, action, resource and context)"
                line, col, pos, width = last.line, last.column, last.start_pos, len(str(last))
    return Diagnostic(msg, Span(line, col, line, col + width, pos, pos + width), "error", "syntax", filename)


# ---- parsing texts ---------------------------------------------------------------------

def _line_col_of(source: str, offset: int) -> tuple[int, int]:
    return source.count("\n", 0, offset) + 1, offset - (source.rfind("\n", 0, offset) + 1) + 1


def _following(p: _Parser, source: str, end: int) -> Tok | None:
    """The token after offset `end` of `source` (lexed with every terminal allowed)."""
    if end >= len(source) or not source[end:].strip():
        return None
    line, col = _line_col_of(source, end)
    try:
        return Scanner(source[end:], Job(line - 1, col - 1, end), p.lexicon).next(-1, None)
    except LexError:
        return None


def _parse(p: _Parser, source: str, start: int, end: int, filename: str, line: int, col: int) -> Parsed:
    """Parse `source[start:end]` at its place in the file; the caller holds the lock."""
    text = source[start:end]
    job = Job(line - 1, col - 1, start)
    p.builder.reset(filename, Span(line, col, line, col, start, start))
    values: list = []
    reads_to = end
    with paused_gc():
        try:
            stmts = tuple(_drive(p, text, job, values))
            diags = tuple(p.builder.diags)
            accepted = True
        except LexError as e:
            stmts, diags, accepted = (), (_lex_diag(e, filename),), False
        except _Reject as e:
            tok = e.token
            stop = tok.start_pos if tok.type != "$END" else end
            stack = _drive(p, text, Job(line - 1, col - 1, start), None, stop=stop)
            after = _following(p, source, end) if tok.type == "$END" else None
            if after is not None:
                reads_to = after.end_pos
            diag = _syntax_diag(p, tok, _accepts(p, stack), values, text, job, filename, source, after)
            stmts, diags, accepted = (), (diag,), False
    comments = tuple(ir.Comment(str(t).rstrip(), IRBuilder.tspan(t)) for t in job.comments)
    return Parsed(stmts, comments, diags, accepted, start, end, reads_to)


def parse_chunk(source: str, start: int = 0, end: int | None = None, filename: str = "<input>",
                *, line: int | None = None, col: int | None = None) -> Parsed:
    """Parse `source[start:end]` — a whole file, or one statement chunk of it (see
    `split_statements`) — with positions in the whole file. `line`/`col` of `start` may be
    given when known (they are counted otherwise). No recovery: one syntax error at most."""
    end = len(source) if end is None else end
    if line is None or col is None:
        line, col = _line_col_of(source, start)
    p = _parser()
    with p.lock:
        return _parse(p, source, start, end, filename, line, col)
def split_statements(text: str) -> list[tuple[int, int]]:
    """Cut source into top-level statement chunks `(start, end)` for error recovery.

    A chunk ends at a `;` outside brackets and strings, or right before a statement
    keyword (with its annotations) at depth 0 — so a missing `;` costs one diagnostic.
    """
    chunks: list[tuple[int, int]] = []
    n = len(text)
    i = 0
    depth = 0
    start = 0
    ann_start = -1
    seen_content = False
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"' and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            seen_content = True
            continue
        if c == "/" and i + 1 < n and text[i + 1] == "/":
            j = text.find("\n", i)
            i = n if j == -1 else j
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth = max(0, depth - 1)
        elif c == ";" and depth == 0:
            chunks.append((start, i + 1))
            start = i + 1
            seen_content = False
            ann_start = -1
        elif depth == 0 and c == "@":
            if ann_start == -1:
                ann_start = i
            j = i + 1  # skip `@name`, its `("value")` is skipped as brackets and a string
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            i = j
            continue
        elif depth == 0 and (c.isalpha() or c == "_") and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] in "_.")):
            j = i
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            word = text[i:j]
            if word in STATEMENT_KEYWORDS:
                cut = ann_start if ann_start != -1 else i
                if seen_content and cut > start and text[start:cut].strip():
                    # the previous statement was not terminated
                    chunks.append((start, cut))
                    start = cut
                seen_content = True
                ann_start = -1
            else:
                # annotations before when/unless belong to a clause, not a new statement
                ann_start = -1
                seen_content = True
            i = j
            continue
        elif not c.isspace():
            seen_content = True
        i += 1
    if text[start:].strip():
        chunks.append((start, n))
    return chunks


def diagnostic_order(d: Diagnostic):
    """Sort key: diagnostics in the order of their positions in the file."""
    return (d.span.start, d.span.line, d.span.col)


def parse_chunks(source: str, filename: str = "<input>") -> list[Parsed]:
    """One `Parsed` per statement chunk of `source` (`split_statements`), which together
    make `parse_partial`'s answer (the language server keeps them between edits)."""
    p = _parser()
    with p.lock:
        whole = _parse(p, source, 0, len(source), filename, 1, 1)
        return _chunks(p, source, filename, whole)


def _chunks(p: _Parser, source: str, filename: str, whole: Parsed) -> list[Parsed]:
    """`whole` filed under the statement chunks when the grammar accepted it; else each
    chunk parsed on its own, so one broken statement costs one diagnostic and the others
    still give IR. The caller holds the lock."""
    bounds = split_statements(source)
    if not bounds:
        return [whole] if whole.diagnostics or whole.comments else []
    starts = [a for a, _ in bounds]

    def home(span: Span) -> int:
        return max(0, bisect.bisect_right(starts, span.start) - 1)

    if whole.accepted:
        groups: list[tuple[list, list, list]] = [([], [], []) for _ in bounds]
        for s in whole.statements:
            groups[home(s.span)][0].append(s)
        for c in whole.comments:
            groups[home(c.span)][1].append(c)
        for d in whole.diagnostics:
            groups[home(d.span)][2].append(d)
        return [Parsed(tuple(s), tuple(c), tuple(d), True, a, b, b) for (a, b), (s, c, d) in zip(bounds, groups)]
    line_starts = [0]
    i = source.find("\n")
    while i != -1:
        line_starts.append(i + 1)
        i = source.find("\n", i + 1)
    chunks = []
    for a, b in bounds:
        ln = bisect.bisect_right(line_starts, a) - 1
        chunks.append(_parse(p, source, a, b, filename, ln + 1, a - line_starts[ln] + 1))
    if not any(d.code == "syntax" for c in chunks for d in c.diagnostics):
        # Cutting the file hid the error (e.g. a string left open): report the whole-file one.
        i = home(whole.diagnostics[0].span)
        hit = chunks[i]
        chunks[i] = Parsed(hit.statements, hit.comments, whole.diagnostics + hit.diagnostics, False, hit.start, hit.end,
                           len(source))
    return chunks


def parse_partial(source: str, filename: str = "<input>") -> tuple[ir.Document, list[Diagnostic]]:
    """Parse with recovery: every good statement becomes IR; one diagnostic per broken
    one. Diagnostics are in the order of their positions. The whole file is parsed in one
    go first (3x faster than chunk by chunk); only when the grammar rejects it is it cut
    into statements (`parse_chunks`)."""
    p = _parser()
    with p.lock:
        whole = _parse(p, source, 0, len(source), filename, 1, 1)
        parts = [whole] if whole.accepted else _chunks(p, source, filename, whole)
    return assemble(((c.statements, c.comments, c.diagnostics) for c in parts), source, filename)


def assemble(parts, source: str, filename: str) -> tuple[ir.Document, list[Diagnostic]]:
    """One document from parsed parts in source order, each (statements, comments,
    diagnostics); diagnostics in position order. The whole-file parse and the language
    server's incremental parse both end here."""
    stmts: list = []
    comments: list = []
    diags: list[Diagnostic] = []
    for s, c, d in parts:
        stmts.extend(s)
        comments.extend(c)
        diags.extend(d)
    diags.sort(key=diagnostic_order)
    return ir.Document(tuple(stmts), tuple(comments), source, filename), diags


def parse(source: str, filename: str = "<input>") -> ir.Document:
    """Parse or raise `MCPPError` carrying every syntax diagnostic found."""
    doc, diags = parse_partial(source, filename)
    errors = [d for d in diags if d.severity == "error"]
    if errors:
        raise MCPPError(errors, source)
    return doc


def parse_file(path: str | Path) -> ir.Document:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise MCPPError([Diagnostic(f"file is not valid UTF-8 ({e.reason})", Span(1, 1, 1, 2), file=str(path))])
    except OSError as e:
        raise MCPPError([Diagnostic(f"cannot read file: {e.strerror}", Span(1, 1, 1, 1), file=str(path))])
    return parse(text, str(path))
