"""`mcpp test --suggest`: per rule a case it decides and one that flips it, printed as
TOML that passes when pasted into the test file."""

import tomllib

import pytest

from mcpp.lang.load import load_policy
from mcpp.policytest.cases import parse_test_file
from mcpp.policytest.runner import coverage_of
from mcpp.policytest.suggest import Suggester, suggest_toml

from .helpers import ROOT, mcpp, pair

EXAMPLES = sorted(p.name for p in ROOT.glob("examples/*.mcpp"))


@pytest.mark.parametrize("name", EXAMPLES)
def test_suggestions_pass_when_pasted_and_name_each_rule(tmp_path, name):
    program = load_policy(ROOT / "examples" / name)
    text = suggest_toml(program, timeout_ms=10000)
    tomllib.loads(text)  # valid TOML as printed
    tf = parse_test_file(text, tmp_path / "s.test.toml")
    rep = coverage_of(program, tf)
    for c in rep.rules:
        assert c["covered"], (name, c["id"], text)  # every rule is decided by some suggestion
    for s in Suggester(program, 10000).all():
        decided = [c for c in s.cases if s.rule in {st.expect.get("policy") for st in c.steps}]
        assert decided or s.notes, (name, s.rule)


def test_a_permit_gets_a_decided_and_a_flipped_call(tmp_path):
    policy = pair(tmp_path, 'permit (principal, action == Action::"pay", resource) when { context.input.amount <= 100 };\n'
                  '@id("no-eur") forbid (principal, action == Action::"pay", resource) when { context.input.cur == "EUR" };\n',
                  "")
    p = mcpp("test", "--suggest", policy)
    assert p.returncode == 0, p.stderr
    cases = tomllib.loads(p.stdout)["case"]
    by_name = {c["name"]: c for c in cases}
    allow = by_name["permit policy0 allows pay"]
    assert allow["decision"] == "allow" and allow["policy"] == "policy0" and allow["arguments"]["amount"] <= 100
    flip = by_name["permit policy0 does not apply: pay is denied"]
    assert flip["decision"] == "deny" and flip["arguments"]["amount"] > 100  # same type, other side
    deny = by_name["forbid no-eur denies pay"]
    assert deny["decision"] == "deny" and deny["arguments"]["cur"] == "EUR"
    ok = by_name["forbid no-eur does not apply: pay is allowed"]
    assert ok["decision"] == "allow" and ok["arguments"]["cur"] != "EUR"
    (tmp_path / "p.test.toml").write_text(p.stdout)
    assert mcpp("test", policy, "--fail-under", "100").returncode == 0


def test_a_limit_gets_a_sequence_that_exhausts_it(tmp_path):
    policy = pair(tmp_path, 'permit (principal, action == Action::"pay", resource) when { context.input.amount <= 100 };\n'
                  '@id("budget") limit "spend" (principal, action == Action::"pay", resource) '
                  'max 1000 per day scope policy increment context.input.amount;\n', "")
    text = mcpp("test", "--suggest", policy).stdout
    over = next(c for c in tomllib.loads(text)["case"] if c["name"].startswith("limit budget: call"))
    *allowed, last = over["calls"]
    assert last["decision"] == "deny" and last["policy"] == "budget"
    assert sum(s.get("repeat", 1) for s in allowed) <= 100  # a large increment: a short sequence


def test_suggest_takes_policies_only(tmp_path):
    p = mcpp("test", "--suggest", tmp_path)
    assert p.returncode == 2 and "--suggest takes policy files" in p.stderr
