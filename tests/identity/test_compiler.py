"""The JSON form has no identity: `mcpp compile --user ID --claim NAME=JSON --group G`
compiles a policy that reads the principal for one user (as `--grant` does for one
grant), or refuses naming the rule; translation validation proves a `--user` document
against the policy with that user fixed as the caller; `specialise` folds the user away."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcpp.lang import ir, jsonform
from mcpp.lang.compiler import GrantContext, UserContext, compile_program, specialise
from mcpp.lang.diagnostics import MCPPError
from mcpp.lang.formatter import format_document
from mcpp.lang.program import load_program
from mcpp.runtime.engine import Engine, Grant

from ..test_cli import mcpp
from .strategies import calls, identity_documents, users

DECL = "entity User in [Group] { email: String, scopes: Set<String>, refund_cap?: Long };\n"
POLICY = DECL + """
@id("refunds")
permit (principal in Group::"payments", action == Action::"refund_payment", resource)
when { principal has refund_cap && context.input.amount <= principal.refund_cap };
permit (principal, action == Action::"apply", resource);
@id("write-scope")
forbid (principal is User, action == Action::"apply", resource) unless { principal.scopes.contains("k8s:write") };
@id("contractors")
forbid (principal, action == Action::"apply", resource)
when { context.input.ns == "prod" && principal has email && principal.email like "*@contractor.com" };
"""


def _user(uid, claims, groups=()):
    return UserContext(uid, tuple(claims.items()), frozenset(groups))


COMPILED = [
    (_user("alice", {"email": "a@corp.com", "scopes": ["k8s:write"], "refund_cap": 500}, ["payments"]),
     {"refund_payment": {"require": [{"conditions": [{"path": "args.amount", "op": "lte", "value": 500}]}]}, "apply": {}}),
    (_user("carl", {"email": "c@contractor.com", "scopes": ["k8s:write"]}),
     {"apply": {"deny_if": [{"conditions": [{"path": "args.ns", "op": "eq", "value": "prod"}]}]}}),
    (_user("bob", {"email": "b@corp.com", "scopes": []}, ["payments"]), {}),  # no cap, no write scope
    (GrantContext("ci", "", frozenset({"payments"})), {"apply": {}}),  # a grant: no cap, no scopes, no email
]


@pytest.mark.parametrize("principal, tools", COMPILED)
def test_compiled_per_principal(principal, tools):
    out = compile_program(load_program(POLICY, "p.mcpp"), principal)
    assert out == {"version": "1", "default": "deny", "tools": tools}


def test_refused_without_a_principal_naming_the_rules():
    with pytest.raises(MCPPError) as e:
        compile_program(load_program(POLICY, "p.mcpp"))
    msgs = [(d.message, d.notes) for d in e.value.diagnostics]
    assert any("'refunds'" in m and "principal scope depends on the grant or user" in m for m, _ in msgs), msgs
    assert any("'write-scope'" in m for m, _ in msgs), msgs
    assert all(any("--user ID [--claim NAME=JSON]" in n for n in notes) for _, notes in msgs)


def test_a_condition_reading_the_principal_is_refused_naming_the_rule():
    text = DECL + 'permit (principal, action == Action::"t", resource) when { principal.email like "*@corp.com" };'
    with pytest.raises(MCPPError) as e:
        compile_program(load_program(text))
    (d,) = e.value.diagnostics
    assert "rule 'policy0'" in d.message and "depends on the principal (grant or user)" in d.message


def test_scope_principal_limits_are_refused():
    text = 'permit (principal, action == Action::"t", resource);\nlimit "c" (principal, action == Action::"t", resource) max 5 per day scope principal;'
    with pytest.raises(MCPPError) as e:
        compile_program(load_program(text), _user("u", {}))
    assert "counts per principal (`scope principal`)" in e.value.diagnostics[0].message


def test_a_user_that_does_not_fit_is_an_error():
    with pytest.raises(MCPPError) as e:
        compile_program(load_program(POLICY, "p.mcpp"), _user("x", {"email": 1, "scopes": []}))
    assert "--user x: the user does not fit `entity User`: attribute 'email': expected a String" in e.value.diagnostics[0].message


def test_specialise():
    program = load_program(POLICY, "p.mcpp")
    view, why = specialise(program, _user("carl", {"email": "c@contractor.com", "scopes": ["k8s:write"]}))
    assert why == "" and view is not None
    for info in view.policies + view.limits:
        assert info.stmt.scope.principal == ir.EntityScope()
        for c in info.stmt.clauses:
            assert not any(isinstance(n, ir.Var) and n.name == "principal" for n in ir.walk(c.expr))
    assert [p.id for p in view.policies] == [p.id for p in program.policies]
    # a principal value inside a condition on the call cannot be folded away
    odd = load_program(DECL + 'permit (principal, action, resource) when { context.input.who == principal };')
    view, why = specialise(odd, _user("u", {"email": "", "scopes": []}))
    assert view is None and "uses the principal inside a condition on the call" in why


def _json_engine(doc: dict) -> Engine:
    return Engine(jsonform.load_program(json.dumps(doc)))


@settings(max_examples=settings.default.max_examples, deadline=None)
@given(st.data())
def test_a_users_document_and_view_decide_as_the_policy_for_that_user(data):
    """For a random user: the policy as that user sees it decides every call as the policy
    does; so does the compiled JSON document, when the policy compiles."""
    doc = data.draw(identity_documents())
    decl = doc.statements[0]
    program = load_program(format_document(doc))
    user = data.draw(users(decl))
    ctx = UserContext(user.id, tuple(user.attrs.items()), user.groups)
    engine = Engine(program)
    view, _ = specialise(program, ctx)
    try:
        compiled = _json_engine(compile_program(program, ctx))
    except MCPPError:
        compiled = None
    for call in data.draw(st.lists(calls(decl), min_size=1, max_size=8)):
        want = engine.decide(call.tool, call.args, user, "s0", reserve=False).allowed
        if view is not None:
            # the view reads no principal: any caller gets this user's decisions
            assert Engine(view).decide(call.tool, call.args, Grant("someone"), "s0", reserve=False).allowed == want
        if compiled is not None:
            assert compiled.decide(call.tool, call.args, Grant("someone"), "s0", reserve=False).allowed == want


# ---- the command line --------------------------------------------------------------------------


def test_cli_compiles_for_a_user_with_translation_validation(tmp_path):
    f = tmp_path / "p.mcpp"
    f.write_text(POLICY)
    p = mcpp("compile", f, "--user", "alice", "--claim", 'email="a@corp.com"', "--claim", 'scopes=["k8s:write"]',
             "--claim", "refund_cap=500", "--group", "payments")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["tools"] == COMPILED[0][1]
    p = mcpp("compile", f, "--user", "carl", "--claim", 'email="c@contractor.com"', "--claim", 'scopes=["k8s:write"]')
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["tools"] == COMPILED[1][1]


CLI_ERRORS = [
    (["--user", "a", "--grant", "g"], "give --grant or --user, not both"),
    (["--claim", "x=1"], "--claim needs --user"),
    (["--user", "a", "--label", "x"], "--label is a grant's"),
    (["--user", "a", "--claim", "email"], "write NAME=JSON"),
    (["--user", "a", "--claim", "email=bob"], "--claim email: not a JSON value"),
    (["--user", "a", "--claim", "email=1", "--claim", "scopes=[]"], "the user does not fit `entity User`"),
    ([], "cannot compile rule 'refunds'"),
]


@pytest.mark.parametrize("args, message", CLI_ERRORS)
def test_cli_errors(tmp_path, args, message):
    f = tmp_path / "p.mcpp"
    f.write_text(POLICY)
    p = mcpp("compile", f, *args)
    assert p.returncode in (1, 2) and message in p.stderr, p.stderr
    assert p.stdout == ""


@settings(max_examples=max(10, settings.default.max_examples // 5), deadline=None)
@given(st.data())
def test_translation_validation_proves_a_users_document(data):
    """What `mcpp compile --user` runs before writing: the analyzer proves the document
    equivalent to the policy with the user fixed as the caller (no false alarms on random
    policies); the view (`specialise`) exists whenever the policy compiles."""
    from mcpp.analyzer.encode import FixedUser
    from mcpp.analyzer.translation import validate_translation

    doc = data.draw(identity_documents())
    program = load_program(format_document(doc))
    user = data.draw(users(doc.statements[0]))
    ctx = UserContext(user.id, tuple(user.attrs.items()), user.groups)
    try:
        out = compile_program(program, ctx)
    except MCPPError:
        return
    view, why = specialise(program, ctx)
    assert view is not None, why
    fixed = FixedUser.of(program, user.id, user.attrs, user.groups)
    assert validate_translation(program, out, user=fixed, timeout_ms=20000) is None
