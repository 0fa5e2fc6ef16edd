"""Hypothesis strategies for the analyzer tests: regexes of the supported RE2 subset,
strings that exercise them, and small random policies (built on tests/strategies.py)."""

from __future__ import annotations

from hypothesis import strategies as st

from mcpp.lang.regex import escape

# characters chosen to hit RE2's corners: case folding (K, U+212A KELVIN, ſ), newline,
# word/space/digit class edges, a non-BMP character, and the zone Z3's high block stands
# for (U+2FA20..U+10FFFF: the first of it, the last Z3 character, the first beyond, the last)
ALPHABET = "abAB_1 \n\t.-K\u212a\u017fs\u00e9\U0001f600/\U0002fa1f\U0002fa20\U0002ffff\U00030000\U0010ffff"

_atoms = st.one_of(
    st.sampled_from(list("abAB1_ -/")).map(escape),
    st.sampled_from([".", r"\d", r"\w", r"\s", r"\D", r"\W", r"\S", "[ab]", "[^a]", "[a-c]", "[^\\n]", "[[:alpha:]]",
                     "[[:^digit:]]", "[\\d_]", "[k]", "\\.", "\\x41", "\\x{e9}", "\\n", "\\Qa.\\E", "\u00e9", "s", "k"]),
    # classes naming the high zone yet uniform over it (those that split it are Unsupported)
    st.sampled_from(["[\\x{61}-\\x{10FFFF}]", "[^\\x{2FA20}-\\x{10FFFF}]", "[^a\\x{2FA20}-\\x{10FFFF}]",
                     "[\\x{2FA1F}-\\x{10FFFF}]", "[^\\x{2FA1F}-\\x{10FFFF}]", "[\\x{0}-\\x{2FA1F}]",
                     "[^\\x{2FA20}-\\x{10FFFF}\\n]", "[\U0002fa1f-\U0010ffff]", "[^\U0002fa20-\U0010ffff]"]),
)


def _rep(r: str):
    return st.sampled_from(["*", "+", "?", "{2}", "{0}", "{1,2}", "{0,1}", "{2,}", "*?", "+?", "{0,}"]).map(
        lambda op: f"(?:{r}){op}"
    )


regexes = st.recursive(
    _atoms,
    lambda sub: st.one_of(
        st.tuples(sub, sub).map(lambda t: t[0] + t[1]),
        st.tuples(sub, sub).map(lambda t: f"{t[0]}|{t[1]}"),
        sub.flatmap(_rep),
        sub.map(lambda r: f"({r})"),
        sub.map(lambda r: f"(?i:{r})"),
        sub.map(lambda r: f"(?s:{r})"),
        sub.map(lambda r: f"(?i){r}"),
        sub.map(lambda r: f"^{r}"),
        sub.map(lambda r: f"{r}$"),
        sub.map(lambda r: f"(?:^|/){r}"),
        sub.map(lambda r: f"{r}(?:$|/)"),
        sub.map(lambda r: f"\\A{r}\\z"),
    ),
    max_leaves=6,
)

texts = st.text(alphabet=ALPHABET, max_size=8)


# ---- policies with limits and assertions -----------------------------------------------------


from dataclasses import dataclass  # noqa: E402
from functools import cache  # noqa: E402

from mcpp.lang import ir  # noqa: E402
from mcpp.lang.ir import walk  # noqa: E402
from mcpp.lang.program import build_program  # noqa: E402

from tests import strategies as base  # noqa: E402

limits = base.limits()
# Strategies the composites below draw from are built once, here or behind `cache`:
# hypothesis validates a strategy object on its first draw, so one built inside a
# composite is validated again at every example (for a recursive one, ~10 ms).
_BOOLEANS = st.booleans()


@st.composite
def programs(draw, principal: bool = True, max_policies: int = 4, with_limits: bool = True,
             with_approvals: bool = False):
    """Random programs (tests/strategies.py): action groups, nested groups, tools named like
    groups, `default allow` with hide, up to four limits sharing counters, and (with
    `with_approvals`) some permits marked `@approval` (docs/approval.md)."""
    doc = draw(base.documents(principal=principal, max_policies=max_policies, with_limits=with_limits))
    stmts = list(doc.statements)
    if with_approvals:
        stmts = [ir.Policy(s.effect, s.scope, s.clauses, (ir.Annotation("approval", "a person decides"),))
                 if isinstance(s, ir.Policy) and s.effect == "permit" and draw(_BOOLEANS) else s
                 for s in stmts]
    prog, diags = build_program(ir.Document(tuple(stmts)))
    assert not [d for d in diags if d.severity == "error"], diags
    return prog


def assertions(principal: bool = True):
    return st.builds(
        lambda kind, pol: ir.Assert(kind, pol.scope, pol.clauses),
        st.sampled_from(["deny", "allow", "approval"]),
        base.policies(False, principal),
    )


def statements(prog) -> list:
    return [p.stmt for p in prog.policies] + [li.stmt for li in prog.limits] + [a.stmt for a in prog.asserts]


def literals(prog) -> list:
    """Constants the policy compares with, and their neighbours: where decisions flip."""
    out = []
    for s in statements(prog):
        for c in s.clauses:
            for n in walk(c.expr):
                if isinstance(n, ir.Lit) and n.value not in out:
                    out.append(n.value)
                    if isinstance(n.value, (int, float)) and not isinstance(n.value, bool):
                        out += [n.value + 1, n.value - 1, str(n.value)]
                elif isinstance(n, ir.Like):
                    out.append("".join(n.pattern))
                    out.append("q".join(n.pattern))
    return out


def calls_for(prog):
    """Random calls (the "anonymous" grant and the "default" server included), biased
    toward the program's own argument paths and constants."""
    return base.calls_for(statements(prog), grants=base.GRANTS + ["anonymous"], servers=base.SERVERS + ["default"])


# ---- any expression, well typed or not ---------------------------------------------------------
#
# The shapes random policies rarely produce: entities on either side of `in`, `is T in`
# over every right-hand kind, sets of entities, empty and nested set literals, records,
# strings outside ASCII. Each is a value or an error for the evaluator, and the encoder
# must say the same (tests/analyzer/test_expressions.py).

WILD_TOOLS = ["t0", "t1", "grp", "t9"]  # "grp" is also an action group: `in` is reflexive
WILD_GROUPS = {"grp": ("t0",), "outer": ("grp", "t1")}  # nested: t0 is in grp, grp in outer
WILD_ENTITIES = [("Grant", "g0"), ("Grant", "g1"), ("Group", "ops"), ("Group", "finance"), ("Action", "t0"),
                 ("Action", "grp"), ("Action", "outer"), ("Server", "s0")]
WILD_STRINGS = ["", "x", "ß", "SS", "K", "\u212a", "k", "\U0001f600", " ß😀bB", "1", "a*b"]
WILD_REGEXES = ["^x$", "[^a]", "(?i)k", "\\p{Greek}", "^$", "ß|ss", "\U0001f600$", "[\\d\\s]+", "(?i)SS"]
WILD_KEYS = ["a", "b", "k"]


def _ent(t):
    return ir.EntityLit(ir.EntityRef(*t))


_wild_leaves = st.one_of(
    st.lists(st.sampled_from(WILD_KEYS), min_size=1, max_size=2).map(base.input_path),
    st.sampled_from(WILD_KEYS).map(lambda k: ir.Neg(base.input_path([k]))),
    st.sampled_from(["principal", "action", "resource"]).map(ir.Var),
    st.just(ir.GetAttr(ir.Var("context"), "input")),
    st.just(ir.GetAttr(ir.Var("principal"), "label")),
    st.sampled_from(WILD_ENTITIES).map(_ent),
    st.one_of(st.integers(-2, 2), st.sampled_from([0.5, 1.0]), st.sampled_from(WILD_STRINGS), st.booleans(), st.none()).map(ir.Lit),
)

wild_bools = st.deferred(lambda: _wild_bools)
wild_values = st.recursive(
    _wild_leaves,
    lambda sub: st.one_of(
        st.lists(sub, max_size=3).map(lambda xs: ir.SetLit(tuple(xs))),
        st.dictionaries(st.sampled_from(WILD_KEYS), sub, max_size=2).map(lambda d: ir.RecordLit(tuple(d.items()))),
        st.builds(lambda d, k: ir.GetAttr(ir.RecordLit(tuple(d.items())), k),
                  st.dictionaries(st.sampled_from(WILD_KEYS), sub, min_size=1, max_size=2), st.sampled_from(WILD_KEYS)),
        st.builds(ir.If, wild_bools, sub, sub),
    ),
    max_leaves=4,
)

wild_entities = st.one_of(st.sampled_from(["principal", "action", "resource"]).map(ir.Var), st.sampled_from(WILD_ENTITIES).map(_ent))
# the right side of `in` and `is T in`: an entity, a set (of entities, of anything, empty,
# nested), an argument (array or not), or anything else
_in_targets = st.one_of(
    wild_entities,
    st.lists(wild_entities, max_size=3).map(lambda xs: ir.SetLit(tuple(xs))),
    st.lists(st.one_of(wild_entities, wild_values), max_size=3).map(lambda xs: ir.SetLit(tuple(xs))),
    st.sampled_from(WILD_KEYS).map(lambda k: base.input_path([k])),
    wild_values,
)

_wild_atoms = st.one_of(
    st.builds(ir.Compare, st.sampled_from(["==", "!=", "<", ">="]), wild_values, wild_values),
    st.builds(ir.In, st.one_of(wild_entities, wild_values), _in_targets),
    st.deferred(lambda: _is_atoms),
    st.builds(ir.Has, wild_values, st.lists(st.sampled_from(WILD_KEYS + ["label"]), min_size=1, max_size=2).map(tuple)),
    st.builds(lambda o, m, a: ir.Call(o, m, (a,)), wild_values, st.sampled_from(["contains", "containsAll", "containsAny"]), wild_values),
    wild_values.map(lambda o: ir.Call(o, "isEmpty", ())),
    st.builds(ir.Like, wild_values, st.sampled_from([("", ""), ("ß",), ("", "😀", ""), ("k",), ("SS", "")])),
    st.builds(ir.Matches, wild_values, st.sampled_from(WILD_REGEXES)),
    wild_values,  # a value used as a boolean
)

_VAR_TYPES = {"principal": "Grant", "action": "Action", "resource": "Server"}


@st.composite
def _is_atom(draw):
    """`e is T [in E]`, mostly with T the type `e` has, so `in E` gets evaluated."""
    obj = draw(st.one_of(wild_entities, wild_entities, wild_values))
    own = _VAR_TYPES.get(obj.name) if isinstance(obj, ir.Var) else obj.entity.type if isinstance(obj, ir.EntityLit) else None
    types = ["Grant", "Action", "Server", "Group"]
    t = draw(st.sampled_from([own] * 3 + types if own else types))
    return ir.Is(obj, t, draw(st.one_of(st.none(), _in_targets, _in_targets)))


_is_atoms = _is_atom()

_wild_bools = st.recursive(
    _wild_atoms,
    lambda sub: st.one_of(st.builds(ir.And, sub, sub), st.builds(ir.Or, sub, sub), sub.map(ir.Not), st.builds(ir.If, sub, sub, sub)),
    max_leaves=3,
)

wild_scalars = st.one_of(st.sampled_from([1, 1.0, -1, 0.5, True, False, None]), st.sampled_from(WILD_STRINGS))
wild_args = st.dictionaries(
    st.sampled_from(WILD_KEYS),
    st.one_of(
        st.sampled_from([[], {}, [[]], [1, "x"]]),  # the values where set and record encodings have edges
        st.recursive(wild_scalars, lambda sub: st.one_of(st.lists(sub, max_size=3), st.dictionaries(st.sampled_from(WILD_KEYS), sub, max_size=2)),
                     max_leaves=4),
    ),
    max_size=3,
)


@dataclass(frozen=True)
class WildCall:
    tool: str
    args: dict
    grant: str
    label: str
    groups: tuple
    server: str


wild_calls = st.builds(
    WildCall, st.sampled_from(WILD_TOOLS), wild_args, st.sampled_from(["g0", "g1"]), st.sampled_from(["", "ß", "alice"]),
    st.lists(st.sampled_from(["ops", "finance"]), unique=True, max_size=2).map(lambda g: tuple(sorted(g))),
    st.sampled_from(["s0", "s1"]),
)


def wild_program(expr_list, kinds=None):
    """A program with one permit per expression (in order), over the wild groups."""
    groups = tuple(ir.Group(ir.EntityRef("Action", g), tuple(ir.EntityRef("Action", m) for m in ms)) for g, ms in WILD_GROUPS.items())
    kinds = kinds or ["when"] * len(expr_list)
    pols = tuple(ir.Policy("permit", ir.Scope(), (ir.Clause(k, e),)) for k, e in zip(kinds, expr_list))
    prog, diags = build_program(ir.Document(groups + pols))
    return prog, [d for d in diags if d.severity == "error"]


# ---- rich programs: defaults, hide, groups named like tools, any expression ------------------
#
# `programs()` above never declares a group and never names a tool like one; these do
# (a tool "t1" that is also a group, a nested group), under every default, with `hide`,
# and with clauses drawn from the wild expressions as well as the ordinary ones.

RICH_GROUPS = {"t1": ("t0", "t2"), "grp": ("t0",), "outer": ("grp", "t2")}
RICH_TOOLS = ["t0", "t1", "t2", "grp", "outer"]  # every group name is a tool name too
RICH_CALL_TOOLS = RICH_TOOLS + ["other"]


def _act(t):
    return ir.EntityRef("Action", t)


rich_action_scopes = st.one_of(
    st.just(ir.ActionScope()),
    st.sampled_from(RICH_TOOLS).map(lambda t: ir.ActionScope("eq", (_act(t),))),
    st.sampled_from(list(RICH_GROUPS)).map(lambda g: ir.ActionScope("in", (_act(g),))),
    st.lists(st.sampled_from(RICH_TOOLS), min_size=1, max_size=2, unique=True).map(lambda ts: ir.ActionScope("in_list", tuple(map(_act, ts)))),
)

_action_atoms = st.one_of(
    st.builds(lambda op, t: ir.Compare(op, ir.Var("action"), ir.EntityLit(_act(t))), st.sampled_from(["==", "!="]), st.sampled_from(RICH_TOOLS)),
    st.sampled_from(list(RICH_GROUPS)).map(lambda g: ir.In(ir.Var("action"), ir.EntityLit(_act(g)))),
)

# request entities against argument values: `principal is Grant in context.input.a`,
# `action in context.input.b` (defined only when the argument is an empty array)
_membership_atoms = st.builds(
    lambda var, target, is_: ir.Is(ir.Var(var), _VAR_TYPES[var], target) if is_ else ir.In(ir.Var(var), target),
    st.sampled_from(list(_VAR_TYPES)),
    st.one_of(st.sampled_from(base.KEYS).map(lambda k: base.input_path([k])), _in_targets),
    st.booleans(),
)

rich_exprs = st.one_of(
    base.exprs(False, True),
    wild_bools,
    _action_atoms,
    _membership_atoms,
    st.builds(ir.Not, _membership_atoms),
    st.builds(ir.And, _membership_atoms, base.exprs(False, True)),
    st.builds(ir.And, _action_atoms, base.exprs(False, True)),
)


@cache
def rich_policies():
    return st.builds(
        lambda eff, p, a, r, cs: ir.Policy(eff, ir.Scope(p, a, r), tuple(cs)),
        st.sampled_from(["permit", "forbid"]),
        base.entity_scopes("principal"),
        rich_action_scopes,
        base.entity_scopes("resource"),
        st.lists(st.builds(ir.Clause, st.sampled_from(["when", "unless"]), rich_exprs), max_size=2),
    )


_RICH_HIDDEN = st.lists(st.sampled_from(RICH_TOOLS), max_size=1, unique=True)
_FOCUS = st.one_of(_membership_atoms, st.builds(ir.Not, _membership_atoms), _action_atoms, wild_bools)
_EFFECTS = st.sampled_from(["permit", "forbid"])
_CLAUSE_KINDS = st.sampled_from(["when", "unless"])
_ONE_LIMIT = st.lists(limits, max_size=1)


@cache
def _rich_defaults(defaults: tuple):
    return st.sampled_from(list(defaults))


@cache
def _rich_policy_lists(max_size: int):
    return st.lists(rich_policies(), max_size=max_size)


@cache
def _positions(first: int, last: int):
    return st.integers(first, last)


@st.composite
def rich_programs(draw, max_policies: int = 4, with_limits: bool = True, defaults=(None, "allow", "deny")):
    stmts: list = []
    d = draw(_rich_defaults(tuple(defaults)))
    if d:
        stmts.append(ir.Default(d))
    for g, members in RICH_GROUPS.items():
        stmts.append(ir.Group(_act(g), tuple(map(_act, members))))
    hidden = draw(_RICH_HIDDEN)
    if hidden:
        stmts.append(ir.Hide(tuple(map(_act, hidden))))
    first = len(stmts)
    stmts += draw(_rich_policy_lists(max_policies - 1))
    # one rule, anywhere among the policies, is about the shapes this generator exists for
    focus = draw(_FOCUS)
    stmts.insert(draw(_positions(first, len(stmts))),
                 ir.Policy(draw(_EFFECTS), ir.Scope(action=draw(rich_action_scopes)),
                           (ir.Clause(draw(_CLAUSE_KINDS), focus),)))
    if with_limits:
        stmts += draw(_ONE_LIMIT)
    prog, diags = build_program(ir.Document(tuple(stmts)))
    if any(x.severity == "error" for x in diags):
        from hypothesis import reject

        reject()
    return prog


def _read_keys(prog) -> tuple[list[str], set[str]]:
    """The top-level argument keys the rules read, and those read as the right side of
    `in` / `is T in` (where an empty array is the only value that is not an error)."""
    from mcpp.lang.atoms import input_path

    out, targets = set(), set()
    for s in [i.stmt for i in prog.policies + prog.limits + prog.asserts]:
        for c in s.clauses:
            for n in walk(c.expr):
                p = input_path(n) if isinstance(n, ir.GetAttr) else None
                if p:
                    out.add(p[0])
                right = n.right if isinstance(n, ir.In) else n.in_ if isinstance(n, ir.Is) else None
                p = input_path(right) if right is not None else None
                if p:
                    targets.add(p[0])
    return sorted(out), targets


_RICH_KEYS = st.sampled_from(sorted(set(base.KEYS) | set(WILD_KEYS)))
_HOW = st.sampled_from(["absent", "empty", "edge", "value", "any"])
_HOW_TARGET = st.sampled_from(["empty", "empty", "any"])
_EDGES = st.sampled_from([{}, [[]], [1, "x"], [None], {"a": []}])


@st.composite
def _rich_args(draw, prog, values, anything, extra):
    """Arguments for the keys the policy reads: absent, an empty array, another edge
    value, a policy constant, or anything (`anything`: `values` nested); plus sometimes
    a key it does not read (`extra`)."""
    args = {}
    read, targets = _read_keys(prog)
    for k in read:
        how = draw(_HOW_TARGET if k in targets else _HOW)
        if how == "empty":
            args[k] = []
        elif how == "edge":
            args[k] = draw(_EDGES)
        elif how == "value":
            args[k] = draw(values)
        elif how == "any":
            args[k] = draw(anything)
    args.update(draw(extra))
    return args


def rich_calls_for(prog):
    """Calls to every tool name (group names included), biased toward the policy's
    constants and toward the argument values where encodings have edges."""
    lits = literals(prog)
    values = st.one_of(base.arg_values(False), wild_scalars, st.sampled_from(lits)) if lits else _PLAIN_VALUES
    anything = st.recursive(values, lambda sub: st.one_of(st.lists(sub, max_size=3), st.dictionaries(_RICH_KEYS, sub, max_size=2)),
                            max_leaves=4) if lits else _PLAIN_ANYTHING
    extra = st.dictionaries(_RICH_KEYS, anything, max_size=1) if lits else _PLAIN_EXTRA
    named = sorted((set(prog.named_tools()) | set(prog.groups)) & set(RICH_TOOLS))
    return st.builds(
        base.Call,
        st.one_of(st.sampled_from(named), _RICH_CALL_TOOLS) if named else _RICH_CALL_TOOLS,
        _rich_args(prog, values, anything, extra),
        *_RICH_CALL_FIELDS,
    )


# the parts of `rich_calls_for` that do not depend on the program
_PLAIN_VALUES = st.one_of(base.arg_values(False), wild_scalars)
_PLAIN_ANYTHING = st.recursive(_PLAIN_VALUES, lambda sub: st.one_of(st.lists(sub, max_size=3), st.dictionaries(_RICH_KEYS, sub, max_size=2)),
                               max_leaves=4)
_PLAIN_EXTRA = st.dictionaries(_RICH_KEYS, _PLAIN_ANYTHING, max_size=1)
_RICH_CALL_TOOLS = st.sampled_from(RICH_CALL_TOOLS)
_RICH_CALL_FIELDS = (
    st.sampled_from(base.GRANTS + ["anonymous"]),
    st.sampled_from(base.LABELS + ["ß"]),
    st.frozensets(st.sampled_from(base.GROUPS), max_size=2),
    st.sampled_from(base.SERVERS + ["default"]),
)


# ---- many tools, several rules each: the shapes a large policy repeats -----------------------
#
# Rules per tool in the style of bench/analyzer_bench.py (guarded permits, forbids on
# arguments, regex allowlists, limits, assertions), with argument keys drawn from a small
# set so that rules of one tool read the same argument (two regexes on one string) or
# different ones, plus rules naming several tools or none, hidden tools and both defaults.
# tests/analyzer/test_lint_batching.py lints them per tool and rule by rule.

ARG_KEYS = ["ns", "amount", "owner", "url"]


def _arg(k: str) -> str:
    return f"context.input.{k}"


_conditions = st.one_of(
    st.builds(lambda k, a, b: f'{_arg(k)} in ["{a}", "{b}"]', st.sampled_from(ARG_KEYS), st.sampled_from(["dev", "qa", "prod"]),
              st.sampled_from(["staging", "sandbox"])),
    st.builds(lambda k, n, op: f"{_arg(k)} {op} {n}", st.sampled_from(ARG_KEYS), st.sampled_from([0, 100, 1000]),
              st.sampled_from(["<=", ">", "=="])),
    st.builds(lambda k, p: f'{_arg(k)} like "{p}"', st.sampled_from(ARG_KEYS), st.sampled_from(["*prod*", "a*", "*.example"])),
    st.builds(lambda k, r: f"{_arg(k)}.matches({r})", st.sampled_from(ARG_KEYS),
              st.sampled_from(['"^[a-z]{2,8}$"', '"^https://(api|docs)\\\\.example\\\\.com/"', '"prod"', '"^[0-9]+$"'])),
    st.builds(lambda k: f"context.input has {k}", st.sampled_from(ARG_KEYS)),
    st.builds(lambda k, r: f"context.input has {k} && {_arg(k)}.matches({r})", st.sampled_from(ARG_KEYS),
              st.sampled_from(['"^[a-z]{2,12}$"', '"x"'])),
    st.sampled_from(['principal in Group::"ops"', 'principal.label == "ci"', "false"]),
)


_RULE_KINDS = st.sampled_from(["permit", "permit", "forbid", "forbid", "limit", "assert"])
_RULE_PRINCIPALS = st.sampled_from(["principal", "principal", 'principal in Group::"ops"'])
_RULE_CONDITIONS = st.lists(st.tuples(st.sampled_from(["when", "unless"]), _conditions), max_size=2)
_INCREMENTS = st.sampled_from(["", " increment context.input.amount"])
_LIMIT_COUNTERS = st.sampled_from(["c0", "c1"])
_LIMIT_MAXES = st.sampled_from([0, 10, 100])
_ASSERT_KINDS = st.sampled_from(["deny", "allow"])


@cache
def _named_tools(tools: tuple):
    tools_ = list(tools)
    return st.one_of(st.sampled_from(tools_).map(lambda t: [t]),
                     st.lists(st.sampled_from(tools_), min_size=min(2, len(tools_)), max_size=3, unique=True),
                     st.just(None))


@st.composite
def _tool_rule(draw, tools: list[str]) -> str:
    kind = draw(_RULE_KINDS)
    named = draw(_named_tools(tuple(tools)))
    action = "action" if named is None else (f'action == Action::"{named[0]}"' if len(named) == 1 else
                                             "action in [" + ", ".join(f'Action::"{t}"' for t in named) + "]")
    principal = draw(_RULE_PRINCIPALS)
    conds = draw(_RULE_CONDITIONS)
    body = "".join(f" {k} {{ {c} }}" for k, c in conds)
    if kind == "limit":
        inc = draw(_INCREMENTS)
        return (f'limit "{draw(_LIMIT_COUNTERS)}" ({principal}, {action}, resource) '
                f'max {draw(_LIMIT_MAXES)} per hour{inc}{body};')
    if kind == "assert":
        return f"assert {draw(_ASSERT_KINDS)} ({principal}, {action}, resource){body};"
    return f"{kind} ({principal}, {action}, resource){body};"


_TEXT_DEFAULTS = st.sampled_from(["default deny;", "default allow;", ""])


@cache
def _tool_names(tools: tuple):
    return st.sampled_from(list(tools))


@cache
def _tool_rules(tools: tuple, max_rules: int):
    return st.lists(_tool_rule(list(tools)), min_size=1, max_size=max_rules)


@st.composite
def tool_policy_texts(draw, max_tools: int = 4, max_rules: int = 12) -> str:
    """The text of a program over several tools, a few rules each."""
    tools = [f"tool{i}" for i in range(draw(_positions(1, max_tools)))]
    lines = [draw(_TEXT_DEFAULTS)]
    if draw(_BOOLEANS):
        lines.append(f'hide Action::"{draw(_tool_names(tuple(tools)))}";')
    lines += draw(_tool_rules(tuple(tools), max_rules))
    return "\n".join(lines) + "\n"
