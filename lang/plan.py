"""The decision plan: which rules can decide a call to each tool, in what order, and how
its limits combine — built once per program and consumed by every backend.

mcpp's promise is that what the analyzer proves is what the gateway runs. The decision
procedure (docs/language.md §5) therefore exists once, here, as data: the engine turns a
`ToolPlan` into closures, the compiler into JSON entries, the Z3 encoder into formulas.
None of them re-derives which rules apply to a tool, what the default covers, which
action groups hold a tool, or how limits sharing a counter are charged.

For a call to tool `t`:

1. `hidden` → deny.
2. `permits` (the ordinary ones: those naming `t`, then those naming no tool, each in
   source order): the first that applies allows; if none applies, `default_allows`
   (default allow and no permit, ordinary or approval, names `t`) lets the call go on;
   otherwise `approvals` (the `@approval` permits, same order): the first that applies
   lets the call go on *subject to a person's approval*; if none applies, deny, naming
   `permits[0]` (else `approvals[0]`).
3. `forbids` (same order): the first that applies denies — an approval-bound call too.
4. `counters`: the limits on `t`, grouped by counter key (counter, scope, window). For a
   group, the applicable limits' increments are added and the total must stay within
   the smallest of their `max`es (`CounterGroup.charge`); the first limit with that max
   names a denial. All groups are reserved together or none. An approval-bound call is
   checked here without reserving; it reserves only when it runs, once approved
   (`APPROVAL_RULE`).
5. allow — or, when step 2 went on only through an approval permit, *approval*: the
   call runs once a person approves it.

`APPROVAL_RULE` states step 2's combination in words; the engine, the Z3 encoder and
the compiler (which refuses approval permits: the JSON form has no such effect) read
`ToolPlan.permits` and `ToolPlan.approvals` and nothing else.

Action scopes use Cedar's entity `in`: reflexive, then transitive through groups, so a
tool named like a group is `in` that group (`program.action_tools`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import NamedTuple

from . import ir
from .ir import walk
from .program import LimitInfo, PolicyInfo, Program


APPROVAL_RULE = (
    "A call needs a person's approval exactly when no ordinary permit applies to it, the "
    "default does not cover it, and an @approval permit applies; forbids, hide and limits "
    "deny it as they deny any call. If an ordinary permit (or the default) also allows the "
    "call, no approval is needed."
)


class CounterKey(NamedTuple):
    """What a limit counts against: limits with equal keys share one count. A tuple, so
    witnesses and reports can sort and unpack it."""

    counter: str
    scope: str  # grant | principal | policy: whose count (the engine's `_scope_id`)
    window: str  # minute | hour | day

    @staticmethod
    def of(limit: ir.Limit) -> "CounterKey":
        return CounterKey(limit.counter, limit.scope_kind, limit.window or "")


@dataclass(frozen=True, slots=True)
class CounterGroup:
    """The limits of one tool that share a counter key, in source order."""

    key: CounterKey
    limits: tuple[LimitInfo, ...]

    @staticmethod
    def charge(applicable: list[tuple[LimitInfo, int | float]]) -> tuple[int | Fraction, int | float, LimitInfo]:
        """For the limits of this group that apply to a call, each with its increment:
        (the amount the call adds, the max the total must stay within, the limit that
        names a denial). One call adds every increment; the smallest max binds.

        The amount is exact — an int, or the Fraction of the doubles' exact sum — as the
        analyzer adds them (reals): a float sum rounds, and `10 + 1e-17` was `10.0`, within
        `max 10` (hostile review 41, H41-1). runtime/limits.py `exceeds` compares it."""
        incs = [inc for _, inc in applicable]
        ints = [i for i in incs if type(i) is int]
        amount: int | Fraction = (sum(ints) if len(ints) == len(incs)
                                  else sum((Fraction(i) for i in incs), Fraction(0)))
        cap = min(_max(li) for li, _ in applicable)
        binding = next(li for li, _ in applicable if li.stmt.max == cap)
        return amount, cap, binding


def _max(li: LimitInfo) -> int | float:
    """A counted limit's max (a limit in a counter group has one)."""
    assert li.stmt.max is not None
    return li.stmt.max


@dataclass(frozen=True, slots=True)
class ToolPlan:
    """How calls to one tool are decided (`tool` None: every tool no statement mentions)."""

    tool: str | None
    hidden: bool
    permits: tuple[PolicyInfo, ...]  # ordinary permits: an allow needs nobody
    forbids: tuple[PolicyInfo, ...]
    default_allows: bool
    counters: tuple[CounterGroup, ...]
    ancestors: frozenset[str]  # the action groups the tool is in
    approvals: tuple[PolicyInfo, ...] = ()  # @approval permits: tried only when no permit applies and the default does not cover

    @property
    def limits(self) -> tuple[LimitInfo, ...]:
        return tuple(li for g in self.counters for li in g.limits)


@dataclass
class DecisionPlan:
    """Per tool, the rules that can decide it; see the module docstring for the order."""

    program: Program
    tools: dict[str, ToolPlan] = field(default_factory=dict)  # every tool a statement mentions
    other: ToolPlan | None = None
    counter_bounds: dict[CounterKey, Fraction] = field(default_factory=dict)

    def for_tool(self, tool: str) -> ToolPlan:
        plan = self.tools.get(tool)
        if plan is not None:
            return plan
        assert self.other is not None
        return self.other

    def named(self) -> list[str]:
        """Every tool name a statement mentions, sorted (group names included: a tool may
        share a group's name)."""
        return sorted(self.tools)


def mentioned_tools(program: Program) -> set[str]:
    """Every tool or action group name any statement of `program` mentions. Any other
    tool is decided exactly as `DecisionPlan.other`: no scope names it, no group holds
    it, and every `Action::"x"` literal differs from it. (A superset of
    `Program.named_tools`: one walk over the document.)"""
    out = set(program.hidden) | set(program.groups)
    for members in program.groups.values():
        out |= members
    for coll in (program.policies, program.limits, program.asserts):
        for info in coll:
            if info.tools:
                out |= info.tools
    for s in program.document.statements if program.document else ():
        for n in walk(s):
            if isinstance(n, ir.EntityRef) and n.type == "Action":
                out.add(n.id)
    return out


class _Index:
    """Rules by the tools their scopes name, built in one pass, so planning every tool
    costs the rules that name it (not every rule of the program for every tool)."""

    def __init__(self, program: Program):
        self.program = program
        self.named: dict[str, dict[str, list]] = {}  # tool → kind → infos naming it
        self.any: dict[str, list] = {"permit": [], "approval": [], "forbid": [], "limit": []}
        self.order = {id(li): i for i, li in enumerate(program.limits)}
        self.ancestors: dict[str, set[str]] = {}
        for g, members in program.groups.items():
            for t in members:
                self.ancestors.setdefault(t, set()).add(g)
        for kind, infos in (("permit", program.permits), ("approval", program.approvals), ("forbid", program.forbids),
                            ("limit", program.limits)):
            for info in infos:
                if info.tools is None:
                    self.any[kind].append(info)
                    continue
                for t in info.tools:
                    self.named.setdefault(t, {}).setdefault(kind, []).append(info)

    def plan(self, tool: str | None) -> ToolPlan:
        program = self.program
        mine = self.named.get(tool, {}) if tool is not None else {}
        permits = tuple(mine.get("permit", []) + self.any["permit"])
        approvals = tuple(mine.get("approval", []) + self.any["approval"])
        forbids = tuple(mine.get("forbid", []) + self.any["forbid"])
        names_tool = bool(mine.get("permit") or mine.get("approval"))
        groups: dict[CounterKey, list[LimitInfo]] = {}
        for li in sorted(mine.get("limit", []) + self.any["limit"], key=lambda li: self.order[id(li)]):
            if li.stmt.max is not None and li.stmt.window is not None:
                groups.setdefault(CounterKey.of(li.stmt), []).append(li)
        return ToolPlan(
            tool=tool,
            hidden=tool is not None and tool in program.hidden,
            permits=permits,
            forbids=forbids,
            default_allows=program.default == "allow" and not names_tool,
            counters=tuple(CounterGroup(k, tuple(v)) for k, v in groups.items()),
            ancestors=frozenset(self.ancestors.get(tool, ())) if tool is not None else frozenset(),
            approvals=approvals,
        )


def build_plan(program: Program) -> DecisionPlan:
    """The plan of a program (memoised on it: a program is never changed once built)."""
    cached = getattr(program, "_plan", None)
    if cached is not None:
        return cached
    plan = DecisionPlan(program)
    index = _Index(program)
    for tool in sorted(mentioned_tools(program)):
        plan.tools[tool] = index.plan(tool)
    plan.other = index.plan(None)
    for li in program.limits:
        if li.stmt.max is not None and li.stmt.window is not None:
            key = CounterKey.of(li.stmt)
            # every reservation keeps a count within the smallest max of the limits it
            # charges, so no count of this program passes the largest max on its key
            plan.counter_bounds[key] = max(plan.counter_bounds.get(key, Fraction(0)), Fraction(li.stmt.max))
    program._plan = plan
    return plan
