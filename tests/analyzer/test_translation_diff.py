"""`diff` and translation validation: a policy is equivalent to its compiled JSON form
and to that form decompiled; real changes are found in the right direction, and every
difference replays through both engines."""

from __future__ import annotations

import json

import pytest
from hypothesis import assume, given

from mcpp.analyzer.diff import diff_programs
from mcpp.analyzer.translation import validate_translation
from mcpp.analyzer.witness import NOW, StateStore
from mcpp.lang import jsonform
from mcpp.lang.compiler import GrantContext, compile_program
from mcpp.lang.decompiler import decompile
from mcpp.lang.diagnostics import MCPPError
from mcpp.lang.program import load_program
from mcpp.runtime.engine import Engine

from .strategies import programs

EXAMPLES = ["refunds", "github", "http", "kubernetes", "shell", "slack"]


def _json_program(doc: dict):
    return jsonform.load_program(json.dumps(doc), "compiled.json")


@given(programs(principal=False, max_policies=4))
def test_compiled_and_decompiled_forms_are_equivalent(prog):
    try:
        doc = compile_program(prog)
    except MCPPError:
        assume(False)
    assert validate_translation(prog, doc, timeout_ms=20000) is None
    jprog = _json_program(doc)
    again = load_program(decompile(json.dumps(doc), "compiled.json"), "decompiled.mcpp")
    for other in (jprog, again):
        diffs = diff_programs(prog, other, timeout_ms=20000)
        assert [d.status for d in diffs] == ["equivalent"] * len(diffs), [d.to_dict() for d in diffs]


@pytest.mark.parametrize("name", EXAMPLES)
def test_examples_equal_their_json_and_their_compilation(name):
    src = load_program(open(f"examples/{name}.mcpp").read(), f"{name}.mcpp")
    doc = compile_program(src)
    assert validate_translation(src, doc) is None
    checked_in = jsonform.load_program(open(f"examples/{name}.json").read(), f"{name}.json")
    assert all(d.status == "equivalent" for d in diff_programs(src, checked_in))


def test_a_wrong_translation_is_caught_with_a_replayed_call():
    src = load_program('default deny; permit (principal, action == Action::"refund", resource) when { context.input.amount <= 1000 };')
    doc = compile_program(src)
    doc["tools"]["refund"]["require"][0]["conditions"][0]["value"] = 2000
    problem = validate_translation(src, doc)
    assert problem is not None and "refund" in problem and "source denies" in problem
    assert '"amount": 1' in problem  # the call is shown: an amount between 1000 and 2000


def test_unnamed_tools_are_compared():
    src = load_program('default allow; permit (principal, action == Action::"a", resource);')
    doc = {"version": "1", "default": "deny", "tools": {"a": {}}}
    problem = validate_translation(src, doc)
    assert problem is not None and "does not name" in problem


def test_translation_under_a_grant():
    src = load_program(
        'default deny; permit (principal in Group::"finance", action == Action::"pay", resource);'
    )
    fin = compile_program(src, GrantContext("alice", "", frozenset({"finance"})))
    assert validate_translation(src, fin, grant="alice", groups=["finance"]) is None
    assert validate_translation(src, fin, grant="bob") is not None  # bob is not in finance


def test_invalid_document_is_reported_not_raised():
    src = load_program("default deny;")
    assert "not a valid JSON-form policy" in validate_translation(src, {"version": "2"})


def _replays(prog_old, prog_new, direction, new_allows: bool):
    w = direction.witness
    for prog, allowed in ((prog_old, not new_allows), (prog_new, new_allows)):
        d = Engine(prog, store=StateStore(w.counters)).decide(w.tool, w.args, w.grant, w.server, now=NOW, reserve=False)
        assert d.allowed == allowed


def test_diff_directions_with_calls():
    old = load_program(
        'default deny;\n'
        'permit (principal, action == Action::"refund", resource) when { context.input.amount <= 1000 };\n'
        'permit (principal, action == Action::"list", resource);\n'
    )
    new = load_program(
        'default deny;\n'
        'permit (principal, action == Action::"refund", resource) when { context.input.amount <= 2000 };\n'
        'permit (principal, action == Action::"list", resource) when { principal in Group::"staff" };\n'
    )
    by_tool = {d.tool: d for d in diff_programs(old, new)}
    assert by_tool["refund"].status == "looser"
    assert by_tool["list"].status == "stricter"
    _replays(old, new, by_tool["refund"].looser, True)
    _replays(old, new, by_tool["list"].stricter, False)
    amount = by_tool["refund"].looser.witness.args["amount"]
    assert 1000 < amount <= 2000
    others = [d for d in by_tool.values() if d.other]
    assert len(others) == 1 and others[0].status == "equivalent"


def test_diff_both_and_limits():
    old = load_program(
        'default deny; permit (principal, action == Action::"t", resource) when { context.input.k == "a" };\n'
        'limit "n" (principal, action == Action::"t", resource) max 5 per hour;'
    )
    new = load_program(
        'default deny; permit (principal, action == Action::"t", resource) when { context.input.k == "b" };\n'
        'limit "n" (principal, action == Action::"t", resource) max 10 per hour;'
    )
    (t,) = [d for d in diff_programs(old, new) if d.tool == "t"]
    assert t.status == "both"
    _replays(old, new, t.looser, True)
    _replays(old, new, t.stricter, False)


def test_raising_a_limit_is_looser_with_the_counter_shown():
    old = load_program('permit (principal, action == Action::"t", resource); limit "n" (principal, action == Action::"t", resource) max 5 per hour;')
    new = load_program('permit (principal, action == Action::"t", resource); limit "n" (principal, action == Action::"t", resource) max 10 per hour;')
    (t,) = [d for d in diff_programs(old, new) if d.tool == "t"]
    assert t.status == "looser"
    w = t.looser.witness
    assert 5 <= w.counters[("n", "grant", "hour")] <= 9
    _replays(old, new, t.looser, True)


def test_regression_false_and_zero_are_different_conditions():
    """Found by the property test above: the compiler merged `a != false` and `a != 0`."""
    src = load_program('permit (principal, action == Action::"t0", resource)\n'
                       'unless { context.input.a < 0 || context.input.a == false || context.input.a == 0 };')
    doc = compile_program(src)
    assert validate_translation(src, doc) is None


@pytest.mark.parametrize("first,second", [(10, 3), (3, 10)])
def test_diff_compares_in_every_count_either_version_can_reach(first, second):
    """Both versions are encoded over one request: a counter's bound is the larger of
    their maxes whichever is encoded first (it was the last one's, so the counts between
    the two maxes were left out of the comparison), and the difference is reported."""
    from mcpp.analyzer.encode import decide
    from mcpp.analyzer.solve import Session

    def prog(mx):
        return load_program(f'permit (principal, action, resource);\nlimit "c" (principal, action == Action::"t", resource) max {mx} per hour scope grant;\n', "p.mcpp")

    old, new = prog(first), prog(second)
    req = Session().request()
    decide(req, old, "t")
    decide(req, new, "t")
    assert list(req.counter_max.values()) == [10]
    (d,) = [x for x in diff_programs(old, new) if x.tool == "t"]
    assert d.status != "equivalent"
