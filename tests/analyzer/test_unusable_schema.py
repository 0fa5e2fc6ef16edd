"""A tool whose input schema the gateway cannot use (a pattern RE2 cannot run) has every
call refused at the gateway. `mcpp lint` and `mcpp test --suggest` raised an internal error
on such a catalog (hostile review 18, F6); `mcpp check` said nothing. Now every command
treats the tool as the gateway does: no call to it reaches the policy."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SCHEMA = {"type": "object", "properties": {"path": {"type": "string", "pattern": "^(?!/etc).*"}}}
POLICY = ('@catalog("tools.json")\ndefault deny;\npermit (principal, action == Action::"read_file", resource);\n'
          'permit (principal, action == Action::"list_dir", resource);\n'
          '@id("no-etc") assert deny (principal, action == Action::"read_file", resource);\n')


@pytest.fixture
def project(tmp_path):
    (tmp_path / "tools.json").write_text(json.dumps({"tools": [
        {"name": "read_file", "inputSchema": SCHEMA},
        {"name": "list_dir", "inputSchema": {"type": "object", "properties": {"dir": {"type": "string"}}}}]}))
    (tmp_path / "p.mcpp").write_text(POLICY)
    return tmp_path


def mcpp(cwd, *args):
    return subprocess.run([sys.executable, "-m", "mcpp", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_lint_says_why_every_call_is_refused(project):
    r = mcpp(project, "lint", "p.mcpp")
    assert r.returncode == 0 and "internal error" not in r.stderr, r.stdout + r.stderr
    assert "p.mcpp:3:1: warning: the gateway refuses every call to read_file: its input schema cannot be used" in r.stdout
    assert "cannot be run in linear time" in r.stdout and "docs/lints/unusable-schema.md" in r.stdout
    assert "list_dir" not in r.stdout  # a usable schema: nothing to say


def test_verify_proves_what_the_gateway_enforces_and_suggest_proposes_no_refused_call(project):
    r = mcpp(project, "verify", "p.mcpp")
    assert r.returncode == 0 and "1 passed" in r.stdout, r.stdout + r.stderr  # no call to read_file is ever allowed
    r = mcpp(project, "test", "--suggest", "p.mcpp")
    assert r.returncode == 0 and "internal error" not in r.stderr, r.stdout + r.stderr
    assert 'tool = "read_file"' not in r.stdout and 'tool = "list_dir"' in r.stdout


def test_eval_refuses_as_the_gateway_refuses(project):
    r = mcpp(project, "eval", "p.mcpp", "--call", json.dumps({"name": "read_file", "arguments": {"path": "/etc/shadow"}}))
    d = json.loads(r.stdout)
    assert (d["decision"], d["rule"]) == ("deny", "/tools/read_file/schema"), d
    assert "cannot be checked" in d["message"]
