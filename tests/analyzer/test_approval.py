"""`@approval` permits in the analyzer: the encoding's three outcomes are the engine's,
`assert approval` proves and refutes, `diff` ranks deny < approval < allow, visibility
lists approval-bound tools, and the compiler refuses them (docs/approval.md)."""

from __future__ import annotations

import pytest
import z3
from hypothesis import given, settings
from hypothesis import strategies as st

from mcpp.analyzer.diff import diff_programs
from mcpp.analyzer.encode import decide, query_tools
from mcpp.analyzer.solve import Session
from mcpp.analyzer.sym import z
from mcpp.analyzer.verify import verify
from mcpp.analyzer.visibility import visible_tools
from mcpp.analyzer.witness import NOW, StateStore, Witness, pin
from mcpp.lang.compiler import compile_program
from mcpp.lang.diagnostics import MCPPError
from mcpp.lang.program import load_program
from mcpp.runtime.engine import Engine

from .strategies import calls_for, programs


def _holds(session, req, formula, w) -> bool:
    s = z3.Solver(ctx=session.ctx)
    s.set("timeout", 20000)
    s.add(z(session.ctx, formula), *req.constraints(), *pin(req, w))
    r = s.check()
    assert r != z3.unknown, s.reason_unknown()
    return r == z3.sat


@given(st.data())
@settings(max_examples=150)
def test_three_outcomes_are_the_engines(data):
    """Pinned to a concrete call, exactly one of allowed / needs_approval / neither holds,
    and it is the engine's decision ("allow" / "approval" / "deny")."""
    prog = data.draw(programs(with_approvals=True))
    calls = data.draw(st.lists(calls_for(prog), min_size=1, max_size=4))
    session = Session(20000)
    named, other = query_tools(prog)
    for c in calls:
        tool = c.tool if c.tool in named else other
        w = Witness(tool, c.args, c.grant, c.label, tuple(sorted(c.groups)), c.server, {})
        req = session.request()
        d = decide(req, prog, tool)
        engine = Engine(prog, store=StateStore({}))
        expected = engine.decide(tool, w.args, w.grant, w.server, now=NOW, reserve=False).decision
        got = ("allow" if _holds(session, req, d.allowed(zero=True), w) else
               "approval" if _holds(session, req, d.needs_approval(zero=True), w) else "deny")
        assert got == expected, (c, tool)
        assert _holds(session, req, d.runs(zero=True), w) == (expected != "deny")


PROD = '''
default deny;
permit (principal, action == Action::"delete_pod", resource) when { context.input.namespace != "prod" };
@approval("Deleting in prod needs an on-call engineer.")
permit (principal, action == Action::"delete_pod", resource) when { context.input.namespace == "prod" };
'''


@pytest.mark.parametrize("extra, status, says", [
    # the approval permit is the only way a prod deletion runs
    ('assert approval (principal, action == Action::"delete_pod", resource) when { context.input.namespace == "prod" };',
     "pass", "needs a person's approval"),
    # an ordinary permit that also allows prod deletions: no approval is needed
    ('permit (principal, action == Action::"delete_pod", resource) when { principal in Group::"sre" };\n'
     'assert approval (principal, action == Action::"delete_pod", resource) when { context.input.namespace == "prod" };',
     "fail", "runs without a person's approval"),
    # `assert deny` fails: the call can run once approved
    ('assert deny (principal, action == Action::"delete_pod", resource) when { context.input.namespace == "prod" };',
     "fail", "can run once a person approves it"),
    # `assert allow` fails: the call waits for a person
    ('assert allow (principal, action == Action::"delete_pod", resource) when { context.input.namespace == "prod" };',
     "fail", "needs a person's approval"),
    # a forbid beats an approval permit: nothing runs
    ('forbid (principal, action == Action::"delete_pod", resource) when { context.input.namespace == "prod" };\n'
     'assert deny (principal, action == Action::"delete_pod", resource) when { context.input.namespace == "prod" };',
     "pass", "every matching call is denied"),
    ('assert visible (principal, action == Action::"delete_pod", resource) when { principal has label };', "pass", "visible"),
])
def test_asserts_over_approval(extra, status, says):
    prog = load_program(PROD + extra, "p.mcpp")
    (r,) = verify(prog, timeout_ms=20000)
    assert r.status == status, r.message
    assert says in r.message
    if status == "fail":  # the counterexample is the engine's
        d = Engine(prog, store=StateStore({})).decide(r.witness.tool, r.witness.args, r.witness.grant, r.witness.server,
                                                       now=NOW, reserve=False)
        assert d.to_dict()["rule"] == r.decision["rule"]


def test_assert_approval_over_a_group_names_the_tool_without_one():
    prog = load_program(PROD + '''
permit (principal, action == Action::"delete_node", resource);
assert approval (principal, action in [Action::"delete_pod", Action::"delete_node"], resource)
when { context.input.namespace == "prod" };''', "p.mcpp")
    (r,) = verify(prog, timeout_ms=20000)
    assert r.status == "fail" and r.tool == "delete_node"
    assert r.witness.args.get("namespace") == "prod"


@pytest.mark.parametrize("old, new, status, word", [
    ("permit (principal, action == Action::\"t\", resource);",
     "@approval(\"x\") permit (principal, action == Action::\"t\", resource);", "stricter", "newly needs approval"),
    ("@approval(\"x\") permit (principal, action == Action::\"t\", resource);",
     "permit (principal, action == Action::\"t\", resource);", "looser", "no longer needs approval"),
    ("forbid (principal, action == Action::\"t\", resource);",
     "@approval(\"x\") permit (principal, action == Action::\"t\", resource);", "looser",
     "newly allowed with a person's approval"),
    ("@approval(\"x\") permit (principal, action == Action::\"t\", resource);",
     "@approval(\"other text\") permit (principal, action == Action::\"t\", resource);", "equivalent", None),
])
def test_diff_ranks_approval_between_deny_and_allow(old, new, status, word):
    p_old, p_new = load_program(old, "old.mcpp"), load_program(new, "new.mcpp")
    (d,) = [x for x in diff_programs(p_old, p_new, timeout_ms=20000) if x.tool == "t"]
    assert d.status == status
    if word:  # the words `mcpp diff` prints, from the public API's diff (what the command reads)
        import mcpp
        from mcpp.commands.analysis import _direction_text

        (pd,) = [x for x in mcpp.diff(mcpp.load_policy(old, filename="old.mcpp"), mcpp.load_policy(new, filename="new.mcpp"),
                                      timeout_ms=20000) if x.tool == "t"]
        assert pd.status == status
        name = "looser" if status == "looser" else "stricter"
        assert word in _direction_text(pd, name, getattr(pd, name))


def test_visibility_lists_approval_bound_tools():
    prog = load_program(PROD + '@approval("y") permit (principal, action == Action::"drop_db", resource);', "p.mcpp")
    assert visible_tools(prog, ["delete_pod", "drop_db", "other"], grant_id="g1", server="s") == {"delete_pod", "drop_db"}


def test_compiler_refuses_approval_permits():
    with pytest.raises(MCPPError) as e:
        compile_program(load_program(PROD, "p.mcpp"))
    text = e.value.render()
    assert "p.mcpp:4:1: error: cannot compile rule 'policy1' to the JSON form: it is an @approval permit" in text
