"""Validation of who the caller is: declarations, principal scopes, attribute reads
(unknown ones with a did-you-mean), types that can never match, and reads that error
for some callers (warnings, with how each kind of rule fails)."""

from __future__ import annotations

import pytest

from mcpp.lang.program import check_source

DECL = "entity User in [Group] { email: String, scopes: Set<String>, refund_cap?: Long, admin: Bool };\n"


def diags(text: str, decl: str = DECL):
    _, ds = check_source(decl + text, "t.mcpp")
    return [(d.severity, d.message, d.notes) for d in ds]


def errors(text: str, decl: str = DECL) -> list[str]:
    return [m for s, m, _ in diags(text, decl) if s == "error"]


def warnings(text: str, decl: str = DECL) -> list[str]:
    return [m for s, m, _ in diags(text, decl) if s == "warning"]


CLEAN = [
    # the design's examples, guarded or scoped where an attribute may be missing
    'permit (principal in Group::"payments", action == Action::"refund_payment", resource) '
    "when { principal has refund_cap && context.input.amount <= principal.refund_cap };",
    'forbid (principal is User, action == Action::"apply", resource) unless { principal.scopes.contains("k8s:write") };',
    'forbid (principal, action == Action::"apply", resource) unless { principal has scopes && principal.scopes.contains("k8s:write") };',
    'permit (principal == User::"alice", action, resource);',
    'permit (principal is User in Group::"sre", action, resource) when { principal.admin };',
    'permit (principal in User::"alice", action, resource);',
    'permit (principal, action, resource) when { principal is User && principal.email like "*@corp.com" };',
    'forbid (principal, action, resource) when { principal is Grant && principal.label == "intern" };',
    'forbid (principal is Grant, action, resource) when { principal.label == "intern" };',
    'forbid (principal, action, resource) when { principal == User::"bob" && principal.email == "x" };',
    'permit (principal, action, resource) when { if principal has refund_cap then principal.refund_cap > 5 else false };',
    'forbid (principal, action, resource) when { !(principal has refund_cap) || principal.refund_cap > 5 };',
    'permit (principal, action, resource) when { principal.email == context.input.who };',
    'permit (principal, action, resource) when { principal.scopes.containsAny(["a", "b"]) && principal.scopes.isEmpty() == false };',
    'permit (principal, action, resource) when { principal.email in ["a", "b"] && principal.email.contains("@") };',
    'limit "refunds" (principal is User, action, resource) max 10 per day scope principal;',
    # a later clause is evaluated only when the earlier ones hold
    "permit (principal, action, resource) when { principal has refund_cap } when { principal.refund_cap > 1 };",
    # an assert's `when` selects callers: no warning there
    "assert deny (principal, action, resource) when { principal.refund_cap > 1 };",
]


@pytest.mark.parametrize("text", CLEAN)
def test_clean(text):
    assert diags(text) == []


ERRORS = [
    ("permit (principal, action, resource) when { principal.emial == \"x\" };",
     "the principal has no attribute 'emial'", "did you mean 'email'?"),
    ("permit (principal, action, resource) when { principal has refnd_cap };",
     "no principal has the attribute 'refnd_cap'", "did you mean 'refund_cap'?"),
    ("permit (principal, action, resource) when { principal.refund_cap > \"x\" };",
     "`>` compares numbers; this operand is never a number", None),
    ("permit (principal, action, resource) when { principal.email < 5 };",
     "`<` compares numbers, but principal.email is a String: the condition always errors", None),
    ("permit (principal, action, resource) when { principal.email == 5 };",
     "principal.email is a String, so it never equals 5 (always false)", None),
    ("permit (principal, action, resource) when { principal.admin != \"yes\" };",
     "principal.admin is a Bool, so it never equals \"yes\" (always true)", None),
    ("permit (principal, action, resource) when { principal.scopes == \"k8s\" };",
     "principal.scopes is a Set<String>, so it never equals \"k8s\"", None),
    ("permit (principal, action, resource) when { principal.email == principal.admin };",
     "principal.email is a String, so it never equals principal.admin", None),
    ("permit (principal, action, resource) when { principal.scopes.contains(1) };",
     "principal.scopes is a Set<String>, so it never contains 1 (always false)", None),
    ("permit (principal, action, resource) when { principal.admin.contains(\"a\") };",
     "contains() needs a set (or a string), but principal.admin is a Bool", None),
    ("permit (principal, action, resource) when { principal.email.contains(1) };",
     "on a string needs a string argument", None),
    ("permit (principal, action, resource) when { principal.email.isEmpty() };",
     "isEmpty() needs a set, but principal.email is a String", None),
    ("permit (principal, action, resource) when { principal.admin like \"t*\" };",
     "like applies to strings, but principal.admin is a Bool", None),
    ("permit (principal, action, resource) when { principal.scopes.matches(\"k8s\") };",
     "matches() applies to strings, but principal.scopes is a Set<String>", None),
    ("permit (principal, action, resource) when { principal.email.domain == \"x\" };",
     "reading `.domain` needs a record or an entity, but principal.email is a String", None),
    ("permit (principal, action, resource) when { principal.email has domain };",
     "`has` needs a record or an entity, but principal.email is a String", None),
    ("permit (principal, action, resource) when { principal.email };",
     "a condition must be a boolean, but principal.email is a String", None),
    ("permit (principal, action, resource) when { principal.admin && principal.email };",
     "a condition must be a boolean, but principal.email is a String", None),
    ("permit (principal, action, resource) when { principal.email in [1, 2] };",
     "principal.email is a String, so it never is a member of this set", None),
    ("permit (principal, action, resource) when { principal.email in Group::\"g\" };",
     "`in Group::\"g\"` needs an entity on its left, but principal.email is a String", None),
    ("permit (principal, action, resource) when { principal.label < 1 };",
     "`<` compares numbers, but principal.label is a String", None),
    ("permit (principal is Server, action, resource);", "principals are of type Grant or User, not Server", None),
    ("permit (principal == Group::\"g\", action, resource);", "Group cannot be used in the principal scope", None),
    ("permit (principal, action, resource) when { User::\"a\".email == \"x\" };",
     "cannot read attribute 'email' of this value", None),
]


@pytest.mark.parametrize("text, message, note", ERRORS)
def test_errors(text, message, note):
    found = [(m, n) for s, m, n in diags(text) if s == "error"]
    assert any(message in m for m, _ in found), found
    if note is not None:
        assert any(note in x for m, n in found if message in m for x in n), found


def test_without_a_declaration_users_have_no_attributes():
    assert errors('permit (principal, action, resource) when { principal.email == "x" };', decl="") == [
        "a grant has no attribute 'email'"
    ]
    (_, _, notes), = diags('permit (principal, action, resource) when { principal.email == "x" };', decl="")
    assert any("entity User { email: String }" in n for n in notes)
    # users in groups and by id need no declaration
    assert diags('permit (principal == User::"alice", action, resource);\n'
                 'permit (principal is User in Group::"sre", action, resource);', decl="") == []


DECLARATION_ERRORS = [
    ("entity Grant { x: Long };", "Grant cannot be declared: only `entity User` can"),
    ("entity Member;", "unknown entity type Member (only `entity User` can be declared)"),
    ("entity User in [Server];", "users can be in groups only (`in [Group]`), not in Server"),
    (DECL + DECL.strip(), "`entity User` is declared twice"),
]


@pytest.mark.parametrize("text, message", DECLARATION_ERRORS)
def test_declaration_errors(text, message):
    assert message in errors(text, decl=""), errors(text, decl="")


WARNINGS = [
    # (rule, the warning's words, how it fails)
    ("permit (principal, action, resource) when { context.input.amount <= principal.refund_cap };",
     "`refund_cap` is optional for users; grants have no `refund_cap`", "fails closed"),
    ("permit (principal is User, action, resource) when { context.input.amount <= principal.refund_cap };",
     "`refund_cap` is optional for users:", "fails closed"),
    ("forbid (principal, action, resource) unless { principal.scopes.contains(\"k8s:write\") };",
     "grants have no `scopes`", "fails open"),
    ("forbid (principal, action, resource) when { principal.label == \"intern\" };",
     "users have no `label`", "fails open"),
    ("limit \"c\" (principal, action, resource) max 1 per day when { principal.admin };",
     "grants have no `admin`", "fails open"),
    ("forbid (principal is User, action, resource) when { principal.refund_cap > 10 };",
     "`refund_cap` is optional for users", "fails open"),
    ("assert deny (principal, action, resource) unless { principal.refund_cap > 10 };",
     "`refund_cap` is optional for users", "says nothing"),
    # a `has` on another attribute guards nothing
    ("forbid (principal, action, resource) when { principal has email && principal.refund_cap > 1 };",
     "`refund_cap` is optional", "fails open"),
    # `||` continues only when the left side is false
    ("forbid (principal, action, resource) when { principal has refund_cap || principal.refund_cap > 1 };",
     "`refund_cap` is optional", "fails open"),
]


@pytest.mark.parametrize("text, words, how", WARNINGS)
def test_reads_that_error_for_some_callers_warn(text, words, how):
    ws = warnings(text)
    assert len(ws) == 1 and words in ws[0] and how in ws[0], ws
    assert errors(text) == []


def test_permits_reading_what_grants_lack_do_not_warn():
    """A permit that only users can satisfy fails closed for grants: that is the point."""
    assert diags('permit (principal, action, resource) when { principal.scopes.contains("k8s:write") };') == []


def test_a_policy_that_never_names_users_reads_label_freely():
    assert diags('forbid (principal, action, resource) when { principal.label == "intern" };', decl="") == []
