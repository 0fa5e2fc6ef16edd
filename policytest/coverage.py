"""Coverage: which rules, conditions, limits and asserts of a policy the test cases exercised.

The engine that runs the cases is built inside `evaluator.tracing(coverage)`, so every
closure it compiles reports the outcome of each evaluation of its IR node to
`Coverage.outcomes` (keyed by node identity); after each call every rule of the tool is
evaluated with those closures (`CompiledRule.evaluate`) to see which apply. Nothing of
this touches an engine built the ordinary way. The items (docs/testing.md, "Coverage"):

- **rules**: each `permit` and `forbid`: covered when it applies to some call of some
  case (its scope matches, every `when` holds, every `unless` does not) — Cedar's
  "satisfied", as `Engine.explain` reports it: every rule of the called tool is
  evaluated, not only those the engine's order reached before the decision was
  settled, so a forbid behind a stricter permit is covered by a call both would deny.
  A call to a hidden tool applies no rule.
- **limits**: two items each: *applied* (its scope and conditions held for some call to
  a tool it limits) and *exhausted* (it denied some call).
- **conditions**: every `when`/`unless` condition of a permit, forbid or limit, every
  operand of every `&&` and `||` in them, and the condition of every `if … then … else`
  (its two branches): two items each, *true* and *false* — the condition was evaluated
  and gave that value. A condition whose evaluation reads nothing of the call (`true`,
  `1 < 2`, `true || context.input.z == 1`) has one possible value; only that one is an
  item. An operand the evaluator never reached (`&&` after a false left side) is not
  covered; one it can never reach (`z == 1` above) stays uncovered: dead code.
- **asserts**: covered when some call of some case is in the assert's scope.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from mcpp.lang import formatter, ir
from mcpp.lang.evaluator import Env, compile_expr, outcome, tracing
from mcpp.lang.ir import walk
from mcpp.lang.program import AssertInfo, PolicyInfo, Program
from mcpp.lang.identity import PrincipalError
from mcpp.runtime.engine import Caller, CompiledRule, Decision, Engine

CATEGORIES = ("rules", "limits", "conditions", "asserts")


@dataclass
class ConditionPoint:
    node: ir.Expr
    rule: str  # the id of the permit, forbid or limit it belongs to
    role: str  # clause | left | right | if
    needs: tuple  # the outcomes that are items: (True, False), (True,), (False,) or ()


@dataclass
class CoverageReport:
    """The coverage of one policy file: items per category, and their totals."""

    policy: str
    rules: list[dict] = field(default_factory=list)
    limits: list[dict] = field(default_factory=list)
    conditions: list[dict] = field(default_factory=list)
    asserts: list[dict] = field(default_factory=list)

    def counts(self) -> dict[str, tuple[int, int]]:
        """(covered items, items) per category, and "total"."""
        out: dict[str, tuple[int, int]] = {}
        out["rules"] = (sum(1 for r in self.rules if r["covered"]), len(self.rules))
        out["limits"] = (sum(len(li["covered"]) for li in self.limits), sum(len(li["items"]) for li in self.limits))
        out["conditions"] = (sum(len(c["covered"]) for c in self.conditions),
                             sum(len(c["items"]) for c in self.conditions))
        out["asserts"] = (sum(1 for a in self.asserts if a["covered"]), len(self.asserts))
        out["total"] = (sum(c for c, _ in out.values()), sum(n for _, n in out.values()))
        return out

    def percent(self, category: str = "total") -> float:
        covered, total = self.counts()[category]
        return 100.0 if total == 0 else 100.0 * covered / total

    def uncovered(self) -> list[dict]:
        """Every item left uncovered, one dict each (kind, id, line, col, what)."""
        out = []
        for r in self.rules:
            if not r["covered"]:
                out.append({"kind": r["kind"], "id": r["id"], "line": r["line"], "col": r["col"],
                            "what": f"{r['kind']} {r['id']!r} never applied"})
        for li in self.limits:
            for item in li["items"]:
                if item not in li["covered"]:
                    what = "never counted a call" if item == "applied" else "never denied a call"
                    out.append({"kind": "limit", "id": li["id"], "line": li["line"], "col": li["col"],
                                "what": f"limit {li['id']!r} {what}"})
        for c in self.conditions:
            missing = [i for i in c["items"] if i not in c["covered"]]
            if missing:
                never = "evaluated" if not c["seen"] else " or ".join(missing)
                out.append({"kind": "condition", "id": c["rule"], "line": c["line"], "col": c["col"],
                            "what": f"`{c['text']}` (in {c['rule']!r}) never {never}"})
        for a in self.asserts:
            if not a["covered"]:
                out.append({"kind": "assert", "id": a["id"], "line": a["line"], "col": a["col"],
                            "what": f"assert {a['id']!r} ({a['kind']}): no case is in its scope"})
        return out

    def to_dict(self) -> dict:
        counts = self.counts()
        return {
            "policy": self.policy,
            "summary": {k: {"covered": c, "total": n, "percent": round(100.0 if n == 0 else 100.0 * c / n, 2)}
                        for k, (c, n) in counts.items()},
            "rules": self.rules, "limits": self.limits, "conditions": self.conditions, "asserts": self.asserts,
        }


class CaseCounters:
    """A counter store for one test case: deterministic (no wall clock, no expiry sweep —
    a case's windows come from its `time`), fresh for every case."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def reserve(self, charges) -> int | None:
        for i, c in enumerate(charges):
            if self.values.get(c.key, 0) + c.amount > c.max:
                return i
        for c in charges:
            self.values[c.key] = self.values.get(c.key, 0) + c.amount
        return None

    def release(self, charges) -> None:
        for c in charges:
            if c.key in self.values:
                self.values[c.key] = max(0, self.values[c.key] - c.amount)

    def value(self, key: str) -> float:
        return self.values.get(key, 0)


class _ReadsCall(Exception):
    pass


class _NoCall(Env):
    """An environment whose every part raises: evaluating a condition in it tells
    whether its value depends on the call at all."""

    __slots__ = ()

    def __init__(self) -> None:
        pass

    def _read(self):
        raise _ReadsCall()

    principal = action = resource = input = context = groups_of = property(_read)


def _constant_value(e: ir.Expr) -> object | None:
    """The value of a condition whose evaluation reads nothing of the call (`true`,
    `1 < 2`, `true || context.input.z == 1`: `||` stops at `true`), or None."""
    try:
        return outcome(compile_expr(e)(_NoCall()))
    except _ReadsCall:
        return None


def condition_points(program: Program) -> list[ConditionPoint]:
    """Every condition of the program's permits, forbids and limits, in source order."""
    out: list[ConditionPoint] = []
    seen: set[int] = set()

    def add(node: ir.Expr, rule: str, role: str) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        const = _constant_value(node)
        needs: tuple = (True, False) if const is None else ((const,) if const is True or const is False else ())
        out.append(ConditionPoint(node, rule, role, needs))

    infos = list(program.policies) + list(program.limits)
    infos.sort(key=lambda i: (i.stmt.span.start, i.stmt.span.line))
    for info in infos:
        for clause in info.stmt.clauses:
            add(clause.expr, info.id, "clause")
            for n in walk(clause.expr):
                if isinstance(n, (ir.And, ir.Or)):
                    add(n.left, info.id, "left")
                    add(n.right, info.id, "right")
                elif isinstance(n, ir.If):
                    add(n.cond, info.id, "if")
    return out


def _as_permit(a: AssertInfo) -> CompiledRule:
    """An assert compiled as the permit with its scope and clauses (its id, any tool)."""
    permit = ir.Policy("permit", a.stmt.scope, a.stmt.clauses)
    return CompiledRule(PolicyInfo(permit, a.id, -1, None), permit)


class Coverage:
    """Collects what the cases run on one program exercised; `engine()` builds the
    traced engine that reports to it."""

    def __init__(self, program: Program):
        self.program = program
        self._outcomes: dict[int, tuple[ir.Expr, set]] = {}
        self.applied: Counter[str] = Counter()
        self.errored: Counter[str] = Counter()
        self.decided: Counter[str] = Counter()
        self.exhausted: Counter[str] = Counter()
        self.in_scope: Counter[str] = Counter()
        self.calls = 0
        self._asserts = [(a, _as_permit(a)) for a in program.asserts]

    # -- the evaluator's Tracer protocol -----------------------------------------------------
    def outcomes(self, node: ir.Expr) -> set:
        hit = self._outcomes.get(id(node))
        if hit is None or hit[0] is not node:
            hit = self._outcomes[id(node)] = (node, set())
        return hit[1]

    def seen(self, node: ir.Expr) -> set:
        hit = self._outcomes.get(id(node))
        return hit[1] if hit is not None and hit[0] is node else set()

    # -- the engine ---------------------------------------------------------------------------
    def engine(self) -> Engine:
        """An engine whose every closure reports to this coverage (built once per policy)."""
        with tracing(self):
            return Engine(self.program, store=CaseCounters())

    def observe(self, engine: Engine, tool: str, args: dict, grant: Caller, server: str, decision: Decision) -> None:
        """After each call: which rule decided it, which rules apply to it, which asserts
        it falls under."""
        self.calls += 1
        if decision.rule.policy is not None:
            self.decided[decision.rule.policy] += 1
            if decision.limit is not None and not decision.allowed:
                self.exhausted[decision.rule.policy] += 1
        if type(tool) is not str or type(args) is not dict:
            return  # a malformed request reaches no rule
        rules = engine.index.get(tool, engine.other)
        try:
            env = engine.env(tool, args, grant, server)
        except PrincipalError:  # a user the policy's `entity User` refuses: denied before any rule (/principal)
            return
        if not rules.plan.hidden:
            # Cedar's view, as `Engine.explain`: every rule of the tool, not only those
            # the engine's order reached before the decision was settled
            for r in rules.permits + rules.approvals + rules.forbids + rules.limits:
                state = r.evaluate(env)
                if state is True:
                    self.applied[r.id] += 1
                elif state is None:
                    self.errored[r.id] += 1
        for a, rule in self._asserts:
            if a.tools is not None and tool not in a.tools:
                continue
            try:
                if rule.applies(env):
                    self.in_scope[a.id] += 1
            except Exception:  # an assert whose condition cannot be evaluated does not select the call
                continue

    # -- the report ---------------------------------------------------------------------------
    def report(self, name: str) -> CoverageReport:
        program = self.program
        rep = CoverageReport(name)
        nowhere = program.origin != "mcpp"  # the JSON form has no source positions

        def pos(span) -> tuple[int, int]:
            return (0, 0) if nowhere else (span.line, span.col)

        for p in program.policies:
            line, col = pos(p.stmt.span)
            rep.rules.append({"kind": p.effect, "id": p.id, "line": line, "col": col,
                              "applied": self.applied[p.id], "errored": self.errored[p.id],
                              "decided": self.decided[p.id], "covered": self.applied[p.id] > 0})
        for li in program.limits:
            line, col = pos(li.stmt.span)
            items = ["applied", "exhausted"] if li.stmt.max is not None and li.stmt.window is not None else ["applied"]
            covered = [i for i in items if (self.applied[li.id] if i == "applied" else self.exhausted[li.id]) > 0]
            rep.limits.append({"id": li.id, "counter": li.stmt.counter, "line": line, "col": col,
                               "applied": self.applied[li.id], "exhausted": self.exhausted[li.id],
                               "items": items, "covered": covered})
        for point in condition_points(program):
            seen = self.seen(point.node)
            line, col = pos(point.node.span)
            names = {True: "true", False: "false"}
            rep.conditions.append({
                "rule": point.rule, "role": point.role, "line": line, "col": col,
                "text": formatter.expr(point.node),
                "seen": sorted(names.get(v, v) for v in seen),
                "items": [names[v] for v in point.needs],
                "covered": [names[v] for v in point.needs if v in seen],
            })
        for a in program.asserts:
            line, col = pos(a.stmt.span)
            rep.asserts.append({"id": a.id, "kind": a.stmt.kind, "line": line, "col": col,
                                "calls": self.in_scope[a.id], "covered": self.in_scope[a.id] > 0})
        return rep
