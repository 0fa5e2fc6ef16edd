"""Inputs a hostile review (hostile13) found handled badly: a catalog the policy names
itself that `compile` skipped, a huge `--deadline` (an internal error), an infinite
`--now`, and undecided tool cases counted as changed by `diff`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import mcpp

CATALOG = {"tools": [{"name": "refund", "inputSchema": {"type": "object", "properties": {"amount": {"type": "number"}}}}]}


def run(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mcpp", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("head, body", [
    ('@catalog("nope.json")\n', 'permit (principal, action == Action::"refund", resource);\n'),  # missing
    ('@catalog("tools.json")\n', 'permit (principal, action == Action::"refnd", resource);\n'),  # a tool it lacks
])
@pytest.mark.parametrize("target", [[], ["--target", "cedar"]])
def test_compile_refuses_what_the_named_catalog_refuses(tmp_path, head, body, target):
    (tmp_path / "tools.json").write_text(json.dumps(CATALOG))
    (tmp_path / "p.mcpp").write_text(head + "default deny;\n" + body)
    r = run("compile", *target, "p.mcpp", "-o", "out", cwd=tmp_path)
    assert r.returncode == 1 and "against the catalog, nothing written" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()
    (tmp_path / "p.mcpp").write_text('@catalog("tools.json")\ndefault deny;\npermit (principal, action == Action::"refund", resource);\n')
    assert run("compile", *target, "p.mcpp", "-o", "out", cwd=tmp_path).returncode == 0


@pytest.mark.parametrize("value", ["1e308", "1e400", "-1", "nan", "inf"])
def test_a_deadline_out_of_range_is_a_usage_error(tmp_path, value):
    (tmp_path / "p.mcpp").write_text('permit (principal, action, resource);\nassert allow (principal, action == Action::"t", resource);\n')
    r = run("verify", "p.mcpp", "--deadline", value, cwd=tmp_path)
    assert r.returncode == 2 and "--deadline: a deadline is a number of seconds from 0 to" in r.stderr


@pytest.mark.parametrize("value, error", [(10**400, ValueError), (1e308, ValueError), (True, TypeError), ("5", TypeError)])
def test_the_api_deadline_refuses_what_it_cannot_count(value, error):
    with pytest.raises(error):
        mcpp.Deadline(value)


def test_eval_refuses_a_now_no_clock_shows(tmp_path):
    (tmp_path / "p.mcpp").write_text("permit (principal, action, resource);\n")
    for now in ("1e400", "inf", "nan"):
        r = run("eval", "p.mcpp", "--call", '{"name": "t", "arguments": {}}', "--now", now, cwd=tmp_path)
        assert r.returncode == 2 and "--now: not a time" in r.stderr


def test_diff_counts_undecided_tool_cases_apart_from_changed_ones(tmp_path):
    (tmp_path / "old.mcpp").write_text('permit (principal, action == Action::"a", resource) when { context.input.n < 5 };\n')
    (tmp_path / "new.mcpp").write_text('permit (principal, action == Action::"a", resource) when { context.input.n < 6 };\n')
    r = run("diff", "old.mcpp", "new.mcpp", "--deadline", "0", cwd=tmp_path)
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith("0 of ") and last.endswith(" undecided"), r.stdout


@pytest.mark.parametrize("command", [["verify", "p.mcpp"], ["lint", "p.mcpp"], ["diff", "p.mcpp", "p.mcpp"],
                                     ["test", "--suggest", "p.mcpp"]])
@pytest.mark.parametrize("value", ["0", "-5"])
def test_a_solver_timeout_must_be_a_positive_number_of_milliseconds(tmp_path, command, value):
    # (Z3 reads 0 as "no timeout": a negative or zero one would have made every query unbounded)
    (tmp_path / "p.mcpp").write_text("permit (principal, action, resource);\n")
    r = run(*command, "--timeout", value, cwd=tmp_path)
    assert r.returncode == 2 and "--timeout" in r.stderr
