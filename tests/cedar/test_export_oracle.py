"""Cedar as the oracle for the export: on random policies (all of mcpp's expression
language, `default`, `hide`), random tool catalogs and random calls, the exported
policies validate under Cedar's strict validator against the exported schema, and
cedarpy decides every call — and names the same applying policies — as mcpp does.

Statements the export leaves out (`--partial`) are removed from the mcpp side too, so
"as mcpp does" means: as the mcpp program of exactly what was exported. The only
statements these strategies can produce that Cedar cannot express are regexes that
are not `like` patterns and permits naming a tool the catalog lacks (a tool named like
an action group) or none of its tools (an empty group), and the test checks that nothing else is left out.
"""

import cedarpy
from hypothesis import given
from hypothesis import strategies as st

from mcpp.lang.cedar_export import export_program
from mcpp.lang.cedar_model import CedarNames
from mcpp.lang.formatter import format_document
from mcpp.lang.program import load_program
from mcpp.runtime.engine import Engine, Grant
from tests.cedar.oracle import LEFT_OUT_OK, check_typed_export
from tests.cedar.strategies import catalogs, cedar_request, identity_documents, typed_calls
from tests.identity import strategies as ids
from tests.runtime.test_cedar_oracle import cedar_entities
from tests.strategies import calls, documents


@given(st.data())
def test_typed_export_decides_as_mcpp(data):
    catalog = data.draw(catalogs())
    doc = data.draw(documents(cedar=False))
    requests = data.draw(st.lists(typed_calls(catalog), min_size=1, max_size=6))
    check_typed_export(load_program(format_document(doc)), catalog, requests)


@given(st.data())
def test_typed_export_in_a_namespace(data):
    catalog = data.draw(catalogs())
    doc = data.draw(documents(cedar=False, max_policies=3))
    requests = data.draw(st.lists(typed_calls(catalog), min_size=1, max_size=3))
    check_typed_export(load_program(format_document(doc)), catalog, requests, CedarNames.with_namespace("Acme::Mcp"))


@given(st.data())
def test_agentcore_export_decides_as_mcpp(data):
    """In AgentCore's model (OAuthUser, the gateway, `<target>___<tool>` actions): policies
    without grant labels, groups or servers export, validate against AgentCore's schema
    as its documentation describes it, and decide as mcpp does."""
    catalog = data.draw(catalogs())
    doc = data.draw(documents(cedar=False, principal=False))
    requests = data.draw(st.lists(typed_calls(catalog), min_size=1, max_size=4))
    names = CedarNames.agentcore("arn:aws:bedrock-agentcore:us-west-2:123456789012:gateway/gw-1", "Target")
    check_typed_export(load_program(format_document(doc)), catalog, requests, names)


# ---- untyped: no catalog, Cedar's evaluation without a schema ------------------------------


@given(documents(cedar=True), st.lists(calls(cedar=True), min_size=1, max_size=6))
def test_untyped_export_decides_as_mcpp(doc, requests):
    text = format_document(doc)
    program = load_program(text)
    result = export_program(program)
    assert not result.left_out
    engine = Engine(program)
    policy_set = cedarpy.PolicySet.from_str(result.policies)
    for call in requests:
        request, _ = cedar_request(call, None)
        # without a schema, action groups reach Cedar as Action entities with parents
        answer = cedarpy.is_authorized(request, policy_set, cedar_entities(doc, call))
        allowed = engine.decide(call.tool, call.args, Grant(call.grant, call.label, call.groups), call.server,
                                reserve=False).allowed
        assert allowed == (answer.decision == cedarpy.Decision.Allow), f"{result.policies}\n{call}\n{answer.diagnostics.errors}"


# ---- identity: users with typed attributes and groups ---------------------------------------

# what Cedar cannot express in these programs: what it cannot in any (the widened
# generators' groups named like tools, entity literals, …) and a Long attribute against a
# `number` argument
USER_LEFT_OUT = LEFT_OUT_OK + ("orders an integer principal attribute", "compares an integer with a number")


@given(st.data())
def test_typed_export_with_users_decides_as_mcpp(data):
    """Programs with `entity User` and conditions on who calls (`is`, `==`, `in`, `has`,
    typed attributes) mixed with argument conditions: the export validates strictly
    against a schema whose principals are grants and users, and cedarpy decides calls by
    grants and by users (attributes, groups in the entity store) as mcpp does."""
    catalog = data.draw(catalogs())
    doc = data.draw(identity_documents())
    decl = doc.statements[0]
    requests = data.draw(st.lists(typed_calls(catalog, decl=decl), min_size=1, max_size=6))
    check_typed_export(load_program(format_document(doc)), catalog, requests, left_out_ok=USER_LEFT_OUT)


@given(st.data())
def test_typed_export_with_users_in_a_namespace(data):
    catalog = data.draw(catalogs())
    doc = data.draw(identity_documents(max_policies=3))
    requests = data.draw(st.lists(typed_calls(catalog, decl=doc.statements[0]), min_size=1, max_size=3))
    check_typed_export(load_program(format_document(doc)), catalog, requests, CedarNames.with_namespace("Acme::Mcp"),
                       left_out_ok=USER_LEFT_OUT)


@given(st.data())
def test_untyped_export_with_users_decides_as_mcpp(data):
    """Without a catalog, tests/identity's Cedar-subset policies export as written (a
    declared set attribute's `contains` is Cedar's) and decide as mcpp does."""
    doc = data.draw(ids.identity_documents())
    requests = data.draw(st.lists(ids.calls(doc.statements[0]), min_size=1, max_size=6))
    program = load_program(format_document(doc))
    result = export_program(program)
    assert not result.left_out
    engine = Engine(program)
    policy_set = cedarpy.PolicySet.from_str(result.policies)
    for call in requests:
        request = {"principal": ids.cedar_principal(call.caller), "action": {"type": "Action", "id": call.tool},
                   "resource": {"type": "Server", "id": "s0"}, "context": {"input": call.args}}
        answer = cedarpy.is_authorized(request, policy_set, ids.cedar_entities(call.caller))
        allowed = engine.decide(call.tool, call.args, call.caller, "s0", reserve=False).allowed
        assert allowed == (answer.decision == cedarpy.Decision.Allow), f"{result.policies}\n{call}\n{answer.diagnostics.errors}"
