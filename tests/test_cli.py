"""The CLI contract: outputs, exit codes, and no tracebacks on bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def mcpp(*args, stdin=None, cwd=None):
    p = subprocess.run(
        [sys.executable, "-m", "mcpp", *map(str, args)], input=stdin, capture_output=True, text=True, cwd=cwd or ROOT
    )
    assert "Traceback" not in p.stderr, p.stderr
    return p


def test_check_reports_every_error_with_file_line_col(tmp_path):
    f = tmp_path / "bad.mcpp"
    f.write_text(
        'permit (principal, action == Action::"a", resource) when { context.input.x == };\n'
        'permit (principal, action == Action::"b", resource) when { context.nope == 1 };\n'
    )
    p = mcpp("check", f)
    assert p.returncode == 1
    lines = [line for line in p.stderr.splitlines() if ": error: " in line]
    assert lines[0].startswith(f"{f}:1:") and lines[1].startswith(f"{f}:2:")
    assert "^" in p.stderr  # the offending span is underlined
    assert mcpp("check", *sorted(ROOT.glob("examples/*.mcpp"))).returncode == 0


def test_check_json_reports_pointers(tmp_path):
    f = tmp_path / "p.json"
    f.write_text('{"version": "1", "tools": {"t": {"require": [{"conditions": [{"path": "args.x", "op": "nope"}]}]}}}')
    p = mcpp("check", f)
    assert p.returncode == 1 and "/tools/t/require/0/conditions/0/op: unknown op 'nope'" in p.stderr


def test_fmt_check_and_rewrite(tmp_path):
    f = tmp_path / "p.mcpp"
    f.write_text("default   deny ;")
    assert mcpp("fmt", "--check", f).returncode == 1
    assert mcpp("fmt", f).returncode == 0
    assert f.read_text() == "default deny;\n"
    assert mcpp("fmt", "--check", f).returncode == 0
    assert mcpp("fmt", "-", stdin="hide Action::\"x\" ;").stdout == 'hide Action::"x";\n'


def test_compile_and_decompile(tmp_path):
    out = tmp_path / "k.json"
    assert mcpp("compile", "examples/kubernetes.mcpp", "-o", out).returncode == 0
    assert json.loads(out.read_text()) == json.loads((ROOT / "examples/kubernetes.json").read_text())
    p = mcpp("decompile", out)
    assert p.returncode == 0 and 'permit (principal, action == Action::"delete_pod", resource)' in p.stdout


def test_compile_refusal_names_rule(tmp_path):
    f = tmp_path / "p.mcpp"
    f.write_text('@id("either") permit (principal, action == Action::"t", resource) when { context.input.a == 1 || context.input.b == 1 };')
    p = mcpp("compile", f)
    assert p.returncode == 1 and "rule 'either'" in p.stderr and "mcpp serve" in p.stderr and p.stdout == ""


def test_eval_call_prints_one_decision():
    p = mcpp("eval", "examples/refunds.mcpp", "--call", '{"name": "refund_payment", "arguments": {"charge_id": "ch_12345678", "amount": 1500}}')
    assert p.returncode == 0
    d = json.loads(p.stdout)
    assert (d["decision"], d["rule"], d["message"]) == (
        "deny", "/tools/refund_payment/require/args.amount-lte", "Refund exceeds the $1000 policy limit.",
    )
    p = mcpp("eval", "examples/refunds.json", "--call", '{"name": "refund_payment", "arguments": {"charge_id": "ch_12345678", "amount": 10}}')
    assert json.loads(p.stdout)["decision"] == "allow"


def test_eval_calls_share_limit_counters(tmp_path):
    f = tmp_path / "calls.jsonl"
    pod = {"namespace": "dev", "name": "web-7d9f"}  # (both required by the example's catalog)
    lines = [{"name": "delete_pod", "arguments": pod}] * 6
    lines.append({"name": "delete_pod", "arguments": pod, "grant": "someone-else"})
    f.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    p = mcpp("eval", "examples/kubernetes.mcpp", "--calls", f, "--now", "2026-11-28T10:15:00Z")
    decisions = [json.loads(line) for line in p.stdout.splitlines()]
    assert [d["decision"] for d in decisions] == ["allow"] * 5 + ["deny", "allow"]
    assert decisions[5]["rule"] == "/tools/delete_pod/limits/delete_pod"
    assert "resets at 2026-11-28T11:00:00Z" in decisions[5]["message"]


@pytest.mark.parametrize(
    "args, needle, code",  # codes: the table in mcpp.console; tests/cli/test_exit_codes.py has every command
    [
        (["eval", "examples/refunds.mcpp", "--call", "{not json"], "--call: invalid JSON", 2),
        (["eval", "examples/refunds.mcpp", "--call", '{"arguments": {}}'], '"name"', 2),
        (["eval", "examples/refunds.mcpp"], "exactly one of", 2),
        (["eval", "missing.mcpp", "--call", '{"name": "x"}'], "no such file", 2),
        (["compile", "missing.mcpp"], "no such file", 2),
        (["eval", "examples/refunds.mcpp", "--call", '{"name": "x"}', "--now", "yesterday"], "--now", 2),
        (["decompile", "examples/refunds.mcpp"], "did you mean `mcpp compile examples/refunds.mcpp`?", 2),
    ],
)
def test_bad_input_is_a_clear_error(args, needle, code):
    p = mcpp(*args)
    assert p.returncode == code and needle in p.stderr, p.stderr
