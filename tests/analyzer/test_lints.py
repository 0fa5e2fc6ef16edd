"""Each lint fires on its fixture, with its id, severity, span and docs page, and stays
quiet on the policies that do not deserve it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcpp.analyzer import analyze
from mcpp.analyzer.lints import LINTS, lint
from mcpp.analyzer.witness import NOW, StateStore
from mcpp.lang.program import load_program
from mcpp.lang.load import load_policy
from mcpp.runtime.engine import Engine

ROOT = Path(__file__).resolve().parents[2]
FIX = Path(__file__).parent / "fixtures"


def findings(name: str, lint_id: str | None = None):
    prog = load_policy(FIX / f"{name}.mcpp")
    out = lint(prog, timeout_ms=10000)
    return prog, [d for d in out if lint_id is None or d.code == lint_id]


def test_every_lint_has_a_docs_page():
    for lint_id in LINTS:
        page = ROOT / "docs" / "lints" / f"{lint_id}.md"
        assert page.exists(), page
        text = page.read_text()
        for section in ("Summary", "Severity", "Avoid", "Prefer", "Rationale"):
            assert section in text, (lint_id, section)


def test_dead_permit():
    _, ds = findings("dead-permit", "dead-permit")
    by_rule = {d.data["rule"]: d for d in ds}
    assert set(by_rule) == {"wipe", "secrets"}
    assert "overridden by forbid 'never-wipe'" in by_rule["wipe"].message
    assert "hidden" in by_rule["secrets"].message
    assert by_rule["wipe"].severity == "warning" and by_rule["wipe"].span.line == 4
    assert by_rule["wipe"].data["docs"] == "docs/lints/dead-permit.md"


def test_redundant_rule():
    _, ds = findings("redundant-rule", "redundant-rule")
    pairs = {(d.data["rule"], d.data["implied_by"]) for d in ds}
    assert pairs == {("prod-read-eu", "prod-read"), ("no-root-rm", "no-root")}


def test_equivalent_rules_report_only_the_later_one():
    prog = load_program(
        'default deny;\n@id("a") permit (principal, action == Action::"t", resource) when { context.input.x == 1 };\n'
        '@id("b") permit (principal, action == Action::"t", resource) when { context.input.x == 1.0 };\n'
    )
    ds = [d for d in lint(prog) if d.code == "redundant-rule"]
    assert [(d.data["rule"], d.data["implied_by"]) for d in ds] == [("b", "a")]


def test_unsatisfiable_condition():
    _, ds = findings("unsatisfiable-condition", "unsatisfiable-condition")
    assert {d.data["rule"] for d in ds} == {"window", "typed", "vacuous"}
    lines = sorted(d.span.line for d in ds)
    assert lines == [5, 10, 14]  # each points at the clause that cannot hold
    assert any("unless" in d.message for d in ds)
    assert any("assertion" in d.message and "proves nothing" in " ".join(d.notes) for d in ds)


def test_forbid_bypass_mistyped_and_missing():
    prog, ds = findings("forbid-bypass", "forbid-bypass")
    by_rule = {d.data["rule"]: d for d in ds}
    assert set(by_rule) == {"refund-cap", "no-prod"}  # transfer is guarded in its permit
    cap = by_rule["refund-cap"]
    assert cap.severity == "error"
    assert '"1500"' in cap.message and "not a number" in cap.message
    assert "context.input.amount <= 1000" in cap.notes[0]
    assert by_rule["no-prod"].severity == "warning" and "missing" in by_rule["no-prod"].message
    # the counterexample is a real bypass: the engine allows it
    for d in ds:
        w = d.data["counterexample"]
        params = w["request"]["params"]
        from mcpp.runtime.engine import Grant

        g = w["grant"]
        decision = Engine(prog, store=StateStore({})).decide(
            params["name"], params["arguments"], Grant(g["id"], g["label"], frozenset(g["groups"])), w["server"],
            now=NOW, reserve=False,
        )
        assert decision.allowed


def test_forbid_bypass_guard_suggestion_closes_the_hole():
    fixed = (FIX / "forbid-bypass.mcpp").read_text().replace(
        'permit (principal, action == Action::"refund_payment", resource);',
        'permit (principal, action == Action::"refund_payment", resource) when { context.input.amount <= 1000 };',
    )
    prog = load_program(fixed)
    assert not [d for d in lint(prog) if d.code == "forbid-bypass" and d.data["rule"] == "refund-cap"]


def test_unanchored_regex():
    _, ds = findings("unanchored-regex", "unanchored-regex")
    assert [d.data["rule"] for d in ds] == ["fetch"]  # the anchored allowlist and the denylist are fine
    d = ds[0]
    assert d.span.line == 5 and d.span.col > 1  # the .matches() call itself
    assert "evil.example/https://api.acme.com/" in d.message


def test_always_allows_and_denies():
    _, ds = findings("always-allows", "always-allows")
    assert len(ds) == 1 and "does not name" in ds[0].message
    _, ds = findings("always-allows-everything", "always-allows")
    assert len(ds) == 1 and "every call" in ds[0].message
    _, ds = findings("always-denies", "always-denies")
    assert len(ds) == 1


@pytest.mark.parametrize("name", ["refunds", "github", "kubernetes", "shell", "slack", "http"])
def test_examples_have_no_error_level_findings(name):
    ds = lint(load_policy(ROOT / "examples" / f"{name}.mcpp"))
    assert not [d for d in ds if d.severity == "error"]
    assert not [d for d in ds if d.code in ("dead-permit", "redundant-rule", "unsatisfiable-condition", "forbid-bypass")]


def test_analyze_reports_lints_and_failed_asserts_with_the_call():
    prog = load_policy(FIX / "asserts-fail.mcpp")
    ds = analyze(prog, timeout_ms=5000)
    failed = [d for d in ds if d.code == "assert-failed"]
    assert [d.data["assert"] for d in failed] == ["cap"]
    assert failed[0].severity == "error" and '"amount"' in failed[0].message
    assert failed[0].data["counterexample"]["request"]["method"] == "tools/call"
    assert all(d.data.get("docs") for d in ds)


def test_analyze_is_safe_in_threads():
    from concurrent.futures import ThreadPoolExecutor

    progs = [load_policy(FIX / f"{n}.mcpp") for n in ("asserts-fail", "forbid-bypass", "dead-permit", "redundant-rule")] * 2
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda p: analyze(p, timeout_ms=10000), progs))
    serial = [analyze(p, timeout_ms=10000) for p in progs]
    assert [[(d.code, d.span.line) for d in r] for r in results] == [[(d.code, d.span.line) for d in r] for r in serial]


def test_analyze_never_raises_on_a_broken_program():
    from mcpp.lang.parser import parse_partial
    from mcpp.lang.program import build_program

    doc, _ = parse_partial('permit (principal, action == Action::"a", resource) when { context.input.x ==  };\n'
                           'permit (principal, action == Action::"b", resource) when { context.input.y.matches("(") };')
    prog, _ = build_program(doc)
    for d in analyze(prog):
        assert d.code  # whatever it finds, it returns diagnostics


def test_suppress_annotation():
    src = (FIX / "dead-permit.mcpp").read_text().replace('@id("wipe")', '@id("wipe")\n@suppress("dead-permit")')
    ds = [d for d in lint(load_program(src)) if d.code == "dead-permit"]
    assert {d.data["rule"] for d in ds} == {"secrets"}
    quiet = lint(load_program('@suppress("always-allows") default allow;'))
    assert not [d for d in quiet if d.code == "always-allows"]


def test_analyze_can_be_cancelled():
    import threading

    ev = threading.Event()
    ev.set()
    assert analyze(load_policy(FIX / "forbid-bypass.mcpp"), cancel=ev) == []
