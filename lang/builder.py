"""The IR builder: one callback per grammar rule, turning a rule's children into IR.

Lark calls these callbacks during an LALR parse (its tree-less mode: `Lark(grammar,
parser="lalr", transformer=IRBuilder(), keep_all_tokens=True, maybe_placeholders=False)`),
and so does mcpp's own parser (parser.py), with the same children: the builder is the
meaning of grammar.lark, shared by both. Tokens may be Lark's `Token` or mcpp's `Tok`
(the same attributes). Spans come from the tokens, see `rule`. Errors the grammar cannot
express (an unknown method, arithmetic, a bad escape) are collected in `diags`, not raised.
"""

from __future__ import annotations

import math
import sys

from lark import Token

from . import ir
from .diagnostics import Diagnostic, Span
from .jsontext import LIMIT_TOO_LARGE, MAX_LIMIT
from .lexer import Tok
from .strings import EscapeError, unescape

EXTENSION_FUNCTIONS = {"decimal", "ip", "datetime", "duration"}
LIMIT_SCOPES = ("grant", "principal", "policy")
ATTR_SCALARS = ("String", "Long", "Bool")
_TYPES_NOTE = "attribute types: String, Long, Bool, Set<String>, Set<Long>, Set<Bool>"
UNSUPPORTED_METHODS = {
    "lessThan", "lessThanOrEqual", "greaterThan", "greaterThanOrEqual", "isIpv4", "isIpv6",
    "isLoopback", "isMulticast", "isInRange", "getTag", "hasTag", "offset", "durationSince",
    "toDate", "toTime", "toDays", "toHours", "toMinutes", "toSeconds", "toMilliseconds",
}


_MAX_NUMBER = sys.float_info.max
_MAX_INT_DIGITS = len(str(int(_MAX_NUMBER)))

# Toks that carry meaning; punctuation and keyword tokens only give positions.
_SEMANTIC = {
    "INPUT_PATH", "NAME", "STRING", "NUMBER", "VAR", "COMPARE", "ADD_OP", "EFFECT", "CLAUSE_KIND",
    "DEFAULT_KIND", "ASSERT_KIND", "ENTITY_TYPE", "TRUE", "FALSE", "NULL", "OPTIONAL_MARK",
}


# Token classes: mcpp's lexer makes `Tok`s, stock Lark `Token`s.
_TOKENS = (Tok, Token)


def _edge(c, last: bool) -> Span | None:
    """The span of the first (or last) token or node inside a builder value."""
    if isinstance(c, _TOKENS):
        # lark types a Token's position Optional; the parser's tokens all carry one
        return Span(c.line, c.column, c.end_line, c.end_column, c.start_pos, c.end_pos)  # type: ignore[arg-type]
    span = getattr(c, "span", None)
    if span is not None:
        return span
    if isinstance(c, (tuple, list)):
        for x in reversed(c) if last else c:
            s = _edge(x, last)
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
            if type(c) in _TOKENS:
                first = (c.line, c.column, c.start_pos)
                break
            s = _edge(c, False)
            if s is not None:
                first = (s.line, s.col, s.start)
                break
        if first is None:
            span = self.empty_span
        else:
            for c in reversed(children):
                if type(c) in _TOKENS:
                    last = (c.end_line, c.end_column, c.end_pos)
                    break
                s = _edge(c, True)
                if s is not None:
                    last = (s.end_line, s.end_col, s.end)
                    break
            assert last is not None  # a rule with a positioned first child has a last one
            span = Span(first[0], first[1], last[0], last[1], first[2], last[2])
        vals = [c for c in children if c is not None and (type(c) not in _TOKENS or c.type in _SEMANTIC)]
        return fn(self, span, *vals)

    callback.__name__ = fn.__name__
    return callback


class IRBuilder:
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
        return ir.Lit(self.numeral(str(tok), span), span)

    def numeral(self, text: str, span) -> int | float:
        """The value of a NUMBER token: an int, or a float when it has a fraction or an
        exponent. Beyond a double's range (±1.8e308) it is an error: a JSON number there
        is infinite, and Python would refuse to convert an integer of thousands of digits."""
        fraction = "." in text or "e" in text or "E" in text
        if fraction:
            value: int | float = float(text)
        else:
            digits = text.lstrip("0")
            value = int(digits or "0") if len(digits) <= _MAX_INT_DIGITS else math.inf
        if not math.isfinite(value) or value > _MAX_NUMBER:
            shown = text if len(text) <= 24 else text[:20] + "…"
            self.error(f"number {shown} is out of range", span)
            return 0.0 if fraction else 0
        return value

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
    def input_path(self, _span, tok):
        """`context.input.a.b` (one token) → the GetAttr chain, each node with its own span."""
        line, col, start = tok.line, tok.column, tok.start_pos
        e: ir.Expr = ir.Var("context", Span(line, col, line, col + 7, start, start + 7))
        offset = 7
        for name in str(tok).split(".")[1:]:
            offset += 1 + len(name)
            e = ir.GetAttr(e, name, Span(line, col, line, col + offset, start, start + offset))
        return e

    @rule
    def primary(self, _span, inner):  # `( expr )`
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
    def entity_items(self, _span, *ents):
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
    def arith(self, span, _a, op, _b):
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
    def func_call(self, span, name, *_args):
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
    def record_entry(self, _span, key, value):
        k = self.string(key) if key.type == "STRING" else str(key)
        return (k, value)

    # -- statements ------------------------------------------------------------
    @rule
    def annotation(self, span, name, value=None):
        return ir.Annotation(str(name), self.string(value) if value is not None else "", span)

    @rule
    def annotations(self, _span, *items):
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
        return _Pos(("max", self.numeral(str(tok), span)), span)

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
    def expr_path(self, _span, e):
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
        elif mx > MAX_LIMIT:
            self.error(LIMIT_TOO_LARGE, options["max"][1])
        if "per" not in options:
            self.error("limit needs a window: 'per minute', 'per hour' or 'per day'", span)
        elif window not in ("minute", "hour", "day"):
            self.error(f"unknown window '{window}': use minute, hour or day", options["per"][1])
        if scope_kind not in LIMIT_SCOPES:
            self.error(f"unknown limit scope '{scope_kind}': use grant, principal or policy", options["scope"][1])
        increment = options.get("increment", (None, span))[0]
        return ir.Limit(
            counter, scope, mx, window, scope_kind, increment, tuple(clauses), annotations, tuple(order), span,
        )

    @rule
    def assert_decl(self, span, annotations, kind, scope, *clauses):
        return ir.Assert(str(kind), scope, tuple(clauses), annotations, span)

    # -- entity declarations (Cedar schema syntax) ---------------------------------
    @rule
    def entity_parents(self, span, *names):
        return _Pos(("parents", tuple(str(n) for n in names)), span)

    @rule
    def entity_attrs(self, span, *attrs):
        seen: set[str] = set()
        for a in attrs:
            if a.name in seen:
                self.error(f"attribute {a.name!r} is declared twice", a.span)
            seen.add(a.name)
        return _Pos(("attrs", tuple(attrs)), span)

    @rule
    def attr_type(self, span, name, inner=None):
        return _Pos((str(name), inner), span)

    @rule
    def attr_decl(self, span, name, *rest):
        optional = len(rest) == 2
        typ = rest[-1]
        key = self.string(name) if name.type == "STRING" else str(name)
        return ir.AttrDecl(key, self.attr_type_text(typ), optional, span)

    def attr_type_text(self, typ: _Pos) -> str:
        """The canonical text of a declared type; an unsupported one is an error (kept as
        written, so the IR still says what the file says)."""
        name, inner = typ.value
        if inner is None:
            if name == "Set":
                self.error("Set needs an element type: Set<String>, Set<Long> or Set<Bool>", typ.span)
            elif name not in ATTR_SCALARS:
                self.error(f"unknown attribute type {name!r}", typ.span, notes=(_TYPES_NOTE,))
            return name
        inner_name, nested = inner.value
        text = f"{name}<{self.attr_type_text(inner) if nested is not None else inner_name}>"
        if name != "Set":
            self.error(f"{name} takes no element type", typ.span, notes=(_TYPES_NOTE,))
        elif nested is not None:
            self.error("a set's elements are String, Long or Bool (sets of sets are not supported)", inner.span)
        elif inner_name not in ATTR_SCALARS:
            self.error(f"unknown set element type {inner_name!r}", inner.span, notes=(_TYPES_NOTE,))
        return text

    @rule
    def entity_decl(self, span, annotations, name, *parts):
        parents: tuple[str, ...] = ()
        attrs: tuple = ()
        for p in parts:
            kind, value = p.value
            if kind == "parents":
                parents = value
            else:
                attrs = value
        return ir.EntityDecl(str(name), parents, attrs, annotations, self.tspan(name), span)

    @rule
    def start(self, _span, *statements):
        return list(statements)
