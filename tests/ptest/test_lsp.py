"""The language server shows what the tests beside a policy leave uncovered: information
diagnostics from the analyzer's worker, only when a test file is there."""

from mcpp.lsp.worker import handle

from .test_docs import exists

POLICY = """\
default deny;
@id("pay")
permit (principal, action == Action::"pay", resource)
when { context.input.amount <= 100 };
@id("refund")
permit (principal, action == Action::"refund", resource);
"""

TESTS = '[[case]]\nname = "small"\ntool = "pay"\narguments = { amount = 5 }\ndecision = "allow"\n'


def _run(path, source):
    reply = handle({"id": 1, "source": source, "filename": str(path), "timeout_ms": 2000})
    return [d for d in reply["diagnostics"] if d["code"].startswith("test-")]


def test_uncovered_rules_are_information_on_their_first_line(tmp_path):
    policy = tmp_path / "p.mcpp"
    policy.write_text(POLICY)
    assert _run(policy, POLICY) == []  # no test file: nothing
    (tmp_path / "p.test.toml").write_text(TESTS)
    (d,) = _run(policy, POLICY)
    assert d["code"] == "test-uncovered" and d["severity"] == "info"
    assert d["message"] == "not covered by p.test.toml: permit 'refund' never applied"
    assert d["span"][:4] == [5, 1, 5, 14]  # `@id("refund")` (13 characters), the rule's first line
    assert exists(d["data"]["docs"])


def test_the_text_being_edited_is_what_runs(tmp_path):
    policy = tmp_path / "p.mcpp"
    policy.write_text(POLICY)
    (tmp_path / "p.test.toml").write_text(TESTS)
    edited = POLICY.replace("<= 100", "<= 1")  # not saved: the case now fails
    diags = _run(policy, edited)
    failed = [d for d in diags if d["code"] == "test-failed"]
    assert len(failed) == 1 and failed[0]["message"].startswith("1 of 1 cases in p.test.toml fail on this text ('small')")
    assert any("permit 'pay' never applied" in d["message"] for d in diags)


def test_a_broken_test_file_is_one_information_diagnostic(tmp_path):
    policy = tmp_path / "p.mcpp"
    policy.write_text(POLICY)
    (tmp_path / "p.test.toml").write_text('[[case]]\nname = "x"\ntool = "pay"\ndecision = "perhaps"\n')
    (d,) = _run(policy, POLICY)
    assert d["code"] == "test-file" and d["severity"] == "info"
    assert 'p.test.toml:4:1: case[0].decision: expected "allow", "deny" or "approval"' in d["message"]


def test_the_editor_admits_cases_through_the_named_catalog_as_mcpp_test_does():
    """Every example names its catalog; its cases include calls the catalog's schema
    refuses (a string amount, a repository path) and a partial call. Without the
    catalog's admission the editor reported them failing while `mcpp test` passed them."""
    from pathlib import Path

    examples = Path(__file__).resolve().parents[2] / "examples"
    for policy in sorted(examples.glob("*.mcpp")):
        diags = _run(policy, policy.read_text())
        assert [d for d in diags if d["code"] in ("test-failed", "test-file")] == [], (policy.name, diags)


def test_a_case_the_catalog_refuses_fails_in_the_editor_when_it_expects_the_policy(tmp_path):
    import json

    (tmp_path / "tools.json").write_text(json.dumps({"tools": [{"name": "pay", "inputSchema": {
        "type": "object", "properties": {"amount": {"type": "number"}}}}]}))
    source = '@catalog("tools.json")\n' + POLICY
    policy = tmp_path / "p.mcpp"
    policy.write_text(source)
    (tmp_path / "p.test.toml").write_text(TESTS.replace("amount = 5", 'amount = "5"'))
    failed = [d for d in _run(policy, source) if d["code"] == "test-failed"]
    assert len(failed) == 1 and "('small')" in failed[0]["message"]
    (tmp_path / "p.test.toml").write_text(TESTS)  # the number the schema declares: the policy decides
    assert [d for d in _run(policy, source) if d["code"] in ("test-failed", "test-file")] == []
