"""Lints: semantic findings about a policy, each proved with Z3 (never guessed).

Every finding is a `Diagnostic` whose `code` is the lint id and whose `data["docs"]`
points at its page in docs/lints/. A lint reports only what it proved: an UNSAT answer
(e.g. "this permit never takes effect") is a proof, and a SAT answer used as evidence
(e.g. a call that bypasses a forbid) is replayed through the engine first. Queries the
solver cannot settle in time produce no finding of their own; the `undecided` finding
lists them per lint (tools and reasons), so a timeout never reads as a clean result.
"""

from __future__ import annotations

import bisect
import dataclasses
import re

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable

import z3

from mcpp.lang import ir
from mcpp.lang.atoms import input_path
from mcpp.lang.diagnostics import Diagnostic, Span
from mcpp.lang.ir import walk
from mcpp.lang.plan import mentioned_tools
from mcpp.lang.program import AssertInfo, LimitInfo, PolicyInfo, Program
from mcpp.lang.evaluator import compile_expr
from mcpp.lang.parser import paused_gc
from mcpp.lang.values import ERR, json_type

from . import regex as rx

if TYPE_CHECKING:
    from mcpp.runtime.engine import Engine
from .deadline import Deadline
from .encode import decide, query_tools
from .solve import OutOfTime, Outcome, Session, bounded
from .sym import AND, NOT, OR, z


@dataclass(frozen=True)
class LintInfo:
    id: str
    severity: str
    summary: str


LINTS = {
    i.id: i
    for i in (
        LintInfo("dead-permit", "warning", "a permit that can never take effect"),
        LintInfo("redundant-rule", "warning", "a rule implied by another rule of the same effect"),
        LintInfo("unsatisfiable-condition", "warning", "a condition that can never hold"),
        LintInfo("forbid-bypass", "error", "a forbid a caller skips with a missing or mistyped argument"),
        LintInfo("unanchored-regex", "warning", "an allowlist regex without ^ or $"),
        LintInfo("always-allows", "warning", "calls allowed for everyone, whatever the arguments"),
        LintInfo("always-denies", "warning", "a policy that allows no call at all"),
        LintInfo("unfilled-default", "warning",
                 "an argument a rule reads whose declared default the gateway does not fill (or refuses)"),
        LintInfo("unusable-schema", "warning", "a rule about a tool whose input schema the gateway cannot use"),
        LintInfo("undecided", "warning", "checks a lint could not decide in time: its findings may be incomplete"),
    )
}

MAX_REDUNDANCY_CANDIDATES = 8
EXAMPLE_MS = 1000  # the unanchored-regex example: a courtesy, so a short bound  # per rule: implication checks against the closest rules


def docs_path(lint_id: str) -> str:
    return f"docs/lints/{lint_id}.md"


class Linter:
    def __init__(self, program: Program, *, timeout_ms: int = 2000, session: Session | None = None, only=None,
                 deadline: Deadline | None = None):
        self.program = program
        self.session = session or Session(timeout_ms, deadline=deadline)
        self.ctx = self.session.ctx
        self.only = set(only) if only else None
        catalog = self.session.tools()
        if catalog is not None:
            # typed (a catalog): exactly the catalog's tools, each with its own schema. No
            # stand-in: a tool the catalog does not list cannot be called through the gateway,
            # so a query about "any other tool" would be vacuous (and "allows every call" true
            # of a tool that has no calls).
            self.catalog: set[str] | None = set(catalog)
            self.named = sorted(catalog)
            self.other: str | None = None
            self.tools = list(self.named)
        else:
            # the same tool list as verify and diff: every mentioned name, action group names
            # included (a tool may be called like a group, and `in` is reflexive), plus the
            # stand-in for every other tool
            self.catalog = None
            self.named, self.other = query_tools(program)
            self.tools = self.named + [self.other]
        self._tool: dict[str, tuple] = {}
        self._engine: Engine | None = None
        self._applies: dict = {}
        self._batched: set[str] = set()
        self._settled: dict[tuple, Outcome] = {}  # (tool, question) → answer (see `_prefetch`)
        self._tools_sets: dict[int, frozenset] = {}
        self._bypass: dict[tuple, tuple | None] = {}  # (forbid id, tool) → `_bypass_queries`
        self._claimed: dict[int, frozenset] = {}  # statement id → `_claims`
        self._searches = (0, 0)  # (bypass searches that found a call, all of them): see `_search`
        self._redundancy: dict | None = None  # see `_redundancy_index`
        self._redundant: dict[int, Any] = {}  # statement id → `_implied_by`, settled by `_prefetch`
        self._namers: dict[str, list] | None = None  # tool → the permits and approvals that name it
        # the program's statements indexed once: by id, and by the tools they name (every
        # per-tool or per-finding lookup was a scan of all statements: quadratic in size)
        self.permits = program.permits
        self.forbids = program.forbids
        self.infos: list[PolicyInfo | LimitInfo | AssertInfo] = [*program.policies, *program.limits, *program.asserts]
        self._by_id: dict[str, list] = {}
        self._naming: dict[str, list[int]] = {}  # tool → positions in `infos` of the statements naming it
        self._unscoped: list[int] = []  # positions of the statements that name no tool (every tool's)
        for n, i in enumerate(self.infos):
            self._by_id.setdefault(i.id, []).append(i)
            if i.tools is None:
                self._unscoped.append(n)
            else:
                for name in i.tools:
                    self._naming.setdefault(name, []).append(n)
        self.unknown = 0
        self.undecided: list[tuple[str, str | None, str]] = []  # (lint id, tool, reason): reported, never silent
        self._lint = ""
        self.findings: list[Diagnostic] = []

    # -- plumbing -------------------------------------------------------------------------
    @property
    def engine(self):
        """The real engine for this program (built once: large programs take a while)."""
        if self._engine is None:
            from mcpp.runtime.engine import Engine

            self._engine = Engine(self.program)
        return self._engine

    def tool(self, t: str):
        hit = self._tool.get(t)
        if hit is None:
            req = self.session.request()
            hit = self._tool[t] = (req, decide(req, self.program, t))
        return hit

    def sat(self, t: str, formula, witness: bool = False):
        req, _ = self.tool(t)
        o = self.session.check(req, formula, tool=t, witness=witness)
        if o.status == "unknown":
            self.undecide(t, o.reason)
        return o

    def ask(self, t: str, key: tuple, formula: Callable[[], Any]) -> Outcome:
        """`sat(t, formula())`, answered from what `_prefetch` settled for `t` when it
        asked this question (`key`) already: the same answer, with the same `undecided`
        bookkeeping, as asking it here."""
        return self._asked(t, key, lambda: self.session.check(self.tool(t)[0], formula()))

    def _asked(self, t: str, key: tuple, asking: Callable[[], Outcome]) -> Outcome:
        o = self._settled.pop((t, key), None)
        if o is None:
            o = asking()
        if o.status == "unknown":
            self.undecide(t, o.reason)
        return o

    def undecide(self, tool: str | None, reason: str) -> None:
        """A check the current lint could not decide: no finding rests on it, and the
        `undecided` finding says so (a timeout is never a silent pass)."""
        self.unknown += 1
        self.undecided.append((self._lint, tool, reason))

    def can_apply(self, stmt, t: str) -> str:
        """sat | unsat | unknown: can the rule apply to a call to `t`? (asked once per pair)"""
        key = (id(stmt), t)
        hit = self._applies.get(key)
        if hit is None and t not in self._batched:
            self._batch_applies(t)
            hit = self._applies.get(key)
        if hit is None:
            hit = self._applies[key] = self.sat(t, self.tool(t)[1].enc.applies(stmt)).status
        return hit

    def _batch_applies(self, t: str) -> None:
        """Settle "can it apply to `t`?" for every rule and assertion of the tool with a few
        shared checks (Session.which_sat: the same answers, fewer queries); what those
        leave open is asked rule by rule."""
        self._batched.add(t)
        stmts = [st for st in self.statements_for(t) if (id(st), t) not in self._applies]
        if not stmts:
            return
        req, d = self.tool(t)
        for st, status in zip(stmts, self.session.which_sat(req, [d.enc.applies(st) for st in stmts])):
            if status is not None:
                self._applies[(id(st), t)] = status

    # -- the per-tool pass ---------------------------------------------------------------
    # The lints below ask their questions rule by rule, and rules of different tools never
    # share a question. Asked in that order, the questions about one tool are spread over
    # every lint, and the tool's incremental solver (Session.solver_for) is rebuilt for
    # each lint: building, filling and freeing hundreds of solvers cost more than solving.
    # So before the lints run, `_prefetch` visits the tools one at a time and settles the
    # questions the lints will ask about it — can each rule apply, does each permit take
    # effect, can the tool be allowed or denied at all (Session.which_sat: a few shared
    # models) and the first forbid-bypass search of each forbid — with one solver, freed
    # when the tool is done. The lints then read the answers (`ask`, `can_apply`): the
    # same questions over the same constraints, so the same sat/unsat answers; what the
    # pass left open (a batch that ran out of time) the lint asks itself, as before, and
    # only a lint that reads an UNKNOWN reports it (`undecided`).

    def _prefetch(self) -> None:
        applies = any(self.enabled(x) for x in ("unsatisfiable-condition", "dead-permit", "redundant-rule"))
        dead = self.enabled("dead-permit")
        always = self.enabled("always-allows")
        bypass = self.enabled("forbid-bypass")
        redundant = self.enabled("redundant-rule")
        found: set[int] = set()  # forbids a bypass search found a call for: the lint stops there
        for t in self.tools:
            if self.session.expired() is not None:
                break  # the run is over: each lint reports what it could not decide
            req, d = self.tool(t)
            mine = self.infos_for(t)
            questions: list[tuple[tuple, object, object]] = []  # (key, formula, the statement it is about)
            if applies and t not in self._batched:
                self._batched.add(t)
                for i in mine:
                    if (id(i.stmt), t) not in self._applies:
                        questions.append((("applies", i.stmt), d.enc.applies(i.stmt), i.stmt))
            permits = [i for i in mine if isinstance(i, PolicyInfo) and i.effect == "permit" and i.approval is None]
            if dead and not d.hidden:
                for p in permits:
                    if t in self._tools_set(p) and t not in self.closes_default(p, (t,)):
                        questions.append((("effect", id(p.stmt)), self._effect(p, t), p.stmt))
            if always and not d.hidden:
                allowed = d.allowed(zero=True)
                questions += [(("allowed",), allowed, None), (("denied",), NOT(self.ctx, allowed), None)]
            searches = []
            forbids = [i for i in mine if isinstance(i, PolicyInfo) and i.effect == "forbid" and i.stmt.clauses]
            for f in forbids if bypass else ():
                # the lint searches a forbid's tools in this order until a search finds a
                # call (and it replays): so does the pass
                if id(f.stmt) in found or t not in self._tools_set(f):
                    continue
                qs = self._bypass_queries(f, t)
                if qs is not None:
                    searches.append((f, qs))
            # every formula is built before the first check: the solver is made for the
            # request's final shape and serves every question about the tool. The bypass
            # searches first: their witnesses are read, and a solver fresh from the
            # request's constraints finds them fastest (after the batch below, measured 10x
            # slower: Z3 keeps the phases of its last models)
            for f, (base, typed) in searches:
                o = self._settled[(t, ("bypass-typed", id(f.stmt)))] = self._search(t, typed)
                if not o.sat:
                    o = self._settled[(t, ("bypass", id(f.stmt)))] = self._search(t, base)
                if o.sat:
                    found.add(id(f.stmt))
            # then the yes/no questions, the calls that allow and those that deny each
            # asked as one conjunction first (most hold together)
            if questions:
                statuses = self.session.which_sat(req, [q for _, q, _ in questions], _together(questions, self._claims))
                for (key, _, _), status in zip(questions, statuses):
                    if status is None:
                        continue
                    if key[0] == "applies":
                        self._applies[(id(key[1]), t)] = status
                    else:
                        self._settled[(t, key)] = Outcome(status)
            if redundant:
                # a rule of this tool alone: whether another rule implies it asks only about
                # this tool (once "can it apply?" is settled here, so an UNKNOWN of that is
                # still reported by the lint that asks it first)
                self._lint = "redundant-rule"
                for i in mine:
                    if isinstance(i, PolicyInfo) and self.tools_of(i) == [t] and (id(i.stmt), t) in self._applies:
                        self._redundant[id(i.stmt)] = self._implied_by(i)
                self._lint = ""
            self.session.release(req)

    def infos_for(self, t: str) -> list:
        """The statements (policies, limits, assertions) that can concern a call to `t`, in
        program order: those naming it and those naming no tool."""
        return [self.infos[n] for n in sorted(self._naming.get(t, []) + self._unscoped)]

    def statements_for(self, t: str) -> list:
        return [i.stmt for i in self.infos_for(t)]

    def _search(self, t: str, formula) -> Outcome:
        """A forbid-bypass search on `t` (`Session.check` with a witness). Whether it is
        asked readable-first (`likely`) follows how the searches so far went: a policy whose
        forbids can be bypassed gets one check per search instead of two, one whose
        forbids hold pays no preference check on each proof."""
        found, asked = self._searches
        o = self.session.check(self.tool(t)[0], formula, tool=t, witness=True, likely=2 * found >= asked)
        self._searches = (found + o.sat, asked + 1)
        return o

    def _claims(self, stmt) -> frozenset:
        hit = self._claimed.get(id(stmt))
        if hit is None:
            hit = self._claimed[id(stmt)] = _claims(stmt)
        return hit

    def _tools_set(self, info) -> frozenset:
        hit = self._tools_sets.get(id(info))
        if hit is None:
            hit = self._tools_sets[id(info)] = frozenset(self.tools_of(info))
        return hit

    def tools_of(self, info) -> list[str]:
        if info.tools is None:
            return self.tools
        if self.catalog is not None:  # a tool the catalog lacks has no calls (`mcpp check` reports it)
            return sorted(t for t in info.tools if t in self.catalog)
        return sorted(info.tools)

    def suppressed(self, lint_id: str, rule: str | None) -> bool:
        """`@suppress("lint-id, …")` on the statement a finding is about (or on `default`
        for policy-wide findings) silences it, like Regal's ignore directives."""
        stmts: list[ir.Policy | ir.Limit | ir.Assert | ir.Default] = []
        if rule is not None:
            stmts = [i.stmt for i in self._by_id.get(rule, ())]
        elif self.program.document is not None:
            stmts = [s for s in self.program.document.statements if isinstance(s, ir.Default)]
        for st in stmts:
            for a in st.annotations:
                if a.key == "suppress" and lint_id in {x.strip() for x in a.value.split(",")}:
                    return True
        return False

    def report(self, lint_id: str, message: str, span: Span | None, severity: str | None = None, notes=(), **data):
        if self.suppressed(lint_id, data.get("rule")):
            return
        info = LINTS[lint_id]
        if self.program.origin == "json":  # no source positions: the rule id is its JSON pointer
            span = Span(0, 0, 0, 0)
            if data.get("rule", "").startswith("/"):
                data["pointer"] = data["rule"]
        d = Diagnostic(message, span or Span(1, 1, 1, 1), severity or info.severity, lint_id, self.program.filename,
                       tuple(notes), {"docs": docs_path(lint_id), **data})
        self.findings.append(d)

    def enabled(self, lint_id: str) -> bool:
        return self.only is None or lint_id in self.only or (lint_id == "always-allows" and "always-denies" in self.only)

    def run(self) -> list[Diagnostic]:
        # the cyclic GC paused, as for parsing: the terms and findings are acyclic, and
        # collections while they pile up cost a sixth of a large lint
        with paused_gc():
            return self._run()

    def _run(self) -> list[Diagnostic]:
        self._prefetch()
        solver_free = ("unanchored-regex", "unfilled-default", "unusable-schema")  # syntactic: they run whatever the time
        for lint_id, fn in (
            ("unsatisfiable-condition", self.unsatisfiable_conditions),
            ("dead-permit", self.dead_permits),
            ("redundant-rule", self.redundant_rules),
            ("forbid-bypass", self.forbid_bypasses),
            ("unanchored-regex", self.unanchored_regexes),
            ("always-allows", self.always),
            ("unfilled-default", self.unfilled_defaults),
            ("unusable-schema", self.unusable_schemas),
        ):
            if self.enabled(lint_id):
                self._lint = lint_id
                late = self.session.expired()
                if late is not None and lint_id not in solver_free:
                    self.undecide(None, f"the lint did not run: {late}")  # past the run's deadline: not even encoded
                    continue
                fn()
        self._report_undecided()
        self.findings.sort(key=lambda d: (d.span.line, d.span.col, d.code))
        return self.findings

    def _report_undecided(self) -> None:
        by_lint: dict[str, list] = {}
        for lint_id, tool, reason in self.undecided:
            by_lint.setdefault(lint_id, []).append((tool, reason))
        span = self.program.default_span or _first_span(self.program)
        for lint_id, items in sorted(by_lint.items()):
            tools = sorted({t for t, _ in items if t is not None})
            reasons = sorted({r for _, r in items})
            where = f" (tools: {', '.join(self.never(t) for t in tools)})" if tools else ""
            late = self.session.deadline is not None and any(self.session.deadline.reason in r for r in reasons)
            hint = "raise --deadline (the whole run's budget)" if late else "raise --timeout"
            what = (f"{len(items)} check{'s' if len(items) != 1 else ''} could not be decided{where}"
                    if not reasons[0].startswith("the lint did not run") or len(items) > 1 else "not decided")
            self.report("undecided", f"{lint_id}: {what}: {reasons[0]}; its findings may be incomplete",
                        span, notes=tuple(reasons[1:]) + (f"{hint}, or simplify the rules involved",),
                        lint=lint_id, tools=tools, reasons=reasons)

    def where(self, info) -> str:
        stmt = info.stmt
        if self.program.origin == "mcpp" and stmt.span.line:
            return f"{info.id!r} (line {stmt.span.line})"
        return repr(info.id)

    def closes_default(self, p, tools=None) -> list[str]:
        """The tools for which permit `p` alone takes the tool out of `default allow`
        (docs/language.md §5: a tool that some permit names is not covered by the
        default): deleting `p` would let every call to them that no forbid or limit
        stops through. Under `default deny`, or for a permit naming no tool, none."""
        if self.program.default != "allow" or p.tools is None:
            return []
        if self._namers is None:
            self._namers = {}
            # an `@approval` permit names its tools too (lang/plan.py)
            for q in list(self.permits) + list(self.program.approvals):
                for name in q.tools or ():
                    self._namers.setdefault(name, []).append(q)
        out = []
        for t in sorted(p.tools if tools is None else set(tools) & p.tools):
            if t in self.program.hidden:
                continue  # hidden: denied whatever the permits say
            if not any(q is not p for q in self._namers.get(t, ())):
                out.append(t)
        return out

    def never(self, t: str) -> str:
        return f"{t!r}" if t != self.other else f"any tool the policy does not name (e.g. {t!r})"

    # -- unsatisfiable-condition ----------------------------------------------------------------
    def unsatisfiable_conditions(self) -> None:
        rules: list[tuple[PolicyInfo | LimitInfo | AssertInfo, ir.Policy | ir.Limit | ir.Assert]]
        rules = [(p, p.stmt) for p in self.program.policies] + [(li, li.stmt) for li in self.program.limits]
        rules += [(a, a.stmt) for a in self.program.asserts]
        for info, stmt in rules:
            if not stmt.clauses and stmt.scope.principal.op == "any" and stmt.scope.resource.op == "any":
                continue
            tools = self.tools_of(info)
            if not tools:
                continue  # typed: only tools the catalog lacks (an error of `mcpp check`), no calls to judge
            if any(self.can_apply(stmt, t) != "unsat" for t in tools):
                continue
            kind = "assertion" if isinstance(stmt, ir.Assert) else type(stmt).__name__.lower()
            notes = _vacuous_note(kind)
            closes: list[str] = []
            if isinstance(stmt, ir.Policy):
                kind = stmt.effect
                if kind == "permit":
                    closes = self.closes_default(info)
                    if closes:
                        notes = (_closes_note(closes),)
            # the narrowest culprit: one clause that can never hold on its own
            for c in stmt.clauses:
                if all(self.sat(t, self.tool(t)[1].enc.clause_ok(c)).unsat for t in tools):
                    want = "true" if c.kind == "when" else "false"
                    self.report("unsatisfiable-condition",
                                f"this `{c.kind}` condition can never be {want}, so {kind} {self.where(info)} never applies",
                                c.span, notes=notes, rule=info.id, closes_default=closes)
                    break
            else:
                self.report("unsatisfiable-condition",
                            f"the scope and conditions of {kind} {self.where(info)} can never hold together, so it never applies",
                            stmt.span, notes=notes, rule=info.id, closes_default=closes)

    # -- dead-permit ----------------------------------------------------------------------------
    def dead_permits(self) -> None:
        for p in self.permits:
            tools = self.tools_of(p)
            dead: dict[str, str] = {}
            live = False
            for t in tools:
                req, d = self.tool(t)
                if d.hidden:
                    dead[t] = "hidden"
                    continue
                if t in self.closes_default(p):
                    live = True  # deleting it lets `default allow` cover t: it takes effect
                    continue
                mine = d.enc.applies(p.stmt)
                if self.can_apply(p.stmt, t) != "sat":
                    dead[t] = "never applies"  # unsatisfiable-condition reports it (or unknown)
                    continue
                o = self.ask(t, ("effect", id(p.stmt)), lambda: self._effect(p, t))
                if o.unsat:
                    dead[t] = self._overriders(t, mine)
                elif o.sat:
                    live = True
                    if p.tools is None:
                        break
                else:
                    live = True  # unknown: no claim
            if live and p.tools is None:
                continue
            reported = {t: why for t, why in dead.items() if why != "never applies"}
            if not reported:
                continue
            # under `default allow` a permit that never lets a call through still decides
            # something: the tools it alone names are out of the default (every call to
            # them is denied unless another permit allows it); say that, not "no effect"
            closing = set(self.closes_default(p, reported))
            if live:
                for t, why in reported.items():
                    if t in closing:
                        msg = (f"permit {self.where(p)} never allows a call to tool {self.never(t)} ({why}); "
                               f"its only effect is to take {t!r} out of `default allow`")
                        self.report("dead-permit", msg, p.stmt.span, notes=(_closes_note([t]),), rule=p.id, tool=t,
                                    closes_default=[t])
                    else:
                        self.report("dead-permit", f"permit {self.where(p)} never takes effect for tool {self.never(t)}: {why}",
                                    p.stmt.span, rule=p.id, tool=t)
                continue
            whys = "; ".join(sorted(set(reported.values())))
            plain = sorted(set(reported) - closing)
            if plain:
                self.report("dead-permit", f"permit {self.where(p)} never takes effect: {whys}",
                            p.stmt.span, rule=p.id, tools=plain)
            if closing:
                names = ", ".join(repr(t) for t in sorted(closing))
                self.report("dead-permit", f"permit {self.where(p)} never allows a call ({whys}); its only effect is to "
                            f"take {names} out of `default allow`", p.stmt.span, notes=(_closes_note(sorted(closing)),),
                            rule=p.id, tools=sorted(closing), closes_default=sorted(closing))

    def _effect(self, p, t: str):
        """Permit `p` lets a call to `t` through at fresh counters: it applies, no forbid
        does, every limit passes."""
        _, d = self.tool(t)
        return AND(self.ctx, d.enc.applies(p.stmt), NOT(self.ctx, d.forbidden()), d.limits_ok(zero=True))

    def _overriders(self, t: str, mine) -> str:
        """Which forbids (and limits) make the permit useless: an unsat core over them."""
        req, d = self.tool(t)
        ctx = self.ctx
        s = z3.Solver(ctx=ctx)
        s.add(z(ctx, mine), *req.constraints())
        lits = {}
        for i, (f, formula) in enumerate(d.forbids):
            lit = z3.Bool(f"use_forbid_{i}", ctx)
            s.add(z3.Implies(lit, z(ctx, NOT(ctx, formula))))
            lits[str(lit)] = ("forbid", f.id)
        lit = z3.Bool("use_limits", ctx)
        s.add(z3.Implies(lit, z(ctx, d.limits_ok(zero=True))))
        lits[str(lit)] = ("limit", None)
        try:
            names = self.session.solve(s, lambda r: [str(c) for c in s.unsat_core()] if r == z3.unsat else None,
                                       isolate=req.isolate, assumptions=[z3.Bool(k, ctx) for k in lits])
        except OutOfTime as e:  # the permit is proved dead; only the explanation is missing
            self.undecide(t, e.reason)
            names = None
        if names is None:
            return "overridden by forbids"
        core = [lits[n] for n in names if n in lits]
        forbids = [fid for kind, fid in core if kind == "forbid"]
        parts = []
        if forbids:
            parts.append("overridden by forbid " + ", ".join(repr(f) for f in forbids))
        if any(kind == "limit" for kind, _ in core):
            parts.append("every call it allows exceeds a limit (max 0, or a negative or missing increment)")
        return " and ".join(parts) or "overridden by forbids"

    # -- redundant-rule -------------------------------------------------------------------------
    def redundant_rules(self) -> None:
        for effect in ("permit", "forbid"):
            for r in self._redundancy_index()[effect][0]:
                q = self._redundant.pop(id(r.stmt)) if id(r.stmt) in self._redundant else self._implied_by(r)
                if q is None:
                    continue
                verb = "also applies" if effect == "permit" else "also applies (and denies)"
                self.report("redundant-rule",
                            f"{effect} {self.where(r)} is redundant: whenever it applies, {effect} {self.where(q)} {verb}",
                            r.stmt.span, notes=("removing it does not change any decision",), rule=r.id, implied_by=q.id)

    def _redundancy_index(self) -> dict:
        """effect → (its rules in order, what each reads, the rules naming each tool, the
        rules naming none)."""
        if self._redundancy is None:
            self._redundancy = {}
            for effect in ("permit", "forbid"):
                rules = [p for p in self.program.policies if p.effect == effect]
                by_tool: dict = {}
                for p in rules:
                    for t in (p.tools or ()):
                        by_tool.setdefault(t, []).append(p)
                self._redundancy[effect] = (rules, {p.id: _reads(p.stmt) for p in rules}, by_tool,
                                            [p for p in rules if p.tools is None])
        return self._redundancy

    def _implied_by(self, r):
        """The rule of the same effect that makes `r` redundant (it applies whenever `r`
        does), or None. Asked by `redundant_rules`, or ahead by `_prefetch` for a rule of
        one tool while that tool's solver is alive: the same questions, the same answer."""
        rules, reads, by_tool, unscoped = self._redundancy_index()[r.effect]
        r_tools = set(self.tools_of(r))
        if not any(self.can_apply(r.stmt, t) == "sat" for t in sorted(r_tools)):
            return None  # never applies: unsatisfiable-condition's finding, not a redundancy
        if r.effect == "permit" and self.closes_default(r):
            return None  # removing r would put a tool back under `default allow`
        cands = []
        pool = rules if r.tools is None else unscoped + by_tool.get(min(r.tools), [])
        for q in pool:
            if q is r or not _covers(q, r_tools):
                continue
            if not reads[q.id] <= reads[r.id]:
                continue  # q reads something r does not: it is not a generalisation of r
            cands.append(q)
        cands.sort(key=lambda q: (abs(q.index - r.index)))
        for q in cands[:MAX_REDUNDANCY_CANDIDATES]:
            if not self._implies(r, q, r_tools):
                continue
            if q.index > r.index and self._implies(q, r, set(self.tools_of(q)) & r_tools) and set(self.tools_of(q)) <= r_tools:
                continue  # equivalent rules: the later one is reported
            return q
        return None

    def _implies(self, r, q, tools) -> bool:
        ctx = self.ctx
        for t in sorted(tools):
            _, d = self.tool(t)
            f = AND(ctx, d.enc.applies(r.stmt), NOT(ctx, d.enc.applies(q.stmt)))
            if not self.sat(t, f).unsat:
                return False
        return True

    # -- forbid-bypass --------------------------------------------------------------------------
    def _bypass_queries(self, f, t: str):
        """(skipped, skipped with every read argument present) for forbid `f` on tool `t`:
        calls allowed at fresh counters on which the forbid does not apply only because
        some clause errors. None when there are none by construction (hidden, or False).
        Built once per pair (`_prefetch` and the lint both ask)."""
        key = (id(f.stmt), t)
        if key not in self._bypass:
            self._bypass[key] = self._build_bypass_queries(f, t)
        return self._bypass[key]

    def _build_bypass_queries(self, f, t: str):
        ctx = self.ctx
        req, d = self.tool(t)
        if d.hidden:
            return None
        enc = d.enc
        oks, errs = [], []
        for c in f.stmt.clauses:
            sv = enc.expr(c.expr)
            oks.append(sv.truth(ctx, c.kind == "when"))
            errs.append(NOT(ctx, OR(ctx, *(a.guard for a in sv.of("bool")))))
        skipped = AND(ctx, enc.scope_ok(f.stmt.scope), *(OR(ctx, ok, e) for ok, e in zip(oks, errs)), OR(ctx, *errs))
        base = AND(ctx, d.allowed(zero=True), skipped)
        if base is False:
            return None
        present = AND(ctx, *(NOT(ctx, req.path(p).is_("missing")) for p in _read_paths(f.stmt)))
        return base, AND(ctx, base, present)

    def forbid_bypasses(self) -> None:
        for f in self.forbids:
            if not f.stmt.clauses:
                continue
            for t in self.tools_of(f):
                qs = self._bypass_queries(f, t)
                if qs is None:
                    continue
                typed = self._asked(t, ("bypass-typed", id(f.stmt)), lambda: self._search(t, qs[1]))
                o, mistyped = (typed, True) if typed.sat else (
                    self._asked(t, ("bypass", id(f.stmt)), lambda: self._search(t, qs[0])), False)
                w = o.witness
                if not o.sat or w is None:  # (a sat witness query always has one)
                    continue
                decision = self.session.replayer.decide(self.program, w)
                culprits = _erroring_clauses(self.engine, f.stmt, w)
                if not decision.allowed or culprits is None:
                    continue  # not confirmed: no finding
                if mistyped:
                    w, decision, culprits = self._readable_bypass(f, w, decision, culprits)
                self._report_bypass(f, t, w, decision, culprits, mistyped)
                break

    def _readable_bypass(self, f, w, decision, culprits):
        """Prefer the classic shape: a number sent as a string that would trip the forbid
        ("1500" against `amount > 1000`). Kept only if it still replays as a bypass."""
        import copy

        c = culprits[0]
        for p in _read_paths_expr(c.expr):
            if _expected_type(c.expr, p) != "number":
                continue
            target = _tripping_number(c.expr, p)
            if target is None:
                continue
            args = copy.deepcopy(w.args)
            if not _assign(args, p, str(target)):
                continue
            cand = dataclasses.replace(w, args=args, counters=dict(w.counters))  # the same caller, grant or user
            if self.session.nonconforming(cand.tool, cand.args) is not None:
                continue  # typed: the gateway would refuse it, so it is no bypass
            d2 = self.session.replayer.decide(self.program, cand)
            c2 = _erroring_clauses(self.engine, f.stmt, cand)
            if d2.allowed and c2 is not None:
                return cand, d2, c2
        return w, decision, culprits

    def _report_bypass(self, f, t, w, decision, clauses, mistyped: bool) -> None:

        c = clauses[0]
        problems = []
        for p in _read_paths_expr(c.expr):
            v = _lookup(w.args, p)
            name = ".".join(p)
            if v is _ABSENT:
                problems.append(f"`{name}` is missing")
            else:
                want = _expected_type(c.expr, p)
                if want and json_type(v) != want:
                    problems.append(f"`{name}` is {_describe(v)}, not {_article(want)}")
        why = ", ".join(problems) or "its condition errors"
        text = _source(self.program, c.expr)
        by = f"permit {decision.rule.policy!r}" if decision.rule.policy else "`default allow`"
        msg = (f"forbid {self.where(f)} can be bypassed with a {'mistyped' if mistyped else 'missing'} argument: "
               f"`{text}` errors when {why}, so the forbid does not apply, and {by} allows the call: {w.brief()}")
        advice, fix = _guard_advice(self, f, c, t, decision)
        extra = {"fix": fix} if fix else {}
        self.report("forbid-bypass", msg, c.span, "error" if mistyped else "warning", [advice],
                    rule=f.id, tool=t, counterexample=w.to_dict(), **extra)

    # -- unfilled-default -----------------------------------------------------------------------
    def unfilled_defaults(self) -> None:
        """Typed only: the gateway fills each tool's declared defaults in before the policy
        decides (catalog/defaults.py), and the analysis counts on it; where a default is not
        filled (a combinator could apply another one) or is refused, a rule that reads the
        argument is told so."""
        from .typed import default_caveats

        for c in default_caveats(self.program, self.session.schemas):
            notes = (("pass the argument explicitly, or correct the server's schema",) if c.caveat.kind == "refused" else
                     ("guard the omission in the rule itself (e.g. a permit that requires the argument), or give the "
                      "argument one unconditional default in the schema",))
            self.report("unfilled-default", c.message(), c.span, notes=notes, rule=c.rule, tool=c.tool,
                        argument=c.argument, kind=c.caveat.kind)

    # -- unusable-schema ------------------------------------------------------------------------
    def unusable_schemas(self) -> None:
        """Typed only: a tool whose declared input schema the gateway cannot use (a pattern
        RE2 cannot run, an unknown dialect, …) has every call refused (`unusable_schema`),
        so no rule about it ever applies; said once per tool, at the first statement that
        names it."""
        schemas = self.session.schemas or {}
        infos: list[Any] = [*self.program.policies, *self.program.limits, *self.program.asserts]
        for tool in sorted(schemas):
            why = schemas[tool].refused
            if not why:
                continue
            info = next((i for i in infos if i.tools is not None and tool in i.tools), None)
            if info is None:
                continue
            self.report("unusable-schema",
                        f"the gateway refuses every call to {tool}: its input schema cannot be used ({why})",
                        info.stmt.span, notes=("correct the server's schema (or pin a catalog with a usable one); "
                                               "until then no rule about this tool applies",),
                        rule=info.id, tool=tool)

    # -- unanchored-regex -----------------------------------------------------------------------
    def unanchored_regexes(self) -> None:
        seen = set()
        for p in self.program.policies:
            for c in p.stmt.clauses:
                allow_when = (p.effect == "permit") == (c.kind == "when")
                for node, positive in _polar(c.expr, allow_when):
                    if not isinstance(node, ir.Matches) or not positive or id(node) in seen:
                        continue
                    seen.add(id(node))
                    try:
                        with rx.time_limit(self.session.timeout_ms, self.session.deadline):
                            start, end = rx.anchored(node.regex)
                    except rx.OutOfTime as e:
                        self.undecide(None, f"regex {node.regex!r}: {e.reason}")
                        continue
                    except rx.Unsupported:
                        continue  # a feature the parser does not model: no claim about its anchors
                    if start and end:
                        continue
                    example = _unanchored_example(node.regex, start, end, self.session.deadline)
                    missing = " and ".join(x for x, ok in (("`^`", start), ("`$`", end)) if not ok)
                    msg = (f"allowlist regex {node.regex!r} in {p.effect} {self.where(p)} is not anchored "
                           f"({missing} missing), so it matches anywhere in the value")
                    if example:
                        msg += f", e.g. {example!r}"
                    core = f"(?:{node.regex})" if _top_level_alternation(node.regex) else node.regex
                    fixed = ("^" if not start else "") + core + ("$" if not end else "")
                    notes = [f'anchor it: .matches("{_escape(fixed)}")']
                    if not end:
                        notes.append("if a prefix is meant (a URL or path), end it at a delimiter instead, e.g. `(/|$)`")
                    fix = _replace_regex_literal(self.program, node, fixed)
                    extra: dict[str, Any] = {"fix": fix} if fix else {}
                    self.report("unanchored-regex", msg, node.span, notes=tuple(notes), rule=p.id, regex=node.regex,
                                **extra)

    # -- always-allows / always-denies ----------------------------------------------------------
    def always(self) -> None:
        """Both at fresh counters (the most permissive state): a limit with `max 0` or an
        invalid increment denies there; a limit that denies only once its counter fills
        is mentioned, not counted as a denial."""
        ctx = self.ctx
        prog = self.program
        span = prog.default_span or _first_span(prog)
        can_allow = []
        always = []
        for t in self.tools:
            req, d = self.tool(t)
            if d.hidden:
                continue
            o = self.ask(t, ("allowed",), lambda: d.allowed(zero=True))
            if o.status != "unsat":
                can_allow.append(t)
            o2 = self.ask(t, ("denied",), lambda: NOT(ctx, d.allowed(zero=True)))
            if o2.unsat:
                always.append(t)
        if not can_allow and (self.only is None or "always-denies" in self.only):
            self.report("always-denies", "this policy allows no call at all: every tool, every argument, every grant is denied",
                        span, notes=("add a permit for the tools the agent needs, or `default allow`",))
            return
        if self.only is not None and "always-allows" not in self.only:
            return
        if self.tools and set(always) >= set(self.tools) and not prog.hidden:
            limited = " (until a limit's counter is full)" if prog.limits else ""
            self.report("always-allows", f"this policy allows every call{limited}: no tool, argument or grant is denied",
                        span, notes=("add `default deny` and permits for what the agent needs",))
        elif self.catalog is not None:
            named = mentioned_tools(prog)
            open_tools = [t for t in always if t not in named]
            if prog.default == "allow" and open_tools:
                shown = ", ".join(repr(t) for t in open_tools[:8]) + (", …" if len(open_tools) > 8 else "")
                self.report("always-allows",
                            f"under `default allow`, {len(open_tools)} tool{'s' if len(open_tools) != 1 else ''} of the "
                            f"catalog this policy does not name {'are' if len(open_tools) != 1 else 'is'} allowed for every "
                            f"caller with any arguments: {shown}",
                            span, notes=("prefer `default deny` with permits, or hide the dangerous tools",),
                            tools=open_tools)
        elif self.other in always:
            limited = " (until a limit's counter is full)" if any(li.tools is None for li in prog.limits) else ""
            self.report("always-allows",
                        f"under `default allow`, every tool this policy does not name is allowed for every caller with "
                        f"any arguments{limited} (e.g. {self.other!r})",
                        span, notes=("a new or renamed upstream tool is allowed without review; prefer `default deny` "
                                     "with permits, or hide the dangerous tools",), tool=self.other)


# ---- helpers -------------------------------------------------------------------------------------


def lint(program: Program, *, timeout_ms: int = 2000, only=None, session: Session | None = None,
         deadline: Deadline | None = None) -> list[Diagnostic]:
    """The findings of the lints `only` names (all by default). With a `deadline` (or the
    session's: the whole run's budget, analyzer/deadline.py) the checks not decided when
    it runs out are listed by the `undecided` finding of their lint, never dropped."""
    return Linter(program, timeout_ms=timeout_ms, session=session, only=only, deadline=deadline).run()


def _closes_note(tools) -> str:
    names = ", ".join(repr(t) for t in tools)
    return (f"under `default allow`, a permit that names a tool takes it out of the default: calls to {names} are "
            f"denied unless another permit allows them, and deleting this permit would allow them; to deny "
            f"{'it' if len(tools) == 1 else 'them'}, say so with a forbid")


def _vacuous_note(kind: str) -> tuple[str, ...]:
    if kind == "assertion":
        return ("an assertion that selects no call proves nothing",)
    return ("it has no effect on any decision; fix or delete it",)


def _together(questions: list[tuple[tuple, object, object]], claims: Callable[[Any], frozenset]) -> list[list[int]]:
    """`Session.which_sat`'s groups for a tool's questions ((key, formula, the statement it
    is about or None), by position): a call allowed, through every permit that can apply,
    under every limit; a call denied by every forbid. A rule joins its group only if its
    conditions read no argument (or request object) that another rule in the group reads:
    two regexes on one string make a conjunction an intersection of languages, which took
    Z3 a hundred times longer than each alone; such a rule is left to the disjunctions."""
    groups: dict[str, list[int]] = {"allow": [], "deny": []}
    claimed: dict[str, dict[str, int]] = {"allow": {}, "deny": {}}  # what is read → the statement reading it
    for n, (key, _, stmt) in enumerate(questions):
        if key[0] in ("allowed", "effect"):
            side = "allow"
        elif key[0] == "denied":
            side = "deny"
        elif isinstance(stmt, (ir.Policy, ir.Limit)):
            side = "deny" if isinstance(stmt, ir.Policy) and stmt.effect == "forbid" else "allow"
        else:
            continue  # an assertion: the disjunctions
        if stmt is not None:
            reads = claims(stmt)
            mine = claimed[side]
            if any(mine.get(r, id(stmt)) != id(stmt) for r in reads):
                continue
            for r in reads:
                mine[r] = id(stmt)
        groups[side].append(n)
    return [groups["allow"], groups["deny"]]


def _claims(stmt) -> frozenset:
    """What a rule's conditions read: top-level argument keys, and the request objects."""
    out: set[str] = set()
    for c in stmt.clauses:
        for n in walk(c.expr):
            if isinstance(n, ir.GetAttr):
                p = input_path(n)
                if p:
                    out.add("arg:" + p[0])
            elif isinstance(n, ir.Var) and n.name in ("principal", "resource"):
                out.add(n.name)
    return frozenset(out)


def _first_span(prog: Program) -> Span:
    if prog.document and prog.document.statements:
        return prog.document.statements[0].span
    return Span(1, 1, 1, 1)


def _reads(stmt) -> frozenset:
    """What a rule's applicability depends on: argument paths, principal/resource parts."""
    out: set[str | tuple] = set()
    for part, s in (("principal", stmt.scope.principal), ("resource", stmt.scope.resource)):
        if s.op != "any":
            out.add(part)
    for c in stmt.clauses:
        for n in walk(c.expr):
            p = input_path(n) if isinstance(n, ir.GetAttr) else None
            if p is not None:
                out.add(("arg",) + p)
            elif isinstance(n, ir.Has):
                out.add(("has",))
            elif isinstance(n, ir.Var) and n.name in ("principal", "resource"):
                out.add(n.name)
    # an argument path reads its prefixes too
    for x in list(out):
        if isinstance(x, tuple) and x[0] == "arg":
            for i in range(2, len(x)):
                out.add(x[:i])
    return frozenset(out)


def _covers(q, tools: set) -> bool:
    return q.tools is None or tools <= q.tools


def _read_paths(stmt) -> list[tuple]:
    out = []
    for c in stmt.clauses:
        for p in _read_paths_expr(c.expr):
            if p not in out:
                out.append(p)
    return out


def _read_paths_expr(e) -> list[tuple]:
    """Argument paths the expression reads as values (not through `has`)."""
    out: list[tuple] = []
    for n in walk(e):
        if isinstance(n, ir.GetAttr):
            p = input_path(n)
            if p and p not in out and not any(q[: len(p)] == p and q != p for q in out):
                out = [q for q in out if q != p[: len(q)]]
                out.append(p)
    return out


def _erroring_clauses(engine, stmt, w):
    """The forbid's clauses that error on the witness, if every other clause has its
    wanted value (the forbid would apply if errors counted); else None."""
    env = engine.env(w.tool, w.args, w.grant, w.server)
    bad = []
    for c in stmt.clauses:
        v = compile_expr(c.expr)(env)
        if v is ERR or type(v) is not bool:
            bad.append(c)
        elif v is not (c.kind == "when"):
            return None
    return bad or None


class _Absent:
    pass


_ABSENT = _Absent()


def _lookup(args, path):
    v = args
    for k in path:
        if not isinstance(v, dict) or k not in v:
            return _ABSENT
        v = v[k]
    return v


def _describe(v) -> str:
    import json

    t = json_type(v)
    if t == "null":
        return "null"
    if t in ("array", "object"):
        return _article(t)
    return f"the {t} {json.dumps(v, ensure_ascii=False)}"


def _tripping_number(e, path):
    """A number that would make a comparison on `path` in `e` true (the forbid's case)."""
    from fractions import Fraction

    for n in walk(e):
        if isinstance(n, ir.Compare) and n.op in ("<", "<=", ">", ">="):
            for side, other, op in ((n.left, n.right, n.op), (n.right, n.left, {"<": ">", "<=": ">=", ">": "<", ">=": "<="}[n.op])):
                if input_path(side) == tuple(path) and isinstance(other, ir.Lit) and isinstance(other.value, (int, float)) \
                        and not isinstance(other.value, bool):
                    v = Fraction(other.value)
                    step = max(abs(v) // 2, 1)
                    out = v + step if op in (">", ">=") else v - step
                    return int(out) if out.denominator == 1 else float(out)
    return None


def _assign(args, path, value) -> bool:
    cur = args
    for k in path[:-1]:
        if not isinstance(cur, dict):
            return False
        cur = cur.setdefault(k, {})
    if not isinstance(cur, dict):
        return False
    cur[path[-1]] = value
    return True


def _article(t: str) -> str:
    return ("an " if t[0] in "aeiou" else "a ") + t


def _expected_type(e, path) -> str | None:
    """The type the expression needs at `path`, from how it uses it."""
    for n in walk(e):
        kids = []
        if isinstance(n, ir.Compare) and n.op in ("<", "<=", ">", ">="):
            kids = [(n.left, "number"), (n.right, "number")]
        elif isinstance(n, (ir.Like, ir.Matches)):
            kids = [(n.obj, "string")]
        elif isinstance(n, ir.Call) and n.method in ("containsAll", "containsAny", "isEmpty"):
            kids = [(n.obj, "array")] + [(a, "array") for a in n.args]
        elif isinstance(n, ir.Call) and n.method == "contains":
            lit = n.args[0]
            kids = [(n.obj, "string" if isinstance(lit, ir.Lit) and isinstance(lit.value, str) else "array")]
        elif isinstance(n, (ir.And, ir.Or)):
            kids = [(n.left, "boolean"), (n.right, "boolean")]
        elif isinstance(n, ir.Not):
            kids = [(n.expr, "boolean")]
        elif isinstance(n, ir.In):
            kids = [(n.right, "array")]
        for k, t in kids:
            if input_path(k) == tuple(path):
                return t
    for n in walk(e):  # the top of the clause itself is used as a boolean
        if input_path(n) == tuple(path) and n is e:
            return "boolean"
    return None


def _type_guard(path: tuple, t: str | None) -> str:
    p = "context.input." + ".".join(path)
    has = f"context.input has {'.'.join(path)}"
    if t == "number":
        return f"{p} < 0 || {p} >= 0"
    if t == "string":
        return f'{p} like "*"'
    if t == "array":
        return f"{p}.containsAll([])"
    if t == "boolean":
        return f"{p} == true || {p} == false"
    return has


def _guard_advice(linter: Linter, f, c: ir.Clause, tool: str, decision) -> tuple[str, dict | None]:
    """How to close the hole where errors fail closed (in the permit), and the edit that does
    it (`data["fix"]`: code-point offsets into the source, the catalog validator's format).

    A misspelt argument is never repeated in a guard (a permit guarded on `pth` would deny
    every call): when the forbid reads a path the tool's schema does not declare (typed),
    or, untyped, a near miss of a path other rules for the tool read, the advice and the
    fix are the correct name instead."""
    typo = _typo(linter, f, c, tool)
    if typo is not None:
        return typo
    guards = []
    e = c.expr
    simple = isinstance(e, ir.Compare) and e.op in ("<", "<=", ">", ">=") and len(f.stmt.clauses) == 1 and c.kind == "when"
    left = input_path(e.left) if simple and isinstance(e, ir.Compare) else None
    if isinstance(e, ir.Compare) and left is not None and isinstance(e.right, ir.Lit):
        neg = {"<": ">=", "<=": ">", ">": "<=", ">=": "<"}[e.op]
        guards.append(f"context.input.{'.'.join(left)} {neg} {_lit(e.right.value)}")
    else:
        for p in _read_paths_expr(e):
            guards.append(_type_guard(p, _expected_type(e, p)))
    clause = " && ".join(f"({g})" if "||" in g and len(guards) > 1 else g for g in guards) or "…"
    source = linter.program.document.source if linter.program.document is not None else ""
    if decision.rule.policy:
        pid = decision.rule.policy
        fix = None
        permit = next((p for p in linter._by_id.get(pid, ()) if isinstance(p, PolicyInfo)), None)
        end = permit.stmt.span.end if permit is not None else 0
        if guards and end and source[end - 1 : end] == ";":
            fix = {"title": f"Guard permit {pid!r}: when {{ {clause} }}",
                   "edits": [_edit(source, end - 1, end - 1, f"\nwhen {{ {clause} }}")]}
        return (f"guard it where an error denies: add `when {{ {clause} }}` to permit {pid!r} "
                f"(a permit whose condition errors does not apply, so a missing or mistyped argument is denied)"), fix
    stmt = f'permit (principal, action == Action::"{tool}", resource) when {{ {clause} }};'
    end = f.stmt.span.end
    fix = None
    if guards and end and source:
        fix = {"title": f"Govern the tool: {stmt}", "edits": [_edit(source, end, end, "\n\n" + stmt)]}
    return (f"guard it where an error denies: govern the tool with `{stmt}` (a permit fails closed; under "
            f"`default allow` naming the tool in a permit makes every other call to it denied)"), fix


def _typo(linter: Linter, f, c: ir.Clause, tool: str) -> tuple[str, dict | None] | None:
    """(advice, fix) when the clause reads a misspelt argument of `tool`, else None."""
    from mcpp.lang.diagnostics import did_you_mean

    schemas = linter.session.schemas
    for p in _read_paths_expr(c.expr):
        near: tuple | None = None
        why = ""
        if schemas is not None and tool in schemas:
            from mcpp.catalog.schema import follow

            info = follow(schemas[tool].schema, p, tool)
            if info.problem_kind not in ("absent", "undeclared"):
                continue
            if info.problem_kind == "undeclared" and not info.suggestion:
                continue  # the schema lets other keys through: the argument may be meant, guard it
            why = f"{tool} does not declare `{'.'.join(p[: info.at + 1])}`"
            near = p[: info.at] + (info.suggestion,) + p[info.at + 1:] if info.suggestion else None
        else:
            read = {q for st in linter.statements_for(tool) if st is not f.stmt for cl in st.clauses
                    for q in _read_paths_expr(cl.expr)}
            if p in read:
                continue  # other rules read it too: a name, not a slip
            hit = did_you_mean(".".join(p), sorted(".".join(q) for q in read))
            if hit is None:
                continue
            near = tuple(hit.split("."))
            why = f"`{'.'.join(p)}` is read nowhere else for {tool}, but `{hit}` is"
        if near is None:
            return (f"{why}: the condition can never hold, so the forbid never applies; correct the argument name "
                    "(a guard on a misspelt argument would deny every call)"), None
        name = ".".join(near)
        source = linter.program.document.source if linter.program.document is not None else ""
        edits = [_edit(source, n.span.start, n.span.end, "context.input." + name)
                 for cl in f.stmt.clauses for n in walk(cl.expr)
                 if isinstance(n, ir.GetAttr) and input_path(n) == p and n.span.end > n.span.start] if source else []
        fix = {"title": f"Use context.input.{name}", "edits": edits} if edits else None
        return f"{why}: did you mean `{name}`? correct the name in the forbid (a guard on a misspelt argument would deny every call)", fix
    return None


@lru_cache(maxsize=4)
def _line_starts(source: str) -> list[int]:
    return [0] + [m.end() for m in re.finditer("\n", source)]


def _edit(source: str, start: int, end: int, text: str) -> dict:
    starts = _line_starts(source)  # (counting newlines from the top per edit was quadratic in the file)
    line = bisect.bisect_right(starts, start)
    end_line = bisect.bisect_right(starts, end)
    return {"start": start, "end": end, "line": line, "col": start - starts[line - 1] + 1, "end_line": end_line,
            "end_col": end - starts[end_line - 1] + 1, "text": text}


def _replace_regex_literal(program: Program, node: ir.Matches, fixed: str) -> dict | None:
    """The edit that replaces the string literal of `.matches("…")` with the anchored pattern."""
    from mcpp.lang.strings import quote

    source = program.document.source if program.document is not None else ""
    text = source[node.span.start : node.span.end]
    call = text.rfind(".matches(")
    if call < 0:
        return None
    lit = re.compile(r'"(?:[^"\\\n]|\\.)*"').search(text, call)
    if lit is None:
        return None
    replacement = quote(fixed)
    start = node.span.start + lit.start()
    return {"title": f"Anchor the regex: {replacement}",
            "edits": [_edit(source, start, start + len(lit.group()), replacement)]}


def _lit(v) -> str:
    import json

    return json.dumps(v)


def _source(program: Program, e) -> str:
    doc = program.document
    span = getattr(e, "span", None)
    if doc is not None and doc.source and span is not None and span.end > span.start:
        return " ".join(doc.source[span.start : span.end].split())
    from mcpp.lang.formatter import expr

    return expr(e)


def _polar(e, positive: bool):
    """(node, polarity) for nodes whose truth makes the call *allowed* (positive=True)."""
    yield e, positive
    if isinstance(e, ir.Not):
        yield from _polar(e.expr, not positive)
    elif isinstance(e, (ir.And, ir.Or)):
        yield from _polar(e.left, positive)
        yield from _polar(e.right, positive)


def _unanchored_example(pattern: str, start: bool, end: bool, deadline: Deadline | None = None) -> str | None:
    """A string the regex accepts that an anchored reading would not: the unanchored end
    padded with attacker-controlled text, confirmed with RE2. Within EXAMPLE_MS and what
    is left of the run's `deadline`; None when out of time."""
    from mcpp.lang.regex import compile_regex

    from .sym import string_of, string_val

    if deadline is not None and deadline.expired():
        return None
    ms = EXAMPLE_MS if deadline is None else deadline.cap(EXAMPLE_MS)
    ctx = z3.Context()
    try:  # strings the pattern matches whole, its anchors satisfied at both ends
        with rx.time_limit(ms, deadline):
            ast = rx.whole_match_ast(pattern)
            lang = rx.Z3Regex(ctx)(ast)
    except rx.Unsupported:  # also OutOfTime: the example is a courtesy, the finding stands without it
        return None
    if deadline is not None:  # what the translation left of it
        if deadline.expired():
            return None
        ms = deadline.cap(ms)
    s = z3.String("s", ctx)
    sol = z3.Solver(ctx=ctx)
    sol.set("timeout", ms)
    printable = z3.Star(z3.Range(string_val(" ", ctx), string_val("~", ctx)))
    sol.add(z3.InRe(s, lang), z3.InRe(s, printable), z3.Length(s) <= 40)

    def then(r):
        return string_of(sol.model().eval(s, model_completion=True)) if r == z3.sat else None

    try:
        base = bounded(sol, then, budget_ms=ms, isolate=rx.widest_class(ast) > rx.WIDE_CLASS)
    except OutOfTime:
        return None
    if base is None:
        return None
    cand = ("evil.example/" if not start else "") + base + (".evil.example" if not end else "")
    return cand if compile_regex(pattern).search(cand) else None


def _top_level_alternation(pattern: str) -> bool:
    depth, i, in_class = 0, 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "]":
                i += 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            return True
        i += 1
    return False


def _escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')
