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

from .deadline import Deadline
from .encode import ProgramEncoder, decide, query_tools
from .solve import OutOfTime, Session
from .sym import AND, NOT, string_val, z
from .witness import Decoder, ReplayError, Witness, _pin_user, arg_assignment, matches_scope


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


def verify(program: Program, *, timeout_ms: int = 2000, session: Session | None = None,
           deadline: Deadline | None = None) -> list[AssertResult]:
    """Decide every `assert` of the program. With a `deadline` (or the session's: the
    whole run's budget, analyzer/deadline.py), an assertion not decided when it runs out
    is UNKNOWN with the deadline as its reason."""
    session = session or Session(timeout_ms, deadline=deadline)
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
        late = session.expired()
        if late is not None:  # not even encoded: the run is over
            out.append(AssertResult(a.id, a.stmt.kind, "unknown", late, a.stmt.span))
            continue
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
    for n, tool in enumerate(tools):
        late = session.expired()
        if late is not None:
            left = len(tools) - n
            unknown.append(f"{left} tool{'s' if left != 1 else ''} not checked: {late}")
            break
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
            "hidden": "the tools are hidden from every matching {who}", "visible": "the tools are visible to every matching {who}"}[st.kind]
    what = what.format(who="grant or user" if getattr(program, "identity_aware", False) else "grant")
    return AssertResult(a.id, st.kind, "pass", f"proved: {what} ({len(tools)} tool{'s' if len(tools) != 1 else ''} checked)",
                        st.span, tools_checked=len(tools))


def _one(session: Session, program: Program, a: AssertInfo, tool: str, other: str | None) -> AssertResult | None:
    """deny / allow / hidden for one tool: None when proved."""
    st = a.stmt
    req = session.request()
    d = decide(req, program, tool)
    ctx = session.ctx
    selected = AND(ctx, d.fits, d.enc.applies(st))  # over callers that fit `entity User` (docs/analyzer.md)
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
    try:
        selected_by_engine = matches_scope(program, st, w, session.replayer.engine(program))
    except ReplayError as e:
        return AssertResult(a.id, st.kind, "unknown", f"a possible counterexample could not be checked: {e.reason}",
                            st.span, tool, reasons=sorted(d.enc.reasons))
    if not replayed or not selected_by_engine:
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
        msg = f"{_label(tool, other)} is visible to {'a user' if w.user else f'grant {w.grant_id!r}'}: this call {how}{by}: {w.brief()}"
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
    """∀ selected grant ∃ allowed call, by refinement; None when proved.

    Each round asks for a selected grant (and server) that none of the calls found so
    far serves, then for a call that serves it. The calls are real ones (decoded from
    the model and pinned back), so a proof means: every selected grant is served by one
    of these concrete calls. That is only a proof when the encoding is exact (an
    over-approximated "allowed" could serve a grant the engine does not), so with
    approximations the answer is at best UNKNOWN. A counterexample (a grant for which
    no call is allowed) is replayed before it is reported (`_replay_invisible`)."""
    st = a.stmt
    ctx = session.ctx
    req = session.request()
    d = decide(req, program, tool)
    allowed = z(ctx, d.runs(zero=True))  # approval-bound calls run once approved: visible
    # the assertion's own encoder: an approximation in what it selects keeps a proof
    # sound (it covers more grants); only one in `allowed` can make a grant look served
    sel = ProgramEncoder(req, program, tool)
    selected = z(ctx, AND(ctx, d.fits, sel.applies(st)))  # a user who does not fit `entity User` is served nothing
    base = req.constraints()
    seen: list = []
    served: list[dict] = []  # the calls found allowed for earlier grants: refinements and replay probes

    def unknown(reason: str) -> AssertResult:
        return AssertResult(a.id, st.kind, "unknown", reason, st.span, tool, reasons=sorted(d.enc.reasons | sel.reasons))

    for _ in range(rounds):
        # a grant (and server) that none of the calls found so far serves
        s = z3.Solver(ctx=ctx)
        s.add(selected, *base, *seen)

        def grant_then(r, s=s):
            if r != z3.sat:
                return str(r), session.unknown_reason(s) if r == z3.unknown else ""
            m = s.model()
            m = session._prefer(s, req) or m  # a readable grant (anonymous, server default) if one fits
            caller = Decoder(req, m).witness(tool)  # the grant or the user (with its claims), and the server
            caller.args, caller.counters = {}, {}
            return "sat", caller

        try:
            status, got = session.solve(s, grant_then, isolate=req.isolate, extra_ms=session.prefer_budget())
        except OutOfTime as e:
            return unknown(e.reason)
        if status == "unsat":
            if d.enc.reasons:  # the calls found serve every grant *by the approximated encoding*
                return unknown("visibility is ∀ grant ∃ call: an approximated encoding cannot prove it")
            return None  # every selected grant is served (or the assertion selects none)
        if status != "sat":
            return unknown(got)
        w = got
        gid, label, groups, server = w.grant_id, w.label, w.groups, w.server
        if d.hidden:
            msg = f"{_label(tool, other)} is hidden by `hide`: no grant sees it"
            return _replay_invisible(session, program, a, w, served, msg, d.enc.reasons | sel.reasons)
        fixed = _grant_pairs(req, gid, label, groups, server)
        # is there any call that serves it?
        s2 = z3.Solver(ctx=ctx)
        s2.add(z3.substitute(allowed, *fixed), *[z3.substitute(c, *fixed) for c in base])
        s2.add(*_pin_user(req, w))  # a user caller: its kind, claims and groups fixed too

        def call_then(r, s2=s2):
            if r != z3.sat:
                return str(r), session.unknown_reason(s2) if r == z3.unknown else ""
            return "sat", Decoder(req, s2.model()).witness(tool).args

        try:
            status, got = session.solve(s2, call_then, isolate=req.isolate)
        except OutOfTime as e:
            return unknown(e.reason)
        if status == "unsat":
            who = w.caller() if w.user else f"grant {gid!r}" + (f" (label {label!r})" if label else "") + (
                " in " + ", ".join(f"Group::\"{g}\"" for g in groups) if groups else "")
            msg = f"{_label(tool, other)} is not visible to {who} on server {server!r}: no call to it is allowed"
            return _replay_invisible(session, program, a, w, served, msg, d.enc.reasons | sel.reasons)
        if status != "sat":
            return unknown(got)
        served.append(got)
        # later grants must not be served by this call: its arguments pinned, the grant free
        args_fix = arg_assignment(req, got, complete=True)
        # havoc booleans stand for facts about *this* call: fresh copies per call found
        args_fix += [(h, z3.FreshBool("havoc", ctx)) for h in d.enc.havoc_vars]
        # an object-literal equality flag is the value of its definition on these arguments
        for flag, p, fields in req.objeq:
            args_fix.append((flag, z3.simplify(z3.substitute(z(ctx, req._objeq_def(p, fields)), *args_fix))))
        cons = [z3.substitute(c, *args_fix) for c in base]
        seen.append(z3.Not(z(ctx, AND(ctx, z3.substitute(allowed, *args_fix), *cons))))
    return unknown(f"no conclusion after {rounds} refinement rounds")


def _replay_invisible(session: Session, program: Program, a: AssertInfo, w: Witness, probes: list[dict],
                      message: str, reasons) -> AssertResult:
    """Confirm "no call to the tool is allowed for this grant and server" with the code
    that enforces it, or answer UNKNOWN: the assertion selects the grant (engine), the
    engine denies the call with no arguments and every call found allowed for an earlier
    grant, and the gateway's tools/list filter (`visible_tools`) leaves the tool out."""
    from .visibility import visible_tools, visible_tools_for_user

    st = a.stmt
    engine = session.replayer.engine(program)
    problem = None
    first = None
    try:
        selected_by_engine = matches_scope(program, st, w, engine)
    except ReplayError as e:
        selected_by_engine, problem = False, e.reason
    if problem is None and not selected_by_engine:
        problem = f"the engine does not select {w.caller()} on server {w.server!r} for this assertion"
    elif problem is None:
        for args in [{}] + probes:
            probe = Witness(w.tool, args, w.grant_id, w.label, w.groups, w.server, user=w.user, attrs=w.attrs)
            decision = session.replayer.decide(program, probe)
            first = first or decision
            if decision.allowed or decision.needs_approval:
                problem = f"the engine {'allows' if decision.allowed else 'runs once approved'} {probe.brief()}"
                break
    if problem is None:
        if w.user:
            shown = visible_tools_for_user(program, [w.tool], user_id=w.grant_id, attrs=w.attrs, groups=w.groups,
                                           server=w.server, timeout_ms=session.query_ms())
        else:
            shown = visible_tools(program, [w.tool], grant_id=w.grant_id, label=w.label, groups=w.groups,
                                  server=w.server, timeout_ms=session.query_ms())
        if shown:
            problem = "the gateway's tools/list still shows the tool for this grant (its own check could not decide)"
    if problem is not None:
        why = "; ".join(sorted(reasons)) or "the witness did not replay (an analyzer bug: please report it)"
        return AssertResult(a.id, st.kind, "unknown", f"a possible counterexample could not be confirmed ({problem}): {why}",
                            st.span, w.tool, reasons=sorted(reasons))
    assert first is not None  # the probes ran
    dd = first.to_dict(program.filename if program.origin == "mcpp" else None)
    return AssertResult(a.id, st.kind, "fail", message, st.span, w.tool, w, dd)


def _grant_pairs(req, gid: str, label: str, groups, server: str) -> list[tuple]:
    """The substitution fixing the request's grant and server variables to these values."""
    ctx = req.ctx
    pairs = []
    if req.grant is None:
        pairs += [(req.gid, string_val(gid, ctx, raw=True)), (req.label, string_val(label, ctx, raw=True))]
        pairs += [(b, z3.BoolVal(g in groups, ctx)) for g, b in req.groups.items()]
    if req.server is None:
        pairs.append((req.sid, string_val(server, ctx, raw=True)))
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
