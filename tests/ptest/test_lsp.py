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
