"""Z3 building blocks: the JSON-value sorts, exact string constants, constant-folding
boolean helpers, and symbolic values (`SV`: a value *or* an error, as a guarded union).

Everything is built in one explicit `z3.Context` (z3 contexts are not thread-safe; the
analyzer makes a fresh one per analysis). Booleans stay Python `bool` while they are
constant, so literal-only sub-expressions fold away before Z3 sees them.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from typing import Any
from fractions import Fraction

import z3
from z3 import z3core

from .regex import HIGH, MAXCHAR, Unsupported

Bool = "bool | z3.BoolRef"


# ---- exact string constants ------------------------------------------------------------------


def string_val(text: str, ctx: z3.Context, *, raw: bool = False) -> z3.SeqRef:
    """A Z3 string of exactly these code points (z3.StringVal would re-read escapes).

    Policy text may not use the block that stands for high code points (`raw` is for
    the regex translator's range bounds)."""
    cps = [ord(c) for c in text]
    if not raw and any(cp >= HIGH for cp in cps):
        raise Unsupported("a string with a character above U+2FA1F")
    arr = (ctypes.c_uint * max(1, len(cps)))(*cps)
    return z3.SeqRef(z3core.Z3_mk_u32string(ctx.ref(), len(cps), arr), ctx)


def high_image(cache: dict, text: str) -> str | None:
    """`text` as the analysis sees it, for a string the *schema* names (an `enum` or
    `const` member): each code point from U+2FA20 up becomes a block character of its
    own, the same one for the same code point throughout this analysis (`cache` is the
    context's), so members stay apart. The block's characters are alike to every other
    test (docs/analyzer.md, "Domain assumptions"), so fixing this much of the bijection
    between them and the code points they stand for loses nothing; `high_decode` maps a
    witness back. None when the block has no character left."""
    table: dict[int, int] = cache.setdefault("high", {})
    inverse: dict[int, int] = cache.setdefault("high_inv", {})
    out = []
    for c in text:
        cp = ord(c)
        if cp >= HIGH:
            slot = table.get(cp)
            if slot is None:
                slot = HIGH + len(table)
                if slot > MAXCHAR:
                    return None
                table[cp] = slot
                inverse[slot] = cp
            cp = slot
        out.append(chr(cp))
    return "".join(out)


def high_decode(cache: dict, text: str) -> str:
    """A witness string with the block characters `high_image` gave out read back."""
    inverse = cache.get("high_inv")
    if not inverse:
        return text
    return "".join(chr(inverse.get(ord(c), ord(c))) for c in text)


def string_of(v: z3.SeqRef) -> str:
    """The Python string of a Z3 string value, code point by code point."""
    n = z3core.Z3_get_string_length(v.ctx_ref(), v.as_ast())
    arr = (ctypes.c_uint * max(1, n))()
    z3core.Z3_get_string_contents(v.ctx_ref(), v.as_ast(), n, arr)
    return "".join(chr(arr[i]) for i in range(n))


def real_val(v, ctx: z3.Context) -> z3.ArithRef:
    fr = Fraction(v)  # exact: JSON floats are binary fractions
    return z3.RealVal(f"{fr.numerator}/{fr.denominator}", ctx)


# ---- constant-folding booleans ---------------------------------------------------------------
# They take the Z3 context first, as every term builder here does, so call sites read alike;
# folding constants needs no context (`_ctx`).


def is_const(b) -> bool:
    return isinstance(b, bool)


def AND(_ctx, *xs):
    out = []
    for x in xs:
        if x is False:
            return False
        if x is True:
            continue
        out.append(x)
    if not out:
        return True
    return out[0] if len(out) == 1 else _nary(z3core.Z3_mk_and, out)


def OR(_ctx, *xs):
    out = []
    for x in xs:
        if x is True:
            return True
        if x is False:
            continue
        out.append(x)
    if not out:
        return False
    return out[0] if len(out) == 1 else _nary(z3core.Z3_mk_or, out)


def NOT(_ctx, x):
    if isinstance(x, bool):
        return not x
    _same_context(x.ctx, (x,))
    return z3.BoolRef(z3core.Z3_mk_not(x.ctx.ref(), x.as_ast()), x.ctx)


# The analyzer builds hundreds of thousands of connectives: through the C API directly,
# as z3.And/Or/Not would, less their per-argument coercions (a third of encoding time).
# Z3 itself still checks the sorts (an ill-sorted argument raises Z3Exception); mixing
# contexts, which the C API would not catch, is refused here.


def _nary(mk, xs: list) -> z3.BoolRef:
    ctx = xs[0].ctx
    _same_context(ctx, xs)
    arr = (z3.Ast * len(xs))(*(x.as_ast() for x in xs))
    return z3.BoolRef(mk(ctx.ref(), len(xs), arr), ctx)


def _same_context(ctx, xs) -> None:
    for x in xs:
        if not isinstance(x, z3.BoolRef) or x.ctx is not ctx:
            raise z3.Z3Exception(f"a boolean term of this context expected, not {type(x).__name__}")


def IMPLIES(ctx, a, b):
    return OR(ctx, NOT(ctx, a), b)


# Z3's n-ary constructors (And, Or, Union, Concat) reject an empty argument list
# ("At least one argument expected"); every n-ary term the analyzer builds goes through
# AND/OR above or these, which give the neutral element instead.


def re_union(sort, items) -> z3.ReRef:
    """The union of regexes: the empty language for none."""
    items = list(items)
    if not items:
        return z3.Empty(sort)
    return items[0] if len(items) == 1 else z3.Union(*items)


def re_concat(ctx, items) -> z3.ReRef:
    """The concatenation of regexes: the language {ε} for none."""
    items = list(items)
    if not items:
        return z3.Re(string_val("", ctx))
    return items[0] if len(items) == 1 else z3.Concat(*items)


def seq_of(sort, units) -> z3.SeqRef:
    """The sequence of these unit terms (`z3.Unit(e)` each): the empty sequence for none."""
    units = list(units)
    if not units:
        return z3.Empty(sort)
    return units[0] if len(units) == 1 else z3.Concat(*units)


def SUM(ctx, *terms) -> z3.ArithRef:
    """The sum of real terms: 0 for none."""
    if not terms:
        return real_val(0, ctx)
    return terms[0] if len(terms) == 1 else z3.Sum(*terms)


def z(ctx, b) -> z3.BoolRef:
    """A Z3 boolean for a possibly-constant one."""
    return z3.BoolVal(b, ctx) if isinstance(b, bool) else b


# ---- sorts -----------------------------------------------------------------------------------


KINDS = ("str", "num", "bool", "null", "arr", "obj", "missing")


class Sorts:
    """Per-context sorts.

    The value at one argument path is a `PathVar`: a kind tag (string, number, boolean,
    null, array, object, missing) and one plain variable per payload. Plain variables,
    not datatype accessors: Z3's string solver is two orders of magnitude slower on
    `js(v)`-style accessor terms than on variables (measured: 0.8 s vs 3 ms).

    Elem is one element of an argument array: a scalar, or an opaque compound (an array
    or object nested in the array) identified by its equality class.
    """

    def __init__(self, ctx: z3.Context):
        self.ctx = ctx
        self.cache: dict = {}  # per-context helpers: the regex translator, unknown tests
        S, R, B, Z = z3.StringSort(ctx), z3.RealSort(ctx), z3.BoolSort(ctx), z3.IntSort(ctx)
        E = z3.Datatype("Elem", ctx)
        E.declare("estr", ("es", S))
        E.declare("enum", ("en", R))
        E.declare("ebool", ("eb", B))
        E.declare("enull")
        E.declare("ecomp", ("ecid", Z))
        self.Elem = E.create()
        self.Seq = z3.SeqSort(self.Elem)
        self.Kind, values = z3.EnumSort("Kind", list(KINDS), ctx=ctx)
        self.kinds = dict(zip(KINDS, values))


class PathVar:
    """The value at one argument path: `kind` plus payload variables. Arrays and objects
    carry `cid`, an opaque equality-class id, so a nested value inside another array can
    be compared with them; objects carry `extra`: keys exist that no rule reads."""

    __slots__ = ("kinds", "name", "kind", "s", "n", "b", "items", "cid", "extra", "_is")

    def __new__(cls, sorts: Sorts, name: str):
        """One per name and context: the same name is the same Z3 constants, so the
        requests of a session share it (and its `is_` terms) instead of rebuilding them.
        (It keeps the kind constants, not `sorts`, whose cache holds it: no reference
        cycle, so a session's context is freed as soon as the session is.)"""
        key = ("path", name)
        hit = sorts.cache.get(key)
        if hit is None:
            hit = sorts.cache[key] = super().__new__(cls)
            hit._setup(sorts, name)
        return hit

    def _setup(self, sorts: Sorts, name: str) -> None:
        ctx = sorts.ctx
        self.kinds = sorts.kinds
        self.name = name
        self.kind = z3.Const(name + ".kind", sorts.Kind)
        self.s = z3.String(name + ".str", ctx)
        self.n = z3.Real(name + ".num", ctx)
        self.b = z3.Bool(name + ".bool", ctx)
        self.items = z3.Const(name + ".items", sorts.Seq)
        self.cid = z3.Int(name + ".cid", ctx)
        self.extra = z3.Bool(name + ".extra", ctx)
        self._is: dict[str, z3.BoolRef] = {}

    def is_(self, kind: str) -> z3.BoolRef:
        hit = self._is.get(kind)
        if hit is None:
            hit = self._is[kind] = self.kind == self.kinds[kind]
        return hit

    def variables(self) -> list:
        return [self.kind, self.s, self.n, self.b, self.items, self.cid, self.extra]


# ---- symbolic values -------------------------------------------------------------------------


@dataclass(frozen=True)
class LitArr:
    """A set literal: its items (each an SV known to be defined where the set is)."""

    items: tuple


@dataclass(frozen=True)
class ArgArr:
    """An array that is the value of argument path `path` (term `var`)."""

    var: PathVar
    path: tuple


@dataclass(frozen=True)
class UserSet:
    """A user's `Set<String>`, `Set<Long>` or `Set<Bool>` attribute: a sequence of the
    element type's own Z3 values (strings; integers, each within 64 bits; booleans), so
    every element has the declared type, as every real user's does (the gateway leaves
    out a claim with an element of another type, the engine refuses such a user). `cid`
    is its equality-class id when it is compared as an element of an argument array.

    Not an `Elem` sequence like an argument array: a sequence that may hold values of
    any kind needs a quantifier to say they all have one kind, and with one Z3 answers
    "unknown" where the typed sequence gives a proof (`"a" in nums` is false)."""

    key: str  # "name:Set<T>": the same attribute of every program compared on one request
    elem: str  # the kind of every element: str | num | bool
    seq: Any  # Seq(String) / Seq(Int) / Seq(Bool)
    cid: Any

    @property
    def length(self):
        return z3.Length(self.seq)


SET_ELEMS = {"Set<String>": "str", "Set<Long>": "num", "Set<Bool>": "bool"}


def user_set(ctx: z3.Context, key: str, t: str, tag: str) -> UserSet:
    elem = SET_ELEMS[t]
    sort = {"str": z3.StringSort, "num": z3.IntSort, "bool": z3.BoolSort}[elem](ctx)
    return UserSet(key, elem, z3.Const(tag + ".items", z3.SeqSort(sort)), z3.Int(tag + ".cid", ctx))


@dataclass(frozen=True)
class LitObj:
    fields: tuple  # ((key, SV), ...)

    def get(self, key):
        for k, v in self.fields:
            if k == key:
                return v
        return None


@dataclass(frozen=True)
class ArgObj:
    """An object that is the value of argument path `path` (() is `context.input`)."""

    path: tuple


@dataclass(frozen=True)
class Ent:
    """An entity: static type, id (Python str or Z3 string), and which request object it
    came from ('principal', 'action', 'resource' or None for a literal): only the
    principal object carries the `label` attribute."""

    type: str
    id: object
    origin: str | None = None


@dataclass(frozen=True)
class Alt:
    kind: str  # str num bool null arr obj ent
    guard: object  # bool or z3.BoolRef
    val: Any = None  # by kind: a Python constant or Z3 term, an Ent (ent), ArgArr/LitArr/UserSet (arr), ArgObj/LitObj (obj)


@dataclass
class SV:
    """A symbolic value: alternatives with mutually exclusive guards; none holding = error."""

    alts: list = field(default_factory=list)

    @staticmethod
    def const(kind: str, val=None) -> "SV":
        return SV([Alt(kind, True, val)])

    @staticmethod
    def boolean(_ctx, defined, value) -> "SV":
        if defined is False:
            return SV([])
        return SV([Alt("bool", defined, value)])

    def defined(self, ctx):
        return OR(ctx, *(a.guard for a in self.alts))

    def of(self, kind: str):
        return [a for a in self.alts if a.kind == kind]

    def truth(self, ctx, want: bool):
        """The condition that this value is the boolean `want` (errors and non-booleans: no)."""
        return OR(ctx, *(AND(ctx, a.guard, a.val if want else NOT(ctx, a.val)) for a in self.alts if a.kind == "bool"))

    def guarded(self, ctx, g) -> "SV":
        if g is True:
            return self
        return SV([Alt(a.kind, AND(ctx, g, a.guard), a.val) for a in self.alts if AND(ctx, g, a.guard) is not False])
