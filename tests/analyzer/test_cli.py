"""`mcpp verify | lint | diff`: exit codes, formats, and input errors reported like `mcpp check`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from mcpp.cli import app

ROOT = Path(__file__).resolve().parents[2]
FIX = Path(__file__).parent / "fixtures"
EXAMPLES = sorted(str(p) for p in (ROOT / "examples").glob("*.mcpp"))


def run(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_verify_examples_pass():
    r = run("verify", *EXAMPLES)
    assert r.exit_code == 0, r.output
    assert "0 failed, 0 unknown" in r.stdout


def test_verify_failure_shows_the_call_and_exits_1():
    r = run("verify", FIX / "asserts-fail.mcpp")
    assert r.exit_code == 1
    assert "FAIL" in r.stdout and '"method": "tools/call"' in r.stdout and "PASS    no-deletes" in r.stdout


def test_verify_json_and_sarif():
    r = run("verify", FIX / "asserts-fail.mcpp", "--format", "json")
    data = json.loads(r.stdout)
    (f,) = data["files"]
    cap = next(a for a in f["asserts"] if a["id"] == "cap")
    assert cap["status"] == "fail" and cap["counterexample"]["request"]["params"]["name"] == "refund"
    assert data["summary"] == {"passed": 1, "failed": 1, "unknown": 0}
    r = run("verify", FIX / "asserts-fail.mcpp", "--format", "sarif")
    _check_sarif(json.loads(r.stdout), {"assert-failed"})


def _check_sarif(doc, rule_ids):
    assert doc["version"] == "2.1.0" and doc["$schema"].endswith("sarif-2.1.0.json")
    (run_,) = doc["runs"]
    rules = [r["id"] for r in run_["tool"]["driver"]["rules"]]
    assert set(rules) >= rule_ids
    for res in run_["results"]:
        assert res["ruleId"] in rules and rules[res["ruleIndex"]] == res["ruleId"]
        assert res["level"] in ("error", "warning", "note")
        region = res["locations"][0]["physicalLocation"]["region"]
        assert region["startLine"] >= 1 and region["startColumn"] >= 1
        assert res["message"]["text"]


def test_input_errors_exit_1_with_check_diagnostics(tmp_path):
    bad = tmp_path / "bad.mcpp"
    bad.write_text('permit (principal, action == Action::"a", resource) when { context.input.x.matches("(") };\n')
    check = run("check", bad)
    for cmd in ("verify", "lint"):
        r = run(cmd, bad)
        assert r.exit_code == 1
        assert f"{bad}:1:" in r.stderr and ": error: " in r.stderr
        assert r.stderr.splitlines()[0] == check.stderr.splitlines()[0]
    r = run("diff", bad, FIX / "dead-permit.mcpp")
    assert r.exit_code == 1


def test_malformed_assert_and_unknown_tool_exit_1(tmp_path):
    f = tmp_path / "a.mcpp"
    f.write_text('permit (principal, action == Action::"read", resource);\n'
                 'assert hidden (principal, action == Action::"read", resource) when { context.input.x == 1 };\n')
    r = run("verify", f)
    assert r.exit_code == 1 and f"{f}:2:" in r.stderr and "tools/list" in r.stderr
    g = tmp_path / "b.mcpp"
    g.write_text('permit (principal, action == Action::"read", resource);\nassert allow (principal, action == Action::"raed", resource);\n')
    catalog = tmp_path / "tools.json"
    catalog.write_text(json.dumps({"tools": [{"name": "read"}, {"name": "write"}]}))
    r = run("verify", g, "--tools", catalog)
    assert r.exit_code == 1 and "unknown tool 'raed'" in r.stderr and "did you mean 'read'" in r.stderr


def test_lint_exit_codes_and_formats():
    assert run("lint", FIX / "dead-permit.mcpp").exit_code == 0  # warnings only
    r = run("lint", FIX / "forbid-bypass.mcpp")
    assert r.exit_code == 1 and "forbid-bypass" in r.stdout and "docs/lints/forbid-bypass.md" in r.stdout
    data = json.loads(run("lint", FIX / "forbid-bypass.mcpp", "-f", "json").stdout)
    assert {d["code"] for d in data["findings"]} >= {"forbid-bypass"}
    _check_sarif(json.loads(run("lint", FIX / "forbid-bypass.mcpp", "-f", "sarif").stdout), {"forbid-bypass"})
    r = run("lint", FIX / "forbid-bypass.mcpp", "--disable", "forbid-bypass")
    assert r.exit_code == 0
    r = run("lint", FIX / "dead-permit.mcpp", "--only", "redundant-rule", "-f", "json")
    assert json.loads(r.stdout)["findings"] == []
    assert run("lint", FIX / "dead-permit.mcpp", "--only", "nope").exit_code == 2
    assert run("lint", FIX / "dead-permit.mcpp", "--format", "xml").exit_code == 2


def test_diff_fail_on(tmp_path):
    old = ROOT / "examples" / "refunds.mcpp"
    new = tmp_path / "refunds.mcpp"
    new.write_text(old.read_text().replace("amount <= 1000", "amount <= 2000"))
    r = run("diff", old, new)
    assert r.exit_code == 0 and "refund_payment: looser" in r.stdout and "newly allowed" in r.stdout
    assert run("diff", old, new, "--fail-on", "looser").exit_code == 1
    assert run("diff", old, new, "--fail-on", "stricter").exit_code == 0
    assert run("diff", new, old, "--fail-on", "stricter").exit_code == 1
    assert run("diff", old, new, "--fail-on", "any").exit_code == 1
    assert run("diff", old, ROOT / "examples" / "refunds.json", "--fail-on", "any").exit_code == 0
    data = json.loads(run("diff", old, new, "-f", "json").stdout)
    refund = next(t for t in data["tools"] if t["tool"] == "refund_payment")
    assert refund["status"] == "looser" and refund["looser"]["new"]["decision"] == "allow"
    _check_sarif(json.loads(run("diff", old, new, "-f", "sarif").stdout), {"diff-looser"})
    assert run("diff", old, new, "--fail-on", "sometimes").exit_code == 2


def test_missing_file_exits_2_without_traceback():
    p = subprocess.run([sys.executable, "-m", "mcpp", "verify", "/nonexistent.mcpp"], capture_output=True, text=True)
    assert p.returncode == 2 and "Traceback" not in p.stderr and "no such file" in p.stderr
