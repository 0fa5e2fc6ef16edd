"""Cedar as the oracle: on the shared subset, the decision, the policies that decided it
(Cedar's reasons) and the policies whose evaluation errored all equal cedarpy's, on random
policies and random requests (missing attributes, wrong types, short-circuiting, i64
edges, action groups and tools named like groups included).

mcpp is asked through its public `Engine.explain`, never through engine internals.
Action groups reach Cedar the way Cedar knows them: as Action entities with parents
(`group Action::"ops" = [Action::"t0"]` makes `Action::"ops"` a parent of
`Action::"t0"`; Cedar closes the hierarchy transitively). The `group` statements are
mcpp's, so Cedar gets the policies alone; policy ids are Cedar's positional
`policy0`, `policy1`, … which mcpp's default ids follow.
"""

import re

import cedarpy
from hypothesis import given, note
from hypothesis import strategies as st

from mcpp.lang import ir
from mcpp.lang.formatter import format_document
from mcpp.lang.program import load_program
from mcpp.runtime.engine import Engine, Grant
from tests.profiles import programs_in_ci, scaled
from tests.strategies import ACTION_IDS, GROUPS, calls_for, documents, respell, spellings

_ERR_ID = re.compile(r"policy `([^`]+)`")


def cedar_entities(doc: ir.Document, call) -> list[dict]:
    """The grant (label, groups), the grant groups, and every Action entity with the
    groups that directly hold it as parents."""
    parents: dict[str, list[dict]] = {}
    for s in doc.statements:
        if isinstance(s, ir.Group):
            for m in s.members:
                parents.setdefault(m.id, []).append({"type": "Action", "id": s.entity.id})
    groups = [{"type": "Group", "id": g} for g in sorted(call.groups)]
    actions = sorted(set(ACTION_IDS) | {call.tool} | set(parents))
    return [
        {"uid": {"type": "Grant", "id": call.grant}, "attrs": {"label": call.label}, "parents": groups},
        *({"uid": {"type": "Group", "id": g}, "attrs": {}, "parents": []} for g in GROUPS),
        *({"uid": {"type": "Action", "id": a}, "attrs": {}, "parents": parents.get(a, [])} for a in actions),
    ]


def cedar_text(text: str) -> str:
    """The policies alone: Cedar has no `group` statement (groups are entity parents).
    The formatter separates statements by a blank line and puts none inside one."""
    return "\n\n".join(b for b in text.rstrip("\n").split("\n\n") if not b.startswith("group ")) + "\n"


def request(call) -> dict:
    return {
        "principal": {"type": "Grant", "id": call.grant},
        "action": {"type": "Action", "id": call.tool},
        "resource": {"type": "Server", "id": call.server},
        "context": {"input": call.args},
    }


def compare(text_mcpp: str, text_cedar: str, doc: ir.Document, requests) -> None:
    engine = Engine(load_program(text_mcpp))
    policy_set = cedarpy.PolicySet.from_str(text_cedar)
    for call in requests:
        result = cedarpy.is_authorized(request(call), policy_set, cedar_entities(doc, call))
        assert result.decision in (cedarpy.Decision.Allow, cedarpy.Decision.Deny), result.diagnostics.errors
        x = engine.explain(call.tool, call.args, Grant(call.grant, call.label, call.groups), call.server)
        cedar_errored = {m.group(1) for e in result.diagnostics.errors for m in [_ERR_ID.search(e)] if m}
        ours = (x.decision.decision, sorted(x.determining), sorted(x.errored))
        theirs = ("allow" if result.decision == cedarpy.Decision.Allow else "deny",
                  sorted(result.diagnostics.reasons), sorted(cedar_errored))
        # one assertion: every kind of difference shrinks as one failure, to the smallest case
        assert ours == theirs, (f"\n{text_mcpp}\n{call}\n(decision, determining, errored): mcpp {ours}, cedar {theirs}"
                                f"\ncedar errors: {result.diagnostics.errors}\nmcpp: {x.decision.message}")


@given(st.data())
@programs_in_ci(2000, factor=5)
def test_decisions_equal_cedarpy(data):
    doc = data.draw(documents(cedar=True), label="policies")
    requests = data.draw(st.lists(calls_for(doc.statements, cedar=True), min_size=1, max_size=6), label="calls")
    text = format_document(doc)
    compare(text, cedar_text(text), doc, requests)


@given(st.data())
@scaled(2)
def test_every_spelling_of_a_string_means_the_same(data):
    """`\\u{..}` escapes, and `\\*` against `\\u{2a}` in a `like` pattern: one text, one
    meaning, and it is Cedar's."""
    how = data.draw(spellings, label="spelling")
    doc = data.draw(documents(cedar=True, max_policies=3), label="policies")
    requests = data.draw(st.lists(calls_for(doc.statements, cedar=True), min_size=1, max_size=4), label="calls")
    text = respell(format_document(doc), how)
    note(text)
    compare(text, cedar_text(text), doc, requests)


def test_the_fail_open_forbid_is_cedars_too():
    """The research note's example: a forbid reading a missing attribute is skipped in both."""
    text = 'permit (principal, action, resource);\nforbid (principal, action, resource) when { context.input.namespace == "prod" };\n'
    req = {
        "principal": {"type": "Grant", "id": "g"}, "action": {"type": "Action", "id": "delete_pod"},
        "resource": {"type": "Server", "id": "s"}, "context": {"input": {}},
    }
    assert cedarpy.is_authorized(req, text, []).decision == cedarpy.Decision.Allow
    x = Engine(load_program(text)).explain("delete_pod", {})
    assert x.decision.allowed and x.determining == ("policy0",) and x.errored == ("policy1",)


def test_action_groups_are_parents_in_cedar_too():
    """The oracle's own wiring: a nested group reaches Cedar as a parent chain."""
    text = 'permit (principal, action, resource) when { action in Action::"ops" };\n'
    doc = ir.Document((
        ir.Group(ir.EntityRef("Action", "ops"), (ir.EntityRef("Action", "admin"),)),
        ir.Group(ir.EntityRef("Action", "admin"), (ir.EntityRef("Action", "t0"),)),
    ))
    from tests.strategies import Call

    for tool, allowed in (("t0", True), ("admin", True), ("ops", True), ("t1", False)):
        call = Call(tool, {}, "g0", "", frozenset(), "s0")
        r = cedarpy.is_authorized(request(call), text, cedar_entities(doc, call))
        assert (r.decision == cedarpy.Decision.Allow) == allowed, tool
