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
from tests.cedar.oracle import check_typed_export
from tests.cedar.strategies import catalogs, cedar_request, typed_calls
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
