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


# ---- user sets: Set<String>, Set<Long>, Set<Bool> attributes ---------------------------------
# Every element of a real user's set has the declared type (the gateway leaves out a claim
# with another, the engine refuses such a user); the analyzer's encoding says the same
# (`sym.UserSet`). These generate what tests that: sets of each element type, every set
# operation on them, and operands of every kind — literals that no element can equal (a
# string tested against a Long set, 1.5, 2**63) and arguments of any JSON type.

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
SET_ATTRS = {"scopes": "Set<String>", "roles": "Set<String>", "nums": "Set<Long>", "flags": "Set<Bool>"}
SET_ELEMS = {"Set<String>": ["a", "b", "k8s:write"], "Set<Long>": [0, 1, -1, I64_MAX, I64_MIN], "Set<Bool>": [True, False]}
ODD = ["a", 1, 1.5, 2**63, True, ""]  # literals of every kind, some no element of any set can equal


@st.composite
def set_decls(draw) -> ir.EntityDecl:
    """`entity User in [Group] { scopes: Set<String>, roles: Set<String>, nums: Set<Long>,
    flags: Set<Bool> }`, each attribute required or optional."""
    return ir.EntityDecl("User", ("Group",), tuple(ir.AttrDecl(n, t, draw(st.booleans())) for n, t in SET_ATTRS.items()))


def _any_lit():
    return st.one_of(*(st.sampled_from(v) for v in SET_ELEMS.values()), st.sampled_from(ODD)).map(ir.Lit)


def _set_lits():
    return st.lists(_any_lit(), max_size=3).map(lambda xs: ir.SetLit(tuple(xs)))


def set_atoms():
    """Every operation on a user's set, with operands of every kind."""
    P = ir.Var("principal")
    names = st.sampled_from(list(SET_ATTRS))
    methods = st.sampled_from(["containsAll", "containsAny"])
    keys = st.sampled_from(KEYS)
    own = names.flatmap(lambda a: st.sampled_from(SET_ELEMS[SET_ATTRS[a]]).map(
        lambda v: ir.Call(_p(a), "contains", (ir.Lit(v),))))  # validation refuses a literal of another type
    return st.one_of(
        own,
        st.builds(lambda a, k: ir.Call(_p(a), "contains", (_arg(k),)), names, keys),  # an argument of any type
        st.builds(lambda a, k: ir.In(_arg(k), _p(a)), names, keys),
        st.builds(lambda a, m, s: ir.Call(_p(a), m, (s,)), names, methods, _set_lits()),
        st.builds(lambda a, m, s: ir.Call(s, m, (_p(a),)), names, methods, _set_lits()),
        names.map(lambda a: ir.Call(_p(a), "isEmpty", ())),
        st.builds(lambda a, s: ir.Compare("==", _p(a), s), names, _set_lits()),
        st.builds(lambda a, m, b: ir.Call(_p(a), m, (_p(b),)), names, methods, names),
        st.builds(lambda a, m, k: ir.Call(_p(a), m, (_arg(k),)), names, methods, keys),  # widened: two arrays
        names.map(lambda a: ir.Has(P, (a,))),
        st.builds(lambda k, a: ir.Call(_arg(k), "contains", (_p(a),)), keys, names),  # an argument array holding the set
    )


def set_exprs():
    atoms = st.one_of(set_atoms(), set_atoms(), argument_atoms())
    return st.recursive(
        atoms,
        lambda sub: st.one_of(st.builds(ir.And, sub, sub), st.builds(ir.Or, sub, sub), st.builds(ir.Not, sub)),
        max_leaves=3,
    )


def set_policies():
    return st.builds(
        lambda eff, p, a, cs: ir.Policy(eff, ir.Scope(p, a, ir.EntityScope()), tuple(cs)),
        st.sampled_from(["permit", "permit", "forbid"]),
        st.sampled_from([ir.EntityScope(), ir.EntityScope("is", None, "User")]),
        action_scopes,
        st.lists(st.builds(ir.Clause, st.sampled_from(["when", "unless"]), set_exprs()), max_size=2),
    )


@st.composite
def set_documents(draw, max_policies: int = 3) -> ir.Document:
    """A declaration of set attributes, policies over them, and one assert about them."""
    decl = draw(set_decls())
    rules = tuple(draw(st.lists(set_policies(), min_size=1, max_size=max_policies)))
    claim = ir.Assert(draw(st.sampled_from(["deny", "allow"])),
                      ir.Scope(draw(st.sampled_from([ir.EntityScope(), ir.EntityScope("is", None, "User")])),
                               draw(action_scopes), ir.EntityScope()),
                      tuple(draw(st.lists(st.builds(ir.Clause, st.just("when"), set_exprs()), max_size=1))))
    return ir.Document((decl,) + rules + (claim,))


def _set_value(t: str):
    """A set of the element type: the policy's values and any others, duplicates allowed."""
    # (strings below U+2FA20: the analyzer's domain, docs/analyzer.md "Domain assumptions")
    text = st.text(st.characters(max_codepoint=0x2FA1F), max_size=3)
    elem = {"Set<String>": st.one_of(st.sampled_from(SET_ELEMS[t]), text),
            "Set<Long>": st.one_of(st.sampled_from(SET_ELEMS[t]), st.integers(I64_MIN, I64_MAX)),
            "Set<Bool>": st.booleans()}[t]
    return st.lists(elem, max_size=4)


@st.composite
def set_users(draw, decl: ir.EntityDecl) -> User:
    """A user that fits `decl`: every required set, some optional ones."""
    attrs = {a.name: draw(_set_value(a.type)) for a in decl.attrs if not a.optional or draw(st.booleans())}
    return User(draw(st.sampled_from(USERS)), attrs, draw(st.frozensets(st.sampled_from(GROUPS), max_size=1)))


def set_args():
    """Arguments of every JSON type, including arrays that hold a set's value."""
    scalar = st.one_of(st.sampled_from(["a", "b", "k8s:write", "", 0, 1, -1, 1.5, True, False, None, I64_MAX, I64_MIN]),
                       st.integers(I64_MIN, I64_MAX))
    value = st.one_of(scalar, st.lists(st.one_of(scalar, st.lists(st.sampled_from(["a", "b", 1, True]), max_size=2)),
                                       max_size=3))
    return st.dictionaries(st.sampled_from(KEYS), value, max_size=2)


def set_calls(decl: ir.EntityDecl):
    return st.builds(Call, st.sampled_from(TOOLS + ["other"]), set_args(), st.one_of(set_users(decl), grants()))
