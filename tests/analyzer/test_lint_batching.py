"""The per-tool pass of the linter reports what asking rule by rule reports.

`Linter._prefetch` (analyzer/lints.py) visits the tools one at a time and settles the
lints' questions with a few shared checks on one solver: grouped conjunctions and
disjunctions (`Session.which_sat`), and forbid-bypass searches asked readable-first
(`Session.check(likely=True)`). `PerRule` below is the linter without any of that: every
question on its own check, as the lints asked before, and a witness found by a plain
check and then `_prefer`. On generated programs — the plain and rich generators, users
as callers, and many tools with several rules each reading the same or different
arguments — both
report the same findings: code, severity, position, message, notes and data. (Programs
that name users come from tests/identity/strategies.py.)

Forbid-bypass findings carry a counterexample, which is one model among many (both are
replayed through the engine before they are reported): for them the rule, tool and
severity must agree, and the rest only describes the call found. Where the encoding of
a tool approximates (`ProgramEncoder.reasons`), a witness may fail to replay in one run
and not in the other, so bypass findings about such tools are not compared.
"""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from mcpp.analyzer.lints import Linter
from mcpp.analyzer.solve import Outcome
from mcpp.lang import ir
from mcpp.lang.program import build_program, load_program

from tests.identity.strategies import identity_documents

from .strategies import assertions, programs, rich_programs, tool_policy_texts

TIMEOUT = 20000


class PerRule(Linter):
    """The reference: each question asked alone, when a lint needs it."""

    def _prefetch(self) -> None:
        pass  # nothing settled ahead

    def _batch_applies(self, t: str) -> None:
        self._batched.add(t)  # "can it apply?" asked rule by rule (`can_apply`)

    def _search(self, t: str, formula) -> Outcome:
        return self.session.check(self.tool(t)[0], formula, tool=t, witness=True)


def _view(d) -> tuple:
    data = {k: v for k, v in d.data.items() if k not in ("counterexample", "fix")}
    if d.code == "forbid-bypass":  # the call found describes one model: see the module docstring
        return d.code, d.severity, d.data["rule"], d.data["tool"]
    return d.code, d.severity, d.span.line, d.span.col, d.message, d.notes, repr(sorted(data.items()))


def assert_same_findings(prog, generated: bool = True) -> None:
    fast = Linter(prog, timeout_ms=TIMEOUT)
    got = fast.run()
    ref = PerRule(prog, timeout_ms=TIMEOUT)
    want = ref.run()
    # a timeout is timing, not meaning: where either run could not decide, nothing to compare
    undecided = any(d.code == "undecided" for d in got + want)
    if generated:
        assume(not undecided)
    else:
        assert not undecided, [d.message for d in got + want if d.code == "undecided"]
    approximated = {t for lin in (fast, ref) for t, (_, d) in lin._tool.items() if d.enc.reasons}
    bypass_tools = {f.id: set(fast.tools_of(f)) for f in prog.forbids}

    def kept(ds):
        return sorted((_view(d) for d in ds
                       if not (d.code == "forbid-bypass" and bypass_tools[d.data["rule"]] & approximated)), key=repr)

    assert kept(got) == kept(want)
    for d in got:  # the witness the per-tool pass found is a call to the tool it names
        if d.code == "forbid-bypass":
            assert d.data["counterexample"]["request"]["params"]["name"] == d.data["tool"]


@given(programs(max_policies=6, with_approvals=True), st.lists(assertions(), max_size=2))
def test_plain_programs(prog, asserts):
    with_asserts, diags = build_program(ir.Document(prog.document.statements + tuple(asserts)))
    assert_same_findings(prog if any(d.severity == "error" for d in diags) else with_asserts)


@given(rich_programs(max_policies=6))
def test_rich_programs(prog):
    assert_same_findings(prog)


@given(tool_policy_texts())
def test_many_tools_several_rules_each(text):
    assert_same_findings(load_program(text))


@given(identity_documents(max_policies=6))
def test_programs_that_name_users(doc):
    prog, diags = build_program(doc)
    assume(not any(d.severity == "error" for d in diags))
    assert_same_findings(prog)


def _bench_shaped(n_tools: int) -> str:
    """The five rules per tool of bench/analyzer_bench.py's generated policies."""
    out = ["default deny;"]
    for t in range(n_tools):
        tool = f"tool_{t:05d}"
        out += [
            f'@id("{tool}-allow")\npermit (principal, action == Action::"{tool}", resource)\n'
            f'when {{ context.input.namespace in ["dev", "qa"] && context.input.amount <= {100 * (t + 1)} }};',
            f'@id("{tool}-no-prod")\nforbid (principal, action == Action::"{tool}", resource)\n'
            'when { context.input.namespace like "*prod*" };',
            f'@id("{tool}-owner")\nforbid (principal, action == Action::"{tool}", resource)\n'
            'unless { context.input has owner && context.input.owner.matches("^[a-z]{2,12}$") };',
            f'@id("{tool}-ops")\npermit (principal in Group::"ops-{t % 3}", action == Action::"{tool}", resource)\n'
            f'when {{ context.input.url.matches("^https://(api|docs)\\\\.example{t}\\\\.com/") }};',
            f'@id("{tool}-budget")\nlimit "{tool}-calls" (principal, action == Action::"{tool}", resource) max 10 per hour;',
        ]
    return "\n".join(out) + "\n"


def test_the_benchmark_shape():
    prog = load_program(_bench_shaped(12))
    assert_same_findings(prog, generated=False)
    # and what it finds there: both forbids of every tool bypassable with a mistyped argument
    bypasses = {(d.data["rule"], d.severity) for d in Linter(prog, timeout_ms=TIMEOUT).run() if d.code == "forbid-bypass"}
    assert bypasses == {(f"tool_{t:05d}-{r}", "error") for t in range(12) for r in ("no-prod", "owner")}


def test_each_tool_gets_one_solver_at_a_time():
    """The pass frees a tool's solver before the next tool's (a 5,000-rule policy has a
    thousand tools: their solvers together took gigabytes)."""
    prog = load_program(_bench_shaped(6))
    lin = Linter(prog, timeout_ms=TIMEOUT)
    made = []
    real = lin.session.solver_for

    def solver_for(req):
        s = real(req)
        made.append((id(req), len(lin.session._live)))
        return s

    lin.session.solver_for = solver_for
    lin._prefetch()
    assert made and all(live == 1 for _, live in made)
    assert not lin.session._live
