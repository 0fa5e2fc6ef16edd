"""IR → Z3: the symbolic request, and the evaluator's semantics over it.

One `Request` is shared by every formula of a query (so two programs can be compared
over the same call). The tool is never symbolic: queries are split per tool (each tool
a program names, plus a fresh name standing for every tool it does not name, see
`other_tool`). Per (program, tool) a `ProgramEncoder` turns expressions into symbolic
values (`sym.SV`: a guarded union of typed alternatives; no alternative holding is an
evaluation error), exactly as `mcpp.lang.evaluator` evaluates them: short-circuit
`&&`/`||`/`if`, `has` per RFC 62, `==` across types is false, arrays as sets, `in` on
entities and on sets, substring `contains`, `like`, RE2 search.

What cannot be encoded exactly is *over-approximated* by a fresh unconstrained value
(`havoc`), with a reason. An over-approximation keeps every real behaviour, so an UNSAT
answer (a proof) stays sound; a SAT answer is only reported after the witness replays
through the real engine, otherwise the check is UNKNOWN and the reasons are shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import z3

from mcpp.lang import ir
from mcpp.lang.atoms import input_path
from mcpp.lang.plan import CounterKey, mentioned_tools
from mcpp.lang.values import like_match
from mcpp.lang.program import Program

from . import regex as rx
from .deadline import Deadline
from .sym import (
    AND, IMPLIES, NOT, OR, SUM, Alt, ArgArr, ArgObj, Ent, LitArr, LitObj, PathVar, Sorts, SV, UserSet, re_union, real_val,
    string_val, user_set, z,
)


# ---- the symbolic request ------------------------------------------------------------------


@dataclass(frozen=True)
class FixedGrant:
    id: str
    label: str = ""
    groups: frozenset = frozenset()


@dataclass(frozen=True)
class FixedUser:
    """One user as the caller (`tools/list` for this user): its id, its attributes as the
    engine sees them (`lang.identity.user_attributes`: declared, typed; sorted (name,
    value) pairs, sets as tuples) and its groups. `label` is empty: a user has none."""

    id: str
    attrs: tuple = ()
    groups: frozenset = frozenset()
    label: str = ""

    @classmethod
    def of(cls, program, user_id: str, attrs, groups) -> "FixedUser":
        """The user as `program`'s engine would see it; PrincipalError when it does not fit
        the policy's `entity User` declaration (the engine then denies every call)."""
        from mcpp.lang.identity import check_user_groups, user_attributes, user_decl

        decl = user_decl(program)
        check_user_groups(decl, groups)
        typed = user_attributes(decl, attrs)
        return cls(user_id, tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in typed.items())),
                   frozenset(groups))

    def attr(self, name: str):
        for k, v in self.attrs:
            if k == name:
                return v
        return None


class Request:
    """The call's free variables: grant id/label/groups, server, argument paths, counters.

    `grant`/`server` fix those parts to constants (translation validation under
    `--grant`, visibility for one grant)."""

    def __init__(self, ctx: z3.Context, sorts: Sorts, grant: FixedGrant | FixedUser | None = None, server: str | None = None,
                 schemas: dict | None = None, budget_ms: int | None = None, deadline: Deadline | None = None):
        self.ctx = ctx
        self.S = sorts
        self.grant = grant
        self.server = server
        self.budget_ms = budget_ms  # the analysis' per-query timeout: also bounds each regex translation
        self.deadline = deadline  # the run's overall budget (analyzer/deadline.py): bounds them too
        self.widest_class = 0  # the widest character class among the regexes encoded over this request
        self.gid = string_val(grant.id, ctx) if grant else z3.String("grant.id", ctx)
        self.label = string_val(grant.label, ctx) if grant else z3.String("grant.label", ctx)
        self.sid = string_val(server, ctx) if server is not None else z3.String("server", ctx)
        self.groups: dict[str, object] = {}
        self.paths: dict[tuple, PathVar] = {}
        self.children: dict[tuple, set] = {}
        self.counters: dict[CounterKey, z3.ArithRef] = {}
        self.counter_max: dict[CounterKey, Fraction] = {}  # the plan's bound on each count
        self.objeq: list[tuple[z3.BoolRef, tuple, dict]] = []  # (flag, path, literal fields)
        self.schemas = schemas  # typed calls: tool → SchemaAssumption (None: untyped analysis)
        self.assumptions: list = []
        self.tool: str | None = None
        self.user: z3.BoolRef | None = None  # "the caller is a user" (see `ProgramEncoder.caller`)
        self.user_attrs: dict[str, tuple] = {}  # "name:type" → (present, SV) of a symbolic user's attribute
        self.user_vars: list = []  # every variable of a symbolic user (kind, attributes)
        self.user_typing: list = []  # what every real user's attributes satisfy (Long: a 64-bit integer)
        self.user_in_groups: z3.BoolRef | None = None  # the user is in some group (any, named or not)
        self.users_possible = False  # some program compared on this request names users (`share_users`)
        self._constraints: tuple | None = None  # (shape, list): see `constraints`
        self.solver: tuple | None = None  # solve.Session's incremental solver over this request (see Session.check)
        self.preferences: tuple | None = None  # solve.Session._prefer's readability preferences, per shape
        self.path(())

    @property
    def isolate(self) -> bool:
        """Checks over this request must run where they can be killed (solve.bounded)."""
        return self.widest_class > rx.WIDE_CLASS

    def typed(self, tool: str) -> None:
        """Fix the tool this request calls; with a catalog, assume the gateway's schema
        check passed (analyzer/typed.py) — and a tool the catalog lacks is refused, so no
        call to it reaches the policy."""
        if self.tool == tool:
            return
        assert self.tool is None, f"one request calls one tool ({self.tool!r}, not {tool!r})"
        self.tool = tool
        if self.schemas is not None:
            self.assumptions.append(self.schemas.get(tool, False))

    # -- variables -------------------------------------------------------------------------
    def member(self, group: str):
        if self.grant is not None:
            return group in self.grant.groups
        v = self.groups.get(group)
        if v is None:
            v = self.groups[group] = z3.Bool(f"group:{group}", self.ctx)
        return v

    def path(self, p: tuple) -> PathVar:
        v = self.paths.get(p)
        if v is None:
            if p:
                self.path(p[:-1])
                self.children.setdefault(p[:-1], set()).add(p[-1])
            v = self.paths[p] = PathVar(self.S, "args" + "".join(f"[{k!r}]" for k in p))
        return v

    def counter(self, key: tuple[str, str, str]) -> z3.ArithRef:
        key = CounterKey(*key)
        v = self.counters.get(key)
        if v is None:
            v = self.counters[key] = z3.Real(f"counter:{key.counter}/{key.scope}/{key.window}", self.ctx)
        return v

    # -- well-formedness -------------------------------------------------------------------
    def constraints(self) -> list:
        """What every real call satisfies: `arguments` is an object, a key below a
        non-object is absent, counters are non-negative, and the definitions of
        object-literal equalities over the keys tracked *now*.

        The list depends only on what the request tracks (`shape`), so it is built once
        per shape: a lint asks thousands of queries over a few hundred requests."""
        for a in self.assumptions:
            if a is not False:
                a.prepare(self)
        shape = self.shape()
        if self._constraints is not None and self._constraints[0] == shape:
            return list(self._constraints[1])
        out = [self.paths[()].is_("obj")]
        for a in self.assumptions:
            out += [z3.BoolVal(False, self.ctx)] if a is False else a.constraints(self)
        for p, v in self.paths.items():
            if p:
                out.append(OR(self.ctx, self.paths[p[:-1]].is_("obj"), v.is_("missing")))
        for key, c in self.counters.items():
            out.append(c >= 0)
            if key in self.counter_max:  # a reservation never takes a counter past a max that counts it
                out.append(c <= real_val(self.counter_max[key], self.ctx))
        for flag, p, fields in self.objeq:
            out.append(flag == self._objeq_def(p, fields))
        out += self.principal_constraints()
        self._constraints = (shape, out)
        return list(out)

    def shape(self) -> tuple:
        """What `constraints()` is a function of: the paths (children are only ever added
        with a path), counters and their bounds, object-literal equalities, assumptions and
        what the caller-as-user constraints read (attributes, typing, group variables), all
        tracked so far and only ever added to. Equal shapes, equal constraints."""
        return (len(self.paths), len(self.counters), tuple(self.counter_max.items()), len(self.objeq),
                len(self.assumptions), len(self.user_typing), len(self.user_attrs), len(self.groups),
                self.user is not None, self.user_in_groups is not None)

    # -- the caller as a user ------------------------------------------------------------------
    @property
    def fixed_user(self) -> bool:
        return isinstance(self.grant, FixedUser)

    def user_var(self) -> z3.BoolRef:
        """`principal.is_user`: shared by every program compared on this request."""
        if self.user is None:
            self.user = z3.Bool("principal.is_user", self.ctx)
            self.user_vars.append(self.user)
        return self.user

    def in_groups(self) -> z3.BoolRef:
        """The caller, a user, is in some group, named by a rule or not (an `entity User`
        without `in [Group]` refuses such a user). Meaningless for a grant."""
        if self.user_in_groups is None:
            self.user_in_groups = z3.Bool("principal.in_some_group", self.ctx)
            self.user_vars.append(self.user_in_groups)
        return self.user_in_groups

    def principal_constraints(self) -> list:
        """What every real caller satisfies: a user's id is not empty, its Long attributes
        are 64-bit integers, a user has at most one value per attribute name (declarations compared in one query
        may type a name differently), and membership in a named group is membership in some."""
        out = list(self.user_typing)
        by_name: dict[str, list] = {}
        for key, (present, _) in self.user_attrs.items():
            by_name.setdefault(key.split(":", 1)[0], []).append(present)
        for name, ps in by_name.items():
            ps = [p for p in ps if p is not True]
            if len(ps) > 1:
                out.append(z3.AtMost(*ps, 1))
        if self.user is not None and self.grant is None:
            # a user's id is the access token's subject, never empty (the gateway refuses a
            # token without a usable `sub`): no counterexample may need an empty one
            out.append(z3.Implies(self.user, z3.Length(self.gid) > 0))
        if self.user_in_groups is not None and self.groups and self.user is not None:
            # a user in a named group is in some group (a grant's groups say nothing of it)
            out.append(z3.Implies(z(self.ctx, AND(self.ctx, self.user, OR(self.ctx, *self.groups.values()))), self.user_in_groups))
        return out

    def share_users(self, *programs: Program) -> None:
        """Programs compared on one request (diff, translation validation) see the same
        callers: when one of them names users, a user may call every one of them."""
        self.users_possible = self.users_possible or any(getattr(p, "identity_aware", False) for p in programs)

    def caller_is_grant(self):
        """The constraint that the caller is a grant (a recorded grant call, say)."""
        if self.fixed_user:
            return False
        return True if self.user is None else z3.Not(self.user)

    def caller_is_user(self):
        """The constraint that the caller is a user (a test file's user caller, say). Only
        meaningful where the programs compared on this request may be called by users."""
        if isinstance(self.grant, FixedGrant):
            return False
        return True if self.fixed_user else self.user_var()

    def _objeq_def(self, p, fields):
        v = self.paths[p]
        parts = [v.is_("obj"), z3.Not(v.extra)]
        for k in self.children.get(p, ()):
            if k not in fields:
                parts.append(self.paths[p + (k,)].is_("missing"))
        for k, cond in fields.items():
            parts.append(cond)
        return z(self.ctx, AND(self.ctx, *parts))


def other_tool(*programs: Program) -> str:
    """A tool name no program mentions. Every such tool is decided alike (no scope names
    it, no group holds it, every `action == Action::"x"` is false for it), so this one
    name stands, exactly, for all tools the policies do not name."""
    taken: set[str] = set()
    for p in programs:
        taken |= mentioned_tools(p)
    name, n = "delete_everything", 1
    while name in taken:
        n += 1
        name = f"delete_everything_{n}"
    return name


def query_tools(*programs: Program) -> tuple[list[str], str]:
    """(every mentioned name in a stable order, the stand-in for every other tool).

    Action group names are included: a tool may share a group's name, and such a tool
    is `in` the group (Cedar's `in` is reflexive), so it is not decided like the stand-in."""
    named: set[str] = set()
    for p in programs:
        named |= mentioned_tools(p)
    return sorted(named), other_tool(*programs)


# ---- expressions -----------------------------------------------------------------------------


class ProgramEncoder:
    """Symbolic evaluation of one program's expressions for one tool over a Request."""

    def __init__(self, req: Request, program: Program, tool: str):
        self.req = req
        self.ctx = req.ctx
        self.S = req.S
        self.program = program
        self.tool = tool
        self._memo: dict[int, tuple[object, SV]] = {}
        self._applies: dict[int, tuple[object, object]] = {}  # statement id → (statement, formula)
        self._havocs = 0
        self.havoc_vars: list = []  # fresh booleans (not functions of the call)
        self.reasons: set[str] = set()  # why a formula is an over-approximation
        # whether the caller may be a user (see `caller`): a policy that names users, or a fixed user
        self.users = req.fixed_user or (
            req.grant is None and (req.users_possible or bool(getattr(program, "identity_aware", False))))

    # -- helpers ---------------------------------------------------------------------------
    def havoc_bool(self, reason: str) -> z3.BoolRef:
        self._havocs += 1
        self.reasons.add(reason)
        v = z3.Bool(f"havoc{id(self)}_{self._havocs}", self.ctx)
        self.havoc_vars.append(v)
        return v

    def unknown_test(self, kind: str, pattern, s, reason: str):
        """An unmodelled string test: an uninterpreted predicate, one per pattern and context,
        so the same test on the same string agrees with itself everywhere (in a source
        policy and in its compiled form alike) while its outcome stays unconstrained."""
        self.reasons.add(reason)
        name = f"{kind}:{pattern!r}"
        f = self.S.cache.get(name)
        if f is None:
            f = self.S.cache[name] = z3.Function(name, z3.StringSort(self.ctx), z3.BoolSort(self.ctx))
        return f(s)

    def regex(self):
        tr = self.S.cache.get("regex")
        if tr is None:
            tr = self.S.cache["regex"] = rx.Z3Regex(self.ctx)
        return tr

    def str_term(self, v):
        return v if isinstance(v, z3.ExprRef) else string_val(v, self.ctx)

    def num_term(self, v):
        return v if isinstance(v, z3.ExprRef) else real_val(v, self.ctx)

    def bool_term(self, v):
        return v if isinstance(v, z3.ExprRef) else z3.BoolVal(v, self.ctx)

    # -- entry points ----------------------------------------------------------------------
    def expr(self, e) -> SV:
        hit = self._memo.get(id(e))
        if hit is not None and hit[0] is e:
            return hit[1]
        sv = self._expr(e)
        self._memo[id(e)] = (e, sv)
        return sv

    def clause_ok(self, clause: ir.Clause):
        return self.expr(clause.expr).truth(self.ctx, clause.kind == "when")

    def scope_ok(self, scope: ir.Scope):
        req = self.req
        ctx = self.ctx
        p = True if scope.principal.op == "any" else OR(
            ctx, *(AND(ctx, g, self._entity_scope(scope.principal, ent)) for g, ent in self.caller()))
        r = self._entity_scope(scope.resource, Ent("Server", req.sid, "resource"))
        return AND(ctx, p, r)

    # -- the caller: a grant or a user --------------------------------------------------------
    # A policy that declares `entity User` or names the type User (`Program.identity_aware`)
    # may be called by users (docs/language.md §1.1). The caller is then a grant or a user
    # as a request variable says (`principal.is_user`), with the same id and group
    # variables; a user's declared attributes are variables of their declared types
    # (present or not: whether a required one is missing decides only whether the user
    # fits the declaration, see `fits`). A witness names the user and its attributes and
    # replays through the engine as that `User`. With a fixed user (`FixedUser`, tools/list
    # for one caller) the principal is that user, attributes and all, as constants.
    # A policy that never names users is analysed for grant callers, exactly as before.

    def caller(self) -> list[tuple[object, Ent]]:
        """The principal's alternatives: (guard, entity)."""
        gid = self.req.gid
        if not self.users:
            return [(True, Ent("Grant", gid, "principal"))]
        if self.req.fixed_user:
            return [(True, Ent("User", gid, "principal"))]
        u = self.user_kind()
        return [(NOT(self.ctx, u), Ent("Grant", gid, "principal")), (u, Ent("User", gid, "principal"))]

    def user_kind(self):
        """The caller is a user (a request variable, shared by every program compared on it)."""
        if not self.users:
            return False
        if self.req.fixed_user:
            return True
        return self.req.user_var()

    def user_attr(self, name: str):
        """(present, SV) of a user's declared attribute `name`, or None when not declared:
        with a fixed user, its value; else a variable of the declared type, the same for
        every program on this request that declares `name` with this type. A `Set<…>` is a
        sequence of its element type (`sym.UserSet`): no element of another type, and a
        Long element within 64 bits, exactly the sets real users carry."""
        decl = self.program.user_decl.attr(name) if self.program.user_decl is not None else None
        if decl is None:
            return None
        if isinstance(self.req.grant, FixedUser):  # fixed_user
            v = self.req.grant.attr(name)
            if v is None:
                return (False, SV([]))
            if isinstance(v, tuple):
                return (True, SV([Alt("arr", True, LitArr(tuple(self.lit(x) for x in v)))]))
            if isinstance(v, bool):
                return (True, SV.const("bool", v))
            if isinstance(v, int):
                return (True, SV.const("num", Fraction(v)))
            return (True, self.lit(v))
        t = decl.type
        key = f"{name}:{t}"
        hit = self.req.user_attrs.get(key)
        if hit is None:
            ctx = self.ctx
            tag = f"user[{name!r}:{t}]"
            present = z3.Bool(tag + ".present", ctx)
            self.req.user_vars.append(present)
            if t == "String":
                var = z3.String(tag, ctx)
                alt = Alt("str", True, var)
                self.req.user_vars.append(var)
            elif t == "Long":
                var = z3.Real(tag, ctx)
                alt = Alt("num", True, var)
                self.req.user_vars.append(var)
                lo, hi = real_val(-(2**63), ctx), real_val(2**63 - 1, ctx)
                self.req.user_typing += [z3.IsInt(var), var >= lo, var <= hi]
            elif t == "Bool":
                var = z3.Bool(tag, ctx)
                alt = Alt("bool", True, var)
                self.req.user_vars.append(var)
            else:  # Set<…>: a sequence of the element type (sym.UserSet)
                us = user_set(ctx, key, t, tag)
                alt = Alt("arr", True, us)
                self.req.user_vars += [us.seq, us.cid]
                if us.elem == "num":
                    self.req.user_typing.append(_longs(ctx, us))
            hit = self.req.user_attrs[key] = (present, SV([alt]))
        return hit

    def fits(self):
        """The caller fits this program's `entity User` (else the engine denies the call,
        rule `/principal`): every required attribute present, no group unless `in [Group]`.
        A grant always fits."""
        if not self.users or self.req.fixed_user:
            return True  # a fixed user was checked when it was made (FixedUser.of)
        from mcpp.lang.identity import user_decl

        decl = user_decl(self.program)
        parts = [self.user_attr(a.name)[0] for a in decl.attrs if not a.optional]
        if "Group" not in decl.parents:
            parts.append(z3.Not(self.req.in_groups()))
        return IMPLIES(self.ctx, self.user_kind(), AND(self.ctx, *parts))

    def _kind(self, etype: str):
        """The caller is of type `etype`."""
        if etype == "Grant":
            return NOT(self.ctx, self.user_kind()) if self.users else True
        if etype == "User":
            return self.user_kind()
        return False

    def applies(self, stmt):
        """Scope matches, every `when` is true, every `unless` is false (errors: no).

        Built once per statement (the decision and every lint ask it: building the
        terms through the bindings costs more than most checks)."""
        hit = self._applies.get(id(stmt))
        if hit is not None and hit[0] is stmt:
            return hit[1]
        f = AND(self.ctx, self.scope_ok(stmt.scope), *(self.clause_ok(c) for c in stmt.clauses))
        self._applies[id(stmt)] = (stmt, f)
        return f

    def _entity_scope(self, s: ir.EntityScope, ent: Ent):
        if s.op == "any":
            return True
        if s.op == "is":
            return ent.type == s.type
        assert s.entity is not None  # `==` and `in` name one
        target = Ent(s.entity.type, s.entity.id)
        if s.op == "eq":
            return self.ent_eq(ent, target)
        inside = self.entity_in(ent, target)
        return inside if s.op == "in" else AND(self.ctx, ent.type == s.type, inside)

    # -- entities --------------------------------------------------------------------------
    def ent_eq(self, a: Ent, b: Ent):
        if a.type != b.type:
            return False
        return self.id_eq(a.id, b.id)

    def id_eq(self, x, y):
        if x is y:
            return True
        if isinstance(x, str) and isinstance(y, str):
            return x == y
        return self.str_term(x) == self.str_term(y)

    def entity_in(self, a: Ent, b: Ent):
        ctx = self.ctx
        same = self.ent_eq(a, b)
        anc: object = False
        if a.type in ("Grant", "User") and b.type == "Group":
            is_principal = self.is_principal(a)
            if isinstance(b.id, str):
                anc = AND(ctx, is_principal, self.req.member(b.id))
            else:
                anc = AND(ctx, is_principal, OR(ctx, *(AND(ctx, self.id_eq(b.id, g), self.req.member(g)) for g in self.req.groups)))
        elif a.type == "Action" and b.type == "Action":
            groups = self.program.groups
            if isinstance(a.id, str) and isinstance(b.id, str):
                anc = b.id in groups and a.id in groups[b.id]
            else:
                anc = OR(ctx, *(
                    AND(ctx, self.id_eq(b.id, g), OR(ctx, *(self.id_eq(a.id, t) for t in members)))
                    for g, members in groups.items()
                ))
        return OR(ctx, same, anc)

    # -- the cases ---------------------------------------------------------------------------
    def _expr(self, e) -> SV:
        ctx = self.ctx
        if isinstance(e, ir.Lit):
            return self.lit(e.value)
        if isinstance(e, ir.Error):
            return SV([])  # no alternative holds: an error
        if isinstance(e, ir.Var):
            req = self.req
            if e.name == "principal":
                return SV([Alt("ent", g, ent) for g, ent in self.caller()])
            if e.name == "action":
                return SV.const("ent", Ent("Action", self.tool, "action"))
            if e.name == "resource":
                return SV.const("ent", Ent("Server", req.sid, "resource"))
            return SV.const("obj", LitObj((("input", SV.const("obj", ArgObj(()))),)))
        if isinstance(e, ir.EntityLit):
            return SV.const("ent", Ent(e.entity.type, e.entity.id))
        if isinstance(e, ir.GetAttr):
            path = input_path(e)
            if path is not None:
                return self.path_value(path)
            return self.get_attr(self.expr(e.obj), e.attr)
        if isinstance(e, ir.Has):
            return self.has(self.expr(e.obj), e.path)
        if isinstance(e, ir.Like):
            return self.string_test(self.expr(e.obj), lambda s: self._like(s, e.pattern), lambda s: like_match(s, e.pattern))
        if isinstance(e, ir.Matches):
            return self.string_test(self.expr(e.obj), lambda s: self._matches(s, e.regex), lambda s: _matches_py(s, e.regex))
        if isinstance(e, ir.Compare):
            return self.compare(e.op, self.expr(e.left), self.expr(e.right))
        if isinstance(e, ir.In):
            return self.in_(self.expr(e.left), self.expr(e.right))
        if isinstance(e, ir.Is):
            return self.is_(self.expr(e.obj), e.type, None if e.in_ is None else self.expr(e.in_))
        if isinstance(e, ir.And) or isinstance(e, ir.Or):
            a, b = self.expr(e.left), self.expr(e.right)
            stop = isinstance(e, ir.Or)  # the left value that short-circuits
            ga = OR(ctx, *(x.guard for x in a.of("bool")))
            va = OR(ctx, *(AND(ctx, x.guard, x.val) for x in a.of("bool")))
            gb = OR(ctx, *(x.guard for x in b.of("bool")))
            vb = OR(ctx, *(AND(ctx, x.guard, x.val) for x in b.of("bool")))
            if stop:  # a || b
                defined = AND(ctx, ga, OR(ctx, va, gb))
                value = OR(ctx, va, vb)
            else:  # a && b
                defined = AND(ctx, ga, OR(ctx, NOT(ctx, va), gb))
                value = AND(ctx, va, vb)
            return SV.boolean(ctx, defined, value)
        if isinstance(e, ir.Not):
            a = self.expr(e.expr)
            return SV([Alt("bool", x.guard, NOT(ctx, x.val)) for x in a.of("bool")])
        if isinstance(e, ir.Neg):
            a = self.expr(e.expr)
            return SV([Alt("num", x.guard, -x.val if not isinstance(x.val, z3.ExprRef) else -x.val) for x in a.of("num")])
        if isinstance(e, ir.If):
            c = self.expr(e.cond)
            t, f = self.expr(e.then), self.expr(e.else_)
            ct, cf = c.truth(ctx, True), c.truth(ctx, False)
            return SV(t.guarded(ctx, ct).alts + f.guarded(ctx, cf).alts)
        if isinstance(e, ir.SetLit):
            items = tuple(self.expr(i) for i in e.items)
            defined = AND(ctx, *(i.defined(ctx) for i in items))
            return SV.boolean(ctx, False, None) if defined is False else SV([Alt("arr", defined, LitArr(items))])
        if isinstance(e, ir.RecordLit):
            fields = tuple((k, self.expr(v)) for k, v in e.items)
            if len({k for k, _ in fields}) != len(fields):  # duplicate keys: the last wins in the evaluator
                d = {}
                for k, v in fields:
                    d[k] = v
                fields = tuple(d.items())
            defined = AND(ctx, *(v.defined(ctx) for _, v in fields))
            return SV([]) if defined is False else SV([Alt("obj", defined, LitObj(fields))])
        if isinstance(e, ir.Call):
            return self.call(e)
        raise rx.Unsupported(f"expression {type(e).__name__}")  # pragma: no cover

    # -- values ------------------------------------------------------------------------------
    def lit(self, v) -> SV:
        if isinstance(v, bool):
            return SV.const("bool", v)
        if v is None:
            return SV.const("null")
        if isinstance(v, (int, float)):
            if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
                return SV([])  # cannot come from JSON; never equal to anything
            return SV.const("num", Fraction(v))
        if isinstance(v, str):
            try:
                string_val(v, self.ctx)
            except rx.Unsupported as u:
                self.reasons.add(u.reason)
                return SV.const("str", z3.FreshConst(z3.StringSort(self.ctx), "havoc_str"))
            return SV.const("str", v)
        return SV([])  # e.g. the compiler's error marker: always an error

    def path_value(self, path: tuple) -> SV:
        v = self.req.path(path)
        if path == ():
            return SV.const("obj", ArgObj(()))
        return SV([
            Alt("str", v.is_("str"), v.s),
            Alt("num", v.is_("num"), v.n),
            Alt("bool", v.is_("bool"), v.b),
            Alt("null", v.is_("null")),
            Alt("arr", v.is_("arr"), ArgArr(v, path)),
            Alt("obj", v.is_("obj"), ArgObj(path)),
        ])

    def get_attr(self, obj: SV, attr: str) -> SV:
        ctx = self.ctx
        out = []
        for a in obj.alts:
            if a.kind == "obj" and isinstance(a.val, ArgObj):
                out += self.path_value(a.val.path + (attr,)).guarded(ctx, a.guard).alts
            elif a.kind == "obj":
                f = a.val.get(attr)
                if f is not None:
                    out += f.guarded(ctx, a.guard).alts
            elif a.kind == "ent" and a.val.type == "Grant" and attr == "label":
                # the principal's attributes, on the principal and on any literal naming it
                out.append(Alt("str", AND(ctx, a.guard, self.is_principal(a.val)), self.req.label))
            elif a.kind == "ent" and a.val.type == "User" and self.users:
                hit = self.user_attr(attr)
                if hit is not None:
                    present, value = hit
                    out += value.guarded(ctx, AND(ctx, a.guard, self.is_principal(a.val), present)).alts
        return SV(out)

    def is_principal(self, ent: Ent):
        """The entity is the caller (Cedar looks entity literals up in the store)."""
        if ent.origin == "principal":
            return True
        return AND(self.ctx, self._kind(ent.type), self.id_eq(ent.id, self.req.gid))

    def has(self, obj: SV, keys: tuple) -> SV:
        """`e has a.b.c` (RFC 62): false at the first absent key, an error at a non-record."""
        ctx = self.ctx
        defined: list = []
        value: list = []
        for a in obj.alts:
            d, v = self._has1(a, keys)
            defined.append(AND(ctx, a.guard, d))
            value.append(AND(ctx, a.guard, v))
        return SV.boolean(ctx, OR(ctx, *defined), OR(ctx, *value))

    def _has1(self, a: Alt, keys: tuple):
        """(defined, value) of `has keys` on one alternative, given its guard."""
        ctx = self.ctx
        if a.kind == "obj" and isinstance(a.val, ArgObj):
            child = self.req.path(a.val.path + (keys[0],))
            if len(keys) == 1:
                return True, NOT(ctx, child.is_("missing"))
            rest = self.has(self.path_value(a.val.path + (keys[0],)), keys[1:])
            rd = rest.defined(ctx)
            rv = rest.truth(ctx, True)
            return OR(ctx, child.is_("missing"), rd), AND(ctx, NOT(ctx, child.is_("missing")), rv)
        if a.kind == "obj":
            f = a.val.get(keys[0])
            if f is None:
                return True, False
            if len(keys) == 1:
                return True, True
            rest = self.has(f, keys[1:])
            return rest.defined(ctx), rest.truth(ctx, True)
        if a.kind == "ent":
            if a.val.type == "Grant" and keys[0] == "label":
                mine = self.is_principal(a.val)
                if len(keys) == 1:
                    return True, mine
                return NOT(ctx, mine), False  # `label` is a string: `has` below it errors
            hit = self.user_attr(keys[0]) if a.val.type == "User" and self.users else None
            if hit is not None:  # a user's declared attribute (identity phase 1)
                mine = AND(ctx, self.is_principal(a.val), hit[0])
                if len(keys) == 1:
                    return True, mine
                return NOT(ctx, mine), False  # a declared attribute is no record: `has` below it errors
            return True, False
        return False, False

    def string_test(self, obj: SV, sym, concrete) -> SV:
        ctx = self.ctx
        defined, value = [], []
        for a in obj.of("str"):
            defined.append(a.guard)
            if isinstance(a.val, str):
                value.append(AND(ctx, a.guard, concrete(a.val)))
            else:
                value.append(AND(ctx, a.guard, sym(a.val)))
        return SV.boolean(ctx, OR(ctx, *defined), OR(ctx, *value))

    def _in_language(self, s, ast):
        self.req.widest_class = max(self.req.widest_class, rx.widest_class(ast))
        return z3.InRe(s, self.regex()(ast))

    def _like(self, s, pattern):
        try:
            return self._in_language(s, rx.like_ast(pattern))
        except rx.Unsupported as u:
            return self.unknown_test("like", pattern, s, f"a `like` pattern with {u.reason}")

    def _matches(self, s, pattern):
        try:
            with rx.time_limit(self.req.budget_ms, self.req.deadline):
                return self._in_language(s, rx.search_ast(pattern))
        except rx.OutOfTime as e:
            deadline = self.req.deadline
            why = f"was stopped: {e.reason}" if deadline is not None and e.reason == deadline.reason else (
                f"ran past the {self.req.budget_ms} ms timeout")
            return self.unknown_test("matches", pattern, s, f"the translation of regex {pattern!r} {why}")
        except rx.Unsupported as u:
            return self.unknown_test("matches", pattern, s, f"regex {pattern!r} uses {u.reason}, which the analyzer does not model")

    # -- comparisons -------------------------------------------------------------------------
    def compare(self, op: str, a: SV, b: SV) -> SV:
        ctx = self.ctx
        if op in ("==", "!="):
            defined = AND(ctx, a.defined(ctx), b.defined(ctx))
            value = self.eq(a, b)
            return SV.boolean(ctx, defined, value if op == "==" else NOT(ctx, value))
        defined, value = [], []
        for x in a.of("num"):
            for y in b.of("num"):
                g = AND(ctx, x.guard, y.guard)
                defined.append(g)
                value.append(AND(ctx, g, _cmp(op, x.val, y.val, self)))
        return SV.boolean(ctx, OR(ctx, *defined), OR(ctx, *value))

    def eq(self, a: SV, b: SV):
        """The condition that both are defined and Cedar-equal."""
        ctx = self.ctx
        out = []
        for x in a.alts:
            for y in b.alts:
                if x.kind != y.kind:
                    continue
                g = AND(ctx, x.guard, y.guard)
                if g is False:
                    continue
                out.append(AND(ctx, g, self.alt_eq(x, y)))
        return OR(ctx, *out)

    def alt_eq(self, x: Alt, y: Alt):
        k = x.kind
        if k == "null":
            return True
        if k == "str":
            if isinstance(x.val, str) and isinstance(y.val, str):
                return x.val == y.val
            return self.str_term(x.val) == self.str_term(y.val)
        if k == "num":
            if isinstance(x.val, Fraction) and isinstance(y.val, Fraction):
                return x.val == y.val
            return self.num_term(x.val) == self.num_term(y.val)
        if k == "bool":
            if isinstance(x.val, bool) and isinstance(y.val, bool):
                return x.val == y.val
            return self.bool_term(x.val) == self.bool_term(y.val)
        if k == "ent":
            return self.ent_eq(x.val, y.val)
        if k == "arr":
            return self.set_eq(x.val, y.val)
        if k == "obj":
            return self.obj_eq(x.val, y.val)
        raise TypeError(k)  # pragma: no cover

    def set_eq(self, x, y):
        ctx = self.ctx
        if isinstance(x, (ArgArr, UserSet)) and isinstance(y, LitArr):
            x, y = y, x
        if isinstance(x, LitArr) and isinstance(y, LitArr):
            return AND(ctx, self.subset_lit(x, y), self.subset_lit(y, x))
        if isinstance(x, LitArr):
            return AND(ctx, *(self.member(y, i) for i in x.items), self.arg_subset(y, x))
        if isinstance(x, UserSet) and isinstance(y, UserSet):
            if x.key == y.key:
                return True
            if x.elem != y.elem:  # no element is in both: equal only when both are empty
                return AND(ctx, x.length == 0, y.length == 0)
        if isinstance(x, ArgArr) and isinstance(y, ArgArr) and x.path == y.path:
            return True
        return self.havoc_bool("equality of two array arguments")

    def subset_lit(self, x: LitArr, y: LitArr):
        ctx = self.ctx
        return AND(ctx, *(OR(ctx, *(self.eq(i, j) for j in y.items)) for i in x.items))

    def arg_subset(self, x: ArgArr | UserSet, lit: LitArr):
        """Every element of the argument array (or the user's set) is one of the literal's items."""
        if isinstance(x, UserSet):
            return self.user_subset(x, lit)
        items = x.var.items
        if not lit.items:
            return z3.Length(items) == 0
        units = []
        for it in lit.items:
            for a in it.alts:
                if a.kind == "ent":
                    continue  # an argument array holds no entities: such an item matches nothing
                e = self.elem(a)
                if e is None:
                    return self.havoc_bool("a set literal with nested arrays or records compared with an array argument")
                units.append((a.guard, e))
        if any(g is not True for g, _ in units):
            return self.havoc_bool("a set literal with non-constant items compared with an array argument")
        # an item that no element can equal (an entity) adds nothing: with no other item,
        # only the empty array is a subset (Star of the empty language is {ε})
        lang = re_union(z3.ReSort(self.S.Seq), (z3.Re(z3.Unit(e)) for _, e in units))
        return z3.InRe(items, z3.Star(lang))

    def user_subset(self, x: UserSet, lit: LitArr):
        """Every element of a user's set is one of the literal's items: the items of the
        set's element type, as the regex (a|b|…)* over the typed sequence; an item of
        another kind can equal no element, so it adds nothing."""
        units = []
        for it in lit.items:
            for a in it.alts:
                hit = self.typed_elem(x, a)
                if hit is None:
                    continue
                cond, term = hit
                if a.guard is not True or cond is not True or not _ground(term):
                    return self.havoc_bool("a set literal with non-constant items compared with an array argument")
                units.append(term)
        lang = re_union(z3.ReSort(x.seq.sort()), (z3.Re(z3.Unit(t)) for t in units))
        return z3.InRe(x.seq, z3.Star(lang))

    def typed_elem(self, us: UserSet, a: Alt):
        """(condition, term): `a`'s value as an element of the user's set `us`, a term of its
        element sort, equal to an element exactly when the condition holds and the term is
        in the sequence; None when no element can equal it (another kind; for a Long set, a
        constant that is no 64-bit integer)."""
        if a.kind != us.elem:
            return None
        ctx = self.ctx
        if us.elem == "str":
            return True, self.str_term(a.val)
        if us.elem == "bool":
            return True, self.bool_term(a.val)
        if isinstance(a.val, Fraction):
            v = a.val
            if v.denominator != 1 or not LONG_MIN <= v <= LONG_MAX:
                return None
            return True, z3.IntVal(int(v), ctx)
        n = self.num_term(a.val)
        lo, hi = real_val(LONG_MIN, ctx), real_val(LONG_MAX, ctx)
        return AND(ctx, z3.IsInt(n), n >= lo, n <= hi), z3.ToInt(n)

    def obj_eq(self, x, y):
        ctx = self.ctx
        if isinstance(x, ArgObj) and isinstance(y, LitObj):
            x, y = y, x
        if isinstance(x, LitObj) and isinstance(y, LitObj):
            kx, ky = {k for k, _ in x.fields}, {k for k, _ in y.fields}
            if kx != ky:
                return False
            return AND(ctx, *(self.eq(v, y.get(k)) for k, v in x.fields))
        if isinstance(x, LitObj) and isinstance(y, ArgObj):
            fields = {}
            for k, v in x.fields:
                fields[k] = self.eq(self.path_value(y.path + (k,)), v)
            flag = z3.FreshBool("objeq", self.ctx)
            self.req.objeq.append((flag, y.path, fields))
            return flag
        if x.path == y.path:
            return True
        return self.havoc_bool("equality of two record arguments")

    # -- sets ---------------------------------------------------------------------------------
    def elem(self, a: Alt):
        """`a` as an array element (Elem), or None for a literal compound."""
        E = self.S.Elem
        if a.kind == "str":
            return E.estr(self.str_term(a.val))
        if a.kind == "num":
            return E.enum(self.num_term(a.val))
        if a.kind == "bool":
            return E.ebool(self.bool_term(a.val))
        if a.kind == "null":
            return E.enull
        if a.kind == "arr" and isinstance(a.val, ArgArr):
            return E.ecomp(a.val.var.cid)
        if a.kind == "arr" and isinstance(a.val, UserSet):
            return E.ecomp(a.val.cid)
        if a.kind == "obj" and isinstance(a.val, ArgObj):
            return E.ecomp(self.req.path(a.val.path).cid)
        return None

    def member(self, arr, v: SV):
        """`v` (defined) is an element of the array `arr` (Cedar equality)."""
        ctx = self.ctx
        if isinstance(arr, LitArr):
            return OR(ctx, *(self.eq(i, v) for i in arr.items))
        if isinstance(arr, UserSet):  # only a value of the element type can be an element
            hits = []
            for a in v.alts:
                hit = self.typed_elem(arr, a)
                if hit is not None:
                    hits.append(AND(ctx, a.guard, hit[0], z3.Contains(arr.seq, z3.Unit(hit[1]))))
            return OR(ctx, *hits)
        items = arr.var.items
        out = []
        for a in v.alts:
            if a.kind == "ent":
                continue  # argument arrays hold JSON values only
            e = self.elem(a)
            if e is None:
                out.append(AND(ctx, a.guard, self.havoc_bool("membership of a literal array or record in an array argument")))
                continue
            out.append(AND(ctx, a.guard, z3.Contains(items, z3.Unit(e))))
        return OR(ctx, *out)

    def in_(self, a: SV, b: SV) -> SV:
        ctx = self.ctx
        defined, value = [], []
        for x in a.alts:
            for y in b.alts:
                g = AND(ctx, x.guard, y.guard)
                if g is False:
                    continue
                if x.kind == "ent":
                    if y.kind == "ent":
                        defined.append(g)
                        value.append(AND(ctx, g, self.entity_in(x.val, y.val)))
                    elif y.kind == "arr" and isinstance(y.val, LitArr):
                        dg, hit = self._in_literal_entities(x.val, y.val, g)
                        defined.append(dg)
                        value.append(hit)
                    elif y.kind == "arr":  # an argument array (a user's set) has no entities: fine only when empty
                        dg = AND(ctx, g, _length(y.val) == 0)
                        defined.append(dg)
                elif y.kind == "arr":
                    defined.append(g)
                    value.append(AND(ctx, g, self.member(y.val, SV([Alt(x.kind, True, x.val)]))))
        return SV.boolean(ctx, OR(ctx, *defined), OR(ctx, *value))

    def _in_literal_entities(self, ent, arr, g):
        """`e in [E1, …]` against a literal set: defined when every member is an entity
        (else Cedar's type error), true when `e` is in one of them."""
        ctx = self.ctx
        dg = AND(ctx, g, AND(ctx, *(OR(ctx, *(i.guard for i in it.of("ent"))) for it in arr.items)))
        hits = [AND(ctx, i.guard, self.entity_in(ent, i.val)) for it in arr.items for i in it.of("ent")]
        return dg, AND(ctx, dg, OR(ctx, *hits))

    def is_(self, obj: SV, etype: str, in_: SV | None) -> SV:
        """`e is T` and `e is T in E`: an error unless `e` is an entity; false when its
        type is not T (without evaluating E); otherwise exactly `e in E`, the `in`
        operator's encoding for every kind of E (an entity, a literal set, an argument
        array: defined only when empty, since arguments hold no entities; anything
        else: an error)."""
        ctx = self.ctx
        defined, value = [], []
        for x in obj.of("ent"):
            if x.val.type != etype:
                defined.append(x.guard)
                continue
            if in_ is None:
                defined.append(x.guard)
                value.append(x.guard)
                continue
            inside = self.in_(SV([x]), in_)  # every alternative is guarded by x.guard
            defined.append(inside.defined(ctx))
            value.append(inside.truth(ctx, True))
        return SV.boolean(ctx, OR(ctx, *defined), OR(ctx, *value))

    def call(self, e: ir.Call) -> SV:
        ctx = self.ctx
        s = self.expr(e.obj)
        if e.method == "isEmpty":
            defined, value = [], []
            for a in s.of("arr"):
                defined.append(a.guard)
                if isinstance(a.val, LitArr):
                    value.append(AND(ctx, a.guard, len(a.val.items) == 0))
                else:
                    value.append(AND(ctx, a.guard, _length(a.val) == 0))
            return SV.boolean(ctx, OR(ctx, *defined), OR(ctx, *value))
        v = self.expr(e.args[0])
        vdef = v.defined(ctx)
        defined, value = [], []
        if e.method == "contains":
            for a in s.of("arr"):
                g = AND(ctx, a.guard, vdef)
                defined.append(g)
                value.append(AND(ctx, g, self.member(a.val, v)))
            for a in s.of("str"):
                for b in v.of("str"):
                    g = AND(ctx, a.guard, b.guard)
                    defined.append(g)
                    if isinstance(a.val, str) and isinstance(b.val, str):
                        value.append(AND(ctx, g, b.val in a.val))
                    else:
                        value.append(AND(ctx, g, z3.Contains(self.str_term(a.val), self.str_term(b.val))))
            return SV.boolean(ctx, OR(ctx, *defined), OR(ctx, *value))
        want_all = e.method == "containsAll"
        for a in s.of("arr"):
            for b in v.of("arr"):
                g = AND(ctx, a.guard, b.guard)
                defined.append(g)
                value.append(AND(ctx, g, self.contains_set(a.val, b.val, want_all)))
        return SV.boolean(ctx, OR(ctx, *defined), OR(ctx, *value))

    def contains_set(self, s, t, want_all: bool):
        ctx = self.ctx
        if isinstance(t, LitArr):
            parts = [self.member(s, i) for i in t.items]
            return AND(ctx, *parts) if want_all else OR(ctx, *parts)
        if isinstance(s, LitArr) and want_all:
            return self.arg_subset(t, s)
        if isinstance(s, LitArr) and isinstance(t, UserSet):  # containsAny: an item of the element type is in it
            return self.member(t, SV([a for it in s.items for a in it.alts]))
        if isinstance(s, LitArr):
            items = t.var.items
            parts = []
            for it in s.items:
                for a in it.alts:
                    if a.kind == "ent":
                        continue  # an argument array holds no entities: such an item matches nothing
                    e = self.elem(a)
                    if e is None:
                        parts.append(AND(ctx, a.guard, self.havoc_bool("a nested literal in containsAny")))
                    else:
                        parts.append(AND(ctx, a.guard, z3.Contains(items, z3.Unit(e))))
            return OR(ctx, *parts)
        if isinstance(s, UserSet) and isinstance(t, UserSet) and s.key != t.key and s.elem != t.elem:
            return t.length == 0 if want_all else False  # no element is in both
        same = (s.key == t.key) if isinstance(s, UserSet) and isinstance(t, UserSet) else (
            isinstance(s, ArgArr) and isinstance(t, ArgArr) and s.path == t.path)
        if same:
            return True if want_all else _length(s) > 0
        return self.havoc_bool(f"{'containsAll' if want_all else 'containsAny'} between two array arguments")


LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1  # Cedar's Long: a user's Long (and Set<Long>) attribute


def _longs(ctx, us: UserSet) -> z3.BoolRef:
    """Every element of a user's Set<Long> is a 64-bit integer. (Membership tests check the
    range themselves, `typed_elem`, so no proof needs this quantifier; it keeps elements
    that nothing tests within range, so a witness's user is one the engine accepts.)"""
    i = z3.Int(us.key + ".i", ctx)
    x = us.seq[i]
    return z3.ForAll([i], z3.Implies(AND(ctx, i >= 0, i < us.length), AND(ctx, x >= LONG_MIN, x <= LONG_MAX)))


def _length(arr):
    """The number of elements of a non-literal array: an argument's or a user's set."""
    return arr.length if isinstance(arr, UserSet) else z3.Length(arr.var.items)


def _ground(t) -> bool:
    """A constant term (a regex over sequences needs constant units)."""
    return z3.is_string_value(t) or z3.is_int_value(t) or z3.is_true(t) or z3.is_false(t)


def _cmp(op, x, y, enc: ProgramEncoder):
    if isinstance(x, Fraction) and isinstance(y, Fraction):
        return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]
    a, b = enc.num_term(x), enc.num_term(y)
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _matches_py(s: str, pattern: str) -> bool:
    from mcpp.lang.regex import compile_regex

    return compile_regex(pattern).search(s) is not None


# ---- decisions ---------------------------------------------------------------------------------


@dataclass
class ToolDecision:
    """The decision of one program for one tool, as formulas over a Request, read off the
    program's decision plan (`mcpp.lang.plan`, docs/language.md §5): hidden → deny; a
    permit of the plan applies, or the plan's default allows; no forbid applies; for each
    counter group, every applicable limit has a valid increment and the count plus the
    group's summed increments stays within the smallest max among its applicable limits.
    `count` is the request's variable for the counter key.

    Three outcomes, as the engine's `Decision`: `allowed` (runs now: `Decision.allowed`),
    `needs_approval` (runs once a person approves: decision "approval"; the plan's
    `approvals` apply, no ordinary permit does, the default does not cover), and `runs`
    (either: what a call can do at all)."""

    program: Program
    tool: str
    enc: ProgramEncoder
    hidden: bool
    permits: list = field(default_factory=list)  # (PolicyInfo, formula)
    forbids: list = field(default_factory=list)
    approvals: list = field(default_factory=list)  # (PolicyInfo, formula) of the @approval permits
    counters: list = field(default_factory=list)  # (CounterKey, [(LimitInfo, applies, valid, amount)])
    default_covers: bool = False
    fits: object = True  # the caller fits the policy's `entity User` (`ProgramEncoder.fits`)
    _built: dict = field(default_factory=dict, repr=False, compare=False)  # (method, zero) → formula

    @property
    def req(self) -> Request:
        return self.enc.req

    @property
    def limits(self) -> list:
        """(LimitInfo, applies, valid, amount) of every limit on the tool."""
        return [row for _, rows in self.counters for row in rows]

    def permitted(self):
        ctx = self.enc.ctx
        return OR(ctx, self.default_covers, *(f for _, f in self.permits))

    def forbidden(self):
        return OR(self.enc.ctx, *(f for _, f in self.forbids))

    def approvable(self):
        return OR(self.enc.ctx, *(f for _, f in self.approvals))

    def limits_ok(self, zero: bool):
        """All counter groups pass; `zero`: at fresh counters, else at the request's counters."""
        hit = self._built.get(("limits_ok", zero))
        if hit is None:
            hit = self._built[("limits_ok", zero)] = self._limits_ok(zero)
        return hit

    def _limits_ok(self, zero: bool):
        ctx = self.enc.ctx
        parts = []
        for key, rows in self.counters:
            count = real_val(Fraction(0), ctx) if zero else self.req.counter(key)
            total = SUM(ctx, *(z3.If(z(ctx, applies), self.enc.num_term(amount), real_val(Fraction(0), ctx))
                             for _, applies, _, amount in rows), count)
            for li, applies, valid, _ in rows:
                cap = real_val(Fraction(li.stmt.max), ctx)
                parts.append(IMPLIES(ctx, applies, AND(ctx, valid, total <= cap)))
        return AND(ctx, *parts)

    def allowed(self, zero: bool = True):
        """Built once per decision and `zero` (every lint asks it of every tool)."""
        if self.hidden:
            return False
        hit = self._built.get(("allowed", zero))
        if hit is None:
            ctx = self.enc.ctx
            hit = self._built[("allowed", zero)] = AND(
                ctx, self.fits, self.permitted(), NOT(ctx, self.forbidden()), self.limits_ok(zero))
        return hit

    def needs_approval(self, zero: bool = True):
        """The call waits for a person (lang/plan.py's APPROVAL_RULE)."""
        if self.hidden or not self.approvals:
            return False
        ctx = self.enc.ctx
        return AND(ctx, self.fits, NOT(ctx, self.permitted()), self.approvable(), NOT(ctx, self.forbidden()),
                   self.limits_ok(zero))

    def runs(self, zero: bool = True):
        """Allowed, or allowed once a person approves."""
        if self.hidden:
            return False
        ctx = self.enc.ctx
        return AND(ctx, self.fits, OR(ctx, self.permitted(), self.approvable()), NOT(ctx, self.forbidden()),
                   self.limits_ok(zero))

    def allowed_without_limits(self):
        if self.hidden:
            return False
        ctx = self.enc.ctx
        return AND(ctx, self.fits, self.permitted(), NOT(ctx, self.forbidden()))


def decide(req: Request, program: Program, tool: str) -> ToolDecision:
    """Encode the plan of `program` for `tool` over `req`."""
    plan = program.plan()
    tp = plan.for_tool(tool)
    req.typed(tool)
    enc = ProgramEncoder(req, program, tool)
    d = ToolDecision(program, tool, enc, tp.hidden, default_covers=tp.default_allows, fits=enc.fits())
    for p in tp.permits:
        d.permits.append((p, enc.applies(p.stmt)))
    for f in tp.forbids:
        d.forbids.append((f, enc.applies(f.stmt)))
    for a in tp.approvals:
        d.approvals.append((a, enc.applies(a.stmt)))
    ctx = req.ctx
    for group in tp.counters:
        if group.key in plan.counter_bounds:
            # one request may encode two versions of a policy (diff): a count either version
            # can reach is a state to compare them in, so the larger bound stands
            bound = plan.counter_bounds[group.key]
            have = req.counter_max.get(group.key)
            req.counter_max[group.key] = bound if have is None else max(have, bound)
        rows = []
        for li in group.limits:
            applies = enc.applies(li.stmt)
            if li.stmt.increment is None:
                valid, amount = True, Fraction(1)
            else:
                sv = enc.expr(li.stmt.increment)
                nums = sv.of("num")
                if len(nums) == 1 and nums[0].guard is True and isinstance(nums[0].val, Fraction):
                    amount = nums[0].val
                    valid = amount >= 0
                elif nums:
                    valid = OR(ctx, *(AND(ctx, a.guard, enc.num_term(a.val) >= 0) for a in nums))
                    amount = enc.num_term(nums[-1].val)
                    for a in reversed(nums[:-1]):
                        amount = z3.If(z(ctx, a.guard), enc.num_term(a.val), amount)
                else:
                    amount, valid = Fraction(0), False
            rows.append((li, applies, valid, amount))
        d.counters.append((group.key, rows))
    return d
