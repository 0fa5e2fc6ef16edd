"""The run's deadline (`--deadline`, `deadline=`; analyzer/deadline.py), without the wall clock.

A deadline runs on an injected clock: `Ticks` advances one second each time it is read,
so a budget of k seconds runs out after k reads, at a different point of the run for
each k. What must hold whatever the point:

- nothing is PASS (or `no`, or a finding) that was not proved: every PASS/FAIL of a
  bounded `verify` equals the unbounded run's answer, every `diff` direction decided
  equals it too, every lint finding is one the unbounded lint makes, and what differs
  is UNKNOWN (`undecided`) only because the deadline ran out;
- once it has run out no solver query starts (`Session.queries` stays put), and every
  question left names it ("the run's deadline of N s ran out");
- the regex translation (RE2 scans, anchor unrolling, Z3 terms) stops at it too.
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcpp.analyzer import regex as rx
from mcpp.analyzer.deadline import Deadline, deadline_of
from mcpp.analyzer.diff import diff_programs
from mcpp.analyzer.lints import Linter
from mcpp.analyzer.safety import blocking_findings
from mcpp.analyzer.solve import Session
from mcpp.analyzer.verify import verify
from mcpp.lang.program import load_program

from .strategies import _conditions, tool_policy_texts

TIMEOUT = 20000  # per query: generous, so the unbounded run decides everything it can


class Ticks:
    """A clock that advances one second each time it is read."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


class Frozen:
    """A clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def ticking(k: int) -> Deadline:
    return Deadline(k, clock=Ticks())


REASON = "the run's deadline of {} s ran out"

# a policy that proves at once without a deadline: no regex, one tool
EASY = """
default deny;
@id("reads") permit (principal, action == Action::"read", resource) when { context.input.path like "/pub/*" };
@id("no-write") assert deny (principal, action == Action::"write", resource);
@id("reads-ok") assert allow (principal, action == Action::"read", resource) when { context.input.path == "/pub/a" && context.input.size == 1 };
@id("reads-any") assert deny (principal, action == Action::"read", resource);
@id("bypass") forbid (principal, action == Action::"read", resource) when { context.input.size > 10 };
"""


# ---- the Deadline itself --------------------------------------------------------------------

def test_a_deadline_counts_on_its_clock():
    clock = Frozen()
    d = Deadline(2.5, clock=clock)
    rows = [  # (clock, left_ms, expired, cap(5000), cap(100))
        (0.0, 2500, False, 2500, 100),
        (2.0, 500, False, 500, 100),
        (2.4996, 1, False, 1, 1),
        (2.5, 0, True, 1, 1),  # a Z3 timeout of 0 would mean "none": never below 1
        (9.0, 0, True, 1, 1),
    ]
    for now, left, expired, cap_big, cap_small in rows:
        clock.now = now
        assert (d.left_ms(), d.expired(), d.cap(5000), d.cap(100)) == (left, expired, cap_big, cap_small), now
    assert d.reason == REASON.format("2.5")
    assert Deadline(30).reason == REASON.format("30")


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), -0.001])
def test_a_deadline_is_finite_and_not_negative(bad):
    with pytest.raises(ValueError):
        Deadline(bad)


@pytest.mark.parametrize("value, expected", [(None, None), (0, 0.0), (1.5, 1.5), (3, 3.0)])
def test_deadline_arguments(value, expected):
    d = deadline_of(value)
    assert (d.seconds if d is not None else None) == expected
    same = Deadline(4)
    assert deadline_of(same) is same


@pytest.mark.parametrize("bad", [True, "10", [1]])
def test_deadline_arguments_are_numbers(bad):
    with pytest.raises(TypeError):
        deadline_of(bad)


def test_a_session_caps_each_query_by_what_is_left():
    clock = Frozen()
    s = Session(5000, deadline=Deadline(3, clock=clock))
    assert s.query_ms() == 3000 and s.expired() is None
    clock.now = 2.75
    assert s.query_ms() == 250 and s.prefer_budget() == 250
    assert s.query_ms(100) == 100
    clock.now = 3
    assert s.expired() == REASON.format("3")
    assert Session(5000).query_ms() == 5000 and Session(5000).expired() is None


# ---- a budget of 0: nothing is proved, nothing is asked --------------------------------------

def test_verify_with_no_time_left_proves_nothing():
    prog = load_program(EASY)
    unbounded = verify(prog, timeout_ms=TIMEOUT)
    assert {r.id: r.status for r in unbounded} == {"no-write": "pass", "reads-ok": "pass", "reads-any": "fail"}
    session = Session(TIMEOUT, deadline=Deadline(0))
    results = verify(prog, session=session)
    assert [(r.id, r.status, r.message) for r in results] == [
        (a.id, "unknown", REASON.format("0")) for a in prog.asserts]
    assert session.queries == 0


def test_a_deadline_that_runs_out_mid_assertion_leaves_the_rest_unknown():
    # `private` is about every tool (read, and the stand-in for the others) and holds for each
    prog = load_program(EASY.replace('@id("no-write") assert deny (principal, action == Action::"write", resource);',
                                     '@id("private") assert deny (principal, action, resource) when { context.input.path == "/priv" };'))
    assert [r.status for r in verify(prog, timeout_ms=TIMEOUT)] == ["pass", "pass", "fail"]
    clock = Frozen()
    deadline = Deadline(10, clock=clock)
    session = Session(TIMEOUT, deadline=deadline)
    real_check = session.check

    def check(*a, **k):  # the first query of the run uses up the budget
        out = real_check(*a, **k)
        clock.now = 10
        return out

    session.check = check  # type: ignore[method-assign]
    (first, *rest) = verify(prog, session=session)
    assert first.id == "private" and first.status == "unknown"
    assert first.message == f"1 tool not checked: {REASON.format('10')}", first.message
    assert [r.status for r in rest] == ["unknown", "unknown"]
    assert session.queries == 1


def test_lint_with_no_time_left_finds_only_what_needs_no_solver():
    prog = load_program(EASY + 'permit (principal, action == Action::"read", resource) when { context.input.p.matches("adm") };')
    linter = Linter(prog, timeout_ms=TIMEOUT, deadline=Deadline(0))
    found = linter.run()
    assert linter.session.queries == 0
    undecided = {d.data["lint"] for d in found if d.code == "undecided"}
    assert undecided == {"unsatisfiable-condition", "dead-permit", "redundant-rule", "forbid-bypass", "always-allows"}
    for d in found:
        if d.code == "undecided":
            assert REASON.format("0") in d.message and "raise --deadline" in d.notes[-1]
    # syntactic lints still run: the unanchored regex is reported, proved without the solver
    assert {d.code for d in found} - {"undecided"} == {"unanchored-regex"}


def test_verify_blocking_check_left_undecided_is_an_error():
    prog = load_program(EASY)
    assert blocking_findings(prog, timeout_ms=TIMEOUT, deadline=Deadline(0)) == []  # as the gateway asks: errors only
    found = blocking_findings(prog, timeout_ms=TIMEOUT, deadline=Deadline(0), undecided=True)
    assert [(d.code, d.severity, d.data["lint"]) for d in found] == [("undecided", "error", "forbid-bypass")]


def test_diff_with_no_time_left_decides_only_unchanged_plans():
    old = load_program(EASY)
    new = load_program(EASY.replace("size > 10", "size > 20"))
    session = Session(TIMEOUT, deadline=Deadline(0))
    diffs = diff_programs(old, new, session=session)
    assert session.queries == 0
    by_tool = {d.tool: (d.looser.status, d.stricter.status, d.looser.reason) for d in diffs}
    assert by_tool["read"] == ("unknown", "unknown", REASON.format("0"))
    assert by_tool["write"][:2] == ("no", "no")  # its plan did not change: equivalent without a query


# ---- the regex translation stops at the deadline ------------------------------------------

PATTERNS = [
    r"^[\p{Lu}a]{3}-x$",  # RE2 scans of Unicode classes
    r"((^a|b$){3}c){4}",  # anchors inside repetitions: unrolled
    r"[a-f]{2}(x|y|z)+\d",  # a plain AST: only Z3 terms
]


def _clear() -> None:
    for cached in (rx.parse, rx.search_ast, rx.charset):
        cached.cache_clear()


@pytest.mark.parametrize("pattern", PATTERNS)
def test_a_translation_past_the_deadline_stops(pattern):
    import z3

    _clear()
    with rx.time_limit(60000, Deadline(60)):  # with time left it translates
        ast = rx.search_ast(pattern)
        rx.Z3Regex(z3.Context())(ast)
    with rx.time_limit(None, Deadline(0)):
        with pytest.raises(rx.OutOfTime) as e:  # the AST is cached: the Z3 terms stop
            rx.Z3Regex(z3.Context())(rx.search_ast(pattern))
    assert e.value.reason == REASON.format("0")
    _clear()
    with rx.time_limit(None, Deadline(0)):
        with pytest.raises(rx.OutOfTime) as e:  # nothing cached: the parse (RE2 scans) or the anchors stop
            rx.search_ast(pattern)
    assert e.value.reason == REASON.format("0")


@given(st.integers(1, 400), st.sampled_from(PATTERNS))
@settings(deadline=None)
def test_a_translation_stops_wherever_the_deadline_falls(k, pattern):
    """Each unit of translation work reads the clock once: every budget stops it somewhere
    (or lets it finish), and a stopped translation says why."""
    import z3

    _clear()
    run = ticking(k)
    try:
        with rx.time_limit(None, run):
            rx.Z3Regex(z3.Context())(rx.search_ast(pattern))
    except rx.OutOfTime as e:
        assert e.reason == run.reason and run.expired()


def test_an_encoded_match_past_the_deadline_is_unconstrained_and_named():
    prog = load_program("""
default deny;
permit (principal, action == Action::"t", resource) when { context.input.s.matches("^[\\\\p{Lu}a]$") };
assert deny (principal, action == Action::"t", resource) when { context.input.s == "zz" };
""")
    _clear()
    session = Session(TIMEOUT, deadline=Deadline(5, clock=Frozen()))
    from mcpp.analyzer.encode import decide

    assert session.deadline is not None
    session.deadline.end = session.deadline.clock()  # runs out now, before the translation
    d = decide(session.request(), prog, "t")
    assert any(REASON.format("5") in r and "was stopped" in r for r in d.enc.reasons), d.enc.reasons


# ---- any budget: what is decided is the unbounded answer --------------------------------------
#
# The reference run has a deadline that never runs out, on a `Ticks` clock: it answers as
# an unbounded run does and counts the clock reads N of the whole run; the bounded run
# gets a budget of k ≤ N reads, so the deadline falls anywhere in it (k = N: just in time).


@st.composite
def texts_with_asserts(draw) -> str:
    """`tool_policy_texts` plus one to three assertions about its tools."""
    text = draw(tool_policy_texts(max_tools=3, max_rules=8))
    tools = sorted(set(re.findall(r'Action::"(tool\d)"', text))) or ["tool0"]
    lines = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["deny", "allow", "approval"]))
        action = draw(st.sampled_from(["action"] + [f'action == Action::"{t}"' for t in tools]))
        conds = draw(st.lists(st.tuples(st.sampled_from(["when", "unless"]), _conditions), max_size=1))
        lines.append(f"assert {kind} (principal, {action}, resource)" + "".join(f" {k} {{ {c} }}" for k, c in conds) + ";")
    return text + "\n".join(lines) + "\n"


def reference(run_with):
    """(the answers of a run whose deadline never falls, its number of clock reads)."""
    clock = Ticks()
    out = run_with(Deadline(10**9, clock=clock))
    return out, int(clock.now)


@given(texts_with_asserts(), st.data())
@settings(deadline=None)
def test_verify_under_any_budget_answers_as_unbounded_or_unknown(text, data):
    prog = load_program(text)
    want, reads = reference(lambda d: {r.id: r.status for r in verify(prog, session=Session(TIMEOUT, deadline=d))})
    assert want == {r.id: r.status for r in verify(prog, timeout_ms=TIMEOUT)}  # the reference is the unbounded run
    run = ticking(data.draw(st.integers(0, reads), label="budget"))
    got = verify(prog, session=Session(TIMEOUT, deadline=run))
    assert [r.id for r in got] == list(want)
    for r in got:
        if r.status != want[r.id]:
            assert r.status == "unknown" and run.expired(), (r.id, r.status, want[r.id], r.message)
            assert run.reason in r.message or r.reasons, r.message


def _changed(text: str) -> str:
    return text.replace("max 10 ", "max 100 ").replace("permit", "forbid", 1).replace('"^[a-z]{2,8}$"', '"^[a-z]{2,9}$"')


@given(tool_policy_texts(max_tools=3, max_rules=8), st.data())
@settings(deadline=None)
def test_diff_under_any_budget_answers_as_unbounded_or_unknown(text, data):
    old, new = load_program(text), load_program(_changed(text))

    def statuses(d):
        return {t.tool: (t.looser.status, t.stricter.status) for t in diff_programs(old, new, session=Session(TIMEOUT, deadline=d))}

    want, reads = reference(statuses)
    run = ticking(data.draw(st.integers(0, reads), label="budget"))
    for tool, got in statuses(run).items():
        for g, w in zip(got, want[tool]):
            if g != w:
                assert g == "unknown" and run.expired(), (tool, g, w)


def _key(d) -> tuple:
    return d.code, d.severity, d.span.line, d.span.col, d.data.get("rule"), d.data.get("tool")


@given(tool_policy_texts(max_tools=3, max_rules=8), st.data())
@settings(deadline=None)
def test_lint_under_any_budget_finds_nothing_unproved(text, data):
    prog = load_program(text)
    want, reads = reference(lambda d: Linter(prog, timeout_ms=TIMEOUT, deadline=d).run())
    assert not any(d.code == "undecided" for d in want)  # the reference decides everything
    run = ticking(data.draw(st.integers(0, reads), label="budget"))
    got = Linter(prog, timeout_ms=TIMEOUT, deadline=run).run()
    found = [d for d in got if d.code != "undecided"]
    assert {_key(d) for d in found} <= {_key(d) for d in want}
    kept = {_key(d) for d in found}
    missed = {d.code for d in want if _key(d) not in kept}
    undecided = {d.data["lint"] for d in got if d.code == "undecided"}
    if missed or undecided:
        assert run.expired()
    # a lint that lost a finding says it could not decide everything (always-denies is always-allows' lint)
    assert {"always-allows" if m == "always-denies" else m for m in missed} <= undecided


# ---- the command line: `--deadline SECONDS` ----------------------------------------------------

def _cli(*args):
    from typer.testing import CliRunner

    from mcpp.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def policies(tmp_path):
    old = tmp_path / "old.mcpp"
    old.write_text(EASY)
    new = tmp_path / "new.mcpp"
    new.write_text(EASY.replace("size > 10", "size > 20"))
    return old, new


def test_cli_verify_past_its_deadline_is_unknown_and_exits_1(policies):
    old, _ = policies
    assert _cli("verify", old, "--allow-bypassable").exit_code == 1  # `reads-any` fails anyway
    r = _cli("verify", old, "--deadline", "0", "--format", "json")
    assert r.exit_code == 1, r.output
    doc = json.loads(r.output)
    asserts = doc["files"][0]["asserts"]
    assert [(a["status"], a["message"]) for a in asserts] == [("unknown", REASON.format("0"))] * 3
    assert doc["summary"]["passed"] == 0 and doc["summary"]["blocking"] == 1  # the bypass check: undecided, an error
    (finding,) = doc["files"][0]["findings"]
    assert finding["code"] == "undecided" and finding["severity"] == "error"
    r = _cli("verify", old, "--deadline", "0")
    assert "0 passed, 0 failed, 3 unknown; the bypassable-rule check undecided in 1 file" in r.output


def test_cli_verify_within_its_deadline_answers_as_without(policies):
    old, _ = policies
    plain = json.loads(_cli("verify", old, "--format", "json").output)
    timed = json.loads(_cli("verify", old, "--format", "json", "--deadline", "3600").output)
    assert [a["status"] for a in timed["files"][0]["asserts"]] == [a["status"] for a in plain["files"][0]["asserts"]]


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "soon"])
def test_cli_deadline_must_be_seconds(policies, value):
    old, _ = policies
    for cmd in (["verify", old], ["lint", old], ["diff", old, old]):
        r = _cli(*cmd, "--deadline", value)
        assert r.exit_code == 2, (cmd, value, r.output)


def test_cli_lint_and_diff_past_their_deadline(policies):
    old, new = policies
    r = _cli("lint", old, "--deadline", "0", "--format", "json")
    assert r.exit_code == 0  # the table: lint fails on error-level findings; undecided checks are warnings
    codes = {(f["code"], f["data"].get("lint")) for f in json.loads(r.output)["findings"]}
    assert ("undecided", "forbid-bypass") in codes
    r = _cli("diff", old, new, "--deadline", "0", "--fail-on", "any", "--format", "json")
    assert r.exit_code == 1  # an undecided direction counts for --fail-on
    tools = {t["tool"]: t for t in json.loads(r.output)["tools"]}
    assert tools["read"]["status"] == "unknown"
    assert tools["read"]["looser"] == {"status": "unknown", "reason": REASON.format("0")}
    assert _cli("diff", old, new, "--deadline", "0").exit_code == 0  # no --fail-on: a report


def test_cli_lint_only_still_says_what_it_could_not_decide(policies):
    old, _ = policies
    r = _cli("lint", old, "--only", "dead-permit", "--deadline", "0", "--format", "json")
    found = json.loads(r.output)["findings"]
    assert [(f["code"], f["data"]["lint"]) for f in found] == [("undecided", "dead-permit")]
    r = _cli("lint", old, "--only", "dead-permit", "--disable", "undecided", "--deadline", "0", "--format", "json")
    assert json.loads(r.output)["findings"] == []  # silenced only by name
