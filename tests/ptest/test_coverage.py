"""Coverage numbers against hand-counted expectations, and the tracing hook's promises:
traced and untraced engines decide alike, and untraced closures are the plain ones."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcpp.lang import evaluator, ir
from mcpp.lang.program import build_program, load_program
from mcpp.policytest.cases import parse_test_file
from mcpp.policytest.coverage import Coverage, condition_points
from mcpp.policytest.runner import coverage_of
from mcpp.runtime.engine import Engine, Grant
from tests.strategies import calls, documents

from .helpers import mcpp, pair

# Items, counted by hand:
#   rules       p, f                                                          2
#   limits      l: applied, exhausted                                         2
#   conditions  p's clause  a == 1 && (b == 2 || c == 3)        T F           2
#               a == 1                      (left of &&)        T F           2
#               b == 2 || c == 3            (right of &&)       T F           2
#               b == 2                      (left of ||)        T F           2
#               c == 3                      (right of ||)       T F           2
#               f's when    x == true                           T F           2
#               f's unless  (if …) && (true || z == 1)          T F           2
#               if y > 0 then false else true  (left of &&)     T F           2
#               true || z == 1   (right of &&; never reads the call: T only)  1
#               y > 0                       (the if's condition) T F          2
#               true                        (constant)          T             1
#               z == 1                      (never reached, still T F)        2
#                                                                            22
#   asserts     k                                                             1
#                                                                   total    27
POLICY = """\
default deny;
@id("p")
permit (principal, action == Action::"t", resource)
when { context.input.a == 1 && (context.input.b == 2 || context.input.c == 3) };
@id("f")
forbid (principal, action == Action::"t", resource)
when { context.input.x == true }
unless { (if context.input.y > 0 then false else true) && (true || context.input.z == 1) };
@id("l")
limit "n" (principal, action == Action::"t", resource) max 2 per hour;
@id("k")
assert deny (principal, action == Action::"u", resource);
"""

CASES = {
    # t {a:1, b:2}: p's clause T, a T, || T, b T (c never: || stops); f's when: x missing
    # → error; l applies. Items: p, l applied, 4 condition outcomes = 6.
    "allow": '[[case]]\nname = "allow"\ntool = "t"\narguments = { a = 1, b = 2 }\ndecision = "allow"\n',
    # t {a:2}: clause F, a F (right side never evaluated). +2 → 8.
    "a-false": '[[case]]\nname = "a-false"\ntool = "t"\narguments = { a = 2 }\ndecision = "deny"\n',
    # t {a:1, b:3, c:3}: b F, c T. +2 → 10.
    "c-true": '[[case]]\nname = "c-true"\ntool = "t"\narguments = { a = 1, b = 3, c = 3 }\ndecision = "allow"\n',
    # t {a:1, b:3, c:4}: clause F (seen), right F, c F. +2 → 12.
    "c-false": '[[case]]\nname = "c-false"\ntool = "t"\narguments = { a = 1, b = 3, c = 4 }\ndecision = "deny"\n',
    # t {a:1, b:2, x:true, y:1}: f's when T; unless: if-cond T → false, && stops: the
    # unless clause is F, so f applies. +f, x T, if T = 3 → 15.
    "forbid": ('[[case]]\nname = "forbid"\ntool = "t"\narguments = { a = 1, b = 2, x = true, y = 1 }\n'
               'decision = "deny"\npolicy = "f"\n'),
    # t {a:1, b:2, x:false, y:0}: x F; f stops at its failed when. +1 → 16.
    "x-false": '[[case]]\nname = "x-false"\ntool = "t"\narguments = { a = 1, b = 2, x = false }\ndecision = "allow"\n',
    # t {a:1, b:2, x:true, y:0}: if-cond F → true, && goes on to `true || …`: `true` T,
    # || stops; the unless clause is T (f does not apply). +if F, unless clause... see below
    "unless": ('[[case]]\nname = "unless"\ntool = "t"\narguments = { a = 1, b = 2, x = true, y = 0 }\n'
               'decision = "allow"\n'),
    # three calls: the third is over `max 2`. +exhausted = 1.
    "limit": ('[[case]]\nname = "limit"\ntool = "t"\narguments = { a = 1, b = 2 }\n'
              '[[case.calls]]\nrepeat = 2\ndecision = "allow"\n[[case.calls]]\ndecision = "deny"\npolicy = "l"\n'),
    # a call to u: in the assert's scope. +1.
    "assert": '[[case]]\nname = "assert"\ntool = "u"\ndecision = "deny"\n',
}

EXPECTED = [
    # cases run, then (rules, limits, conditions, asserts) covered; of 2, 2, 22, 1
    (["allow"], (1, 1, 4, 0)),  # p's clause T, a T, || T, b T; f's when errors (x missing)
    (["allow", "a-false"], (1, 1, 6, 0)),  # clause F, a F
    (["allow", "a-false", "c-true"], (1, 1, 8, 0)),  # b F, c T
    (["allow", "a-false", "c-true", "c-false"], (1, 1, 10, 0)),  # || F, c F
    # f applies: x T, y > 0 T, the if gives false (left of && F), so the unless is F
    (["allow", "a-false", "c-true", "c-false", "forbid"], (2, 1, 14, 0)),
    (["allow", "a-false", "c-true", "c-false", "forbid", "x-false"], (2, 1, 15, 0)),  # x F
    # y > 0 F, the if gives true, `true || …` T, `true` T, the unless T
    (["allow", "a-false", "c-true", "c-false", "forbid", "x-false", "unless"], (2, 1, 20, 0)),
    (list(CASES), (2, 2, 20, 1)),  # exhausted, the assert
]


def _report(tmp_path, names):
    text = "\n".join(CASES[n] for n in names)
    program = load_program(POLICY, str(tmp_path / "p.mcpp"))
    return coverage_of(program, parse_test_file(text, tmp_path / "p.test.toml"))


def test_condition_points_are_counted_as_documented():
    program = load_program(POLICY)
    points = condition_points(program)
    texts = [(ir_text(p.node), p.role, p.needs) for p in points]
    assert len(points) == 12
    assert sum(len(p.needs) for p in points) == 22
    assert ("true", "left", (True,)) in texts  # a constant needs only its value
    assert ("true || context.input.z == 1", "right", (True,)) in texts  # || stops at `true`
    assert ("context.input.z == 1", "right", (True, False)) in texts


def ir_text(node):
    from mcpp.lang import formatter

    return formatter.expr(node)


@pytest.mark.parametrize("names,covered", EXPECTED)
def test_coverage_counts_match_the_hand_count(tmp_path, names, covered):
    rep = _report(tmp_path, names)
    counts = rep.counts()
    assert tuple(counts[k][0] for k in ("rules", "limits", "conditions", "asserts")) == covered
    assert tuple(counts[k][1] for k in ("rules", "limits", "conditions", "asserts")) == (2, 2, 22, 1)
    assert counts["total"] == (sum(covered), 27)


def test_never_evaluated_operands_stay_uncovered(tmp_path):
    rep = _report(tmp_path, list(CASES))
    missing = {u["what"] for u in rep.uncovered()}
    # `true || z == 1`: the right side is never reached (|| stops at true)
    assert "`context.input.z == 1` (in 'f') never evaluated" in missing
    assert len(missing) == 1
    assert rep.percent() == pytest.approx(100 * 25 / 27)


def test_cli_coverage_table_json_and_fail_under(tmp_path):
    policy = pair(tmp_path, POLICY, "\n".join(CASES.values()))
    p = mcpp("test", policy, "--coverage")
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"coverage of {policy}: 92.6% (25/27 items)" in p.stdout
    assert "  conditions         20     22    90.9%" in p.stdout
    assert mcpp("test", policy, "--fail-under", "92.5").returncode == 0
    q = mcpp("test", policy, "--fail-under", "92.6")
    assert q.returncode == 1 and "coverage 92.59% is under --fail-under 92.6%" in q.stdout
    out = tmp_path / "cov.json"
    mcpp("test", policy, "--coverage-out", out)
    data = json.loads(out.read_text())
    assert data["summary"] == {"covered": 25, "total": 27, "percent": 92.59}
    (pol,) = data["policies"]
    assert pol["summary"]["limits"] == {"covered": 2, "total": 2, "percent": 100.0}
    # p applies to allow, c-true, forbid, x-false, unless and the three calls of limit
    assert {r["id"]: r["applied"] for r in pol["rules"]} == {"p": 8, "f": 1}


# ---- the tracing hook ---------------------------------------------------------------------


@given(documents(), st.lists(calls(), min_size=1, max_size=6))
def test_a_traced_engine_decides_exactly_as_the_plain_one(doc, cs):
    program, diags = build_program(doc)
    if any(d.severity == "error" for d in diags):
        return
    plain = Engine(program)
    traced = Coverage(program).engine()
    for c in cs:
        g = Grant(c.grant, c.label, c.groups)
        a = plain.decide(c.tool, c.args, g, c.server, now=0, reserve=False)
        b = traced.decide(c.tool, c.args, g, c.server, now=0, reserve=False)
        assert (a.allowed, a.rule.pointer, a.rule.policy, a.message) == (b.allowed, b.rule.pointer, b.rule.policy, b.message)


def test_untraced_closures_are_the_plain_ones():
    e = ir.Compare("==", ir.GetAttr(ir.GetAttr(ir.Var("context"), "input"), "a"), ir.Lit("x"))
    assert evaluator.compile_expr(e).__name__ in ("eq", "eq_arg")  # not wrapped: the hot path pays nothing

    class Rec:
        def __init__(self):
            self.sets = {}

        def outcomes(self, node):
            return self.sets.setdefault(id(node), set())

    rec = Rec()
    with evaluator.tracing(rec):
        fn = evaluator.compile_expr(e)
    assert fn.__name__ == "traced"
    env = evaluator.Env(None, None, None, {"a": 1})
    assert fn(env) is False and fn(evaluator.Env(None, None, None, {})) is evaluator.ERR
    assert rec.sets[id(e)] == {False, "error"}
    assert evaluator.compile_expr(e).__name__ in ("eq", "eq_arg")  # the switch is off again after the block
