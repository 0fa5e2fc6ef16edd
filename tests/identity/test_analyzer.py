"""The analyzer and callers who are users: in a policy that declares `entity User` or
names User, the caller may be a user, whose kind, attributes and groups are symbolic. It
never proves what a user breaks, lints claim nothing a user refutes, and a policy that
never names users is analysed exactly as before. (The tables that prove and refute
principal asserts, with replayed user counterexamples, are in test_principals.py.)"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcpp.analyzer.lints import lint
from mcpp.analyzer.verify import verify
from mcpp.analyzer.visibility import visible_tools
from mcpp.lang import ir
from mcpp.lang.formatter import format_document
from mcpp.lang.program import load_program
from mcpp.runtime.engine import CompiledRule, Engine, User

from .strategies import calls, exprs, identity_documents, principal_scopes

DECL = "entity User in [Group] { email: String, scopes: Set<String>, refund_cap?: Long };\n"
REFUNDS = DECL + (
    'permit (principal in Group::"payments", action == Action::"refund", resource)\n'
    "when { principal has refund_cap && context.input.amount <= principal.refund_cap };\n"
)
APPLY = DECL + (
    'permit (principal, action == Action::"apply", resource);\n'
    'forbid (principal is User, action == Action::"apply", resource) unless { principal.scopes.contains("k8s:write") };\n'
    'forbid (principal is Grant, action == Action::"apply", resource) when { principal.label != "ci" };\n'
)

CASES = [
    # (policy, assert, the statuses the analyzer may answer, the truth)
    # a user with a cap of 5000 refunds 2000: false, and a user shows it
    (REFUNDS, 'assert deny (principal, action == Action::"refund", resource) when { context.input.amount > 1000 };',
     {"fail"}, "fail"),
    # only a user with the write scope gets through: false for users
    (APPLY, 'assert deny (principal, action == Action::"apply", resource) unless { principal is Grant };',
     {"fail"}, "fail"),
    # a user's attribute decides, and the assert names it
    (APPLY, 'assert deny (principal, action == Action::"apply", resource) when { principal.email like "*@contractor.com" };',
     {"fail"}, "fail"),
    # true for every caller: provable without modelling users
    (REFUNDS, 'assert deny (principal, action == Action::"refund", resource) unless { principal in Group::"payments" };',
     {"pass"}, "pass"),
    (APPLY, 'assert deny (principal, action == Action::"apply", resource) when { principal is User && '
            '!principal.scopes.contains("k8s:write") };', {"pass"}, "pass"),
    (APPLY, 'assert deny (principal is Grant, action == Action::"apply", resource) unless { principal.label == "ci" };',
     {"pass"}, "pass"),
    # a grant-only policy: exact as before (a counterexample replays)
    ('permit (principal, action == Action::"t", resource) when { principal.label == "x" };',
     'assert deny (principal, action == Action::"t", resource);', {"fail"}, "fail"),
]


@pytest.mark.parametrize("policy, claim, allowed, truth", CASES)
def test_verify_never_proves_what_a_user_breaks(policy, claim, allowed, truth):
    (result,) = verify(load_program(policy + claim), timeout_ms=10000)
    assert result.status in allowed, result.message
    if truth == "fail":
        assert result.status != "pass"


def test_an_assert_on_a_user_attribute_fails_with_the_user():
    """The refund cap is a user's attribute; the assert is false (a user with a high cap
    refunds more), and the counterexample is that user, its claims and its group."""
    (r,) = verify(load_program(CASES[0][0] + CASES[0][1]), timeout_ms=10000)
    assert r.status == "fail", r.message
    w = r.witness
    assert w.user and "payments" in w.groups and w.attrs["refund_cap"] >= w.args["amount"] > 1000
    assert 'User::"' in r.message and "refund_cap" in r.message


def test_lints_claim_nothing_a_user_refutes():
    """A permit only users can use is not dead, and a forbid only a user's attribute
    triggers is no unsatisfiable condition."""
    text = DECL + (
        'permit (principal is User, action == Action::"t", resource);\n'
        'permit (principal, action == Action::"u", resource);\n'
        'forbid (principal, action == Action::"u", resource) when { principal has refund_cap && principal.refund_cap > 10 };\n'
    )
    codes = {d.code for d in lint(load_program(text), timeout_ms=10000)}
    assert not codes & {"dead-permit", "unsatisfiable-condition", "always-denies", "redundant-rule"}, codes


def test_visibility_for_a_grant_is_exact_in_a_policy_for_users():
    """`tools/list` for a grant fixes the caller: the user alternative never arises."""
    prog = load_program(APPLY + 'permit (principal is User, action == Action::"only_users", resource);')
    assert visible_tools(prog, ["apply", "only_users"], grant_id="g", label="ci", groups=(), server="s") == {"apply"}
    assert visible_tools(prog, ["apply", "only_users"], grant_id="g", label="x", groups=(), server="s") == set()


# ---- the property: a PASS holds for every caller ---------------------------------------------


@st.composite
def asserted(draw):
    doc = draw(identity_documents(max_policies=3))
    claim = ir.Assert("deny", ir.Scope(draw(principal_scopes()), ir.ActionScope(), ir.EntityScope()),
                      tuple(draw(st.lists(st.builds(ir.Clause, st.just("when"), exprs()), max_size=1))))
    return ir.Document(doc.statements + (claim,))


class _Info:
    id = "assert"
    tools = None


@settings(max_examples=max(20, settings.default.max_examples // 3), deadline=None)
@given(asserted(), st.data())
def test_a_proof_holds_for_grants_and_users(doc, data):
    program = load_program(format_document(doc))
    (result,) = verify(program, timeout_ms=5000)
    if result.status != "pass":
        return
    engine = Engine(program)
    claim = program.asserts[0].stmt
    selects = CompiledRule(_Info(), ir.Policy("permit", claim.scope, claim.clauses))
    for call in data.draw(st.lists(calls(doc.statements[0]), min_size=5, max_size=15)):
        env = engine.env(call.tool, call.args, call.caller, "s0")
        if selects.applies(env):
            d = engine.decide(call.tool, call.args, call.caller, "s0", reserve=False)
            assert not d.allowed, (format_document(doc), call, d.to_dict())


def test_the_property_sees_users_break_asserts():
    """The property above is not vacuous: a user caller does break a deny the policy's
    grants all satisfy, and the engine says so."""
    program = load_program(CASES[0][0] + CASES[0][1])
    big = User("u", {"email": "", "scopes": [], "refund_cap": 5000}, frozenset({"payments"}))
    assert Engine(program).decide("refund", {"amount": 2000}, big).allowed


def test_no_user_has_an_empty_id_in_the_analysis_or_the_engine():
    # an access token's subject is never empty (the gateway refuses it): a counterexample
    # that needs User::"" is no counterexample, and the engine denies such a caller
    src = ('entity User { };\ndefault deny;\npermit (principal is User, action == Action::"read", resource);\n'
           'forbid (principal, action == Action::"read", resource) when { principal == User::"" };\n'
           'assert allow (principal is User, action == Action::"read", resource);\n')
    prog = load_program(src)
    assert [r.status for r in verify(prog)] == ["pass"]
    engine = Engine(prog)
    assert engine.decide("read", {}, User("alice")).allowed
    empty = engine.decide("read", {}, User(""))
    assert not empty.allowed and empty.rule.pointer == "/principal" and "id is empty" in empty.message
