"""The decision engine: runs a `Program` (from .mcpp or from the JSON form) on tool calls.

It executes the program's decision plan (`mcpp.lang.plan`): per tool, hidden, then
permits (`require`) and, when none applies and the default does not cover the tool, the
`@approval` permits, then forbids (`deny_if`), then limits grouped by counter. A call
only an approval permit allows is decided `needs_approval` (decision "approval"): not
allowed until a person approves it; `decide(..., approved=True)` is that call being run
after approval, and only then are its limits reserved. The
engine decides nothing the plan does not say; it only turns each rule into closures
once (`CompiledRule`), so a call touches only its tool's rules. The decision equals
Cedar's (deny unless a permit applies, any applicable forbid wins); the order only
fixes *which* rule a denial names. Any failure while deciding denies.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Union, cast

from mcpp.lang import ir
from mcpp.lang.atoms import NotExpressible, atom
from mcpp.lang.diagnostics import Span
from mcpp.lang.evaluator import Closure, Env, compile_expr, scope_check
from mcpp.lang.identity import PrincipalError, check_user_groups, user_attributes
from mcpp.lang.parser import paused_gc
from mcpp.lang.plan import CounterGroup, ToolPlan
from mcpp.lang.program import LimitInfo, PolicyInfo, Program
from mcpp.lang.strings import quote
from mcpp.lang.values import Entity, is_number

from .limits import Charge, CounterStore, MemoryCounters, Reservation, iso, window_bounds


@dataclass(frozen=True)
class Grant:
    """The caller: a grant id, its label, and the groups the gateway configuration puts it in."""

    id: str = "anonymous"
    label: str = ""
    groups: frozenset[str] = frozenset()


@dataclass(frozen=True)
class User:
    """The caller as an authenticated user (`User::"id"`, docs/language.md §1.1).

    `id` is the access token's subject (issuer-qualified when the gateway trusts several
    issuers); `attrs` its claims as the gateway mapped and typed them, checked against the
    policy's `entity User` declaration (a caller that does not fit it is denied, `/principal`);
    `groups` from a groups claim. `grant_id` is the credential or session key the gateway
    counts `scope grant` limits by; None counts them per user, like `scope principal`."""

    id: str
    attrs: Mapping[str, object] = field(default_factory=dict, hash=False)
    groups: frozenset[str] = frozenset()
    grant_id: str | None = None


Caller = Union[Grant, User]  # what `Engine.decide` accepts as its third argument


@dataclass(slots=True)
class Rule:
    pointer: str
    policy: str | None = None
    span: Span | None = None

    def to_dict(self, filename: str | None = None) -> dict:
        d: dict = {"pointer": self.pointer, "policy": self.policy}
        if self.span is not None and self.span.line:
            d["span"] = {
                "file": filename, "line": self.span.line, "col": self.span.col,
                "end_line": self.span.end_line, "end_col": self.span.end_col,
            }
        return d


@dataclass(slots=True)
class Decision:
    """`allowed`: the call may run now. `needs_approval`: an `@approval` permit is what
    allows it (lang/plan.py); unless it was decided with `approved=True`, it is then not
    allowed (decision "approval") and holds no limit budget. `approval` is the text the
    approver is shown. Never changed once made: the engine hands the same object to every
    call one cause decides (a tool's failing permit step, a forbid, an allowing permit)."""

    allowed: bool
    tool: str
    rule: Rule
    message: str
    reservation: Reservation | None = None
    limit: dict | None = None
    needs_approval: bool = False
    approval: str | None = None

    @property
    def decision(self) -> str:
        if self.allowed:
            return "allow"
        return "approval" if self.needs_approval else "deny"

    def to_dict(self, filename: str | None = None) -> dict:
        d: dict[str, object] = {
            "decision": self.decision,
            "rule": self.rule.pointer,
            "message": self.message,
            "policy": self.rule.policy,
            "tool": self.tool,
        }
        if self.rule.span is not None and self.rule.span.line and filename:
            d["span"] = f"{filename}:{self.rule.span.line}:{self.rule.span.col}"
        if self.limit is not None:
            d["limit"] = self.limit
        if self.needs_approval:
            d["needs_approval"] = True
            d["approval"] = self.approval
        return d

    def release(self) -> None:
        if self.reservation is not None:
            self.reservation.release()


@dataclass(frozen=True)
class Explanation:
    """`Engine.explain`: the decision, the policies that apply and those that errored
    (ids, in program order) — what Cedar reports as reasons and errors."""

    decision: Decision
    satisfied: tuple[str, ...]
    errored: tuple[str, ...]
    program: Program

    @property
    def determining(self) -> tuple[str, ...]:
        """Cedar's reasons: the applying policies of the deciding effect (forbids for a
        denial, permits for an allow)."""
        effect = "permit" if self.decision.allowed or self.decision.needs_approval else "forbid"
        effects = {p.id: p.effect for p in self.program.policies}
        return tuple(i for i in self.satisfied if effects[i] == effect)


_ANONYMOUS = Grant()


def escape_pointer(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


# ---- compiled rules --------------------------------------------------------------


class CompiledRule:
    """A policy or limit compiled once: scope checks plus one closure per clause."""

    __slots__ = ("applies", "fail_index", "info", "id", "checks", "clauses", "stmt", "reason", "steps", "flat",
                 "causes", "allow_message")

    def __init__(self, info: PolicyInfo | LimitInfo, stmt: ir.Policy | ir.Limit):
        self.info = info
        self.id = info.id
        self.stmt = stmt
        self.reason = stmt.reason
        checks = [scope_check(stmt.scope.principal, "principal"), scope_check(stmt.scope.resource, "resource")]
        self.checks = [c for c in checks if c is not None]
        self.clauses: list[tuple[Closure, bool, ir.Clause]] = [
            (compile_expr(c.expr), c.kind == "when", c) for c in stmt.clauses
        ]
        # per clause, its top-level conjuncts of T (when) / F (unless), each with the JSON
        # condition it stands for: explaining a denial is then one pass, no analysis
        self.steps = [_steps(c.expr, c.kind == "when") for c in stmt.clauses]
        # every clause's steps in order, and for each the clause and condition it stands for
        self.flat = [(fn, want) for steps in self.steps for fn, want, _ in steps]
        self.causes = [(c, cond) for c, steps in zip(stmt.clauses, self.steps) for _, _, cond in steps]
        self.applies = self._specialise()
        self.fail_index = self._specialise_fail()
        self.allow_message = f"Allowed by {self.id}."

    def _specialise(self) -> Callable[[Env], bool]:
        """`applies(env)`: scope checks, then every clause true (when) / false (unless).

        A clause holds exactly when each of its steps does (`_steps`: T(a && b) is T(a)
        and T(b); F(a || b) is F(a) and F(b); through `!`), so the rule is tested step by
        step, with no frame for the `&&` itself. The common shapes get a loop-free
        function: this runs for every rule of a tool."""
        checks = self.checks
        flat = self.flat
        # Every part is bound as a parameter default, not closed over: a call reads its
        # parts from the one defaults tuple instead of one cell object each, which
        # matters when a policy's thousands of rules no longer fit in the CPU caches.
        if not checks:
            if not flat:

                def applies0(_env: Env) -> bool:  # one per rule: `decide` tells rules apart by their tests
                    return True

                return applies0
            if len(flat) == 1:
                (f1, w1), = flat

                def applies1(env: Env, f1: Closure = f1, w1: bool = w1) -> bool:
                    return f1(env) is w1

                return applies1
            if len(flat) == 2:
                (f1, w1), (f2, w2) = flat

                def applies2(env: Env, f1: Closure = f1, w1: bool = w1, f2: Closure = f2, w2: bool = w2) -> bool:
                    return f1(env) is w1 and f2(env) is w2

                return applies2
            if len(flat) == 3:
                (f1, w1), (f2, w2), (f3, w3) = flat

                def applies3(env: Env, f1: Closure = f1, w1: bool = w1, f2: Closure = f2, w2: bool = w2,
                             f3: Closure = f3, w3: bool = w3) -> bool:
                    return f1(env) is w1 and f2(env) is w2 and f3(env) is w3

                return applies3
        if len(checks) == 1 and len(flat) <= 2:  # a principal (or resource) scope: `principal in Group::"ops"`
            c, = checks
            if not flat:

                def applies_c0(env: Env, c: Callable[[Env], bool] = c) -> bool:
                    return True if c(env) else False

                return applies_c0
            if len(flat) == 1:
                (f1, w1), = flat

                def applies_c1(env: Env, c: Callable[[Env], bool] = c, f1: Closure = f1, w1: bool = w1) -> bool:
                    if not c(env):
                        return False
                    return f1(env) is w1

                return applies_c1
            (f1, w1), (f2, w2) = flat

            def applies_c2(env: Env, c: Callable[[Env], bool] = c, f1: Closure = f1, w1: bool = w1,
                           f2: Closure = f2, w2: bool = w2) -> bool:
                if not c(env):
                    return False
                return f1(env) is w1 and f2(env) is w2

            return applies_c2

        def applies(env: Env, checks: tuple = tuple(checks), flat: tuple = tuple(flat)) -> bool:
            for check in checks:
                if not check(env):
                    return False
            for fn, want in flat:
                if fn(env) is not want:
                    return False
            return True

        return applies

    def _specialise_fail(self) -> Callable[[Env], int | None]:
        """`fail_index(env)`: None when the rule applies; else why not: -1 (the scope), or
        the index in `causes` of the first step that does not hold. One pass, so a
        denial's explanation costs no second evaluation; loop-free for the usual sizes
        (parts bound as defaults, as in `_specialise`)."""
        checks = self.checks
        flat = self.flat
        if not checks and len(flat) == 1:
            (f1, w1), = flat

            def fail1(env: Env, f1: Closure = f1, w1: bool = w1) -> int | None:
                return None if f1(env) is w1 else 0

            return fail1
        if not checks and len(flat) == 2:
            (f1, w1), (f2, w2) = flat

            def fail2(env: Env, f1: Closure = f1, w1: bool = w1, f2: Closure = f2, w2: bool = w2) -> int | None:
                if f1(env) is not w1:
                    return 0
                return None if f2(env) is w2 else 1

            return fail2
        if len(checks) == 1 and 1 <= len(flat) <= 2:  # a principal (or resource) scope
            c, = checks
            if len(flat) == 1:
                (f1, w1), = flat

                def fail_c1(env: Env, c: Callable[[Env], bool] = c, f1: Closure = f1, w1: bool = w1) -> int | None:
                    if not c(env):
                        return -1
                    return None if f1(env) is w1 else 0

                return fail_c1
            (f1, w1), (f2, w2) = flat

            def fail_c2(env: Env, c: Callable[[Env], bool] = c, f1: Closure = f1, w1: bool = w1,
                        f2: Closure = f2, w2: bool = w2) -> int | None:
                if not c(env):
                    return -1
                if f1(env) is not w1:
                    return 0
                return None if f2(env) is w2 else 1

            return fail_c2

        def fail_index(env: Env, checks: tuple = tuple(checks), flat: tuple = tuple(flat)) -> int | None:
            for check in checks:
                if not check(env):
                    return -1
            i = 0
            for fn, want in flat:
                if fn(env) is not want:
                    return i
                i += 1
            return None

        return fail_index

    def evaluate(self, env: Env) -> bool | None:
        """True (applies), False (scope or a clause does not hold) or None (a clause errored)."""
        for check in self.checks:
            if not check(env):
                return False
        for fn, want, _ in self.clauses:
            v = fn(env)
            if v is not want:
                return False if (v is True or v is False) else None
        return True


def _steps(e: ir.Expr, want: bool) -> list[tuple[Closure, bool, object]]:
    """Flatten T(a && b …) / F(a || b …) (through `!`) into its parts, in source order."""
    if isinstance(e, ir.Not):
        return _steps(e.expr, not want)
    if (isinstance(e, ir.And) and want) or (isinstance(e, ir.Or) and not want):
        return _steps(e.left, want) + _steps(e.right, want)
    return [(compile_expr(e), want, _atom_or_none(e, want))]


class ToolRules:
    """A tool's plan with its rules compiled: what `decide` runs for one call.

    Laid out for a policy of thousands of tools, where a call's reads of its own tool's
    objects miss the CPU caches (docs/performance.md, "Growth"). The plan's flags are
    copied in, so a call reads this one object and not the plan beside it; the action
    entity is kept here, so no second dictionary is looked up by tool name. The rules
    `decide` walks are held as their test functions (`first`: the first permit's
    `fail_index`; `rest`, `deny_if`: `applies`), not the `CompiledRule`s around them, in
    tuples shared between tools with equal ones (most tools share the global forbids,
    and `()` when empty). The decisions a named tool's calls share are cached in tuples
    by position (`denied`, `allows`, `forbidden`): a tuple is one object, a dict two,
    and a position needs no hashing. What only explanations and others (coverage,
    tests) read — the plan and the compiled rules, aligned with those tuples — sits in
    `detail`, so the object a call reads is twelve slots: two cache lines."""

    __slots__ = ("action", "allows", "approve", "counted", "default_allows", "denied", "deny_if", "detail", "first",
                 "hidden", "named", "rest")

    def __init__(self, plan: ToolPlan, permits: list[CompiledRule], forbids: list[CompiledRule],
                 counters: list[tuple[CounterGroup, list[CompiledRule]]], approvals: list[CompiledRule],
                 action: Entity | None = None, share: Callable[[tuple], tuple] = lambda t: t):
        self.detail = ToolDetail(plan, permits, forbids, counters, approvals)
        self.hidden = plan.hidden
        self.default_allows = plan.default_allows
        self.named = plan.tool is not None  # a named tool: its rules are its own
        # permits[0]'s `fail_index` (tried first: it also says why it fails), the others' `applies`
        self.first: Callable[[Env], int | None] | None = permits[0].fail_index if permits else None
        self.rest: tuple[Callable[[Env], bool], ...] = share(tuple(p.applies for p in permits[1:]))
        self.deny_if: tuple[Callable[[Env], bool], ...] = share(tuple(f.applies for f in forbids))
        self.approve: tuple[CompiledRule, ...] = share(tuple(approvals))
        self.counted: tuple[tuple[CounterGroup, list[CompiledRule]], ...] = tuple(counters)
        # for a named tool: the denial naming permits[0] at each failing step (index i for
        # its causes[i], the last for its scope), or the default's denial (index 0) when
        # no permit names the tool; the allow by each permit (by position, the default's
        # last). Filled as calls are decided.
        self.denied: tuple[Decision | None, ...] = (None,) * (len(permits[0].causes) + 1 if permits else 1)
        self.allows: tuple[Decision | None, ...] = (None,) * (len(permits) + 1)
        self.action = action  # the tool as an entity (named tools; None for `other`)

    @property
    def plan(self) -> ToolPlan:
        return self.detail.plan

    @property
    def permits(self) -> list[CompiledRule]:
        return self.detail.permits

    @property
    def forbids(self) -> list[CompiledRule]:
        return self.detail.forbids

    @property
    def approvals(self) -> list[CompiledRule]:
        return self.detail.approvals

    @property
    def counters(self) -> list[tuple[CounterGroup, list[CompiledRule]]]:
        return self.detail.counters

    @property
    def limits(self) -> list[CompiledRule]:
        return [r for _, rules in self.detail.counters for r in rules]


class ToolDetail:
    """The side of a `ToolRules` that calls do not read: its plan, its compiled rules (in
    the plan's order, aligned with the tests `decide` walks), and a named tool's
    denials by each forbid (by position, filled as calls are decided)."""

    __slots__ = ("plan", "permits", "forbids", "counters", "approvals", "forbidden")

    def __init__(self, plan: ToolPlan, permits: list[CompiledRule], forbids: list[CompiledRule],
                 counters: list[tuple[CounterGroup, list[CompiledRule]]], approvals: list[CompiledRule]):
        self.plan = plan
        self.permits = permits
        self.forbids = forbids
        self.counters = counters
        self.approvals = approvals
        self.forbidden: tuple[Decision | None, ...] = (None,) * len(forbids)


class Engine:
    """Decides tool calls for one policy. Thread-safe; counters live in `store`."""

    def __init__(self, program: Program, store: CounterStore | None = None, namespace: str = "default"):
        # the cyclic GC paused while the rules compile: the closures and tables are
        # acyclic, and at 10,000 rules the collections that their allocations trigger
        # (each one a walk of the whole heap, the program's IR included) were most of
        # the build: 2.2–3.0 s of CPU, 0.5–0.7 s with them paused (docs/performance.md)
        with paused_gc():
            self._build(program, store, namespace)

    def _build(self, program: Program, store: CounterStore | None, namespace: str) -> None:
        self.program = program
        self.store: CounterStore = store or MemoryCounters()
        self.namespace = namespace
        self.filename = program.filename if program.origin == "mcpp" else None  # spans only for source
        compiled: dict[str, CompiledRule] = {}

        def rule(info: PolicyInfo | LimitInfo) -> CompiledRule:
            r = compiled.get(info.id)
            if r is None:
                r = compiled[info.id] = CompiledRule(info, info.stmt)
            return r

        plan = program.plan()
        assert plan.other is not None  # build_plan sets it
        self._group_parents: dict[str, frozenset] = {
            t: frozenset(("Action", g) for g in tp.ancestors) for t, tp in plan.tools.items() if tp.ancestors
        }

        shared: dict[tuple, tuple] = {}

        def share(t: tuple) -> tuple:
            """One tuple for equal sequences of rules (the rules live as long as the engine)."""
            return shared.setdefault(tuple(map(id, t)), t)

        def rules(tp: ToolPlan) -> ToolRules:
            return ToolRules(
                tp,
                [rule(p) for p in tp.permits],
                [rule(f) for f in tp.forbids],
                [(g, [rule(li) for li in g.limits]) for g in tp.counters],
                [rule(a) for a in tp.approvals],
                None if tp.tool is None else Entity("Action", tp.tool, None, self._groups_of(tp.tool)),
                share,
            )

        self.other = rules(plan.other)
        self.index: dict[str, ToolRules] = {t: rules(tp) for t, tp in plan.tools.items()}
        self._increments: dict[str, Closure] = {
            r.id: compile_expr(r.stmt.increment) for r in compiled.values()
            if isinstance(r.stmt, ir.Limit) and r.stmt.increment is not None
        }
        # grant id / tool / server → Entity, built once (bounded: grants and tools come from callers)
        self._principals: dict[str, Entity] = {}
        self._actions: dict[str, Entity] = {}
        self._resources: dict[str, Entity] = {}
        # the decision of a cause (a tool's failing permit step, forbid, allowing permit):
        # built once, shared by every call it decides (decisions are never changed); a
        # named tool keeps its own in its ToolRules, here are those of tools no statement
        # names, by (tool, "deny" | "allow" | "forbid", failing step or position)
        self._explained: dict[tuple, Decision] = {}
        self._users: dict[str, tuple[User, Entity]] = {}  # user id → (the User, its Entity)
        self._pointers: dict = {}
        self._groups_fn = self._groups_of  # one bound method, not one per call

    # -- the request model -----------------------------------------------------------
    def _groups_of(self, tool: str) -> frozenset:
        return self._group_parents.get(tool, frozenset())

    def env(self, tool: str, args: dict, grant: Caller, server: str) -> Env:
        """The request as conditions see it; `grant` is the caller, a Grant or a User
        (PrincipalError when a user does not fit the policy's `entity User`)."""
        return Env(self._caller(grant), self._actions.get(tool) or self._action(tool),
                   self._resources.get(server) or self._resource(server), args, self._groups_fn)

    # entities are built once per caller, tool and server (`decide` inlines the lookups)
    def _caller(self, grant: Caller) -> Entity:
        if type(grant) is not Grant:
            return self._user_entity(grant)  # type: ignore[arg-type]
        principal = self._principals.get(grant.id)
        if principal is None or (
            (principal.groups is not grant.groups and principal.groups != grant.groups)
            or principal.attrs["label"] != grant.label
        ):
            principal = self._principal(grant)
        return principal

    def _principal(self, grant: Grant) -> Entity:
        principal = Entity("Grant", grant.id, {"label": grant.label}, frozenset(("Group", g) for g in grant.groups))
        principal.groups = grant.groups
        return _bounded_put(self._principals, grant.id, principal)

    def _action(self, tool: str) -> Entity:
        return _bounded_put(self._actions, tool, Entity("Action", tool, None, self._groups_of(tool)))

    def _resource(self, server: str) -> Entity:
        return _bounded_put(self._resources, server, Entity("Server", server))

    def _user_entity(self, user: "User") -> Entity:
        """A user as the principal entity: its declared attributes, typed, and its groups
        (built once per user and kept while the same user calls)."""
        if not isinstance(user, User):
            raise TypeError(f"the caller must be a Grant or a User, not {type(user).__name__}")
        hit = self._users.get(user.id)
        if hit is not None and (hit[0] is user or hit[0] == user):
            return hit[1]
        if not user.id:  # (an access token's subject is never empty, and the analyzer assumes so)
            raise PrincipalError("the user's id is empty")
        decl = self.program.user_decl
        check_user_groups(decl, user.groups)
        entity = Entity("User", user.id, user_attributes(decl, user.attrs), frozenset(("Group", g) for g in user.groups))
        if len(self._users) > 50_000:  # bounded: users come from tokens
            self._users.clear()
        self._users[user.id] = (user, entity)
        return entity

    # -- deciding ----------------------------------------------------------------------
    def decide(
        self,
        tool: str,
        args: object = None,
        grant: Caller | None = None,
        server: str = "default",
        now: float | None = None,
        reserve: bool = True,
        store: CounterStore | None = None,
        approved: bool = False,
    ) -> Decision:
        """The decision for one `tools/call` by `grant`, the caller (a Grant or a User).
        With `reserve`, an allow holds its limit budget (in `store`, this call's counter
        store, else the engine's). `approved`: a person approved this exact call, so a call
        only an `@approval` permit allows is allowed (and reserves); without it such a call
        is decided "approval", its limits checked but not reserved."""
        try:
            if args is None:
                args = {}
            if grant is None:
                grant = _ANONYMOUS
            if type(tool) is not str:
                return Decision(False, str(tool), Rule("/request"), "tool name must be a string")
            if type(args) is not dict:
                return Decision(False, tool, Rule("/request"), "tool arguments must be a JSON object")
            rules = self.index.get(tool, self.other)
            if rules.hidden:
                span = self.program.hidden.get(tool)
                return Decision(False, tool, Rule("/hide", None, span), f"Tool {tool} is not available (hidden by policy).")
            if type(grant) is Grant:
                principal = self._principals.get(grant.id)
                if principal is None or (
                    (principal.groups is not grant.groups and principal.groups != grant.groups)
                    or principal.attrs["label"] != grant.label
                ):
                    principal = self._principal(grant)
            else:
                principal = self._user_entity(cast(User, grant))  # not a Grant: a User
            action = rules.action  # a named tool's entity; any other is built once per name
            if action is None:
                action = self._actions.get(tool) or self._action(tool)
            env = Env(principal, action, self._resources.get(server) or self._resource(server), args, self._groups_fn)
            allowed_by: Callable | None = None  # the test of the permit that allows: `first` or one of `rest`
            first = rules.first
            cause: int | None = None
            if first is not None:
                # the first permit is tried by its `fail_index`, which also says why it
                # fails: a denial names it, so no rule is evaluated twice
                cause = first(env)
                if cause is None:
                    allowed_by = first
                else:
                    for applies in rules.rest:
                        if applies(env):
                            allowed_by = applies
                            break
            approval_by: CompiledRule | None = None
            if allowed_by is None and not rules.default_allows:
                for a in rules.approve:
                    if a.applies(env):
                        approval_by = a
                        break
                if approval_by is None:
                    if first is None:
                        if rules.approve:
                            return self._explain_no_approval(tool, rules.approve[0], env)
                        return self._explain_no_permit(tool, rules, None)
                    hit = rules.denied[cause] if rules.named else None  # type: ignore[index]  # cause: an int here
                    return hit if hit is not None else self._explain_no_permit(tool, rules, cause)
            for applies in rules.deny_if:
                if applies(env):
                    return self._explain_forbid(tool, rules, rules.deny_if.index(applies))
            reservation = None
            limit_info = None
            if rules.counted:
                # an approval-bound call reserves only when it runs: once approved
                hold = reserve and (approval_by is None or approved)
                denied, reservation, limit_info = self._limits(tool, rules.counted, env, grant, now, hold, store or self.store)
                if denied is not None:
                    return denied
            if approval_by is not None:
                text = cast(PolicyInfo, approval_by.info).approval or ""  # an approval rule is a policy
                rule = Rule(f"/policies/{escape_pointer(approval_by.id)}", approval_by.id, approval_by.stmt.span)
                message = (f"Allowed by {approval_by.id} after a person's approval." if approved else
                           f"Tool {tool} needs a person's approval ({approval_by.id})" + (f": {text}" if text else "."))
                return Decision(approved, tool, rule, message, reservation, limit_info, True, text)
            # the allowing permit's position: permits[0] 0, rest[i] i + 1, the default -1
            at = -1 if allowed_by is None else 0 if allowed_by is first else rules.rest.index(allowed_by) + 1
            if rules.named:  # a named tool: its rules are its own
                hit = rules.allows[at]
                if hit is None:
                    hit = self._allowed(tool, rules.permits[at] if at >= 0 else None)
                    rules.allows = _filled(rules.allows, at, hit)
            else:
                hit = self._explained.get((tool, "allow", at))
                if hit is None:
                    hit = _bounded_put(self._explained, (tool, "allow", at),
                                       self._allowed(tool, rules.permits[at] if at >= 0 else None))
            if reservation is None and limit_info is None:
                return hit
            return Decision(True, tool, hit.rule, hit.message, reservation, limit_info)
        except PrincipalError as e:  # fail closed: the gateway's claims do not fit the policy
            return Decision(False, str(tool), Rule("/principal", None, self._user_span()),
                            f"The caller does not fit the policy's `entity User` declaration: {e}.")
        except Exception as e:  # fail closed
            return Decision(False, str(tool), Rule("/error"), f"policy evaluation failed: {type(e).__name__}: {e}")

    def _user_span(self) -> Span | None:
        decl = self.program.user_decl
        return decl.span if decl is not None and self.filename else None

    def explain(
        self, tool: str, args: object = None, grant: Caller | None = None, server: str = "default"
    ) -> "Explanation":
        """Cedar's full answer for one call, beside the decision: every policy that
        applies (its scope matches and every clause holds) and every policy whose
        evaluation errored (Cedar skips those). Off the hot path: it evaluates every
        rule of the tool, where `decide` stops at the first that settles the call."""
        grant = grant or Grant()
        decision = self.decide(tool, args, grant, server, reserve=False)
        satisfied: list[str] = []
        errored: list[str] = []
        call_args = {} if args is None else args
        if type(tool) is str and type(call_args) is dict and decision.rule.pointer != "/principal":
            rules = self.index.get(tool, self.other)
            env = self.env(tool, call_args, grant, server)
            for r in rules.permits + rules.approvals + rules.forbids:
                state = r.evaluate(env)
                if state is True:
                    satisfied.append(r.id)
                elif state is None:
                    errored.append(r.id)
        return Explanation(decision, tuple(satisfied), tuple(errored), self.program)

    def _allowed(self, tool: str, allowed_by: CompiledRule | None) -> Decision:
        """The allow of `tool` by `allowed_by` (None: the default), holding no budget."""
        if allowed_by is None:
            rule, message = Rule("/default", None, self.program.default_span), f"Tool {tool} is allowed by default."
        elif allowed_by.info.tools is None:
            rule = Rule(f"/policies/{escape_pointer(allowed_by.id)}", allowed_by.id, allowed_by.stmt.span)
            message = allowed_by.allow_message
        else:
            rule, message = Rule(self._tool_pointer(tool), allowed_by.id, allowed_by.stmt.span), allowed_by.allow_message
        return Decision(True, tool, rule, message)

    # -- limits ------------------------------------------------------------------------
    def _limits(self, tool, counters, env, grant, now, reserve, store):
        """Charge the plan's counter groups (`CounterGroup.charge`): all or none."""
        now = time.time() if now is None else now
        charges: list[Charge] = []
        meta: list[tuple[CompiledRule, int]] = []
        for group, compiled in counters:
            applicable: list[tuple[CompiledRule, int | float]] = []
            for r in compiled:
                if not r.applies(env):
                    continue
                inc = self._increments.get(r.id)
                if inc is None:
                    applicable.append((r, 1))
                    continue
                amount = inc(env)
                if not is_number(amount) or amount < 0:
                    lim = cast(ir.Limit, r.stmt)  # a limit's rule
                    message = (
                        f"Limit {lim.counter!r} counts the argument {_path_text(lim.increment)}, "
                        "which is missing or not a non-negative number."
                    )
                    return self._limit_denial(tool, r, None, message), None, None
                applicable.append((r, amount))
            if not applicable:
                continue
            # a counter group's rules are limits
            total, cap, binding = CounterGroup.charge(cast("list[tuple[LimitInfo, int | float]]",
                                                           [(r.info, a) for r, a in applicable]))
            key = group.key
            start, end = window_bounds(key.window, now)
            scope_id = _scope_id(key.scope, grant)
            store_key = f"{self.namespace}|{key.counter}|{key.scope}:{scope_id}|{key.window}:{start}"
            charges.append(Charge(store_key, total, cap, end))
            meta.append((next(r for r, _ in applicable if r.info is binding), end))
        if not charges:
            return None, None, None
        if not reserve:
            for i, c in enumerate(charges):
                if c.exceeds(store.value(c.key)):
                    r, end = meta[i]
                    return self._limit_denial(tool, r, end), None, None
            return None, None, None
        bad = store.reserve(charges)
        if bad is not None:
            r, end = meta[bad]
            return self._limit_denial(tool, r, end), None, None
        return None, Reservation(store, charges), None

    def _limit_denial(self, tool, r: CompiledRule, resets_at: int | None, message: str | None = None) -> Decision:
        lim = cast(ir.Limit, r.stmt)  # a limit's rule
        info = {"counter": lim.counter, "max": lim.max, "window": lim.window, "scope": lim.scope_kind}
        if resets_at is not None:
            info["resets_at"] = iso(resets_at)
        if message is None:
            assert resets_at is not None  # callers without a message pass the window's end
            base = lim.reason or f"Limit {lim.counter!r} exceeded."
            per = f"{_num(lim.max)} per {lim.window} per {lim.scope_kind}"
            message = f"{base} (limit {lim.counter}: {per}; resets at {iso(resets_at)})"
        pointer = f"/tools/{escape_pointer(tool)}/limits/{escape_pointer(lim.counter)}"
        return Decision(False, tool, Rule(pointer, r.id, lim.span), message, None, info)

    # -- explanations ----------------------------------------------------------------
    def _explain_no_approval(self, tool: str, a: CompiledRule, env: Env) -> Decision:
        """No permit names the tool and no `@approval` permit applies: the first approval
        permit names the denial (not cached: approval permits are the rare case)."""
        cause = a.fail_index(env)
        where, cond = ("scope", None) if cause is None or cause < 0 else a.causes[cause]
        return Decision(False, tool, *self._no_permit_rule(tool, a, where, cond))

    def _explain_no_permit(self, tool: str, rules: ToolRules, cause: int | None) -> Decision:
        """No permit applies: the first permit names the denial, at `cause` (its
        `fail_index`); with no permit at all, the default does. Cached: for a named tool
        in `rules.denied` (at `cause`, or 0 for the default), for any other by tool."""
        slot = 0 if cause is None else cause
        if rules.named:
            hit = rules.denied[slot]
        else:
            hit = self._explained.get((tool, "deny", cause))
        if hit is None:
            if cause is None:
                hit = Decision(False, tool, Rule("/default", None, self.program.default_span),
                               f"Tool {tool} is not allowed by policy (default deny).")
            else:
                p = rules.permits[0]
                where, cond = ("scope", None) if cause < 0 else p.causes[cause]
                hit = Decision(False, tool, *self._no_permit_rule(tool, p, where, cond))
            if rules.named:
                rules.denied = _filled(rules.denied, slot, hit)
            else:
                _bounded_put(self._explained, (tool, "deny", cause), hit)
        return hit

    def _no_permit_rule(self, tool: str, p: CompiledRule, where, cond) -> tuple[Rule, str]:
        """The rule and message naming why permit `p` does not apply (`fail_index`, read through `causes`)."""
        span = p.stmt.span
        reason = p.reason
        pointer = None
        if isinstance(where, ir.Clause):
            span = where.span
            reason = where.reason or reason
            if cond is not None and p.info.tools is not None and cast(PolicyInfo, p.info).approval is None:  # a permit
                pointer = self._pointer(tool, "require", cond)
        if pointer is None:
            pointer = f"/policies/{escape_pointer(p.id)}"
        message = reason or f"Denied: the call does not satisfy {pointer}."
        return Rule(pointer, p.id, span), message

    def _tool_pointer(self, tool: str) -> str:
        ptr = self._pointers.get(tool)
        if ptr is None:
            ptr = f"/tools/{escape_pointer(tool)}"
            if len(self._pointers) > 50_000:
                self._pointers.clear()
            self._pointers[tool] = ptr
        return ptr

    def _pointer(self, tool: str, section: str, cond) -> str:
        key = (tool, section, cond.name)
        ptr = self._pointers.get(key)
        if ptr is None:
            ptr = f"/tools/{escape_pointer(tool)}/{section}/{escape_pointer(cond.name)}"
            if len(self._pointers) > 50_000:
                self._pointers.clear()
            self._pointers[key] = ptr
        return ptr

    def _explain_forbid(self, tool: str, rules: ToolRules, at: int) -> Decision:
        """The denial by the forbid at position `at` of the tool's (cached: for a named
        tool in its `ToolDetail.forbidden`, for any other by tool)."""
        detail = rules.detail
        hit = detail.forbidden[at] if rules.named else self._explained.get((tool, "forbid", at))
        if hit is None:
            f = detail.forbids[at]
            pointer = f"/policies/{escape_pointer(f.id)}"
            if f.clauses and f.info.tools is not None:
                cond = f.steps[0][0][2]  # the first condition of the first clause
                if cond is not None:
                    pointer = self._pointer(tool, "deny_if", cond)
            message = f.reason or f"Denied by {pointer}."
            span = f.clauses[0][2].span if f.clauses else f.stmt.span
            hit = Decision(False, tool, Rule(pointer, f.id, span), message)
            if rules.named:
                detail.forbidden = _filled(detail.forbidden, at, hit)
            else:
                _bounded_put(self._explained, (tool, "forbid", at), hit)
        return hit


def _filled(cached: tuple, i: int, value: object) -> tuple:
    """`cached` with `value` at `i`: a new tuple, not an update in place, so a thread
    that races another's fill may lose it (it is rebuilt, equal, on a later call) but
    never reads a torn one."""
    out = list(cached)
    out[i] = value
    return tuple(out)


def _bounded_put(cache: dict, key, value):
    """Store and return `value`; a cache that grows past its bound starts over."""
    if len(cache) >= 50_000:
        cache.clear()
    cache[key] = value
    return value


def _scope_id(scope: str, caller: Caller) -> str:
    """Whom a limit's count belongs to: `grant` — the grant (for a user, the credential
    the gateway names, else the user); `principal` — the caller as an entity, so a user
    counts across all their sessions and clients, and grants and users never share a
    count; `policy` — everyone."""
    if scope == "grant":
        if type(caller) is Grant:
            return caller.id
        user = cast(User, caller)  # not a Grant: a User
        return user.grant_id if user.grant_id is not None else f"User::{quote(user.id)}"
    if scope == "principal":
        return f"{'Grant' if type(caller) is Grant else 'User'}::{quote(caller.id)}"
    return "*"


def _num(v) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def _path_text(e: ir.Expr | None) -> str:
    from mcpp.lang.atoms import input_path

    p = input_path(e) if e is not None else None
    return "args." + ".".join(p) if p else "?"


_ATOM_CACHE: dict[tuple[int, bool], tuple[ir.Expr, object]] = {}


def _atom_or_none(e: ir.Expr, want: bool):
    """The JSON condition an expression stands for (memoised: explanations are on the deny path)."""
    key = (id(e), want)
    hit = _ATOM_CACHE.get(key)
    if hit is not None and hit[0] is e:
        return hit[1]
    try:
        cond = atom(e, want)
    except NotExpressible:
        cond = None
    if len(_ATOM_CACHE) > 100_000:
        _ATOM_CACHE.clear()
    _ATOM_CACHE[key] = (e, cond)
    return cond
