"""Invalid test files exit 1 with `file:line:col: error: <key path>: …`, one line per
problem, never a traceback; test files that cannot be read, or paths with none, exit 2."""

import pytest

from mcpp.policytest.cases import parse_test_file, TestFileError

from .helpers import mcpp, pair

POLICY = 'permit (principal, action == Action::"t", resource) when { context.input.n <= 5 };\n'

# (test file text, the diagnostics expected: "line:col: key path: message" fragments)
BAD = [
    ('[[case]]\nname = "x"\ntool = \n', ["3:8: not valid TOML: Invalid value"]),
    ('[[case]]\nname = "x"\ntool = "t"\ndecison = "allow"\n',
     ["4:1: case[0].decison: unknown key 'decison' (did you mean 'decision'?)"]),
    ('[[case]]\nname = "x"\ntool = "t"\ndecision = "permit"\n', ['4:1: case[0].decision: expected "allow", "deny" or "approval"']),
    ('[[case]]\nname = "x"\ntool = "t"\n', ['1:1: case[0].decision: required: "allow", "deny" or "approval"']),
    ('[[case]]\nname = "x"\ndecision = "deny"\n', ["1:1: case[0].tool: required"]),
    ('[[case]]\ntool = "t"\ndecision = "deny"\n', ["1:1: case[0].name: required"]),
    ('[[case]]\nname = "x"\ntool = "t"\ngrant = 5\ndecision = "deny"\n',
     ["4:1: case[0].grant: expected a grant id or a table"]),
    ('[[case]]\nname = "x"\ntool = "t"\ngrant = { id = "g", group = ["a"] }\ndecision = "deny"\n',
     ["4:1: case[0].grant.group: unknown key 'group' (did you mean 'groups'?)"]),
    ('[[case]]\nname = "x"\ntool = "t"\ntime = 2026-01-01T00:00:00\ndecision = "deny"\n',
     ["4:1: case[0].time: give the time with an offset"]),
    ('[[case]]\nname = "x"\ntool = "t"\narguments = { when = 2026-01-01 }\ndecision = "deny"\n',
     ["4:1: case[0].arguments.when: a TOML date is not a JSON value"]),
    ('[[case]]\nname = "x"\ntool = "t"\narguments = { n = nan }\ndecision = "deny"\n',
     ["4:1: case[0].arguments.n: not a JSON number"]),
    ('[[case]]\nname = "x"\ntool = "t"\narguments = { n = 1 }\narguments_json = "{}"\ndecision = "deny"\n',
     ["5:1: case[0].arguments_json: give `arguments` or `arguments_json`, not both"]),
    ('[[case]]\nname = "x"\ntool = "t"\narguments_json = "[1]"\ndecision = "deny"\n',
     ["4:1: case[0].arguments_json: the arguments of a tools/call are a JSON object"]),
    ('[[case]]\nname = "x"\ntool = "t"\narguments_json = "{nope"\ndecision = "deny"\n',
     ["4:1: case[0].arguments_json: not JSON"]),
    ('[[case]]\nname = "x"\ntool = ""\ndecision = "deny"\n', ["3:1: case[0].tool: a tool name is 1 to 128 characters"]),
    ('[[case]]\nname = "x"\ntool = "%s"\ndecision = "deny"\n' % ("t" * 129),
     ["3:1: case[0].tool: a tool name is 1 to 128 characters (this one has 129)"]),
    # (hostile22 F2: what the gateway cannot read, at any depth: only the top level was checked)
    ('[[case]]\nname = "x"\ntool = "t"\narguments_json = \'{"o": {"n": NaN}}\'\ndecision = "deny"\n',
     ["4:1: case[0].arguments_json.o.n: not a JSON number"]),
    ('[[case]]\nname = "x"\ntool = "t"\narguments_json = \'{"o": [1, -Infinity]}\'\ndecision = "deny"\n',
     ["4:1: case[0].arguments_json.o[1]: not a JSON number"]),
    ('[[case]]\nname = "x"\ntool = "t"\narguments_json = \'{"note": "\\ud800"}\'\ndecision = "deny"\n',
     ["4:1: case[0].arguments_json.note: not valid Unicode text (a lone surrogate)"]),
    ('[[case]]\nname = "x"\ntool = "t"\narguments_json = \'{"\\udfff": 1}\'\ndecision = "deny"\n',
     ["4:1: case[0].arguments_json."]),
    # (hostile24 F2, F5: nesting past the gateway's bound, without a catalog too; past what TOML
    # and JSON read at all: an error, never a crash)
    ('[[case]]\nname = "x"\ntool = "t"\narguments_json = \'%s\'\ndecision = "deny"\n' % ('{"a":' * 64 + "{}" + "}" * 64),
     ["4:1: case[0].arguments_json: arguments may nest at most 64 levels of objects and arrays (at /a/a/a"]),
    ('[[case]]\nname = "x"\ntool = "t"\narguments = %s\ndecision = "deny"\n' % ("{ a = " * 64 + "{}" + " }" * 64),
     ["4:1: case[0].arguments: arguments may nest at most 64 levels"]),
    ('[[case]]\nname = "x"\ntool = "t"\narguments_json = \'%s\'\ndecision = "deny"\n' % ("[" * 5000 + "]" * 5000),
     ["4:1: case[0].arguments_json: not JSON that can be read: nested too deeply"]),
    ('[[case]]\nname = "x"\ntool = "t"\narguments = %s\ndecision = "deny"\n' % ("{ a = " * 3000 + "{}" + " }" * 3000),
     ["1:1: not valid TOML here: nested too deeply to read"]),
    ('[[case]]\nname = "x"\ntool = "t"\ndecision = "deny"\n\n[[case]]\nname = "x"\ntool = "t"\ndecision = "deny"\n',
     ["7:1: case[1].name: a second case named 'x' (the first is case[0])"]),
    ('[[case]]\nname = "x"\ntool = "t"\ndecision = "deny"\n[[case.calls]]\ndecision = "deny"\n',
     ["4:1: case[0].decision: a case with `calls` states what each call expects"]),
    ('[[case]]\nname = "x"\ntool = "t"\n[[case.calls]]\nrepeat = 0\ndecision = "deny"\n',
     ["5:1: case[0].calls[0].repeat: Input should be greater than or equal to 1"]),
    ('[[case]]\nname = "x"\n[[case.calls]]\ndecision = "deny"\n', ["3:1: case[0].calls[0].tool: which tool"]),
    ('[[case]]\nname = "x"\ntool = "t"\n[[case.calls]]\nrepeat = 2\n',
     ['4:1: case[0].calls[0].decision: required: "allow", "deny" or "approval"']),
    ('policies = []\n', ["1:1: policies: name at least one policy file"]),
    ('polices = ["p.mcpp"]\n', ["1:1: polices: unknown key 'polices' (did you mean 'policies'?)"]),
    ('[[case]]\nname = "a"\ntool = "t"\ndecision = "deny"\n[[case]]\nname = "b"\ntool = 1\ndecision = "no"\n',
     ["7:1: case[1].tool: expected a string", '8:1: case[1].decision: expected "allow", "deny" or "approval"']),
]


@pytest.mark.parametrize("text,expected", BAD)
def test_invalid_test_files_name_the_key_and_its_line(tmp_path, text, expected):
    with pytest.raises(TestFileError) as e:
        parse_test_file(text, tmp_path / "p.test.toml")
    rendered = [f"{d.span.line}:{d.span.col}: {d.message}" for d in e.value.diagnostics]
    assert len(rendered) == len(expected), rendered
    for got, want in zip(rendered, expected):
        assert got.startswith(want), (got, want)


def test_the_cli_exits_1_and_prints_file_line_col(tmp_path):
    policy = pair(tmp_path, POLICY, BAD[1][0])
    p = mcpp("test", policy)
    assert p.returncode == 1  # an invalid test file is input with errors
    assert f"{tmp_path / 'p.test.toml'}:4:1: error: case[0].decison: unknown key" in p.stderr
    assert "  decison = \"allow\"\n  ^" in p.stderr  # the line, underlined


def test_unreadable_inputs_exit_2(tmp_path):
    (tmp_path / "p.test.toml").write_bytes(b"\xff\xfe[[case]]")
    p = mcpp("test", tmp_path / "p.test.toml")
    assert p.returncode == 2 and "not UTF-8 text" in p.stderr
    assert mcpp("test", tmp_path / "missing.mcpp").returncode == 2
    (tmp_path / "lonely.mcpp").write_text(POLICY)
    p = mcpp("test", tmp_path / "lonely.mcpp")
    assert p.returncode == 2 and "no test file: expected lonely.test.toml beside the policy" in p.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    p = mcpp("test", empty)
    assert p.returncode == 2 and "no *.test.toml files under this directory" in p.stderr


def test_a_broken_policy_exits_1_with_its_diagnostics(tmp_path):
    pair(tmp_path, 'permit (principal, action == Action::"t", resource) when { context.input.n <= };\n',
         '[[case]]\nname = "x"\ntool = "t"\ndecision = "deny"\n')
    p = mcpp("test", tmp_path)
    assert p.returncode == 1 and f"{tmp_path / 'p.mcpp'}:1:" in p.stderr and "error" in p.stderr


def test_a_test_file_that_names_another_policy(tmp_path):
    pair(tmp_path, POLICY, 'policies = ["other.mcpp"]\n[[case]]\nname = "x"\ntool = "t"\ndecision = "deny"\n')
    (tmp_path / "other.mcpp").write_text(POLICY)
    p = mcpp("test", tmp_path / "p.mcpp")
    assert p.returncode == 2 and "this test file does not test" in p.stderr
    assert mcpp("test", tmp_path / "p.test.toml").returncode == 0  # it tests other.mcpp, and passes


def test_arguments_json_carries_null(tmp_path):
    tf = parse_test_file('[[case]]\nname = "x"\ntool = "t"\narguments_json = \'{"a": null}\'\ndecision = "deny"\n',
                         tmp_path / "p.test.toml")
    assert tf.cases[0].steps[0].arguments == {"a": None}
