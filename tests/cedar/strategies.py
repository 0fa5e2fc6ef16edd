"""Hypothesis strategies for the Cedar export: random tool catalogs (input JSON Schemas
over the keys tests/strategies.py's policies read), calls whose arguments fit them, and
the same call as a Cedar request (for cedarpy with the exported schema)."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from mcpp.lang.cedar_export import decimal_text, exact
from mcpp.lang.cedar_model import CedarNames
from tests.strategies import GRANTS, GROUPS, KEYS, LABELS, SERVERS, STRS, TOOLS

CATALOG_TOOLS = TOOLS + ["other"]

LEAF_SCHEMAS = [
    {"type": "string"},
    {"type": "string", "enum": ["x", "y"]},
    {"type": "integer"},
    {"type": "number"},
    {"type": "boolean"},
    {"type": "array", "items": {"type": "string"}},
    {"type": "array", "items": {"type": "integer"}},
    {"type": "array", "items": {"type": "number"}},
]


def objects(leaf):
    return st.builds(
        lambda props, req: {"type": "object", "properties": props, "required": sorted(set(req) & set(props))},
        st.dictionaries(st.sampled_from(KEYS), leaf, max_size=3),
        st.lists(st.sampled_from(KEYS), max_size=3),
    )


arg_schemas = st.one_of(st.sampled_from(LEAF_SCHEMAS), objects(st.sampled_from(LEAF_SCHEMAS)))


@st.composite
def catalogs(draw) -> dict[str, dict]:
    """tool → input schema. Tools differ in which keys they take and their types, so
    policies covering several tools need per-tool clauses."""
    out = {}
    for tool in CATALOG_TOOLS:
        props = draw(st.dictionaries(st.sampled_from(KEYS), arg_schemas, max_size=3))
        required = draw(st.lists(st.sampled_from(sorted(props) or ["a"]), max_size=3, unique=True))
        out[tool] = {"type": "object", "properties": props, "required": [k for k in required if k in props]}
    return out


def _numbers():
    # JSON numbers with at most 4 fractional digits: what a Cedar decimal holds exactly
    return st.one_of(st.integers(-3, 1003), st.integers(-30000, 10030000).map(lambda n: n / 10000))


def values(schema: dict, strings=tuple(STRS)):
    t = schema["type"]
    if t == "string":
        return st.sampled_from(schema.get("enum") or list(strings))
    if t == "integer":
        return st.integers(-3, 1003)
    if t == "number":
        return _numbers()
    if t == "boolean":
        return st.booleans()
    if t == "array":
        return st.lists(values(schema["items"], strings), max_size=3)
    return arguments(schema, strings)


@st.composite
def arguments(draw, schema: dict, strings=tuple(STRS)) -> dict:
    props = schema.get("properties", {})
    out = {}
    for k in sorted(props):
        if k in schema.get("required", []) or draw(st.booleans()):
            out[k] = draw(values(props[k], strings))
    return out


@dataclass(frozen=True)
class TypedCall:
    tool: str
    args: dict
    grant: str
    label: str
    groups: frozenset
    server: str


@st.composite
def typed_calls(draw, catalog: dict[str, dict], strings=tuple(STRS)) -> TypedCall:
    tool = draw(st.sampled_from(sorted(catalog)))
    return TypedCall(
        tool,
        draw(arguments(catalog[tool], strings)),
        draw(st.sampled_from(GRANTS)),
        draw(st.sampled_from(LABELS)),
        draw(st.frozensets(st.sampled_from(GROUPS), max_size=2)),
        draw(st.sampled_from(SERVERS)),
    )


def cedar_value(v: object, schema: dict) -> object:
    """A JSON argument as Cedar's JSON request format has it for the exported schema:
    JSON `number` arguments are decimals."""
    t = schema.get("type")
    if t == "number":
        return {"__extn": {"fn": "decimal", "arg": decimal_text(exact(v))[9:-2]}}
    if t == "array":
        return [cedar_value(x, schema["items"]) for x in v]
    if t == "object":
        props = schema.get("properties", {})
        return {k: cedar_value(x, props[k]) for k, x in v.items()}
    return v


def cedar_request(call, catalog: dict[str, dict] | None, names: CedarNames = CedarNames()) -> tuple[dict, list[dict]]:
    args = cedar_value(call.args, catalog[call.tool]) if catalog is not None else call.args
    if names.gateway is not None:  # AgentCore: an OAuthUser (its id the JWT sub) calls the gateway
        request = {
            "principal": {"type": names.principal, "id": call.grant},
            "action": {"type": names.action, "id": names.action_prefix + call.tool},
            "resource": {"type": names.resource, "id": names.gateway},
            "context": {"input": args},
        }
        return request, [{"uid": {"type": names.principal, "id": call.grant}, "attrs": {"id": call.grant}, "parents": [],
                          "tags": {"username": call.label}}]
    request = {
        "principal": {"type": names.principal, "id": call.grant},
        "action": {"type": names.action, "id": call.tool},
        "resource": {"type": names.resource, "id": call.server},
        "context": {"input": args},
    }
    groups = [{"type": names.group, "id": g} for g in sorted(call.groups)]
    entities = [
        {"uid": {"type": names.principal, "id": call.grant}, "attrs": {"label": call.label}, "parents": groups},
        *({"uid": {"type": names.group, "id": g}, "attrs": {}, "parents": []} for g in GROUPS),
    ]
    return request, entities
