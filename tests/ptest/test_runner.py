"""Running cases: pass/fail, the diff of expected against actual, exit codes, sequences
and windows, and the JSON and JUnit reports CI systems read."""

import json
import xml.etree.ElementTree as ET

from .helpers import mcpp, pair

POLICY = """\
default deny;
@id("cap")
@reason("Too much.")
permit (principal, action == Action::"pay", resource) when { context.input.amount <= 100 };
@id("twice")
limit "pays" (principal, action == Action::"pay", resource) max 2 per hour;
"""

PASSING = """\
[[case]]
name = "small"
tool = "pay"
arguments = { amount = 5 }
decision = "allow"
rule = "/tools/pay"
policy = "cap"
message = "Allowed by cap."

[[case]]
name = "two an hour"
tool = "pay"
arguments = { amount = 5 }
grant = { id = "g1", label = "bot", groups = ["ops"] }
time = 2026-05-01T10:59:00+02:00

[[case.calls]]
repeat = 2
decision = "allow"

[[case.calls]]
decision = "deny"
rule = "/tools/pay/limits/pays"
message = "Limit 'pays' exceeded. (limit pays: 2 per hour per grant; resets at 2026-05-01T09:00:00Z)"

[[case.calls]]
time = 2026-05-01T09:00:00Z
decision = "allow"
"""

FAILING = """\
[[case]]
name = "small"
tool = "pay"
arguments = { amount = 5 }
decision = "allow"

[[case]]
name = "big"
tool = "pay"
arguments = { amount = 500 }
decision = "allow"
message = "Too much."

[[case]]
name = "third"
tool = "pay"
arguments = { amount = 1 }

[[case.calls]]
repeat = 3
decision = "allow"
"""


def test_passing_cases_exit_0(tmp_path):
    p = mcpp("test", pair(tmp_path, POLICY, PASSING))
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.splitlines()[-1] == "2 passed, 0 failed (2 cases in 1 test file)"


def test_a_failure_exits_1_with_a_diff(tmp_path):
    policy = pair(tmp_path, POLICY, FAILING)
    p = mcpp("test", policy)
    assert p.returncode == 1
    out = p.stdout
    assert "  ok    small" in out
    assert f"  FAIL  big  ({tmp_path / 'p.test.toml'}:7)" in out
    big = out[out.index("FAIL  big"):out.index("FAIL  third")]
    assert 'call: pay {"amount": 500} by grant "anonymous" on server "default" at 2026-01-01T00:00:00Z' in big
    assert "engine: deny by /tools/pay/require/args.amount-lte (policy \"cap\"): Too much." in big
    assert '- decision = "allow"\n        + decision = "deny"\n          message = "Too much."' in big
    third = out[out.index("FAIL  third"):]
    assert "call 1 (repeat 3 of 3): pay" in third and "+ decision = \"deny\"" in third
    assert out.splitlines()[-1] == "1 passed, 2 failed (3 cases in 1 test file)"
    q = mcpp("test", policy, "-q")
    assert "ok    small" not in q.stdout and "FAIL  big" in q.stdout


def test_json_report(tmp_path):
    p = mcpp("test", pair(tmp_path, POLICY, FAILING), "--format", "json")
    assert p.returncode == 1
    data = json.loads(p.stdout)
    assert data["summary"] == {"passed": 1, "failed": 2, "errors": 0}
    (f,) = data["files"]
    big = f["cases"][1]
    assert big["status"] == "fail" and big["failure"]["mismatched"] == ["decision"]
    assert big["failure"]["expected"] == {"decision": "allow", "message": "Too much."}
    assert big["failure"]["actual"]["decision"] == "deny"
    assert f["cases"][2]["failure"]["repeat"] == 2 and f["cases"][2]["calls"] == 3


def test_junit_report_is_what_ci_systems_read(tmp_path):
    p = mcpp("test", pair(tmp_path, POLICY, FAILING), "--format", "junit")
    assert p.returncode == 1
    root = ET.fromstring(p.stdout)
    assert root.tag == "testsuites" and root.get("tests") == "3" and root.get("failures") == "2"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["small", "big", "third"]
    assert cases[0].find("failure") is None
    fail = cases[1].find("failure")
    assert fail.get("message") == 'decision: expected "allow", got "deny"'
    assert '+ decision = "deny"' in fail.text
    assert cases[1].get("line") == "7" and cases[1].get("classname").endswith(".p")


def test_junit_lists_invalid_test_files_as_errors(tmp_path):
    policy = pair(tmp_path, POLICY, '[[case]]\nname = "x"\ntool = "pay"\ndecision = "maybe"\n')
    p = mcpp("test", policy, "--format", "junit")
    assert p.returncode == 1  # an invalid test file: input with errors
    root = ET.fromstring(p.stdout)
    assert root.get("errors") == "1"
    err = root.find("testsuite/testcase/error")
    assert 'case[0].decision: expected "allow", "deny" or "approval"' in err.get("message")
    assert "p.test.toml:4:1: error:" in p.stderr


def test_a_case_never_sees_another_cases_counts(tmp_path):
    one = '[[case]]\nname = "n{i}"\ntool = "pay"\narguments = {{ amount = 1 }}\n[[case.calls]]\nrepeat = 2\ndecision = "allow"\n'
    tests = "\n".join(one.format(i=i) for i in range(4))
    assert mcpp("test", pair(tmp_path, POLICY, tests)).returncode == 0
