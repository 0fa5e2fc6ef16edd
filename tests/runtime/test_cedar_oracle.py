"""Cedar as the oracle: on the shared subset, decisions, the policies that decided and the
policies that errored all equal cedarpy's, on random policies and random requests
(missing attributes, wrong types and short-circuiting included)."""

import re

import cedarpy
from hypothesis import given
from hypothesis import strategies as st

from mcpp.lang.formatter import format_document
from mcpp.lang.program import load_program
from mcpp.runtime.engine import CompiledRule, Engine, Grant
from tests.strategies import GROUPS, calls, documents

_ERR_ID = re.compile(r"policy `([^`]+)`")


def cedar_entities(call) -> list[dict]:
    groups = [{"type": "Group", "id": g} for g in sorted(call.groups)]
    return [
        {"uid": {"type": "Grant", "id": call.grant}, "attrs": {"label": call.label}, "parents": groups},
        *({"uid": {"type": "Group", "id": g}, "attrs": {}, "parents": []} for g in GROUPS),
    ]


def mcpp_verdict(engine: Engine, rules: list[CompiledRule], call):
    grant = Grant(call.grant, call.label, call.groups)
    d = engine.decide(call.tool, call.args, grant, call.server, reserve=False)
    env = engine.env(call.tool, call.args, grant, call.server)
    satisfied, errored = set(), set()
    for r in rules:
        if r.info.tools is not None and call.tool not in r.info.tools:
            continue
        if not all(check(env) for check in r.checks):
            continue
        for fn, want, _ in r.clauses:
            v = fn(env)
            if v is not want:
                if v is not True and v is not False:
                    errored.add(r.id)
                break
        else:
            satisfied.add(r.id)
    effect = "permit" if d.allowed else "forbid"
    reasons = {r.id for r in rules if r.id in satisfied and r.info.effect == effect}
    return d.allowed, reasons, errored


@given(documents(cedar=True), st.lists(calls(cedar=True), min_size=1, max_size=6))
def test_decisions_equal_cedarpy(doc, requests):
    text = format_document(doc)
    program = load_program(text)
    engine = Engine(program)
    rules = [CompiledRule(p, p.stmt) for p in program.policies]
    policy_set = cedarpy.PolicySet.from_str(text)
    for call in requests:
        request = {
            "principal": {"type": "Grant", "id": call.grant},
            "action": {"type": "Action", "id": call.tool},
            "resource": {"type": "Server", "id": call.server},
            "context": {"input": call.args},
        }
        result = cedarpy.is_authorized(request, policy_set, cedar_entities(call))
        assert result.decision in (cedarpy.Decision.Allow, cedarpy.Decision.Deny), result.diagnostics.errors
        allowed, reasons, errored = mcpp_verdict(engine, rules, call)
        context = f"\n{text}\n{call}\ncedar: {result.decision} {result.diagnostics.reasons} {result.diagnostics.errors}"
        assert allowed == (result.decision == cedarpy.Decision.Allow), context
        assert reasons == set(result.diagnostics.reasons), context
        assert errored == {m.group(1) for e in result.diagnostics.errors for m in [_ERR_ID.search(e)] if m}, context


def test_the_fail_open_forbid_is_cedars_too():
    """The research note's example: a forbid reading a missing attribute is skipped in both."""
    text = 'permit (principal, action, resource);\nforbid (principal, action, resource) when { context.input.namespace == "prod" };\n'
    request = {
        "principal": {"type": "Grant", "id": "g"}, "action": {"type": "Action", "id": "delete_pod"},
        "resource": {"type": "Server", "id": "s"}, "context": {"input": {}},
    }
    assert cedarpy.is_authorized(request, text, []).decision == cedarpy.Decision.Allow
    assert Engine(load_program(text)).decide("delete_pod", {}).allowed
