"""Test files with user callers (`user = { id, attrs, groups }`) and `mcpp test --suggest`
for policies with users: cases by users run on the engine as the gateway's users do, an
attribute the policy does not declare is an error (a misspelt claim would test nothing),
reports show the user, and suggested cases cover user callers — each one checked on the
engine — while a policy without users gets exactly the grant cases it always got."""

import json
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import event, given, settings

from mcpp.lang.formatter import format_document
from mcpp.lang.load import load_policy
from mcpp.lang.program import load_program
from mcpp.policytest.cases import TestFileError, parse_test_file
from mcpp.policytest.runner import run_with_coverage
from mcpp.policytest.suggest import Suggester, suggest_toml
from mcpp.runtime.engine import Grant, User

from ..identity.strategies import identity_documents
from .helpers import ROOT, mcpp, pair

POLICY = """\
entity User in [Group] { email: String, scopes: Set<String>, refund_cap?: Long };

@id("refund-cap")
permit (principal in Group::"payments", action == Action::"refund", resource)
when { principal has refund_cap && context.input.amount <= principal.refund_cap };

permit (principal, action == Action::"apply", resource);

@id("needs-write")
forbid (principal is User, action == Action::"apply", resource)
unless { principal.scopes.contains("k8s:write") };

@id("ci-only")
forbid (principal is Grant, action == Action::"apply", resource) when { principal.label != "ci" };

@id("per-user")
limit "refunds" (principal, action == Action::"refund", resource) max 2 per day scope principal;
"""

ALICE = 'user = { id = "alice", attrs = { email = "a@acme.com", scopes = ["k8s:write"], refund_cap = 500 }, groups = ["payments"] }'

CASES = f"""\
[[case]]
name = "a payments user refunds within her cap"
tool = "refund"
arguments = {{ amount = 500 }}
{ALICE}
decision = "allow"
policy = "refund-cap"

[[case]]
name = "over her cap"
tool = "refund"
arguments = {{ amount = 501 }}
{ALICE}
decision = "deny"

[[case]]
name = "a user without the write scope may not apply"
tool = "apply"
user = {{ id = "bob", attrs = {{ email = "b@acme.com", scopes = [] }} }}
decision = "deny"
policy = "needs-write"

[[case]]
name = "a user without a required claim is refused wholesale"
tool = "apply"
user = "carol"
decision = "deny"
rule = "/principal"

[[case]]
name = "two refunds a day per user, whatever the call's caller says"
tool = "refund"
arguments = {{ amount = 1 }}
{ALICE}

[[case.calls]]
repeat = 2
decision = "allow"

[[case.calls]]
decision = "deny"
policy = "per-user"

[[case.calls]]
user = {{ id = "dave", attrs = {{ email = "", scopes = [], refund_cap = 5 }}, groups = ["payments"] }}
decision = "allow"

[[case.calls]]
grant = {{ id = "ci", label = "ci" }}
tool = "apply"
decision = "allow"
"""


def test_cases_by_users_run_on_the_engine(tmp_path):
    policy = pair(tmp_path, POLICY, CASES)
    p = mcpp("test", policy, "--coverage")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "5 passed, 0 failed (5 cases in 1 test file)" in p.stdout


def test_the_caller_of_a_call_is_its_own_or_the_cases(tmp_path):
    tf = parse_test_file(CASES, tmp_path / "p.test.toml")
    alice = User("alice", {"email": "a@acme.com", "scopes": ["k8s:write"], "refund_cap": 500}, frozenset({"payments"}))
    assert tf.cases[0].steps[0].caller == alice
    assert tf.cases[3].steps[0].caller == User("carol")
    seq = tf.cases[4].steps
    assert seq[0].caller == alice and seq[1].caller == alice
    assert seq[2].caller == User("dave", {"email": "", "scopes": [], "refund_cap": 5}, frozenset({"payments"}))
    assert seq[3].caller == Grant("ci", "ci")
    assert seq[0].caller_at == ("case", 4, "user") and seq[2].caller_at == ("case", 4, "calls", 2, "user")


# (test file text, the diagnostics expected: "line:col: key path: message" fragments)
BAD = [
    ('[[case]]\nname = "x"\ntool = "t"\nuser = 5\ndecision = "deny"\n',
     ['4:1: case[0].user: expected a user id or a table { id = "…", attrs = { … }, groups = ["…"] }']),
    ('[[case]]\nname = "x"\ntool = "t"\nuser = { ids = "u" }\ndecision = "deny"\n',
     ["4:1: case[0].user.id: required", "4:1: case[0].user.ids: unknown key 'ids' (did you mean 'id'?)"]),
    ('[[case]]\nname = "x"\ntool = "t"\nuser = { id = "u", attr = {} }\ndecision = "deny"\n',
     ["4:1: case[0].user.attr: unknown key 'attr' (did you mean 'attrs'?)"]),
    ('[[case]]\nname = "x"\ntool = "t"\nuser = { id = "" }\ndecision = "deny"\n', ["4:1: case[0].user.id: a user id is not empty"]),
    ('[[case]]\nname = "x"\ntool = "t"\nuser = ""\ndecision = "deny"\n', ["4:1: case[0].user: a user id is not empty"]),
    ('[[case]]\nname = "x"\ntool = "t"\nuser = { id = "u", groups = "sre" }\ndecision = "deny"\n',
     ["4:1: case[0].user.groups: expected an array"]),
    ('[[case]]\nname = "x"\ntool = "t"\ngrant = "g"\nuser = "u"\ndecision = "deny"\n',
     ["5:1: case[0].user: give `grant` or `user`, not both"]),
    ('[[case]]\nname = "x"\ntool = "t"\nuser = { id = "u", attrs = { since = 2026-01-01 } }\ndecision = "deny"\n',
     ["4:1: case[0].user.attrs.since: a TOML date is not a JSON value"]),
    ('[[case]]\nname = "x"\ntool = "t"\nuser = { id = "u", attrs = { cap = inf } }\ndecision = "deny"\n',
     ["4:1: case[0].user.attrs.cap: not a JSON number"]),
    ('[[case]]\nname = "x"\ntool = "t"\n[[case.calls]]\ngrant = "g"\nuser = "u"\ndecision = "deny"\n',
     ["6:1: case[0].calls[0].user: give `grant` or `user`, not both"]),
]


@pytest.mark.parametrize("text,expected", BAD)
def test_invalid_users_name_the_key_and_its_line(tmp_path, text, expected):
    with pytest.raises(TestFileError) as e:
        parse_test_file(text, tmp_path / "p.test.toml")
    rendered = [f"{d.span.line}:{d.span.col}: {d.message}" for d in e.value.diagnostics]
    assert len(rendered) == len(expected), rendered
    for got, want in zip(rendered, expected):
        assert got.startswith(want), (got, want)


def test_an_attribute_the_policy_does_not_declare_is_an_error(tmp_path):
    """The engine drops an attribute `entity User` does not declare, so `scope` for
    `scopes` would test a user without scopes: refused, with the line and the near name."""
    tests = ('[[case]]\nname = "x"\ntool = "apply"\n'
             'user = { id = "u", attrs = { email = "", scope = ["k8s:write"] } }\ndecision = "allow"\n'
             '[[case]]\nname = "y"\ntool = "apply"\n[[case.calls]]\n'
             'user = { id = "u", attrs = { email = "", scopes = [], nick = "n" } }\ndecision = "deny"\n')
    policy = pair(tmp_path, POLICY, tests)
    p = mcpp("test", policy)
    assert p.returncode == 1, p.stdout + p.stderr
    assert f"{tmp_path / 'p.test.toml'}:4:1: error: case[0].user.attrs.scope: {policy} declares no user attribute " \
           "'scope' (did you mean 'scopes'?)" in p.stderr
    assert "10:1: error: case[1].calls[0].user.attrs.nick:" in p.stderr and "(it declares email, scopes, refund_cap)" in p.stderr
    assert "0 cases in 0 test files" in p.stdout
    # a policy without `entity User` declares no attribute at all
    bare = pair(tmp_path, 'permit (principal, action, resource);\n',
                '[[case]]\nname = "x"\ntool = "t"\nuser = { id = "u", attrs = { email = "" } }\ndecision = "allow"\n', "q")
    p = mcpp("test", bare)
    assert p.returncode == 1 and "(it has no `entity User { … }` declaration)" in p.stderr, p.stderr


FAILING = f"""\
[[case]]
name = "wrong"
tool = "refund"
arguments = {{ amount = 501 }}
{ALICE}
decision = "allow"
"""


def test_reports_show_the_user(tmp_path):
    policy = pair(tmp_path, POLICY, FAILING)
    p = mcpp("test", policy)
    assert p.returncode == 1
    assert ('call: refund {"amount": 501} by User::"alice" {email: "a@acme.com", refund_cap: 500, scopes: ["k8s:write"], '
            'groups: ["payments"]} on server "default"') in p.stdout, p.stdout
    j = json.loads(mcpp("test", policy, "--format", "json").stdout)
    failure = j["files"][0]["cases"][0]["failure"]
    assert failure["user"] == {"id": "alice", "attrs": {"email": "a@acme.com", "refund_cap": 500, "scopes": ["k8s:write"]},
                               "groups": ["payments"]}
    assert "grant" not in failure
    x = ET.fromstring(mcpp("test", policy, "--format", "junit").stdout)
    assert 'by User::"alice"' in x.find(".//failure").text


def test_coverage_counts_user_calls_and_skips_refused_users(tmp_path):
    program = load_program(POLICY, "p.mcpp")
    tf = parse_test_file(CASES, tmp_path / "p.test.toml")
    rep, results = run_with_coverage(program, tf)
    assert all(r.passed for r in results)
    covered = {c["id"]: c["covered"] for c in rep.rules}
    assert covered["refund-cap"] and covered["needs-write"] and covered["ci-only"] is False


# ---- --suggest ----------------------------------------------------------------------------


def test_suggest_covers_user_callers(tmp_path):
    policy = pair(tmp_path, POLICY, "")
    p = mcpp("test", "--suggest", policy)
    assert p.returncode == 0, p.stderr
    cases = tomllib.loads(p.stdout)["case"]
    by_name = {c["name"]: c for c in cases}
    refund = by_name["permit refund-cap allows refund by a user"]
    user = refund["user"]
    assert "payments" in user["groups"] and user["attrs"]["refund_cap"] >= refund["arguments"]["amount"]
    assert {"email", "scopes"} <= set(user["attrs"])  # the required claims: a user the engine takes
    flip = by_name["permit refund-cap does not apply: refund by a user is denied"]
    assert flip["user"] == user and flip["arguments"]["amount"] > user["attrs"]["refund_cap"]
    write = by_name["forbid needs-write denies apply by a user"]
    assert "k8s:write" not in write["user"]["attrs"]["scopes"] and write["policy"] == "needs-write"
    assert "k8s:write" in by_name["forbid needs-write does not apply: apply by a user is allowed"]["user"]["attrs"]["scopes"]
    assert by_name["forbid ci-only denies apply by a grant"]["policy"] == "ci-only"
    assert any(n.startswith("limit per-user: call 3 to refund by a user") for n in by_name)
    assert "# no call by a grant satisfies it" in p.stdout  # refund-cap names a group of users
    assert "# no call by a user satisfies it" in p.stdout  # ci-only is for grants
    (tmp_path / "p.test.toml").write_text(p.stdout)
    q = mcpp("test", policy, "--coverage")
    assert q.returncode == 0, q.stdout + q.stderr
    assert "rules               4      4   100.0%" in q.stdout and "limits              2      2   100.0%" in q.stdout


@pytest.mark.parametrize("name", sorted(p.name for p in ROOT.glob("examples/*.mcpp")))
def test_a_policy_without_users_gets_grant_cases_as_before(name):
    program = load_policy(ROOT / "examples" / name)
    assert not program.identity_aware
    text = suggest_toml(program, timeout_ms=10000)
    assert all("user" not in c for c in tomllib.loads(text)["case"])
    assert " by a grant" not in text and " by a user" not in text
    assert Suggester(program).kinds == ("grant",)


@settings(max_examples=15, deadline=None)
@given(identity_documents(max_policies=3))
def test_suggestions_for_policies_with_users_pass_when_pasted(doc):
    """Random policies over users and grants: the suggestions are valid TOML, parse as a
    test file, and every case — by a user or a grant — passes on the engine; a rule a case
    names as deciding is covered."""
    program = load_program(format_document(doc), "p.mcpp")
    text = suggest_toml(program, timeout_ms=5000)
    tf = parse_test_file(text, Path("p.test.toml"))
    rep, results = run_with_coverage(program, tf)
    failed = [(r.case.name, r.mismatch) for r in results if not r.passed]
    assert not failed, (format_document(doc), text, failed)
    covered = {c["id"]: c["covered"] for c in rep.rules}
    effect = {p.id: p.effect for p in program.policies}
    # the rule that decided: a permit that allowed, a forbid that denied (a denial may name
    # a permit that did not apply: "the call does not satisfy …")
    deciding = {s.expect["policy"] for c in tf.cases for s in c.steps
                if effect.get(s.expect.get("policy")) == {"allow": "permit", "deny": "forbid"}.get(s.expect["decision"])}
    assert all(covered[i] for i in deciding), (format_document(doc), text, deciding, covered)
    event("some case by a user" if any(isinstance(s.caller, User) for c in tf.cases for s in c.steps) else "grants only")
