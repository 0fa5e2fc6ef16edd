"""Lint findings are true statements: on random policies (action groups, tools named like
groups, `default allow` with hide, limits sharing counters), sampled calls never
contradict a finding:

- an unsatisfiable rule never applies, and deleting it changes no decision when its note
  says "it has no effect on any decision", counters empty or full (under `default allow`
  a permit that alone names a tool closes it, and the note says deleting it opens it);
- a dead permit never lets a call through, and deleting it changes no decision for the
  tools it is dead for (under `default allow`, deleting the only permit that names a tool
  opens the tool: such a permit is not dead);
- deleting a redundant rule changes no decision;
- a forbid bypass replays as an allowed call; an always-denying policy denies every
  sampled call; always-allows (a permission finding: the note says when limits still
  count) holds for tools the policy does not name, the limits set aside.

Only public APIs: `Engine.explain` says which policies apply, `Engine.decide` decides.
"""

from __future__ import annotations

from hypothesis import given, note
from hypothesis import strategies as st

from mcpp.lang.plan import mentioned_tools
from mcpp.analyzer.lints import lint
from mcpp.analyzer.witness import NOW, StateStore
from mcpp.lang import ir
from mcpp.lang.formatter import format_document
from mcpp.lang.program import build_program
from mcpp.runtime.engine import Engine, Grant

from .strategies import calls_for, programs


def _grant(c) -> Grant:
    return Grant(c.grant, c.label, c.groups)


def _decide(prog, c, counters=None):
    store = StateStore(counters or {})
    return Engine(prog, store=store).decide(c.tool, c.args, _grant(c), c.server, now=NOW, reserve=False)


def _full(prog) -> dict:
    """Every counter at the largest max counting it."""
    out: dict = {}
    for li in prog.limits:
        key = (li.stmt.counter, li.stmt.scope_kind, li.stmt.window)
        out[key] = max(out.get(key, 0), li.stmt.max)
    return out


def _without(prog, rule_id: str):
    """The program with the statement whose id is `rule_id` deleted."""
    stmt = next((p.stmt for p in prog.policies if p.id == rule_id), None) or next(
        li.stmt for li in prog.limits if li.id == rule_id)
    kept = tuple(s for s in prog.document.statements if s is not stmt)
    out, _ = build_program(ir.Document(kept))
    return out


def _same_decisions(prog, other, calls, why):
    for c in calls:
        for counters in ({}, _full(prog)):
            a, b = _decide(prog, c, counters), _decide(other, c, counters)
            assert a.allowed == b.allowed, (why, c, counters, a.to_dict(), b.to_dict())


@given(programs(max_policies=5), st.data())
def test_lint_findings_hold_on_sampled_calls(prog, data):
    note(format_document(prog.document))
    findings = lint(prog, timeout_ms=20000)
    calls = data.draw(st.lists(calls_for(prog), min_size=1, max_size=10))
    engine = Engine(prog)
    for d in findings:
        rule = d.data.get("rule")
        if d.code == "unsatisfiable-condition" and rule is not None and not rule.startswith("assert"):
            for c in calls:
                x = engine.explain(c.tool, c.args, _grant(c), c.server)
                assert rule not in x.satisfied, (d.message, c)
            if any("no effect on any decision" in n for n in d.notes):
                _same_decisions(prog, _without(prog, rule), calls, d.message)
            else:  # under `default allow` it names tools: deleting it opens them, and the note says so
                assert prog.default == "allow" and "deleting it would allow" in " ".join(d.notes), d.notes
        elif d.code == "dead-permit":
            tools = set(d.data.get("tools") or [d.data.get("tool")])
            mine = [c for c in calls if c.tool in tools]
            for c in mine:
                x = engine.explain(c.tool, c.args, _grant(c), c.server)
                if rule in x.satisfied:
                    assert not x.decision.allowed, (d.message, c)
            _same_decisions(prog, _without(prog, rule), mine, d.message)
        elif d.code == "redundant-rule":
            _same_decisions(prog, _without(prog, rule), calls, d.message)
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
            # a permission finding (limits may still deny, and the note says so): every
            # call to a tool the policy does not name is allowed once the limits are gone
            unlimited, _ = build_program(ir.Document(tuple(s for s in prog.document.statements if not isinstance(s, ir.Limit))))
            assert bool(prog.limits) == any("limits still count" in n for n in d.notes), d.notes
            for c in calls:
                if c.tool not in mentioned_tools(prog):
                    assert _decide(unlimited, c).allowed, c
