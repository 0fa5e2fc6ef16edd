"""The parts of the API the command line is built on (docs/api.md: checking without
raising, compiling, formatting, witnesses), exercised as a user would call them: what
each returns, and what each raises for input it cannot use."""

from __future__ import annotations

import json

import pytest

import mcpp

PERMIT = 'permit (principal, action == Action::"refund", resource) when { context.input.amount <= 100 };\n'
BY_GROUP = 'permit (principal, action == Action::"deploy", resource) when { principal in Group::"ops" };\n'


@pytest.mark.parametrize("source, filename, codes, has_policy", [
    (PERMIT, "p.mcpp", [], True),
    ("permit (principal, action, resource) when { context.input.n <= };", "p.mcpp", ["syntax"], False),
    ('@id("a") permit (principal, action, resource);\n@id("a") permit (principal, action, resource);', "p.mcpp",
     ["validation"], False),
    ('{"version": "1", "default": "deny", "tools": {}}', "p.json", [], True),
    ('{"version": "1", "default": "maybe", "tools": {}}', "p.json", ["json"], False),
    ("{not json", "p.json", ["error"], False),
])
def test_check_reports_instead_of_raising(source, filename, codes, has_policy):
    found = mcpp.check(source, filename=filename)
    assert [d.code for d in found.errors] == codes
    assert (found.policy is not None) == has_policy
    assert found.source == source and found.catalog_diagnostics == ()


def test_check_of_a_missing_file_raises_a_file_error(tmp_path):
    with pytest.raises(mcpp.PolicyFileError, match="no such file"):
        mcpp.check(tmp_path / "nope.mcpp")


def test_check_against_a_catalog_keeps_the_policy_and_names_the_catalog(tmp_path):
    catalog = tmp_path / "tools.json"
    catalog.write_text(json.dumps({"tools": [{"name": "refund", "inputSchema": {
        "type": "object", "properties": {"amount": {"type": "number"}}}}]}))
    found = mcpp.check(PERMIT + 'permit (principal, action == Action::"refnd", resource);\n',
                       filename="p.mcpp", catalog=catalog)
    assert [d.code for d in found.catalog_diagnostics if d.severity == "error"] == ["catalog-unknown-tool"]
    assert found.policy is not None and found.policy.catalog is found.catalog
    assert found.catalog_name == str(catalog)
    with pytest.raises(mcpp.CatalogError):
        mcpp.check(PERMIT, catalog=tmp_path / "missing.json")


def test_catalog_problems_check_a_policy_against_the_catalog_it_names(tmp_path):
    (tmp_path / "tools.json").write_text(json.dumps({"tools": [{"name": "refund", "inputSchema": {
        "type": "object", "properties": {"amount": {"type": "number"}}}}]}))
    named = '@catalog("tools.json")\ndefault deny;\n'
    good = tmp_path / "good.mcpp"
    good.write_text(named + PERMIT)
    assert [d.severity for d in mcpp.load_policy(good).catalog_problems()] == ["warning"]  # `amount` is optional
    typo = tmp_path / "typo.mcpp"
    typo.write_text(named + 'permit (principal, action == Action::"refnd", resource);\n')
    assert [d.code for d in mcpp.load_policy(typo).catalog_problems() if d.severity == "error"] == ["catalog-unknown-tool"]
    gone = tmp_path / "gone.mcpp"
    gone.write_text('@catalog("missing.json")\ndefault deny;\n' + PERMIT)
    [err] = mcpp.load_policy(gone).catalog_problems()  # the named catalog cannot be used: one error, where it is named
    assert err.severity == "error" and err.span is not None and err.span.line == 1
    assert mcpp.load_policy(PERMIT).catalog_problems() == []  # names none


def test_lint_only_keeps_the_chosen_lints_undecided_finding():
    run = mcpp.Deadline(0)  # no time: every solver check of the chosen lint is left undecided
    found = mcpp.load_policy(PERMIT + PERMIT).lint(only={"redundant-rule"}, deadline=run)
    assert "undecided" in {d.code for d in found} and "redundant-rule" not in {d.code for d in found}


def test_lint_only_runs_the_named_lints_and_refuses_unknown_names():
    policy = mcpp.load_policy(PERMIT + PERMIT)  # the second permit is redundant
    assert "redundant-rule" in mcpp.lint_names()
    assert {d.code for d in policy.lint(only={"redundant-rule"})} == {"redundant-rule"}
    assert policy.lint(only=set()) == []
    with pytest.raises(ValueError, match="unknown lint 'nope'"):
        policy.lint(only={"nope"})


def test_compile_needs_a_principal_for_rules_that_read_it():
    policy = mcpp.load_policy(BY_GROUP, filename="deploy.mcpp")
    with pytest.raises(mcpp.PolicyValidationError) as refused:
        policy.compile()
    assert refused.value.span is not None and refused.value.span.line == 1
    ops = policy.compile(principal=mcpp.Grant("g", "", frozenset({"ops"})))
    other = policy.compile(principal="g")
    assert mcpp.load_policy(json.dumps(ops)).decide("deploy", {}).allowed
    assert not mcpp.load_policy(json.dumps(other)).decide("deploy", {}).allowed


def test_to_cedar_refuses_what_cedar_cannot_express_unless_partial():
    policy = mcpp.load_policy(PERMIT + 'limit "n" (principal, action, resource) max 1 per hour scope grant;\n',
                              filename="p.mcpp")
    with pytest.raises(mcpp.PolicyValidationError):
        policy.to_cedar()
    out = policy.to_cedar(partial=True)
    assert "permit" in out.policies and len(out.left_out) == 1 and out.left_out[0].span.line == 2
    with pytest.raises(ValueError, match="not a Cedar namespace"):
        policy.to_cedar(namespace="9 bad")


@pytest.mark.parametrize("call, error", [
    (lambda: mcpp.format_policy("permit (principal, action, resource) when { };", filename="f.mcpp"),
     mcpp.PolicySyntaxError),
    (lambda: mcpp.decompile(PERMIT, filename="p.json"), mcpp.PolicySyntaxError),
])
def test_format_and_decompile_raise_policy_errors(call, error):
    with pytest.raises(error) as raised:
        call()
    assert raised.value.diagnostics


def test_format_then_decompile_round_trip():
    text = mcpp.format_policy('permit(principal,action==Action::"refund",resource);', filename="f.mcpp")
    assert text == 'permit (principal, action == Action::"refund", resource);\n'
    doc = mcpp.load_policy(text).compile()
    back = mcpp.decompile(json.dumps(doc))
    assert mcpp.load_policy(back).decide("refund", {}).allowed


def test_a_failing_assertion_carries_its_witness_and_finding():
    policy = mcpp.load_policy(PERMIT + '@id("big") assert allow (principal, action == Action::"refund", resource);\n',
                              filename="p.mcpp")
    (r,) = policy.verify()
    assert r.status == "fail" and r.witness is not None and r.finding is not None
    w = r.witness
    assert w.tool == "refund" and isinstance(w.principal, mcpp.Grant) and w.server == "default"
    assert w.request()["params"] == {"name": "refund", "arguments": w.arguments}
    assert w.to_dict()["request"] == w.request() and r.counterexample == w.to_dict()
    assert r.finding.code == "assert-failed" and r.finding.span == r.span
    assert r.to_dict()["tools_checked"] == r.tools_checked >= 1


def test_a_json_form_diagnostic_has_no_span_and_zero_coordinates():
    (d,) = mcpp.check('{"version": "1", "default": "maybe", "tools": {}}', filename="p.json").errors
    assert d.span is None
    assert {k: d.to_dict()[k] for k in ("line", "col", "end_line", "end_col")} == {
        "line": 0, "col": 0, "end_line": 0, "end_col": 0}
