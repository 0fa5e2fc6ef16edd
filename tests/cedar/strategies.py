"""Hypothesis strategies for the Cedar export: random tool catalogs (input JSON Schemas
over the keys tests/strategies.py's policies read), calls whose arguments fit them, and
the same call as a Cedar request (for cedarpy with the exported schema).

With identity: programs that declare `entity User` (attributes required or optional,
with or without `in [Group]`, sometimes declaring `label`) and mix tests/identity's
principal conditions with all of tests/strategies.py's argument conditions, and calls by
grants and by users that fit the declaration."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from mcpp.lang import ir
from mcpp.lang.cedar_export import decimal_text, exact
from mcpp.lang.cedar_model import CedarNames
from mcpp.runtime.engine import Grant, User
from tests import strategies as general
from tests.identity import strategies as identity
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
    """A call by a grant (`grant`, `label`, `groups`) or, when `user` is set, by that user."""

    tool: str
    args: dict
    grant: str
    label: str
    groups: frozenset
    server: str
    user: User | None = None

    def caller(self) -> Grant | User:
        return self.user if self.user is not None else Grant(self.grant, self.label, self.groups)


@st.composite
def typed_calls(draw, catalog: dict[str, dict], strings=tuple(STRS), decl: ir.EntityDecl | None = None) -> TypedCall:
    """A call whose arguments fit `catalog`; with `decl`, by a grant or a user that fits it."""
    tool = draw(st.sampled_from(sorted(catalog)))
    user = draw(st.one_of(st.none(), users(decl))) if decl is not None else None
    return TypedCall(
        tool,
        draw(arguments(catalog[tool], strings)),
        draw(st.sampled_from(GRANTS)),
        draw(st.sampled_from(LABELS)),
        draw(st.frozensets(st.sampled_from(GROUPS), max_size=2)),
        draw(st.sampled_from(SERVERS)),
        user,
    )


# ---- identity: `entity User` declarations, principal conditions, users ---------------------

USER_GROUPS = sorted(set(GROUPS) | set(identity.GROUPS))


@st.composite
def user_decls(draw) -> ir.EntityDecl:
    """`entity User [in [Group]] { … }`: tests/identity's attributes, each required or
    optional, sometimes `label` too (a user's own label, read as grants' is)."""
    attrs = [ir.AttrDecl(name, t, draw(st.booleans())) for name, t in identity.ATTRS.items()]
    if draw(st.booleans()):
        attrs.append(ir.AttrDecl("label", "String", draw(st.booleans())))
    parents = ("Group",) if draw(st.booleans()) else ()
    return ir.EntityDecl("User", parents, tuple(attrs))


def _identity_exprs():
    atoms = st.one_of(general.atoms(False), identity.principal_atoms(), identity.principal_atoms())
    return st.recursive(
        atoms,
        lambda sub: st.one_of(st.builds(ir.And, sub, sub), st.builds(ir.Or, sub, sub), st.builds(ir.Not, sub),
                              st.builds(ir.If, sub, sub, sub)),
        max_leaves=5,
    )


def _identity_policies():
    return st.builds(
        lambda eff, p, a, r, cs: ir.Policy(eff, ir.Scope(p, a, r), tuple(cs)),
        st.sampled_from(["permit", "permit", "forbid"]),
        identity.principal_scopes(),
        general.action_scopes,
        general.entity_scopes("resource"),
        st.lists(st.builds(ir.Clause, st.sampled_from(["when", "unless"]), _identity_exprs()), max_size=2),
    )


@st.composite
def identity_documents(draw, max_policies: int = 4) -> ir.Document:
    """`entity User`, then `default` and `hide` sometimes, then policies that read who the
    caller is (grants and users) and the arguments."""
    stmts: list = [draw(user_decls())]
    d = draw(st.sampled_from([None, "allow", "deny"]))
    if d:
        stmts.append(ir.Default(d))
    hidden = draw(st.lists(st.sampled_from(TOOLS), max_size=1, unique=True))
    if hidden:
        stmts.append(ir.Hide(tuple(ir.EntityRef("Action", t) for t in hidden)))
    stmts += draw(st.lists(_identity_policies(), min_size=1, max_size=max_policies))
    return ir.Document(tuple(stmts))


def _user_value(t: str):
    if t == "String":
        return st.sampled_from(identity.EMAILS + LABELS)
    if t == "Long":
        return st.integers(-3, 2000)
    if t == "Bool":
        return st.booleans()
    return st.lists(st.sampled_from(identity.SCOPES), max_size=3, unique=True)


@st.composite
def users(draw, decl: ir.EntityDecl) -> User:
    """A user that fits `decl`: every required attribute, some optional ones, groups only
    when users may be in groups."""
    attrs = {a.name: draw(_user_value(a.type)) for a in decl.attrs if not a.optional or draw(st.booleans())}
    groups = draw(st.frozensets(st.sampled_from(USER_GROUPS), max_size=2)) if "Group" in decl.parents else frozenset()
    return User(draw(st.sampled_from(identity.USERS)), attrs, groups)


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
    user = getattr(call, "user", None)
    if user is not None:  # a user: its attributes (sets as Cedar sets) and its groups
        principal = {"type": names.user, "id": user.id}
        groups = [{"type": names.group, "id": g} for g in sorted(user.groups)]
        entity = {"uid": principal, "attrs": dict(user.attrs), "parents": groups}
    else:
        principal = {"type": names.principal, "id": call.grant}
        groups = [{"type": names.group, "id": g} for g in sorted(call.groups)]
        entity = {"uid": principal, "attrs": {"label": call.label}, "parents": groups}
    request = {
        "principal": principal,
        "action": {"type": names.action, "id": call.tool},
        "resource": {"type": names.resource, "id": call.server},
        "context": {"input": args},
    }
    entities = [entity, *({"uid": {"type": names.group, "id": g}, "attrs": {}, "parents": []} for g in USER_GROUPS)]
    return request, entities
