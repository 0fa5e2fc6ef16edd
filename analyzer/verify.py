"""`assert` statements: what they mean and how each is decided.

An assertion's scope and `when`/`unless` clauses select calls exactly as a policy's
would (a clause that errors leaves the call out). Over the selected calls:

- `assert deny`: no call is allowed, even with every limit counter at zero, and none
  could run with a person's approval either (an `@approval` permit's call can run).
  Query: selected ∧ runs(counters = 0). A model is a call the engine allows or holds for
  approval.
- `assert allow`: every call is allowed *whatever the limit counters say* (each counter
  anywhere from 0 to the largest `max` among the limits that count it). A limit "may
  deny" (its counter can be full), so a limited tool fails unless the call's increment
  is 0. Query: selected ∧ ¬allowed(counters free). A model is a call and counter values
  at which the engine denies it.
- `assert approval`: every selected call that can run at all needs a person's approval:
  none is allowed outright (counters zero, where the most calls are allowed). Query:
  selected ∧ allowed(counters = 0). A model is a call that runs without anyone, e.g. one
  an ordinary permit or the default also allows (lang/plan.py's APPROVAL_RULE).
- `assert hidden`: for every selected grant and server, no call to the tool can run
  (counters zero), so the gateway never lists it. Same query as `deny`.
- `assert visible`: for every selected grant and server, *some* call can run (allowed, or
  allowed once approved: the gateway lists approval-bound tools), so the
  gateway lists the tool. This is ∀grant ∃arguments; it is decided by counterexample-
  guided refinement: guess a grant none of the calls found so far serve, then look for
  a call that serves it; a grant for which no call exists is the counterexample.

`hidden`/`visible` are about `tools/list`, which has no arguments: their conditions may
not read `context` (an input error). Every FAIL is replayed through
`Engine.decide(..., reserve=False)` before it is reported; a witness that does not
replay (possible only where the encoding over-approximates) makes the result UNKNOWN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import z3

from mcpp.lang import ir
from mcpp.lang.diagnostics import Diagnostic, Span, did_you_mean
from mcpp.lang.ir import walk
from mcpp.lang.program import AssertInfo, Program

from .encode import decide, query_tools
from .solve import Session
from .sym import AND, NOT, string_val, z
from .witness import Witness, matches_scope


@dataclass
class AssertResult:
    id: str
    kind: str
    status: str  # pass | fail | unknown
    message: str
    span: Span
    tool: str | None = None
    witness: Witness | None = None
    decision: dict | None = None  # the engine's replayed decision for the witness
    reasons: list = field(default_factory=list)
    tools_checked: int = 0

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"id": self.id, "kind": self.kind, "status": self.status, "message": self.message,
             "line": self.span.line, "col": self.span.col, "tools_checked": self.tools_checked}
        if self.tool is not None:
            d["tool"] = self.tool
        if self.witness is not None:
            d["counterexample"] = self.witness.to_dict()
            if self.kind == "visible":  # the counterexample is a grant and server: no call exists
                del d["counterexample"]["request"]
                d["counterexample"]["tool"] = self.tool
        if self.decision is not None:
            d["decision"] = self.decision
        if self.reasons:
            d["reasons"] = self.reasons
        return d


def assert_problems(program: Program, catalog=None) -> list[Diagnostic]:
    """Input errors in assertions: `hidden`/`visible` reading arguments, and (with a tool
    catalog: a set of tool names, or a `catalog.model.Catalog`) tools the catalog does not
    have."""
    if catalog is not None and not isinstance(catalog, (set, frozenset)):
        catalog = set(catalog.tools)
    out = []
    for a in program.asserts:
        st = a.stmt
        if st.kind in ("hidden", "visible"):
            for c in st.clauses:
                if any(isinstance(n, ir.Var) and n.name == "context" for n in walk(c.expr)):
                    out.append(Diagnostic(
                        f"`assert {st.kind}` is about tools/list, which has no arguments; its conditions cannot read context",
                        c.span, "error", "assert", program.filename,
                        ("use `assert deny`/`assert allow` to state what calls with these arguments may do",),
                    ))
        if catalog is not None and a.tools:
            for ent in st.scope.action.entities:
                names = program.groups.get(ent.id, frozenset({ent.id})) if st.scope.action.op != "eq" else {ent.id}
                for t in sorted(names):
                    # a group's own name is in its `in` (Cedar's reflexive `in`): only a
                    # tool of that name could be called, and a catalog without one has none
                    if t not in catalog and t not in program.groups:
                        near = did_you_mean(t, sorted(catalog))
                        notes = (f"did you mean {near!r}?",) if near else ()
                        out.append(Diagnostic(f"unknown tool {t!r} in assert {a.id!r}: the tool catalog has no such tool",
                                              ent.span, "error", "unknown-tool", program.filename, notes))
    return out


def verify(program: Program, *, timeout_ms: int = 2000, session: Session | None = None) -> list[AssertResult]:
    """Decide every `assert` of the program."""
    session = session or Session(timeout_ms)
    catalog = session.tools()
    if catalog is not None:
        # typed (a catalog): the catalog's tools are every tool a call can name, each with its
        # own schema; no stand-in (a tool the catalog lacks never reaches the policy)
        all_tools, other = catalog, None
    else:
        named, other = query_tools(program)
        all_tools = named + [other]
    out = []
    for a in program.asserts:
        if a.tools is None:
            tools = all_tools
        elif catalog is not None:
            schemas = session.schemas
            assert schemas is not None  # typed: the catalog is the schemas' tools
            tools = sorted(t for t in a.tools if t in schemas)
            missing = sorted(t for t in a.tools if t not in schemas and t not in program.groups)
            if missing:  # `assert_problems(program, catalog)` reports it as an input error first
                out.append(AssertResult(a.id, a.stmt.kind, "unknown",
                                        f"the catalog has no tool {', '.join(repr(t) for t in missing)}: an assertion "
                                        "about a tool the gateway refuses proves nothing", a.stmt.span))
                continue
        else:
            tools = sorted(a.tools)
        out.append(_check(session, program, a, tools, other))
    return out


def _label(tool: str, other: str | None) -> str:
    return f"{tool} (standing for every tool the policy does not name)" if tool == other else tool


def _check(session: Session, program: Program, a: AssertInfo, tools: list[str], other: str | None) -> AssertResult:
    st = a.stmt
    unknown: list[str] = []
    reasons: list[str] = []
    for tool in tools:
        if st.kind == "visible":
            r = _visible(session, program, a, tool, other)
        else:
            r = _one(session, program, a, tool, other)
        if r is None:
            continue
        if r.status == "fail":
            r.tools_checked = len(tools)
            return r
        unknown.append(f"{_label(tool, other)}: {r.message}")
        reasons += r.reasons
    if unknown:
        return AssertResult(a.id, st.kind, "unknown", "; ".join(unknown), st.span, reasons=sorted(set(reasons)), tools_checked=len(tools))
    what = {"deny": "every matching call is denied", "allow": "every matching call is allowed",
            "approval": "every matching call that can run needs a person's approval",
            "hidden": "the tools are hidden from every matching grant", "visible": "the tools are visible to every matching grant"}[st.kind]
    return AssertResult(a.id, st.kind, "pass", f"proved: {what} ({len(tools)} tool{'s' if len(tools) != 1 else ''} checked)",
                        st.span, tools_checked=len(tools))


def _one(session: Session, program: Program, a: AssertInfo, tool: str, other: str | None) -> AssertResult | None:
    """deny / allow / hidden for one tool: None when proved."""
    st = a.stmt
    req = session.request()
    d = decide(req, program, tool)
    selected = d.enc.applies(st)
    ctx = session.ctx
    if st.kind == "allow":
        q = AND(ctx, selected, NOT(ctx, d.allowed(zero=False)))
    elif st.kind == "approval":
        q = AND(ctx, selected, d.allowed(zero=True))
    else:  # deny, hidden: nothing runs, not even with a person's approval
        q = AND(ctx, selected, d.runs(zero=True))
    o = session.check(req, q, tool=tool, witness=True)
    if o.unsat:
        return None
    if o.status == "unknown":
        return AssertResult(a.id, st.kind, "unknown", o.reason, st.span, tool, reasons=sorted(d.enc.reasons))
    w = o.witness
    assert w is not None  # sat, asked with witness=True
    decision = session.replayer.decide(program, w)
    if st.kind == "allow":
        replayed = not decision.allowed
    elif st.kind == "approval":
        replayed = decision.allowed
    else:
        replayed = decision.allowed or decision.needs_approval
    if not replayed or not matches_scope(program, st, w, session.replayer.engine(program)):
        why = "; ".join(sorted(d.enc.reasons)) or "the witness did not replay (an analyzer bug: please report it)"
        return AssertResult(a.id, st.kind, "unknown", f"a possible counterexample could not be confirmed: {why}",
                            st.span, tool, reasons=sorted(d.enc.reasons))
    dd = decision.to_dict(program.filename if program.origin == "mcpp" else None)
    by = _by(program, decision)
    how = "can run once a person approves it" if decision.needs_approval and not decision.allowed else "is allowed"
    if st.kind == "deny":
        msg = f"this call to {_label(tool, other)} {how}{by}: {w.brief()}"
    elif st.kind == "approval":
        msg = f"this call to {_label(tool, other)} runs without a person's approval: it is allowed{by}: {w.brief()}"
    elif st.kind == "hidden":
        msg = f"{_label(tool, other)} is visible to grant {w.grant_id!r}: this call {how}{by}: {w.brief()}"
    elif decision.needs_approval:
        msg = f"this call to {_label(tool, other)} needs a person's approval ({decision.rule.pointer}): {w.brief()}"
    else:
        msg = f"this call to {_label(tool, other)} is denied by {decision.rule.pointer} ({decision.message}): {w.brief()}"
    return AssertResult(a.id, st.kind, "fail", msg, st.span, tool, w, dd)


def _by(program: Program, decision) -> str:
    if decision.rule.policy:
        pid = decision.rule.policy
        span = decision.rule.span
        where = f" (line {span.line})" if span is not None and span.line and program.origin == "mcpp" else ""
        return f" by policy {pid!r}{where}"
    if decision.rule.pointer == "/default":
        return " by `default allow`"
    return ""


# ---- visible: ∀ grant ∃ call -------------------------------------------------------------


def _visible(session: Session, program: Program, a: AssertInfo, tool: str, other: str | None,
             rounds: int = 16) -> AssertResult | None:
    st = a.stmt
    ctx = session.ctx
    req = session.request()
    d = decide(req, program, tool)
    if d.hidden:
        return AssertResult(a.id, st.kind, "fail", f"{_label(tool, other)} is hidden by `hide`: no grant sees it",
                            st.span, tool)
    allowed = z(ctx, d.runs(zero=True))
    selected = z(ctx, d.enc.applies(st))
    base = req.constraints()
    args_vars = [x for v in req.paths.values() for x in v.variables()] + [flag for flag, _, _ in req.objeq]
    seen: list[z3.BoolRef] = []
    for i in range(rounds):
        # a grant (and server) that none of the calls found so far serves
        s = z3.Solver(ctx=ctx)
        s.set("timeout", session.timeout_ms)
        s.add(selected, *seen)
        r = s.check()
        session.queries += 1
        if r == z3.unsat:
            return None
        if r == z3.unknown:
            return AssertResult(a.id, st.kind, "unknown", f"the solver gave up ({s.reason_unknown()})", st.span, tool)
        m = session._prefer(s, req) or s.model()  # a readable grant (anonymous, server default) if one fits
        fixed = _grant_substitution(req, m)
        # is there any call that serves it?
        s2 = z3.Solver(ctx=ctx)
        s2.set("timeout", session.timeout_ms)
        s2.add(z3.substitute(allowed, *fixed), *[z3.substitute(c, *fixed) for c in base])
        r2 = s2.check()
        session.queries += 1
        gid, label, groups, server = _grant_of(req, m)
        if r2 == z3.unsat:
            who = f"grant {gid!r}" + (f" (label {label!r})" if label else "") + (
                " in " + ", ".join(f"Group::\"{g}\"" for g in groups) if groups else "")
            w = Witness(tool, {}, gid, label, groups, server)
            return AssertResult(a.id, st.kind, "fail",
                                f"{_label(tool, other)} is not visible to {who} on server {server!r}: no call to it is allowed",
                                st.span, tool, w)
        if r2 == z3.unknown:
            return AssertResult(a.id, st.kind, "unknown", f"the solver gave up ({s2.reason_unknown()})", st.span, tool)
        m2 = s2.model()
        # the arguments that serve this grant; later grants must avoid being served by them
        args_fix = [(v, m2.eval(v, model_completion=True)) for v in args_vars]
        # havoc booleans stand for facts about *this* call: fresh copies per call found
        args_fix += [(h, z3.FreshBool("havoc", ctx)) for h in d.enc.havoc_vars]
        cons = [z3.substitute(c, *args_fix) for c in base]
        seen.append(z3.Not(z3.And(z3.substitute(allowed, *args_fix), *cons)))
    return AssertResult(a.id, st.kind, "unknown", f"no conclusion after {rounds} refinement rounds", st.span, tool)


def _grant_substitution(req, m):
    pairs = []
    if req.grant is None:
        pairs += [(req.gid, m.eval(req.gid, model_completion=True)), (req.label, m.eval(req.label, model_completion=True))]
        pairs += [(b, m.eval(b, model_completion=True)) for b in req.groups.values()]
    if req.server is None:
        pairs.append((req.sid, m.eval(req.sid, model_completion=True)))
    return pairs


def _grant_of(req, m):
    from .sym import string_of

    if req.grant is not None:
        gid, label, groups = req.grant.id, req.grant.label, tuple(sorted(req.grant.groups))
    else:
        gid = string_of(m.eval(req.gid, model_completion=True))
        label = string_of(m.eval(req.label, model_completion=True))
        groups = tuple(sorted(g for g, b in req.groups.items() if z3.is_true(m.eval(b, model_completion=True))))
    server = req.server if req.server is not None else string_of(m.eval(req.sid, model_completion=True))
    return gid, label, groups, server


_ = string_val  # re-exported for callers building fixed requests
