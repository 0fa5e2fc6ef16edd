"""Typed calls end to end, as a property, in process: for random catalogs (input schemas
from the JSON Schema subset real MCP servers use — types, `enum`, `required`, nested
objects, arrays, `minimum`/`maximum`, `pattern`, pydantic's `anyOf` with null, and
`default`s as SDKs publish them: `x: T = value`, `Opts = Opts()`, `Opts | None = None`,
now and then one its own schema refuses or only an `anyOf` branch declares) and random
policies over their tools,

- every call the gateway would forward conforms to its tool's schema (checked with the
  stock `jsonschema` validator, independently of the gateway's RE2-backed one) and is
  allowed by the policy; a call to a tool the catalog does not list is never forwarded;
- every `assert` the analyzer proves *typed by that catalog* (a `Session` with
  `catalog_schemas(catalog)`, as `mcpp verify` with a catalog and `mcpp serve`'s gates
  run it) holds on every call that passes the schema check, i.e. every call that can
  reach the policy.

The admission path is the gateway's own: `runtime/gateway/schemas.py` turns the tool's
listed definition into a validator (`tool_checker`), checks the call's arguments and fills
the declared defaults in (`admit`), exactly as `proxy.schema_check` does; the policy then
decides the filled call with the engine the gateway runs, and a proved assert must hold on
it (the analyzer treats a filled argument as always present). Calls are drawn both to conform (from the schema) and not
(random JSON, and conforming calls with one argument replaced).
"""

from __future__ import annotations

from hypothesis import event, given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from mcpp.analyzer.safety import blocking_findings
from mcpp.analyzer.solve import Session
from mcpp.analyzer.typed import catalog_schemas
from mcpp.analyzer.verify import verify
from mcpp.analyzer.witness import NOW, StateStore, Witness, matches_scope
from mcpp.catalog import Catalog
from mcpp.catalog.conformance import SchemaCache, closed_world
from mcpp.catalog.defaults import fill
from mcpp.lang import ir
from mcpp.lang.program import build_program, load_program
from mcpp.runtime.engine import Engine
from mcpp.runtime.gateway.schemas import admit, tool_checker
from tests import strategies as base
from tests.analyzer.strategies import assertions, literals, programs

KEYS = base.KEYS  # the arguments the random policies read
STRINGS = base.STRS + ["1", "z", "xyz"]
# patterns as MCP servers write them (searches, RE2 syntax), over the policies' strings
PATTERNS = ["^x", "y$", "^[a-z]*$", "x|y", "^(x|xy)$", "[0-9]", "^[a-z]+-[0-9]+$"]
BOUNDS = [-1, 0, 1, 5, 1000]
CACHE = SchemaCache()


# ---- catalogs --------------------------------------------------------------------------------


@st.composite
def leaf_schemas(draw) -> dict:
    t = draw(st.sampled_from(["string", "string", "number", "integer", "boolean"]))
    s: dict = {"type": t}
    if t == "string":
        extra = draw(st.sampled_from(["none", "enum", "pattern", "length"]))
        if extra == "enum":
            s["enum"] = draw(st.lists(st.sampled_from(STRINGS), min_size=1, max_size=3, unique=True))
        elif extra == "pattern":
            s["pattern"] = draw(st.sampled_from(PATTERNS))
        elif extra == "length":
            s["maxLength"] = draw(st.integers(0, 3))
    elif t in ("number", "integer"):
        lo = draw(st.sampled_from([None] + BOUNDS))
        hi = draw(st.sampled_from([None] + [b for b in BOUNDS if lo is None or b >= lo]))
        if lo is not None:
            s["minimum"] = lo
        if hi is not None:
            s["maximum"] = hi
    if draw(st.integers(0, 2)) == 0:
        # a default, as an SDK publishes `x: T = value`: mostly of the declared type, now
        # and then one its own schema refuses (the gateway refuses calls that omit it)
        s["default"] = draw(st.one_of(values_for(s, []), base.arg_values(False)) if draw(st.integers(0, 4)) else
                            base.arg_values(False))
    if draw(st.integers(0, 4)) == 0:  # pydantic's Optional[...]: anyOf with null, default null
        form = draw(st.sampled_from(["null", "outer", "branch"]))
        if form == "branch":  # the default only in a branch: ambiguous, never filled
            s = {"anyOf": [s, {"type": "null"}]}
        else:  # `x: T | None = None`, or `= value` (the default beside the anyOf)
            inner = {k: v for k, v in s.items() if k != "default"}
            s = {"anyOf": [inner, {"type": "null"}], "default": s.get("default") if form == "outer" else None}
    return s


def _object(props: dict, required: list) -> dict:
    return {"type": "object", "properties": props, "required": sorted(set(required) & set(props))}


def _object_forms(o: dict):
    """A nested object as SDKs publish it: plain, with a default (`Opts = Opts()` → `{}` or
    the model dumped), or pydantic's `Opts | None = None` (its defaults are filled once the
    caller sends an object)."""
    return st.sampled_from([o, {**o, "default": {}}, {"anyOf": [o, {"type": "null"}], "default": None}])


schemas = st.recursive(
    leaf_schemas(),
    lambda inner: st.one_of(
        st.builds(lambda items, n: {"type": "array", "items": items, **({"maxItems": n} if n is not None else {})},
                  inner, st.sampled_from([None, 0, 2])),
        st.builds(_object, st.dictionaries(st.sampled_from(KEYS), inner, min_size=1, max_size=2),
                  st.lists(st.sampled_from(KEYS), max_size=2)).flatmap(_object_forms),
    ),
    max_leaves=4,
)


@st.composite
def catalogs(draw) -> Catalog:
    """One to three of the policies' tools (the others are not listed: the gateway refuses them)."""
    names = draw(st.lists(st.sampled_from(base.TOOLS), min_size=1, max_size=3, unique=True))
    tools = []
    for name in sorted(names):
        props = draw(st.dictionaries(st.sampled_from(KEYS), schemas, max_size=3))
        required = draw(st.lists(st.sampled_from(KEYS), max_size=3))
        tools.append({"name": name, "inputSchema": _object(props, required),
                      "annotations": {"readOnlyHint": draw(st.booleans())}})
    return Catalog.from_tools(tools, server_name="random", server_version="0")


# ---- calls -----------------------------------------------------------------------------------


def values_for(schema: dict, extra: list):
    """Values meant to conform to `schema` (biased to the policy's constants; whether each
    conforms is the validators' call, not this generator's)."""
    if "anyOf" in schema:
        return st.one_of(*(values_for(s, extra) for s in schema["anyOf"]))
    t = schema.get("type")
    if t == "null":
        return st.none()
    if t == "string":
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        pool = STRINGS + [v for v in extra if isinstance(v, str)]
        if "pattern" in schema:
            return st.one_of(st.sampled_from(pool), st.from_regex(schema["pattern"], alphabet="xyz019-ab"))
        return st.sampled_from(pool)
    if t in ("number", "integer"):
        lo, hi = schema.get("minimum", -3), schema.get("maximum", 2000)
        ints = st.integers(lo, hi)
        nums = [v for v in extra if isinstance(v, (int, float)) and not isinstance(v, bool) and lo <= v <= hi]
        pool = st.one_of(ints, st.sampled_from(nums)) if nums else ints
        if t == "number":
            pool = st.one_of(pool, st.floats(lo, hi, allow_nan=False, allow_infinity=False))
        return pool
    if t == "boolean":
        return st.booleans()
    if t == "array":
        return st.lists(values_for(schema["items"], extra), max_size=schema.get("maxItems", 3))
    return arguments_for(schema, extra)


@st.composite
def arguments_for(draw, schema: dict, extra: list) -> dict:
    props = schema.get("properties", {})
    return {k: draw(values_for(props[k], extra)) for k in sorted(props)
            if k in schema.get("required", []) or draw(st.booleans())}


@st.composite
def calls(draw, catalog: Catalog, prog) -> Witness:
    extra = literals(prog)
    # mostly the catalog's tools; sometimes one it does not list (the gateway refuses it)
    tool = draw(st.sampled_from(sorted(catalog.tools) * 3 + base.TOOLS + ["other"]))
    listed = catalog.tools.get(tool)
    shape = draw(st.sampled_from(["conforming", "conforming", "mutated", "random"]))
    if listed is not None and shape != "random":
        args = draw(arguments_for(listed.input_schema, extra))
        if shape == "mutated":  # one argument replaced by any JSON value (or one added)
            key = draw(st.sampled_from(KEYS + ["zz"]))
            args[key] = draw(st.one_of(base.arg_values(False), st.sampled_from(extra or ["x"])))
    else:
        args = draw(st.dictionaries(st.sampled_from(KEYS), base.arg_values(False), max_size=3))
    return Witness(tool, args, draw(st.sampled_from(base.GRANTS)), draw(st.sampled_from(base.LABELS)),
                   tuple(sorted(draw(st.frozensets(st.sampled_from(base.GROUPS), max_size=2)))),
                   draw(st.sampled_from(base.SERVERS)), {})


# ---- the gateway's admission path ------------------------------------------------------------


def admitted(catalog: Catalog, w: Witness) -> tuple[dict | None, Witness]:
    """What `proxy.schema_check` answers for this call against the catalog's listing: the
    refusal, or None and the call the policy decides (its declared defaults filled in)."""
    listed = catalog.tools.get(w.tool)
    defs = [listed.definition] if listed is not None else []
    refused, args = admit(tool_checker(CACHE, defs, w.tool), w.tool, w.args)
    return refused, Witness(**{**w.__dict__, "args": args})


def refusal(catalog: Catalog, w: Witness) -> dict | None:
    return admitted(catalog, w)[0]


def decide(prog, w: Witness):
    return Engine(prog, store=StateStore(w.counters)).decide(w.tool, w.args, w.grant, w.server, now=NOW, reserve=False)


def _full_counters(prog) -> dict:
    out: dict = {}
    for li in prog.limits:
        key = (li.stmt.counter, li.stmt.scope_kind, li.stmt.window)
        out[key] = max(out.get(key, 0), int(li.stmt.max))
    return out


@given(st.data())
def test_forwarded_calls_conform_and_typed_proofs_hold_on_them(data):
    catalog = data.draw(catalogs())
    prog = data.draw(programs(max_policies=3))
    asserts = data.draw(st.lists(assertions(), min_size=1, max_size=2))
    prog, _ = build_program(ir.Document(tuple(prog.document.statements) + tuple(asserts)))
    ws = data.draw(st.lists(calls(catalog, prog), min_size=1, max_size=8))
    results = verify(prog, session=Session(20000, schemas=catalog_schemas(catalog)))
    proved = [(a, r) for a, r in zip(prog.asserts, results) if r.status == "pass"]
    for sent in ws:
        refused, w = admitted(catalog, sent)
        listed = catalog.tools.get(w.tool)
        stock = Draft202012Validator(closed_world(listed.input_schema)) if listed is not None else None
        conforms = stock is not None and stock.is_valid(sent.args)
        # what the gateway lets through conforms, as sent and with the declared defaults
        # filled in (catalog/defaults.py); what does not conform (and every call to an
        # unlisted tool) it refuses. It is stricter than the stock validator in one place:
        # `pattern` runs on RE2, whose `$` (like ECMA-262's, which JSON Schema names) does
        # not match before a final newline, as Python's `re` does.
        if refused is None:
            assert conforms and stock is not None and stock.is_valid(w.args), (w.tool, sent.args, w.args)
            assert fill(listed.input_schema, w.args) == w.args  # filling is done once and for all
            if w.args != sent.args:
                event("forwarded with defaults filled in")
        elif conforms and refused["kind"] == "invalid_default":  # a declared default its schema refuses
            assert stock is not None and not stock.is_valid(fill(listed.input_schema, sent.args)) or \
                refused["pointer"].endswith("/pattern"), (w.tool, sent.args, refused)
        elif conforms:
            assert refused["pointer"].endswith("/pattern"), (w.tool, w.args, refused)
        if refused is not None:
            event(f"refused: {refused['kind']}")
            assert refused["pointer"].startswith(f"/tools/{w.tool}/schema")
            continue  # never forwarded, never decided
        decision = decide(prog, w)
        # forwarded = conforming and allowed; nothing else reaches the upstream
        event("forwarded" if decision.allowed else "conforming, denied by the policy")
        if decision.allowed:
            assert conforms
        for a, r in proved:
            stmt = a.stmt
            if a.tools is not None and w.tool not in a.tools or not matches_scope(prog, stmt, w):
                continue
            event(f"a proved {stmt.kind} assert checked on a conforming call")
            if stmt.kind == "deny":
                assert not decision.allowed and not decision.needs_approval, (a.id, w, r.message)
            elif stmt.kind == "approval":
                assert not decision.allowed, (a.id, w, r.message)
            else:  # allowed whatever the counters say
                full = Witness(**{**w.__dict__, "counters": _full_counters(prog)})
                assert decision.allowed and decide(prog, full).allowed, (a.id, w, r.message)


REFUNDS = Catalog.from_tools([{"name": "refund_payment", "inputSchema": {
    "type": "object", "required": ["charge_id", "amount"],
    "properties": {"charge_id": {"type": "string"}, "amount": {"type": "number", "minimum": 0}}}}])
BYPASSABLE = """
default deny;
permit (principal, action == Action::"refund_payment", resource);
forbid (principal, action == Action::"refund_payment", resource) when { context.input.amount > 1000 };
@id("cap")
assert deny (principal, action == Action::"refund_payment", resource) when { context.input.amount > 1000 };
"""


def test_the_issues_refund_policy_is_safe_only_behind_typed_calls():
    """The pattern issue 10 found: untyped, `{"amount": "5000"}` walks past the forbid (the
    engine allows it, lint says so); typed by the catalog, lint finds nothing and the
    assert is proved, because the gateway refuses that call before the policy decides."""
    prog = load_program(BYPASSABLE, "refunds.mcpp")
    sneaky = Witness("refund_payment", {"charge_id": "ch_1", "amount": "5000"}, "g0", "", (), "s0", {})
    assert decide(prog, sneaky).allowed
    assert [d.code for d in blocking_findings(prog)] == ["forbid-bypass"]
    assert blocking_findings(prog, REFUNDS) == []
    (r,) = verify(prog, session=Session(20000, schemas=catalog_schemas(REFUNDS)))
    assert r.status == "pass", r.message
    refused = refusal(REFUNDS, sneaky)
    assert refused["pointer"] == "/tools/refund_payment/schema/properties/amount/type"
    assert "'amount' must be a number, not a string" in refused["message"]
    for args in ({"charge_id": "c", "amount": 1500}, {"charge_id": "c", "amount": 1000.5}):
        w = Witness("refund_payment", args, "g0", "", (), "s0", {})
        assert refusal(REFUNDS, w) is None and not decide(prog, w).allowed
    ok = Witness("refund_payment", {"charge_id": "c", "amount": 1000}, "g0", "", (), "s0", {})
    assert refusal(REFUNDS, ok) is None and decide(prog, ok).allowed
    unlisted = Witness("refund_payment ", {"charge_id": "c", "amount": 1}, "g0", "", (), "s0", {})
    assert refusal(REFUNDS, unlisted)["kind"] == "unlisted"


def test_a_catalog_tool_the_policy_does_not_name_is_still_analysed():
    """Typed by a catalog, "every tool the policy does not name" is every catalog tool it
    does not name: those calls reach the policy (the gateway forwards them when they
    conform), so a proof must cover them. (The property above found this: typed, the
    stand-in tool has no call, and such asserts were proved vacuously.)"""
    catalog = Catalog.from_tools([{"name": "t0", "inputSchema": {"type": "object", "properties": {}}}])
    session = Session(20000, schemas=catalog_schemas(catalog))
    for src in ("permit (principal, action, resource);", "default allow;",
                'default allow;\npermit (principal, action == Action::"t9", resource);'):
        prog = load_program(src + "\nassert deny (principal, action, resource);\n", "p.mcpp")
        w = Witness("t0", {}, "g0", "", (), "s0", {})
        assert refusal(catalog, w) is None and decide(prog, w).allowed  # forwarded
        (r,) = verify(prog, session=session)
        assert r.status == "fail", (src, r.message)
