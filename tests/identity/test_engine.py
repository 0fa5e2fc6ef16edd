"""The engine with users: the caller is a Grant or a User, a user's claims are checked
against `entity User` (a caller that does not fit is denied, fail closed), and limits
count per grant, per principal or per policy."""

from __future__ import annotations

import pytest

from mcpp.lang.program import load_program
from mcpp.runtime.engine import Engine, Grant, User
from mcpp.runtime.limits import MemoryCounters

DECL = "entity User in [Group] { email: String, scopes: Set<String>, refund_cap?: Long, admin: Bool };\n"
POLICY = DECL + """
permit (principal in Group::"payments", action == Action::"refund_payment", resource)
when { principal has refund_cap && context.input.amount <= principal.refund_cap };
permit (principal, action == Action::"apply", resource);
forbid (principal is User, action == Action::"apply", resource) unless { principal.scopes.contains("k8s:write") };
permit (principal == User::"alice", action == Action::"whoami", resource);
permit (principal is Grant, action == Action::"whoami", resource) when { principal.label == "ci" };
permit (principal, action == Action::"admin", resource) when { principal is User && principal.admin };
"""

ALICE = User("alice", {"email": "a@corp.com", "scopes": ["k8s:write"], "refund_cap": 1000, "admin": False},
             frozenset({"payments"}))
BOB = User("bob", {"email": "b@corp.com", "scopes": ("k8s:read",), "admin": True})
CI = Grant("ci-token", "ci", frozenset({"payments"}))

DECISIONS = [
    ("refund_payment", {"amount": 1000}, ALICE, True),
    ("refund_payment", {"amount": 1001}, ALICE, False),
    ("refund_payment", {"amount": 1}, BOB, False),  # not in payments
    ("refund_payment", {"amount": 1}, CI, False),  # a grant has no refund_cap
    ("apply", {}, ALICE, True),
    ("apply", {}, BOB, False),
    ("apply", {}, CI, True),
    ("whoami", {}, ALICE, True),
    ("whoami", {}, BOB, False),
    ("whoami", {}, CI, True),
    ("whoami", {}, Grant("alice", "ci"), True),  # a grant's label, not the user alice
    ("whoami", {}, Grant("alice"), False),
    ("admin", {}, BOB, True),
    ("admin", {}, ALICE, False),
    ("admin", {}, CI, False),
]


@pytest.mark.parametrize("tool, args, caller, allowed", DECISIONS)
def test_decisions(tool, args, caller, allowed):
    engine = Engine(load_program(POLICY, "p.mcpp"))
    assert engine.decide(tool, args, caller).allowed is allowed
    # the third argument stays positional and keyword-compatible
    assert engine.decide(tool, args, grant=caller, reserve=False).allowed is allowed
    assert engine.explain(tool, args, caller).decision.allowed is allowed


MISFITS = [
    (User("c", {"scopes": [], "admin": False}), "the required attribute 'email' (String) is missing"),
    (User("c", {"email": 5, "scopes": [], "admin": False}), "attribute 'email': expected a String, got number (5)"),
    (User("c", {"email": "x", "scopes": "k8s", "admin": False}), "attribute 'scopes': expected a Set<String>, got string"),
    (User("c", {"email": "x", "scopes": [1], "admin": False}), "an element is number (1)"),
    (User("c", {"email": "x", "scopes": [], "admin": "yes"}), "attribute 'admin': expected a Bool"),
    (User("c", {"email": "x", "scopes": [], "admin": False, "refund_cap": "1000"}), "attribute 'refund_cap': expected a Long"),
    (User("c", {"email": "x", "scopes": [], "admin": False, "refund_cap": 1.5}), "expected a Long, got number (1.5)"),
    (User("c", {"email": "x", "scopes": [], "admin": False, "refund_cap": True}), "expected a Long, got bool"),
    (User("c", {"email": "x", "scopes": [], "admin": False, "refund_cap": 2**63}), "outside the 64-bit range"),
]


@pytest.mark.parametrize("user, problem", MISFITS)
def test_a_user_that_does_not_fit_the_declaration_is_denied(user, problem):
    engine = Engine(load_program(POLICY, "p.mcpp"))
    d = engine.decide("apply", {}, user)
    assert not d.allowed and d.rule.pointer == "/principal", d.to_dict()
    assert problem in d.message and "`entity User`" in d.message
    assert d.to_dict("p.mcpp")["span"] == "p.mcpp:1:1"
    x = engine.explain("apply", {}, user)
    assert not x.decision.allowed and x.satisfied == () and x.errored == ()


def test_fits():
    """Optional attributes may be absent or null; undeclared claims are dropped; sets may
    come as lists, tuples or sets."""
    engine = Engine(load_program(POLICY))
    for attrs in (
        {"email": "x", "scopes": frozenset({"k8s:write"}), "admin": False, "refund_cap": None},
        {"email": "x", "scopes": {"k8s:write"}, "admin": False, "extra": object()},
    ):
        assert engine.decide("apply", {}, User("c", attrs)).allowed, attrs
    env = engine.env("apply", {}, User("c", {"email": "x", "scopes": ("a",), "admin": True, "extra": 1}), "s")
    assert env.principal.attrs == {"email": "x", "scopes": ["a"], "admin": True}
    assert env.principal.key == ("User", "c")


def test_groups_need_in_group():
    text = "entity User { email: String };\npermit (principal, action, resource);"
    engine = Engine(load_program(text))
    assert engine.decide("t", {}, User("u", {"email": "x"})).allowed
    d = engine.decide("t", {}, User("u", {"email": "x"}, frozenset({"sre"})))
    assert d.rule.pointer == "/principal" and "without `in [Group]`" in d.message


def test_without_a_declaration_users_have_groups_and_no_attributes():
    text = 'permit (principal in Group::"sre", action, resource) unless { principal has label };'
    engine = Engine(load_program(text))
    assert engine.decide("t", {}, User("u", {"email": "x"}, frozenset({"sre"}))).allowed
    assert not engine.decide("t", {}, Grant("g", "", frozenset({"sre"}))).allowed  # a grant has a label


def test_a_changed_user_is_rebuilt():
    """Principal entities are cached per id; a user whose claims changed is not served the old ones."""
    engine = Engine(load_program(POLICY))
    assert engine.decide("refund_payment", {"amount": 500}, ALICE).allowed
    lower = User("alice", {**ALICE.attrs, "refund_cap": 100}, ALICE.groups)
    assert not engine.decide("refund_payment", {"amount": 500}, lower).allowed
    assert engine.decide("refund_payment", {"amount": 500}, ALICE).allowed
    outside = User("alice", dict(ALICE.attrs), frozenset())
    assert not engine.decide("refund_payment", {"amount": 500}, outside).allowed


def test_a_grant_and_a_user_with_one_id_are_different_callers():
    text = DECL + 'permit (principal, action, resource) when { principal == User::"x" };'
    engine = Engine(load_program(text))
    assert engine.decide("t", {}, User("x", {"email": "", "scopes": [], "admin": False})).allowed
    assert not engine.decide("t", {}, Grant("x")).allowed
    assert engine.decide("t", {}, User("x", {"email": "", "scopes": [], "admin": False})).allowed


def test_an_entity_literal_naming_the_caller_has_its_attributes():
    text = DECL + 'permit (principal, action, resource) when { User::"alice" in Group::"payments" };'
    engine = Engine(load_program(text))
    assert engine.decide("t", {}, ALICE).allowed
    assert not engine.decide("t", {}, Grant("alice", "", frozenset({"payments"}))).allowed


def test_the_caller_must_be_a_grant_or_a_user():
    d = Engine(load_program(POLICY)).decide("apply", {}, {"id": "x"})  # type: ignore[arg-type]
    assert not d.allowed and d.rule.pointer == "/error"


# ---- limits ------------------------------------------------------------------------------


LIMITS = DECL + """
permit (principal, action, resource);
limit "per_person" (principal, action == Action::"p", resource) max 2 per hour scope principal;
limit "per_grant" (principal, action == Action::"g", resource) max 2 per hour scope grant;
limit "everyone" (principal, action == Action::"e", resource) max 3 per hour scope policy;
"""

NOW = 1_767_225_600.0


def _user(uid: str, session: str | None = None) -> User:
    return User(uid, {"email": "", "scopes": [], "admin": False}, grant_id=session)


def _run(engine, tool, callers):
    return [engine.decide(tool, {}, c, now=NOW).allowed for c in callers]


def test_scope_principal_counts_a_user_across_sessions_and_clients():
    engine = Engine(load_program(LIMITS))
    assert _run(engine, "p", [_user("alice", "s1"), _user("alice", "s2"), _user("alice", None), _user("bob", "s1")]) == [
        True, True, False, True]
    d = engine.decide("p", {}, _user("alice", "s3"), now=NOW)
    assert d.limit["scope"] == "principal" and "per principal" in d.message


def test_scope_grant_counts_a_users_credential():
    engine = Engine(load_program(LIMITS))
    assert _run(engine, "g", [_user("alice", "s1"), _user("alice", "s1"), _user("alice", "s1"), _user("alice", "s2")]) == [
        True, True, False, True]
    # without a grant id a user's `scope grant` counts per user
    assert _run(engine, "g", [_user("carol"), _user("carol"), _user("carol")]) == [True, True, False]


def test_grants_and_users_never_share_a_count():
    engine = Engine(load_program(LIMITS))
    assert _run(engine, "p", [Grant("x"), Grant("x"), _user("x"), _user("x"), Grant("x")]) == [True, True, True, True, False]
    # a user without a grant id and a grant whose id is that user's do not share `scope grant`
    assert _run(engine, "g", [Grant("y"), Grant("y"), _user("y"), _user("y")]) == [True, True, True, True]


def test_scope_policy_counts_everyone():
    engine = Engine(load_program(LIMITS))
    assert _run(engine, "e", [Grant("a"), _user("b"), _user("c", "s"), Grant("d")]) == [True, True, True, False]


def test_store_keys():
    store = MemoryCounters()
    engine = Engine(load_program(LIMITS), store, namespace="ns")
    for tool, caller in (("p", _user("alice", "s1")), ("p", Grant("g1")), ("g", _user("alice", "s1")), ("g", _user("bob")),
                         ("g", Grant("g1"))):
        engine.decide(tool, {}, caller, now=NOW)
    start = int(NOW // 3600 * 3600)
    for key in ('principal:User::"alice"', 'principal:Grant::"g1"', "grant:s1", 'grant:User::"bob"', "grant:g1"):
        counter = "per_person" if key.startswith("principal") else "per_grant"
        assert store.value(f"ns|{counter}|{key}|hour:{start}") == 1, key
