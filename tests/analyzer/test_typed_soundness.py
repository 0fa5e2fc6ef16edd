"""Typed analysis is sound (docs/analyzer.md, "Typed analysis"): on random catalogs (schemas
from the JSON Schema subset real MCP servers use: types, enum, required, nested objects,
arrays, minimum/maximum, pattern, maxLength) and random policies,

- every call the gateway would forward (it conforms to its tool's schema) is a model of the
  typed request: the schema assumption never excludes a real call;
- every FAIL's counterexample conforms to its tool's schema (the gateway's validator) and
  replays with the claimed decision;
- every PASS holds on sampled conforming calls.
"""

from __future__ import annotations

import re

import z3
from hypothesis import given, settings
from hypothesis import strategies as st

from mcpp.analyzer.encode import decide
from mcpp.analyzer.sym import z
from mcpp.analyzer.typed import typed_session
from mcpp.analyzer.verify import verify
from mcpp.analyzer.witness import Witness, matches_scope, pin
from mcpp.catalog import Catalog
from mcpp.catalog.conformance import check as violation, closed_world, compile_schema
from mcpp.lang import ir
from mcpp.lang.program import build_program

from tests import strategies as base

from .strategies import assertions, literals, programs
from .test_soundness import _bounds, _decide

PATTERNS = ["^[a-z]+$", "^ch_", "[0-9]", "^(dev|staging)$", "^$"]


@st.composite
def leaf_schema(draw):
    t = draw(st.sampled_from(["string", "number", "integer", "boolean", "null"]))
    s: dict = {"type": t}
    if t == "string":
        if draw(st.booleans()):
            s["pattern"] = draw(st.sampled_from(PATTERNS))
        elif draw(st.booleans()):
            s["enum"] = draw(st.lists(st.text(alphabet="abc", max_size=3), min_size=1, max_size=3, unique=True))
        if draw(st.booleans()):
            s["maxLength"] = draw(st.integers(0, 6))
    elif t in ("number", "integer"):
        if draw(st.booleans()):
            s["minimum"] = draw(st.integers(-5, 5))
        if draw(st.booleans()):
            s["maximum"] = draw(st.integers(5, 1000))
    return s


def _object(inner):
    return st.builds(lambda props, req: {"type": "object", "properties": props, "required": sorted(set(req) & set(props))},
                     st.dictionaries(st.sampled_from(base.KEYS), inner, min_size=1, max_size=3),
                     st.lists(st.sampled_from(base.KEYS), max_size=3))


schemas = st.recursive(leaf_schema(), lambda inner: st.one_of(
    st.builds(lambda items: {"type": "array", "items": items}, inner), _object(inner)), max_leaves=5)
tool_schemas = _object(schemas)


def values_for(schema: dict, lits: list):
    """Values that conform to `schema` (mostly), mixed with the policy's own constants."""
    t = schema.get("type")
    if t == "object":
        props = schema["properties"]
        req = schema.get("required", [])
        return st.fixed_dictionaries({k: values_for(props[k], lits) for k in req},
                                     optional={k: values_for(v, lits) for k, v in props.items() if k not in req})
    if t == "array":
        return st.lists(values_for(schema["items"], lits), max_size=3)
    if "enum" in schema:
        own = st.sampled_from(schema["enum"])
    elif t == "string":
        own = st.from_regex(re.compile(schema["pattern"]), alphabet="abcdefghijklmnopqrstuvwxyz_019 ") if "pattern" in schema else st.text("abc_/", max_size=4)
    elif t == "integer":
        own = st.integers(-10, 2000)
    elif t == "number":
        own = st.one_of(st.integers(-10, 2000), st.floats(-10, 2000, allow_nan=False))
    elif t == "boolean":
        own = st.booleans()
    else:
        own = st.none()
    return st.one_of(own, st.sampled_from(lits)) if lits else own


@given(st.data())
@settings(max_examples=80, deadline=None)
def test_typed_proofs_hold_on_forwarded_calls(data):
    tools = {t: data.draw(tool_schemas) for t in base.TOOLS}
    cat = Catalog.from_tools([{"name": t, "inputSchema": s} for t, s in tools.items()])
    validators = {t: compile_schema(closed_world(s)) for t, s in tools.items()}
    prog = data.draw(programs(max_policies=3))
    asserts = data.draw(st.lists(assertions(), min_size=1, max_size=2))
    prog, _ = build_program(ir.Document(tuple(prog.document.statements) + tuple(asserts)))
    lits = literals(prog)
    calls = []
    for _ in range(data.draw(st.integers(0, 6))):
        tool = data.draw(st.sampled_from(base.TOOLS))
        args = data.draw(values_for(tools[tool], lits))
        if violation(validators[tool], args) is not None:
            continue  # the gateway refuses it: no claim about it
        calls.append(Witness(tool, args, data.draw(st.sampled_from(base.GRANTS + ["anonymous"])),
                             data.draw(st.sampled_from(base.LABELS)),
                             tuple(sorted(data.draw(st.frozensets(st.sampled_from(base.GROUPS), max_size=2)))),
                             data.draw(st.sampled_from(base.SERVERS + ["default"]))))

    # the assumption never excludes a forwarded call: each one is a model of its typed request
    session = typed_session(cat, 20000)
    for w in calls:
        req = session.request()
        decide(req, prog, w.tool)
        s = z3.Solver(ctx=session.ctx)
        s.set("timeout", 20000)
        s.add(*req.constraints(), *pin(req, w))
        assert s.check() == z3.sat, (w.tool, w.args, tools[w.tool])

    results = verify(prog, timeout_ms=20000, session=typed_session(cat, 20000))
    for a, r in zip(prog.asserts, results):
        kind = a.stmt.kind
        if r.status == "unknown":
            continue  # widened keywords (array items) may leave a witness the gateway refuses: never a FAIL
        if r.status == "fail":
            w = r.witness
            assert w.tool in tools and violation(validators[w.tool], w.args) is None, (w.tool, w.args)
            assert matches_scope(prog, a.stmt, w)
            d = _decide(prog, w)
            if kind == "deny":
                assert d.allowed or d.needs_approval, r.message
            elif kind == "approval":
                assert d.allowed, r.message
            else:
                assert not d.allowed, r.message
            continue
        for w in calls:
            if a.tools is not None and w.tool not in a.tools or not matches_scope(prog, a.stmt, w):
                continue
            d = _decide(prog, w)
            if kind == "deny":
                assert not d.allowed and not d.needs_approval, (a.id, w)
            elif kind == "approval":
                assert not d.allowed, (a.id, w)
            else:
                full = Witness(**{**w.__dict__, "counters": _bounds(prog)})
                assert d.allowed and _decide(prog, full).allowed, (a.id, w)
    _ = z
