"""What the applications need of the public API (the gateway, the language server), used
as they use it: users, approved calls, counter namespaces, a file's bytes, typed proofs,
lint findings and diagnostics with offsets, what a policy names, and the decision cache."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings, strategies as st

import mcpp

NOON = datetime(2030, 6, 1, 12, 0, tzinfo=timezone.utc)

STAFF = '''\
entity User in [Group] { email: String, refund_cap?: Long };
@id("refunds")
permit (principal is User, action == Action::"refund", resource)
when { principal has refund_cap && context.input.amount <= principal.refund_cap };
@id("reads") permit (principal, action == Action::"read", resource);
@id("deploys") @approval("Production deploys need a second person.")
permit (principal in Group::"ops", action == Action::"deploy", resource);
@id("deploy-budget")
limit "deploys" (principal, action == Action::"deploy", resource) max 1 per hour scope principal;
hide Action::"drop_db";
'''

ALICE = mcpp.User("alice", {"email": "a@example.com", "refund_cap": 500}, frozenset({"ops"}))


@pytest.fixture
def staff() -> mcpp.Policy:
    return mcpp.load_policy(STAFF, filename="staff.mcpp")


# ---- users ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "args, principal, expected",
    [
        ({"amount": 200}, ALICE, ("allow", "/tools/refund")),
        ({"amount": 900}, ALICE, ("deny", "/policies/refunds")),  # over alice's cap
        ({"amount": 1}, mcpp.User("bob", {"email": "b@example.com"}), ("deny", "/policies/refunds")),  # no cap
        ({"amount": 1}, mcpp.User("bob", {}), ("deny", "/principal")),  # no email: does not fit `entity User`
        ({"amount": 1}, mcpp.User("bob", {"email": 7}), ("deny", "/principal")),  # mistyped
        ({"amount": 1}, mcpp.Grant("g1"), ("deny", "/policies/refunds")),  # not a user
    ],
)
def test_a_user_is_decided_by_its_claims(staff, args, principal, expected):
    d = staff.decide("refund", args, principal=principal)
    assert (d.decision, d.rule) == expected


def test_a_user_that_does_not_fit_names_the_declaration(staff):
    d = staff.decide("refund", {"amount": 1}, principal=mcpp.User("bob", {}))
    assert "entity User" in d.message and "'email'" in d.message
    assert d.span is not None and (d.span.line, d.span.col) == (1, 1)


@pytest.mark.parametrize(
    "principal, error",
    [
        (mcpp.User(7), "User.id must be a string"),  # type: ignore[arg-type]
        (mcpp.User("u", {}, "ops"), "User.groups"),  # type: ignore[arg-type]
    ],
)
def test_a_user_that_is_not_one_is_refused(staff, principal, error):
    with pytest.raises(TypeError, match=error):
        staff.decide("refund", {}, principal=principal)


def test_user_groups_given_as_any_collection_of_names(staff):
    as_list = mcpp.User("alice", {"email": "a@example.com"}, ["ops"])  # type: ignore[arg-type]
    assert staff.decide("deploy", {}, principal=as_list, dry_run=True).decision == "approval"


def test_what_a_user_sees(staff):
    tools = ["refund", "read", "deploy", "drop_db", "other"]
    assert staff.visible(tools, principal=ALICE) == {"refund", "read", "deploy"}
    plain = mcpp.User("carol", {"email": "c@example.com"})
    assert staff.visible(tools, principal=plain) == {"read"}  # exact for this user: no cap, so no refund
    assert staff.visible(tools, principal=mcpp.User("bob", {})) == set()  # does not fit: sees nothing
    assert staff.visible(tools, principal=mcpp.Grant("g1", "", frozenset({"ops"}))) == {"read", "deploy"}


def test_when_the_analyzer_fails_visible_says_so_and_keeps_what_is_certain(staff, monkeypatch):
    import mcpp.analyzer.visibility as visibility

    def broken(*_args, **_kwargs):
        raise RuntimeError("solver gone")

    monkeypatch.setattr(visibility, "visible_tools", broken)
    monkeypatch.setattr(visibility, "visible_tools_for_user", broken)
    tools = ["refund", "read", "deploy", "drop_db", "other"]
    seen: list[Exception] = []
    # a grant: every tool but the hidden one (conditions and scopes taken as possibly true)
    assert staff.visible(tools, principal="g1", on_error=seen.append) == {"refund", "read", "deploy", "other"}
    # a user: also not the tools whose every permit names other principals (deploy is for ops)
    plain = mcpp.User("carol", {"email": "c@example.com"})
    assert staff.visible(tools, principal=plain, on_error=seen.append) == {"refund", "read"}
    assert [str(e) for e in seen] == ["solver gone", "solver gone"]
    assert staff.visible(tools, principal="g1") == {"refund", "read", "deploy", "other"}  # no callback: quiet


def test_the_user_declaration(staff):
    decl = staff.user_declaration
    assert decl is not None and decl.groups is True
    assert decl.attributes == (mcpp.UserAttribute("email", "String"), mcpp.UserAttribute("refund_cap", "Long", True))
    assert decl.attribute("email") == mcpp.UserAttribute("email", "String", False)
    assert decl.attribute("nope") is None
    assert (decl.span.file, decl.span.line) == ("staff.mcpp", 1)
    assert mcpp.load_policy("permit (principal, action, resource);").user_declaration is None
    no_groups = mcpp.load_policy("entity User { email: String };\npermit (principal, action, resource);")
    assert no_groups.user_declaration.groups is False


# ---- approvals, namespaces, bytes --------------------------------------------------------

def test_an_approved_call_is_allowed_and_counts(staff):
    ops = mcpp.Grant("g1", "", frozenset({"ops"}))
    waiting = staff.decide("deploy", {}, principal=ops, now=NOON)
    assert (waiting.decision, waiting.approval) == ("approval", "Production deploys need a second person.")
    assert staff.decide("deploy", {}, principal=ops, now=NOON).decision == "approval"  # waiting counts nothing
    run = staff.decide("deploy", {}, principal=ops, now=NOON, approved=True)
    assert run.allowed and run.needs_approval and run.rule == "/policies/deploys"
    again = staff.decide("deploy", {}, principal=ops, now=NOON, approved=True)
    assert not again.allowed and again.limit is not None and again.limit.counter == "deploys"
    run.release()
    assert staff.decide("deploy", {}, principal=ops, now=NOON, approved=True).allowed


ONE_AN_HOUR = "permit (principal, action, resource);\nlimit \"calls\" (principal, action, resource) max 1 per hour;\n"


def test_policies_sharing_a_store_count_apart_unless_they_share_a_namespace():
    store = mcpp.MemoryCounters()
    a = mcpp.load_policy(ONE_AN_HOUR, counters=store, namespace="k8s|server")
    b = mcpp.load_policy(ONE_AN_HOUR, counters=store, namespace="k8s|grant-policy:ci")
    c = mcpp.load_policy(ONE_AN_HOUR, counters=store, namespace="k8s|server")
    assert (a.namespace, a.counters) == ("k8s|server", store)
    assert a.decide("t", {}, principal="g", now=NOON).allowed
    assert b.decide("t", {}, principal="g", now=NOON).allowed  # its own budget
    assert not c.decide("t", {}, principal="g", now=NOON).allowed  # a's budget
    assert mcpp.load_policy(ONE_AN_HOUR).namespace == "default"
    with pytest.raises(TypeError, match="namespace"):
        mcpp.load_policy(ONE_AN_HOUR, namespace=3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "data, filename, origin",
    [
        (b"permit (principal, action, resource);\r\n", "p.mcpp", "mcpp"),
        (b"permit (principal, action, resource);", None, "mcpp"),
        (b'{"version": "1", "default": "deny", "tools": {"t": {}}}', "p.json", "json"),
        (b'{"version": "1", "default": "deny", "tools": {"t": {}}}', None, "json"),
    ],
)
def test_a_files_bytes_load_like_the_file(tmp_path, data, filename, origin):
    policy = mcpp.load_policy(data, filename=filename)
    assert policy.origin == origin and policy.filename == (filename or "<input>")
    if filename is not None:
        (tmp_path / filename).write_bytes(data)
        from_file = mcpp.load_policy(tmp_path / filename)
        assert from_file.origin == origin
        assert from_file.decide("t").to_dict() | {"span": None} == policy.decide("t").to_dict() | {"span": None}


def test_bytes_that_are_not_utf8_are_a_file_error():
    with pytest.raises(mcpp.PolicyFileError) as e:
        mcpp.load_policy(b"permit \xff;", filename="p.mcpp")
    assert e.value.diagnostics[0].file == "p.mcpp" and "not UTF-8" in str(e.value)


@pytest.mark.parametrize(
    "text, filename, error",
    [
        # a name says which form text is, as it would for the file
        ("{not json", "p.json", mcpp.PolicySyntaxError),
        ("permit (principal, action, resource)", "p.json", mcpp.PolicySyntaxError),
        ('{"version": "1"}', "p.mcpp", mcpp.PolicySyntaxError),  # .mcpp text that starts with `{`
    ],
)
def test_text_is_read_as_its_filename_says(text, filename, error):
    with pytest.raises(error):
        mcpp.load_policy(text + "\n", filename=filename)


# ---- what a policy names -------------------------------------------------------------------

def test_the_tools_a_policy_names(staff):
    assert staff.tools == {"refund", "read", "deploy", "drop_db"}
    grouped = mcpp.load_policy('group Action::"ro" = [Action::"get", Action::"list"];\n'
                               'permit (principal, action in Action::"ro", resource);\n'
                               'forbid (principal, action, resource) when { action == Action::"rm" };')
    assert grouped.tools == {"get", "list", "ro", "rm"}  # a group is itself an action (language.md §3.3)


# ---- proofs: typed, lint, analyze ------------------------------------------------------------

BYPASS = '''\
permit (principal, action == Action::"refund_payment", resource);
@id("big-refunds")
forbid (principal, action == Action::"refund_payment", resource)
when { context.input.amount > 1000 };
'''
CATALOG = {"tools": [{"name": "refund_payment", "inputSchema": {
    "type": "object", "properties": {"amount": {"type": "number"}}, "required": ["amount"]}}]}


@pytest.fixture
def catalog_file(tmp_path):
    path = tmp_path / "tools.json"
    path.write_text(json.dumps(CATALOG))
    return path


def test_lint_finds_a_bypassable_forbid_and_a_catalog_types_it_away(catalog_file):
    policy = mcpp.load_policy(BYPASS, filename="refunds.mcpp")
    found = policy.lint(errors_only=True)
    assert [(d.code, d.severity, d.span.line) for d in found] == [("forbid-bypass", "error", 4)]
    assert found[0].data["counterexample"]["request"]["params"]["arguments"] == {"amount": "1500"}
    assert found[0].data["docs"] == "docs/lints/forbid-bypass.md"
    assert "forbid-bypass" in [d.code for d in policy.lint()]  # the full lint has it too
    assert policy.lint(errors_only=True, catalog=catalog_file) == []  # typed: amount is a number
    assert policy.lint(errors_only=True, catalog=str(catalog_file)) == []
    typed = mcpp.load_policy(BYPASS, catalog=catalog_file)  # the policy's own catalog types its proofs
    assert typed.lint(errors_only=True) == [] and typed.catalog is not None


def test_verify_is_typed_by_the_catalog(catalog_file):
    source = BYPASS + '@id("no-string-amounts") assert deny (principal, action == Action::"refund_payment", resource) ' \
                      'when { context.input.amount == "1500" };\n'
    policy = mcpp.load_policy(source)
    assert [r.status for r in policy.verify()] == ["fail"]  # "1500" bypasses the forbid: the permit allows it
    assert [r.status for r in policy.verify(catalog=catalog_file)] == ["pass"]


def test_a_catalog_that_cannot_be_used_is_a_catalog_error(tmp_path):
    policy = mcpp.load_policy(BYPASS)
    for method in (policy.verify, policy.lint, policy.analyze):
        with pytest.raises(mcpp.CatalogError) as e:
            method(catalog=tmp_path / "missing.json")
        assert "no such catalog file" in str(e.value)


def test_analyze_is_what_the_language_server_shows():
    text = BYPASS + '@id("always") assert allow (principal, action == Action::"refund_payment", resource);\n'
    found = mcpp.load_policy(text, filename="r.mcpp").analyze()
    by_code = {d.code: d for d in found}
    assert set(by_code) == {"forbid-bypass", "assert-failed"}
    failed = by_code["assert-failed"]
    assert failed.severity == "error" and failed.data["assert"] == "always" and "counterexample" in failed.data
    # offsets: the span is exactly the statement's text
    s = failed.span
    assert text[s.start:s.end].startswith('@id("always") assert allow') and s.line == 5
    fix = by_code["forbid-bypass"].data.get("fix")
    assert fix is None or all("start" in e for e in fix["edits"])


def test_analyze_never_raises_for_the_policy(monkeypatch):
    import mcpp.analyzer.lints as lints

    def broken(*_args, **_kwargs):
        raise RuntimeError("lint exploded")

    monkeypatch.setattr(lints, "lint", broken)
    found = mcpp.load_policy(BYPASS).analyze()
    assert [(d.code, d.severity) for d in found] == [("analyzer-error", "info")]
    assert "lint exploded" in found[0].message


def test_a_span_is_equal_by_place_not_offset():
    assert mcpp.Span("p.mcpp", 1, 1, 1, 5) == mcpp.Span("p.mcpp", 1, 1, 1, 5, 10, 14)


def test_named_catalog(tmp_path, catalog_file):  # noqa: ARG001 (the fixture writes tools.json beside the policy)
    (tmp_path / "named.mcpp").write_text('@catalog("tools.json") default deny;\n' + BYPASS)
    named = mcpp.load_policy(tmp_path / "named.mcpp")
    cat = named.named_catalog()
    assert cat is not None and set(cat.tools) == {"refund_payment"}
    assert named.lint(errors_only=True, catalog=cat) == []
    assert mcpp.load_policy(BYPASS, filename=str(tmp_path / "plain.mcpp")).named_catalog() is None
    (tmp_path / "broken.mcpp").write_text('@catalog("gone.json") default deny;\n' + BYPASS)
    with pytest.raises(mcpp.CatalogError, match="no such catalog file"):
        mcpp.load_policy(tmp_path / "broken.mcpp").named_catalog()


# ---- the decision cache --------------------------------------------------------------------

CALLS = st.tuples(
    st.sampled_from(["refund", "read", "deploy", "drop_db", "other"]),
    st.one_of(st.just({}), st.fixed_dictionaries({"amount": st.integers(-5, 1000)}), st.just("not an object")),
    st.sampled_from([None, "g1", mcpp.Grant("g2", "", frozenset({"ops"})), ALICE, mcpp.User("bob", {})]),
    st.sampled_from(["default", "prod"]),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(CALLS, min_size=1, max_size=25))
def test_a_reused_decision_is_the_one_a_fresh_policy_makes(calls):
    """`decide` hands back the public form of a shared engine decision from a cache: over any
    sequence of calls it is what a policy that never decided before says."""
    warm = mcpp.load_policy(STAFF, filename="staff.mcpp")
    for tool, args, principal, server in calls:
        got = warm.decide(tool, args, principal=principal, server=server, now=NOON, dry_run=True)
        fresh = mcpp.load_policy(STAFF, filename="staff.mcpp").decide(tool, args, principal=principal, server=server,
                                                                      now=NOON, dry_run=True)
        assert got == fresh and got.to_dict() == fresh.to_dict()


def test_an_allowed_call_that_holds_a_budget_is_never_shared():
    policy = mcpp.load_policy(ONE_AN_HOUR.replace("max 1", "max 2"))
    first = policy.decide("t", {}, principal="g", now=NOON)
    second = policy.decide("t", {}, principal="g", now=NOON)
    assert first.allowed and second.allowed and first is not second
    first.release()
    first.release()  # idempotent: gives back one call's budget once
    assert policy.decide("t", {}, principal="g", now=NOON).allowed
    assert not policy.decide("t", {}, principal="g", now=NOON).allowed


class _Untouchable:
    """A counter store that fails any use: `limited` says when it is never used."""

    def reserve(self, charges):
        raise AssertionError(f"reserve {charges}")

    def release(self, charges):
        raise AssertionError(f"release {charges}")

    def value(self, key):
        raise AssertionError(f"value {key}")


def test_limited_says_whether_decide_can_touch_the_store():
    plain = mcpp.load_policy("permit (principal, action, resource);\nforbid (principal, action == Action::\"x\", resource);",
                             counters=_Untouchable())
    assert plain.limited is False
    assert plain.decide("echo", {}).allowed and not plain.decide("x", {}).allowed  # the store was never asked
    limited = mcpp.load_policy('permit (principal, action, resource);\n'
                               'limit "n" (principal, action == Action::"x", resource) max 1 per hour scope grant;')
    assert limited.limited is True
    assert limited.decide("x", {}, principal="g1").allowed and not limited.decide("x", {}, principal="g1").allowed
    as_json = mcpp.load_policy(json.dumps(limited.compile()), filename="p.json")
    assert as_json.limited is True
