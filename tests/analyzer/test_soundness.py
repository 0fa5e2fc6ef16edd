"""The encoding means exactly what the engine does, on random policies and calls.

- exactness: pin the symbolic request to a concrete call; the encoded decision (and the
  encoded applicability of every rule) is satisfiable iff the engine agrees;
- "never allowed" is never contradicted by sampling, and "can be allowed" hands over a
  witness the engine allows;
- every assertion counterexample replays with the claimed decision, and sampled calls
  never contradict a proved assertion.
"""

from __future__ import annotations

import z3
from hypothesis import given
from hypothesis import strategies as st

from mcpp.analyzer.encode import decide, query_tools
from mcpp.analyzer.solve import Session
from mcpp.analyzer.sym import z
from mcpp.analyzer.verify import verify
from mcpp.analyzer.witness import NOW, StateStore, Witness, matches_scope, pin
from mcpp.lang import ir
from mcpp.lang.program import build_program
from mcpp.runtime.engine import Engine

from .strategies import assertions, calls_for, programs


def _witness(c, counters=None) -> Witness:
    return Witness(c.tool, c.args, c.grant, c.label, tuple(sorted(c.groups)), c.server, counters or {})


def _decide(prog, w: Witness):
    e = Engine(prog, store=StateStore(w.counters))
    return e.decide(w.tool, w.args, w.grant, w.server, now=NOW, reserve=False)


def _bounds(prog) -> dict:
    out: dict = {}
    for li in prog.limits:
        key = (li.stmt.counter, li.stmt.scope_kind, li.stmt.window)
        out[key] = max(out.get(key, 0), int(li.stmt.max))
    return out


def _holds(session, req, formula, w) -> bool:
    s = z3.Solver(ctx=session.ctx)
    s.set("timeout", 20000)
    s.add(z(session.ctx, formula), *req.constraints(), *pin(req, w))
    r = s.check()
    assert r != z3.unknown, s.reason_unknown()
    return r == z3.sat


@given(st.data())
def test_encoding_is_exact_on_concrete_calls(data):
    prog = data.draw(programs())
    calls = data.draw(st.lists(calls_for(prog), min_size=1, max_size=4))
    session = Session(20000)
    named, other = query_tools(prog)
    for c in calls:
        tool = c.tool if c.tool in named else other
        w = _witness(c)
        w.tool = tool
        req = session.request()
        d = decide(req, prog, tool)
        expected = _decide(prog, w).allowed
        assert _holds(session, req, d.allowed(zero=True), w) == expected, (c, tool)
        # rule by rule: the encoded applicability is the engine's (Engine.explain)
        applying = set(Engine(prog).explain(tool, w.args, w.grant, w.server).satisfied)
        for info, formula in d.permits + d.forbids:
            assert _holds(session, req, formula, w) == (info.id in applying), (info.id, c)


@given(st.data())
def test_counters_are_exact(data):
    prog = data.draw(programs())
    c = data.draw(calls_for(prog))
    session = Session(20000)
    named, other = query_tools(prog)
    tool = c.tool if c.tool in named else other
    counts = {}
    for key, bound in _bounds(prog).items():  # reachable counts: 0 … the largest max counting it
        counts[key] = data.draw(st.sampled_from(sorted({0, 1, bound // 2, max(bound - 1, 0), bound} & set(range(bound + 1)))))
    w = _witness(c, counts)
    w.tool = tool
    req = session.request()
    d = decide(req, prog, tool)
    for key in counts:
        req.counter(key)
    assert _holds(session, req, d.allowed(zero=False), w) == _decide(prog, w).allowed


@given(st.data())
def test_never_allowed_is_never_contradicted(data):
    prog = data.draw(programs())
    calls = data.draw(st.lists(calls_for(prog), max_size=8))
    session = Session(20000)
    named, other = query_tools(prog)
    verdict = {}
    for tool in named + [other]:
        req = session.request()
        d = decide(req, prog, tool)
        o = session.check(req, d.allowed(zero=True), tool=tool, witness=True)
        assert o.status != "unknown", o.reason
        verdict[tool] = o.status
        if o.sat:  # "can be allowed": the witness is allowed by the engine
            assert _decide(prog, o.witness).allowed, (tool, o.witness)
    for c in calls:
        tool = c.tool if c.tool in named else other
        if verdict[tool] == "unsat":
            w = _witness(c)
            assert not _decide(prog, w).allowed, (c, "proved never allowed")


@given(st.data())
def test_assert_counterexamples_replay_and_proofs_hold(data):
    prog = data.draw(programs(max_policies=3, with_approvals=data.draw(st.booleans())))
    asserts = data.draw(st.lists(assertions(), min_size=1, max_size=2))
    doc = ir.Document(tuple(prog.document.statements) + tuple(asserts))
    prog, _ = build_program(doc)
    calls = data.draw(st.lists(calls_for(prog), max_size=8))
    results = verify(prog, timeout_ms=20000)
    named, other = query_tools(prog)
    for a, r in zip(prog.asserts, results):
        assert r.status != "unknown", r.message
        st_ = a.stmt
        if r.status == "fail":
            w = r.witness
            assert matches_scope(prog, st_, w)
            decision = _decide(prog, w)
            runs = decision.allowed or decision.needs_approval
            if st_.kind == "deny":  # a call that runs, with or without a person
                assert runs, (r.message, decision.to_dict())
            elif st_.kind == "approval":  # a call that runs without a person
                assert decision.allowed, (r.message, decision.to_dict())
            else:
                assert not decision.allowed, (r.message, decision.to_dict())
            assert decision.to_dict()["rule"] == r.decision["rule"]
            continue
        for c in calls:
            tool = c.tool if c.tool in named else other
            w = _witness(c)
            w.tool = tool
            if a.tools is not None and tool not in a.tools or not matches_scope(prog, st_, w):
                continue
            if st_.kind == "deny":
                d = _decide(prog, w)
                assert not d.allowed and not d.needs_approval, (a.id, c)
            elif st_.kind == "approval":  # nothing runs without a person
                assert not _decide(prog, w).allowed, (a.id, c)
            else:  # allowed whatever the counters say
                full = _bounds(prog)
                assert _decide(prog, w).allowed and _decide(prog, Witness(**{**w.__dict__, "counters": full})).allowed
