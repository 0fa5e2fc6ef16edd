"""Hypothesis strategies for identity: policies whose conditions read who the caller is,
and callers that are grants or users with typed attributes and groups.

Self-contained (tests/strategies.py is the general one): a fixed `entity User`
declaration whose optional attributes vary, principal atoms over it (`is`, `==`, `in`,
`has`, typed attribute reads) mixed with a few argument atoms, and calls by grants and
by users. `cedar=True` keeps to the subset Cedar shares (what cedarpy decides too).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

from mcpp.lang import ir
from mcpp.runtime.engine import Grant, User

TOOLS = ["t0", "t1"]
KEYS = ["a", "b"]
GROUPS = ["payments", "sre"]
GRANTS = ["g0", "g1"]
USERS = ["u0", "u1"]
LABELS = ["alice", ""]
EMAILS = ["a@corp.com", "b@contractor.com", ""]
SCOPES = ["k8s:write", "k8s:read", "pay"]
SERVERS = ["s0"]

# name → (type, may be optional): the attributes user callers may have
ATTRS = {
    "email": "String",
    "scopes": "Set<String>",
    "cap": "Long",
    "admin": "Bool",
    "nick": "String",
}


@st.composite
def user_decls(draw) -> ir.EntityDecl:
    """`entity User in [Group] { … }` with each attribute required or optional."""
    attrs = tuple(ir.AttrDecl(name, t, draw(st.booleans())) for name, t in ATTRS.items())
    return ir.EntityDecl("User", ("Group",), attrs)


def _p(attr: str) -> ir.Expr:
    return ir.GetAttr(ir.Var("principal"), attr)


def _arg(key: str) -> ir.Expr:
    return ir.GetAttr(ir.GetAttr(ir.Var("context"), "input"), key)


def _ent(t: str, i: str) -> ir.Expr:
    return ir.EntityLit(ir.EntityRef(t, i))


def principal_atoms():
    """Tests of who the caller is and what it carries, all well typed."""
    P = ir.Var("principal")
    return st.one_of(
        st.sampled_from(["User", "Grant"]).map(lambda t: ir.Is(P, t)),
        st.sampled_from(USERS).map(lambda u: ir.Compare("==", P, _ent("User", u))),
        st.sampled_from(GRANTS).map(lambda g: ir.Compare("==", P, _ent("Grant", g))),
        st.sampled_from(GROUPS).map(lambda g: ir.In(P, _ent("Group", g))),
        st.sampled_from(GROUPS).map(lambda g: ir.Is(P, "User", _ent("Group", g))),
        st.sampled_from(list(ATTRS) + ["label"]).map(lambda a: ir.Has(P, (a,))),
        st.sampled_from(EMAILS).map(lambda e: ir.Compare("==", _p("email"), ir.Lit(e))),
        st.sampled_from([("", "@corp.com"), ("a", "")]).map(lambda pat: ir.Like(_p("email"), pat)),
        st.sampled_from(SCOPES).map(lambda s: ir.Call(_p("scopes"), "contains", (ir.Lit(s),))),
        st.lists(st.sampled_from(SCOPES), min_size=1, max_size=2).map(
            lambda ss: ir.Call(_p("scopes"), "containsAny", (ir.SetLit(tuple(ir.Lit(s) for s in ss)),))),
        st.builds(lambda op, v: ir.Compare(op, _p("cap"), ir.Lit(v)), st.sampled_from(["<", "<=", ">", ">=", "==", "!="]),
                  st.integers(0, 2000)),
        st.sampled_from(KEYS).map(lambda k: ir.Compare("<=", _arg(k), _p("cap"))),
        st.just(_p("admin")),
        st.sampled_from(LABELS).map(lambda lab: ir.Compare("==", _p("label"), ir.Lit(lab))),
        st.sampled_from(EMAILS).map(lambda e: ir.Compare("==", _p("nick"), ir.Lit(e))),
    )


def argument_atoms():
    return st.one_of(
        st.builds(lambda k, v: ir.Compare("==", _arg(k), ir.Lit(v)), st.sampled_from(KEYS),
                  st.one_of(st.integers(0, 3), st.sampled_from(["x", "prod"]))),
        st.builds(lambda k, v: ir.Compare(">", _arg(k), ir.Lit(v)), st.sampled_from(KEYS), st.integers(0, 2000)),
        st.sampled_from(KEYS).map(lambda k: ir.Has(ir.GetAttr(ir.Var("context"), "input"), (k,))),
        st.booleans().map(ir.Lit),
    )


def exprs():
    atoms = st.one_of(principal_atoms(), principal_atoms(), argument_atoms())
    return st.recursive(
        atoms,
        lambda sub: st.one_of(st.builds(ir.And, sub, sub), st.builds(ir.Or, sub, sub), st.builds(ir.Not, sub)),
        max_leaves=4,
    )


def principal_scopes():
    return st.one_of(
        st.just(ir.EntityScope()),
        st.just(ir.EntityScope()),
        st.sampled_from(USERS).map(lambda u: ir.EntityScope("eq", ir.EntityRef("User", u))),
        st.sampled_from(GRANTS).map(lambda g: ir.EntityScope("eq", ir.EntityRef("Grant", g))),
        st.sampled_from(GROUPS).map(lambda g: ir.EntityScope("in", ir.EntityRef("Group", g))),
        st.sampled_from(["User", "Grant"]).map(lambda t: ir.EntityScope("is", None, t)),
        st.sampled_from(GROUPS).map(lambda g: ir.EntityScope("is_in", ir.EntityRef("Group", g), "User")),
    )


action_scopes = st.one_of(
    st.just(ir.ActionScope()),
    st.sampled_from(TOOLS).map(lambda t: ir.ActionScope("eq", (ir.EntityRef("Action", t),))),
)


def policies():
    return st.builds(
        lambda eff, p, a, cs: ir.Policy(eff, ir.Scope(p, a, ir.EntityScope()), tuple(cs)),
        st.sampled_from(["permit", "permit", "forbid"]),
        principal_scopes(),
        action_scopes,
        st.lists(st.builds(ir.Clause, st.sampled_from(["when", "unless"]), exprs()), max_size=2),
    )


@st.composite
def identity_documents(draw, max_policies: int = 4) -> ir.Document:
    """A declaration of users, then policies (default deny: Cedar's meaning)."""
    return ir.Document((draw(user_decls()),) + tuple(draw(st.lists(policies(), min_size=1, max_size=max_policies))))


# ---- callers and calls ------------------------------------------------------------------------


def _value(t: str):
    if t == "String":
        return st.sampled_from(EMAILS)
    if t == "Long":
        return st.integers(0, 2000)
    if t == "Bool":
        return st.booleans()
    return st.lists(st.sampled_from(SCOPES), max_size=3, unique=True)


@st.composite
def users(draw, decl: ir.EntityDecl) -> User:
    """A user that fits `decl`: every required attribute, some optional ones."""
    attrs = {}
    for a in decl.attrs:
        if not a.optional or draw(st.booleans()):
            attrs[a.name] = draw(_value(a.type))
    groups = draw(st.frozensets(st.sampled_from(GROUPS), max_size=2))
    return User(draw(st.sampled_from(USERS)), attrs, groups)


def grants():
    return st.builds(Grant, st.sampled_from(GRANTS), st.sampled_from(LABELS), st.frozensets(st.sampled_from(GROUPS), max_size=2))


def callers(decl: ir.EntityDecl):
    return st.one_of(grants(), users(decl))


@dataclass(frozen=True)
class Call:
    tool: str
    args: dict = field(hash=False)
    caller: object = None


def calls(decl: ir.EntityDecl):
    args = st.dictionaries(st.sampled_from(KEYS), st.one_of(st.integers(0, 2000), st.sampled_from(["x", "prod"])), max_size=2)
    return st.builds(Call, st.sampled_from(TOOLS + ["other"]), args, callers(decl))


def cedar_entities(caller) -> list[dict]:
    """The request's entity store for cedarpy: the principal with its attributes and
    parents, and the groups."""
    parents = [{"type": "Group", "id": g} for g in sorted(caller.groups)]
    if isinstance(caller, Grant):
        principal = {"uid": {"type": "Grant", "id": caller.id}, "attrs": {"label": caller.label}, "parents": parents}
    else:
        principal = {"uid": {"type": "User", "id": caller.id}, "attrs": dict(caller.attrs), "parents": parents}
    return [principal, *({"uid": {"type": "Group", "id": g}, "attrs": {}, "parents": []} for g in GROUPS)]


def cedar_principal(caller) -> dict:
    return {"type": "Grant" if isinstance(caller, Grant) else "User", "id": caller.id}
