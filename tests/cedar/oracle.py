"""The export's oracle: cedarpy, with the exported schema, against mcpp's engine."""

import dataclasses

import cedarpy
from hypothesis import note

from mcpp.lang import ir
from mcpp.lang.cedar_export import export_program
from mcpp.lang.cedar_model import CedarNames
from mcpp.lang.formatter import format_document
from mcpp.lang.program import load_program
from mcpp.runtime.engine import Engine
from tests.cedar.strategies import cedar_request


def _reasons(result, ids: list[str]) -> set[str]:
    """Cedar's reasons as mcpp ids: `policy<N>` is the N-th exported policy."""
    out = set()
    for r in result.diagnostics.reasons:
        out.add(ids[int(r[len("policy"):])])
    return out


def _exported_program(program, left_out: list):
    """The mcpp program of what was exported: a left-out forbid removed, a left-out permit
    made never to apply (it still names its tools, so `default allow` does not take them
    over: the export denies them, as its warning says), every policy keeping its id
    (unannotated ids are positional, and removal would shift them)."""
    ids = {id(p.stmt): p.id for p in program.policies}
    kept = []
    for s in program.document.statements:
        pid = ids.get(id(s))
        if any(s is x for x in left_out):
            if not (isinstance(s, ir.Policy) and s.effect == "permit"):
                continue
            s = dataclasses.replace(s, clauses=(ir.Clause("when", ir.Lit(False)),))
        if isinstance(s, ir.Policy) and ir.annotation(s.annotations, "id") is None:
            s = dataclasses.replace(s, annotations=s.annotations + (ir.Annotation("id", pid),))
        kept.append(s)
    return load_program(format_document(ir.Document(tuple(kept))))


# the documented refusals (docs/cedar.md) of shapes tests/strategies.py generates: regexes
# that are not `like` patterns; a tool named like a group, or an empty group; `-<argument>`
# (i64 overflow); entity literals read (`has`, attributes); `in` an argument
LEFT_OUT_OK = ("is not a `like` pattern", "is not a tool of the catalog", "names no tool of the catalog",
               "names a group that shares a tool's name", "negating an argument", "on an entity literal",
               "of an entity literal", "`in` with a computed right side", "`in` whose left side may or may not be an entity")


def check_typed_export(program, catalog, requests, names=CedarNames(), left_out_ok=LEFT_OUT_OK):
    """Export `program` against `catalog` (leaving out what Cedar cannot express, which
    must be one of `left_out_ok`), validate it strictly against the exported schema, and
    hold cedarpy's decision and reasons for each call to mcpp's on what was exported.
    Calls by users need `program` to declare or name `User`: only then does the
    exported schema admit them."""
    result = export_program(program, tools=catalog, names=names, partial=True, schema=True)
    note(f"--- mcpp\n{program.document.source}\n--- cedar\n{result.policies}\n--- schema\n{result.schema}")
    for d in result.left_out:
        assert any(ok in d.message for ok in left_out_ok), d.message
    validation = cedarpy.validate_policies(result.policies, result.schema)
    assert validation.validation_passed, [str(e.error) for e in validation.errors]
    kept = _exported_program(program, result.left_out_statements)
    engine = Engine(kept)
    effects = {p.id: p.effect for p in kept.policies}
    synthetic = {i for i in result.ids if i not in effects}  # the export's own hide / default policies
    named = set().union(*(p.tools for p in kept.permits if p.tools is not None))
    defaulted = {t for t in catalog if kept.default == "allow" and t not in named and t not in kept.hidden}
    policy_set = cedarpy.PolicySet.from_str(result.policies)
    for call in requests:
        request, entities = cedar_request(call, catalog, names)
        answer = cedarpy.is_authorized(request, policy_set, entities, schema=result.schema)
        assert answer.decision in (cedarpy.Decision.Allow, cedarpy.Decision.Deny), answer.diagnostics.errors
        explanation = engine.explain(call.tool, call.args, call.caller(), call.server)
        allowed = explanation.decision.allowed
        context = f"{call}\ncedar: {answer.decision} {answer.diagnostics.reasons} {answer.diagnostics.errors}\nmcpp: {explanation}"
        assert allowed == (answer.decision == cedarpy.Decision.Allow), context
        assert not answer.diagnostics.errors, context  # validated policies never error
        effect = "permit" if allowed else "forbid"
        expected = {i for i in explanation.satisfied if effects[i] == effect}
        if not allowed and call.tool in kept.hidden:
            expected |= {i for i in synthetic if i.startswith("hide")}
        if allowed and call.tool in defaulted:
            expected |= {i for i in synthetic if i.startswith("default")}
        assert _reasons(answer, result.ids) == expected, context
