"""`@approval` permits in the engine: how they combine with ordinary permits, the
default, forbids, hide and limits (lang/plan.py's APPROVAL_RULE), and when an
approval-bound call holds limit budget."""

from __future__ import annotations

import pytest

from mcpp.lang.diagnostics import MCPPError
from mcpp.lang.plan import APPROVAL_RULE
from mcpp.lang.program import load_program
from mcpp.runtime.engine import Engine, Grant
from mcpp.runtime.limits import MemoryCounters

REFUNDS = '''
default deny;
@id("small") permit (principal, action == Action::"refund", resource) when { context.input.amount <= 1000 };
@id("mid") @approval("Refunds between $1,000 and $10,000 need a manager.")
permit (principal, action == Action::"refund", resource)
when { context.input.amount > 1000 && context.input.amount <= 10000 };
@id("finance") permit (principal, action == Action::"refund", resource) when { principal in Group::"finance" };
@id("frozen") forbid (principal, action == Action::"refund", resource) when { context.input has frozen };
'''
FIN = Grant("g_f", "fin", frozenset({"finance"}))

CASES = [
    # (args, grant, decision, rule, policy)
    ({"amount": 500}, Grant(), "allow", "/tools/refund", "small"),
    ({"amount": 5000}, Grant(), "approval", "/policies/mid", "mid"),
    # an ordinary permit also allows it: no approval needed
    ({"amount": 5000}, FIN, "allow", "/tools/refund", "finance"),
    # no permit at all: deny, naming the first ordinary permit
    ({"amount": 50000}, Grant(), "deny", "/tools/refund/require/args.amount-lte", "small"),
    # a forbid beats an approval permit
    ({"amount": 5000, "frozen": True}, Grant(), "deny", "/tools/refund/deny_if/args.frozen-exists", "frozen"),
    # an erroring approval condition makes it not apply (as any permit: fail closed)
    ({"amount": "5000"}, Grant(), "deny", "/tools/refund/require/args.amount-lte", "small"),
]


@pytest.mark.parametrize("args, grant, decision, rule, policy", CASES)
def test_how_approval_permits_combine(args, grant, decision, rule, policy):
    d = Engine(load_program(REFUNDS, "r.mcpp")).decide("refund", args, grant)
    assert (d.decision, d.rule.pointer, d.rule.policy) == (decision, rule, policy)
    assert d.needs_approval == (decision == "approval")
    assert not (d.allowed and decision != "allow")
    if decision == "approval":
        assert d.approval == "Refunds between $1,000 and $10,000 need a manager."
        assert d.message == "Tool refund needs a person's approval (mid): Refunds between $1,000 and $10,000 need a manager."
        assert d.to_dict()["needs_approval"] is True


@pytest.mark.parametrize("src, tool, decision", [
    # the default does not cover a tool an approval permit names
    ('default allow; @approval permit (principal, action == Action::"drop", resource);', "drop", "approval"),
    # …and does cover tools no permit names, even under an any-tool approval permit
    ('default allow; @approval permit (principal, action, resource) when { context.input has x };', "ls", "allow"),
    ('default deny; @approval permit (principal, action, resource);', "ls", "approval"),
    ('default deny; hide Action::"drop"; @approval permit (principal, action, resource);', "drop", "deny"),
    ('default deny; @approval permit (principal, action == Action::"drop", resource);', "ls", "deny"),
])
def test_default_and_hide(src, tool, decision):
    assert Engine(load_program(src, "p.mcpp")).decide(tool, {}).decision == decision


def test_limits_check_but_do_not_reserve_until_approved():
    src = REFUNDS + 'limit "refunds" (principal, action == Action::"refund", resource) max 2 per hour;'
    store = MemoryCounters()
    e = Engine(load_program(src, "r.mcpp"), store)
    # waiting for approval holds no budget, however often it is asked
    for _ in range(5):
        d = e.decide("refund", {"amount": 5000}, now=1000.0)
        assert d.decision == "approval" and d.reservation is None
    assert e.decide("refund", {"amount": 500}, now=1000.0).allowed
    # the approved call reserves when it runs
    d = e.decide("refund", {"amount": 5000}, now=1000.0, approved=True)
    assert d.allowed and d.needs_approval and d.reservation is not None
    assert d.message == "Allowed by mid after a person's approval."
    # the budget is spent: an approval-bound call is now denied by the limit, approved or not
    for approved in (False, True):
        d = e.decide("refund", {"amount": 5000}, now=1000.0, approved=approved)
        assert d.decision == "deny" and d.rule.pointer == "/tools/refund/limits/refunds"
    # approved=True changes nothing for a call no approval permit allows
    assert e.decide("refund", {"amount": 50000}, now=1000.0, approved=True).decision == "deny"


def test_explain_lists_approval_permits_that_apply():
    ex = Engine(load_program(REFUNDS, "r.mcpp")).explain("refund", {"amount": 5000})
    assert ex.decision.decision == "approval"
    assert ex.satisfied == ("mid",) and ex.determining == ("mid",)


@pytest.mark.parametrize("src, message", [
    ('@approval("x") forbid (principal, action, resource);', "1:1: error: @approval applies to permits only: a forbid always denies"),
    ('@approval limit "l" (principal, action, resource) max 1 per hour;', "1:1: error: @approval applies to permits only"),
    ('@approval default deny;', "1:1: error: @approval applies to permits only"),
    ('@approval("x") assert deny (principal, action, resource);', "1:1: error: @approval applies to permits only"),
    ('@approval("a") @approval("b") permit (principal, action, resource);', "duplicate annotation @approval"),
    ('permit (principal, action, resource) @approval when { true };', "error:"),
])
def test_approval_annotation_placement(src, message):
    with pytest.raises(MCPPError) as e:
        load_program(src, "p.mcpp")
    assert message in e.value.render()


def test_the_rule_is_stated_once():
    assert "If an ordinary permit (or the default) also allows the call, no approval is needed." in APPROVAL_RULE
