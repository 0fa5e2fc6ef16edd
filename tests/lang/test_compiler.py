"""Compiler and decompiler: the JSON form means exactly what the source means."""

import json
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mcpp.lang.compiler import GrantContext, compile_program
from mcpp.lang.decompiler import decompile
from mcpp.lang.diagnostics import MCPPError
from mcpp.lang.jsonform import load_program as load_json
from mcpp.lang.program import build_program, load_program
from mcpp.runtime.engine import Engine, Grant
from tests.strategies import calls, documents

EXAMPLES = sorted(Path(__file__).resolve().parents[2].joinpath("examples").glob("*.mcpp"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_compile_to_their_checked_in_json(path):
    program = load_program(path.read_text(), str(path))
    expected = json.loads(path.with_suffix(".json").read_text())
    assert compile_program(program) == expected


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_decompile_and_compile_back(path):
    text = path.with_suffix(".json").read_text()
    source = decompile(text, str(path.with_suffix(".json")))
    again = compile_program(load_program(source, "decompiled.mcpp"))
    assert again == json.loads(text)


def refusal(src: str, **kw) -> str:
    with pytest.raises(MCPPError) as exc:
        compile_program(load_program(src, "p.mcpp"), **kw)
    return exc.value.render()


def test_refusals_name_the_rule_and_reason():
    msg = refusal(
        '@id("a") permit (principal, action == Action::"t", resource) when { context.input.x == 1 };\n'
        '@id("b") permit (principal, action == Action::"t", resource) when { context.input.y == 1 };'
    )
    assert "rule 'b'" in msg and "disjunction of permits" in msg and "mcpp serve" in msg
    msg = refusal('@id("n") forbid (principal, action == Action::"t", resource) unless { context.input.u.matches("^a") };')
    assert "rule 'n'" in msg and "negated regex" in msg and "p.mcpp:1:" in msg
    msg = refusal('@id("g") permit (principal in Group::"fin", action == Action::"t", resource);')
    assert "rule 'g'" in msg and "--grant" in msg
    msg = refusal('@id("o") permit (principal, action == Action::"t", resource) when { context.input.a == 1 || context.input.b == 2 };')
    assert "rule 'o'" in msg and "disjunction" in msg
    msg = refusal('default allow; @id("f") forbid (principal, action, resource) when { context.input.env == "prod" };')
    assert "rule 'f'" in msg and "every tool" in msg


@pytest.mark.parametrize("condition, reason", [
    ('context.input["a.b"] == 1', "contains a '.'"),
    ('context.input has ""', "an empty argument key"),
    ('context.input.a has ""', "an empty argument key"),
    ('context.input[""] == 1', "an empty argument key"),
])
def test_keys_a_json_path_cannot_spell_are_refused_by_name(condition, reason):
    """`args.a.b` would name a nested key and `args.a.` no key at all: the compiler refuses
    such a key with the rule's name, before translation validation would have to."""
    msg = refusal(f'@id("k") permit (principal, action == Action::"t", resource) when {{ {condition} }};')
    assert "rule 'k'" in msg and reason in msg


def test_per_grant_compilation():
    src = (
        'permit (principal in Group::"finance", action == Action::"refund", resource);\n'
        'permit (principal == Grant::"ci", action == Action::"list", resource);\n'
        'forbid (principal, action == Action::"refund", resource) when { principal.label == "intern" };\n'
    )
    prog = load_program(src)
    fin = compile_program(prog, GrantContext("alice", "", frozenset({"finance"})))
    assert fin["tools"] == {"refund": {}}
    assert compile_program(prog, GrantContext("ci"))["tools"] == {"list": {}}
    assert compile_program(prog, GrantContext("bob", "intern", frozenset({"finance"})))["tools"] == {}


def test_forbid_disjunction_becomes_several_deny_if_entries():
    out = compile_program(
        load_program(
            'default allow;\n@reason("no")\nforbid (principal, action == Action::"t", resource)\n'
            'when { context.input.a == 1 || context.input.b.matches("x") };'
        )
    )
    assert out["tools"]["t"]["deny_if"] == [
        {"conditions": [{"path": "args.a", "op": "eq", "value": 1}], "on_deny": "no"},
        {"conditions": [{"path": "args.a", "op": "neq", "value": 1}, {"path": "args.b", "op": "regex", "value": "x"}], "on_deny": "no"},
    ]


def test_never_allowed_tools_are_hidden_under_default_allow():
    out = compile_program(load_program('default allow; forbid (principal, action == Action::"t", resource);'))
    assert out == {"version": "1", "default": "allow", "hide": ["t"], "tools": {}}


def same_decisions(program, doc, grant: Grant, server: str, requests):
    native = Engine(program)
    compiled = Engine(load_json(json.dumps(doc), "c.json"))
    for tool, args in requests:
        a = native.decide(tool, args, grant, server, reserve=False)
        b = compiled.decide(tool, args, grant, server, reserve=False)
        assert a.allowed == b.allowed, (tool, args, a, b, json.dumps(doc))


@given(documents(principal=True, max_policies=4), st.lists(calls(), min_size=1, max_size=8))
def test_compiled_json_decides_like_the_source(doc, requests):
    program, diags = build_program(doc)
    first = requests[0]
    grant = Grant(first.grant, first.label, first.groups)
    try:
        out = compile_program(program, GrantContext(grant.id, grant.label, grant.groups), first.server)
    except MCPPError:
        assume(False)
    same_decisions(program, out, grant, first.server, [(c.tool, c.args) for c in requests])


@given(documents(principal=False, max_policies=4), st.lists(calls(), min_size=1, max_size=8))
def test_decompile_then_compile_agrees_with_the_original_json(doc, requests):
    program, _ = build_program(doc)
    try:
        out = compile_program(program)
    except MCPPError:
        assume(False)
    text = json.dumps(out)
    again = compile_program(load_program(decompile(text, "x.json"), "x.mcpp"))
    first = requests[0]
    grant = Grant(first.grant, first.label, first.groups)
    same_decisions(load_json(text, "x.json"), again, grant, first.server, [(c.tool, c.args) for c in requests])
    assert again == out or set(again["tools"]) == set(out["tools"])
