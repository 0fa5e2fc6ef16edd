"""Source text → IR `Document`, with error recovery.

The fast path is one LALR parse of the whole file, then one Transformer pass to IR.
When it fails, the file is cut into top-level statements and each is parsed on its
own, so one broken statement yields one diagnostic and the good ones still produce
IR (what the language server needs while the user types).
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from . import ir
from .diagnostics import Diagnostic, MCPPError, Span
from .strings import EscapeError, unescape

GRAMMAR = (Path(__file__).with_name("grammar.lark")).read_text()

STATEMENT_KEYWORDS = ("permit", "forbid", "default", "hide", "group", "limit", "assert")

# Human words for terminals in "expected …" messages.
TERMINAL_NAMES = {
    "SEMICOLON": "';'", "LPAR": "'('", "RPAR": "')'", "LBRACE": "'{'", "RBRACE": "'}'",
    "LSQB": "'['", "RSQB": "']'", "COMMA": "','", "DOT": "'.'", "COLON": "':'", "EQUAL": "'='",
    "__ANON_0": "'::'", "NAME": "a name", "STRING": "a string", "NUMBER": "a number",
    "EFFECT": "'permit' or 'forbid'", "CLAUSE_KIND": "'when' or 'unless'", "COMPARE": "a comparison",
    "VAR": "'principal', 'action', 'resource' or 'context'", "DEFAULT_KIND": "'allow' or 'deny'",
    "ASSERT_KIND": "'allow', 'deny', 'hidden' or 'visible'", "AT": "'@'", "BANG": "'!'",
    "MINUS": "'-'", "ADD_OP": "an operator", "TRUE": "'true'", "FALSE": "'false'", "NULL": "'null'",
    "OROR": "'||'", "AMPAMP": "'&&'", "$END": "end of file",
}

EXTENSION_FUNCTIONS = {"decimal", "ip", "datetime", "duration"}
UNSUPPORTED_METHODS = {
    "lessThan", "lessThanOrEqual", "greaterThan", "greaterThanOrEqual", "isIpv4", "isIpv6",
    "isLoopback", "isMulticast", "isInRange", "getTag", "hasTag", "offset", "durationSince",
    "toDate", "toTime", "toDays", "toHours", "toMinutes", "toSeconds", "toMilliseconds",
}


class _Builder(Transformer):
    """Builds IR nodes during the LALR parse; collects (does not raise) semantic-syntax errors."""

    def __init__(self) -> None:
        super().__init__(visit_tokens=False)
        self.reset()

    def reset(self, line_base: int = 0, col_base: int = 0, pos_base: int = 0, filename: str = "<input>"):
        self.line_base, self.col_base, self.pos_base = line_base, col_base, pos_base
        self.filename = filename
        self.diags: list[Diagnostic] = []

    # -- spans ---------------------------------------------------------------
    def span(self, meta) -> Span:
        if getattr(meta, "empty", True):
            return Span(1 + self.line_base, 1, 1 + self.line_base, 1, self.pos_base, self.pos_base)
        return Span(
            meta.line + self.line_base,
            meta.column + (self.col_base if meta.line == 1 else 0),
            meta.end_line + self.line_base,
            meta.end_column + (self.col_base if meta.end_line == 1 else 0),
            meta.start_pos + self.pos_base,
            meta.end_pos + self.pos_base,
        )

    def tspan(self, tok: Token) -> Span:
        return Span(
            tok.line + self.line_base,
            tok.column + (self.col_base if tok.line == 1 else 0),
            tok.end_line + self.line_base,
            tok.end_column + (self.col_base if tok.end_line == 1 else 0),
            tok.start_pos + self.pos_base,
            tok.end_pos + self.pos_base,
        )

    def error(self, message: str, span: Span, code: str = "syntax", notes: tuple[str, ...] = ()) -> None:
        self.diags.append(Diagnostic(message, span, "error", code, self.filename, notes))

    def string(self, tok: Token, *, star: bool = False):
        try:
            return unescape(str(tok), star=star)
        except EscapeError as e:
            self.error(str(e), self.tspan(tok))
            return ("",) if star else ""

    # -- literals ------------------------------------------------------------
    @v_args(meta=True, inline=True)
    def string_lit(self, meta, tok):
        return ir.Lit(self.string(tok), self.span(meta))

    @v_args(meta=True, inline=True)
    def number(self, meta, tok):
        text = str(tok)
        if "." in text or "e" in text or "E" in text:
            value: object = float(text)
            if not math.isfinite(value):
                self.error(f"number {text} is out of range", self.tspan(tok))
                value = 0.0
        else:
            value = int(text)
        return ir.Lit(value, self.span(meta))

    @v_args(meta=True, inline=True)
    def true(self, meta, _):
        return ir.Lit(True, self.span(meta))

    @v_args(meta=True, inline=True)
    def false(self, meta, _):
        return ir.Lit(False, self.span(meta))

    @v_args(meta=True, inline=True)
    def null(self, meta, _):
        return ir.Lit(None, self.span(meta))

    @v_args(meta=True, inline=True)
    def var(self, meta, tok):
        return ir.Var(str(tok), self.span(meta))

    # -- entities ------------------------------------------------------------
    @v_args(meta=True)
    def entity_type(self, meta, names):
        return "::".join(str(n) for n in names)

    @v_args(meta=True, inline=True)
    def entity(self, meta, etype, tok):
        return ir.EntityRef(str(etype)[:-2], self.string(tok), self.span(meta))

    @v_args(meta=True, inline=True)
    def entity_lit(self, meta, ref):
        return ir.EntityLit(ref, self.span(meta))

    # -- expressions ---------------------------------------------------------
    @v_args(meta=True, inline=True)
    def if_expr(self, meta, c, t, e):
        return ir.If(c, t, e, self.span(meta))

    @v_args(meta=True, inline=True)
    def or_expr(self, meta, a, b):
        return ir.Or(a, b, self.span(meta))

    @v_args(meta=True, inline=True)
    def and_expr(self, meta, a, b):
        return ir.And(a, b, self.span(meta))

    @v_args(meta=True, inline=True)
    def compare(self, meta, a, op, b):
        return ir.Compare(str(op), a, b, self.span(meta))

    @v_args(meta=True, inline=True)
    def in_expr(self, meta, a, b):
        return ir.In(a, b, self.span(meta))

    @v_args(meta=True, inline=True)
    def has_expr(self, meta, obj, path):
        return ir.Has(obj, path, self.span(meta))

    @v_args(meta=True)
    def has_path(self, meta, parts):
        return tuple(self.string(p) if p.type == "STRING" else str(p) for p in parts)

    @v_args(meta=True, inline=True)
    def like_expr(self, meta, obj, tok):
        return ir.Like(obj, self.string(tok, star=True), self.span(meta))

    @v_args(meta=True, inline=True)
    def is_expr(self, meta, obj, etype, in_=None):
        return ir.Is(obj, etype, in_, self.span(meta))

    @v_args(meta=True, inline=True)
    def arith(self, meta, a, op, b):
        span = self.span(meta)
        self.error(
            f"arithmetic ('{op}') is not supported in mcpp",
            span,
            notes=("compare the argument with a constant instead, e.g. context.input.amount > 1000",),
        )
        return ir.Lit(0, span)

    @v_args(meta=True, inline=True)
    def not_expr(self, meta, e):
        return ir.Not(e, self.span(meta))

    @v_args(meta=True, inline=True)
    def neg_expr(self, meta, e):
        span = self.span(meta)
        if isinstance(e, ir.Lit) and isinstance(e.value, (int, float)) and not isinstance(e.value, bool):
            return ir.Lit(-e.value, span)
        return ir.Neg(e, span)

    @v_args(meta=True, inline=True)
    def attr(self, meta, obj, name):
        return ir.GetAttr(obj, str(name), self.span(meta))

    @v_args(meta=True, inline=True)
    def index(self, meta, obj, tok):
        return ir.GetAttr(obj, self.string(tok), self.span(meta))

    @v_args(meta=True)
    def method(self, meta, children):
        obj, name, *args = children
        args = [a for a in args if a is not None]
        span = self.span(meta)
        name = str(name)
        if name == "matches":
            if len(args) != 1 or not isinstance(args[0], ir.Lit) or not isinstance(args[0].value, str):
                self.error("matches() takes one string literal: the RE2 regular expression", span)
                return ir.Lit(False, span)
            return ir.Matches(obj, args[0].value, span)
        if name == "like":
            self.error("use the infix form: s like \"pat*\"", span)
            return ir.Lit(False, span)
        if name in ir.SET_METHODS:
            want = ir.SET_METHODS[name]
            if len(args) != want:
                self.error(f"{name}() takes {want} argument{'s' if want != 1 else ''}, got {len(args)}", span)
                return ir.Lit(False, span)
            return ir.Call(obj, name, tuple(args), span)
        if name in UNSUPPORTED_METHODS:
            self.error(
                f"Cedar extension method {name}() is not supported in mcpp",
                span,
                notes=("mcpp numbers are JSON numbers: compare with < <= > >= directly",),
            )
        else:
            self.error(
                f"unknown method {name}()",
                span,
                notes=("methods: contains, containsAll, containsAny, isEmpty, matches",),
            )
        return ir.Lit(False, span)

    @v_args(meta=True)
    def func_call(self, meta, children):
        name = str(children[0])
        span = self.span(meta)
        if name in EXTENSION_FUNCTIONS:
            self.error(
                f"Cedar extension function {name}() is not supported in mcpp",
                span,
                notes=("numbers with fractions are written directly, e.g. 1000.01",),
            )
        else:
            self.error(f"unknown function {name}()", span)
        return ir.Lit(False, span)

    @v_args(meta=True)
    def set_lit(self, meta, items):
        return ir.SetLit(tuple(i for i in items if i is not None), self.span(meta))

    @v_args(meta=True)
    def record_lit(self, meta, entries):
        items = tuple(e for e in entries if e is not None)
        seen = set()
        for k, _ in items:
            if k in seen:
                self.error(f"duplicate record key {k!r}", self.span(meta))
            seen.add(k)
        return ir.RecordLit(items, self.span(meta))

    @v_args(meta=True, inline=True)
    def record_entry(self, meta, key, value):
        k = self.string(key) if key.type == "STRING" else str(key)
        return (k, value)

    # -- statements ------------------------------------------------------------
    @v_args(meta=True, inline=True)
    def annotation(self, meta, name, value=None):
        return ir.Annotation(str(name), self.string(value) if value is not None else "", self.span(meta))

    @v_args(meta=True)
    def annotations(self, meta, items):
        seen: set[str] = set()
        for a in items:
            if a.key in seen:
                self.error(f"duplicate annotation @{a.key}", a.span)
            seen.add(a.key)
        return tuple(items)

    @v_args(meta=True, inline=True)
    def default_decl(self, meta, annotations, kind):
        return ir.Default(str(kind), annotations, self.span(meta))

    @v_args(meta=True)
    def hide_decl(self, meta, children):
        annotations, *ents = children
        return ir.Hide(tuple(e for e in ents if e is not None), annotations, self.span(meta))

    @v_args(meta=True)
    def group_decl(self, meta, children):
        annotations, entity, *members = children
        return ir.Group(entity, tuple(m for m in members if m is not None), annotations, self.span(meta))

    @v_args(meta=True, inline=True)
    def scope_eq(self, meta, entity):
        return ("eq", entity, None, self.span(meta))

    @v_args(meta=True, inline=True)
    def scope_in(self, meta, entity):
        return ("in", entity, None, self.span(meta))

    @v_args(meta=True, inline=True)
    def scope_is(self, meta, etype, entity=None):
        return ("is_in" if entity is not None else "is", entity, etype, self.span(meta))

    @v_args(meta=True)
    def scope_in_list(self, meta, ents):
        return ("in_list", tuple(e for e in ents if e is not None), None, self.span(meta))

    def _entity_scope(self, meta, c, var):
        if c is None:
            return ir.EntityScope("any", None, None, self.span(meta))
        op, entity, etype, _ = c
        return ir.EntityScope(op, entity, etype, self.span(meta))

    @v_args(meta=True, inline=True)
    def principal_scope(self, meta, c=None):
        return self._entity_scope(meta, c, "principal")

    @v_args(meta=True, inline=True)
    def resource_scope(self, meta, c=None):
        return self._entity_scope(meta, c, "resource")

    @v_args(meta=True, inline=True)
    def action_scope(self, meta, c=None):
        span = self.span(meta)
        if c is None:
            return ir.ActionScope("any", (), span)
        op, entity, _, _ = c
        if op == "in_list":
            return ir.ActionScope("in_list", entity, span)
        return ir.ActionScope(op, (entity,), span)

    @v_args(meta=True, inline=True)
    def scope(self, meta, p, a, r):
        return ir.Scope(p, a, r, self.span(meta))

    @v_args(meta=True, inline=True)
    def clause(self, meta, annotations, kind, expr):
        for a in annotations:
            if a.key != "reason":
                self.error(f"@{a.key} is not allowed on a {kind} clause (only @reason)", a.span)
        return ir.Clause(str(kind), expr, annotations, self.span(meta))

    @v_args(meta=True)
    def policy(self, meta, children):
        annotations, effect, scope, *clauses = children
        return ir.Policy(str(effect), scope, tuple(clauses), annotations, self.span(meta))

    @v_args(meta=True, inline=True)
    def limit_max(self, meta, tok):
        text = str(tok)
        value = float(text) if any(c in text for c in ".eE") else int(text)
        return ("max", value, self.span(meta))

    @v_args(meta=True, inline=True)
    def limit_window(self, meta, tok):
        return ("per", str(tok), self.span(meta))

    @v_args(meta=True, inline=True)
    def limit_scope(self, meta, tok):
        return ("scope", str(tok), self.span(meta))

    @v_args(meta=True, inline=True)
    def limit_increment(self, meta, expr):
        return ("increment", expr, self.span(meta))

    @v_args(meta=True, inline=True)
    def expr_path(self, meta, e):
        return e

    @v_args(meta=True)
    def limit_decl(self, meta, children):
        annotations, counter_tok, scope, *rest = children
        span = self.span(meta)
        options: dict[str, tuple] = {}
        clauses = []
        order = []
        for item in rest:
            if isinstance(item, ir.Clause):
                clauses.append(item)
                continue
            key, value, ospan = item
            if key in options:
                self.error(f"'{key}' given twice in this limit", ospan)
            options[key] = (value, ospan)
            order.append(key)
        counter = self.string(counter_tok)
        if not counter:
            self.error("a limit needs a non-empty counter name", self.tspan(counter_tok))
        mx = options.get("max", (None, span))[0]
        window = options.get("per", (None, span))[0]
        scope_kind = options.get("scope", ("grant", span))[0]
        if "max" not in options:
            self.error("limit needs 'max N'", span)
        elif mx < 0:
            self.error("limit max must not be negative", options["max"][1])
        if "per" not in options:
            self.error("limit needs a window: 'per minute', 'per hour' or 'per day'", span)
        elif window not in ("minute", "hour", "day"):
            self.error(f"unknown window '{window}': use minute, hour or day", options["per"][1])
        if scope_kind not in ("grant", "policy"):
            self.error(f"unknown limit scope '{scope_kind}': use grant or policy", options["scope"][1])
        increment = options.get("increment", (None, span))[0]
        return ir.Limit(
            counter, scope, mx, window, scope_kind, increment, tuple(clauses), annotations,
            tuple(order), span,
        )

    @v_args(meta=True)
    def assert_decl(self, meta, children):
        annotations, kind, scope, *clauses = children
        return ir.Assert(str(kind), scope, tuple(clauses), annotations, self.span(meta))

    @v_args(meta=True)
    def start(self, meta, statements):
        return list(statements)


class _Parser:
    """A Lark LALR parser bound to one builder; guarded by a lock (Lark parsers are not reentrant here)."""

    def __init__(self) -> None:
        self.builder = _Builder()
        self.comments: list[Token] = []
        self.lark = Lark(
            GRAMMAR,
            parser="lalr",
            lexer="contextual",
            propagate_positions=True,
            maybe_placeholders=True,
            lexer_callbacks={"COMMENT": self.comments.append},
            start="start",
        )
        self.lock = threading.Lock()


_PARSER: _Parser | None = None
_PARSER_LOCK = threading.Lock()


def _parser() -> _Parser:
    global _PARSER
    with _PARSER_LOCK:
        if _PARSER is None:
            _PARSER = _Parser()
        return _PARSER


def _describe_token(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    text = str(tok)
    if len(text) > 30:
        text = text[:27] + "..."
    return f"'{text}'"


_RANK = {"COMPARE": 0, "AMPAMP": 1, "OROR": 2, "RPAR": 3, "RBRACE": 4, "RSQB": 5, "COMMA": 6, "SEMICOLON": 7}


def _expected(expected: set[str]) -> str:
    ordered = sorted(expected, key=lambda t: (_RANK.get(t, 50), TERMINAL_NAMES.get(t, t)))
    words = list(dict.fromkeys(TERMINAL_NAMES.get(t, f"'{t.lower()}'" if t.isalpha() else t) for t in ordered))
    if not words:
        return ""
    if len(words) > 8:
        words = words[:8] + ["…"]
    return ", expected " + (words[0] if len(words) == 1 else "one of " + ", ".join(words))


def _syntax_diag(e: UnexpectedInput, text: str, b: _Builder) -> Diagnostic:
    line = e.line if isinstance(getattr(e, "line", None), int) and e.line > 0 else 1
    col = e.column if isinstance(getattr(e, "column", None), int) and e.column > 0 else 1
    pos = e.pos_in_stream if isinstance(getattr(e, "pos_in_stream", None), int) else len(text)
    width = 1
    if isinstance(e, UnexpectedToken):
        tok = e.token
        if tok.type == "$END":
            # Point just past the last non-blank character, where the text stops.
            stripped = text.rstrip()
            pos = len(stripped)
            line = stripped.count("\n") + 1
            col = pos - (stripped.rfind("\n") + 1) + 1
            msg = f"unexpected end of input{_expected(e.accepts or e.expected)}"
        else:
            width = max(1, len(str(tok)))
            msg = f"unexpected {_describe_token(tok)}{_expected(e.accepts or e.expected)}"
            if tok.type == "SEMICOLON" and "RBRACE" in (e.accepts or e.expected):
                msg += " (missing '}'?)"
            elif str(tok) == "=":
                msg += " (did you mean '=='?)"
            elif (e.accepts or e.expected) == {"LPAR"}:
                import re

                m = re.search(r"([_a-zA-Z][_a-zA-Z0-9]*)\s*$", text[: tok.start_pos])
                if m:
                    name = m.group(1)
                    msg = f"unknown name '{name}' (variables are principal, action, resource and context)"
                    pos, col, width = m.start(1), col - (tok.start_pos - m.start(1)), len(name)
    elif isinstance(e, UnexpectedCharacters):
        ch = text[pos] if pos < len(text) else ""
        msg = f"unexpected character {ch!r}"
        if ch == "'":
            msg += " (strings use double quotes)"
        elif ch == "&":
            msg += " (did you mean '&&'?)"
        elif ch == "|":
            msg += " (did you mean '||'?)"
        elif ch == "=":
            msg += " (did you mean '=='?)"
    elif isinstance(e, UnexpectedEOF):
        msg = "unexpected end of input"
    else:  # pragma: no cover
        msg = str(e)
    span = Span(
        line + b.line_base,
        col + (b.col_base if line == 1 else 0),
        line + b.line_base,
        col + (b.col_base if line == 1 else 0) + width,
        pos + b.pos_base,
        pos + b.pos_base + width,
    )
    return Diagnostic(msg, span, "error", "syntax", b.filename)


def _run(p: _Parser, text: str, filename: str, line_base=0, col_base=0, pos_base=0):
    """Parse `text` (a whole file or one statement chunk). Returns (statements, comments, diags)."""
    p.builder.reset(line_base, col_base, pos_base, filename)
    p.comments.clear()
    try:
        stmts = p.builder.transform(p.lark.parse(text))
        diags = list(p.builder.diags)
        ok = True
    except UnexpectedInput as e:
        stmts, diags, ok = [], [_syntax_diag(e, text, p.builder)], False
    except VisitError as e:  # pragma: no cover - a builder bug must not crash callers
        stmts, ok = [], False
        diags = [Diagnostic(f"internal error while parsing: {e.orig_exc}", Span(1, 1, 1, 1), "error", "internal", filename)]
    comments = [
        ir.Comment(str(t).rstrip(), p.builder.tspan(t)) for t in p.comments
    ]
    return stmts, comments, diags, ok


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
    last_stmt_kw = -1  # offset where annotations before a keyword begin
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


def _line_col(text: str, offset: int, line_starts: list[int]) -> tuple[int, int]:
    import bisect

    idx = bisect.bisect_right(line_starts, offset) - 1
    return idx + 1, offset - line_starts[idx] + 1


def parse_partial(source: str, filename: str = "<input>") -> tuple[ir.Document, list[Diagnostic]]:
    """Parse with recovery: every good statement becomes IR; one diagnostic per broken one."""
    p = _parser()
    with p.lock:
        stmts, comments, diags, ok = _run(p, source, filename)
        if ok:
            return ir.Document(tuple(stmts), tuple(comments), source, filename), diags
        line_starts = [0] + [i + 1 for i, ch in enumerate(source) if ch == "\n"]
        all_stmts: list = []
        all_comments: list = []
        all_diags: list[Diagnostic] = []
        for a, b in split_statements(source):
            line, col = _line_col(source, a, line_starts)
            s, c, d, _ = _run(p, source[a:b], filename, line - 1, col - 1, a)
            all_stmts.extend(s)
            all_comments.extend(c)
            all_diags.extend(d)
        if not any(d.code == "syntax" for d in all_diags):
            # Chunking hid the error (e.g. an unterminated string); report the whole-file one.
            all_diags = diags + all_diags
        return ir.Document(tuple(all_stmts), tuple(all_comments), source, filename), all_diags


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
