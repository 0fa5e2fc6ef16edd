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


def _name_agrees(name: str, decision: str) -> bool:
    """A suggested case's name states its decision: "… allows …" / "… is allowed" allow,
    "… denies …" / "… is denied" deny ("applies to … (another rule decides)" says neither)."""
    if " allows " in name or name.endswith(" is allowed"):
        return decision == "allow"
    if " denies " in name or name.endswith(" is denied"):
        return decision == "deny"
    return "(another rule decides)" in name


# permits over the set operators the analysis models only approximately (finding 3 of
# the hostile review: a `containsAny` between a user's set and an argument array)
SET_RULES = [
    ('@id("any") permit (principal is User, action == Action::"t", resource) '
     "when { context.input has arr && principal.ids.containsAny(context.input.arr) };", "any"),
    ('@id("all") permit (principal is User, action == Action::"t", resource) '
     "when { context.input has arr && principal.ids.containsAll(context.input.arr) };", "all"),
    ('@id("in") permit (principal is User, action == Action::"t", resource) '
     "when { context.input has x && context.input.x in principal.ids };", "in"),
    ('@id("any") forbid (principal is User, action == Action::"t", resource) '
     "when { context.input has arr && principal.ids.containsAny(context.input.arr) };", "any"),
]


@pytest.mark.parametrize(("rule", "rid"), SET_RULES)
def test_a_case_is_named_for_the_decision_the_engine_gives(tmp_path, rule, rid):
    head = "entity User in [Group] { ids: Set<Long> };\n"
    extra = 'permit (principal, action == Action::"t", resource);\n' if rule.startswith('@id("any") forbid') else ""
    path = tmp_path / "q.mcpp"
    path.write_text(head + extra + rule + "\n")
    program = load_policy(path)
    for s in Suggester(program, 10000).all():
        names = [c.name for c in s.cases]
        assert len(names) == len(set(names)), names
        for c in s.cases:
            assert _name_agrees(c.name, c.steps[-1].expect["decision"]), (c.name, c.steps[-1].expect)
        seen = [tuple(sorted(map(str, c.steps[0].arguments.items()))) + (str(c.steps[0].caller),) for c in s.cases]
        assert len(seen) == len(set(seen)), (rid, [c.name for c in s.cases])  # no case repeated under two names


def test_an_unconfirmed_witness_is_a_note_not_a_mislabelled_case(tmp_path):
    path = tmp_path / "q.mcpp"
    path.write_text("entity User in [Group] { ids: Set<Long> };\n" + SET_RULES[0][0] + "\n")
    sug = next(s for s in Suggester(load_policy(path), 10000).all() if s.rule == "any")
    assert not any(c.steps[0].expect["decision"] == "allow" and "allows" not in c.name for c in sug.cases)
    if not any(c.name.startswith("permit any allows") for c in sug.cases):
        # the solver's call did not replay: said so, with the over-approximation named
        assert any("no call allowed by any could be confirmed" in n and "containsAny" in n for n in sug.notes), sug.notes
