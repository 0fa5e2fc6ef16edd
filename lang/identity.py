"""Who the caller is: the principal model that validation, the engine and the compiler share.

A call is made by a *grant* or by a *user*:

- `Grant::"id"` — the gateway's own token. One attribute, `label` (a string); its groups
  come from the gateway configuration.
- `User::"id"` — a person or client authenticated by an OAuth access token. The id is the
  token's subject (issuer-qualified when the gateway trusts several issuers: the gateway
  decides, the language only sees the string); the attributes are claims the gateway maps
  and types; the groups come from a groups claim.

Which attributes a user has is declared in the policy, in Cedar's schema syntax:

    entity User in [Group] { email: String, scopes: Set<String>, refund_cap?: Long };

This module holds what that declaration means: the attribute types, checking a caller's
attributes against it (`user_attributes`, used by the engine and by `mcpp compile
--user`), and the validation of conditions that read the principal (`PrincipalChecks`):
attributes nobody has, comparisons whose types can never match, and reads that error
for some callers — an optional attribute without `has`, a grant's `label` read when a
user calls, a user's attribute read when a grant calls — where that makes a rule skip.
"""

from __future__ import annotations

import difflib
import reprlib
from dataclasses import dataclass
from typing import Callable, Mapping

from . import ir

PRINCIPAL_TYPES = ("Grant", "User")
GRANT_ATTRS = {"label": "String"}
SCALAR_TYPES = ("String", "Long", "Bool")
ATTR_TYPES = SCALAR_TYPES + tuple(f"Set<{t}>" for t in SCALAR_TYPES)
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1  # Cedar's Long

# A declaration that says nothing: users with no attributes, in groups (what a policy
# without `entity User` means).
DEFAULT_USER = ir.EntityDecl("User", ("Group",), ())


class PrincipalError(ValueError):
    """A caller's attributes or groups do not fit the policy's `entity User` declaration."""


def user_decl(program) -> ir.EntityDecl:
    """The program's `entity User` declaration, or the default one."""
    return getattr(program, "user_decl", None) or DEFAULT_USER


# ---- values ----------------------------------------------------------------------------------


def _scalar_ok(t: str, v: object) -> bool:
    if t == "String":
        return type(v) is str
    if t == "Long":
        return type(v) is int and LONG_MIN <= v <= LONG_MAX
    return type(v) is bool


def _type_name(v: object) -> str:
    from .values import type_name

    return type_name(v)


_SHOWN = reprlib.Repr()  # (3.11's takes no keywords)
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother, _SHOWN.maxlist, _SHOWN.maxdict = 3, 60, 60, 4, 4


def _shown(v: object) -> str:
    """A value in a message, bounded: `repr` of a claim nested 5,000 deep raised
    RecursionError, and the caller was denied with `/error` instead of `/principal`
    (hostile review 29, F10); a long one filled the message."""
    return _SHOWN.repr(v)


def typed_value(t: str, v: object) -> object:
    """`v` as a value of declared type `t` (a set becomes a list, mcpp's set value), or
    PrincipalError. No conversion between types: the gateway types claims, the policy
    only checks them (a string "1000" is not a Long)."""
    if t.startswith("Set<"):
        elem = t[4:-1]
        if isinstance(v, (set, frozenset)):
            v = sorted(v, key=repr)
        elif isinstance(v, tuple):
            v = list(v)
        if type(v) is not list:
            raise PrincipalError(f"expected a {t}, got {_type_name(v)}")
        for x in v:
            if not _scalar_ok(elem, x):
                raise PrincipalError(f"expected a {t}, but an element is {_type_name(x)} ({_shown(x)})")
        return list(v)
    if not _scalar_ok(t, v):
        if t == "Long" and type(v) is int:
            raise PrincipalError(f"expected a Long, got {v}, outside the 64-bit range")
        raise PrincipalError(f"expected a {t}, got {_type_name(v)} ({_shown(v)})")
    return v


def user_attributes(decl: ir.EntityDecl | None, attrs: Mapping[str, object]) -> dict:
    """The attributes of a user as conditions see them: every declared attribute the
    caller has, checked against its declared type. Attributes the declaration does not
    name are dropped (validation makes every read of them an error). Raises
    PrincipalError naming the attribute: a required one missing, a value of another type."""
    decl = decl or DEFAULT_USER
    out: dict = {}
    for a in decl.attrs:
        if a.name not in attrs or attrs[a.name] is None and a.optional:
            if not a.optional:
                raise PrincipalError(f"the required attribute {a.name!r} ({a.type}) is missing")
            continue
        try:
            out[a.name] = typed_value(a.type, attrs[a.name])
        except PrincipalError as e:
            raise PrincipalError(f"attribute {a.name!r}: {e}") from None
    return out


def check_user_groups(decl: ir.EntityDecl | None, groups) -> None:
    """A user may be in groups only when `entity User` says `in [Group]` (the default)."""
    decl = decl or DEFAULT_USER
    if groups and "Group" not in decl.parents:
        raise PrincipalError(
            "the caller is in groups (" + ", ".join(sorted(groups)) + "), but `entity User` is declared "
            "without `in [Group]`"
        )


# ---- validation ------------------------------------------------------------------------------


def principal_attr(e: ir.Expr) -> str | None:
    """`x` when `e` is `principal.x` (or `principal["x"]`)."""
    if isinstance(e, ir.GetAttr) and isinstance(e.obj, ir.Var) and e.obj.name == "principal":
        return e.attr
    return None


def _literal_kind(e: ir.Expr) -> str | None:
    """What a literal operand is, in declared-type words (None: not a literal)."""
    if isinstance(e, ir.Lit):
        v = e.value
        if v is None:
            return "null"
        if isinstance(v, bool):
            return "Bool"
        if isinstance(v, (int, float)):
            return "Long"
        return "String"
    if isinstance(e, ir.SetLit):
        return "Set"
    if isinstance(e, ir.RecordLit):
        return "record"
    if isinstance(e, ir.EntityLit):
        return "entity"
    return None


def _can_equal(t: str, kind: str) -> bool:
    """Can a value of declared type `t` equal an operand of this kind (a literal's or
    another declared type)?"""
    if t.startswith("Set<"):
        return kind == "Set" or kind == t
    return kind == t


def _article(t: str) -> str:
    return "an" if t[0] in "AEIOU" else "a"


@dataclass(frozen=True)
class _Facts:
    """What is known to hold where a sub-expression is evaluated: which kinds of caller
    it can be (None: any) and which principal attributes are present."""

    kinds: frozenset | None = None
    has: frozenset = frozenset()

    def both(self, other: "_Facts") -> "_Facts":
        if self.kinds is None:
            kinds = other.kinds
        elif other.kinds is None:
            kinds = self.kinds
        else:
            kinds = self.kinds & other.kinds
        return _Facts(kinds, self.has | other.has)

    def either(self, other: "_Facts") -> "_Facts":
        kinds = None if self.kinds is None or other.kinds is None else self.kinds | other.kinds
        return _Facts(kinds, self.has & other.has)


_NONE = _Facts()


def _strict(e: ir.Expr) -> frozenset:
    """Principal attributes read by every evaluation of `e` that does not error."""
    a = principal_attr(e)
    if a is not None:
        return frozenset({a})
    if isinstance(e, (ir.And, ir.Or)):
        return _strict(e.left)
    if isinstance(e, ir.If):
        return _strict(e.cond)
    if isinstance(e, ir.Has):
        return frozenset() if isinstance(e.obj, ir.Var) else _strict(e.obj)
    out: frozenset = frozenset()
    for c in e.children():
        out |= _strict(c)  # type: ignore[arg-type]
    return out


def _kind_test(e: ir.Expr, value: bool) -> frozenset | None:
    """The kinds of caller left when `e` (a test on the principal's type) has `value`."""
    if isinstance(e, ir.Is) and isinstance(e.obj, ir.Var) and e.obj.name == "principal":
        if value:
            return frozenset({e.type})
        if e.in_ is None:
            return frozenset(PRINCIPAL_TYPES) - {e.type}
        return None
    if value and isinstance(e, (ir.Compare, ir.In)) and (not isinstance(e, ir.Compare) or e.op == "=="):
        for a, b in ((e.left, e.right), (e.right, e.left)) if isinstance(e, ir.Compare) else ((e.left, e.right),):
            if isinstance(a, ir.Var) and a.name == "principal" and isinstance(b, ir.EntityLit) and b.entity.type in PRINCIPAL_TYPES:
                return frozenset({b.entity.type})
    return None


def _implied(e: ir.Expr, value: bool) -> _Facts:
    """What holds when `e` evaluated to `value` (without an error)."""
    out = _Facts(_kind_test(e, value), _strict(e))
    if isinstance(e, ir.Has) and value and isinstance(e.obj, ir.Var) and e.obj.name == "principal":
        out = out.both(_Facts(None, frozenset(e.path[:1])))
    elif isinstance(e, ir.Not):
        out = out.both(_implied(e.expr, not value))
    elif isinstance(e, ir.And) and value:
        out = out.both(_implied(e.left, True)).both(_implied(e.right, True))
    elif isinstance(e, ir.Or) and not value:
        out = out.both(_implied(e.left, False)).both(_implied(e.right, False))
    elif isinstance(e, ir.And):  # false: the left side was false, or true with the right side false
        out = out.both(_implied(e.left, False).either(_implied(e.left, True).both(_implied(e.right, False))))
    elif isinstance(e, ir.Or):  # true: the left side was true, or false with the right side true
        out = out.both(_implied(e.left, True).either(_implied(e.left, False).both(_implied(e.right, True))))
    return out


def scope_kinds(scope: ir.EntityScope) -> frozenset | None:
    """The kinds of caller a principal scope admits (None: any)."""
    if scope.op in ("is", "is_in"):
        return frozenset({scope.type})
    if scope.op in ("eq", "in") and scope.entity is not None and scope.entity.type in PRINCIPAL_TYPES:
        return frozenset({scope.entity.type})
    return None


def names_users(doc: ir.Document | None) -> bool:
    """Whether a document names the type `User` anywhere (a declaration, a scope, an
    entity literal, an `is` test)."""
    if doc is None:
        return False
    for s in doc.statements:
        if isinstance(s, ir.EntityDecl):
            if s.name == "User":
                return True
            continue
        for n in ir.walk(s):
            if isinstance(n, ir.EntityRef) and n.type == "User":
                return True
            if isinstance(n, (ir.Is, ir.EntityScope)) and n.type == "User":
                return True
    return False


class PrincipalChecks:
    """Validation of conditions that read the principal, for one program.

    `users`: whether user callers are considered (the program declares `entity User` or
    names the type User); otherwise every caller is a grant, as before identity."""

    def __init__(self, decl: ir.EntityDecl | None, users: bool,
                 error: Callable[..., None], warning: Callable[..., None]):
        self.decl = decl
        self.users = users
        self.error = error
        self.warning = warning
        self.callers = frozenset(PRINCIPAL_TYPES) if users else frozenset({"Grant"})

    # -- what an attribute is ------------------------------------------------------------
    def known(self) -> list[str]:
        names = list(GRANT_ATTRS)
        if self.decl is not None:
            names += [a.name for a in self.decl.attrs if a.name not in GRANT_ATTRS]
        return names

    def type_of(self, attr: str) -> str | None:
        """The declared type of `principal.attr` (None: unknown, or grants and users
        disagree on it)."""
        user = self.decl.attr(attr) if self.decl is not None else None
        grant = GRANT_ATTRS.get(attr)
        if user is not None and grant is not None and user.type != grant:
            return None
        return user.type if user is not None else grant

    def typed(self, e: ir.Expr) -> str | None:
        a = principal_attr(e)
        return self.type_of(a) if a is not None else None

    def _near(self, attr: str) -> list[str]:
        near = difflib.get_close_matches(attr, self.known(), n=1, cutoff=0.6)
        return [f"did you mean {near[0]!r}?"] if near else []

    # -- reads -----------------------------------------------------------------------------
    def get_attr(self, n: ir.GetAttr) -> None:
        """`principal.x`: x must be `label` (grants) or declared on User."""
        attr = n.attr
        if attr in GRANT_ATTRS or (self.decl is not None and self.decl.attr(attr) is not None):
            return
        notes = self._near(attr)
        if self.decl is None:
            notes.append("grants carry `label`; test membership with `principal in Group::\"name\"`; "
                         f"for users, declare the attribute: entity User {{ {attr}: String }};")
            self.error(f"a grant has no attribute {attr!r}", n.span, notes=notes)
            return
        have = ", ".join(a.name for a in self.decl.attrs) or "none"
        notes.append(f"grants carry `label`; users carry what `entity User` declares ({have})")
        self.error(f"the principal has no attribute {attr!r}", n.span, notes=notes)

    def has(self, n: ir.Has) -> None:
        """`principal has x`: x nobody has makes it always false."""
        attr = n.path[0]
        if attr in GRANT_ATTRS or (self.decl is not None and self.decl.attr(attr) is not None):
            return
        self.error(f"no principal has the attribute {attr!r}, so `principal has {attr}` is always false",
                   n.span, notes=self._near(attr))

    # -- types -------------------------------------------------------------------------------
    def types(self, n: ir.Expr) -> None:
        """Type errors where a declared attribute's type makes an operation certain to
        error, or a comparison certain to have one answer."""
        if isinstance(n, ir.Compare):
            self._compare(n)
        elif isinstance(n, ir.In):
            t = self.typed(n.left)
            if t is None:
                return
            if isinstance(n.right, ir.EntityLit):
                self._always_errors(n.left, t, f"`in {n.right.entity}` needs an entity on its left")
            elif isinstance(n.right, ir.SetLit) and n.right.items and all(
                (k := _literal_kind(i)) is not None and not _can_equal(t, k) for i in n.right.items
            ):
                self._never(n.left, t, "is a member of this set", n.right.span)
        elif isinstance(n, (ir.Like, ir.Matches)):
            t = self.typed(n.obj)
            if t is not None and t != "String":
                what = "like" if isinstance(n, ir.Like) else "matches()"
                self._always_errors(n.obj, t, f"{what} applies to strings")
        elif isinstance(n, ir.Call):
            self._call(n)
        elif isinstance(n, ir.GetAttr):
            t = self.typed(n.obj)
            if t is not None:
                self._always_errors(n.obj, t, f"reading `.{n.attr}` needs a record or an entity")
        elif isinstance(n, ir.Has):
            t = self.typed(n.obj)
            if t is not None:
                self._always_errors(n.obj, t, "`has` needs a record or an entity")
        elif isinstance(n, (ir.And, ir.Or)):
            self.boolean(n.left)
            self.boolean(n.right)
        elif isinstance(n, ir.Not):
            self.boolean(n.expr)
        elif isinstance(n, ir.If):
            self.boolean(n.cond)

    def boolean(self, e: ir.Expr) -> None:
        """`e` stands where a boolean must be (a clause, `&&`, `||`, `!`, `if`)."""
        t = self.typed(e)
        if t is not None and t != "Bool":
            self._always_errors(e, t, "a condition must be a boolean")

    def _text(self, e: ir.Expr) -> str:
        from .formatter import expr

        return expr(e)

    def _always_errors(self, e: ir.Expr, t: str, why: str) -> None:
        self.error(f"{why}, but {self._text(e)} is {_article(t)} {t}: the condition always errors", e.span, code="type")

    def _never(self, e: ir.Expr, t: str, what: str, span, always: str = "false") -> None:
        self.error(f"{self._text(e)} is {_article(t)} {t}, so it never {what} (always {always})", span, code="type")

    def _compare(self, n: ir.Compare) -> None:
        for side, other in ((n.left, n.right), (n.right, n.left)):
            t = self.typed(side)
            if t is None:
                continue
            if n.op in ("<", "<=", ">", ">="):
                if t != "Long":
                    self._always_errors(side, t, f"`{n.op}` compares numbers")
                continue
            kind = _literal_kind(other) or self.typed(other)
            if kind is not None and not _can_equal(t, kind):
                shown = self._text(other)
                self._never(side, t, f"equals {shown}", n.span, "false" if n.op == "==" else "true")
                return

    def _call(self, n: ir.Call) -> None:
        t = self.typed(n.obj)
        if t is None:
            return
        if n.method == "contains":
            arg = n.args[0]
            kind = _literal_kind(arg) or self.typed(arg)
            if t in ("Long", "Bool"):
                self._always_errors(n.obj, t, "contains() needs a set (or a string)")
            elif t == "String" and kind is not None and kind != "String":
                self._always_errors(n.obj, t, f"contains({self._text(arg)}) on a string needs a string argument")
            elif t.startswith("Set<") and kind is not None and kind != t[4:-1]:
                self._never(n.obj, t, f"contains {self._text(arg)}", n.span)
        elif not t.startswith("Set<"):
            self._always_errors(n.obj, t, f"{n.method}() needs a set")

    # -- reads that error for some callers ------------------------------------------------------
    def rule(self, stmt: ir.Policy | ir.Limit | ir.Assert, kind: str) -> None:
        """Warn where a rule reads a principal attribute that some caller it admits may lack,
        unguarded: an optional attribute without `has` (every rule), and an attribute
        a whole kind of caller lacks (a user's attribute when a grant calls, a grant's
        `label` when a user calls) in a forbid or a limit, where it fails open."""
        admitted = scope_kinds(stmt.scope.principal)
        kinds = self.callers if admitted is None else self.callers & admitted
        facts = _Facts(kinds)
        for c in stmt.clauses:
            self._visit(c.expr, facts, stmt, kind, c)
            facts = facts.both(_implied(c.expr, c.kind == "when"))

    def _visit(self, e: ir.Expr, facts: _Facts, stmt, kind: str, clause: ir.Clause) -> None:
        attr = principal_attr(e)
        if attr is not None:
            self._read(e, attr, facts, kind, clause)
            return
        if isinstance(e, ir.And):
            self._visit(e.left, facts, stmt, kind, clause)
            self._visit(e.right, facts.both(_implied(e.left, True)), stmt, kind, clause)
            return
        if isinstance(e, ir.Or):
            self._visit(e.left, facts, stmt, kind, clause)
            self._visit(e.right, facts.both(_implied(e.left, False)), stmt, kind, clause)
            return
        if isinstance(e, ir.If):
            self._visit(e.cond, facts, stmt, kind, clause)
            self._visit(e.then, facts.both(_implied(e.cond, True)), stmt, kind, clause)
            self._visit(e.else_, facts.both(_implied(e.cond, False)), stmt, kind, clause)
            return
        for child in e.children():
            self._visit(child, facts, stmt, kind, clause)  # type: ignore[arg-type]

    def _read(self, e: ir.Expr, attr: str, facts: _Facts, kind: str, clause: ir.Clause) -> None:
        if attr in facts.has:
            return
        kinds = self.callers if facts.kinds is None else facts.kinds & self.callers
        user = self.decl.attr(attr) if self.decl is not None else None
        if attr not in GRANT_ATTRS and user is None:
            return  # an unknown attribute: already an error
        lacking = []
        if "Grant" in kinds and attr not in GRANT_ATTRS:
            lacking.append("grants")
        if "User" in kinds and user is None:
            lacking.append("users")
        optional = "User" in kinds and user is not None and user.optional
        fails_open = kind in ("forbid", "limit")
        if not optional and not (lacking and fails_open):
            return
        if kind == "assert" and clause.kind == "when":
            return  # selecting calls by an attribute naturally leaves out callers without it
        who = []
        if optional:
            who.append(f"`{attr}` is optional for users")
        if lacking:
            who.append(" and ".join(lacking) + f" have no `{attr}`")
        effect = {
            "forbid": "the forbid does not apply (fails open: the call is not denied)",
            "limit": "the limit does not count the call (fails open)",
            "permit": "the permit does not apply (fails closed: the call is denied)",
            "assert": "the assertion says nothing about such callers",
        }[kind]
        notes = [f"guard the read: `principal has {attr} && …`"
                 + (" (or `!(principal has " + attr + ") || …` to cover such callers)" if fails_open else "")]
        if lacking and len(kinds) > 1:
            notes.append("or restrict the scope to the callers that have it: `principal is "
                         + ("User" if "grants" in lacking else "Grant") + "`")
        self.warning(f"{'; '.join(who)}: when the caller has no `{attr}` this condition errors and {effect}",
                     e.span, "principal-attribute", notes)
