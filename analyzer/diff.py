"""`mcpp diff OLD NEW`: per tool, which calls the change newly allows or newly denies.

The CheckNoNewAccess question, asked per tool (each tool either version names, plus
one name standing for every other tool) and in both directions, over the same symbolic
call and the same limit counters. Decisions are ranked deny < approval < allow (an
`@approval` permit's call runs once a person approves it): *looser* = a call NEW ranks
higher than OLD (newly allowed, newly allowed with approval, or no longer needing
approval), *stricter* = the reverse. Each direction found comes with a concrete call
that both engines replay with the claimed decisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mcpp.lang import ir
from mcpp.lang.program import Program

from .deadline import Deadline
from .encode import decide, query_tools
from .solve import Session
from .sym import AND, NOT, OR
from .witness import Witness


@dataclass
class Direction:
    status: str  # yes | no | unknown
    witness: Witness | None = None
    old: dict | None = None  # replayed decisions
    new: dict | None = None
    reason: str = ""

    def to_dict(self) -> dict:
        d: dict = {"status": self.status}
        if self.witness is not None:
            d["call"] = self.witness.to_dict()
            d["old"] = self.old
            d["new"] = self.new
        if self.reason:
            d["reason"] = self.reason
        return d


@dataclass
class ToolDiff:
    tool: str
    other: bool  # stands for every tool neither version names
    looser: Direction
    stricter: Direction
    reasons: list = field(default_factory=list)

    @property
    def status(self) -> str:
        lo, st = self.looser.status, self.stricter.status
        if "unknown" in (lo, st):
            if "yes" in (lo, st):
                return "looser" if lo == "yes" else "stricter"
            return "unknown"
        return {("no", "no"): "equivalent", ("yes", "no"): "looser", ("no", "yes"): "stricter", ("yes", "yes"): "both"}[(lo, st)]

    def to_dict(self) -> dict:
        return {"tool": self.tool, "other_tools": self.other, "status": self.status,
                "looser": self.looser.to_dict(), "stricter": self.stricter.to_dict()}


def diff_programs(old: Program, new: Program, *, timeout_ms: int = 2000, session: Session | None = None,
                  deadline: Deadline | None = None) -> list[ToolDiff]:
    """Per tool, both directions. With a `deadline` (or the session's: the whole run's
    budget, analyzer/deadline.py), a direction not decided when it runs out is UNKNOWN
    with the deadline as its reason (a tool whose plan did not change is still
    "equivalent": that needs no solver)."""
    session = session or Session(timeout_ms, deadline=deadline)
    catalog = session.tools()
    if catalog is not None:  # typed: the catalog's tools, each with its schema; no stand-in
        return [_diff_tool(session, old, new, tool, False) for tool in catalog]
    named, other = query_tools(old, new)
    out = []
    same_context = _context(old) is not None and _context(old) == _context(new)
    for tool in named + [other]:
        if same_context and _plan_key(old, tool) == _plan_key(new, tool):
            out.append(ToolDiff(tool, tool == other, Direction("no"), Direction("no")))
            continue
        out.append(_diff_tool(session, old, new, tool, tool == other))
    return out


def _context(program: Program):
    """What a tool's decision may depend on besides its own plan: the program-wide facts
    the encoder reads (default, identity, user declaration, groups, hidden tools) and every
    statement that is not a rule, as IR (equality ignores spans); None for a program
    without a document (never shortcut)."""
    if program.document is None:
        return None
    return (program.origin, program.default, program.identity_aware, program.user_decl,
            tuple(sorted(program.groups.items())), tuple(sorted(program.hidden)),
            tuple(st for st in program.document.statements if not isinstance(st, (ir.Policy, ir.Limit, ir.Assert))))


def _plan_key(program: Program, tool: str):
    """What decides calls to `tool` (lang/plan.py): with equal keys and equal contexts two
    versions decide every call to it alike, so `diff` answers "equivalent" without
    encoding the tool (a one-rule change in a 1,000-rule policy encodes one tool, not all)."""
    plan = program.plan()
    tp = plan.for_tool(tool)
    return (tp.hidden, tp.default_allows, tp.ancestors,
            tuple(p.stmt for p in tp.permits), tuple(p.stmt for p in tp.approvals), tuple(f.stmt for f in tp.forbids),
            tuple((g.key, plan.counter_bounds.get(g.key), tuple(li.stmt for li in g.limits)) for g in tp.counters))


def _diff_tool(session: Session, old: Program, new: Program, tool: str, is_other: bool) -> ToolDiff:
    late = session.expired()
    if late is not None:  # not even encoded: the run is over
        return ToolDiff(tool, is_other, Direction("unknown", reason=late), Direction("unknown", reason=late), [late])
    ctx = session.ctx
    req = session.request()
    req.share_users(old, new)
    d_old, d_new = decide(req, old, tool), decide(req, new, tool)
    a_old, a_new = d_old.allowed(zero=False), d_new.allowed(zero=False)
    r_old, r_new = d_old.runs(zero=False), d_new.runs(zero=False)
    reasons = sorted(d_old.enc.reasons | d_new.enc.reasons)
    dirs = []
    # rank = [runs] + [allowed]: rank(new) > rank(old) iff it runs where it did not, or
    # is allowed outright where it was not (allowed implies runs)
    higher = OR(ctx, AND(ctx, r_new, NOT(ctx, r_old)), AND(ctx, a_new, NOT(ctx, a_old)))
    lower = OR(ctx, AND(ctx, r_old, NOT(ctx, r_new)), AND(ctx, a_old, NOT(ctx, a_new)))
    for new_allows, q in ((True, higher), (False, lower)):
        o = session.check(req, q, tool=tool, witness=True)
        if o.unsat:
            dirs.append(Direction("no"))
            continue
        if o.status == "unknown":
            dirs.append(Direction("unknown", reason=o.reason))
            continue
        w = o.witness
        assert w is not None  # sat, asked with witness=True
        r_old, r_new = session.replayer.decide(old, w), session.replayer.decide(new, w)
        if (rank(r_new) > rank(r_old)) != new_allows or rank(r_new) == rank(r_old):
            why = "; ".join(reasons) or "the witness did not replay (an analyzer bug: please report it)"
            dirs.append(Direction("unknown", reason=f"a possible difference could not be confirmed: {why}"))
            continue
        dirs.append(Direction("yes", w, _dec(r_old, old), _dec(r_new, new)))
    return ToolDiff(tool, is_other, dirs[0], dirs[1], reasons)


def rank(decision) -> int:
    """deny 0 < approval 1 < allow 2."""
    return 2 if decision.allowed else (1 if decision.needs_approval else 0)


def _dec(decision, program: Program) -> dict:
    return decision.to_dict(program.filename if program.origin == "mcpp" else None)
