"""`mcpp verify | lint | diff`: exit codes, formats, and input errors reported like `mcpp check`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
    assert data["summary"] == {"passed": 1, "failed": 1, "unknown": 0, "blocking": 0, "bypassable_allowed": 0}
    assert f["typed"] is None and f["findings"] == []
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
    obj = {"type": "object", "properties": {}}
    catalog.write_text(json.dumps({"tools": [{"name": "read", "inputSchema": obj}, {"name": "write", "inputSchema": obj}]}))
    for flag in ("--catalog", "--tools"):  # --tools: the old name, the same files
        r = run("verify", g, flag, catalog)
        assert r.exit_code == 1 and "unknown tool 'raed'" in r.stderr and "did you mean 'read'" in r.stderr
    names = tmp_path / "names.json"  # the old `--tools` list of names is no catalog: nothing to type calls by
    names.write_text('["read", "write"]')
    assert run("verify", g, "--tools", names).exit_code == 2


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
    (tmp_path / "catalogs").mkdir()  # the copy names its catalog (`@catalog`) beside it, as the original
    shutil.copy(ROOT / "examples" / "catalogs" / "refunds.json", tmp_path / "catalogs" / "refunds.json")
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


# ---- the issue's reproductions, through the commands (issue 10) ---------------------------------


REFUND_TOOLS = {"tools": [
    {"name": "refund_payment", "inputSchema": {"type": "object", "properties": {
        "charge_id": {"type": "string"}, "amount": {"type": "number"}}, "required": ["charge_id", "amount"]}},
    {"name": "get_charge", "inputSchema": {"type": "object", "properties": {"charge_id": {"type": "string"}},
                                           "required": ["charge_id"]}},
]}
REFUND = """default deny;
permit (principal, action in [Action::"refund_payment", Action::"get_charge"], resource);
@id("big-refunds")
forbid (principal, action == Action::"refund_payment", resource)
when { context.input.amount > 1000 };
@id("no-big")
assert deny (principal, action == Action::"refund_payment", resource) when { context.input.amount > 1000 };
"""
TYPED_LINE = "typed by catalog {}: calls assumed to conform to each tool's inputSchema, which the gateway enforces"


@pytest.fixture
def refund(tmp_path):
    (tmp_path / "tools.json").write_text(json.dumps(REFUND_TOOLS))
    (tmp_path / "refund.mcpp").write_text(REFUND)
    (tmp_path / "annotated.mcpp").write_text('@catalog("tools.json")\n' + REFUND)
    return tmp_path


def test_refund_untyped_verify_fails_on_the_bypass(refund):
    r = run("verify", refund / "refund.mcpp")
    assert r.exit_code == 1 and "PASS    no-big" in r.stdout  # the assert is proved, the bypass still fails verify
    assert "forbid-bypass" in r.stdout or "bypassed with a mistyped argument" in r.stdout
    assert '"amount": "1500"' in r.stdout and "1 bypassable rule" in r.stdout
    r = run("verify", refund / "refund.mcpp", "--allow-bypassable")
    assert r.exit_code == 0 and "warning: forbid 'big-refunds'" in r.stdout
    data = json.loads(run("verify", refund / "refund.mcpp", "-f", "json").stdout)
    assert data["summary"]["blocking"] == 1 and data["files"][0]["findings"][0]["code"] == "forbid-bypass"


@pytest.mark.parametrize("how", ["option", "annotation"])
def test_refund_typed_by_the_catalog_passes_and_says_so(refund, how):
    args = [refund / "refund.mcpp", "--catalog", refund / "tools.json"] if how == "option" else [refund / "annotated.mcpp"]
    name = str(refund / "tools.json")
    r = run("verify", *args)
    assert r.exit_code == 0, r.output
    assert TYPED_LINE.format(name) in r.stdout and "1 passed, 0 failed, 0 unknown" in r.stdout
    r = run("lint", *args, "-f", "json")
    data = json.loads(r.stdout)
    assert r.exit_code == 0 and not [d for d in data["findings"] if d["code"] == "forbid-bypass"]
    (typed,) = data["typed"].values()
    assert typed["catalog"] == name and typed["tools"] == 2
    r = run("diff", *args[:1], *args[:1], *args[1:])
    assert r.exit_code == 0 and r.stdout.startswith(TYPED_LINE.format(name))
    assert "every tool neither version names" not in r.stdout  # the closed world has no stand-in


@pytest.mark.parametrize("policy, needle, where", [
    # an assert about a tool the catalog does not list: an error, never PASS
    ('assert deny (principal, action == Action::"delete_repo", resource);\n', "unknown tool 'delete_repo'", ":9:35:"),
    # a condition on an argument the schema does not declare: an error, with the suggestion
    ('forbid (principal, action == Action::"refund_payment", resource) when { context.input.amout > 5 };\n',
     "did you mean 'amount'?", ":9:73:"),
    # a limit about a tool the catalog does not list
    ('limit "n" (principal, action == Action::"refnd_payment", resource) max 3 per day;\n',
     "did you mean 'refund_payment'?", ":9:33:"),
])
def test_catalog_errors_in_check_and_verify(refund, policy, needle, where):
    f = refund / "bad.mcpp"
    f.write_text('@catalog("tools.json")\n' + REFUND + policy)
    for cmd in ("check", "verify", "lint"):
        r = run(cmd, f)
        assert r.exit_code == 1, (cmd, r.output)
        assert needle in r.stderr and f"{f}{where} error:" in r.stderr, (cmd, r.stderr)
        assert "PASS" not in r.stdout
