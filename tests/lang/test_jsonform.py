"""The JSON form: validation with JSON pointers, and its meaning through the IR."""

import json

import pytest

from mcpp.lang.diagnostics import MCPPError
from mcpp.lang.jsonform import load_program, loads
from mcpp.runtime.engine import Engine


def pointers(doc: dict) -> list[str]:
    with pytest.raises(MCPPError) as exc:
        loads(json.dumps(doc), "p.json")
    return [d.data["pointer"] for d in exc.value.diagnostics]


def test_every_error_has_its_pointer():
    doc = {
        "version": "1",
        "default": "maybe",
        "hide": ["ok", 3],
        "tools": {
            "a/b": {
                "require": [{"conditions": [{"path": "args.x", "op": "equals", "value": 1}]}],
                "deny_if": [{"conditions": [{"path": "x", "op": "eq", "value": 1}], "extra": True}],
                "limits": [{"counter": "c", "max": "5", "window": "week"}],
            },
        },
    }
    assert sorted(pointers(doc)) == sorted(
        [
            "/default",
            "/hide/1",
            "/tools/a~1b/deny_if/0/extra",
            "/tools/a~1b/limits/0/max",
            "/tools/a~1b/limits/0/window",
        ]
    )
    # once the structure is right, the per-op checks run
    doc["default"] = "deny"
    doc["hide"] = ["ok"]
    del doc["tools"]["a/b"]["deny_if"][0]["extra"]
    doc["tools"]["a/b"]["limits"][0].update(max=5, window="hour")
    doc["tools"]["a/b"]["require"].append(
        {"conditions": [
            {"path": "args.n", "op": "lt", "value": "5"},
            {"path": "args.r", "op": "regex", "value": "(?=x)"},
            {"path": "args.s", "op": "in", "value": "abc"},
            {"path": "args.e", "op": "exists", "value": 1},
            {"path": "args.f", "op": "eq"},
        ]}
    )
    assert pointers(doc) == [
        "/tools/a~1b/require/0/conditions/0/op",
        "/tools/a~1b/require/1/conditions/0/value",
        "/tools/a~1b/require/1/conditions/1/value",
        "/tools/a~1b/require/1/conditions/2/value",
        "/tools/a~1b/require/1/conditions/3/value",
        "/tools/a~1b/require/1/conditions/4/value",
        "/tools/a~1b/deny_if/0/conditions/0/path",
    ]


def test_messages_render_with_file_and_pointer():
    with pytest.raises(MCPPError) as exc:
        loads('{"version": "1", "tools": {"t": {"require": [{"conditions": [{"path": "args.x", "op": "regex", "value": "(a"}]}]}}}', "p.json")
    text = exc.value.render()
    assert text.startswith("p.json: error: /tools/t/require/0/conditions/0/value: invalid RE2 regular expression")


def test_invalid_json_has_line_and_column():
    with pytest.raises(MCPPError) as exc:
        loads('{"version": "1",\n  "tools": {,}}', "p.json")
    d = exc.value.diagnostics[0]
    assert (d.span.line, d.span.col) == (2, 13)
    with pytest.raises(MCPPError):
        loads("[1, 2]", "p.json")


@pytest.mark.parametrize("text, where, message", [
    ('{"version": "1", "x": NaN}', "/x", "NaN is not a JSON number"),
    ('{"version": "1", "x": [0, Infinity]}', "/x/1", "Infinity is not a JSON number"),
    ('{"version": "1", "x": {"a/b": -1e400}}', "/x/a~1b", "number -1e400 is out of range (JSON numbers must be finite)"),
])
def test_numbers_no_float_holds_are_refused_at_their_pointer(text, where, message):
    """NaN and Infinity were refused at `/` (json's reader raised without a place); every
    number JSON text cannot carry back out is now an error at its own pointer, as written."""
    with pytest.raises(MCPPError) as exc:
        loads(text, "p.json")
    d = exc.value.diagnostics[0]
    assert d.data["pointer"] == where and d.message == f"{where}: {message}"


def test_version_is_required():
    assert pointers({"default": "deny"}) == ["/version"]


ARTICLE_GITHUB = {
    "version": "1",
    "default": "deny",
    "tools": {
        "list_issues": {},
        "create_issue": {"require": [{"conditions": [{"path": "args.repo", "op": "regex", "value": "^policylayer/"}]}]},
    },
}


def engine(doc) -> Engine:
    return Engine(load_program(json.dumps(doc), "p.json"))


def test_article_semantics_default_require_and_pointers():
    e = engine(ARTICLE_GITHUB)
    assert e.decide("list_issues", {}).allowed
    assert e.decide("create_issue", {"repo": "policylayer/site"}).allowed
    d = e.decide("create_issue", {"repo": "evil/site"})
    assert not d.allowed and d.rule.pointer == "/tools/create_issue/require/args.repo-regex"
    d = e.decide("create_issue", {})
    assert not d.allowed and d.rule.pointer == "/tools/create_issue/require/args.repo-regex"  # fails closed
    d = e.decide("delete_repository", {"repo": "policylayer/site"})
    assert not d.allowed and d.rule.pointer == "/default"


def test_deny_if_after_require_missing_path_does_not_match():
    doc = {
        "version": "1",
        "default": "allow",
        "hide": ["delete_channel"],
        "tools": {
            "post_message": {
                "require": [{"conditions": [{"path": "args.channel", "op": "in", "value": ["#bot", "#general"]}], "on_deny": "allowlist"}],
                "deny_if": [
                    {"conditions": [{"path": "args.channel", "op": "in", "value": ["#general"]}], "on_deny": "broadcast"},
                    {"conditions": [{"path": "args.priority", "op": "gt", "value": 5}], "on_deny": "too loud"},
                ],
            }
        },
    }
    e = engine(doc)
    d = e.decide("post_message", {"channel": "#general"})
    assert (d.allowed, d.rule.pointer, d.message) == (False, "/tools/post_message/deny_if/args.channel-in", "broadcast")
    d = e.decide("post_message", {"channel": "#other"})
    assert (d.rule.pointer, d.message) == ("/tools/post_message/require/args.channel-in", "allowlist")
    assert e.decide("post_message", {"channel": "#bot"}).allowed  # priority missing: deny_if does not match
    assert not e.decide("post_message", {"channel": "#bot", "priority": 9}).allowed
    assert e.decide("post_message", {"channel": "#bot", "priority": "9"}).allowed  # mistyped: no match
    d = e.decide("delete_channel", {})
    assert (d.allowed, d.rule.pointer) == (False, "/hide")
    assert e.decide("anything_else", {}).allowed


@pytest.mark.parametrize(
    "op, value, args, holds",
    [
        ("eq", 5, {"x": 5.0}, True),
        ("eq", 5, {"x": "5"}, False),
        ("eq", True, {"x": 1}, False),
        ("eq", None, {"x": None}, True),
        ("eq", ["a", "b"], {"x": ["b", "a"]}, True),
        ("neq", 5, {"x": "5"}, True),
        ("neq", 5, {}, False),
        ("lt", 10, {"x": 9.5}, True),
        ("lt", 10, {"x": "9"}, False),
        ("gte", 1000.01, {"x": 1000.01}, True),
        ("in", ["a", 1], {"x": 1.0}, True),
        ("not_in", ["a"], {"x": "b"}, True),
        ("not_in", ["a"], {}, False),
        ("exists", None, {"x": None}, True),
        ("exists", False, {}, True),
        ("exists", False, {"x": 0}, False),
        ("regex", "b+", {"x": "abbc"}, True),
        ("regex", "^b", {"x": "abbc"}, False),
        ("regex", ".", {"x": 5}, False),
        ("contains", "pii", {"x": ["pii", "x"]}, True),
        ("contains", "ell", {"x": "hello"}, True),
        ("contains", 1, {"x": "hello"}, False),
        ("contains", "a", {"x": {"a": 1}}, False),
    ],
)
def test_condition_meaning(op, value, args, holds):
    cond = {"path": "args.x", "op": op}
    if value is not None or op != "exists":
        cond["value"] = value
    doc = {"version": "1", "default": "deny", "tools": {"t": {"require": [{"conditions": [cond]}]}}}
    assert engine(doc).decide("t", args).allowed is holds
    doc = {"version": "1", "default": "allow", "tools": {"t": {"deny_if": [{"conditions": [cond]}]}}}
    assert engine(doc).decide("t", args).allowed is (not holds)


def test_nested_paths():
    doc = {"version": "1", "tools": {"t": {"require": [{"conditions": [{"path": "args.channel.id", "op": "eq", "value": "C1"}]}]}}}
    e = engine(doc)
    assert e.decide("t", {"channel": {"id": "C1"}}).allowed
    assert not e.decide("t", {"channel": "C1"}).allowed
    assert not e.decide("t", {"channel": {}}).allowed


@pytest.mark.parametrize("levels,pointer", [
    (70, "/policies" + "/0" * 63),  # past the bound: where, as a JSON pointer
    (5000, "/"),  # past what json reads at all (it raised RecursionError out of every command)
])
def test_a_document_nested_too_deeply_is_an_error_at_its_pointer(levels, pointer):
    text = '{"version": "1", "policies": ' + "[" * levels + "]" * levels + "}"
    with pytest.raises(MCPPError) as e:
        loads(text, "deep.json")
    (d,) = e.value.diagnostics
    assert d.data["pointer"] == pointer and "may nest at most 64 levels" in d.message


@pytest.mark.parametrize("mx, bad", [(10**18, True), (2**53 + 1, True), (2**53, False), (5, False)])
def test_a_limit_max_beyond_2_53_is_refused_at_its_pointer(mx, bad):
    # counters are doubles, exact up to 2^53 (hostile review 41, H41-1b), as the text form
    doc = {"version": "1", "default": "allow",
           "tools": {"t": {"limits": [{"counter": "c", "max": mx, "window": "hour"}]}}}
    if bad:
        assert pointers(doc) == ["/tools/t/limits/0/max"]
    else:
        loads(json.dumps(doc), "p.json")
