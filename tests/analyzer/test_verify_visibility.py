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
