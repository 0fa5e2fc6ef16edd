"""`mcpp compile --target cedar`: an mcpp program as Cedar policies (and a Cedar schema),
deciding every call as mcpp does — or a refusal naming each statement Cedar cannot
express and why.

Two modes:

- **Typed** (a tool catalog is given). Each tool's arguments have Cedar types
  (`lang.cedar_model`), the output validates under Cedar's strict validator against the
  schema written next to it, and the policies decide every call whose arguments fit
  that schema exactly as mcpp does. Cedar's validator refuses conditions that can
  error (an optional argument read without `has`, `==` across types), so each clause
  is rewritten into an error-free condition with the same meaning: mcpp skips a policy
  whose clause errors, so a `when` clause becomes "e evaluates to true", T(e), and an
  `unless` clause "e evaluates to false", F(e), built as the JSON compiler builds its
  conditions (docs/language.md §9), with `has` guards where an argument is optional.
  Types decide much statically (`==` between a string and a number is false, a key the
  schema lacks is absent), so several mcpp extensions export exactly: value `in` sets
  (`[…].contains(x)`), substring `contains` (`like "*…*"`), fractions compared with
  integer or number arguments, `null`, `hide` (a forbid) and `default allow` (a permit
  naming the tools no permit names). When a policy covers tools whose arguments have
  different types, its clause is split per tool (`action == Action::"t" && …`), which
  Cedar's validator type-checks per action. A program about users (`entity User`, or
  naming `User`) is translated the same way per principal type: the schema declares
  `User` with the declared attributes and every action's principals are `[Grant, User]`;
  a clause that reads grants and users differently is split by `principal is …`, and
  the declared types fix what a read means (a `Set` attribute's `contains` is Cedar's,
  a `String` one's is `like "*…*"`, a `Long` compares as `Long`).
- **Untyped** (no catalog). The policies are printed as written, for Cedar's evaluation
  without a schema, whose meaning on Cedar's values (no fractions, no null) is mcpp's
  (tests/runtime/test_cedar_oracle.py). Only what Cedar shares is accepted.

Refused in both: limits (Cedar has no counters), regexes that are not a few `like`
patterns joined by `||` (`lang.cedar_regex`),
negation of an argument (Cedar's overflows at -2^63), `if` used as a value, record
comparisons. docs/cedar.md has the full table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from dataclasses import replace as dataclasses_replace
from decimal import Decimal
from fractions import Fraction
from typing import cast

from . import ir
from .cedar_regex import regex_as_likes
from .cedar_model import (
    BOOL,
    DECIMAL_SCALE,
    LONG_MAX,
    LONG_MIN,
    STRING,
    CedarNames,
    CType,
    SchemaAction,
    SchemaUser,
    declared_type,
    input_type,
    schema_text,
)
from .cedar_text import (
    FALSE,
    TRUE,
    AndC,
    Attr,
    Bin,
    C,
    HasC,
    IfC,
    IsC,
    LikeC,
    Method,
    NotC,
    OrC,
    Raw,
    RecC,
    SetC,
    and_,
    condition_lines,
    not_,
    or_,
)
from .diagnostics import Diagnostic, MCPPError, Span
from .program import Program
from .strings import quote
from .values import cedar_eq, is_number, like_match


class Refusal(Exception):
    """A construct Cedar cannot express: the message says what and why."""

    def __init__(self, message: str, span: Span | None = None):
        super().__init__(message)
        self.message = message
        self.span = span


@dataclass
class CedarExport:
    """The result: Cedar policy text, the schema (typed mode, when asked for), what was
    left out (`--partial`), and the mcpp id of each exported policy in output order
    (Cedar names an unannotated policy by its position, `policy<N>`)."""

    policies: str
    schema: str | None
    left_out: list[Diagnostic] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    left_out_statements: list = field(default_factory=list)


# ---- numbers -----------------------------------------------------------------------------


def decimal_text(q: Fraction) -> str | None:
    """`decimal("…")` for an exact value on Cedar's 1/10,000 grid within its range."""
    units = q * DECIMAL_SCALE
    if units.denominator != 1 or not (LONG_MIN <= units.numerator <= LONG_MAX):
        return None
    n = units.numerator
    sign = "-" if n < 0 else ""
    whole, frac = divmod(abs(n), DECIMAL_SCALE)
    digits = f"{frac:04d}".rstrip("0") or "0"
    return f'decimal("{sign}{whole}.{digits}")'


def exact(v: int | float) -> Fraction:
    """The number a JSON value stands for: a float by its shortest decimal text, which is
    what was written (and what a Cedar decimal parses)."""
    if isinstance(v, float):
        return Fraction(Decimal(repr(v)))
    return Fraction(v)


def _grid_bound(q: Fraction, op: str, scale: int) -> Fraction:
    """For `x op q` with `x` on the grid 1/scale: an equivalent bound on the grid
    (`x < q` ⟺ `x < ceil(q)`, `x <= q` ⟺ `x <= floor(q)`, …)."""
    units = q * scale
    if op in ("<", ">="):
        return Fraction(math.ceil(units), scale)
    return Fraction(math.floor(units), scale)


# ---- typed values --------------------------------------------------------------------------

NOCONST = object()


@dataclass(frozen=True)
class Val:
    """A typed expression: Cedar text (or a constant), its type, and the guards under
    which it does not error (`has` tests, conjoined). `err`: it always errors."""

    ty: CType | None
    text: C | None = None
    const: object = NOCONST
    guard: tuple[C, ...] = ()
    err: bool = False

    @property
    def is_const(self) -> bool:
        return self.const is not NOCONST


ERRV = Val(None, err=True)


@dataclass(frozen=True)
class Cond:
    """A boolean expression as two error-free Cedar conditions: `t` "evaluates to true"
    and `f` "evaluates to false". `total`: it never errors, so `f` is `!t`."""

    t: C
    f: C
    total: bool = False


FALSE_COND = Cond(FALSE, FALSE)


class _Typed:
    """Translation of one program against a tool catalog (see the module docstring).

    Each clause is translated once per tool and per principal type it may be called with
    (`tool`, `ptype`): a grant, or — when the program is identity-aware — a user, whose
    attributes have the types `entity User` declares (`user_attrs`)."""

    def __init__(self, program: Program, names: CedarNames, inputs: dict[str, CType]):
        self.program = program
        self.names = names
        self.inputs = inputs
        self.tool: str | None = None
        self.ptype = "Grant"
        self.user_attrs = _user_attrs(program)

    # -- names -------------------------------------------------------------------------
    def entity(self, etype: str, eid: str) -> C:
        return Raw(entity_text(self.names, etype, eid))

    def in_group(self, tool: str, target: str) -> bool:
        """Cedar's `Action::"tool" in Action::"target"` under mcpp's groups."""
        return tool == target or tool in self.program.groups.get(target, frozenset())

    # -- literals as typed Cedar values ------------------------------------------------
    def lit_as(self, v: object, ty: CType) -> C | None:
        """The literal `v` as a Cedar value of type `ty`; None if no value of `ty` equals it."""
        k = ty.kind
        if k == "String":
            return Raw(quote(v)) if isinstance(v, str) else None
        if k == "Bool":
            return Raw("true" if v else "false") if isinstance(v, bool) else None
        if k == "Long":
            if is_number(v):
                q = exact(v)
                if q.denominator == 1 and LONG_MIN <= q.numerator <= LONG_MAX:
                    return Raw(str(q.numerator))
            return None
        if k == "decimal":
            if is_number(v):
                t = decimal_text(exact(v))
                return Raw(t) if t else None
            return None
        if k == "Set":
            if not isinstance(v, list):
                return None
            items = [self.lit_as(x, ty.elem) for x in v]  # type: ignore[arg-type]
            if any(i is None for i in items):
                return None
            return SetC(tuple(dict.fromkeys(items)))  # type: ignore[arg-type]
        if k == "Entity":
            if isinstance(v, tuple) and v[0] == ty.entity:
                return self.entity(v[0], v[1])
            return None
        if k == "Record":
            if isinstance(v, dict):
                raise Refusal("a record literal compared with an argument (Cedar's validator needs both records to have one type)")
            return None
        return None

    # -- expressions as values -----------------------------------------------------------
    def val(self, e: ir.Expr) -> Val:
        if isinstance(e, ir.Lit):
            return Val(None, const=e.value)
        if isinstance(e, ir.EntityLit):
            return Val(CType("Entity", entity=e.entity.type), const=(e.entity.type, e.entity.id))
        if isinstance(e, ir.Var):
            if e.name == "action":
                return Val(CType("Entity", entity="Action"), const=("Action", self.tool))
            if e.name == "principal":
                return Val(CType("Entity", entity=self.ptype), Raw("principal"))
            if e.name == "resource":
                if self.names.gateway is not None:
                    raise Refusal("AgentCore's resource is the gateway: conditions on `resource` have no AgentCore form", e.span)
                return Val(CType("Entity", entity="Server"), Raw("resource"))
            ctx = CType("Record", attrs=(("input", self.inputs[self.tool], True),))  # type: ignore[index]
            return Val(ctx, Raw("context"))
        if isinstance(e, ir.GetAttr):
            return self.get_attr(e)
        if isinstance(e, ir.SetLit):
            if all(isinstance(i, (ir.Lit, ir.EntityLit)) for i in e.items):
                return Val(None, const=[self.val(i).const for i in e.items])
            raise Refusal("a set literal with non-literal members", e.span)
        if isinstance(e, ir.RecordLit):
            raise Refusal("a record literal (Cedar's validator needs it compared with a record of one type)", e.span)
        if isinstance(e, ir.Neg):
            raise Refusal("negating an argument: Cedar's `-` overflows at -9223372036854775808 where mcpp's does not", e.span)
        if isinstance(e, ir.Error):
            return ERRV
        if isinstance(e, ir.If):
            c = self.cond(e)
            if c == FALSE_COND:
                return ERRV
            raise Refusal("`if … then … else …` used as a value: write it as a condition", e.span)
        c = self.cond(e)
        return self.cond_val(c)

    @staticmethod
    def cond_val(c: Cond) -> Val:
        if c.t == FALSE and c.f == FALSE:
            return ERRV
        if c.total:
            if c.t in (TRUE, FALSE):
                return Val(BOOL, const=c.t == TRUE)
            return Val(BOOL, c.t)
        if c.f == FALSE:
            return Val(BOOL, const=True, guard=(c.t,))
        if c.t == FALSE:
            return Val(BOOL, const=False, guard=(c.f,))
        return Val(BOOL, c.t, guard=(or_(c.t, c.f),))

    def get_attr(self, e: ir.GetAttr) -> Val:
        obj = self.val(e.obj)
        if obj.err:
            return ERRV
        ty = obj.ty
        if obj.is_const:
            if isinstance(obj.const, dict):
                return Val(None, const=obj.const[e.attr]) if e.attr in obj.const else ERRV
            if isinstance(obj.const, tuple):
                raise Refusal(f"reads attribute {e.attr!r} of an entity literal (Cedar looks it up in the entity store)", e.span)
            return ERRV
        if ty is not None and ty.kind == "Entity":
            if ty.entity == "Grant" and self.names.user is None and e.attr in self.user_attrs:
                raise Refusal(_AGENTCORE_USERS if self.names.gateway is not None else "this Cedar model has no User type", e.span)
            if ty.entity == "Grant" and e.attr == "label":
                if self.names.gateway is not None:
                    raise Refusal("AgentCore principals have no label (JWT claims are tags, which mcpp does not read)", e.span)
                return Val(STRING, Attr(obj.text, "label"), guard=obj.guard)  # type: ignore[arg-type]
            if ty.entity == "User":
                found = self.user_attrs.get(e.attr)
                if found is None:
                    return ERRV  # mcpp: an attribute the user lacks errors
                aty, required = found
                guard = obj.guard if required else obj.guard + (HasC(obj.text, e.attr),)  # type: ignore[arg-type]
                return Val(aty, Attr(obj.text, e.attr), guard=guard)  # type: ignore[arg-type]
            return ERRV
        if ty is None or ty.kind != "Record":
            return ERRV
        found = ty.attr(e.attr)
        if found is None:
            return ERRV  # no call that fits the schema has this key
        aty, required = found
        if aty.kind == "Opaque":
            raise Refusal(f"argument {e.attr!r} of tool {self.tool!r} has no Cedar type ({aty.why})", e.span)
        guard = obj.guard if required else obj.guard + (HasC(obj.text, e.attr),)  # type: ignore[arg-type]
        return Val(aty, Attr(obj.text, e.attr), guard=guard)  # type: ignore[arg-type]

    # -- expressions as conditions -----------------------------------------------------------
    def cond(self, e: ir.Expr) -> Cond:
        if isinstance(e, ir.And):
            a, b = self.cond(e.left), self.cond(e.right)
            return Cond(and_(a.t, b.t), or_(a.f, and_(a.t, b.f)), a.total and b.total)
        if isinstance(e, ir.Or):
            a, b = self.cond(e.left), self.cond(e.right)
            return Cond(or_(a.t, and_(a.f, b.t)), and_(a.f, b.f), a.total and b.total)
        if isinstance(e, ir.Not):
            a = self.cond(e.expr)
            return Cond(a.f, a.t, a.total)
        if isinstance(e, ir.If):
            c, a, b = self.cond(e.cond), self.cond(e.then), self.cond(e.else_)
            return Cond(or_(and_(c.t, a.t), and_(c.f, b.t)), or_(and_(c.t, a.f), and_(c.f, b.f)),
                        c.total and a.total and b.total)
        if isinstance(e, ir.Compare):
            return self.bool_val(self.compare(e))
        if isinstance(e, ir.In):
            return self.bool_val(self.in_(e))
        if isinstance(e, ir.Has):
            return self.has(e)
        if isinstance(e, ir.Like):
            return self.bool_val(self.like(self.val(e.obj), [e.pattern]))
        if isinstance(e, ir.Matches):
            return self.bool_val(self.like(self.val(e.obj), _likes(e)))
        if isinstance(e, ir.Is):
            return self.bool_val(self.is_(e))
        if isinstance(e, ir.Call):
            return self.bool_val(self.call(e))
        return self.bool_val(self.val(e))

    @staticmethod
    def bool_val(v: Val) -> Cond:
        """mcpp's boolean positions: a non-boolean errors."""
        if v.err:
            return FALSE_COND
        guard = and_(*v.guard)
        if v.is_const:
            if not isinstance(v.const, bool):
                return FALSE_COND
            return Cond(guard, FALSE, not v.guard) if v.const else Cond(FALSE, guard, not v.guard)
        if v.ty is None or v.ty.kind != "Bool":
            return FALSE_COND
        return Cond(and_(guard, v.text), and_(guard, not_(v.text)), not v.guard)  # type: ignore[arg-type]

    # -- operators ------------------------------------------------------------------------------
    def compare(self, e: ir.Compare) -> Val:
        a, b = self.val(e.left), self.val(e.right)
        op = e.op
        if a.err or b.err:
            return ERRV
        if a.is_const and not b.is_const:
            a, b, op = b, a, {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}[op]
        guard = a.guard + b.guard
        if a.is_const:  # both constant: mcpp's meaning, folded
            if op in ("==", "!="):
                return Val(BOOL, const=cedar_eq(a.const, b.const) == (op == "=="))
            if is_number(a.const) and is_number(b.const):
                return Val(BOOL, const=_cmp(exact(a.const), op, exact(b.const)))
            return ERRV
        if op in ("==", "!="):
            eq = self.equals(a, b, e.span)
            if eq is None:
                return Val(BOOL, const=op == "!=", guard=guard)
            return Val(BOOL, eq if op == "==" else not_(eq), guard=guard)
        return self.order(a, op, b, guard, e.span)

    def equals(self, a: Val, b: Val, span: Span) -> C | None:
        """`a == b` (a not constant) as Cedar text, or None when it is always false."""
        ta = a.ty
        assert ta is not None
        if b.is_const:
            if ta.kind == "Set" and b.const == []:
                return Method(a.text, "isEmpty", ())  # type: ignore[arg-type]
            if ta.kind == "Set" and isinstance(b.const, list) and ta.elem and ta.elem.kind == "Record":
                raise Refusal("a set of records compared with a literal", span)
            lit = self.lit_as(b.const, ta)
            return None if lit is None else Bin("==", a.text, lit)  # type: ignore[arg-type]
        tb = b.ty
        assert tb is not None
        if self.same_type(ta, tb, span):
            return Bin("==", a.text, b.text)  # type: ignore[arg-type]
        return None

    def same_type(self, ta: CType, tb: CType, span: Span) -> bool:
        """Whether values of two argument types can be equal (Cedar compares them only then)."""
        kinds = {ta.kind, tb.kind}
        if kinds == {"Long", "decimal"}:
            raise Refusal("compares an integer with a number (Cedar has no common type for Long and decimal)", span)
        if ta.kind != tb.kind:
            return False
        if ta.kind == "Record":
            raise Refusal("compares two record arguments", span)
        if ta.kind == "Set":
            return self.same_type(ta.elem, tb.elem, span)  # type: ignore[arg-type]
        if ta.kind == "Entity":
            return ta.entity == tb.entity
        return True

    def order(self, a: Val, op: str, b: Val, guard: tuple[C, ...], span: Span) -> Val:
        ta = a.ty
        assert ta is not None
        if ta.kind not in ("Long", "decimal"):
            return ERRV
        if b.is_const:
            if not is_number(b.const):
                return ERRV
            q = exact(b.const)
            scale = 1 if ta.kind == "Long" else DECIMAL_SCALE
            bound = _grid_bound(q, op, scale)
            lo, hi = Fraction(LONG_MIN, scale), Fraction(LONG_MAX, scale)
            if bound > hi or bound < lo:  # every value of the type is on one side
                below = bound > hi
                return Val(BOOL, const=below == (op in ("<", "<=")), guard=guard)
            if ta.kind == "Long":
                return Val(BOOL, Bin(op, a.text, Raw(str(bound.numerator))), guard=guard)  # type: ignore[arg-type]
            return Val(BOOL, Method(a.text, _DECIMAL_CMP[op], (Raw(decimal_text(bound)),)), guard=guard)  # type: ignore[arg-type]
        tb = b.ty
        assert tb is not None
        if {ta.kind, tb.kind} == {"Long", "decimal"}:
            x, y = (a, b) if ta.kind == "Long" else (b, a)
            raise Refusal(f"orders an integer {_noun(x)} against a number {_noun(y)} (Cedar has no common type for them)", span)
        if tb.kind != ta.kind:
            return ERRV
        if ta.kind == "Long":
            return Val(BOOL, Bin(op, a.text, b.text), guard=guard)  # type: ignore[arg-type]
        return Val(BOOL, Method(a.text, _DECIMAL_CMP[op], (b.text,)), guard=guard)  # type: ignore[arg-type]

    def like(self, v: Val, patterns: list[tuple[str, ...]]) -> Val:
        """`v like p1 || v like p2 …` (one pattern for `like`, several for a regex)."""
        if v.err:
            return ERRV
        if v.is_const:
            if not isinstance(v.const, str):
                return ERRV
            return Val(BOOL, const=any(like_match(v.const, p) for p in patterns))
        if v.ty is None or v.ty.kind != "String":
            return ERRV
        return Val(BOOL, or_(*(LikeC(v.text, p) for p in patterns)), guard=v.guard)  # type: ignore[arg-type]

    def has(self, e: ir.Has) -> Cond:
        obj = self.val(e.obj)
        if obj.err:
            return FALSE_COND
        if obj.is_const:
            if isinstance(obj.const, tuple):
                raise Refusal("`has` on an entity literal (Cedar looks it up in the entity store)", e.span)
            if not isinstance(obj.const, dict):
                return FALSE_COND
            cur: object = obj.const
            for k in e.path:
                if not isinstance(cur, dict):
                    return FALSE_COND
                if k not in cur:
                    return Cond(FALSE, TRUE, True)
                cur = cur[k]
            return Cond(TRUE, FALSE, True)
        guard = and_(*obj.guard)
        ty, text_ = obj.ty, obj.text
        present: list[C] = []  # conditions for the path so far to be present
        f_parts: list[C] = []
        for k in e.path:
            if ty is None or ty.kind == "Entity":
                if ty is not None and ty.entity == "Grant" and self.names.user is None and k in self.user_attrs:
                    raise Refusal(_AGENTCORE_USERS if self.names.gateway is not None else "this Cedar model has no User type",
                                  e.span)
                if ty is not None and ty.entity == "Grant":
                    found = (STRING, True) if k == "label" else None
                elif ty is not None and ty.entity == "User":
                    found = self.user_attrs.get(k)
                else:
                    found = None
                if found is None:
                    f_parts.append(and_(*present))
                    return Cond(FALSE, and_(guard, or_(*f_parts)), False)
            elif ty.kind != "Record":
                return Cond(FALSE, and_(guard, or_(*f_parts)), False)  # errors once the prefix is there
            else:
                found = ty.attr(k)
                if found is not None and found[0].kind == "Opaque":
                    raise Refusal(f"argument {k!r} of tool {self.tool!r} has no Cedar type ({found[0].why})", e.span)
            if found is None:
                f_parts.append(and_(*present))
                return Cond(FALSE, and_(guard, or_(*f_parts)), False)
            aty, required = found
            if not required:
                test = HasC(text_, k)  # type: ignore[arg-type]
                f_parts.append(and_(*present, not_(test)))
                present.append(test)
            ty, text_ = aty, Attr(text_, k)  # type: ignore[arg-type]
        return Cond(and_(guard, *present), and_(guard, or_(*f_parts)), not obj.guard and not f_parts)

    def is_(self, e: ir.Is) -> Val:
        v = self.val(e.obj)
        if v.err:
            return ERRV
        if v.ty is None or v.ty.kind != "Entity":
            return ERRV
        if e.type == "User" and self.names.user is None:
            raise Refusal(_AGENTCORE_USERS if self.names.gateway is not None else "this Cedar model has no User type", e.span)
        same = v.ty.entity == e.type
        if e.in_ is None or not same:
            return Val(BOOL, const=same, guard=v.guard)
        return self.entity_in(v, self.val(e.in_), e.span)

    def in_(self, e: ir.In) -> Val:
        a, b = self.val(e.left), self.val(e.right)
        if a.err or b.err:
            return ERRV
        if a.ty is not None and a.ty.kind == "Entity":
            return self.entity_in(a, b, e.span)
        return self.member(b, a, e.span)

    def entity_in(self, a: Val, b: Val, span: Span) -> Val:
        """Cedar's entity `in`: reflexive, then the hierarchy (grant → groups, tool → groups)."""
        if not b.is_const:
            raise Refusal("`in` with a computed right side", span)
        consts = b.const if isinstance(b.const, list) else [b.const]
        if not all(isinstance(t, tuple) for t in consts):
            return ERRV
        targets: list[tuple[str, str]] = consts  # type: ignore[assignment]
        atype = a.ty.entity  # type: ignore[union-attr]
        if a.is_const:
            pair = cast("tuple[object, object]", a.const)  # an entity constant: (type, id)
            kind, aid = str(pair[0]), str(pair[1])
            if kind == "Action":
                return Val(BOOL, const=any(t[0] == "Action" and self.in_group(aid, t[1]) for t in targets))
            if kind in ("Grant", "User"):  # the caller's groups: Cedar reads them from the entity store
                if any(t == (kind, aid) for t in targets):
                    return Val(BOOL, const=True)
                parts = [Bin("in", self.entity(kind, aid), self.entity(t[0], t[1])) for t in targets
                         if t[0] == "Group" and self.may_be_in_groups(kind)]
                return Val(BOOL, or_(*parts)) if parts else Val(BOOL, const=False)
            return Val(BOOL, const=any(t == a.const for t in targets))
        parts = []
        for t in targets:
            if atype in _CALLERS and t[0] == atype:  # no caller is another's parent: `==` (see _CALLERS)
                parts.append(Bin("==", a.text, self.entity(t[0], t[1])))  # type: ignore[arg-type]
            elif atype in _CALLERS and t[0] == "Group" and self.may_be_in_groups(atype):
                parts.append(Bin("in", a.text, self.entity(t[0], t[1])))  # type: ignore[arg-type]
            elif atype == "Server" and t[0] == "Server":
                parts.append(Bin("==", a.text, self.entity(t[0], t[1])))  # type: ignore[arg-type]
        return Val(BOOL, or_(*parts)) if parts else Val(BOOL, const=False)

    def may_be_in_groups(self, ptype: str) -> bool:
        """Grants may be in groups; users when `entity User` says `in [Group]` (else the
        engine denies a user with groups, so for every user it decides `in Group` is false)."""
        if ptype != "User":
            return True
        decl = self.program.user_decl
        return decl is None or "Group" in decl.parents

    def member(self, s: Val, v: Val, span: Span) -> Val:
        """mcpp's `v in S` / `S.contains(v)` on non-entities: set membership by `==`."""
        guard = s.guard + v.guard
        if s.is_const:
            if not isinstance(s.const, list):
                return ERRV
            if v.is_const:
                return Val(BOOL, const=any(cedar_eq(x, v.const) for x in s.const))
            ty = v.ty
            assert ty is not None
            if ty.kind == "Entity":
                return self.entity_in(v, s, span)
            items = [self.lit_as(x, ty) for x in s.const]
            kept = tuple(dict.fromkeys(i for i in items if i is not None))
            if not kept:
                return Val(BOOL, const=False, guard=guard)
            return Val(BOOL, Method(SetC(kept), "contains", (v.text,)), guard=guard)  # type: ignore[arg-type]
        st = s.ty
        if st is None or st.kind != "Set":
            return ERRV
        if v.is_const:
            if st.elem.kind == "Record" and isinstance(v.const, dict):  # type: ignore[union-attr]
                raise Refusal("membership of a record literal in a set argument", span)
            lit = self.lit_as(v.const, st.elem)  # type: ignore[arg-type]
            if lit is None:
                return Val(BOOL, const=False, guard=guard)
            return Val(BOOL, Method(s.text, "contains", (lit,)), guard=guard)  # type: ignore[arg-type]
        if not self.same_type(st.elem, v.ty, span):  # type: ignore[arg-type]
            return Val(BOOL, const=False, guard=guard)
        return Val(BOOL, Method(s.text, "contains", (v.text,)), guard=guard)  # type: ignore[arg-type]

    def call(self, e: ir.Call) -> Val:
        obj = self.val(e.obj)
        if obj.err:
            return ERRV
        if e.method == "isEmpty":
            if obj.is_const:
                return Val(BOOL, const=len(obj.const) == 0) if isinstance(obj.const, list) else ERRV
            if obj.ty is None or obj.ty.kind != "Set":
                return ERRV
            return Val(BOOL, Method(obj.text, "isEmpty", ()), guard=obj.guard)  # type: ignore[arg-type]
        arg = self.val(e.args[0])
        if arg.err:
            return ERRV
        if e.method == "contains":
            if obj.is_const and isinstance(obj.const, str) or (obj.ty is not None and obj.ty.kind == "String"):
                return self.substring(obj, arg, e.span)
            return self.member(obj, arg, e.span)
        return self.contains_set(obj, arg, e.method == "containsAll", e.span)

    def substring(self, s: Val, v: Val, span: Span) -> Val:
        """mcpp's extension: `s.contains(v)` on strings is a substring test."""
        if v.is_const:
            if not isinstance(v.const, str):
                return ERRV
            if s.is_const:
                return Val(BOOL, const=v.const in s.const)  # type: ignore[operator]
            return Val(BOOL, LikeC(s.text, ("", v.const, "")), guard=s.guard)  # type: ignore[arg-type]
        if v.ty is not None and v.ty.kind == "String":
            raise Refusal("a substring test between two computed strings (Cedar's `like` takes a literal pattern)", span)
        return ERRV

    def contains_set(self, s: Val, t: Val, want_all: bool, span: Span) -> Val:
        guard = s.guard + t.guard
        if s.is_const and t.is_const:
            if not (isinstance(s.const, list) and isinstance(t.const, list)):
                return ERRV
            hit = [any(cedar_eq(x, y) for x in s.const) for y in t.const]
            return Val(BOOL, const=all(hit) if want_all else any(hit))
        if s.is_const:  # a literal set against a set argument
            if not isinstance(s.const, list) or t.ty is None or t.ty.kind != "Set":
                return ERRV
            elem = t.ty.elem
            assert elem is not None
            if elem.kind == "Record":
                raise Refusal("a literal set compared with a set of records", span)
            kept = tuple(dict.fromkeys(i for i in (self.lit_as(x, elem) for x in s.const) if i is not None))
            if not kept:  # no member of the argument can be in the literal
                return Val(BOOL, Method(t.text, "isEmpty", ()), guard=guard) if want_all else Val(BOOL, const=False, guard=guard)  # type: ignore[arg-type]
            return Val(BOOL, Method(SetC(kept), "containsAll" if want_all else "containsAny", (t.text,)), guard=guard)  # type: ignore[arg-type]
        if s.ty is None or s.ty.kind != "Set":
            return ERRV
        elem = s.ty.elem
        assert elem is not None
        if t.is_const:
            if not isinstance(t.const, list):
                return ERRV
            if elem.kind == "Record" and t.const:
                raise Refusal("a set of records compared with a literal set", span)
            items = [self.lit_as(x, elem) for x in t.const]
            if want_all:
                if any(i is None for i in items):
                    return Val(BOOL, const=False, guard=guard)
                kept = tuple(dict.fromkeys(i for i in items if i is not None))  # none is
                if not kept:
                    return Val(BOOL, const=True, guard=guard)
            else:
                kept = tuple(dict.fromkeys(i for i in items if i is not None))
                if not kept:
                    return Val(BOOL, const=False, guard=guard)
            if len(kept) == 1:  # on a set, containsAll([v]) and containsAny([v]) are contains(v)
                return Val(BOOL, Method(s.text, "contains", kept), guard=guard)  # type: ignore[arg-type]
            return Val(BOOL, Method(s.text, "containsAll" if want_all else "containsAny", (SetC(kept),)), guard=guard)  # type: ignore[arg-type]
        if t.ty is None or t.ty.kind != "Set":
            return ERRV
        if not self.same_type(elem, t.ty.elem, span):  # type: ignore[arg-type]
            # no member of one can equal a member of the other
            if want_all:
                return Val(BOOL, Method(t.text, "isEmpty", ()), guard=guard)  # type: ignore[arg-type]
            return Val(BOOL, const=False, guard=guard)
        return Val(BOOL, Method(s.text, "containsAll" if want_all else "containsAny", (t.text,)), guard=guard)  # type: ignore[arg-type]


def _noun(v: Val) -> str:
    """What a typed value is, for a refusal: a principal's attribute or a tool argument."""
    t = v.text
    while isinstance(t, Attr) and isinstance(t.obj, Attr):
        t = t.obj
    if isinstance(t, Attr) and t.obj == Raw("principal"):
        return f"principal attribute ({t.name})"
    return "argument"


def _user_attrs(program: Program) -> dict[str, tuple[CType, bool]]:
    """A user's attributes as Cedar types: name → (type, required), from `entity User`."""
    decl = program.user_decl
    return {a.name: (declared_type(a.type), not a.optional) for a in decl.attrs} if decl is not None else {}


def _likes(e: ir.Matches) -> list[tuple[str, ...]]:
    patterns = regex_as_likes(e.regex)
    if patterns is None:
        raise Refusal(f"the regex {quote(e.regex)} is not a `like` pattern or a few of them joined by `||` "
                      "(Cedar has no regexes)", e.span)
    return patterns


_DECIMAL_CMP = {"<": "lessThan", "<=": "lessThanOrEqual", ">": "greaterThan", ">=": "greaterThanOrEqual"}


def _cmp(a: Fraction, op: str, b: Fraction) -> bool:
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


# ---- untyped: Cedar's shared subset, printed as written --------------------------------------

_ENTITY_VARS = {"principal", "action", "resource"}
# The caller types. No caller is ever another caller's parent (a grant's or user's parents
# are groups), so `x in Grant::"g"` is `x == Grant::"g"` in Cedar as in mcpp; the export
# writes the equality, because a Cedar file's `principal in T::"…"` names a group type
# (`principal in Role::"admin"`), and the import could not read the principal's own type
# back in its role (docs/cedar.md, "Import").
_CALLERS = ("Grant", "User")


def _never_entity(e: ir.Expr) -> bool:
    return not (isinstance(e, ir.EntityLit) or (isinstance(e, ir.Var) and e.name in _ENTITY_VARS)
                or isinstance(e, ir.If))


def _always_entity(e: ir.Expr) -> bool:
    return isinstance(e, ir.EntityLit) or (isinstance(e, ir.Var) and e.name in _ENTITY_VARS)


class _Verbatim:
    def __init__(self, names: CedarNames, contains_spans: frozenset = frozenset(), user_decl: ir.EntityDecl | None = None):
        self.names = names
        self.contains_spans = contains_spans  # Cedar `.contains(v)` an import read as containsAny([v])
        self.user_decl = user_decl  # `entity User`: the declared types of `principal.x`

    def declared(self, e: ir.Expr) -> str | None:
        """The declared type of `principal.x` (None: not a declared user attribute)."""
        if self.user_decl is None:
            return None
        if isinstance(e, ir.GetAttr) and isinstance(e.obj, ir.Var) and e.obj.name == "principal":
            a = self.user_decl.attr(e.attr)
            return a.type if a is not None else None
        return None

    def entity(self, ref: ir.EntityRef) -> C:
        try:
            return Raw(entity_text(self.names, ref.type, ref.id))
        except Refusal as r:
            r.span = ref.span
            raise

    def expr(self, e: ir.Expr) -> C:
        x = self.expr
        decided = self.static(e)
        if decided is not None:
            return decided
        if isinstance(e, ir.Lit):
            v = e.value
            if v is None:
                raise Refusal("`null` (Cedar has no null; with --catalog a comparison with null exports)", e.span)
            if isinstance(v, float):
                raise Refusal("a fractional number (Cedar has none; with --catalog comparisons with number arguments export)", e.span)
            if isinstance(v, bool):
                return TRUE if v else FALSE
            if isinstance(v, int):
                return Raw(str(v))
            assert isinstance(v, str)  # a literal's last kind
            return Raw(quote(v))
        if isinstance(e, ir.Var):
            return Raw(e.name)
        if isinstance(e, ir.EntityLit):
            return self.entity(e.entity)
        if isinstance(e, ir.GetAttr):
            return Attr(x(e.obj), e.attr)
        if isinstance(e, ir.Has) and isinstance(e.obj, ir.EntityLit):
            # only the caller's own entity has attributes (mcpp's and Cedar's entity store):
            # written against `principal`, which the import reads in its role
            if e.obj.entity.type not in _CALLERS:
                return FALSE
            return AndC((Bin("==", Raw("principal"), x(e.obj)), x(dataclasses_replace(e, obj=ir.Var("principal", e.obj.span)))))
        if isinstance(e, ir.Has):
            obj = x(e.obj)
            checks: list[C] = []
            cur = obj
            for k in e.path:
                checks.append(HasC(cur, k))
                cur = Attr(cur, k)
            return checks[0] if len(checks) == 1 else AndC(tuple(checks))
        if isinstance(e, ir.Like):
            return LikeC(x(e.obj), e.pattern)
        if isinstance(e, ir.Matches):
            obj = x(e.obj)
            likes = [LikeC(obj, p) for p in _likes(e)]
            return likes[0] if len(likes) == 1 else OrC(tuple(likes))
        if isinstance(e, ir.Compare):
            return Bin(e.op, x(e.left), x(e.right))
        if isinstance(e, ir.In):
            if _always_entity(e.left):
                return self.entity_in(e, x)
            if _never_entity(e.left):  # mcpp's value membership is Cedar's set `contains`
                return Method(x(e.right), "contains", (x(e.left),))
            raise Refusal("`in` whose left side may or may not be an entity", e.span)
        if isinstance(e, ir.Is):
            cedar = self.names.of(e.type)
            if cedar is None:
                raise Refusal(f"this Cedar model has no {e.type} type", e.span)
            return IsC(x(e.obj), cedar, x(e.in_) if e.in_ is not None else None)
        if isinstance(e, (ir.And, ir.Or)):  # one flat chain: `&&` and `||` are associative in Cedar
            cls = AndC if isinstance(e, ir.And) else OrC
            parts: list[C] = []
            for side in (x(e.left), x(e.right)):
                parts.extend(side.items if isinstance(side, cls) else (side,))
            return cls(tuple(parts))
        if isinstance(e, ir.Not):
            return NotC(x(e.expr))
        if isinstance(e, ir.Neg):
            raise Refusal("negating an argument: Cedar's `-` overflows at -9223372036854775808 where mcpp's does not", e.span)
        if isinstance(e, ir.If):
            return IfC(x(e.cond), x(e.then), x(e.else_))
        if isinstance(e, ir.SetLit):
            return SetC(tuple(x(i) for i in e.items))
        if isinstance(e, ir.RecordLit):
            return RecC(tuple((k, x(v)) for k, v in e.items))
        if isinstance(e, ir.Call):
            if e.method == "containsAny" and e.span in self.contains_spans and isinstance(e.args[0], ir.SetLit) \
                    and len(e.args[0].items) == 1:
                return Method(x(e.obj), "contains", (x(e.args[0].items[0]),))
            declared = self.declared(e.obj) if e.method == "contains" else None
            if declared is not None and declared.startswith("Set<"):  # a set for every caller that has it
                return Method(x(e.obj), "contains", (x(e.args[0]),))
            if declared == "String" and isinstance(e.args[0], ir.Lit) and isinstance(e.args[0].value, str):
                return LikeC(x(e.obj), ("", e.args[0].value, ""))  # mcpp's substring test on a string attribute
            if e.method == "contains" and not isinstance(e.obj, ir.SetLit) and _may_be_string(e.args[0]):
                raise Refusal("`.contains(…)` with a string is a substring test in mcpp when the receiver is a string "
                              "and an error in Cedar; with --catalog, string arguments export as `like \"*…*\"`", e.span)
            return Method(x(e.obj), e.method, tuple(x(a) for a in e.args))
        if isinstance(e, ir.Error):
            raise Refusal("a condition that always errors", e.span)
        raise Refusal(f"{type(e).__name__} has no Cedar form", getattr(e, "span", None))  # pragma: no cover


    def entity_in(self, e: ir.In, x) -> C:
        """Cedar's entity `in`, written so that the import reads each type back in its
        role (docs/cedar.md, "Import"): a caller-typed target as `==` (see _CALLERS),
        targets the left side's type can never be in dropped (`principal in
        Server::"s"` is false), and a literal that is no caller (a group, a server) in
        literals decided here (such an entity has no parents: `in` is `==`)."""
        kinds = _kinds(e.left)
        if isinstance(e.right, ir.Var) and e.right.name in ("principal", "resource") and kinds is not None:
            # nothing is in a caller or a server but itself: `in` is `==`
            if not kinds & _kinds(e.right):  # type: ignore[operator]
                return FALSE
            if isinstance(e.left, ir.EntityLit):
                return Bin("==", Raw(e.right.name), x(e.left))
        items = e.right.items if isinstance(e.right, ir.SetLit) else (e.right,)
        if kinds is None or not items or not all(isinstance(i, ir.EntityLit) for i in items):
            if any(isinstance(i, ir.EntityLit) and i.entity.type in _CALLERS for i in items):
                raise Refusal("`in` a set that mixes a caller entity with other values", e.right.span)
            return Bin("in", x(e.left), x(e.right))
        refs = [i.entity for i in items]  # type: ignore[union-attr]
        if isinstance(e.left, ir.EntityLit) and e.left.entity.type not in _CALLERS + ("Action",):
            a = e.left.entity
            return TRUE if any((r.type, r.id) == (a.type, a.id) for r in refs) else FALSE
        left = x(e.left)
        eq = [r for r in refs if r.type in kinds and r.type != "Action"]
        within = [r for r in refs if (r.type == "Group" and kinds & set(_CALLERS)) or (r.type == "Action" and "Action" in kinds)]
        parts: list[C] = [Bin("==", left, self.entity(r)) for r in eq]
        if within:
            target = self.entity(within[0]) if len(within) == 1 and not isinstance(e.right, ir.SetLit) \
                else SetC(tuple(self.entity(r) for r in within))
            parts.append(Bin("in", left, target))
        if not parts:
            return FALSE
        return parts[0] if len(parts) == 1 else OrC(tuple(parts))

    def static(self, e: ir.Expr) -> C | None:
        """`==`/`!=`/`is` whose answer the types decide (`principal == Group::"a"`,
        `Grant::"g" == "x"`, `resource is Grant`), decided here: written as they are,
        the import would read an entity type in the wrong role, or in none."""
        if isinstance(e, ir.Compare) and e.op in ("==", "!="):
            a, b = _kinds(e.left), _kinds(e.right)
            if a is None or b is None:
                return None
            if isinstance(e.left, ir.EntityLit) and isinstance(e.right, ir.EntityLit):
                same = (e.left.entity.type, e.left.entity.id) == (e.right.entity.type, e.right.entity.id)
            elif a & b:
                return None
            else:
                same = False
            return TRUE if same == (e.op == "==") else FALSE
        if isinstance(e, ir.Is):
            k = _kinds(e.obj)
            if k is None:
                return None
            if e.type not in k:
                return FALSE
            if isinstance(e.obj, ir.EntityLit):
                return TRUE if e.in_ is None else self.expr(ir.In(e.obj, e.in_, e.span))
        return None


def _kinds(e: ir.Expr) -> set[str] | None:
    """The entity types `e` may have, "value" for a non-entity; None: not known here."""
    if isinstance(e, ir.EntityLit):
        return {e.entity.type}
    if isinstance(e, ir.Var):
        return {"principal": set(_CALLERS), "resource": {"Server"}, "action": {"Action"}}.get(e.name)
    if isinstance(e, ir.Lit) and e.value is not None and not isinstance(e.value, float):
        return {"value"}
    if isinstance(e, (ir.SetLit, ir.RecordLit)):
        return {"value"}
    return None


def _may_be_string(e: ir.Expr) -> bool:
    if isinstance(e, ir.Lit):
        return isinstance(e.value, str)
    return not isinstance(e, (ir.SetLit, ir.RecordLit, ir.EntityLit, ir.Compare, ir.In, ir.Has, ir.Like,
                              ir.Matches, ir.Is, ir.And, ir.Or, ir.Not, ir.Call))


# ---- statements ------------------------------------------------------------------------------


def _annotations(anns: tuple[ir.Annotation, ...]) -> list[str]:
    return [f"@{a.key}({quote(a.value)})" for a in anns]


_AGENTCORE_USERS = ("AgentCore's principal is its one OAuthUser type, whose JWT claims are tags, which mcpp does not "
                    "read: mcpp users (`entity User`) have no AgentCore form")


def entity_text(names: CedarNames, etype: str, eid: str) -> str:
    """An mcpp entity reference in the Cedar model `names`."""
    if etype == "Action":
        return names.action_ref(eid)
    cedar = names.of(etype)
    if cedar is None:
        if names.gateway is not None and etype == "Group":
            raise Refusal("AgentCore principals have no groups (JWT claims are tags, which mcpp does not read)")
        if etype == "User" and names.gateway is not None:
            raise Refusal(_AGENTCORE_USERS)
        raise Refusal(f"this Cedar model has no {etype} type")
    if names.gateway is not None and etype == "Server":
        raise Refusal("AgentCore's resource is the gateway: a server id has no AgentCore form")
    return f"{cedar}::{quote(eid)}"


def _scope_text(names: CedarNames, scope: ir.Scope, groups: dict[str, frozenset[str]] | None = None,
                tools: dict | None = None) -> tuple[str, str, str]:
    """The scope in Cedar. Under AgentCore (`names.gateway`) action groups, which its
    generated schema does not have, are written as the tools they hold, and the resource
    as AgentCore requires: the gateway's ARN when actions are named, else its type."""
    def ent(ref: ir.EntityRef) -> str:
        try:
            return entity_text(names, ref.type, ref.id)
        except Refusal as r:
            r.span = ref.span
            raise

    def entity_scope(var: str, s: ir.EntityScope) -> str:
        if s.op == "any":
            return var
        if s.op == "eq":
            return f"{var} == {ent(s.entity)}"  # type: ignore[arg-type]
        if s.op == "in":
            if var == "principal" and s.entity.type in _CALLERS:  # type: ignore[union-attr]
                return f"{var} == {ent(s.entity)}"  # type: ignore[arg-type]  # see _CALLERS
            return f"{var} in {ent(s.entity)}"  # type: ignore[arg-type]
        cedar = names.of(s.type)  # type: ignore[arg-type]
        if cedar is None:
            if s.type == "User" and names.gateway is not None:
                raise Refusal(_AGENTCORE_USERS, s.span)
            raise Refusal(f"this Cedar model has no {s.type} type", s.span)
        out = f"{var} is {cedar}"
        if s.op == "is_in":
            out += f" in {ent(s.entity)}"  # type: ignore[arg-type]
        return out

    a = scope.action
    if names.gateway is not None and a.op != "any":
        named: set[str] = set()
        for e in a.entities:
            if a.op != "eq" and groups and e.id in groups:
                named |= {t for t in groups[e.id] if tools is None or t in tools}
            if tools is None or e.id in tools:
                named.add(e.id)
        listed = sorted(named)
        action = (f"action == {names.action_ref(listed[0])}" if len(listed) == 1
                  else "action in [" + ", ".join(names.action_ref(t) for t in listed) + "]")
    elif a.op == "any":
        action = "action"
    elif a.op == "eq":
        action = f"action == {ent(a.entities[0])}"
    elif a.op == "in":
        action = f"action in {ent(a.entities[0])}"
    else:
        action = "action in [" + ", ".join(ent(x) for x in a.entities) + "]"
    if names.gateway is not None:
        if scope.resource.op != "any":
            raise Refusal("AgentCore's resource is the gateway: a resource scope has no AgentCore form", scope.resource.span)
        resource = "resource is AgentCore::Gateway" if a.op == "any" else f"resource == {names.resource}::{quote(names.gateway)}"
    else:
        resource = entity_scope("resource", scope.resource)
    return entity_scope("principal", scope.principal), action, resource


def _policy_text(anns: list[str], effect: str, scope: tuple[str, str, str], clauses: list[tuple[str, C]]) -> str:
    lines = list(anns)
    head = f"{effect} ({', '.join(scope)})"
    if len(head) <= 80:
        lines.append(head)
    else:  # one scope element a line, as Cedar's formatter does
        lines += [f"{effect} (", f"  {scope[0]},", f"  {scope[1]},", f"  {scope[2]}", ")"]
    for kind, body in clauses:
        body_lines = condition_lines(body)
        if len(body_lines) == 1:
            lines.append(f"{kind} {{ {body_lines[0]} }}")
        else:
            lines.append(f"{kind} {{")
            lines += ["  " + line for line in body_lines]
            lines.append("}")
    lines[-1] += ";"
    return "\n".join(lines)


def _consequence(stmt: ir.Statement) -> str:
    if isinstance(stmt, ir.Limit):
        return "Cedar will not count calls, so it never denies one for this limit"
    if isinstance(stmt, ir.Default):
        return "Cedar will deny the tools it allows"
    if isinstance(stmt, ir.Policy) and stmt.effect == "forbid":
        return "Cedar will NOT deny the calls it denies"
    return "Cedar will deny the calls only it allows"


def _kind(stmt: ir.Statement, program: Program) -> str:
    """How a diagnostic names the statement: `forbid "no-prod"`, `limit "posts"`, …"""
    if isinstance(stmt, ir.Policy):
        pid = next((p.id for p in program.policies if p.stmt is stmt), None)
        return f"{stmt.effect} {quote(pid)}" if pid else stmt.effect
    if isinstance(stmt, ir.Limit):
        return f"limit {quote(stmt.counter)}"
    if isinstance(stmt, ir.Default):
        return f"default {stmt.decision}"
    if isinstance(stmt, ir.Group):
        return f"group Action::{quote(stmt.entity.id)}"
    return type(stmt).__name__.lower()


def export_program(
    program: Program,
    *,
    tools: dict[str, dict] | None = None,
    names: CedarNames | None = None,
    partial: bool = False,
    schema: bool = False,
    contains_spans: frozenset = frozenset(),
) -> CedarExport:
    """Export `program` to Cedar. `tools`: tool name → input JSON Schema (typed mode).
    Raises MCPPError with one diagnostic per statement Cedar cannot express, unless
    `partial`, which leaves them out and lists them as warnings. `contains_spans`: spans
    of `containsAny([v])` calls an import wrote for Cedar's `.contains(v)` (printed back so)."""
    names = names or CedarNames()
    filename = program.filename
    if schema and tools is None:
        raise MCPPError([Diagnostic("a Cedar schema needs the tools' input schemas: give --catalog", Span(0, 0, 0, 0), file=filename)])
    if names.gateway is not None and tools is None:
        raise MCPPError([Diagnostic("AgentCore validates policies against the gateway's tool schemas: give --catalog",
                                    Span(0, 0, 0, 0), file=filename)])
    inputs = {t: input_type(s) for t, s in (tools or {}).items()}
    typed = _Typed(program, names, inputs) if tools is not None else None
    verbatim = _Verbatim(names, contains_spans, program.user_decl)
    problems: list[tuple[ir.Statement, Refusal]] = []
    blocks: list[str] = []
    ids: list[str] = []
    used_ids = {p.id for p in program.policies} | {li.id for li in program.limits}

    def fresh(base: str) -> str:
        n, pid = 0, base
        while pid in used_ids:
            n += 1
            pid = f"{base}-{n}"
        used_ids.add(pid)
        return pid

    if typed is not None:
        clash = sorted(set(program.groups) & set(inputs))
        for g in clash:
            problems.append((_group_stmt(program, g), Refusal(
                f"action group {g!r} has the name of a catalog tool: Cedar has one action per name", program.group_spans.get(g))))

    info_of = {id(p.stmt): p for p in program.policies}
    doc = program.document
    statements = doc.statements if doc is not None else tuple(p.stmt for p in program.policies)
    for stmt in statements:
        try:
            if isinstance(stmt, ir.Policy):
                info = info_of[id(stmt)]
                if typed is not None:
                    block = _typed_policy(typed, info, names)
                else:
                    block = _verbatim_policy(verbatim, info, names)
                if block is not None:
                    blocks.append(block)
                    ids.append(info.id)
            elif isinstance(stmt, ir.Limit):
                raise Refusal("Cedar has no counters", stmt.span)
            elif isinstance(stmt, ir.Hide):
                hidden = sorted(t for t in program.hidden if typed is None or t in inputs)
                if hidden and stmt is _first(statements, ir.Hide):
                    pid = fresh("hide")
                    scope = _listed_scope(names, hidden)
                    reason = "The tool is not available (hidden by policy)."
                    blocks.append(_policy_text([f"@id({quote(pid)})", f"@reason({quote(reason)})"], "forbid", scope, []))
                    ids.append(pid)
            elif isinstance(stmt, ir.Default) and stmt.decision == "allow" and stmt is _first(statements, ir.Default):
                if typed is None:
                    raise Refusal("`default allow` needs --catalog: Cedar has no default, so the export permits by name "
                                  "the catalog's tools that no permit names", stmt.span)
                named: set[str] = set()
                for p in program.permits:
                    if p.tools is not None:
                        named |= p.tools
                rest = sorted(t for t in inputs if t not in named and t not in program.hidden)
                if rest:
                    pid = fresh("default")
                    scope = _listed_scope(names, rest)
                    blocks.append(_policy_text([f"@id({quote(pid)})"], "permit", scope, []))
                    ids.append(pid)
        except Refusal as r:
            if r.span is None:
                r.span = stmt.span
            problems.append((stmt, r))
    diags: list[Diagnostic] = []
    for stmt, refusal in problems:
        if partial:
            diags.append(Diagnostic(f"left out of the Cedar export: {_kind(stmt, program)}: {refusal.message}; "
                                    f"{_consequence(stmt)}", refusal.span or stmt.span, "warning", "cedar-export", filename))
        else:
            diags.append(Diagnostic(f"cannot export to Cedar: {_kind(stmt, program)}: {refusal.message}",
                                    refusal.span or stmt.span, "error", "cedar-export", filename))
    if diags and not partial:
        raise MCPPError(diags, doc.source if doc is not None else None)
    policies = "\n\n".join(blocks) + ("\n" if blocks else "")
    schema_out = None
    if schema and typed is not None:
        user = None
        if program.identity_aware and names.user is not None:
            decl = program.user_decl
            user = SchemaUser(CType("Record", attrs=tuple((n, ty, req) for n, (ty, req) in _user_attrs(program).items())),
                              decl is None or "Group" in decl.parents)
        schema_out = schema_text(names, _schema_actions(program, inputs), user=user,
                                 grants="Grant" in _modelled(program, names),
                                 header="Generated by `mcpp compile --target cedar` from " + filename)
    return CedarExport(policies, schema_out, diags, ids, [stmt for stmt, _ in problems])


def _modelled(program: Program, names: CedarNames) -> list[str]:
    """The principal types the export models: grants, and users when the program is
    identity-aware; users alone for a Cedar file whose principal the import read as a
    user (its Cedar schema has no grants)."""
    if not (program.identity_aware and names.user is not None):
        return ["Grant"]
    if getattr(program.cedar, "users_only", False):
        return ["User"]
    return ["Grant", "User"]


def _principal_types(t: _Typed, scope: ir.EntityScope) -> list[str]:
    """The principal types a policy's scope admits, among those the export models: grants,
    and users when the program is identity-aware (it declares or names `User`)."""
    modelled = _modelled(t.program, t.names)
    if scope.op == "any":
        return modelled
    if scope.op == "eq":
        admitted = [scope.entity.type]  # type: ignore[union-attr]
    elif scope.op == "is":
        admitted = [scope.type]
    else:  # `in E` / `is T in E`: the types that can be E or in it
        target = scope.entity.type  # type: ignore[union-attr]
        admitted = [p for p in ("Grant", "User") if p == target or (target == "Group" and t.may_be_in_groups(p))]
        if scope.op == "is_in":
            admitted = [p for p in admitted if p == scope.type]
    if t.names.user is None and "User" in admitted and len(admitted) == 1:
        return ["Grant"]  # the scope names users, which this model lacks: its text is refused
    return [p for p in modelled if p in admitted]


def _listed_scope(names: CedarNames, tools: list[str]) -> tuple[str, str, str]:
    resource = "resource" if names.gateway is None else f"resource == {names.resource}::{quote(names.gateway)}"
    return "principal", "action in [" + ", ".join(names.action_ref(t) for t in tools) + "]", resource


def _first(statements, cls):
    return next((s for s in statements if isinstance(s, cls)), None)


def _group_stmt(program: Program, name: str) -> ir.Statement:
    doc = program.document
    for s in doc.statements if doc is not None else ():
        if isinstance(s, ir.Group) and s.entity.id == name:
            return s
    return ir.Group(ir.EntityRef("Action", name), ())


def _schema_actions(program: Program, inputs: dict[str, CType]) -> list[SchemaAction]:
    """Groups as actions, each tool `in` the groups that list it directly (Cedar's `in`
    is transitive, so nested groups keep their meaning)."""
    direct: dict[str, list[str]] = {}
    doc = program.document
    for s in doc.statements if doc is not None else ():
        if isinstance(s, ir.Group) and s.entity.id not in inputs:
            for m in s.members:
                if m.id in inputs or m.id in program.groups:
                    direct.setdefault(m.id, [])
                    if s.entity.id not in direct[m.id]:
                        direct[m.id].append(s.entity.id)
    out = [SchemaAction(g, sorted(direct.get(g, []))) for g in sorted(program.groups) if g not in inputs]
    out += [SchemaAction(t, sorted(direct.get(t, [])), inputs[t]) for t in sorted(inputs)]
    return out


def _verbatim_policy(v: _Verbatim, info, names: CedarNames) -> str:
    stmt: ir.Policy = info.stmt
    scope = _scope_text(names, stmt.scope)
    clauses = [(c.kind, v.expr(c.expr)) for c in stmt.clauses]
    return _policy_text(_annotations(stmt.annotations), stmt.effect, scope, clauses)


def _typed_policy(t: _Typed, info, names: CedarNames) -> str | None:
    stmt: ir.Policy = info.stmt
    groups = t.program.groups
    if info.tools is None:
        tools = sorted(t.inputs)
    else:
        # a tool the scope names must be in the catalog; a group's other members cannot be called
        unknown = sorted(e.id for e in stmt.scope.action.entities if e.id not in t.inputs and e.id not in groups)
        if unknown:
            raise Refusal(f"Action::{quote(unknown[0])} is not a tool of the catalog (Cedar's validator rejects unknown actions)",
                          stmt.scope.action.span)
        tools = sorted(x for x in info.tools if x in t.inputs)
        if not tools:
            raise Refusal("its action scope names no tool of the catalog (Cedar's validator rejects a policy that applies to no action)",
                          stmt.scope.action.span)
    if any(x.id in t.inputs and x.id in groups for x in stmt.scope.action.entities):
        raise Refusal("its action scope names a group that shares a tool's name", stmt.scope.action.span)
    ptypes = _principal_types(t, stmt.scope.principal)
    if not ptypes:
        # no caller the export models can match the scope (`principal is User in Group::"g"` where
        # users are in no group): mcpp never applies it, and Cedar's validator rejects it as impossible
        _scope_text(names, stmt.scope, t.program.groups, t.inputs)  # what cannot be written is still refused
        return None
    clauses: list[tuple[str, C]] = []
    for c in stmt.clauses:
        per: dict[str, dict[str, Cond]] = {}
        for ptype in ptypes:
            t.ptype = ptype
            per[ptype] = {}
            for tool in tools:
                t.tool = tool
                per[ptype][tool] = t.cond(c.expr)
        t.tool, t.ptype = None, "Grant"
        conds = [x for by_tool in per.values() for x in by_tool.values()]
        if c.kind == "unless" and all(x.total for x in conds) and all(x.t == conds[0].t for x in conds):
            clauses.append(("unless", conds[0].t))
            continue
        bodies: dict[str, C] = {}
        for ptype, by_tool in per.items():
            chosen = {tool: (x.t if c.kind == "when" else x.f) for tool, x in by_tool.items()}
            first = next(iter(chosen.values()))
            if all(x == first for x in chosen.values()):
                bodies[ptype] = first
            else:
                bodies[ptype] = or_(*(and_(Bin("==", Raw("action"), Raw(names.action_ref(tool))), x)
                                      for tool, x in chosen.items()))
        first_body = next(iter(bodies.values()))
        if all(b == first_body for b in bodies.values()):
            body = first_body
        else:  # grants and users read differently: Cedar's validator types each branch for its principal type
            body = or_(*(and_(IsC(Raw("principal"), names.of(ptype), None), b) for ptype, b in bodies.items()))  # type: ignore[arg-type]
        if body != TRUE:
            clauses.append(("when", body))
    return _policy_text(_annotations(stmt.annotations), stmt.effect,
                        _scope_text(names, stmt.scope, t.program.groups, t.inputs), clauses)
