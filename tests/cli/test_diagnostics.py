"""What the CLI prints around the language's diagnostics: every error of a file in source
order whichever phase found it, suggestions only for typos, the right command named when
the wrong one is used, each message's prefix once, and a one-line summary on success."""

from __future__ import annotations

import json
import re

import pytest

from .run import ROOT, mcpp
from .test_exit_codes import CATALOG_TOOLS, GOOD, _catalog


def _error_positions(stderr: str, name: str) -> list[tuple[int, int]]:
    return [(int(m.group(1)), int(m.group(2))) for m in re.finditer(rf"^{re.escape(name)}:(\d+):(\d+): (?:error|warning): ",
                                                                  stderr, re.M)]


def test_errors_of_a_file_are_sorted_by_position_whatever_phase_found_them(tmp_path):
    catalog = tmp_path / "tools.json"
    catalog.write_text(_catalog(CATALOG_TOOLS + [{"name": "delete_pod", "inputSchema": {"type": "object"}}]))
    f = tmp_path / "p.mcpp"
    f.write_text(
        '@catalog("tools.json")\ndefault deny;\n'
        'permit (principal, action == Action::"read", resource) when { context.nope == 1 };\n'  # validation
        'permit (principal, action == Action::"raed", resource);\n'  # catalog
        'permit (principal, action == Action::"write", resource) when { context.input.x == };\n'  # syntax
        'permit (principal, action == Action::"read", resource) when { context.bad == 1 };\n'  # validation
    )
    p = mcpp("check", f)
    assert p.returncode == 1
    positions = _error_positions(p.stderr, str(f))
    assert [line for line, _ in positions] == [3, 4, 5, 6], p.stderr
    assert positions == sorted(positions)
    assert p.stderr.rstrip().endswith("checked 1 file: 4 errors")


@pytest.mark.parametrize("typed, suggestion", [("delete_repo", None), ("delete_pdo", "delete_pod"), ("raed", "read"), ("list_nodes", None)])
def test_check_suggests_only_for_typos(tmp_path, typed, suggestion):
    catalog = tmp_path / "tools.json"
    catalog.write_text(_catalog([{"name": "delete_pod", "inputSchema": {"type": "object"}},
                                 {"name": "read", "inputSchema": {"type": "object"}}]))
    f = tmp_path / "p.mcpp"
    f.write_text(f'@catalog("tools.json")\ndefault deny;\npermit (principal, action == Action::"{typed}", resource);\n')
    p = mcpp("check", f)
    assert p.returncode == 1 and f"unknown tool '{typed}'" in p.stderr
    assert ("did you mean" in p.stderr) == (suggestion is not None)
    if suggestion:
        assert f"did you mean '{suggestion}'?" in p.stderr


def test_decompile_of_mcpp_source_names_the_command_meant(tmp_path):
    f = tmp_path / "policy.mcpp"
    f.write_text(GOOD)
    p = mcpp("decompile", f)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr == (f"mcpp: error: {f}: this is a .mcpp file; did you mean `mcpp compile {f}`? "
                        "(decompile reads the JSON form that compile writes)\n")
    txt = tmp_path / "policy.txt"  # mcpp source under another name: recognised by parsing
    txt.write_text(GOOD)
    assert "did you mean `mcpp compile" in mcpp("decompile", txt).stderr
    garbage = tmp_path / "garbage.txt"  # neither: the JSON error, exit 1
    garbage.write_text("hello there\n")
    p = mcpp("decompile", garbage)
    assert p.returncode == 1 and "invalid JSON" in p.stderr and "did you mean" not in p.stderr


POLICY = str(ROOT / "examples" / "refunds.mcpp")


@pytest.mark.parametrize("call, message", [
    ("{nope", "--call: invalid JSON: Expecting property name enclosed in double quotes (line 1, column 2)"),
    ("[1]", '--call: a call must be a JSON object like {"name": …, "arguments": {…}}'),
    ('{"arguments": {}}', '--call: "name" (the tool) must be a string'),
    ('{"name": "x", "arguments": [1]}', '--call: "arguments" must be a JSON object of the tool\'s arguments'),
    ('{"name": "x", "grant": 5}', '--call: "grant" must be a grant id or {"id", "label", "groups"}'),
    ('{"name": "x", "server": 5}', '--call: "server" must be a string'),
])
def test_call_errors_name_the_flag_once(call, message):
    p = mcpp("eval", POLICY, "--call", call)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr == f"mcpp: error: {message}\n"


def test_calls_errors_name_the_file_and_line_once_and_decide_nothing(tmp_path):
    f = tmp_path / "calls.jsonl"
    f.write_text('{"name": "refund_payment", "arguments": {"charge_id": "ch_12345678", "amount": 5}}\n\n{"name": 3}\n')
    p = mcpp("eval", POLICY, "--calls", f)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr == f'mcpp: error: {f}:3: "name" (the tool) must be a string\n'


def _summary_cases(tmp_path):
    good = tmp_path / "good.mcpp"
    good.write_text(GOOD)
    other = tmp_path / "other.mcpp"
    other.write_text("default deny;\n")
    ugly = tmp_path / "ugly.mcpp"
    ugly.write_text("default   deny ;\n")
    warn = tmp_path / "warn.mcpp"
    (tmp_path / "tools.json").write_text(_catalog(CATALOG_TOOLS))
    warn.write_text('@catalog("tools.json")\ndefault deny;\nhide Action::"nope";\n')
    out = tmp_path / "good.json"
    return [
        (("check", good, other), 0, "checked 2 files: no problems"),
        (("check", warn), 0, "checked 1 file: 1 warning"),
        (("fmt", "--check", good, other), 0, "2 files already formatted"),
        (("fmt", "--check", good, ugly), 1, "1 of 2 files would be reformatted"),
        (("fmt", good, ugly), 0, "reformatted 1 of 2 files"),
        (("compile", good, "-o", out), 0, f"wrote {out}: 2 tools, proved to decide every call as the source does"),
        (("compile", good, "-o", out, "--no-validate"), 0, f"wrote {out}: 2 tools, not validated (--no-validate)"),
        (("decompile", out, "-o", tmp_path / "back.mcpp"), 0, f"wrote {tmp_path / 'back.mcpp'}"),
    ]


def test_success_prints_one_summary_line_to_stderr_and_q_silences_it(tmp_path):
    for args, code, summary in _summary_cases(tmp_path):
        p = mcpp(*args)
        assert p.returncode == code, (args, p.stderr)
        lines = p.stderr.splitlines()
        assert lines[-1] == summary, (args, p.stderr)
        quiet = mcpp(*args, "-q")
        assert quiet.returncode == code
        assert quiet.stderr.splitlines() == lines[:-1], (args, quiet.stderr)  # the diagnostics stay
    # stdout stays the output: compiling to stdout prints the JSON and no summary
    p = mcpp("compile", tmp_path / "good.mcpp")
    assert json.loads(p.stdout)["version"] and p.stderr == ""
    p = mcpp("fmt", "-", stdin="default   deny ;")
    assert p.stdout == "default deny;\n" and p.stderr == ""


def test_fmt_changes_nothing_when_any_input_is_bad(tmp_path):
    ugly = tmp_path / "ugly.mcpp"
    broken = tmp_path / "broken.mcpp"
    broken.write_text("permit (\n")
    for bad, code in ((broken, 1), (tmp_path / "missing.mcpp", 2)):
        ugly.write_text("default   deny ;\n")
        p = mcpp("fmt", ugly, bad)
        assert p.returncode == code and str(bad) in p.stderr
        assert ugly.read_text() == "default   deny ;\n"


@pytest.mark.parametrize("name, text", [
    ("policy.cedar", 'permit (principal, action == Action::"echo", resource);\n'),
    ("P.CEDAR", 'permit (principal, action == Action::"echo", resource);\n'),
    ("mcpp-text.cedar", "default deny;\n"),  # (not Cedar either: still no JSON form)
    ("ext.cedar", 'permit (principal, action, resource) when { context.input.a.lessThan(decimal("1.0")) };\n'),
])
def test_decompile_of_a_cedar_file_says_what_it_reads(tmp_path, name, text):
    f = tmp_path / name
    f.write_text(text)
    p = mcpp("decompile", f)
    assert p.returncode == 2 and p.stderr == (
        f"mcpp: error: {f}: a .cedar file is Cedar policy text; decompile reads the JSON form that `mcpp compile` writes\n")


@pytest.mark.parametrize("text, code, needle", [
    (GOOD, 0, "checked 1 file: no problems"),
    ("permit (principal, action resource);\n", 1, "<stdin>:1:27: error:"),
    ('{"version": "1", "default": "deny", "tools": {}}', 0, "checked 1 file"),  # the JSON form, by its text
])
def test_check_reads_stdin_for_a_dash(text, code, needle):
    p = mcpp("check", "-", stdin=text)
    assert p.returncode == code and needle in p.stderr, p.stderr


def test_a_directory_is_not_a_file_whatever_it_was_meant_to_be(tmp_path):
    for args in (["check", tmp_path], ["eval", ROOT / "examples" / "refunds.mcpp", "--calls", tmp_path]):
        p = mcpp(*args)
        assert p.returncode == 2 and f"{tmp_path}: error: is a directory, not a file" in p.stderr, p.stderr


def test_a_file_named_dash_is_a_file_and_stdin_is_read_once(tmp_path):
    (tmp_path / "-").write_text("permit (principal, action resource);\n")
    p = mcpp("check", "./-", stdin=GOOD, cwd=tmp_path)
    assert p.returncode == 1 and "./-:1:27: error:" in p.stderr
    p = mcpp("check", "-", "-", stdin=GOOD)
    assert p.returncode == 2 and "can be given only once" in p.stderr
