"""Expression by expression, the encoding has the evaluator's value (true, false, or
error) on concrete calls, for the constructs random policies rarely produce: entities
and ancestry, `is`, `if` over mixed types, records, sets of arguments, nested `has`."""

from __future__ import annotations

from functools import cache

import z3
from hypothesis import given
from hypothesis import strategies as st

from mcpp.analyzer.encode import ProgramEncoder
from mcpp.analyzer.solve import Session
from mcpp.analyzer.sym import NOT, OR, z
from mcpp.analyzer.witness import Witness, pin
from mcpp.lang.program import load_program
from mcpp.lang.evaluator import compile_expr
from mcpp.runtime.engine import Engine
from mcpp.lang.values import ERR

EXPRESSIONS = [
    'principal in [Group::"finance", Group::"ops"]',
    'Grant::"g0" in Group::"finance"',
    'principal.label like "a*"',
    "principal has label",
    "principal has label.x",
    'action in Action::"grp"',
    'action in [Action::"grp", Action::"t1"]',
    'resource == Server::"s0"',
    'resource in Server::"s0"',
    "resource is Server",
    'principal is Grant in Group::"ops"',
    'principal is Grant in [Group::"ops", Group::"finance"]',
    "action is Action",
    '(if context.input.a == 1 then principal else resource) is Grant',
    '(if context.input.a == 1 then context.input.b else context.input.c) == "x"',
    'if context.input.a then true else 1',
    'context.input == {"a": 1}',
    'context.input.a == {"b": "x"}',
    "context.input.a == {}",
    'context.input.a == [1, "x"]',
    "context.input.a == []",
    "[1, 2] == context.input.a",
    'context.input.a.containsAll([1, "x"])',
    '["x", 1, null].containsAll(context.input.a)',
    "[1, 2].containsAny(context.input.a)",
    "context.input.a.containsAny([])",
    "context.input.a.contains(context.input.b)",
    "context.input.a in context.input.b",
    "context.input.a in [context.input.b, 1]",
    "context.input.a.isEmpty()",
    "-context.input.a < 0",
    "context.input.a > context.input.b",
    "context has input.a.b",
    "context.input has a.b.c",
    "context.input.a.b == null",
    'context.input["x-y"] == "z"',
    '{"k": context.input.a} == {"k": 1}',
    "[context.input.a].contains(1)",
    'context.input.a.contains("x")',
    'context.input.a like "*x*"',
    'context.input.a.matches("^(x|y)+$")',
    "!(context.input.a || context.input.b)",
    "context.input.a == context.input.b",
    "context.input.a.containsAll(context.input.b)",
    'principal == Grant::"g0" && context.input.a != 1',
    'context.input.a == 1.0',
    'context.input.a in [true, 1, "1"]',
    'principal in Grant::"g1"',
    'action == Action::"t0" || action == Action::"t1"',
]

SOURCE = 'group Action::"grp" = [Action::"t0"];\n' + "".join(
    f'permit (principal, action, resource) when {{ {e} }};\n' for e in EXPRESSIONS
)

scalars = st.one_of(st.sampled_from([1, 1.0, 2, -1, 0.5, "x", "y", "xy", "1", "", True, False, None]))
values = st.recursive(scalars, lambda sub: st.one_of(st.lists(sub, max_size=3), st.dictionaries(st.sampled_from(["b", "c", "k"]), sub, max_size=2)), max_leaves=5)
args = st.dictionaries(st.sampled_from(["a", "b", "c", "x-y", "k"]), values, max_size=4)


def category(v) -> str:
    return "true" if v is True else "false" if v is False else "other"


@given(args, st.sampled_from(["g0", "g1"]), st.sampled_from(["", "alice", "bob"]),
       st.frozensets(st.sampled_from(["finance", "ops"])), st.sampled_from(["s0", "s1"]), st.sampled_from(["t0", "t1", "t9"]))
def test_expression_values_match_the_evaluator(a, grant, label, groups, server, tool):
    prog = _program()
    engine = Engine(prog)
    w = Witness(tool, a, grant, label, tuple(sorted(groups)), server)
    env = engine.env(tool, a, w.grant, server)
    session = Session(20000)
    ctx = session.ctx
    req = session.request()
    svs = []
    for p in prog.policies:
        enc = ProgramEncoder(req, prog, tool)  # one per expression: its own approximation reasons
        svs.append((p, enc.expr(p.stmt.clauses[0].expr), enc.reasons))
    exact = 0
    # one solver pinned to this call for every expression (each category is assumed in its
    # check, never asserted): the same answers as a fresh solver per expression, which spent
    # more time asserting the pin than checking
    s = z3.Solver(ctx=ctx)
    s.set("timeout", 20000)
    s.add(*req.constraints(), *pin(req, w))
    for p, sv, reasons in svs:
        expected = category(compile_expr(p.stmt.clauses[0].expr)(env))
        t, f = sv.truth(ctx, True), sv.truth(ctx, False)
        cats = {"true": t, "false": f, "other": NOT(ctx, OR(ctx, t, f))}
        expr_text = EXPRESSIONS[p.index]
        assert s.check(z(ctx, cats[expected])) == z3.sat, (expr_text, a, expected)  # the real value is possible
        if not reasons:  # exact: no other value is
            exact += 1
            for name, formula in cats.items():
                if name != expected:
                    assert s.check(z(ctx, formula)) == z3.unsat, (expr_text, a, expected, name)
    assert exact >= len(EXPRESSIONS) - 3


@cache
def _program():
    """SOURCE, loaded once (it never changes between examples)."""
    return load_program(SOURCE)


def test_approximations_are_named():
    prog = load_program(SOURCE)
    session = Session()
    enc = ProgramEncoder(session.request(), prog, "t0")
    for p in prog.policies:
        enc.expr(p.stmt.clauses[0].expr)
    assert any("two array arguments" in r for r in enc.reasons)
    assert ERR is not None
