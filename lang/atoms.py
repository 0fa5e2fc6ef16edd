"""The bridge between IR conditions and the JSON form's `{path, op, value}` conditions.

A JSON condition either holds or not; an mcpp condition is true, false or an error
(and a policy whose condition errors is skipped). So a `when { e }` clause becomes the
JSON conditions for *T(e)*, "e evaluates to true", and `unless { e }` those for
*F(e)*, "e evaluates to false". Both are computed as a DNF over atoms, following
Cedar's short-circuit rules:

    T(a && b) = T(a) ∧ T(b)          F(a && b) = F(a) ∨ (T(a) ∧ F(b))
    T(a || b) = T(a) ∨ (F(a) ∧ T(b))  F(a || b) = F(a) ∧ F(b)
    T(!a) = F(a)                      F(!a) = T(a)

and per atom, e.g. T(x == v) = eq, F(x == v) = neq, T(x < v) = lt, F(x < v) = gte,
T(has x) = exists, F(has x) = exists:false. F of `matches`/`contains` has no JSON op:
such a policy cannot be compiled (the "negated regex" case).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import ir
from .values import is_number

OPS = ("eq", "neq", "lt", "lte", "gt", "gte", "in", "not_in", "exists", "regex", "contains")
CMP_OP = {"==": "eq", "!=": "neq", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}
OP_CMP = {v: k for k, v in CMP_OP.items()}
NEGATE = {"eq": "neq", "neq": "eq", "lt": "gte", "gte": "lt", "lte": "gt", "gt": "lte", "in": "not_in", "not_in": "in"}
FLIP = {"==": "==", "!=": "!=", "<": ">", ">": "<", "<=": ">=", ">=": "<="}
MAX_DISJUNCTS = 64


class NotExpressible(Exception):
    """The condition has no JSON-form equivalent; `span` points at the culprit."""

    def __init__(self, reason: str, span=None):
        super().__init__(reason)
        self.reason = reason
        self.span = span


@dataclass(frozen=True)
class Cond:
    path: tuple[str, ...]
    op: str
    value: object = None

    @property
    def path_str(self) -> str:
        return ".".join(("args",) + self.path)

    @property
    def name(self) -> str:
        """The rule-pointer suffix: `args.url-regex`."""
        return f"{self.path_str}-{self.op}"

    def to_json(self) -> dict:
        d: dict = {"path": self.path_str, "op": self.op}
        if self.op != "exists" or self.value is False:
            d["value"] = self.value
        return d

    def key(self):
        return (self.path, self.op, _freeze(self.value))

    # equality by key: `neq false` and `neq 0` are different conditions, though False == 0
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cond) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())


def _freeze(v):
    if isinstance(v, list):
        return ("list", tuple(_freeze(x) for x in v))
    if isinstance(v, dict):
        return ("dict", tuple(sorted((k, _freeze(x)) for k, x in v.items())))
    return (type(v).__name__, v)


def parse_path(path: str) -> tuple[str, ...] | None:
    """`args.a.b` → ("a", "b"); `args` → (); anything else → None."""
    parts = path.split(".")
    if parts[0] != "args" or any(p == "" for p in parts[1:]):
        return None
    return tuple(parts[1:])


def input_path(e: ir.Expr) -> tuple[str, ...] | None:
    """The argument path of `context.input.a.b` (→ ("a", "b")), or None if `e` is not one."""
    keys: list[str] = []
    while isinstance(e, ir.GetAttr):
        keys.append(e.attr)
        e = e.obj
    if not keys or not isinstance(e, ir.Var) or e.name != "context" or keys[-1] != "input":
        return None
    return tuple(reversed(keys[:-1]))


def has_path(e: ir.Has) -> tuple[str, ...] | None:
    """`context.input.a has b.c` → ("a", "b", "c"); `context has input.a` → ("a",)."""
    if isinstance(e.obj, ir.Var) and e.obj.name == "context":
        if e.path[0] != "input" or len(e.path) < 2:
            return None
        return tuple(e.path[1:])
    base = input_path(e.obj)
    if base is None:
        return None
    return base + tuple(e.path)


def path_expr(path: tuple[str, ...]) -> ir.Expr:
    e: ir.Expr = ir.GetAttr(ir.Var("context"), "input")
    for k in path:
        e = ir.GetAttr(e, k)
    return e


def const_value(e: ir.Expr):
    """A JSON-able constant for a literal expression, else raise KeyError."""
    if isinstance(e, ir.Lit):
        return e.value
    if isinstance(e, ir.SetLit):
        return [const_value(i) for i in e.items]
    if isinstance(e, ir.RecordLit):
        return {k: const_value(v) for k, v in e.items}
    raise KeyError


def is_const(e: ir.Expr) -> bool:
    try:
        const_value(e)
        return True
    except KeyError:
        return False


def value_expr(v) -> ir.Expr:
    if isinstance(v, list):
        return ir.SetLit(tuple(value_expr(x) for x in v))
    if isinstance(v, dict):
        return ir.RecordLit(tuple((k, value_expr(x)) for k, x in v.items()))
    return ir.Lit(v)


def atom(e: ir.Expr, positive: bool) -> Cond | None:
    """The single JSON condition equivalent to T(e) (positive) or F(e), if there is one.

    Returns None when `e` is not an atom; raises NotExpressible when it is an atom
    whose requested polarity has no JSON op.
    """
    if isinstance(e, ir.Not):
        return atom(e.expr, not positive)
    if isinstance(e, ir.Compare):
        left, right, op = e.left, e.right, e.op
        if input_path(left) is None and input_path(right) is not None:
            left, right, op = right, left, FLIP[op]
        path = input_path(left)
        if path is None or not is_const(right):
            return None
        value = const_value(right)
        jop = CMP_OP[op]
        return Cond(path, jop if positive else NEGATE[jop], value)
    if isinstance(e, ir.In):
        path = input_path(e.left)
        if path is None or not isinstance(e.right, ir.SetLit) or not is_const(e.right):
            return None
        return Cond(path, "in" if positive else "not_in", const_value(e.right))
    if isinstance(e, ir.Has):
        path = has_path(e)
        if path is None:
            return None
        return Cond(path, "exists", bool(positive))
    if isinstance(e, ir.Matches):
        path = input_path(e.obj)
        if path is None:
            return None
        if not positive:
            raise NotExpressible("a negated regex match has no JSON-form equivalent", e.span)
        return Cond(path, "regex", e.regex)
    if isinstance(e, ir.Like):
        path = input_path(e.obj)
        if path is None:
            return None
        if not positive:
            raise NotExpressible("a negated `like` has no JSON-form equivalent", e.span)
        from .regex import like_to_regex

        return Cond(path, "regex", like_to_regex(e.pattern))
    if isinstance(e, ir.Call) and e.method == "contains":
        path = input_path(e.obj)
        if path is None or not is_const(e.args[0]):
            return None
        if not positive:
            raise NotExpressible("a negated contains() has no JSON-form equivalent", e.span)
        return Cond(path, "contains", const_value(e.args[0]))
    path = input_path(e)
    if path is not None:  # a bare boolean argument: `when { context.input.dry_run }`
        return Cond(path, "eq", bool(positive))
    return None


def cond_expr(c: Cond) -> ir.Expr:
    """The mcpp expression whose T(·) is exactly the JSON condition `c`."""
    p = path_expr(c.path)
    if c.op in OP_CMP:
        return ir.Compare(OP_CMP[c.op], p, value_expr(c.value))
    if c.op == "in":
        return ir.In(p, value_expr(c.value))
    if c.op == "not_in":
        return ir.Not(ir.In(p, value_expr(c.value)))
    if c.op == "exists":
        h = ir.Has(ir.GetAttr(ir.Var("context"), "input"), c.path) if c.path else ir.Lit(True)
        return h if c.value is not False else ir.Not(h)
    if c.op == "regex":
        assert isinstance(c.value, str), c  # validation refuses a non-string pattern
        return ir.Matches(p, c.value)
    if c.op == "contains":
        return ir.Call(p, "contains", (value_expr(c.value),))
    raise ValueError(c.op)


# ---- DNF over atoms ----------------------------------------------------------------

TOP: list[tuple[Cond, ...]] = [()]
BOTTOM: list[tuple[Cond, ...]] = []


def _contradicts(conj: tuple[Cond, ...], c: Cond) -> bool:
    for d in conj:
        if d.path == c.path:
            if {d.op, c.op} == {"eq", "neq"} and d.key()[2] == c.key()[2]:
                return True
            if {d.op, c.op} == {"in", "not_in"} and d.key()[2] == c.key()[2]:
                return True
        if d.op == "exists" and c.op == "exists" and d.path == c.path and d.value != c.value:
            return True
        for a, b in ((d, c), (c, d)):
            # `a` says a path is absent; `b` needs it (or something under it) present
            if a.op == "exists" and a.value is False and b.path[: len(a.path)] == a.path and not (
                b.op == "exists" and b.value is False
            ):
                return True
    return False


def _and(a: list, b: list) -> list:
    out: list[tuple[Cond, ...]] = []
    for x in a:
        for y in b:
            conj = list(x)
            ok = True
            for c in y:
                if c in conj:
                    continue
                if _contradicts(tuple(conj), c):
                    ok = False
                    break
                conj.append(c)
            if ok and tuple(conj) not in out:
                out.append(tuple(conj))
    if len(out) > MAX_DISJUNCTS:
        raise NotExpressible("the condition is too complex for the JSON form")
    return out


def _or(a: list, b: list) -> list:
    if () in a or () in b:
        return list(TOP)
    out = list(a)
    for y in b:
        if y not in out:
            out.append(y)
    if len(out) > MAX_DISJUNCTS:
        raise NotExpressible("the condition is too complex for the JSON form")
    return out


def dnf(e: ir.Expr, positive: bool = True) -> list[tuple[Cond, ...]]:
    """DNF of T(e) (or F(e)) over JSON conditions. `e` must already be folded: no
    references to principal, action or resource remain (see compiler.fold)."""
    if isinstance(e, ir.Lit):
        if isinstance(e.value, bool):
            return list(TOP) if e.value == positive else list(BOTTOM)
        return list(BOTTOM)  # a non-boolean condition is a type error: neither true nor false
    if isinstance(e, ir.Error):
        return list(BOTTOM)  # always errors: neither true nor false
    if isinstance(e, ir.And):
        if positive:
            return _and(dnf(e.left, True), dnf(e.right, True))
        return _or(dnf(e.left, False), _and(dnf(e.left, True), dnf(e.right, False)))
    if isinstance(e, ir.Or):
        if positive:
            left_true = dnf(e.left, True)
            try:
                left_false = dnf(e.left, False)
            except NotExpressible:
                # T(a) ∨ (F(a) ∧ T(b)) = T(a) ∨ (D(a) ∧ T(b)) where D(a) = "a does not error":
                # the two differ only inside T(a), which is already a disjunct.
                left_false = defined(e.left)
            return _or(left_true, _and(left_false, dnf(e.right, True)))
        return _and(dnf(e.left, False), dnf(e.right, False))
    if isinstance(e, ir.Not):
        return dnf(e.expr, not positive)
    if isinstance(e, ir.If):
        return _or(
            _and(dnf(e.cond, True), dnf(e.then, positive)),
            _and(dnf(e.cond, False), dnf(e.else_, positive)),
        )
    if isinstance(e, ir.Has) and not positive:
        base = input_path(e.obj)
        if base:
            # F(context.input.a has b): `a` must be present (reading it otherwise errors)
            # and a record (`has` on anything else errors) without `b`. The JSON form's
            # `exists: false` on args.a.b alone would also hold when `a` is missing.
            return [(Cond(base, "exists", True), Cond(base + e.path, "exists", False))]
    a = atom(e, positive)
    if a is None:
        raise NotExpressible("this condition has no JSON-form equivalent", getattr(e, "span", None))
    if a.op in ("lt", "lte", "gt", "gte") and not is_number(a.value):
        return list(BOTTOM)  # comparing with a non-number always errors
    return [(a,)]


def defined(e: ir.Expr) -> list[tuple[Cond, ...]]:
    """D(e): e evaluates without error. Known for regex and `like` atoms: the argument is a
    string, which is the JSON condition `regex ""` (the empty pattern matches every string)."""
    inner = e
    while isinstance(inner, ir.Not):
        inner = inner.expr
    if isinstance(inner, (ir.Matches, ir.Like)):
        path = input_path(inner.obj)
        if path is not None:
            return [(Cond(path, "regex", ""),)]
    raise NotExpressible("this negated condition has no JSON-form equivalent", getattr(e, "span", None))

