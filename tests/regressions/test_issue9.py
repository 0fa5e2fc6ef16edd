"""Issue 9's wrong answers, one minimal case per class, as explicit tables (the property
tests in tests/runtime/test_cedar_oracle.py and tests/analyzer/ generate each class; these
pin the smallest instance of each so a fix is seen to hold and a regression is named).

Each case states the right answer: Cedar's (cedarpy, asked here too) for the shared
subset; the engine's for the analyzer (what the analyzer proves is what the gateway
runs); the source's for the compiler; a clear error for bad JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys

import cedarpy
import pytest

from mcpp.analyzer.diff import diff_programs
from mcpp.analyzer.lints import lint
from mcpp.analyzer.verify import verify
from mcpp.analyzer.visibility import clear_cache, visible_tools
from mcpp.lang import jsonform
from mcpp.lang.compiler import compile_program
from mcpp.lang.diagnostics import MCPPError
from mcpp.lang.parser import parse
from mcpp.lang.program import load_program
from mcpp.runtime.engine import Engine, Grant
from tests.runtime.test_cedar_oracle import cedar_entities, request
from tests.strategies import I64_MIN, Call

# ---- the engine against Cedar ------------------------------------------------------------------

GROUPS = 'group Action::"ops" = [Action::"admin", Action::"deploy"];\ngroup Action::"admin" = [Action::"t0"];\n'

# (name, policy text, tool, arguments, principal, Cedar's decision, Cedar's erroring policies)
CEDAR = [
    ("scope `in` a group is reflexive: the tool named like the group",
     GROUPS + 'permit (principal, action in Action::"ops", resource);', "ops", {}, "g0", "allow", []),
    ("scope `in [..]` with a group is reflexive",
     GROUPS + 'permit (principal, action in [Action::"ops"], resource);', "ops", {}, "g0", "allow", []),
    ("a nested group's name, called as a tool, is in the outer group (scope)",
     GROUPS + 'permit (principal, action in Action::"ops", resource);', "admin", {}, "g0", "allow", []),
    ("a nested group's name, called as a tool, is in the outer group (condition)",
     GROUPS + 'permit (principal, action, resource) when { action in Action::"ops" };', "admin", {}, "g0", "allow", []),
    ("a group literal is in the group that holds it",
     GROUPS + 'permit (principal, action, resource) when { Action::"admin" in Action::"ops" };', "t1", {}, "g0", "allow", []),
    ('`\\u{2a}` in a like pattern is a wildcard',
     'permit (principal, action, resource) when { context.input.s like "a\\u{2a}b" };', "t0", {"s": "axxb"}, "g0", "allow", []),
    ("an entity literal of the principal has the principal's attributes",
     'permit (principal, action, resource) when { Grant::"g0" has label };', "t0", {}, "g0", "allow", []),
]


@pytest.mark.parametrize("name,text,tool,args,grant,decision,errored", CEDAR, ids=[c[0] for c in CEDAR])
def test_engine_answers_as_cedar(name, text, tool, args, grant, decision, errored):  # noqa: ARG001 (`name` names the case)
    call = Call(tool, args, grant, "", frozenset(), "s0")
    doc = parse(text)
    policies = "".join(line + "\n" for line in text.splitlines() if not line.startswith("group "))  # as written
    cedar = cedarpy.is_authorized(request(call), policies, cedar_entities(doc, call))
    assert ("allow" if cedar.decision == cedarpy.Decision.Allow else "deny") == decision, cedar.diagnostics.errors  # the table is Cedar's
    x = Engine(load_program(text)).explain(tool, args, Grant(grant), "s0")
    assert (x.decision.decision, sorted(x.errored)) == (decision, errored), x.decision.message


def test_negating_i64s_minimum_is_the_documented_divergence():
    """docs/language.md §10: mcpp negates exactly (`-x` at -2^63 is 2^63), Cedar reports an
    overflow and skips the policy. Both sides pinned, so a change on either is seen (the
    Cedar oracle leaves `-<argument>` out of the shared subset for this reason)."""
    text = 'permit (principal, action, resource);\nforbid (principal, action, resource) when { -context.input.n > 0 };'
    call = Call("t0", {"n": I64_MIN}, "g0", "", frozenset(), "s0")
    cedar = cedarpy.is_authorized(request(call), text, cedar_entities(parse(text), call))
    assert cedar.decision == cedarpy.Decision.Allow and any("overflow" in e for e in cedar.diagnostics.errors)
    x = Engine(load_program(text)).explain("t0", {"n": I64_MIN}, Grant("g0"), "s0")
    assert (x.decision.decision, sorted(x.determining), sorted(x.errored)) == ("deny", ["policy1"], [])


# ---- the analyzer against the engine -----------------------------------------------------------

LIMITED = ('permit (principal, action == Action::"t", resource);\n'
           'limit "c" (principal, action == Action::"t", resource) max 1 per hour;\n'
           'limit "c" (principal, action == Action::"t", resource) max 1 per hour;\n')
IS_IN_ARG = 'permit (principal, action == Action::"t", resource) when { !(principal is Grant in context.input.arr) };\n'

# (name, policy with asserts, {assert id: the status the engine's behaviour requires})
VERIFY = [
    # each call adds 1 to "c" twice (2 > 1): the engine denies every call, even at zero
    ("two limits on one counter: summed against the smaller max",
     LIMITED + '@id("d") assert deny (principal, action == Action::"t", resource);\n'
               '@id("a") assert allow (principal, action == Action::"t", resource);', {"d": "pass", "a": "fail"}),
    # {"arr": []}: `principal in []` is false, the negation true: allowed
    ("`is T in <argument>` has a value: a real counterexample",
     IS_IN_ARG + '@id("d") assert deny (principal, action == Action::"t", resource);', {"d": "fail"}),
    ("a tool named like a group is in it",
     'group Action::"admin" = [Action::"drop"];\npermit (principal, action in Action::"admin", resource);\n'
     '@id("d") assert deny (principal, action == Action::"admin", resource);', {"d": "fail"}),
]


@pytest.mark.parametrize("name,text,expected", VERIFY, ids=[c[0] for c in VERIFY])
def test_verify_answers_as_the_engine_runs(name, text, expected):  # noqa: ARG001 (`name` names the case)
    results = {r.id: r for r in verify(load_program(text), timeout_ms=20000)}
    assert {i: results[i].status for i in expected} == expected, {i: results[i].message for i in expected}


def test_diff_sees_is_in_argument():
    old = load_program('permit (principal, action == Action::"t", resource) when { false };')
    new = load_program('permit (principal, action == Action::"t", resource) unless { principal is Grant in context.input.approvers };')
    assert Engine(new).decide("t", {"approvers": []}, reserve=False).allowed
    (t,) = [d for d in diff_programs(old, new, timeout_ms=20000) if d.tool == "t"]
    assert t.status == "looser"


def test_visibility_sees_is_in_argument():
    clear_cache()
    prog = load_program('permit (principal, action == Action::"t", resource) unless { principal is Grant in context.input.approvers };')
    assert Engine(prog).decide("t", {"approvers": []}, Grant("g"), reserve=False).allowed
    assert visible_tools(prog, ["t"], grant_id="g", timeout_ms=20000) == {"t"}


# (name, policy, a call the engine allows or whose decision changes when the rule goes, lint codes that would contradict it)
LINTS = [
    ("a tool named like a group is allowed: not always-denies, not unsatisfiable",
     'group Action::"grp" = [Action::"a"];\npermit (principal, action, resource) when { action == Action::"grp" };',
     {"always-denies", "unsatisfiable-condition"}),
    ("default allow: deleting the permit opens t (x = 2 is denied now), so it is not dead",
     'default allow;\npermit (principal, action == Action::"t", resource) when { context.input.x == 1 };\n'
     'forbid (principal, action == Action::"t", resource) when { context.input.x == 1 };', {"dead-permit"}),
]


@pytest.mark.parametrize("name,text,wrong", LINTS, ids=[c[0] for c in LINTS])
def test_lints_say_nothing_the_engine_contradicts(name, text, wrong):  # noqa: ARG001 (`name` names the case)
    found = {d.code for d in lint(load_program(text), timeout_ms=20000)}
    assert not found & wrong, found


def test_an_unsatisfiable_permit_under_default_allow_has_an_effect():
    """`permit … when { false }` names t: t is denied; deleting the permit allows it. The
    finding may say the permit never applies, not that it has no effect."""
    prog = load_program('default allow;\npermit (principal, action == Action::"t", resource) when { false };')
    assert not Engine(prog).decide("t", {}, reserve=False).allowed
    assert Engine(load_program("default allow;")).decide("t", {}, reserve=False).allowed
    for d in lint(prog, timeout_ms=20000):
        assert not any("no effect on any decision" in n for n in d.notes), d


def test_analysis_of_an_argument_equal_to_a_set_of_entities_does_not_crash():
    prog = load_program('permit (principal, action, resource) unless { context.input.x == [resource] };\n'
                        '@id("d") assert deny (principal, action == Action::"t", resource);')
    lint(prog, timeout_ms=20000)
    (r,) = verify(prog, timeout_ms=20000)  # any array argument is unequal to [resource]: allowed
    assert r.status == "fail", r.message
    w = r.witness
    assert Engine(prog).decide(w.tool, w.args, Grant(w.grant_id), w.server, reserve=False).allowed, w
    # `x` missing: the `unless` errors, the permit is skipped; permitting everything is looser only
    (t,) = [d for d in diff_programs(prog, load_program("permit (principal, action, resource);"), timeout_ms=20000)
            if d.tool == "t"]
    assert (t.looser.status, t.stricter.status) == ("yes", "no")


def test_the_solver_timeout_bounds_a_regex_query(tmp_path):
    """`--timeout 1000` must bound every solver call; the subprocess limit is only a guard
    against a hang (generous on a loaded machine), not a measure of speed."""
    f = tmp_path / "p.mcpp"
    f.write_text('permit (principal, action == Action::"t", resource) when { context.input.s.matches("[\\\\p{Lu}a]$") };\n'
                 '@id("d") assert deny (principal, action == Action::"t", resource) when { context.input.s == " ß😀bB" };\n',
                 encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "mcpp", "verify", str(f), "--timeout", "1000"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode in (0, 1) and "Traceback" not in r.stderr, r.stderr  # an answer (UNKNOWN allowed), not a crash


# ---- the JSON form and the compiler ------------------------------------------------------------


@pytest.mark.parametrize("doc", [
    '{"version": "1", "tools": {"t": {"require": [{"conditions": [{"path": "args.n", "op": "lt", "value": 1e400}]}]}}}',
    '{"version": "1", "tools": {"t": {"limits": [{"counter": "c", "max": 1e400, "window": "hour"}]}}}',
], ids=["condition value 1e400", "limit max 1e400"])
def test_json_numbers_out_of_range_are_refused(doc):
    with pytest.raises(MCPPError) as e:
        jsonform.load_program(doc, "p.json")
    assert "p.json" in e.value.render()


def test_compiled_has_under_unless_decides_like_the_source():
    src = load_program('permit (principal, action == Action::"t", resource);\n'
                       'forbid (principal, action == Action::"t", resource) unless { context.input.a has b };')
    assert Engine(src).decide("t", {}, reserve=False).allowed  # `a` missing: the forbid errors, is skipped
    try:
        doc = compile_program(src)
    except MCPPError:
        return  # refusing is right too
    compiled = Engine(jsonform.load_program(json.dumps(doc), "c.json"))
    assert compiled.decide("t", {}, reserve=False).allowed, json.dumps(doc)
