"""Generated expressions of every shape, well typed or not, have the evaluator's value.

The hand-picked table in test_exactness.py covers what someone thought of; this draws
expressions from operators applied to anything (entities on either side of `in`,
`is T in` over entities, literal sets, argument arrays and scalars, empty and nested
set literals, records, strings outside ASCII) and holds the encoding to
`lang.evaluator` on random concrete calls: the evaluator's outcome (true, false, or
neither: an error or a non-boolean) is a model of the encoding, and when the encoding
names no approximation, no other outcome is. Building the encoding must never raise.
"""

from __future__ import annotations

import z3
from hypothesis import given
from hypothesis import strategies as st

from mcpp.analyzer.encode import ProgramEncoder
from mcpp.analyzer.solve import Session
from mcpp.analyzer.sym import NOT, OR, z
from mcpp.analyzer.witness import Witness, pin
from mcpp.lang.formatter import expr as text
from mcpp.lang.evaluator import compile_expr
from mcpp.runtime.engine import Engine

from .strategies import wild_bools, wild_calls, wild_program


def outcome(v) -> str:
    return "true" if v is True else "false" if v is False else "neither"


def check_expression(e, calls) -> None:
    prog, _ = wild_program([e])
    engine = Engine(prog)
    session = Session(20000)
    ctx = session.ctx
    for c in calls:
        req = session.request()
        enc = ProgramEncoder(req, prog, c.tool)
        sv = enc.expr(e)
        t, f = sv.truth(ctx, True), sv.truth(ctx, False)
        cases = {"true": t, "false": f, "neither": NOT(ctx, OR(ctx, t, f))}
        w = Witness(c.tool, c.args, c.grant, c.label, c.groups, c.server)
        expected = outcome(compile_expr(e)(engine.env(c.tool, c.args, w.grant, c.server)))
        s = z3.Solver(ctx=ctx)
        s.set("timeout", 20000)
        s.add(*req.constraints(), *pin(req, w))
        assert s.check(z(ctx, cases[expected])) == z3.sat, (text(e), c, expected)
        if not enc.reasons:
            for name, formula in cases.items():
                if name != expected:
                    assert s.check(z(ctx, formula)) == z3.unsat, (text(e), c, expected, name)


@given(wild_bools, st.lists(wild_calls, min_size=1, max_size=3))
def test_generated_expressions_have_the_evaluators_value(e, calls):
    check_expression(e, calls)


def _parse_expr(source: str):
    from mcpp.lang.parser import parse

    (pol,) = parse(f"permit (principal, action, resource) when {{ {source} }};").statements
    return pol.clauses[0].expr


# set literals no argument element can equal (entities only, empty, nested): the
# encodings build unions and conjunctions over their items, which may be none
NO_MATCH_SETS = [
    "context.input.x == [resource]", "[resource] == context.input.x", "context.input.x == [principal, action]",
    "context.input.x != [resource]", "[principal].containsAll(context.input.x)", "context.input.x.containsAny([resource])",
    "[resource].containsAny(context.input.x)", "context.input.x.containsAll([resource])", "context.input.x == [[resource]]",
    "context.input.x in [[], [resource]]", "context.input.x == []", "[] == context.input.x", "[].containsAll(context.input.x)",
    "context.input.x.containsAll([])", "context.input.x.containsAny([])", '{"k": [resource]} == context.input.x',
    "context.input.x == [resource, 1]", "context.input.x.contains(resource)", "[[]].containsAll(context.input.x)",
]
X_VALUES = [{}, {"x": []}, {"x": [1]}, {"x": [[]]}, {"x": {}}, {"x": {"k": []}}, {"x": "s"}, {"x": [None, "x"]}]


def test_sets_no_element_can_equal_mean_what_the_evaluator_says():
    from .strategies import WildCall

    calls = [WildCall("t0", a, "g0", "", (), "s0") for a in X_VALUES]
    for source in NO_MATCH_SETS:
        check_expression(_parse_expr(source), calls)


def test_sets_no_element_can_equal_in_every_command():
    """`unless { context.input.x == [resource] }` once made verify, lint and diff exit 3."""
    from mcpp.analyzer.diff import diff_programs
    from mcpp.analyzer.lints import lint
    from mcpp.analyzer.verify import verify
    from mcpp.lang.program import load_program

    base = load_program('permit (principal, action == Action::"t", resource);')
    for source in NO_MATCH_SETS:
        for kind in ("when", "unless"):
            prog = load_program(f'permit (principal, action == Action::"t", resource) {kind} {{ {source} }};\n'
                                'assert deny (principal, action == Action::"t", resource);')
            (r,) = verify(prog)
            assert r.status in ("pass", "fail") or r.reasons, (source, r.message)  # unknown only where approximated
            if r.status == "fail":
                assert Engine(prog).decide("t", r.witness.args, reserve=False).allowed
            lint(prog)
            diff_programs(base, prog)


def test_every_n_ary_z3_term_goes_through_the_helpers():
    """z3.And/Or/Union/Concat raise on an empty argument list; sym.py's AND/OR/re_union/
    re_concat/seq_of give the neutral element instead, so no other module calls them."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "analyzer"
    direct = re.compile(r"\bz3\.(And|Or|Union|Concat|Intersect|Distinct|Sum|Product)\(")
    offenders = [f"{p.name}:{i}" for p in root.glob("*.py") if p.name != "sym.py"
                 for i, line in enumerate(p.read_text().splitlines(), 1) if direct.search(line)]
    assert offenders == []


# every left kind × every right kind of `in` and `is T in`, on the argument values where
# the encodings have edges: one meaning per operator, whatever the operands
LEFTS = ["principal", "action", 'Group::"ops"', 'Action::"grp"', "context.input.a", '"x"', "1"]
RIGHTS = ['Group::"ops"', 'Action::"grp"', 'Action::"outer"', "action", "principal", "[]", '[Group::"ops", Group::"finance"]',
          '[Action::"outer"]', '[principal, 1]', "[[]]", '["x", 1]', "context.input.a", "context.input.b", '"x"', "1", "{}"]
ARGS = [{}, {"a": []}, {"a": [1]}, {"a": ["x"]}, {"a": "x"}, {"a": 1}, {"a": {}}, {"a": [[]]}, {"b": []}, {"a": [], "b": ["x"]}]


def test_in_and_is_in_over_every_operand_kind():
    from .strategies import WildCall

    calls = [WildCall(tool, a, "g0", "", groups, "s0") for a in ARGS for tool, groups in (("t0", ("ops",)), ("grp", ()))]
    for left in LEFTS:
        for right in RIGHTS:
            for form in (f"{left} in {right}", f"{left} is Grant in {right}", f"{left} is Action in {right}",
                         f"!({left} is Grant in {right})"):
                check_expression(_parse_expr(form), calls)


# `is T in <argument>` through every command: an argument array holds no entities, so the
# test is false on an empty array and an error otherwise; each command must see the call
# `{"arr": []}` that the engine (and Cedar) allows
IS_IN_ARG = 'permit (principal, action == Action::"t", resource) when { !(principal is Grant in context.input.arr) };\n'


def test_is_in_an_argument_through_verify_diff_lint_and_visibility():
    from mcpp.analyzer.diff import diff_programs
    from mcpp.analyzer.lints import lint
    from mcpp.analyzer.verify import verify
    from mcpp.analyzer.visibility import clear_cache, visible_tools
    from mcpp.lang.program import load_program

    prog = load_program(IS_IN_ARG + 'assert deny (principal, action == Action::"t", resource);')
    assert Engine(prog).decide("t", {"arr": []}, reserve=False).allowed
    assert not Engine(prog).decide("t", {"arr": [1]}, reserve=False).allowed  # an error: the permit does not apply
    (r,) = verify(prog)
    assert r.status == "fail" and r.witness.args == {"arr": []}

    old = load_program('permit (principal, action == Action::"t", resource) when { false };')
    new = load_program('permit (principal, action == Action::"t", resource) unless { principal is Grant in context.input.approvers };')
    (t,) = [d for d in diff_programs(old, new) if d.tool == "t"]
    assert t.status == "looser" and t.looser.witness.args == {"approvers": []}

    codes = {d.code for d in lint(new)}
    assert "always-denies" not in codes and "unsatisfiable-condition" not in codes

    clear_cache()
    assert visible_tools(new, ["t"], grant_id="g") == {"t"}
