"""The evaluator: IR expressions compiled once into Python closures (the hot path).

Each closure takes an `Env` and returns a value or `ERR`. This is the one concrete
implementation of mcpp's expression semantics (operators' meanings on values live in
`lang.values`); the engine decides with it, the compiler folds constants with it, and
the tests hold it against cedarpy and the Z3 encoding.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable, Iterator, Protocol, cast

from . import ir
from .atoms import FLIP, input_path
from .regex import compile_regex
from .values import ERR, Entity, cedar_eq, is_number, like_match, set_contains, type_name

Closure = Callable[["Env"], object]


class Env:
    """One request as the expression language sees it."""

    __slots__ = ("principal", "action", "resource", "input", "groups_of")

    def __init__(self, principal: Entity, action: Entity, resource: Entity, args: dict, groups_of=None):
        self.principal = principal
        self.action = action
        self.resource = resource
        self.input = args
        self.groups_of = groups_of  # action group lookup for literal Action entities

    @property
    def context(self) -> dict:
        """The `context` record, `{"input": <arguments>}`: built when an expression reads
        `context` itself, which is rare (`context.input.k` reads `input` directly)."""
        return {"input": self.input}

    def ancestors(self, e: Entity) -> frozenset:
        if e == self.principal:
            return self.principal.parents
        if e == self.action:
            return self.action.parents
        if e.type == "Action" and self.groups_of is not None:
            return self.groups_of(e.id)
        return e.parents

    def attrs(self, e: Entity) -> dict:
        """An entity's attributes as the request's entity store has them: an entity
        literal naming the principal (`Grant::"g0"` when g0 calls) is the principal,
        as in Cedar; any other literal is an entity without attributes."""
        if e == self.principal:
            return self.principal.attrs
        return e.attrs


def scope_check(scope: ir.EntityScope, var: str) -> Callable[[Env], bool] | None:
    """The principal or resource scope as a test on the request (None: `any`). Scope `in`
    is Cedar's entity `in`: reflexive, then the entity's ancestors."""
    if scope.op == "any":
        return None
    get = (lambda env: env.principal) if var == "principal" else (lambda env: env.resource)
    ent = scope.entity
    etype = scope.type
    if scope.op == "is":
        return lambda env: get(env).type == etype
    assert ent is not None
    key = (ent.type, ent.id)
    if scope.op == "eq":
        return lambda env: get(env).key == key
    if scope.op == "in":
        return lambda env: get(env).key == key or key in get(env).parents
    return lambda env: get(env).type == etype and (get(env).key == key or key in get(env).parents)  # is_in


def _const(v: object) -> Closure:
    return lambda _env: v


# ---- tracing ----------------------------------------------------------------------------
#
# `mcpp test --coverage` needs to know which values each sub-expression took. Rather than
# a second evaluator (which could drift from this one), closures compiled inside
# `tracing(tracer)` are wrapped to report every value they return. The switch is read
# once per node *at compile time*: closures compiled outside `tracing` are exactly the
# untraced ones, so the engine's hot path pays nothing for the feature.


class Tracer(Protocol):
    def outcomes(self, node: ir.Expr) -> set:
        """The set to which a traced closure adds the outcome of each evaluation of
        `node`: True, False, "error", or the type name (`values.type_name`) of any
        other value. The tracer keys it by node identity (equal nodes at different
        places are different conditions)."""


_TRACER: ContextVar[Tracer | None] = ContextVar("mcpp_evaluator_tracer", default=None)


@contextmanager
def tracing(tracer: Tracer) -> Iterator[Tracer]:
    """Compile traced closures inside this block (in this thread or task only)."""
    token = _TRACER.set(tracer)
    try:
        yield tracer
    finally:
        _TRACER.reset(token)


def outcome(v: object) -> object:
    """What a tracer records of one value: the boolean itself, or its type name."""
    return v if v is True or v is False else type_name(v)


def _traced(fn: Closure, node: ir.Expr, tracer: Tracer) -> Closure:
    add = tracer.outcomes(node).add

    def traced(env):
        v = fn(env)
        add(outcome(v))
        return v

    return traced


def compile_expr(e: ir.Expr) -> Closure:
    fn = _COMPILERS.get(type(e))
    if fn is None:  # pragma: no cover - the parser only builds known nodes
        raise TypeError(f"cannot evaluate {type(e).__name__}")
    if type(e) in (ir.SetLit, ir.RecordLit) and _is_constant(e):
        # a literal set or record is built once, not on every call (values are never mutated)
        closure = _const(fn(e)(cast(Env, None)))  # a constant reads no environment
    else:
        closure = fn(e)
    tracer = _TRACER.get()
    return closure if tracer is None else _traced(closure, e, tracer)


def _is_constant(e: ir.Expr) -> bool:
    if isinstance(e, ir.Lit):
        return True
    if isinstance(e, ir.SetLit):
        return all(_is_constant(i) for i in e.items)
    if isinstance(e, ir.RecordLit):
        return all(_is_constant(v) for _, v in e.items)
    return False


# ---- leaf closures ----------------------------------------------------------------------
#
# The closures that read an argument (`get1`, `has_arg`, `eq_arg`, `cmp_arg`,
# `contains_arg`, `like`) take what they read as parameter defaults (`def get1(env, k=k,
# ERR=ERR)`), not as free variables: a call then reads one defaults tuple, which sits
# next to the function, instead of one cell object per variable. On a policy of
# thousands of tools each call reads its own tool's closures after other tools' calls
# have pushed them out of the CPU caches, so each object less is a cache miss less
# (docs/performance.md, growth). They are only ever called with the one `env` argument.
# For the same reason the argument names and string constants they compare with are
# interned (`_shared`): one `"namespace"` object for all rules instead of one each, which
# stays in the caches, and a dictionary lookup with it finds an interned key by identity.


def _shared(v: object) -> object:
    """`v` itself, or for a string the interned equal one (see "leaf closures")."""
    return sys.intern(v) if type(v) is str else v


def _lit(e: ir.Lit) -> Closure:
    return _const(e.value)


def _var(e: ir.Var) -> Closure:
    name = e.name
    if name == "principal":
        return lambda env: env.principal
    if name == "action":
        return lambda env: env.action
    if name == "resource":
        return lambda env: env.resource
    return lambda env: env.context


def _entity(e: ir.EntityLit) -> Closure:
    return _const(Entity(e.entity.type, e.entity.id))


def _get_attr(e: ir.GetAttr) -> Closure:
    path = input_path(e)
    if path is not None:
        path = tuple(sys.intern(k) for k in path)
    if path is not None and len(path) == 1:
        (k,) = path

        def get1(env, k=k, ERR=ERR):  # parts bound as defaults (see "leaf closures" above)
            return env.input.get(k, ERR)

        get1.input_path = path  # type: ignore[attr-defined]  # see _input_key
        return get1
    if path is not None:

        def getn(env):
            v = env.input
            for k in path:
                if type(v) is not dict:
                    return ERR
                v = v.get(k, ERR)
                if v is ERR:
                    return ERR
            return v

        getn.input_path = path  # type: ignore[attr-defined]
        return getn
    obj = compile_expr(e.obj)
    attr = e.attr

    def get(env):
        v = obj(env)
        if type(v) is dict:
            return v.get(attr, ERR)
        if isinstance(v, Entity):
            return env.attrs(v).get(attr, ERR)
        return ERR

    return get


def _input_key(fn: Closure) -> str | None:
    """The argument `k` when `fn` is exactly the closure reading `context.input.k`.

    An operator whose operand is such a read performs it inline (one call less on the hot
    path: this is the shape of most conditions). The mark sits on the closure itself, not
    on the IR, so a closure wrapped by anything (a tracer, a test double) is never
    inlined and keeps being called."""
    path = getattr(fn, "input_path", None)
    return path[0] if path is not None and len(path) == 1 else None


def _has(e: ir.Has) -> Closure:
    obj = compile_expr(e.obj)
    path = e.path
    if getattr(obj, "input_path", None) == () and len(path) == 1:
        k1 = sys.intern(path[0])

        def has_arg(env, k1=k1, ERR=ERR):  # `context.input has k`
            v = env.input
            return k1 in v if type(v) is dict else ERR

        return has_arg

    def has(env):
        v = obj(env)
        for k in path:
            if type(v) is dict:
                if k not in v:
                    return False
                v = v[k]
            elif isinstance(v, Entity):
                attrs = env.attrs(v)
                if k not in attrs:
                    return False
                v = attrs[k]
            else:
                return ERR
        return True

    return has


def _like(e: ir.Like) -> Closure:
    obj = compile_expr(e.obj)
    chunks = tuple(sys.intern(c) for c in e.pattern)
    k = _input_key(obj)
    if k is not None and len(chunks) == 2:
        first, last = chunks
        least = len(first) + len(last)

        def like_arg(env, k=k, first=first, last=last, least=least, ERR=ERR):  # context.input.k like "a*b"
            v = env.input.get(k, ERR)
            if type(v) is not str:
                return ERR
            return len(v) >= least and v.startswith(first) and v.endswith(last)

        return like_arg

    def like(env, obj=obj, chunks=chunks, like_match=like_match, ERR=ERR):
        v = obj(env)
        if type(v) is not str:
            return ERR
        return like_match(v, chunks)

    return like


def _matches(e: ir.Matches) -> Closure:
    obj = compile_expr(e.obj)
    search = compile_regex(e.regex).search

    def matches(env):
        v = obj(env)
        if type(v) is not str:
            return ERR
        return search(v) is not None

    return matches


def _eq_const(left: Closure, v: object, negate: bool) -> Closure:
    v = _shared(v)
    tv = type(v)
    k = _input_key(left)
    if (tv is str or tv is bool or v is None) and k is not None:

        def eq_arg(env, k=k, tv=tv, v=v, negate=negate, ERR=ERR):
            a = env.input.get(k, ERR)
            if a is ERR:
                return ERR
            return (type(a) is tv and a == v) != negate

        return eq_arg
    if tv is str or tv is bool or v is None:

        def eq(env):
            a = left(env)
            if a is ERR:
                return ERR
            return (type(a) is tv and a == v) != negate

        return eq

    def eqg(env):
        a = left(env)
        if a is ERR:
            return ERR
        return cedar_eq(a, v) != negate

    return eqg


def _cmp_const(left: Closure, op: str, v: object) -> Closure:
    import operator

    f = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}[op]
    if not is_number(v):
        return lambda _env: ERR
    k = _input_key(left)
    if k is not None:

        def cmp_arg(env, k=k, f=f, v=v, ERR=ERR):
            a = env.input.get(k, ERR)
            t = type(a)
            if t is int or t is float:
                return f(a, v)
            return ERR

        return cmp_arg

    def cmp(env):
        a: Any = left(env)  # a number when `t` says so
        t = type(a)
        if t is int or t is float:
            return f(a, v)
        return ERR

    return cmp


def _compare(e: ir.Compare) -> Closure:
    op = e.op
    left_e, right_e = e.left, e.right
    if isinstance(left_e, ir.Lit) and not isinstance(right_e, ir.Lit):
        left_e, right_e, op = right_e, left_e, FLIP[op]
    left = compile_expr(left_e)
    if isinstance(right_e, ir.Lit):
        if op in ("==", "!="):
            return _eq_const(left, right_e.value, op == "!=")
        return _cmp_const(left, op, right_e.value)
    right = compile_expr(right_e)
    if op in ("==", "!="):
        negate = op == "!="

        def eq(env):
            a = left(env)
            if a is ERR:
                return ERR
            b = right(env)
            if b is ERR:
                return ERR
            return cedar_eq(a, b) != negate

        return eq
    import operator

    f = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}[op]

    def cmp(env):
        a = left(env)
        if a is ERR or not is_number(a):
            return ERR
        b = right(env)
        if b is ERR or not is_number(b):
            return ERR
        return f(a, b)

    return cmp


def _entity_in(a: Entity, b: Entity, env: Env) -> bool:
    return a == b or b.key in env.ancestors(a)


def _in(e: ir.In) -> Closure:
    left = compile_expr(e.left)
    if isinstance(e.right, ir.SetLit) and all(isinstance(i, ir.Lit) for i in e.right.items):
        values = [i.value for i in e.right.items if isinstance(i, ir.Lit)]  # all are
        hashable = {(type(v), v) for v in values if type(v) in (str, bool) or v is None}
        if values and len(hashable) == len(values):

            def in_strs(env):
                a = left(env)
                if a is ERR:
                    return ERR
                if isinstance(a, Entity):
                    return ERR  # entity `in` a set of non-entities is a type error in Cedar
                return (type(a), a) in hashable if type(a) in (str, bool) or a is None else False

            return in_strs
    right = compile_expr(e.right)

    def in_(env):
        a = left(env)
        if a is ERR:
            return ERR
        b = right(env)
        if b is ERR:
            return ERR
        if isinstance(a, Entity):
            if isinstance(b, Entity):
                return _entity_in(a, b, env)
            if type(b) is list:
                for x in b:
                    if not isinstance(x, Entity):
                        return ERR
                return any(_entity_in(a, x, env) for x in b)
            return ERR
        if type(b) is list:  # mcpp extension: value membership in a set
            return set_contains(b, a)
        return ERR

    return in_


def _is(e: ir.Is) -> Closure:
    obj = compile_expr(e.obj)
    etype = e.type
    in_ = compile_expr(e.in_) if e.in_ is not None else None

    def is_(env):
        v = obj(env)
        if not isinstance(v, Entity):
            return ERR
        if v.type != etype:
            return False
        if in_ is None:
            return True
        b = in_(env)
        if isinstance(b, Entity):
            return _entity_in(v, b, env)
        if type(b) is list and all(isinstance(x, Entity) for x in b):
            return any(_entity_in(v, x, env) for x in b)
        return ERR

    return is_


def _junction(e: ir.And | ir.Or) -> Closure:
    """`&&` and `||`, Cedar's way: the left operand must be a boolean; if it is the
    short-circuit value (false for `&&`, true for `||`) that is the answer, else the
    right operand, which must be a boolean too."""
    a, b = compile_expr(e.left), compile_expr(e.right)
    stop = isinstance(e, ir.Or)
    go_on = not stop

    def junction(env):
        x = a(env)
        if x is stop:
            return stop
        if x is not go_on:
            return ERR
        y = b(env)
        return y if type(y) is bool else ERR

    return junction


def _not(e: ir.Not) -> Closure:
    a = compile_expr(e.expr)

    def not_(env):
        x = a(env)
        if x is True:
            return False
        if x is False:
            return True
        return ERR

    return not_


def _neg(e: ir.Neg) -> Closure:
    a = compile_expr(e.expr)

    def neg(env):
        x = a(env)
        return -x if is_number(x) else ERR

    return neg


def _if(e: ir.If) -> Closure:
    c, t, f = compile_expr(e.cond), compile_expr(e.then), compile_expr(e.else_)

    def if_(env):
        x = c(env)
        if x is True:
            return t(env)
        if x is False:
            return f(env)
        return ERR

    return if_


def _set(e: ir.SetLit) -> Closure:
    items = [compile_expr(i) for i in e.items]

    def set_(env):
        out = []
        for it in items:
            v = it(env)
            if v is ERR:
                return ERR
            out.append(v)
        return out

    return set_


def _record(e: ir.RecordLit) -> Closure:
    items = [(k, compile_expr(v)) for k, v in e.items]

    def record(env):
        out = {}
        for k, it in items:
            v = it(env)
            if v is ERR:
                return ERR
            out[k] = v
        return out

    return record


def _call(e: ir.Call) -> Closure:
    obj = compile_expr(e.obj)
    m = e.method
    if m == "isEmpty":

        def is_empty(env):
            s = obj(env)
            return len(s) == 0 if type(s) is list else ERR

        return is_empty
    arg = compile_expr(e.args[0])
    if m == "contains" and isinstance(e.obj, ir.SetLit) and _is_constant(e.obj):
        values = ([i.value for i in e.obj.items if isinstance(i, ir.Lit)]
                  if all(isinstance(i, ir.Lit) for i in e.obj.items) else None)
        if values and all(type(v) in (str, bool) or v is None for v in values):
            values = [_shared(v) for v in values]
            members = {(type(v), v) for v in values}
            k = _input_key(arg)
            strs = frozenset(v for v in values if type(v) is str)
            if k is not None and len(strs) == len(members):

                def contains_str(env, k=k, strs=strs, ERR=ERR):  # ["a", "b"].contains(context.input.k)
                    v = env.input.get(k, ERR)
                    if type(v) is str:
                        return v in strs
                    return ERR if v is ERR else False  # only strings are members

                return contains_str
            if k is not None:

                def contains_arg(env, k=k, strs=strs, members=members, ERR=ERR):  # ["a", "b"].contains(context.input.k)
                    v = env.input.get(k, ERR)
                    t = type(v)
                    if t is str:
                        return v in strs
                    if v is ERR:
                        return ERR
                    return (t, v) in members if (t is bool or v is None) else False

                return contains_arg

            def contains_const(env):  # ["a", "b"].contains(x): a hash lookup
                v = arg(env)
                if v is ERR:
                    return ERR
                t = type(v)
                return (t, v) in members if (t is str or t is bool or v is None) else False

            return contains_const
    if m == "contains":

        def contains(env):
            s = obj(env)
            if s is ERR:
                return ERR
            v = arg(env)
            if v is ERR:
                return ERR
            if type(s) is list:
                return set_contains(s, v)
            if type(s) is str and type(v) is str:  # mcpp extension: substring
                return v in s
            return ERR

        return contains
    want_all = m == "containsAll"

    def contains_set(env):
        s = obj(env)
        if type(s) is not list:
            return ERR
        v = arg(env)
        if type(v) is not list:
            return ERR
        if want_all:
            return all(set_contains(s, x) for x in v)
        return any(set_contains(s, x) for x in v)

    return contains_set


def _error(_e: ir.Error) -> Closure:
    return _const(ERR)


_COMPILERS: dict[type, Callable[[Any], Closure]] = {
    ir.Error: _error,
    ir.Lit: _lit,
    ir.Var: _var,
    ir.EntityLit: _entity,
    ir.GetAttr: _get_attr,
    ir.Has: _has,
    ir.Like: _like,
    ir.Matches: _matches,
    ir.Compare: _compare,
    ir.In: _in,
    ir.Is: _is,
    ir.And: _junction,
    ir.Or: _junction,
    ir.Not: _not,
    ir.Neg: _neg,
    ir.If: _if,
    ir.SetLit: _set,
    ir.RecordLit: _record,
    ir.Call: _call,
}
