"""Source text → IR `Document`, with error recovery.

The fast path is one LALR parse of the whole file with IR built during the parse
(Lark's tree-less mode; spans come from the tokens, see `rule`).
When it fails, the file is cut into top-level statements and each is parsed on its
own, so one broken statement yields one diagnostic and the good ones still produce
IR (what the language server needs while the user types).
"""

from __future__ import annotations

import contextlib
import gc
import math
import threading
from pathlib import Path

from lark import Lark
from lark.parsers.lalr_analysis import Shift

from . import ir
from .diagnostics import Diagnostic, MCPPError, Span
from .lexer import Job, LexError, Tok, tokenize
from .strings import EscapeError, unescape

GRAMMAR = (Path(__file__).with_name("grammar.lark")).read_text()

STATEMENT_KEYWORDS = ("permit", "forbid", "default", "hide", "group", "limit", "assert")

# Human words for terminals in "expected …" messages.
TERMINAL_NAMES = {
    "SEMICOLON": "';'", "LPAR": "'('", "RPAR": "')'", "LBRACE": "'{'", "RBRACE": "'}'",
    "LSQB": "'['", "RSQB": "']'", "COMMA": "','", "DOT": "'.'", "COLON": "':'", "EQUAL": "'='",
    "NAME": "a name", "INPUT_PATH": "an argument path", "STRING": "a string", "NUMBER": "a number",
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


# Toks that carry meaning; punctuation and keyword tokens only give positions.
_SEMANTIC = {
    "INPUT_PATH", "NAME", "STRING", "NUMBER", "VAR", "COMPARE", "ADD_OP", "EFFECT", "CLAUSE_KIND",
    "DEFAULT_KIND", "ASSERT_KIND", "ENTITY_TYPE", "TRUE", "FALSE", "NULL",
}


def _first(c) -> Span | None:
    if isinstance(c, Tok):
        return Span(c.line, c.column, c.end_line, c.end_column, c.start_pos, c.end_pos)
    span = getattr(c, "span", None)
    if span is not None:
        return span
    if isinstance(c, (tuple, list)):
        for x in c:
            s = _first(x)
            if s is not None:
                return s
    return None


def _last(c) -> Span | None:
    if isinstance(c, Tok):
        return Span(c.line, c.column, c.end_line, c.end_column, c.start_pos, c.end_pos)
    span = getattr(c, "span", None)
    if span is not None:
        return span
    if isinstance(c, (tuple, list)):
        for x in reversed(c):
            s = _last(x)
            if s is not None:
                return s
    return None


class _Pos:
    """A non-IR builder value that still knows where it came from."""

    __slots__ = ("value", "span")

    def __init__(self, value, span: Span):
        self.value = value
        self.span = span


def rule(fn):
    """Adapt a builder method to Lark's tree-less callbacks: it receives the span of the
    whole rule (from its first and last positioned child) and only the meaningful children."""

    def callback(self, children):
        first = last = None
        for c in children:
            if type(c) is Tok:
                first = (c.line, c.column, c.start_pos)
                break
            s = _first(c)
            if s is not None:
                first = (s.line, s.col, s.start)
                break
        if first is None:
            span = self.empty_span
        else:
            for c in reversed(children):
                if type(c) is Tok:
                    last = (c.end_line, c.end_column, c.end_pos)
                    break
                s = _last(c)
                if s is not None:
                    last = (s.end_line, s.end_col, s.end)
                    break
            span = Span(first[0], first[1], last[0], last[1], first[2], last[2])
        vals = [c for c in children if c is not None and (type(c) is not Tok or c.type in _SEMANTIC)]
        return fn(self, span, *vals)

    callback.__name__ = fn.__name__
    return callback


class _Builder:
    """Builds IR nodes during the LALR parse; collects (does not raise) semantic-syntax errors."""

    def __init__(self) -> None:
        self.reset()

    def reset(self, filename: str = "<input>", empty_span: Span | None = None):
        self.filename = filename
        self.empty_span = empty_span or Span(1, 1, 1, 1, 0, 0)
        self.diags: list[Diagnostic] = []

    @staticmethod
    def tspan(tok: Tok) -> Span:
        return Span(tok.line, tok.column, tok.end_line, tok.end_column, tok.start_pos, tok.end_pos)

    def error(self, message: str, span: Span, code: str = "syntax", notes: tuple[str, ...] = ()) -> None:
        self.diags.append(Diagnostic(message, span, "error", code, self.filename, notes))

    def string(self, tok: Tok, *, star: bool = False):
        try:
            return unescape(str(tok), star=star)
        except EscapeError as e:
            self.error(str(e), self.tspan(tok))
            return ("",) if star else ""

    # -- literals ------------------------------------------------------------
    @rule
    def string_lit(self, span, tok):
        return ir.Lit(self.string(tok), span)

    @rule
    def number(self, span, tok):
        text = str(tok)
        if "." in text or "e" in text or "E" in text:
            value: object = float(text)
            if not math.isfinite(value):
                self.error(f"number {text} is out of range", span)
                value = 0.0
        else:
            value = int(text)
        return ir.Lit(value, span)

    @rule
    def true(self, span, _):
        return ir.Lit(True, span)

    @rule
    def false(self, span, _):
        return ir.Lit(False, span)

    @rule
    def null(self, span, _):
        return ir.Lit(None, span)

    @rule
    def var(self, span, tok):
        return ir.Var(str(tok), span)

    @rule
    def input_path(self, span, tok):
        """`context.input.a.b` (one token) → the GetAttr chain, each node with its own span."""
        line, col, start = tok.line, tok.column, tok.start_pos
        e: ir.Expr = ir.Var("context", Span(line, col, line, col + 7, start, start + 7))
        offset = 7
        for name in str(tok).split(".")[1:]:
            offset += 1 + len(name)
            e = ir.GetAttr(e, name, Span(line, col, line, col + offset, start, start + offset))
        return e

    @rule
    def primary(self, span, inner):  # `( expr )`
        return inner

    # -- entities ------------------------------------------------------------
    @rule
    def entity_type(self, span, *names):
        return _Pos("::".join(str(n) for n in names), span)

    @rule
    def entity(self, span, etype, tok):
        return ir.EntityRef(str(etype)[:-2], self.string(tok), span)

    @rule
    def entity_lit(self, span, ref):
        return ir.EntityLit(ref, span)

    @rule
    def entity_items(self, span, *ents):
        return tuple(ents)

    # -- expressions ---------------------------------------------------------
    @rule
    def if_expr(self, span, c, t, e):
        return ir.If(c, t, e, span)

    @rule
    def or_expr(self, span, a, b):
        return ir.Or(a, b, span)

    @rule
    def and_expr(self, span, a, b):
        return ir.And(a, b, span)

    @rule
    def compare(self, span, a, op, b):
        return ir.Compare(str(op), a, b, span)

    @rule
    def in_expr(self, span, a, b):
        return ir.In(a, b, span)

    @rule
    def has_expr(self, span, obj, path):
        return ir.Has(obj, path.value, span)

    @rule
    def has_path(self, span, *parts):
        return _Pos(tuple(self.string(p) if p.type == "STRING" else str(p) for p in parts), span)

    @rule
    def like_expr(self, span, obj, tok):
        return ir.Like(obj, self.string(tok, star=True), span)

    @rule
    def is_expr(self, span, obj, etype, in_=None):
        return ir.Is(obj, etype.value, in_, span)

    @rule
    def arith(self, span, a, op, b):
        self.error(
            f"arithmetic ('{op}') is not supported in mcpp",
            span,
            notes=("compare the argument with a constant instead, e.g. context.input.amount > 1000",),
        )
        return ir.Lit(0, span)

    @rule
    def not_expr(self, span, e):
        return ir.Not(e, span)

    @rule
    def neg_expr(self, span, e):
        if isinstance(e, ir.Lit) and isinstance(e.value, (int, float)) and not isinstance(e.value, bool):
            return ir.Lit(-e.value, span)
        return ir.Neg(e, span)

    @rule
    def attr(self, span, obj, name):
        return ir.GetAttr(obj, str(name), span)

    @rule
    def index(self, span, obj, tok):
        return ir.GetAttr(obj, self.string(tok), span)

    @rule
    def method(self, span, obj, name, *args):
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

    @rule
    def func_call(self, span, name, *args):
        name = str(name)
        if name in EXTENSION_FUNCTIONS:
            self.error(
                f"Cedar extension function {name}() is not supported in mcpp",
                span,
                notes=("numbers with fractions are written directly, e.g. 1000.01",),
            )
        else:
            self.error(f"unknown function {name}()", span)
        return ir.Lit(False, span)

    @rule
    def set_lit(self, span, *items):
        return ir.SetLit(tuple(items), span)

    @rule
    def record_lit(self, span, *entries):
        seen = set()
        for k, _ in entries:
            if k in seen:
                self.error(f"duplicate record key {k!r}", span)
            seen.add(k)
        return ir.RecordLit(tuple(entries), span)

    @rule
    def record_entry(self, span, key, value):
        k = self.string(key) if key.type == "STRING" else str(key)
        return (k, value)

    # -- statements ------------------------------------------------------------
    @rule
    def annotation(self, span, name, value=None):
        return ir.Annotation(str(name), self.string(value) if value is not None else "", span)

    @rule
    def annotations(self, span, *items):
        seen: set[str] = set()
        for a in items:
            if a.key in seen:
                self.error(f"duplicate annotation @{a.key}", a.span)
            seen.add(a.key)
        return tuple(items)

    @rule
    def default_decl(self, span, annotations, kind):
        return ir.Default(str(kind), annotations, span)

    @rule
    def hide_decl(self, span, annotations, items):
        return ir.Hide(items, annotations, span)

    @rule
    def group_decl(self, span, annotations, entity, *members):
        return ir.Group(entity, tuple(members), annotations, span)

    @rule
    def scope_eq(self, span, op, entity):
        if str(op) != "==":
            self.error(f"a scope constrains with ==, in or is, not {op}", self.tspan(op))
        return _Pos(("eq", (entity,), None), span)

    @rule
    def scope_in(self, span, entity):
        return _Pos(("in", (entity,), None), span)

    @rule
    def scope_is(self, span, etype, entity=None):
        return _Pos(("is_in" if entity is not None else "is", (entity,) if entity else (), etype.value), span)

    @rule
    def scope_in_list(self, span, *ents):
        return _Pos(("in_list", tuple(ents), None), span)

    def _scope_var(self, tok: Tok, want: str) -> None:
        if str(tok) != want:
            self.error(f"expected '{want}' here, found '{tok}' (a scope is (principal, action, resource))", self.tspan(tok))

    def _entity_scope(self, span, var, c, want):
        self._scope_var(var, want)
        if c is None:
            return ir.EntityScope("any", None, None, span)
        op, ents, etype = c.value
        return ir.EntityScope(op, ents[0] if ents else None, etype, span)

    @rule
    def principal_scope(self, span, var, c=None):
        return self._entity_scope(span, var, c, "principal")

    @rule
    def resource_scope(self, span, var, c=None):
        return self._entity_scope(span, var, c, "resource")

    @rule
    def action_scope(self, span, var, c=None):
        self._scope_var(var, "action")
        if c is None:
            return ir.ActionScope("any", (), span)
        op, ents, _ = c.value
        if op.startswith("is"):
            self.error("the action scope takes ==, in or in [...], not is", c.span)
            return ir.ActionScope("any", (), span)
        return ir.ActionScope(op, ents, span)

    @rule
    def scope(self, span, p, a, r):
        return ir.Scope(p, a, r, span)

    @rule
    def clause(self, span, annotations, kind, expr):
        for a in annotations:
            if a.key != "reason":
                self.error(f"@{a.key} is not allowed on a {kind} clause (only @reason)", a.span)
        return ir.Clause(str(kind), expr, annotations, span)

    @rule
    def policy(self, span, annotations, effect, scope, *clauses):
        return ir.Policy(str(effect), scope, tuple(clauses), annotations, span)

    @rule
    def limit_max(self, span, tok):
        text = str(tok)
        value = float(text) if any(c in text for c in ".eE") else int(text)
        return _Pos(("max", value), span)

    @rule
    def limit_window(self, span, tok):
        return _Pos(("per", str(tok)), span)

    @rule
    def limit_scope(self, span, tok):
        return _Pos(("scope", str(tok)), span)

    @rule
    def limit_increment(self, span, expr):
        return _Pos(("increment", expr), span)

    @rule
    def expr_path(self, span, e):
        return e

    @rule
    def limit_decl(self, span, annotations, counter_tok, scope, *rest):
        options: dict[str, tuple] = {}
        clauses = []
        order = []
        for item in rest:
            if isinstance(item, ir.Clause):
                clauses.append(item)
                continue
            key, value = item.value
            if key in options:
                self.error(f"'{key}' given twice in this limit", item.span)
            options[key] = (value, item.span)
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
            counter, scope, mx, window, scope_kind, increment, tuple(clauses), annotations, tuple(order), span,
        )

    @rule
    def assert_decl(self, span, annotations, kind, scope, *clauses):
        return ir.Assert(str(kind), scope, tuple(clauses), annotations, span)

    @rule
    def start(self, span, *statements):
        return list(statements)


class _Parser:
    """Lark builds the LALR(1) table and the per-rule callbacks from grammar.lark; `_drive`
    runs the shift/reduce loop over them (Lark's algorithm without its generic
    per-token machinery, which dominated the parse time). Guarded by a lock."""

    def __init__(self) -> None:
        self.builder = _Builder()
        lark = Lark(
            GRAMMAR,
            parser="lalr",
            lexer="basic",
            cache=_cache_file(),
            keep_all_tokens=True,
            maybe_placeholders=False,  # the builder drops absent optionals itself
            transformer=self.builder,
            start="start",
        )
        self.literals = {t.pattern.value: t.name for t in lark.terminals if t.pattern.type == "str"}
        inner = lark.parser.parser.parser
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
        self.display = dict(TERMINAL_NAMES)
        for value, name in self.literals.items():
            self.display.setdefault(name, f"'{value}'")
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

    digest = hashlib.sha256(GRAMMAR.encode()).hexdigest()[:16]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "mcpp")
    try:
        os.makedirs(folder, exist_ok=True)
        if os.access(folder, os.W_OK):
            return os.path.join(folder, f"grammar-{digest}.lark.cache")
    except OSError:
        pass
    return os.path.join(tempfile.gettempdir(), f"mcpp-{os.getuid() if hasattr(os, 'getuid') else 0}-grammar-{digest}.lark.cache")


class _SyntaxError(Exception):
    def __init__(self, token: Tok, expected: set[str], value_stack: list):
        self.token, self.expected, self.value_stack = token, expected, value_stack


def _drive(p: _Parser, tokens) -> list:
    """LALR(1) shift/reduce over Lark's table; reductions call Lark's callbacks (which
    call the builder). A row entry is a state number (shift/goto) or a reduction
    `(size, callback, nonterminal)`. Raises _SyntaxError on a token the table rejects."""
    states = p.states
    state_stack = [p.start_state]
    value_stack: list = []
    end = Tok("$END", "", 0, 0, 0, 0, 0, 0)
    last = None
    for tok in _with_end(tokens, end):
        if tok is end and last is not None:
            end.start_pos = end.end_pos = last.end_pos
            end.line = end.end_line = last.end_line
            end.column = end.end_column = last.end_column
        tt = tok.type
        while True:
            row = states[state_stack[-1]]
            try:
                entry = row[tt]
            except KeyError:
                raise _SyntaxError(tok, None, value_stack) from None
            if type(entry) is int:
                state_stack.append(entry)
                value_stack.append(tok)
                last = tok
                break
            size, callback, origin = entry
            if callback is None:  # a unit reduction through a precedence level: only the state changes
                new_state = states[state_stack[-2]][origin]
                state_stack[-1] = new_state
                continue
            if size:
                children = value_stack[-size:]
                del state_stack[-size:]
                del value_stack[-size:]
            else:
                children = []
            value = callback(children)
            new_state = states[state_stack[-1]][origin]
            if tok is end and new_state == p.end_state:
                return value
            state_stack.append(new_state)
            value_stack.append(value)
    raise AssertionError("unreachable: $END always reduces to start")  # pragma: no cover


def _states_before(p: _Parser, tokens, stop: Tok) -> list:
    """The parser's state stack just before `stop` arrived (LALR may already have reduced
    on it before noticing the error), by replaying the states only — no IR is built."""
    stack = [p.start_state]
    for tok in tokens:
        if tok.start_pos >= stop.start_pos and stop.type != "$END":
            break
        while True:
            entry = p.states[stack[-1]].get(tok.type)
            if entry is None:
                return stack
            if type(entry) is int:
                stack.append(entry)
                break
            size, _, origin = entry
            if size:
                del stack[-size:]
            stack.append(p.states[stack[-1]][origin])
    return stack


def _accepts(p: _Parser, stack: list) -> set[str]:
    """The terminals that could really come next. An LALR row also lists lookaheads it
    only reduces on (merged from every context of the state); feeding each candidate
    through the reductions, as Lark's interactive parser does, keeps the true ones."""
    ok = set()
    for t in p.states[stack[-1]]:
        if not (t.isupper() or t.startswith("__ANON") or t == "$END"):
            continue  # a nonterminal's goto
        st = list(stack)
        while True:
            entry = p.states[st[-1]].get(t)
            if entry is None:
                break
            if type(entry) is int:
                ok.add(t)
                break
            size, _, origin = entry
            if size:
                del st[-size:]
            new_state = p.states[st[-1]][origin]
            if t == "$END" and new_state == p.end_state:
                ok.add(t)
                break
            st.append(new_state)
    return ok


def _with_end(tokens, end):
    yield from tokens
    yield end


_PARSER: _Parser | None = None
_PARSER_LOCK = threading.Lock()


def _parser() -> _Parser:
    global _PARSER
    with _PARSER_LOCK:
        if _PARSER is None:
            _PARSER = _Parser()
        return _PARSER


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
        rest -= _OPERATORS | {n for n in rest if display.get(n) in ("'&&'", "'||'", "an operator")} | {"ADD_OP"}
    words += [display.get(t, t) for t in _CLOSERS if t in rest]
    rest -= set(_CLOSERS)
    words += sorted(display.get(t, t) for t in rest)
    words = list(dict.fromkeys(words))
    if not words:
        return ""
    if len(words) > 8:
        words = words[:8] + ["…"]
    return ", expected " + (words[0] if len(words) == 1 else "one of " + ", ".join(words))


def _syntax_diag(e: Exception, text: str, job: Job, filename: str, display: dict) -> Diagnostic:
    """A diagnostic for a lexing or parsing error, at its absolute position."""
    width = 1
    if isinstance(e, LexError):
        line, col, pos = e.line, e.column, e.pos
        ch = e.char
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
    tok, expected = e.token, e.expected
    if tok.type == "$END":
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
            last = e.value_stack[-1] if e.value_stack else None
            if isinstance(last, Tok) and last.type == "NAME":
                msg = f"unknown name '{last}' (variables are principal, action, resource and context)"
                line, col, pos, width = last.line, last.column, last.start_pos, len(str(last))
    return Diagnostic(msg, Span(line, col, line, col + width, pos, pos + width), "error", "syntax", filename)


def _run(p: _Parser, text: str, filename: str, line_base=0, col_base=0, pos_base=0):
    """Parse `text` (a whole file or one statement chunk). Returns (statements, comments, diags, ok)."""
    job = Job(line_base, col_base, pos_base)
    p.builder.reset(filename, Span(1 + line_base, 1 + col_base, 1 + line_base, 1 + col_base, pos_base, pos_base))
    with paused_gc():
        try:
            stmts = _drive(p, tokenize(text, job, p.literals))
            diags = list(p.builder.diags)
            ok = True
        except (_SyntaxError, LexError) as e:
            if isinstance(e, _SyntaxError):
                stack = _states_before(p, tokenize(text, Job(line_base, col_base, pos_base), p.literals), e.token)
                e.expected = _accepts(p, stack)
            stmts, diags, ok = [], [_syntax_diag(e, text, job, filename, p.display)], False
    comments = [ir.Comment(str(t).rstrip(), _Builder.tspan(t)) for t in job.comments]
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
