"""Hypothesis strategies: random mcpp policies (as IR) and random tool calls.

`cedar=True` restricts both to the subset whose meaning Cedar shares (no regex, no
value `in` sets, no substring `contains`, no floats or null, default deny, no hide),
so cedarpy can serve as the oracle.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from mcpp.lang import ir

TOOLS = ["t0", "t1", "t2"]
KEYS = ["a", "b", "c"]
STRS = ["x", "y", "", "xy", "x*y"]
GRANTS = ["g0", "g1"]
GROUPS = ["finance", "ops"]
LABELS = ["alice", "bob", ""]
SERVERS = ["s0", "s1"]
REGEXES = ["^x", "y$", "x|y", "^[a-z]+$", "", "x.y", "^(x|xy)$"]


def input_path(keys) -> ir.Expr:
    e: ir.Expr = ir.GetAttr(ir.Var("context"), "input")
    for k in keys:
        e = ir.GetAttr(e, k)
    return e


paths = st.lists(st.sampled_from(KEYS), min_size=1, max_size=2).map(input_path)


def scalar_values(cedar: bool):
    base = st.one_of(st.integers(-3, 1003), st.sampled_from(STRS), st.booleans())
    if cedar:
        return base
    return st.one_of(base, st.sampled_from([0.5, 1000.01, -2.25]), st.none())


def lits(cedar: bool):
    return scalar_values(cedar).map(ir.Lit)


def set_lits(cedar: bool):
    return st.lists(lits(cedar), max_size=3).map(lambda xs: ir.SetLit(tuple(xs)))


def principal_atoms():
    return st.one_of(
        st.sampled_from(GRANTS).map(lambda g: ir.Compare("==", ir.Var("principal"), ir.EntityLit(ir.EntityRef("Grant", g)))),
        st.sampled_from(GROUPS).map(lambda g: ir.In(ir.Var("principal"), ir.EntityLit(ir.EntityRef("Group", g)))),
        st.sampled_from(LABELS).map(lambda lab: ir.Compare("==", ir.GetAttr(ir.Var("principal"), "label"), ir.Lit(lab))),
        st.sampled_from(TOOLS).map(lambda t: ir.Compare("==", ir.Var("action"), ir.EntityLit(ir.EntityRef("Action", t)))),
        st.lists(st.sampled_from(TOOLS), min_size=1, max_size=2, unique=True).map(
            lambda ts: ir.In(ir.Var("action"), ir.SetLit(tuple(ir.EntityLit(ir.EntityRef("Action", t)) for t in ts)))
        ),
        st.sampled_from(SERVERS).map(lambda s: ir.Compare("==", ir.Var("resource"), ir.EntityLit(ir.EntityRef("Server", s)))),
    )


def atoms(cedar: bool, principal: bool = True):
    ints = st.integers(-3, 1003).map(ir.Lit)
    choices = [
        st.builds(lambda op, p, v: ir.Compare(op, p, v), st.sampled_from(["==", "!="]), paths, lits(cedar)),
        st.builds(lambda op, p, v: ir.Compare(op, p, v), st.sampled_from(["<", "<=", ">", ">="]), paths, ints),
        st.builds(lambda ks: ir.Has(ir.GetAttr(ir.Var("context"), "input"), tuple(ks)),
                  st.lists(st.sampled_from(KEYS), min_size=1, max_size=2)),
        st.builds(lambda p, pat: ir.Like(p, pat), paths, st.sampled_from([("x", ""), ("", "y"), ("", ""), ("x",), ("x", "y")])),
        st.builds(lambda p, v: ir.Call(p, "contains", (v,)), paths, ints),
        st.builds(lambda p, s, m: ir.Call(p, m, (s,)), paths, set_lits(True), st.sampled_from(["containsAll", "containsAny"])),
        paths.map(lambda p: ir.Call(p, "isEmpty", ())),
        paths,  # a bare argument used as a boolean
        st.booleans().map(ir.Lit),
    ]
    if principal:
        choices.append(principal_atoms())
    if not cedar:
        choices += [
            st.builds(lambda p, s: ir.In(p, s), paths, set_lits(False)),
            st.builds(lambda p, r: ir.Matches(p, r), paths, st.sampled_from(REGEXES)),
            st.builds(lambda p, v: ir.Call(p, "contains", (ir.Lit(v),)), paths, st.sampled_from(STRS)),
        ]
    return st.one_of(*choices)


def exprs(cedar: bool, principal: bool = True):
    return st.recursive(
        atoms(cedar, principal),
        lambda sub: st.one_of(
            st.builds(ir.And, sub, sub),
            st.builds(ir.Or, sub, sub),
            st.builds(ir.Not, sub),
            st.builds(ir.If, sub, sub, sub),
        ),
        max_leaves=6,
    )


def entity_scopes(var: str, principal: bool = True):
    if var == "principal":
        if not principal:
            return st.just(ir.EntityScope())
        return st.one_of(
            st.just(ir.EntityScope()),
            st.sampled_from(GRANTS).map(lambda g: ir.EntityScope("eq", ir.EntityRef("Grant", g))),
            st.sampled_from(GROUPS).map(lambda g: ir.EntityScope("in", ir.EntityRef("Group", g))),
        )
    return st.one_of(
        st.just(ir.EntityScope()),
        st.sampled_from(SERVERS).map(lambda s: ir.EntityScope("eq", ir.EntityRef("Server", s))),
    ) if principal else st.just(ir.EntityScope())


action_scopes = st.one_of(
    st.just(ir.ActionScope()),
    st.sampled_from(TOOLS).map(lambda t: ir.ActionScope("eq", (ir.EntityRef("Action", t),))),
    st.lists(st.sampled_from(TOOLS), min_size=1, max_size=2, unique=True).map(
        lambda ts: ir.ActionScope("in_list", tuple(ir.EntityRef("Action", t) for t in ts))
    ),
)


def clauses(cedar: bool, principal: bool = True):
    return st.builds(lambda k, e: ir.Clause(k, e), st.sampled_from(["when", "unless"]), exprs(cedar, principal))


def policies(cedar: bool, principal: bool = True):
    return st.builds(
        lambda eff, p, a, r, cs: ir.Policy(eff, ir.Scope(p, a, r), tuple(cs)),
        st.sampled_from(["permit", "forbid"]),
        entity_scopes("principal", principal),
        action_scopes,
        entity_scopes("resource", principal),
        st.lists(clauses(cedar, principal), max_size=2),
    )


@st.composite
def documents(draw, cedar: bool = False, principal: bool = True, max_policies: int = 5) -> ir.Document:
    stmts: list = []
    if not cedar:
        d = draw(st.sampled_from([None, "allow", "deny"]))
        if d:
            stmts.append(ir.Default(d))
        hidden = draw(st.lists(st.sampled_from(TOOLS), max_size=1, unique=True))
        if hidden:
            stmts.append(ir.Hide(tuple(ir.EntityRef("Action", t) for t in hidden)))
    stmts += draw(st.lists(policies(cedar, principal), min_size=1, max_size=max_policies))
    return ir.Document(tuple(stmts))


def arg_values(cedar: bool):
    scalars = scalar_values(cedar)
    return st.recursive(
        scalars,
        lambda sub: st.one_of(
            st.lists(sub, max_size=3),
            st.dictionaries(st.sampled_from(KEYS), sub, max_size=2),
        ),
        max_leaves=4,
    )


@dataclass(frozen=True)
class Call:
    tool: str
    args: dict
    grant: str
    label: str
    groups: frozenset
    server: str


def calls(cedar: bool = False):
    return st.builds(
        Call,
        st.sampled_from(TOOLS + ["other"]),
        st.dictionaries(st.sampled_from(KEYS), arg_values(cedar), max_size=3),
        st.sampled_from(GRANTS),
        st.sampled_from(LABELS),
        st.frozensets(st.sampled_from(GROUPS), max_size=2),
        st.sampled_from(SERVERS),
    )
