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
from typing import Callable

from mcpp.lang import ir
from mcpp.lang.atoms import NotExpressible, atom
from mcpp.lang.diagnostics import Span
from mcpp.lang.evaluator import Closure, Env, compile_expr, scope_check
from mcpp.lang.plan import CounterGroup, ToolPlan
from mcpp.lang.program import LimitInfo, PolicyInfo, Program
from mcpp.lang.values import Entity, is_number

from .limits import Charge, CounterStore, MemoryCounters, Reservation, iso, window_bounds


@dataclass(frozen=True)
class Grant:
    """The caller: a grant id, its label, and the groups the gateway configuration puts it in."""

    id: str = "anonymous"
    label: str = ""
    groups: frozenset[str] = frozenset()


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
    approver is shown."""

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
        d = {
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


def escape_pointer(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


# ---- compiled rules --------------------------------------------------------------


class CompiledRule:
    """A policy or limit compiled once: scope checks plus one closure per clause."""

    __slots__ = ("info", "id", "checks", "clauses", "stmt", "reason", "steps", "applies", "allow_message")

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
        self.applies = self._specialise()
        self.allow_message = f"Allowed by {self.id}."

    def _specialise(self) -> Callable[[Env], bool]:
        """`applies(env)`: scope checks, then every clause true (when) / false (unless).
        The common shapes get a loop-free function: this runs for every rule of a tool."""
        checks = self.checks
        fns = [(fn, want) for fn, want, _ in self.clauses]
        if not checks and not fns:
            return lambda env: True
        if not checks and len(fns) == 1:
            (fn, want), = fns
            return lambda env: fn(env) is want

        def applies(env: Env) -> bool:
            for check in checks:
                if not check(env):
                    return False
            for fn, want in fns:
                if fn(env) is not want:
                    return False
            return True

        return applies

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

    def first_failing(self, env: Env):
        """Why this rule does not apply: ("scope", None), (clause, the first failing JSON
        condition or None), or None (it applies)."""
        for check in self.checks:
            if not check(env):
                return ("scope", None)
        for (fn, want, clause), steps in zip(self.clauses, self.steps):
            if fn(env) is not want:
                for step_fn, step_want, cond in steps:
                    if step_fn(env) is not step_want:
                        return (clause, cond)
                return (clause, None)  # pragma: no cover - a failing clause has a failing step
        return None


def _steps(e: ir.Expr, want: bool) -> list[tuple[Closure, bool, object]]:
    """Flatten T(a && b …) / F(a || b …) (through `!`) into its parts, in source order."""
    if isinstance(e, ir.Not):
        return _steps(e.expr, not want)
    if (isinstance(e, ir.And) and want) or (isinstance(e, ir.Or) and not want):
        return _steps(e.left, want) + _steps(e.right, want)
    return [(compile_expr(e), want, _atom_or_none(e, want))]


@dataclass(slots=True)
class ToolRules:
    """A tool's plan with its rules compiled: what `decide` runs for one call. The plan's
    flags are copied in so the hot path reads one object."""

    plan: ToolPlan
    permits: list[CompiledRule] = field(default_factory=list)
    forbids: list[CompiledRule] = field(default_factory=list)
    counters: list[tuple[CounterGroup, list[CompiledRule]]] = field(default_factory=list)
    hidden: bool = False
    default_allows: bool = False
    approvals: list[CompiledRule] = field(default_factory=list)

    @property
    def limits(self) -> list[CompiledRule]:
        return [r for _, rules in self.counters for r in rules]


class Engine:
    """Decides tool calls for one policy. Thread-safe; counters live in `store`."""

    def __init__(self, program: Program, store: CounterStore | None = None, namespace: str = "default"):
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

        def rules(tp: ToolPlan) -> ToolRules:
            return ToolRules(
                tp,
                [rule(p) for p in tp.permits],
                [rule(f) for f in tp.forbids],
                [(g, [rule(li) for li in g.limits]) for g in tp.counters],
                tp.hidden,
                tp.default_allows,
                [rule(a) for a in tp.approvals],
            )

        plan = program.plan()
        self.other = rules(plan.other)
        self.index: dict[str, ToolRules] = {t: rules(tp) for t, tp in plan.tools.items()}
        self._increments: dict[str, Closure] = {
            r.id: compile_expr(r.stmt.increment) for r in compiled.values() if getattr(r.stmt, "increment", None) is not None
        }
        self._entities: dict = {}  # grant / tool / server → Entity, built once
        self._pointers: dict = {}
        self._group_parents: dict[str, frozenset] = {
            t: frozenset(("Action", g) for g in tp.ancestors) for t, tp in plan.tools.items() if tp.ancestors
        }

    # -- the request model -----------------------------------------------------------
    def _groups_of(self, tool: str) -> frozenset:
        return self._group_parents.get(tool, frozenset())

    def env(self, tool: str, args: dict, grant: Grant, server: str) -> Env:
        cache = self._entities
        principal = cache.get(grant.id)
        if principal is None or principal.attrs["label"] != grant.label or principal.groups is not grant.groups:
            principal = Entity("Grant", grant.id, {"label": grant.label}, frozenset(("Group", g) for g in grant.groups))
            principal.groups = grant.groups
        action = cache.get(("Action", tool))
        if action is None:
            action = Entity("Action", tool, None, self._groups_of(tool))
        resource = cache.get(("Server", server))
        if resource is None:
            resource = Entity("Server", server)
        if len(cache) > 50_000:  # bounded: grants and tools come from callers
            cache.clear()
        cache[grant.id] = principal
        cache[("Action", tool)] = action
        cache[("Server", server)] = resource
        return Env(principal, action, resource, args, self._groups_of)

    # -- deciding ----------------------------------------------------------------------
    def decide(
        self,
        tool: str,
        args: object = None,
        grant: Grant | None = None,
        server: str = "default",
        now: float | None = None,
        reserve: bool = True,
        approved: bool = False,
    ) -> Decision:
        """The decision for one `tools/call`. With `reserve`, an allow holds its limit budget.
        `approved`: a person approved this exact call, so a call only an `@approval` permit
        allows is allowed (and reserves); without it such a call is decided "approval",
        its limits checked but not reserved."""
        try:
            return self._decide(tool, {} if args is None else args, grant or Grant(), server, now, reserve, approved)
        except Exception as e:  # fail closed
            return Decision(False, str(tool), Rule("/error"), f"policy evaluation failed: {type(e).__name__}: {e}")

    def explain(
        self, tool: str, args: object = None, grant: Grant | None = None, server: str = "default"
    ) -> "Explanation":
        """Cedar's full answer for one call, beside the decision: every policy that
        applies (its scope matches and every clause holds) and every policy whose
        evaluation errored (Cedar skips those). Off the hot path: it evaluates every
        rule of the tool, where `decide` stops at the first that settles the call."""
        grant = grant or Grant()
        decision = self.decide(tool, args, grant, server, reserve=False)
        satisfied: list[str] = []
        errored: list[str] = []
        if type(tool) is str and type(args if args is not None else {}) is dict:
            rules = self.index.get(tool, self.other)
            env = self.env(tool, {} if args is None else args, grant, server)
            for r in rules.permits + rules.approvals + rules.forbids:
                state = r.evaluate(env)
                if state is True:
                    satisfied.append(r.id)
                elif state is None:
                    errored.append(r.id)
        return Explanation(decision, tuple(satisfied), tuple(errored), self.program)

    def _decide(self, tool, args, grant, server, now, reserve, approved=False) -> Decision:
        if type(tool) is not str:
            return Decision(False, str(tool), Rule("/request"), "tool name must be a string")
        if type(args) is not dict:
            return Decision(False, tool, Rule("/request"), "tool arguments must be a JSON object")
        rules = self.index.get(tool, self.other)
        if rules.hidden:
            span = self.program.hidden.get(tool)
            return Decision(False, tool, Rule("/hide", None, span), f"Tool {tool} is not available (hidden by policy).")
        env = self.env(tool, args, grant, server)
        allowed_by: CompiledRule | None = None
        for p in rules.permits:
            if p.applies(env):
                allowed_by = p
                break
        approval_by: CompiledRule | None = None
        if allowed_by is None and not rules.default_allows:
            for a in rules.approvals:
                if a.applies(env):
                    approval_by = a
                    break
            if approval_by is None:
                return self._explain_no_permit(tool, rules, env)
        for f in rules.forbids:
            if f.applies(env):
                return self._explain_forbid(tool, f, env)
        reservation = None
        limit_info = None
        if rules.counters:
            # an approval-bound call reserves only when it runs: once approved
            hold = reserve and (approval_by is None or approved)
            denied, reservation, limit_info = self._limits(tool, rules.counters, env, grant, now, hold)
            if denied is not None:
                return denied
        if approval_by is not None:
            text = approval_by.info.approval or ""
            rule = Rule(f"/policies/{escape_pointer(approval_by.id)}", approval_by.id, approval_by.stmt.span)
            message = (f"Allowed by {approval_by.id} after a person's approval." if approved else
                       f"Tool {tool} needs a person's approval ({approval_by.id})" + (f": {text}" if text else "."))
            return Decision(approved, tool, rule, message, reservation, limit_info, True, text)
        if allowed_by is None:
            rule = Rule("/default", None, self.program.default_span)
            message = f"Tool {tool} is allowed by default."
        elif allowed_by.info.tools is None:
            rule = Rule(f"/policies/{escape_pointer(allowed_by.id)}", allowed_by.id, allowed_by.stmt.span)
            message = allowed_by.allow_message
        else:
            rule = Rule(self._tool_pointer(tool), allowed_by.id, allowed_by.stmt.span)
            message = allowed_by.allow_message
        return Decision(True, tool, rule, message, reservation, limit_info)

    # -- limits ------------------------------------------------------------------------
    def _limits(self, tool, counters, env, grant, now, reserve):
        """Charge the plan's counter groups (`CounterGroup.charge`): all or none."""
        now = time.time() if now is None else now
        charges: list[Charge] = []
        meta: list[tuple[CompiledRule, int]] = []
        for group, compiled in counters:
            applicable = []
            for r in compiled:
                if not r.applies(env):
                    continue
                amount: object = 1
                inc = self._increments.get(r.id)
                if inc is not None:
                    amount = inc(env)
                    if not is_number(amount) or amount < 0:  # type: ignore[operator]
                        lim: ir.Limit = r.stmt
                        message = (
                            f"Limit {lim.counter!r} counts the argument {_path_text(lim.increment)}, "
                            "which is missing or not a non-negative number."
                        )
                        return self._limit_denial(tool, r, None, message), None, None
                applicable.append((r, amount))
            if not applicable:
                continue
            amount, cap, binding = CounterGroup.charge([(r.info, a) for r, a in applicable])
            key = group.key
            start, end = window_bounds(key.window, now)
            scope_id = grant.id if key.scope == "grant" else "*"
            store_key = f"{self.namespace}|{key.counter}|{key.scope}:{scope_id}|{key.window}:{start}"
            charges.append(Charge(store_key, amount, cap, end))  # type: ignore[arg-type]
            meta.append((next(r for r, _ in applicable if r.info is binding), end))
        if not charges:
            return None, None, None
        if not reserve:
            for i, c in enumerate(charges):
                if self.store.value(c.key) + c.amount > c.max:
                    r, end = meta[i]
                    return self._limit_denial(tool, r, end), None, None
            return None, None, None
        bad = self.store.reserve(charges)
        if bad is not None:
            r, end = meta[bad]
            return self._limit_denial(tool, r, end), None, None
        return None, Reservation(self.store, charges), None

    def _limit_denial(self, tool, r: CompiledRule, resets_at: int | None, message: str | None = None) -> Decision:
        lim: ir.Limit = r.stmt
        info = {"counter": lim.counter, "max": lim.max, "window": lim.window, "scope": lim.scope_kind}
        if resets_at is not None:
            info["resets_at"] = iso(resets_at)
        if message is None:
            base = lim.reason or f"Limit {lim.counter!r} exceeded."
            per = f"{_num(lim.max)} per {lim.window} per {lim.scope_kind}"
            message = f"{base} (limit {lim.counter}: {per}; resets at {iso(resets_at)})"
        pointer = f"/tools/{escape_pointer(tool)}/limits/{escape_pointer(lim.counter)}"
        return Decision(False, tool, Rule(pointer, r.id, lim.span), message, None, info)

    # -- explanations ----------------------------------------------------------------
    def _explain_no_permit(self, tool: str, rules: ToolRules, env: Env) -> Decision:
        if not rules.permits and not rules.approvals:
            return Decision(
                False, tool, Rule("/default", None, self.program.default_span),
                f"Tool {tool} is not allowed by policy (default deny).",
            )
        p = rules.permits[0] if rules.permits else rules.approvals[0]
        where, cond = p.first_failing(env)
        span = p.stmt.span
        reason = p.reason
        pointer = None
        if isinstance(where, ir.Clause):
            span = where.span
            reason = where.reason or reason
            if cond is not None and p.info.tools is not None and p.info.approval is None:
                pointer = self._pointer(tool, "require", cond)
        if pointer is None:
            pointer = f"/policies/{escape_pointer(p.id)}"
        message = reason or f"Denied: the call does not satisfy {pointer}."
        return Decision(False, tool, Rule(pointer, p.id, span), message)

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

    def _explain_forbid(self, tool: str, f: CompiledRule, env: Env) -> Decision:
        pointer = f"/policies/{escape_pointer(f.id)}"
        if f.clauses and f.info.tools is not None:
            cond = f.steps[0][0][2]  # the first condition of the first clause
            if cond is not None:
                pointer = self._pointer(tool, "deny_if", cond)
        message = f.reason or f"Denied by {pointer}."
        span = f.clauses[0][2].span if f.clauses else f.stmt.span
        return Decision(False, tool, Rule(pointer, f.id, span), message)


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
