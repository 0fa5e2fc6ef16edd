"""A user's `Set<String>`, `Set<Long>` and `Set<Bool>` attributes: every element has the
declared type, in all three layers.

- **The gateway** types a claim by the mapping (`oauth.typed_claim`): a `Set<String>` is an
  array of strings or a space-separated string; an array holding anything else is left out
  whole (never filtered), so the policy sees no such attribute and a required one makes
  every call a `/principal` denial. `Set<Long>` and `Set<Bool>` are not claim types at all.
- **The engine** refuses a user whose set holds an element of another type
  (`lang.identity.typed_value`), so a claim that bypassed the gateway fails closed too.
- **The analyzer** encodes such an attribute as a sequence of its element type
  (`sym.UserSet`), so no model holds an element that no real user has: the questions that
  were UNKNOWN for that reason answer PASS or FAIL, every FAIL replays, and every PASS holds
  on sampled well-typed users.
"""

from __future__ import annotations

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from mcpp.analyzer.encode import FixedUser, decide, query_tools
from mcpp.analyzer.solve import Session
from mcpp.analyzer.verify import verify
from mcpp.analyzer.witness import Witness, _pin_user, pin
from mcpp.lang import ir
from mcpp.lang.formatter import format_document
from mcpp.lang.identity import PrincipalError, typed_value
from mcpp.lang.program import load_program
from mcpp.runtime.engine import CompiledRule, Engine, User
from mcpp.runtime.gateway.oauth import map_claims, typed_claim
from mcpp.runtime.gateway.oauth_config import CLAIM_TYPES, ClaimMap, ServerOAuth, mapping_problems

from .strategies import set_calls, set_documents, set_users

DECL = "entity User in [Group] { scopes: Set<String>, nums?: Set<Long>, flags?: Set<Bool> };\n"
OPEN = DECL + "permit (principal, action, resource);\n"


def _deny(cond: str) -> str:
    return f'assert deny (principal is User, action == Action::"t", resource) when {{ {cond} }};'


# (assert, status): each of these was UNKNOWN while set elements were untyped ("a model
# may put an element of another type in it"), and the FAILs that were not are kept beside
# them to show the typed sets still refute
SHAPES = [
    # a Set<String> never holds a number, a Set<Long> never a string
    (_deny("principal.scopes.contains(context.input.n) && context.input.n == 5"), "pass"),
    (_deny('principal has nums && principal.nums.contains(context.input.s) && context.input.s == "5"'), "pass"),
    (_deny("principal has nums && context.input.s in principal.nums && context.input.s == true"), "pass"),
    # a non-empty Set<Bool> holds true or false
    (_deny("principal has flags && !principal.flags.isEmpty() && !principal.flags.contains(true) && "
           "!principal.flags.contains(false)"), "pass"),
    # a Set<Long> holds 64-bit integers only
    (_deny("principal has nums && principal.nums.contains(context.input.n) && context.input.n > 9223372036854775807"), "pass"),
    (_deny("principal has nums && principal.nums.contains(context.input.n) && context.input.n < 1 && context.input.n > 0"),
     "pass"),
    (_deny('principal.scopes.containsAll(["a", 1])'), "pass"),
    (_deny('principal.scopes.containsAny([1, true, 1.5])'), "pass"),
    (_deny('principal has nums && [1, 2, "x"].containsAll(principal.nums) && principal.nums.contains(3)'), "pass"),
    (_deny('principal has nums && principal has flags && principal.nums.containsAny(principal.flags)'), "pass"),
    (_deny('principal has nums && principal has flags && principal.nums.containsAll(principal.flags) && '
           '!principal.flags.isEmpty()'), "pass"),
    (_deny("principal.scopes.isEmpty() && !principal.scopes.isEmpty()"), "pass"),
    # and what is possible is refuted, with a user the engine takes
    (_deny("principal has nums && principal.nums.contains(context.input.n) && context.input.n > 5"), "fail"),
    (_deny('principal.scopes == ["a", "b"]'), "fail"),
    (_deny('principal has nums && [1, 2, "x"].containsAny(principal.nums)'), "fail"),
    (_deny("principal has nums && !principal.nums.isEmpty() && !principal.nums.contains(context.input.n)"), "fail"),
    (_deny("principal has flags && principal.flags.contains(true) && !principal.flags.contains(false)"), "fail"),
    (_deny('principal.scopes.contains("k8s:write") && principal.scopes.containsAll(context.input.need) && '
           '!context.input.need.isEmpty()'), "any"),  # two arrays: may be UNKNOWN, with that reason
    (_deny('context.input.arr.contains(principal.scopes) && principal.scopes.contains("z")'), "fail"),
    (_deny("principal has nums && principal.nums.contains(9223372036854775807) && principal.nums.contains(-1)"), "fail"),
]


@pytest.mark.parametrize("claim, status", SHAPES, ids=[str(i) for i in range(len(SHAPES))])
def test_set_questions_answer(claim, status):
    program = load_program(OPEN + claim)
    (r,) = verify(program, timeout_ms=10000)
    assert not any("element" in x for x in r.reasons), r.reasons
    if status == "any":
        assert r.status != "pass" or not r.reasons
        return
    assert r.status == status, r.message
    assert not r.reasons
    if status == "fail":
        w = r.witness
        d = Engine(program).decide(w.tool, w.args, w.grant, w.server, reserve=False)
        assert d.allowed, (r.message, d.to_dict())
        FixedUser.of(program, w.grant_id, w.attrs, w.groups)  # a user the engine takes as it is
        for name, v in w.attrs.items():
            typed_value(program.user_decl.attr(name).type, v)


# ---- the property: verdicts replay, proofs hold on well-typed users -------------------------


class _Info:
    id = "assert"
    tools = None


@settings(max_examples=max(20, settings.default.max_examples // 2), deadline=None)
@given(set_documents(), st.data())
def test_set_verdicts_replay_on_the_engine(doc, data):
    """Random policies and asserts over set attributes of every element type: a FAIL's
    call replays on an engine of our own with a user that fits the declaration; a PASS
    holds for sampled well-typed users and calls; an UNKNOWN names a widening that is not
    the element type (two array operands) or is the solver's time."""
    program = load_program(format_document(doc))
    (r,) = verify(program, timeout_ms=10000)
    text = format_document(doc)
    assert not any("element" in x or "Set attribute" in x for x in r.reasons), (text, r.reasons)
    event(f"{r.status}{' (widened)' if r.reasons else ''}")
    if r.status == "unknown":
        assert r.reasons or "solver" in r.message, (text, r.message)
        return
    engine = Engine(program)
    info = program.asserts[0]
    claim = info.stmt
    rule = CompiledRule(_Info(), ir.Policy("permit", claim.scope, claim.clauses))  # its principal, resource, conditions

    def selects(tool, args, caller, server) -> bool:
        return (info.tools is None or tool in info.tools) and rule.applies(engine.env(tool, args, caller, server))

    deny = claim.kind == "deny"
    if r.status == "fail":
        w = r.witness
        d = engine.decide(w.tool, w.args, w.grant, w.server, reserve=False)
        assert (d.allowed or d.needs_approval) == deny, (text, r.message, d.to_dict())
        assert selects(w.tool, w.args, w.grant, w.server), (text, r.message)
        if w.user:
            FixedUser.of(program, w.grant_id, w.attrs, w.groups)
        return
    assert r.status == "pass", (text, r.message)
    decl = doc.statements[0]
    for call in data.draw(st.lists(set_calls(decl), min_size=5, max_size=15)):
        if selects(call.tool, call.args, call.caller, "s0"):
            d = engine.decide(call.tool, call.args, call.caller, "s0", reserve=False)
            assert d.allowed != deny, (text, call, d.to_dict())


def _holds(session, req, formula, w) -> bool:
    import z3

    from mcpp.analyzer.sym import z

    s = z3.Solver(ctx=session.ctx)
    s.set("timeout", 20000)
    s.add(z(session.ctx, formula), *req.constraints(), *pin(req, w))
    r = s.check()
    assert r != z3.unknown, s.reason_unknown()
    return r == z3.sat


@settings(max_examples=max(20, settings.default.max_examples // 2), deadline=None)
@given(set_documents(), st.data())
def test_set_encoding_is_exact_for_every_user(doc, data):
    """Every real user is a model (`witness.pin`, soundness part 1): the encoded decision
    and each rule's applicability are satisfiable exactly when the engine agrees, for
    users with sets of every element type (any strings, 64-bit integers at the edges) and
    arguments of every kind — with no over-approximation (no reason) in between."""
    program = load_program(format_document(doc))
    named, other = query_tools(program)
    session = Session(20000)
    engine = Engine(program)
    decl = doc.statements[0]
    for call in data.draw(st.lists(set_calls(decl), min_size=1, max_size=3)):
        user = data.draw(set_users(decl))
        tool = call.tool if call.tool in named else other
        w = Witness(tool, call.args, user.id, "", tuple(sorted(user.groups)), "s0", {}, True, dict(user.attrs))
        req = session.request()
        d = decide(req, program, tool)
        if d.enc.reasons:  # two array operands: an over-approximation, checked elsewhere
            continue
        want = engine.decide(tool, call.args, user, "s0", reserve=False)
        assert _holds(session, req, d.allowed(zero=True), w) == want.allowed, (format_document(doc), user, call)
        env = engine.env(tool, call.args, user, "s0")
        plan = engine.index.get(tool, engine.other)
        rules = {r.id: r for r in plan.permits + plan.forbids}
        for info, formula in d.permits + d.forbids:
            assert _holds(session, req, formula, w) == rules[info.id].applies(env), (format_document(doc), info.id, user)


# ---- the three layers agree on what a set claim is ------------------------------------------

OAUTH = ServerOAuth("https://gw.test/mcp/s", ("acme",), claims=(ClaimMap("scopes", ("scp",), "Set<String>"),))
SCOPED = DECL + 'permit (principal is User, action == Action::"t", resource) when { principal.scopes.contains("a") };\n'


def _json(max_leaves: int = 6):
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False,
                        allow_infinity=False), st.text(st.characters(max_codepoint=0x2FA1F), max_size=4),
                        st.sampled_from(["a", "a b", " a  b "]))
    return st.recursive(scalars, lambda sub: st.one_of(st.lists(sub, max_size=3),
                                                       st.dictionaries(st.text(max_size=2), sub, max_size=2)),
                        max_leaves=max_leaves)


def _engine_takes(program, attrs) -> bool:
    d = Engine(program).decide("t", {}, User("u", attrs), "s", reserve=False)
    return d.rule.pointer != "/principal"


@settings(max_examples=settings.default.max_examples, deadline=None)
@given(_json())
def test_gateway_engine_and_analyzer_agree_on_a_set_claim(value):
    """Any JSON claim value mapped to a Set<String>: the gateway keeps it only as a list of
    strings (an array of anything else is left out whole and reported by name); the engine
    refuses exactly the raw values the gateway would not keep as they are; the analyzer
    takes what the gateway keeps (`FixedUser.of`) and decides as the engine; and the
    symbolic user pinned to it (`_pin_user`) has the attribute exactly when it is typed."""
    program = load_program(SCOPED)
    problems: list = []
    attrs, _, _ = map_claims(OAUTH, {"scp": value}, lambda *a: problems.append(a))
    typed, why = typed_claim(value, "Set<String>")
    kept = isinstance(value, str) or (isinstance(value, list) and all(isinstance(x, str) for x in value))
    assert (why is None) == kept
    assert bool(problems) == (not kept and value is not None)  # a null claim is an absent one
    if not kept:
        assert attrs == {} and all(p[0] == "scopes" and repr(value) not in repr(p) for p in problems)
        assert not _engine_takes(program, attrs)  # the required attribute is missing: /principal
        assert not _engine_takes(program, {"scopes": value})  # the raw value: refused as well
        with pytest.raises(PrincipalError):
            FixedUser.of(program, "u", {"scopes": value}, ())
        return
    assert attrs == {"scopes": typed} and all(type(x) is str for x in typed)
    assert _engine_takes(program, attrs)
    if isinstance(value, list):  # a list of strings is taken as it is by the engine too
        assert _engine_takes(program, {"scopes": value})
    else:  # a space-separated string is the gateway's to split; the engine takes only sets
        assert not _engine_takes(program, {"scopes": value})
    from mcpp.analyzer.visibility import visible_tools_for_user

    allowed = Engine(program).decide("t", {}, User("u", attrs), "s", reserve=False).allowed
    assert (visible_tools_for_user(program, ["t"], user_id="u", attrs=attrs, groups=(), server="s") == {"t"}) == allowed
    session = Session(10000)
    req = session.request()
    d = decide(req, program, "t")
    w = Witness("t", {}, "u", "", (), "s", {}, True, attrs)
    assert _holds(session, req, d.allowed(zero=True), w) == allowed


def test_a_pinned_user_with_an_ill_typed_set_lacks_the_attribute():
    """`_pin_user` (the witness of a refused claim) gives the symbolic user no such
    attribute: its elements are of no declared type, as the engine says."""
    import z3

    program = load_program(SCOPED)
    session = Session(10000)
    req = session.request()
    decide(req, program, "t")
    for value, present in ((["a", 1], False), (["a"], True), ([], True), ("a b", False), ([True], False)):
        w = Witness("t", {}, "u", "", (), "s", {}, True, {"scopes": value})
        s = z3.Solver(ctx=session.ctx)
        s.add(*_pin_user(req, w))
        assert s.check() == z3.sat
        (p, _), = [v for k, v in req.user_attrs.items() if k.startswith("scopes:")]
        assert z3.is_true(s.model().eval(p, model_completion=True)) == present, value


def test_set_long_and_set_bool_are_no_claim_types():
    """The gateway maps `Set<String>` only: a policy that requires a `Set<Long>` or a
    `Set<Bool>` cannot be served to users (its mapping is refused), and an optional one is
    never present on a gateway user — so such sets reach the engine only from `mcpp
    compile --user` and tests, where the engine checks every element."""
    assert CLAIM_TYPES == ("String", "Long", "Bool", "Set<String>")
    from mcpp import load_policy

    decl = load_policy(OPEN, filename="open.mcpp").user_declaration
    need = load_policy("entity User in [Group] { nums: Set<Long> };\npermit (principal, action, resource);\n",
                       filename="need.mcpp").user_declaration
    assert mapping_problems(OAUTH, decl) == []
    (problem,) = mapping_problems(OAUTH, need)
    assert "requires attribute 'nums' (Set<Long>)" in problem
    for attrs in ({"scopes": [], "nums": ["1"]}, {"scopes": [], "nums": [2**63]}, {"scopes": [], "flags": [1]},
                  {"scopes": ["a", 1]}, {"scopes": [], "nums": [True]}):
        assert not _engine_takes(load_program(SCOPED), attrs), attrs
