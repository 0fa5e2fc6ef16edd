"""The analyzer's fast paths give the answers of the slow ones.

Three shortcuts make lint and diff fast on large policies (docs/performance.md): one
incremental solver per request (each query under its own assumption literal, retired
once answered), `Session.which_sat` settling "can this rule apply?" for all rules of a
tool with a few shared checks (groups as conjunctions, then models of disjunctions), and
`diff` answering "equivalent" without encoding a tool whose plan and context are
unchanged. Each is checked here against the path it replaces, on generated
programs.
"""

from __future__ import annotations

import pytest
import z3
from hypothesis import given
from hypothesis import strategies as st

from mcpp.analyzer import diff as diff_mod
from mcpp.analyzer.diff import diff_programs
from mcpp.analyzer.encode import decide, query_tools
from mcpp.analyzer.solve import Session
from mcpp.lang import ir
from mcpp.lang.program import build_program, load_program

from .strategies import programs, rich_programs

TIMEOUT = 20000


def _fresh_status(session: Session, req, formula) -> str:
    """The slow path: a new solver holding the request's constraints and the formula."""
    if formula is False:
        return "unsat"
    s = z3.Solver(ctx=session.ctx)
    s.set("timeout", TIMEOUT)
    s.add(*req.constraints())
    if formula is not True:
        s.add(formula)
    return str(s.check())


@given(rich_programs(max_policies=5))
def test_incremental_checks_and_batched_applies_answer_as_fresh_solvers(prog):
    session = Session(TIMEOUT)
    named, other = query_tools(prog)
    for t in named + [other]:
        req = session.request()
        d = decide(req, prog, t)
        stmts = [i.stmt for i in (*prog.policies, *prog.limits) if i.tools is None or t in i.tools]
        formulas = [d.enc.applies(s) for s in stmts] + [d.allowed(zero=True), d.runs(zero=False)]
        fresh = [_fresh_status(session, req, f) for f in formulas]
        assert "unknown" not in fresh
        # the same request's incremental solver, queries interleaved with earlier ones
        assert [session.check(req, f).status for f in formulas] == fresh
        batched = session.which_sat(req, formulas)
        assert all(b is None or b == f for b, f in zip(batched, fresh)), (batched, fresh)
        # with groups asked as conjunctions first (any grouping: the lints' is a heuristic)
        n = len(formulas)
        for together in ([list(range(0, n, 2)), list(range(1, n, 2))], [list(range(n))], [[i] for i in range(n)]):
            grouped = session.which_sat(req, formulas, together)
            assert all(b is None or b == f for b, f in zip(grouped, fresh)), (together, grouped, fresh)


def _force_full(monkeypatch):
    counter = iter(range(10**9))
    monkeypatch.setattr(diff_mod, "_plan_key", lambda _program, _tool: next(counter))


def _pairs():
    """(old, new): a program, and the same program with one rule dropped, a statement
    added, or nothing changed."""

    @st.composite
    def pair(draw):
        old = draw(programs(max_policies=4))
        extra = draw(programs(max_policies=2))
        stmts = list(old.document.statements)
        how = draw(st.sampled_from(["same", "drop", "add"]))
        if how == "drop" and stmts:
            stmts.pop(draw(st.integers(0, len(stmts) - 1)))
        elif how == "add":
            stmts += [s for s in extra.document.statements if not isinstance(s, ir.Default)]
        new, diags = build_program(ir.Document(tuple(stmts)))
        if any(d.severity == "error" for d in diags):
            return old, old
        return old, new

    return pair()


@given(_pairs())
def test_diff_shortcut_answers_as_the_full_encoding(pair):
    old, new = pair
    fast = {d.tool: d for d in diff_programs(old, new, timeout_ms=TIMEOUT)}
    mp = pytest.MonkeyPatch()
    try:
        _force_full(mp)
        full = {d.tool: d for d in diff_programs(old, new, timeout_ms=TIMEOUT)}
    finally:
        mp.undo()
    assert fast.keys() == full.keys()
    for tool, f in fast.items():
        g = full[tool]
        if f.status == g.status:
            continue
        # only where the full encoding could not decide (an approximation) may the
        # shortcut say more, and then it says "equivalent"
        assert f.status == "equivalent" and g.status == "unknown" and g.reasons, (tool, f.to_dict(), g.to_dict())


BASE = ('group Action::"ops" = [Action::"a"];\n'
        'permit (principal, action == Action::"a", resource) when { context.input.n > 1 };\n'
        'permit (principal, action == Action::"b", resource);\n')


def test_a_change_outside_the_tools_rules_still_changes_its_diff():
    old = load_program(BASE)
    cases = [
        # the group now holds b: `action in Action::"ops"` reads it
        (BASE.replace('[Action::"a"]', '[Action::"a", Action::"b"]')
         + 'forbid (principal, action in Action::"ops", resource) when { context.input.n > 5 };\n', "b", "stricter"),
        # a rule on another tool that names User: every caller may now be a user
        (BASE + 'forbid (principal is User, action == Action::"c", resource);\n', "b", None),
        # hide
        (BASE + 'hide Action::"b";\n', "b", "stricter"),
    ]
    for text, tool, want in cases:
        new = load_program(text)
        (d,) = [x for x in diff_programs(old, new, timeout_ms=TIMEOUT) if x.tool == tool]
        if want is not None:
            assert d.status == want, (text, d.to_dict())
        assert diff_mod._context(old) != diff_mod._context(new) or diff_mod._plan_key(old, tool) != diff_mod._plan_key(new, tool)


def test_an_unchanged_tool_is_not_encoded_but_a_changed_one_is(monkeypatch):
    old = load_program(BASE)
    new = load_program(BASE.replace("> 1", "> 2"))
    encoded = []
    real = diff_mod._diff_tool
    monkeypatch.setattr(diff_mod, "_diff_tool", lambda s, o, n, t, other: encoded.append(t) or real(s, o, n, t, other))
    out = {d.tool: d.status for d in diff_programs(old, new, timeout_ms=TIMEOUT)}
    assert encoded == ["a"] and out["a"] == "stricter" and out["b"] == "equivalent"
    # spans do not count: the same rules moved down a line are the same rules
    moved = load_program("\n" + BASE)
    encoded.clear()
    assert all(d.status == "equivalent" for d in diff_programs(old, moved, timeout_ms=TIMEOUT)) and encoded == []
