"""Validation against a catalog: each check's code, span, severity and fix, on real catalogs."""

from __future__ import annotations

import json
import shutil

import pytest

from mcpp.catalog import Catalog, catalog_diagnostics, find_catalog_for, load_catalog, validate
from mcpp.lang.program import check_source

from .conftest import FIXTURES, run_mcpp

GITHUB = load_catalog(FIXTURES / "github.json")
FS = load_catalog(FIXTURES / "filesystem.json")
SLACK = load_catalog(FIXTURES / "slack.json")


def diags(src: str, catalog: Catalog):
    prog, base = check_source(src, "p.mcpp")
    assert [d for d in base if d.severity == "error"] == []
    return validate(prog, catalog)


def text_at(src: str, d) -> str:
    return src[d.span.start:d.span.end]


def apply_fix(src: str, d) -> str:
    edits = sorted(d.data["fix"]["edits"], key=lambda e: e["start"], reverse=True)
    for e in edits:
        src = src[:e["start"]] + e["text"] + src[e["end"]:]
    return src


@pytest.mark.parametrize("hidden, severity", [
    ("delete_everythng", "error"),  # a typo: the tool meant stays listed and callable
    ("drop_db", "warning"),  # no such tool and none like it: a hide in case it appears
])
def test_hide_of_a_tool_the_catalog_lacks(hidden, severity):
    cat = Catalog.from_tools([{"name": "delete_everything", "inputSchema": {"type": "object"}}])
    src = f'default allow;\nhide Action::"{hidden}";\n'
    ((code, sev),) = [(d.code, d.severity) for d in diags(src, cat)]
    assert (code, sev) == ("catalog-unknown-tool", severity)


def test_unknown_tool_with_did_you_mean_and_fix():
    src = 'default deny;\npermit (principal, action == Action::"create_isue", resource);\nhide Action::"drop_db";\n'
    ds = diags(src, GITHUB)
    assert [(d.code, d.severity, text_at(src, d)) for d in ds] == [
        ("catalog-unknown-tool", "error", 'Action::"create_isue"'),
        ("catalog-unknown-tool", "warning", 'Action::"drop_db"'),
    ]
    assert (ds[0].span.line, ds[0].span.col) == (2, 30)
    assert "did you mean 'create_issue'?" in ds[0].notes
    assert apply_fix(src, ds[0]).count('Action::"create_issue"') == 1


K8S = Catalog.from_tools([{"name": n, "inputSchema": {"type": "object"}} for n in
                         ("delete_pod", "list_pods", "get_pod_logs", "search_nodes", "create_issue", "echo")])


@pytest.mark.parametrize("typed, suggested", [
    ("delete_pdo", "delete_pod"), ("delet_pod", "delete_pod"), ("list_pod", "list_pods"),
    ("get_pod_log", "get_pod_logs"), ("craete_issue", "create_issue"), ("echoo", "echo"),
    # similar names that are other tools, not typos: no suggestion
    ("delete_repo", None), ("list_nodes", None), ("search_code", None), ("get_issue", None), ("update_issue", None),
])
def test_did_you_mean_is_offered_for_typos_only(typed, suggested):
    src = f'permit (principal, action == Action::"{typed}", resource);\n'
    (d,) = diags(src, K8S)
    assert d.code == "catalog-unknown-tool"
    notes = [n for n in d.notes if n.startswith("did you mean")]
    assert notes == ([f"did you mean {suggested!r}?"] if suggested else [])
    assert ("fix" in d.data) == (suggested is not None)


def test_unknown_argument_error_and_fix():
    src = ('permit (principal, action == Action::"create_issue", resource)\n'
           'when { context.input.reop like "acme/*" };\n')
    (d,) = diags(src, GITHUB)
    assert d.code == "catalog-unknown-argument" and d.severity == "error"  # the schema is closed
    assert d.message == "create_issue has no argument 'reop': the arguments allow no other keys"
    assert text_at(src, d) == "context.input.reop"
    assert "did you mean 'repo'?" in d.notes
    fixed = apply_fix(src, d)
    assert "context.input.repo like" in fixed and diags(fixed, GITHUB) == []


def test_unknown_argument_in_a_closed_schema_is_an_error():
    cat = Catalog.from_tools([{"name": "delete_pod", "inputSchema": {
        "type": "object", "additionalProperties": False, "required": ["namespace"],
        "properties": {"namespace": {"type": "string"}, "meta": {"$ref": "#/$defs/m"}},
        "$defs": {"m": {"type": "object", "properties": {"owner": {"type": "string"}}, "required": ["owner"],
                        "additionalProperties": False}}}}])
    src = ('forbid (principal, action == Action::"delete_pod", resource)\n'
           'when { context.input.namespase == "prod" || context.input has meta && context.input.meta.ownr == "x" };\n')
    ds = diags(src, cat)
    assert [(d.code, d.severity, text_at(src, d)) for d in ds] == [
        ("catalog-unknown-argument", "error", "context.input.namespase"),
        ("catalog-unknown-argument", "error", "context.input.meta.ownr"),  # followed through $ref
    ]
    assert "allow no other keys" in ds[0].message
    assert any("skipped: it never applies" in n for n in ds[0].notes)


def test_type_mismatches():
    src = ('permit (principal, action == Action::"get_issue", resource)\n'
           'when { context.input.issue_number == "42" && context.input.owner < 3 '
           '&& context.input.issue_number like "4*" && context.input.repo.matches("^a") '
           '&& context.input.owner.isEmpty() };\n')
    ds = diags(src, GITHUB)
    got = [(d.code, text_at(src, d)) for d in ds]
    assert got == [
        ("catalog-type-mismatch", '"42"'),
        ("catalog-type-mismatch", "context.input.owner < 3"),
        ("catalog-not-a-string", 'context.input.issue_number like "4*"'),
        ("catalog-type-mismatch", "context.input.owner.isEmpty()"),
    ]
    assert all(d.severity == "error" for d in ds)
    assert "never equals" in ds[0].message and ds[0].data["fix"]["edits"][0]["text"] == "42"
    assert "always errors" in ds[1].message


def test_regex_on_a_number_and_in_with_wrong_types():
    src = ('forbid (principal, action == Action::"slack_get_channel_history", resource)\n'
           'when { context.input has limit && context.input.limit.matches("^9") }\n'
           'when { context.input.channel_id in ["C1", 7] };\n')
    ds = diags(src, SLACK)
    assert [(d.code, text_at(src, d)) for d in ds] == [
        ("catalog-not-a-string", 'context.input.limit.matches("^9")'),
        ("catalog-type-mismatch", "7"),
    ]


def test_enum_mismatch_is_a_warning():
    src = ('permit (principal, action == Action::"merge_pull_request", resource)\n'
           'when { context.input has merge_method && context.input.merge_method == "fast-forward" };\n')
    (d,) = diags(src, GITHUB)
    assert d.code == "catalog-enum-mismatch" and d.severity == "warning"
    assert '"merge", "rebase", "squash"' in d.message


def test_unguarded_optional_in_forbid_is_an_error_with_a_fail_closed_fix():
    src = ('permit (principal, action == Action::"read_text_file", resource);\n'
           'forbid (principal, action == Action::"read_text_file", resource)\n'
           'when { context.input.head > 100 };\n')
    (d,) = diags(src, FS)
    assert d.code == "catalog-unguarded-optional" and d.severity == "error"
    assert (d.span.line, d.span.col) == (3, 8) and text_at(src, d) == "context.input.head"
    assert "fails open" in d.message
    fixed = apply_fix(src, d)
    assert 'when { !(context.input has head) || context.input.head > 100 }' in fixed
    assert diags(fixed, FS) == []
    from mcpp.lang.program import load_program
    from mcpp.runtime.engine import Engine, Grant

    g = Grant("g", "", frozenset())
    before, after = Engine(load_program(src)), Engine(load_program(fixed))
    assert before.decide("read_text_file", {"path": "/"}, g, "s").decision == "allow"  # fails open
    assert after.decide("read_text_file", {"path": "/"}, g, "s").decision == "deny"  # fails closed


def test_an_optional_argument_with_a_default_is_always_present():
    """`sortBy` is optional with `"default": "name"`: the gateway fills it in before the
    policy decides (catalog/defaults.py), so reading it without `has` cannot fail open."""
    from mcpp.catalog.defaults import fill

    src = ('permit (principal, action == Action::"list_directory_with_sizes", resource);\n'
           'forbid (principal, action == Action::"list_directory_with_sizes", resource)\n'
           'when { context.input.sortBy == "size" };\n')
    assert diags(src, FS) == []
    schema = FS.tools["list_directory_with_sizes"].input_schema
    assert fill(schema, {"path": "/"}) == {"path": "/", "sortBy": "name"}


def test_unguarded_optional_in_permit_is_a_warning_with_a_decision_preserving_fix():
    src = ('permit (principal, action == Action::"create_issue", resource)\n'
           'when { context.input.milestone < 10 || context.input.title == "x" };\n')
    (d,) = diags(src, GITHUB)
    assert d.code == "catalog-unguarded-optional" and d.severity == "warning" and "fails closed" in d.message
    fixed = apply_fix(src, d)
    assert "context.input has milestone && (context.input.milestone < 10 || " in fixed
    assert diags(fixed, GITHUB) == []


@pytest.mark.parametrize("cond", [
    "context.input has sortBy && context.input.sortBy == \"size\"",
    "!(context.input has sortBy) || context.input.sortBy == \"size\"",
    "if context.input has sortBy then context.input.sortBy == \"size\" else true",
])
def test_guards_are_recognised(cond):
    src = f'forbid (principal, action == Action::"list_directory_with_sizes", resource) when {{ {cond} }};\n'
    assert diags(src, FS) == []


def test_guard_in_an_earlier_clause_counts():
    src = ('forbid (principal, action == Action::"list_directory_with_sizes", resource)\n'
           'when { context.input has sortBy } when { context.input.sortBy == "size" };\n')
    assert diags(src, FS) == []


@pytest.mark.parametrize("schema, severity", [
    # typed calls: the gateway refuses an argument the tool does not declare (conformance.closed_world),
    # so a condition on one reads a key no forwarded call has
    ({"type": "object", "properties": {"repo": {"type": "string"}}}, "error"),
    ({"type": "object", "properties": {"repo": {"type": "string"}}, "additionalProperties": False}, "error"),
    # a schema that says other keys are welcome: the call may carry it, the server may ignore it
    ({"type": "object", "properties": {"repo": {"type": "string"}}, "additionalProperties": True}, "warning"),
])
def test_undeclared_key_is_an_error_unless_the_schema_lets_other_keys_through(schema, severity):
    cat = Catalog.from_tools([{"name": "t", "inputSchema": schema}])
    src = 'permit (principal, action == Action::"t", resource) when { context.input.rpo == "x" };\n'
    (d,) = diags(src, cat)
    assert (d.code, d.severity) == ("catalog-unknown-argument", severity) and "did you mean 'repo'?" in d.notes


@pytest.mark.parametrize("effect, severity", [("permit", "warning"), ("forbid", "error")])
def test_an_undeclared_nested_key_fails_open_in_a_forbid(effect, severity):
    """`opts` lets other keys through: a permit on `opts.forse` fails closed (a warning), a
    forbid on it applies only to callers who choose to send it (fail open: an error)."""
    cat = Catalog.from_tools([{"name": "t", "inputSchema": {"type": "object", "properties": {
        "opts": {"type": "object", "properties": {"force": {"type": "boolean"}}, "additionalProperties": True}}}}])
    src = f'{effect} (principal, action == Action::"t", resource) when {{ context.input.opts.forse == true }};\n'
    (d,) = [d for d in diags(src, cat) if d.code == "catalog-unknown-argument"]
    assert d.severity == severity and "did you mean 'opts.force'?" in d.notes


def test_a_rule_for_every_tool_only_needs_some_tool_to_have_the_argument():
    ok = 'forbid (principal, action, resource) when { context.input has path && context.input.path like "/etc/*" };\n'
    assert diags(ok, FS) == []
    bad = 'forbid (principal, action, resource) when { context.input has pth && context.input.pth like "/etc/*" };\n'
    assert [d.code for d in diags(bad, FS)] == ["catalog-unknown-argument"]


def test_examples_are_clean_against_their_catalog_fixture():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    cat = load_catalog(FIXTURES / "example-github.json")
    src = (root / "examples" / "github.mcpp").read_text()
    prog, _ = check_source(src, "github.mcpp")
    assert validate(prog, cat) == []


# -- finding the catalog and the CLI -------------------------------------------------------------

def test_no_catalog_changes_nothing(tmp_path):
    p = tmp_path / "p.mcpp"
    p.write_text('permit (principal, action == Action::"anything", resource) when { context.input.x == 1 };\n')
    prog, _ = check_source(p.read_text(), str(p))
    assert find_catalog_for(str(p), prog) is None
    assert catalog_diagnostics(p, prog) == []
    r = run_mcpp("check", str(p))
    assert r.returncode == 0 and r.stderr == "checked 1 file: no problems\n"


def test_check_finds_the_catalog_by_annotation_config_and_option(tmp_path):
    shutil.copy(FIXTURES / "github.json", tmp_path / "tools.json")
    body = 'default deny;\npermit (principal, action == Action::"create_isue", resource);\n'
    (tmp_path / "a.mcpp").write_text('@catalog("tools.json")\n' + body)
    r = run_mcpp("check", "a.mcpp", cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.startswith("a.mcpp:3:30: error: unknown tool 'create_isue'") and "1 error" in r.stderr
    sub = tmp_path / "policies"
    sub.mkdir()
    (sub / "b.mcpp").write_text(body)
    assert run_mcpp("check", str(sub / "b.mcpp")).returncode == 0  # nothing names a catalog yet
    (tmp_path / "mcpp.toml").write_text('catalog = "tools.json"\n')
    r = run_mcpp("check", str(sub / "b.mcpp"))
    assert r.returncode == 1 and "b.mcpp:2:30: error: unknown tool" in r.stderr
    (tmp_path / "mcpp.toml").unlink()
    r = run_mcpp("check", "--catalog", str(tmp_path / "tools.json"), str(sub / "b.mcpp"))
    assert r.returncode == 1 and "did you mean 'create_issue'?" in r.stderr


def test_a_named_catalog_that_is_missing_or_broken_is_an_error(tmp_path):
    (tmp_path / "p.mcpp").write_text('@catalog("gone.json")\ndefault deny;\n')
    r = run_mcpp("check", "p.mcpp", cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("p.mcpp:1:1: error: cannot use the tool catalog") and "no such catalog file" in r.stderr
    (tmp_path / "gone.json").write_text("{not json")
    r = run_mcpp("check", "p.mcpp", cwd=tmp_path)
    assert r.returncode == 1 and "not JSON" in r.stderr
    (tmp_path / "mcpp.toml").write_text("catalog = [1]\n")
    (tmp_path / "q.mcpp").write_text("default deny;\n")
    r = run_mcpp("check", "q.mcpp", cwd=tmp_path)
    assert r.returncode == 1 and "`catalog` must be a file name" in r.stderr


def test_diagnostic_data_is_json_serialisable():
    src = 'forbid (principal, action == Action::"read_text_file", resource) when { context.input.head > 100 };'
    (d,) = diags(src, FS)
    json.dumps(d.data)
    e = d.data["fix"]["edits"][0]
    assert set(e) == {"start", "end", "line", "col", "end_line", "end_col", "text"}


NUMBER_DEF = {"definitions": {"N": {"type": "number"}}}


@pytest.mark.parametrize("dialect, arg, codes", [
    # up to draft-07 a keyword beside `$ref` is ignored by the validator: `amount` takes a
    # number (N), so comparing it with a number is fine and with a string never is
    ("http://json-schema.org/draft-07/schema#", {"$ref": "#/definitions/N", "type": "string"}, ["catalog-type-mismatch"]),
    ("http://json-schema.org/draft-06/schema", {"$ref": "#/definitions/N", "type": "string"}, ["catalog-type-mismatch"]),
    ("http://json-schema.org/draft-04/schema#", {"$ref": "#/definitions/N", "type": "string"}, ["catalog-type-mismatch"]),
    # draft-04 has no `const`: the validator ignores it, the argument is any value
    ("http://json-schema.org/draft-04/schema#", {"const": "x"}, []),
    ("http://json-schema.org/draft-07/schema#", {"const": "x"}, [("catalog-type-mismatch", "context.input.amount < 100"),
                                                            ("catalog-enum-mismatch", '"5"')]),
    # from 2019-09 the siblings apply too: number and string, so no value conforms
    ("https://json-schema.org/draft/2019-09/schema", {"$ref": "#/definitions/N", "type": "string"}, None),
    (None, {"$ref": "#/definitions/N", "type": "string"}, None),
])
def test_an_argument_is_read_as_the_gateways_validator_reads_its_schema(dialect, arg, codes):
    """`mcpp check --catalog` reads a tool's schema as the gateway's validator does (catalog/
    schema.as_validated): a `type` beside a `$ref` in drafts 4 to 7 used to make the argument
    "never present" there, though the gateway forwards calls with it (hostile review 33's
    side note). Where the schema does combine them (2019-09, 2020-12) nothing conforms."""
    schema = {"type": "object", "properties": {"amount": arg}, "required": ["amount"], **NUMBER_DEF}
    if dialect is not None:
        schema["$schema"] = dialect
    cat = Catalog.from_tools([{"name": "t", "inputSchema": schema}])
    src = ('permit (principal, action == Action::"t", resource)\n'
           'when { context.input.amount < 100 && context.input.amount == "5" };\n')
    ds = diags(src, cat)
    if codes is None:  # no value conforms: the argument is never present, whatever is compared
        assert ds and all("never present" in d.message for d in ds), [(d.code, d.message) for d in ds]
    else:
        want = [c if isinstance(c, tuple) else (c, '"5"') for c in codes]
        assert [(d.code, text_at(src, d)) for d in ds] == want, [(d.code, d.message) for d in ds]
