"""verify, diff and visibility on rich programs: every default, `hide`, action groups with
tool names equal to group names, and clauses of any shape (`is T in` an argument, sets of
entities, empty and nested literals). The claims are checked against the engine: the
encoded decision is the engine's on concrete calls, every counterexample replays, and
no sampled call contradicts a proof."""

from __future__ import annotations

import z3
from hypothesis import given
from hypothesis import strategies as st

from mcpp.analyzer.diff import diff_programs
from mcpp.analyzer.encode import decide, query_tools
from mcpp.analyzer.solve import Session
from mcpp.analyzer.sym import z
from mcpp.analyzer.verify import verify
from mcpp.analyzer.visibility import clear_cache, visible_tools
from mcpp.analyzer.witness import NOW, StateStore, Witness, matches_scope, pin
from mcpp.lang import ir
from mcpp.lang.program import build_program
from mcpp.runtime.engine import Engine, Grant

from .strategies import rich_calls_for, rich_policies, rich_programs


def _w(c, tool=None) -> Witness:
    return Witness(tool or c.tool, c.args, c.grant, c.label, tuple(sorted(c.groups)), c.server)


def _allowed(prog, w: Witness) -> bool:
    e = Engine(prog, store=StateStore(w.counters))
    return e.decide(w.tool, w.args, w.grant, w.server, now=NOW, reserve=False).allowed


def _probe(prog, c) -> str:
    named, other = query_tools(prog)
    return c.tool if c.tool in named else other


@given(st.data())
def test_rich_encoding_is_exact_on_concrete_calls(data):
    prog = data.draw(rich_programs())
    calls = data.draw(st.lists(rich_calls_for(prog), min_size=1, max_size=4))
    session = Session(20000)
    for c in calls:
        w = _w(c, _probe(prog, c))
        req = session.request()
        d = decide(req, prog, w.tool)
        s = z3.Solver(ctx=session.ctx)
        s.set("timeout", 20000)
        s.add(*req.constraints(), *pin(req, w))
        r = s.check(z(session.ctx, d.allowed(zero=True)))
        assert r != z3.unknown
        if not d.enc.reasons:
            assert (r == z3.sat) == _allowed(prog, w), (c, w.tool)
        elif _allowed(prog, w):
            assert r == z3.sat, (c, w.tool)  # an over-approximation keeps every real behaviour
        # rule by rule: the encoded applicability is the engine's
        engine = Engine(prog)
        env = engine.env(w.tool, w.args, w.grant, w.server)
        rules = engine.index.get(w.tool, engine.other)
        by_id = {x.id: x for x in rules.permits + rules.forbids}
        for info, formula in d.permits + d.forbids:
            applies = by_id[info.id].applies(env)
            r = s.check(z(session.ctx, formula))
            if not d.enc.reasons:
                assert (r == z3.sat) == applies, (info.id, c)
            elif applies:
                assert r == z3.sat, (info.id, c)


@given(st.data())
def test_rich_assert_counterexamples_replay_and_proofs_hold(data):
    prog = data.draw(rich_programs(max_policies=3))
    asserts = data.draw(st.lists(
        st.builds(lambda kind, pol: ir.Assert(kind, pol.scope, pol.clauses), st.sampled_from(["deny", "allow"]), rich_policies()),
        min_size=1, max_size=2))
    prog, diags = build_program(ir.Document(tuple(prog.document.statements) + tuple(asserts)))
    calls = data.draw(st.lists(rich_calls_for(prog), max_size=10))
    engine = Engine(prog)
    for a, r in zip(prog.asserts, verify(prog, timeout_ms=20000)):
        st_ = a.stmt
        if r.status == "fail":
            assert matches_scope(prog, st_, r.witness, engine)
            assert _allowed(prog, r.witness) == (st_.kind == "deny"), r.message
        if r.status != "pass":
            continue
        for c in calls:
            w = _w(c, _probe(prog, c))
            if a.tools is not None and w.tool not in a.tools or not matches_scope(prog, st_, w, engine):
                continue
            if st_.kind == "deny":
                assert not _allowed(prog, w), (a.id, c)
            else:
                assert _allowed(prog, w), (a.id, c)


@given(st.data())
def test_rich_diff_claims_hold(data):
    old = data.draw(rich_programs(max_policies=3))
    stmts = list(old.document.statements)
    i = data.draw(st.integers(0, len(stmts) - 1))
    change = data.draw(st.sampled_from(["drop", "false", "add"]))
    if change == "drop":
        del stmts[i]
    elif change == "false" and isinstance(stmts[i], ir.Policy):
        stmts[i] = ir.Policy(stmts[i].effect, stmts[i].scope, (ir.Clause("when", ir.Lit(False)),))
    else:
        stmts.append(data.draw(rich_policies()))
    new, diags = build_program(ir.Document(tuple(stmts)))
    calls = data.draw(st.lists(rich_calls_for(old), max_size=10))
    named, other = query_tools(old, new)
    by_tool = {d.tool: d for d in diff_programs(old, new, timeout_ms=20000)}
    for d in by_tool.values():
        for direction, new_allows in ((d.looser, True), (d.stricter, False)):
            if direction.status == "yes":
                w = direction.witness
                assert _allowed(new, w) == new_allows and _allowed(old, w) != new_allows, d.to_dict()
    for c in calls:
        tool = c.tool if c.tool in named else other
        w = _w(c, tool)
        a_old, a_new = _allowed(old, w), _allowed(new, w)
        if a_new and not a_old:
            assert by_tool[tool].looser.status != "no", (c, "a looser call in a tool diff calls not looser")
        if a_old and not a_new:
            assert by_tool[tool].stricter.status != "no", (c, "a stricter call in a tool diff calls not stricter")


@given(st.data())
def test_rich_visibility_agrees_with_the_engine(data):
    prog = data.draw(rich_programs())
    calls = data.draw(st.lists(rich_calls_for(prog), max_size=10))
    clear_cache()
    for c in calls:
        vis = visible_tools(prog, [c.tool], grant_id=c.grant, label=c.label, groups=c.groups, server=c.server, timeout_ms=20000)
        if c.tool not in vis:
            assert not Engine(prog).decide(c.tool, c.args, Grant(c.grant, c.label, c.groups), c.server, reserve=False).allowed, c
