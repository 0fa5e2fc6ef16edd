"""Lint findings are true statements: on random policies, sampled calls never contradict
a finding (a dead permit never lets a call through, an unsatisfiable rule never applies,
removing a redundant rule changes no decision, an always-denying policy denies)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mcpp.lang.plan import mentioned_tools
from mcpp.analyzer.lints import lint
from mcpp.lang import ir
from mcpp.lang.program import build_program
from mcpp.runtime.engine import Engine, Grant

from .strategies import calls_for, programs


def _decide(prog, c, tool=None):
    return Engine(prog).decide(tool or c.tool, c.args, Grant(c.grant, c.label, c.groups), c.server, reserve=False)


@given(programs(max_policies=5), st.data())
@settings(max_examples=80)
def test_lint_findings_hold_on_sampled_calls(prog, data):
    findings = lint(prog, timeout_ms=20000)
    calls = data.draw(st.lists(calls_for(prog), min_size=1, max_size=10))
    engine = Engine(prog)
    rules = {r.id: r for tr in [engine.other, *engine.index.values()] for r in tr.permits + tr.forbids + tr.limits}
    for d in findings:
        rule = d.data.get("rule")
        if d.code == "unsatisfiable-condition" and rule in rules:
            for c in calls:
                env = engine.env(c.tool, c.args, Grant(c.grant, c.label, c.groups), c.server)
                info = rules[rule].info
                if info.tools is None or c.tool in info.tools:
                    assert not rules[rule].applies(env), (d.message, c)
        elif d.code == "dead-permit":
            tools = set(d.data.get("tools") or [d.data.get("tool")])
            for c in calls:
                if c.tool not in tools:
                    continue
                env = engine.env(c.tool, c.args, Grant(c.grant, c.label, c.groups), c.server)
                if rules[rule].applies(env):
                    assert not _decide(prog, c).allowed, (d.message, c)
        elif d.code == "redundant-rule":
            stmts = [s for s in prog.document.statements
                     if not (isinstance(s, ir.Policy) and any(p.id == rule and p.stmt is s for p in prog.policies))]
            without, _ = build_program(ir.Document(tuple(stmts)))
            for c in calls:
                assert _decide(prog, c).allowed == _decide(without, c).allowed, (d.message, c)
        elif d.code == "forbid-bypass":
            w = d.data["counterexample"]
            params, g = w["request"]["params"], w["grant"]
            decision = engine.decide(params["name"], params["arguments"], Grant(g["id"], g["label"], frozenset(g["groups"])),
                                     w["server"], reserve=False)
            assert decision.allowed, d.message
        elif d.code == "always-denies":
            for c in calls:
                assert not _decide(prog, c).allowed, c
        elif d.code == "always-allows" and d.data.get("tool"):
            for c in calls:
                if c.tool not in mentioned_tools(prog):
                    assert _decide(prog, c).allowed, c
