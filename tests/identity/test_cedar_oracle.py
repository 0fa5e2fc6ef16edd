"""Cedar as the oracle for conditions on who the caller is: on random policies that test
and read the principal (grants and users, `is`, `==`, `in` groups, `has`, typed user
attributes) and random calls by grants and users, `Engine.explain` — the decision, the
policies that apply and those that error — equals cedarpy's, with the principal's
attributes and parents in the entity store."""

from __future__ import annotations

import re

import cedarpy
from hypothesis import given, settings
from hypothesis import strategies as st

from mcpp.lang.formatter import format_document
from mcpp.lang.ir import Document, EntityDecl
from mcpp.lang.program import load_program
from mcpp.runtime.engine import Engine, Grant, User

from .strategies import calls, cedar_entities, cedar_principal, identity_documents

_ERR_ID = re.compile(r"policy `([^`]+)`")


def _cedar_text(doc: Document) -> str:
    """The policies alone: Cedar reads the declaration from a schema, not a policy file."""
    return format_document(Document(tuple(s for s in doc.statements if not isinstance(s, EntityDecl))))


def _compare(doc: Document, requests) -> None:
    text = format_document(doc)
    program = load_program(text)
    engine = Engine(program)
    policy_set = cedarpy.PolicySet.from_str(_cedar_text(doc))
    for call in requests:
        request = {
            "principal": cedar_principal(call.caller),
            "action": {"type": "Action", "id": call.tool},
            "resource": {"type": "Server", "id": "s0"},
            "context": {"input": call.args},
        }
        result = cedarpy.is_authorized(request, policy_set, cedar_entities(call.caller))
        assert result.decision in (cedarpy.Decision.Allow, cedarpy.Decision.Deny), result.diagnostics.errors
        x = engine.explain(call.tool, call.args, call.caller, "s0")
        where = f"\n{text}\n{call}\ncedar: {result.decision} {result.diagnostics.reasons} {result.diagnostics.errors}"
        assert x.decision.allowed == (result.decision == cedarpy.Decision.Allow), where
        assert set(x.determining) == set(result.diagnostics.reasons), where
        cedar_errored = {m.group(1) for e in result.diagnostics.errors for m in [_ERR_ID.search(e)] if m}
        assert set(x.errored) == cedar_errored, where


@settings(max_examples=settings.default.max_examples * 2, deadline=None)
@given(st.data())
def test_principal_conditions_decide_as_cedar(data):
    doc = data.draw(identity_documents())
    requests = data.draw(st.lists(calls(doc.statements[0]), min_size=1, max_size=6))
    _compare(doc, requests)


def test_the_examples_of_the_design_decide_as_cedar():
    """The two policies of the issue, by hand: a user within and above their refund cap,
    with and without the write scope, and a grant (which has no such attributes)."""
    text = (
        "entity User in [Group] { scopes: Set<String>, refund_cap?: Long };\n"
        'permit (principal in Group::"payments", action == Action::"refund_payment", resource)\n'
        "when { context.input.amount <= principal.refund_cap };\n"
        'permit (principal, action == Action::"apply", resource);\n'
        'forbid (principal, action == Action::"apply", resource) unless { principal.scopes.contains("k8s:write") };\n'
    )
    from mcpp.lang.parser import parse

    doc = parse(text)
    payer = User("alice", {"scopes": ["k8s:write"], "refund_cap": 1000}, frozenset({"payments"}))
    reader = User("bob", {"scopes": ["k8s:read"]}, frozenset({"payments"}))
    grant = Grant("g0", "ci", frozenset({"payments"}))

    class C:
        def __init__(self, tool, args, caller):
            self.tool, self.args, self.caller = tool, args, caller

        def __repr__(self):
            return f"{self.tool} {self.args} {self.caller}"

    cases = [
        (C("refund_payment", {"amount": 999}, payer), True),
        (C("refund_payment", {"amount": 1001}, payer), False),
        (C("refund_payment", {"amount": 5}, reader), False),  # no cap: the permit errors
        (C("refund_payment", {"amount": 5}, grant), False),
        (C("apply", {}, payer), True),
        (C("apply", {}, reader), False),
        (C("apply", {}, grant), True),  # a grant has no scopes: the forbid errors and is skipped
    ]
    _compare(doc, [c for c, _ in cases])
    engine = Engine(load_program(text))
    for c, allowed in cases:
        assert engine.decide(c.tool, c.args, c.caller).allowed is allowed, c
