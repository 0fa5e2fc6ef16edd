"""Assertion kinds, and the gateway's tools/list visibility."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mcpp.analyzer.verify import verify
from mcpp.analyzer import visibility
from mcpp.analyzer.solve import Session
from mcpp.analyzer.visibility import clear_cache, visible_tools
from mcpp.analyzer.witness import NOW, StateStore
from mcpp.lang.program import load_program
from mcpp.runtime.engine import Engine, Grant

from .strategies import calls_for, programs

POLICY = '''
default deny;
group Action::"writes" = [Action::"deploy", Action::"rollback"];
permit (principal in Group::"ops", action in Action::"writes", resource)
when { context.input.env == "staging" };
permit (principal, action == Action::"read", resource);
limit "reads" (principal, action == Action::"read", resource) max 100 per hour;
permit (principal, action == Action::"ping", resource);
limit "pings" (principal, action == Action::"ping", resource) max 10 per hour increment context.input.cost;
hide Action::"drop_db";
'''


def results(asserts: str):
    prog = load_program(POLICY + asserts)
    return prog, {r.id: r for r in verify(prog, timeout_ms=10000)}


def test_visible_is_forall_grants():
    prog, r = results('''
@id("v-all") assert visible (principal, action in Action::"writes", resource);
@id("v-ops") assert visible (principal in Group::"ops", action in Action::"writes", resource);
@id("v-ops-prod") assert visible (principal in Group::"ops", action == Action::"deploy", resource == Server::"prod");
@id("v-hidden") assert visible (principal, action == Action::"drop_db", resource);
''')
    assert r["v-all"].status == "fail" and "ops" not in r["v-all"].witness.groups
    assert r["v-ops"].status == "pass" and r["v-ops-prod"].status == "pass"
    assert r["v-hidden"].status == "fail" and "hide" in r["v-hidden"].message
    w = r["v-all"].witness  # a grant for which no call is allowed: sampled calls agree
    engine = Engine(prog)
    for env in ("staging", "prod", 1):
        assert not engine.decide(w.tool, {"env": env}, w.grant, w.server, reserve=False).allowed


def test_hidden_and_allow_with_limits():
    prog, r = results('''
@id("h-drop") assert hidden (principal, action == Action::"drop_db", resource);
@id("h-writes-nonops") assert hidden (principal, action in Action::"writes", resource) unless { principal in Group::"ops" };
@id("h-writes") assert hidden (principal, action in Action::"writes", resource);
@id("read-always") assert allow (principal, action == Action::"read", resource);
@id("ping-free") assert allow (principal, action == Action::"ping", resource) when { context.input.cost == 0 };
@id("deny-prod") assert deny (principal, action in Action::"writes", resource) when { context.input.env == "prod" };
''')
    assert r["h-drop"].status == "pass"
    assert r["h-writes-nonops"].status == "pass"
    assert r["h-writes"].status == "fail" and "ops" in r["h-writes"].witness.groups
    # a limit may deny once its counter is full: reported, with the counter value
    ra = r["read-always"]
    assert ra.status == "fail" and ra.witness.counters and "limits/reads" in ra.decision["rule"]
    d = Engine(prog, store=StateStore(ra.witness.counters)).decide(
        "read", ra.witness.args, ra.witness.grant, ra.witness.server, now=NOW, reserve=False)
    assert not d.allowed
    assert r["ping-free"].status == "pass"  # an increment of 0 never exceeds
    assert r["deny-prod"].status == "pass"


def test_asserts_over_every_tool_include_unnamed_ones():
    prog = load_program('default allow; forbid (principal, action == Action::"rm", resource);\n'
                        '@id("nothing-else") assert deny (principal, action, resource) unless { action == Action::"ls" };')
    (r,) = verify(prog)
    assert r.status == "fail" and r.tool not in ("rm", "ls")  # the stand-in for unnamed tools


def test_unsupported_regex_cannot_pass_on_it_but_does_not_block_other_proofs():
    prog = load_program(
        'default deny;\n'
        'permit (principal, action == Action::"t", resource) when { context.input.s.matches("\\\\bok\\\\b") };\n'
        '@id("needs-regex") assert deny (principal, action == Action::"t", resource) when { context.input.s == "ok" };\n'
        '@id("independent") assert deny (principal, action == Action::"t", resource) unless { context.input has s };\n'
    )
    r = {x.id: x for x in verify(prog)}
    assert r["needs-regex"].status in ("fail", "unknown")  # "ok" does match \bok\b: a real counterexample or UNKNOWN
    if r["needs-regex"].status == "unknown":
        assert any("\\b" in reason for reason in r["needs-regex"].reasons)
    assert r["independent"].status == "pass"  # proved whatever the regex does


def test_visible_tools():
    clear_cache()
    prog = load_program(POLICY)
    names = ["deploy", "rollback", "read", "ping", "drop_db", "brand_new_tool"]
    assert visible_tools(prog, names, grant_id="g1") == {"read", "ping"}
    assert visible_tools(prog, names, grant_id="g2", groups=["ops"]) == {"deploy", "rollback", "read", "ping"}
    allow_all = load_program('default allow; hide Action::"drop_db"; forbid (principal, action == Action::"rm", resource);')
    assert visible_tools(allow_all, ["drop_db", "rm", "x", "y"], grant_id="g") == {"x", "y"}


def test_visibility_is_cached(monkeypatch):
    """The first listing asks the solver once per distinct decision (the 200 unnamed tools
    share one); the same listing again asks nothing. Its speed is in bench/analyzer_bench.py."""
    clear_cache()
    prog = load_program(POLICY)
    names = ["deploy", "rollback", "read", "ping", "drop_db"] + [f"tool{i}" for i in range(200)]
    sessions = []

    class Counted(Session):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            sessions.append(self)

    monkeypatch.setattr(visibility, "Session", Counted)
    first = visible_tools(prog, names, grant_id="g", groups=["ops"])
    assert len(sessions) == 1 and 1 <= sessions[0].queries <= 5  # four named, visible-or-not tools and the stand-in
    again = visible_tools(prog, names, grant_id="g", groups=["ops"])
    assert first == again and len(sessions) == 1  # answered from the cache: no solver at all


@given(programs(), st.data())
def test_visibility_agrees_with_the_engine(prog, data):
    """Invisible tools are never allowed for that grant (sampled); visible ones have a call."""
    clear_cache()
    calls = data.draw(st.lists(calls_for(prog), max_size=10))
    for c in calls:
        vis = visible_tools(prog, [c.tool], grant_id=c.grant, label=c.label, groups=c.groups, server=c.server, timeout_ms=20000)
        d = Engine(prog).decide(c.tool, c.args, Grant(c.grant, c.label, c.groups), c.server, reserve=False)
        if c.tool not in vis:
            assert not d.allowed, c


def test_a_tool_named_like_a_group_is_checked():
    prog = load_program('default deny;\ngroup Action::"admin" = [Action::"drop"];\n'
                        'permit (principal, action, resource) when { action in Action::"admin" };\n'
                        '@id("only-drop") assert deny (principal, action, resource) unless { action == Action::"drop" };')
    (r,) = verify(prog)
    assert r.status == "fail" and r.tool == "admin"  # a tool called "admin" is `in` the group
    assert Engine(prog).decide("admin", {}, reserve=False).allowed


def test_a_visible_counterexample_is_replayed_before_it_is_reported():
    """The grant search reads the assertion through the encoding; an unmodelled regex
    (`\\b`) lets it pick a grant the assertion does not really select. Replay catches it:
    UNKNOWN naming the approximation, never a FAIL about a grant the assertion is not about."""
    prog = load_program(
        'default deny;\n'
        'permit (principal, action == Action::"t", resource) when { principal.label like "*ok*" };\n'
        '@id("ok-sees-t") assert visible (principal, action == Action::"t", resource) '
        'when { principal.label.matches("\\\\bok\\\\b") };\n'
    )
    (r,) = verify(prog)
    assert r.status == "unknown" and any("\\b" in x for x in r.reasons), r.message
    real = load_program('default deny;\npermit (principal in Group::"ops", action == Action::"t", resource);\n'
                        '@id("all-see-t") assert visible (principal, action == Action::"t", resource);\n'
                        'hide Action::"h";\n@id("h") assert visible (principal, action == Action::"h", resource);\n')
    r = {x.id: x for x in verify(real)}
    for rid in ("all-see-t", "h"):
        assert r[rid].status == "fail" and r[rid].decision["decision"] == "deny", r[rid].message
    assert r["h"].decision["rule"] == "/hide"
    clear_cache()
    w = r["all-see-t"].witness
    assert visible_tools(real, ["t"], grant_id=w.grant_id, label=w.label, groups=w.groups, server=w.server) == set()


@given(st.data())
def test_visible_and_hidden_results_replay_on_rich_programs(data):
    from mcpp.analyzer.witness import matches_scope
    from mcpp.lang import ir
    from mcpp.lang.program import build_program

    from tests import strategies as base

    from .strategies import rich_action_scopes, rich_calls_for, rich_programs

    prog = data.draw(rich_programs(max_policies=3))
    grant_exprs = st.recursive(base.principal_atoms(), lambda sub: st.one_of(st.builds(ir.And, sub, sub), st.builds(ir.Not, sub)),
                               max_leaves=3)
    asserts = data.draw(st.lists(st.builds(
        lambda kind, act, cs: ir.Assert(kind, ir.Scope(action=act), tuple(ir.Clause("when", c) for c in cs)),
        st.sampled_from(["visible", "hidden"]), rich_action_scopes, st.lists(grant_exprs, max_size=1)), min_size=1, max_size=2))
    prog, _ = build_program(ir.Document(tuple(prog.document.statements) + tuple(asserts)))
    calls = data.draw(st.lists(rich_calls_for(prog), max_size=8))
    engine = Engine(prog)
    clear_cache()
    for a, r in zip(prog.asserts, verify(prog, timeout_ms=20000)):
        if r.status != "fail":
            continue
        w = r.witness
        assert matches_scope(prog, a.stmt, w, engine), r.message
        if a.stmt.kind == "visible":  # no call to the tool runs for this grant (allowed or approval-bound)
            assert not visible_tools(prog, [w.tool], grant_id=w.grant_id, label=w.label, groups=w.groups, server=w.server,
                                     timeout_ms=20000), r.message
            for c in calls:
                dec = engine.decide(w.tool, c.args, w.grant, w.server, reserve=False)
                assert not (dec.allowed or dec.needs_approval), (r.message, c)
        else:  # a call the engine runs (at once, or once approved)
            dec = engine.decide(w.tool, w.args, w.grant, w.server, reserve=False)
            assert dec.allowed or dec.needs_approval, r.message


def test_visible_is_proved_only_over_an_exact_allowed():
    """visible is ∀ grant ∃ call: an approximated "allowed" could serve a grant the engine
    does not, so it cannot prove it; an approximated selection (more grants) can."""
    over_selection = load_program(
        'permit (principal, action == Action::"t", resource);\n'
        'assert visible (principal, action == Action::"t", resource) when { principal.label.matches("\\\\bok\\\\b") };\n')
    (r,) = verify(over_selection)
    assert r.status == "pass", r.message
    over_allowed = load_program(
        'permit (principal, action == Action::"t", resource) when { context.input.s.matches("\\\\bok\\\\b") };\n'
        'assert visible (principal, action == Action::"t", resource);\n')
    (r,) = verify(over_allowed)
    assert r.status == "unknown" and any("\\b" in x for x in r.reasons), r.message
