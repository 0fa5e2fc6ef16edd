"""Lint findings are true statements, checked by doing what each claims is harmless.

Each finding is a claim about what the flagged rule does; the test alters or deletes the
rule and asks `diff` (a proof over every call and counter state, with replayed
witnesses) and the engine (on sampled calls) whether the claim holds:

- unsatisfiable-condition: the rule never applies, so replacing its conditions with
  `when { false }` changes no decision; where the note says "no effect on any decision",
  deleting it changes none either;
- dead-permit: deleting the permit changes no decision for the tools the finding
  names; under `default allow`, for the tools it says the permit takes out of the
  default, making its conditions false changes none;
- redundant-rule: deleting the rule changes no decision;
- forbid-bypass: the call shown is allowed and the forbid's clause errors on it;
- always-denies: the policy decides like one that denies everything;
- always-allows: every sampled call (to an unnamed tool, for the `default allow`
  variant) is allowed at fresh counters.

Programs come from two generators: the plain one, and rich programs (every default,
`hide`, groups whose names are tool names, nested groups, clauses of any shape).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mcpp.analyzer.diff import diff_programs
from mcpp.analyzer.encode import query_tools
from mcpp.analyzer.lints import lint
from mcpp.analyzer.witness import Witness, matches_scope
from mcpp.lang import ir
from mcpp.lang.program import Program, build_program
from mcpp.lang.evaluator import compile_expr
from mcpp.runtime.engine import Engine, Grant

from .strategies import calls_for, programs, rich_calls_for, rich_programs

TIMEOUT = 20000


def _decide(prog, c, tool=None):
    return Engine(prog).decide(tool or c.tool, c.args, Grant(c.grant, c.label, c.groups), c.server, reserve=False)


def _stmt_of(prog: Program, rule: str):
    for info in prog.policies:
        if info.id == rule:
            return info.stmt
    for info in prog.limits:
        if info.id == rule:
            return info.stmt
    for info in prog.asserts:
        if info.id == rule:
            return info.stmt
    raise KeyError(rule)


def _rebuild(prog: Program, rule: str, replace) -> Program:
    """`prog` with the statement of `rule` replaced by `replace(stmt)` (None deletes it)."""
    target = _stmt_of(prog, rule)
    out = []
    for s in prog.document.statements:
        if s is target:
            s = replace(s)
            if s is None:
                continue
        out.append(s)
    new, diags = build_program(ir.Document(tuple(out)))
    assert not [d for d in diags if d.severity == "error"], diags
    return new


def _never(s):
    import dataclasses

    return dataclasses.replace(s, clauses=(ir.Clause("when", ir.Lit(False)),))


def _drop(_s):
    return None


def _diff_holds(old: Program, new: Program, tools=None) -> None:
    """`diff` finds no call, for `tools` (default: every tool), on which the two differ."""
    named, other = query_tools(old, new)
    for d in diff_programs(old, new, timeout_ms=TIMEOUT):
        if tools is not None and d.tool not in tools and not (d.other and any(t not in named for t in tools)):
            continue
        for direction in (d.looser, d.stricter):
            assert direction.status != "yes", d.to_dict()
            assert direction.status == "no" or d.reasons, d.to_dict()  # undecided only where the encoding approximates


def _calls_agree(old: Program, new: Program, calls, tools=None) -> None:
    named, other = query_tools(old)
    for c in calls:
        if tools is not None and (c.tool if c.tool in named else other) not in tools:
            continue
        assert _decide(old, c).allowed == _decide(new, c).allowed, c


def check_findings(prog: Program, calls) -> None:
    findings = lint(prog, timeout_ms=TIMEOUT)
    engine = Engine(prog)
    named, other = query_tools(prog)
    for d in findings:
        rule = d.data.get("rule")
        if d.code == "unsatisfiable-condition":
            stmt = _stmt_of(prog, rule)
            for c in calls:
                w_tool = c.tool if c.tool in named else other
                w = Witness(w_tool, c.args, c.grant, c.label, tuple(sorted(c.groups)), c.server)
                info_tools = next((i.tools for i in prog.policies + prog.limits + prog.asserts if i.id == rule), None)
                if info_tools is None or w_tool in info_tools:
                    assert not matches_scope(prog, stmt, w, engine), (d.message, c)
            if not isinstance(stmt, ir.Assert):
                altered = _rebuild(prog, rule, _never)
                _diff_holds(prog, altered)
                _calls_agree(prog, altered, calls)
            if any("no effect on any decision" in n for n in d.notes):
                without = _rebuild(prog, rule, _drop)
                _diff_holds(prog, without)
                _calls_agree(prog, without, calls)
        elif d.code == "dead-permit":
            tools = set(d.data.get("tools") or [d.data.get("tool")])
            closes = set(d.data.get("closes_default") or ())
            assert closes <= tools and (not closes or prog.default == "allow"), d.message
            on = [c for c in calls if (c.tool if c.tool in named else other) in tools]
            if tools - closes:  # "never takes effect": deleting it changes nothing there
                without = _rebuild(prog, rule, _drop)
                _diff_holds(prog, without, tools - closes)
                _calls_agree(prog, without, on, tools - closes)
            if closes:  # "its only effect is to take t out of default allow": never applying changes nothing
                never = _rebuild(prog, rule, _never)
                _diff_holds(prog, never, closes)
                _calls_agree(prog, never, on, closes)
        elif d.code == "redundant-rule":
            without = _rebuild(prog, rule, _drop)
            _diff_holds(prog, without)
            _calls_agree(prog, without, calls)
        elif d.code == "forbid-bypass":
            w = d.data["counterexample"]
            params, g = w["request"]["params"], w["grant"]
            grant = Grant(g["id"], g["label"], frozenset(g["groups"]))
            assert engine.decide(params["name"], params["arguments"], grant, w["server"], reserve=False).allowed, d.message
            env = engine.env(params["name"], params["arguments"], grant, w["server"])
            forbid = _stmt_of(prog, rule)
            assert any(type(compile_expr(c.expr)(env)) is not bool for c in forbid.clauses), d.message
        elif d.code == "always-denies":
            deny_all, _ = build_program(ir.Document((ir.Policy("forbid", ir.Scope()),)))
            _diff_holds(prog, deny_all)
            for c in calls:
                assert not _decide(prog, c).allowed, c
        elif d.code == "always-allows":
            for c in calls:
                if d.data.get("tool") is None or c.tool not in named:
                    assert _decide(prog, c).allowed, (d.message, c)


@given(programs(max_policies=5), st.data())
def test_lint_claims_hold_on_plain_programs(prog, data):
    check_findings(prog, data.draw(st.lists(calls_for(prog), min_size=1, max_size=10)))


@given(st.data())
def test_lint_claims_hold_on_rich_programs(data):
    prog = data.draw(rich_programs(max_policies=5))
    check_findings(prog, data.draw(st.lists(rich_calls_for(prog), min_size=1, max_size=10)))
