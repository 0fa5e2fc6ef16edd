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


@pytest.mark.parametrize("schema, verify_rc, says", [
    # a 401-digit integer bound: `math.isfinite` overflowed converting it (hostile review 41,
    # H41-8: `verify` exit 3, the gateway refused the policy); an int is always finite
    ({"type": "object", "properties": {"n": {"type": "integer", "maximum": 10 ** 400}}, "required": ["n"]}, 1, "FAIL"),
    ({"type": "object", "properties": {"n": {"enum": [10 ** 400, 1]}}, "required": ["n"]}, 1, "FAIL"),
    # a pointer segment with a non-ASCII digit (H41-10): the reference does not resolve, so
    # the gateway refuses every call reaching it; no internal error on either side
    ({"type": "object", "allOf": [{"type": "object"}], "properties": {"a": {"$ref": "#/allOf/\u00b2"}}, "required": ["a"]},
     1, "UNKNOWN"),
])
def test_odd_numbers_and_pointers_are_read_not_crashed_on(tmp_path, schema, verify_rc, says):
    (tmp_path / "tools.json").write_text(json.dumps({"tools": [{"name": "t", "inputSchema": schema}]}))
    (tmp_path / "p.mcpp").write_text('@catalog("tools.json") default deny;\npermit (principal, action == Action::"t", resource);\n'
                                     'assert deny (principal, action == Action::"t", resource);\n')
    for cmd in ("check", "lint"):
        r = mcpp(tmp_path, cmd, "p.mcpp")
        assert r.returncode in (0, 1) and "internal error" not in r.stdout + r.stderr, (cmd, r.stdout + r.stderr)
    r = mcpp(tmp_path, "verify", "p.mcpp")
    assert r.returncode == verify_rc and says in r.stdout and "internal error" not in r.stdout + r.stderr, r.stdout + r.stderr
