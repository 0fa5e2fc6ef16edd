"""What the analyzer does when something cannot be decided or fails: a documented
outcome (UNKNOWN with a reason, an `undecided` finding, a shown tool), the unexpected
logged, and never a silent pass."""

from __future__ import annotations

import logging

import pytest

from mcpp.analyzer import visibility
from mcpp.analyzer.lints import lint
from mcpp.analyzer.verify import verify
from mcpp.analyzer.witness import ReplayError, Witness, matches_scope
from mcpp.lang.program import load_program
from mcpp.runtime import engine as engine_mod

DENY_T = ('permit (principal, action == Action::"t", resource) when { context.input.n > 1 };\n'
          '@id("never-t") assert deny (principal, action == Action::"t", resource);\n')


@pytest.mark.parametrize("error, logged", [(RecursionError("deep"), False), (TypeError("a bug"), True)])
def test_a_scope_the_engine_cannot_evaluate_is_an_error_not_a_no(monkeypatch, caplog, error, logged):
    prog = load_program(DENY_T)

    def boom(_self, _env):
        raise error

    monkeypatch.setattr(engine_mod.CompiledRule, "evaluate", boom)
    with caplog.at_level(logging.ERROR, logger="mcpp.analyzer"):
        with pytest.raises(ReplayError, match=type(error).__name__):
            matches_scope(prog, prog.asserts[0].stmt, Witness("t", {"n": 2}))
        (r,) = verify(prog)  # the counterexample cannot be checked: UNKNOWN, not FAIL and not PASS
    assert r.status == "unknown" and type(error).__name__ in r.message
    assert any(rec.name == "mcpp.analyzer" for rec in caplog.records) == logged


def test_undecided_lint_checks_are_reported(monkeypatch):
    from mcpp.analyzer import solve

    prog = load_program('permit (principal, action == Action::"t", resource) when { context.input.n > 1 };\n'
                        'forbid (principal, action == Action::"t", resource) when { context.input.n > 10 };\n')
    quiet = lint(prog)
    assert not [d for d in quiet if d.code == "undecided"]

    def undecided(_self, _req, _formula, **_kw):  # every check runs out of time
        return solve.Outcome("unknown", "the solver timed out after 1 ms")

    def unsettled(_self, _req, formulas, _together=()):  # and so does every batched one: nothing settled
        return [None] * len(formulas)

    monkeypatch.setattr(solve.Session, "check", undecided)
    monkeypatch.setattr(solve.Session, "which_sat", unsettled)
    ds = lint(prog)
    und = [d for d in ds if d.code == "undecided"]
    assert und and all("timed out" in d.message and d.severity == "warning" for d in und), [d.message for d in ds]
    assert {d.data["lint"] for d in und} >= {"forbid-bypass", "always-allows"}
    # nothing is claimed from an undecided check
    assert not [d for d in ds if d.code in ("dead-permit", "redundant-rule", "always-denies", "always-allows", "forbid-bypass")]


def test_an_unexpected_failure_in_visibility_shows_the_tool_and_is_logged(monkeypatch, caplog):
    prog = load_program('permit (principal, action == Action::"t", resource) when { context.input.n > 1 };')
    visibility.clear_cache()

    def boom(*_a, **_k):
        raise TypeError("a bug")

    monkeypatch.setattr(visibility, "decide", boom)
    with caplog.at_level(logging.ERROR, logger="mcpp.analyzer"):
        assert visibility.visible_tools(prog, ["t"], grant_id="g") == {"t"}
    assert any("could not be decided" in rec.getMessage() for rec in caplog.records)
    visibility.clear_cache()
