"""Hypothesis strategies: random mcpp policies (as IR) and random tool calls.

They aim at the shapes that hid bugs before (issue 9), so every backend meets them:

- action groups, nested groups (a group holding a group), and tools named like a group
  (a call's tool may be `ops` while `group Action::"ops" = [...]` exists); `action in`
  a group, a list, a set; `Action::"t0" in Action::"ops"`;
- `is T`, `is T in <entity>`, `is T in [<entities>]` and `is T in <argument>`;
  entity set literals; `Grant::"g0" has label`;
- several limits per tool sharing a counter (same name, same or other window and
  scope, with and without `increment`, with conditions), in both scopes;
- `default allow` programs with `hide`;
- numbers at the edges of i64 (literals, negation, arguments), numeric strings, and
  argument values of every JSON type for every key.

Strategy builders are cached: hypothesis validates a strategy object once, and building
the recursive ones afresh for every example made generation, not the tests, the cost.

`cedar=True` restricts policies and calls to the subset whose meaning Cedar shares (no
regex, no value `in` sets, no substring `contains`, no floats or null, default deny, no
hide, no limits), so cedarpy can serve as the oracle. Pools are small and ordered so
that shrinking ends on short names, zero and the first choice.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from functools import cache

from hypothesis import strategies as st

from mcpp.lang import ir
from mcpp.lang.program import walk

TOOLS = ["t0", "t1", "t2"]
ACTION_GROUPS = ["ops", "admin"]  # action groups; a call's tool may carry one of these names
CALL_TOOLS = TOOLS + ACTION_GROUPS + ["other"]
ACTION_IDS = TOOLS + ACTION_GROUPS
KEYS = ["a", "b", "c"]
STRS = ["x", "y", "", "xy", "x*y", "1", "-3"]  # numeric strings: where numbers are expected
GRANTS = ["g0", "g1"]
GROUPS = ["finance", "ops"]  # Group:: entities (the grant's groups); "ops" is an action group's name too
LABELS = ["alice", "bob", ""]
SERVERS = ["s0", "s1"]
REGEXES = ["^x", "y$", "x|y", "^[a-z]+$", "", "x.y", "^(x|xy)$"]
COUNTERS = ["c0", "c1"]

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
EDGE_INTS = [I64_MIN, I64_MIN + 1, I64_MAX - 1, I64_MAX]

ints = st.one_of(st.integers(-3, 1003), st.sampled_from(EDGE_INTS))
_BOOLEANS = st.booleans()


def input_path(keys) -> ir.Expr:
    e: ir.Expr = ir.GetAttr(ir.Var("context"), "input")
    for k in keys:
        e = ir.GetAttr(e, k)
    return e


paths = st.lists(st.sampled_from(KEYS), min_size=1, max_size=2).map(input_path)


def entity(t: str, i: str) -> ir.EntityLit:
    return ir.EntityLit(ir.EntityRef(t, i))


def action(i: str) -> ir.EntityRef:
    return ir.EntityRef("Action", i)


PRINCIPAL, ACTION, RESOURCE = ir.Var("principal"), ir.Var("action"), ir.Var("resource")


@cache
def scalar_values(cedar: bool):
    base = st.one_of(ints, st.sampled_from(STRS), st.booleans())
    if cedar:
        return base
    return st.one_of(base, st.sampled_from([0.5, 1000.01, -2.25, 1e300]), st.none())


@cache
def lits(cedar: bool):
    return scalar_values(cedar).map(ir.Lit)


@cache
def set_lits(cedar: bool):
    return st.lists(lits(cedar), max_size=3).map(lambda xs: ir.SetLit(tuple(xs)))


# ---- entities ----------------------------------------------------------------------------------

principal_entities = st.one_of(
    st.sampled_from(GROUPS).map(lambda g: entity("Group", g)),
    st.sampled_from(GRANTS).map(lambda g: entity("Grant", g)),
)
# half of the action literals name a group: group-on-group `in` is where the meanings part
action_entities = st.one_of(st.sampled_from(TOOLS), st.sampled_from(ACTION_GROUPS)).map(lambda t: entity("Action", t))
server_entities = st.sampled_from(SERVERS).map(lambda s: entity("Server", s))


@cache
def entity_sets(ents):
    return st.lists(ents, max_size=3).map(lambda xs: ir.SetLit(tuple(xs)))


@cache
def principal_atoms():
    return st.one_of(
        st.sampled_from(GRANTS).map(lambda g: ir.Compare("==", PRINCIPAL, entity("Grant", g))),
        principal_entities.map(lambda e: ir.In(PRINCIPAL, e)),
        entity_sets(principal_entities).map(lambda s: ir.In(PRINCIPAL, s)),
        st.sampled_from(LABELS).map(lambda lab: ir.Compare("==", ir.GetAttr(PRINCIPAL, "label"), ir.Lit(lab))),
        st.sampled_from([("",), ("a", ""), ("", "b", ""), ("*",)]).map(lambda p: ir.Like(ir.GetAttr(PRINCIPAL, "label"), p)),
        st.just(ir.Has(PRINCIPAL, ("label",))),
        st.sampled_from(GRANTS).map(lambda g: ir.Has(entity("Grant", g), ("label",))),
        st.sampled_from(SERVERS).map(lambda s: ir.Compare("==", RESOURCE, entity("Server", s))),
        server_entities.map(lambda e: ir.In(RESOURCE, e)),
        entity_sets(server_entities).map(lambda s: ir.In(RESOURCE, s)),
        # is T, is T in <entity | entity set | argument>
        st.sampled_from([(PRINCIPAL, "Grant"), (PRINCIPAL, "Server"), (RESOURCE, "Server"), (ACTION, "Action")]).map(
            lambda vt: ir.Is(vt[0], vt[1])
        ),
        principal_entities.map(lambda e: ir.Is(PRINCIPAL, "Grant", e)),
        entity_sets(principal_entities).map(lambda s: ir.Is(PRINCIPAL, "Grant", s)),
        server_entities.map(lambda e: ir.Is(RESOURCE, "Server", e)),
    )


@cache
def argument_entity_atoms():
    """An argument where an entity or a set of entities belongs: `principal is Grant in
    context.input.a`, `principal in context.input.a` (an error, or false for `[]`)."""
    return st.one_of(
        paths.map(lambda p: ir.Is(PRINCIPAL, "Grant", p)),
        paths.map(lambda p: ir.In(PRINCIPAL, p)),
        paths.map(lambda p: ir.Is(RESOURCE, "Server", p)),
    )


@cache
def action_atoms():
    return st.one_of(
        action_entities.map(lambda e: ir.Compare("==", ACTION, e)),
        action_entities.map(lambda e: ir.In(ACTION, e)),
        st.lists(action_entities, min_size=1, max_size=3).map(lambda es: ir.In(ACTION, ir.SetLit(tuple(es)))),
        st.tuples(action_entities, action_entities).map(lambda ab: ir.In(ab[0], ab[1])),  # Action::"t0" in Action::"ops"
        st.permutations(ACTION_GROUPS).map(lambda gs: ir.In(entity("Action", gs[0]), entity("Action", gs[1]))),  # group in group
        action_entities.map(lambda e: ir.Is(ACTION, "Action", e)),
    )


@cache
def atoms(cedar: bool, principal: bool = True):
    choices = [
        st.builds(lambda op, p, v: ir.Compare(op, p, v), st.sampled_from(["==", "!="]), paths, lits(cedar)),
        st.builds(lambda op, p, v: ir.Compare(op, p, v), st.sampled_from(["<", "<=", ">", ">="]), paths, ints.map(ir.Lit)),
        st.builds(lambda ks: ir.Has(ir.GetAttr(ir.Var("context"), "input"), tuple(ks)),
                  st.lists(st.sampled_from(KEYS), min_size=1, max_size=2)),
        st.builds(lambda p, pat: ir.Like(p, pat), paths,
                  st.sampled_from([("x", ""), ("", "y"), ("", ""), ("x",), ("x", "y"), ("x*y",), ("", "*", "")])),
        st.builds(lambda p, v: ir.Call(p, "contains", (v,)), paths, ints.map(ir.Lit)),
        st.builds(lambda p, s, m: ir.Call(p, m, (s,)), paths, set_lits(True), st.sampled_from(["containsAll", "containsAny"])),
        paths.map(lambda p: ir.Call(p, "isEmpty", ())),
        paths,  # a bare argument used as a boolean
        st.booleans().map(ir.Lit),
        action_atoms(),
    ]
    if principal:
        choices += [principal_atoms(), argument_entity_atoms()]
    if not cedar:
        choices += [
            # `-<argument>` is exact in mcpp and overflows at i64's minimum in Cedar: a
            # documented divergence (docs/language.md §10), outside the shared subset
            st.builds(lambda op, p, v: ir.Compare(op, ir.Neg(p), v), st.sampled_from(["<", "==", ">="]), paths, ints.map(ir.Lit)),
            st.builds(lambda p, s: ir.In(p, s), paths, set_lits(False)),
            st.builds(lambda p, r: ir.Matches(p, r), paths, st.sampled_from(REGEXES)),
            st.builds(lambda p, v: ir.Call(p, "contains", (ir.Lit(v),)), paths, st.sampled_from(STRS)),
        ]
    return st.one_of(*choices)


@cache
def exprs(cedar: bool, principal: bool = True, max_leaves: int = 6):
    return st.recursive(
        atoms(cedar, principal),
        lambda sub: st.one_of(
            st.builds(ir.And, sub, sub),
            st.builds(ir.Or, sub, sub),
            st.builds(ir.Not, sub),
            st.builds(ir.If, sub, sub, sub),
        ),
        max_leaves=max_leaves,
    )


# ---- scopes and statements ---------------------------------------------------------------------


@cache
def entity_scopes(var: str, principal: bool = True):
    if not principal:
        return st.just(ir.EntityScope())
    if var == "principal":
        ents = st.one_of(st.sampled_from(GROUPS).map(lambda g: ir.EntityRef("Group", g)),
                         st.sampled_from(GRANTS).map(lambda g: ir.EntityRef("Grant", g)))
        return st.one_of(
            st.just(ir.EntityScope()),
            st.sampled_from(GRANTS).map(lambda g: ir.EntityScope("eq", ir.EntityRef("Grant", g))),
            ents.map(lambda e: ir.EntityScope("in", e)),
            st.just(ir.EntityScope("is", None, "Grant")),
            ents.map(lambda e: ir.EntityScope("is_in", e, "Grant")),
        )
    servers = st.sampled_from(SERVERS).map(lambda s: ir.EntityRef("Server", s))
    return st.one_of(
        st.just(ir.EntityScope()),
        servers.map(lambda s: ir.EntityScope("eq", s)),
        servers.map(lambda s: ir.EntityScope("in", s)),
        st.just(ir.EntityScope("is", None, "Server")),
        servers.map(lambda s: ir.EntityScope("is_in", s, "Server")),
    )


action_refs = st.one_of(st.sampled_from(TOOLS), st.sampled_from(ACTION_GROUPS)).map(action)

action_scopes = st.one_of(
    st.just(ir.ActionScope()),
    action_refs.map(lambda t: ir.ActionScope("eq", (t,))),
    action_refs.map(lambda t: ir.ActionScope("in", (t,))),  # `in` a group, or a tool (reflexive)
    st.lists(action_refs, min_size=1, max_size=3, unique=True).map(lambda ts: ir.ActionScope("in_list", tuple(ts))),
)


@cache
def scopes(principal: bool = True):
    return st.builds(ir.Scope, entity_scopes("principal", principal), action_scopes, entity_scopes("resource", principal))


@cache
def clauses(cedar: bool, principal: bool = True, max_leaves: int = 6):
    return st.builds(lambda k, e: ir.Clause(k, e), st.sampled_from(["when", "unless"]), exprs(cedar, principal, max_leaves))


@cache
def policies(cedar: bool, principal: bool = True):
    return st.builds(
        lambda eff, scope, cs: ir.Policy(eff, scope, tuple(cs)),
        st.sampled_from(["permit", "forbid"]),
        scopes(principal),
        st.lists(clauses(cedar, principal), max_size=2),
    )


@cache
def limits(principal: bool = True):
    """Limits that share counters: a small pool of names, windows and scopes (weighted to
    the first), so two limits on one tool often count the same (counter, scope, window)."""
    return st.builds(
        lambda counter, scope, mx, window, kind, inc, cs: ir.Limit(
            counter, scope, mx, window, kind, input_path(inc) if inc else None, tuple(cs)
        ),
        st.sampled_from(COUNTERS),
        st.one_of(action_scopes.map(lambda a: ir.Scope(action=a)), scopes(principal)),
        st.sampled_from([1, 0, 2, 5, 1000, 1.5]),
        st.sampled_from(["hour", "hour", "minute", "day"]),
        st.sampled_from(["grant", "grant", "policy"]),
        st.sampled_from([None, ("a",), ("b",), ("a", "b")]),
        st.lists(clauses(False, principal, max_leaves=3), max_size=1),
    )


# The strategies a composite below draws from, built once: hypothesis validates a strategy
# object on its first draw, and a strategy built inside a composite is a new object (and a
# new validation) at every example.
_GROUP_NAMES = st.lists(st.sampled_from(ACTION_GROUPS), max_size=len(ACTION_GROUPS), unique=True)
_DEFAULTS = st.sampled_from([None, "allow", "deny"])
_HIDDEN = st.lists(st.sampled_from(ACTION_IDS), max_size=2, unique=True)


@cache
def _members(inner: tuple):
    return st.lists(st.sampled_from(TOOLS + list(inner)), max_size=3, unique=True)


@cache
def _policy_lists(cedar: bool, principal: bool, max_policies: int):
    return st.lists(policies(cedar, principal), min_size=1, max_size=max_policies)


@cache
def _limit_lists(principal: bool):
    return st.lists(limits(principal), max_size=4)


@st.composite
def group_decls(draw) -> list[ir.Group]:
    """Action groups, often nested (a group holds only groups declared after it, so there
    is no cycle) and possibly empty; a member may be a tool or a group's name."""
    names = draw(_GROUP_NAMES)
    out = []
    for i, name in enumerate(names):
        inner = names[i + 1:]
        members = draw(_members(tuple(inner)))
        if inner and draw(_BOOLEANS) and inner[0] not in members:
            members.append(inner[0])  # nest
        out.append(ir.Group(action(name), tuple(action(m) for m in members)))
    return out


@st.composite
def documents(draw, cedar: bool = False, principal: bool = True, max_policies: int = 5, with_limits: bool = False) -> ir.Document:
    stmts: list = []
    if not cedar:
        d = draw(_DEFAULTS)
        if d:
            stmts.append(ir.Default(d))
        hidden = draw(_HIDDEN)
        if hidden:
            stmts.append(ir.Hide(tuple(action(t) for t in hidden)))
    stmts += draw(group_decls())
    stmts += draw(_policy_lists(cedar, principal, max_policies))
    if with_limits and not cedar:
        stmts += draw(_limit_lists(principal))
    return ir.Document(tuple(stmts))


# ---- calls -------------------------------------------------------------------------------------


@cache
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


@cache
def calls(cedar: bool = False):
    """Calls to any tool (group names and unnamed tools included), with argument values
    of every JSON type under every key."""
    return st.builds(
        Call,
        st.sampled_from(CALL_TOOLS),
        st.dictionaries(st.sampled_from(KEYS), arg_values(cedar), max_size=3),
        st.sampled_from(GRANTS),
        st.sampled_from(LABELS),
        st.frozensets(st.sampled_from(GROUPS), max_size=2),
        st.sampled_from(SERVERS),
    )


def literals(statements) -> list:
    """Constants the statements compare with, and their neighbours: where decisions flip
    (for a number n: n±1, -n and "n"; for a `like` pattern: a matching string and a near miss)."""
    out: list = []

    def add(v):
        if not any(type(v) is type(x) and v == x for x in out):
            out.append(v)

    for s in statements:
        exprs_ = [c.expr for c in getattr(s, "clauses", ())]
        for e in exprs_:
            for n in walk(e):
                if isinstance(n, ir.Lit):
                    add(n.value)
                    if isinstance(n.value, int) and not isinstance(n.value, bool):
                        for v in (n.value + 1, n.value - 1, -n.value, str(n.value)):
                            add(v)
                elif isinstance(n, ir.Like):
                    add("".join(n.pattern))
                    add("q".join(n.pattern))
    return out


def input_paths(statements) -> list[tuple[str, ...]]:
    """The argument paths (`context.input.a.b` → ("a", "b")) the statements read."""
    from mcpp.lang.atoms import input_path as path_of

    out: list = []
    for s in statements:
        roots = [c.expr for c in getattr(s, "clauses", ())]
        if getattr(s, "increment", None) is not None:
            roots.append(s.increment)
        for e in roots:
            for n in walk(e):
                p = path_of(n) if isinstance(n, ir.GetAttr) else None
                if p and p not in out:
                    out.append(p)
    return sorted(out)


@st.composite
def _args_for(draw, paths_, placed, cedar: bool):
    """Random arguments, then a value at each path the policy reads, half of the time."""
    args = draw(arg_dicts(cedar))
    for p in paths_:
        if not draw(_BOOLEANS):
            continue
        d = args
        for k in p[:-1]:
            if type(d.get(k)) is not dict:
                d[k] = {}
            d = d[k]
        d[p[-1]] = copy.deepcopy(draw(placed))  # a fresh value: a later path may write into it
    return args


_EMPTY_LIST, _EMPTY_DICT = st.builds(list), st.builds(dict)


@cache
def arg_dicts(cedar: bool):
    return st.dictionaries(st.sampled_from(KEYS), arg_values(cedar), max_size=3)


@cache
def _call_fields(grants: tuple, servers: tuple):
    """The parts of `calls_for`'s strategy that do not depend on the statements, built
    (and validated by hypothesis) once: building and validating them afresh for every
    program cost more than drawing from them."""
    return (st.sampled_from(CALL_TOOLS), st.sampled_from(grants), st.sampled_from(LABELS),
            st.frozensets(st.sampled_from(GROUPS), max_size=2), st.sampled_from(servers))


def calls_for(statements, cedar: bool = False, grants=GRANTS, servers=SERVERS):
    """Random calls, biased toward the statements' own argument paths and constants (and
    the edges of i64, and the empty set and record: `principal in []` has a value)."""
    lits = [v for v in literals(statements) + EDGE_INTS if not cedar or _cedar_value(v)]
    lit_values = st.sampled_from(lits)
    placed = st.one_of(lit_values, scalar_values(cedar), arg_values(cedar),
                       st.lists(lit_values, max_size=3), _EMPTY_LIST, _EMPTY_DICT)
    tools, grants_, labels, groups, servers_ = _call_fields(tuple(grants), tuple(servers))
    return st.builds(Call, tools, _args_for(input_paths(statements), placed, cedar), grants_, labels, groups, servers_)


def _cedar_value(v) -> bool:
    if isinstance(v, bool) or isinstance(v, str):
        return True
    return isinstance(v, int) and I64_MIN <= v <= I64_MAX


# ---- spelling ----------------------------------------------------------------------------------

_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
_PIECE = re.compile(r"\\u\{[0-9a-fA-F]+\}|\\.|.", re.S)


def _unicode(ch: str) -> str:
    return "\\u{%x}" % ord(ch)


def respell(text: str, how: str) -> str:
    """The same source text with its string literals spelled another way: `star` writes
    an escaped star `\\*` as `\\u{2a}`; `all` also writes every other plain character as a
    `\\u{..}` escape. Cedar and mcpp must agree on what each spelling means."""
    if how == "keep":
        return text

    def one(m: re.Match) -> str:
        pieces = []
        for piece in _PIECE.findall(m.group(1)):
            if piece == "\\*":
                pieces.append("\\u{2a}")
            elif how == "all" and len(piece) == 1 and piece != "*":
                pieces.append(_unicode(piece))
            else:
                pieces.append(piece)
        return '"' + "".join(pieces) + '"'

    return _STRING.sub(one, text)


# one choice for the whole text: it stays put while the shrinker removes statements
spellings = st.sampled_from(["keep", "star", "all"])
