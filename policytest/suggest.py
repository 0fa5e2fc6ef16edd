"""`mcpp test --suggest`: proposed test cases, per rule, from Z3 witnesses.

For each permit, forbid and limit the analyzer is asked (one `Session`, the encoder's
`decide` over the decision plan, readable witnesses) for two calls:

- one the rule **decides**: a permit applies and no earlier permit does, no forbid
  applies, the limits pass at zero counters (the engine allows it, naming the permit);
  a forbid applies and no earlier forbid does, the call being permitted (denied,
  naming the forbid); for a limit, a call it counts with a positive increment, repeated
  until the limit denies it (a sequence);
- one that **flips** it: the rule does not apply and the decision is the opposite
  (a permit's call denied, a forbid's call allowed), asked first with the decided
  call's grant and server fixed so the two differ in the arguments only; for a limit,
  the same sequence one call short, still allowed.

Each proposed case is run on the engine exactly as `mcpp test` runs it, its expectations
are what the engine said, and it is printed only if the decision names the rule as
intended — so every printed case passes when pasted into the test file.

A policy that names a catalog (`@catalog`, mcpp.toml: found as `mcpp test` finds it,
policytest/runner.py `named_catalog`) is asked in a typed session (analyzer/typed.py): a
witness conforms to its tool's inputSchema (the gateway refuses the rest), only the
catalog's tools are proposed (a rule with no tool scope gets the catalog's tools; a tool
the catalog lacks gets a note, no case), and every case is settled with the gateway's
admission applied as `mcpp test` applies it (`catalog_fill`: declared defaults filled in,
an `invalid_default` refused). A witness the admission refuses anyway (the encoding
widens some JSON Schema keywords) is not proposed: it gets a note.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import tomlkit
import z3

from mcpp.analyzer.encode import FixedGrant, FixedUser, decide, query_tools
from mcpp.analyzer.solve import Session
from mcpp.analyzer.sym import AND, NOT, OR, real_val
from mcpp.analyzer.typed import typed_session
from mcpp.analyzer.witness import Witness
from mcpp.lang.identity import PrincipalError
from mcpp.lang.program import LimitInfo, PolicyInfo, Program
from mcpp.runtime.engine import Engine, User

from .cases import DEFAULT_TIME, Case, Step
from .coverage import CaseCounters
from .runner import actual_of, catalog_fill, named_catalog, run_case

MAX_SEQUENCE = 1000  # calls; a limit that needs more is reported, not suggested
# how `Session.check` reports a typed witness the gateway's admission refuses (analyzer/solve.py `_witness`)
_REFUSED = "the counterexample does not conform to the tool's inputSchema"


@dataclass
class Suggestion:
    rule: str
    kind: str  # permit | forbid | limit
    line: int
    cases: list[Case]
    notes: list[str]


def _step(w: Witness, repeat: int = 1) -> Step:
    return Step(w.tool, w.args, w.grant, w.server, DEFAULT_TIME, {}, repeat)


def _admitted(fill, tool: str, arguments):
    """(refused, the arguments the engine decides): `fill` (policytest/runner.py
    `catalog_fill`, the gateway's admission) applied to the call as a case writes it, or
    the call itself without a catalog."""
    return fill(tool, arguments) if fill is not None else (None, arguments)


def _settle(program: Program, case: Case, fill=None) -> bool:
    """Run `case` on a fresh engine, as `mcpp test` runs it (with the catalog's `fill`), and
    write what it said into its expectations. False when it does not pass so, or when the
    admission refuses one of its calls (such a case exercises no rule: not proposed)."""
    engine = Engine(program, store=CaseCounters())
    engine.store = CaseCounters()
    for step in case.steps:
        d = None
        for _ in range(step.repeat):
            refused, args = _admitted(fill, step.tool, step.arguments)
            if refused is not None:
                return False
            d = engine.decide(step.tool, args, step.caller, step.server, now=step.time.timestamp())
        assert d is not None
        step.expect = {k: v for k, v in actual_of(d).items() if v is not None}
    check = run_case(Engine(program, store=CaseCounters()), case, Path(program.filename), fill=fill)
    return check.passed


def _decided_by(program: Program, case: Case, rule_id: str, decision: str, fill=None) -> bool:
    """Settle `case` and say whether the engine decided it `decision` naming `rule_id`: a
    permit's denial also names the permit (`Denied: the call does not satisfy …`), so the
    policy alone does not tell an allowing case from a denying one."""
    if not _settle(program, case, fill):
        return False
    expect = case.steps[0].expect
    return expect.get("policy") == rule_id and expect.get("decision") == decision


def _unconfirmed(who: str, what: str, reasons: list[str]) -> str:
    """The note for a witness the engine did not decide as the formula said: expected where
    the analysis over-approximates (its reasons, as `mcpp verify` shows them), a bug if not."""
    if reasons:
        return (f"{who}: no call {what} could be confirmed: the call the solver found is decided otherwise by the "
                f"engine, since the analysis over-approximates {'; '.join(reasons)}")
    return f"{who}: a witness did not replay as {what} (an analyzer bug: please report it)"


def _refused(who: str, what: str, reason: str) -> str:
    """The note for a typed witness the gateway's admission refuses (`Session.check` said
    why: the encoding widens some JSON Schema keywords, analyzer/solve.py `_WIDENING`)."""
    return f"{who}: no call {what} could be confirmed: {reason}"


def _is_refused(o) -> bool:
    return o.status == "unknown" and (o.reason or "").startswith(_REFUSED)


def _unlisted(tool: str) -> str:
    return f"the catalog has no tool {tool!r}, so the gateway refuses every call to it"


class Suggester:
    def __init__(self, program: Program, timeout_ms: int = 5000, catalog=None):
        """`catalog` (a `catalog.model.Catalog`, the one the policy names): typed witnesses,
        only its tools, and every case settled through its admission, as `mcpp test` runs it."""
        self.program = program
        self.session = typed_session(catalog, timeout_ms) if catalog is not None else Session(timeout_ms)
        self.fill = catalog_fill(catalog)
        self.listed = self.session.tools()  # the catalog's tools (typed), else None
        self.plan = program.plan()
        self.named, self.other = query_tools(program)
        # who calls: grants, and users too where the policy has them (`entity User`, or
        # `User` named): each rule gets its cases per kind of caller
        self.kinds = ("grant", "user") if program.identity_aware else ("grant",)
        self.reasons: set[str] = set()  # the over-approximations of the last formula asked (`witness`)

    def line(self, info) -> int:
        return info.stmt.span.line if self.program.origin == "mcpp" else 0  # the JSON form has no lines

    def tools_of(self, info) -> list[str]:
        if self.listed is None:
            tools = sorted(info.tools) if info.tools is not None else [self.other]
        elif info.tools is None:  # typed: the catalog's tools are every tool a call can name
            tools = self.listed
        else:
            tools = sorted(t for t in info.tools if t in self.listed)
        return [t for t in tools if not self.plan.for_tool(t).hidden]

    def unlisted(self, info, sug: Suggestion) -> bool:
        """Typed: note each tool `info` names that the catalog lacks (no case can call it);
        True when it names only such tools."""
        if self.listed is None or info.tools is None:
            return False
        if not any(t in self.listed for t in info.tools):  # every call it can decide is refused
            sug.notes += [_unlisted(t) for t in sorted(info.tools)]
            return True
        # (a group's own name is in its `in`, Cedar's reflexive `in`: beside the group's tools
        # the catalog lists, no tool of that name is no missing tool, as analyzer/verify.py reads it)
        sug.notes += [_unlisted(t) for t in sorted(info.tools) if t not in self.listed and t not in self.program.groups]
        return False

    def decide(self, engine: Engine, tool: str, args, caller, server: str, now: float):
        """`engine`'s decision of the call as a case writes it, after the admission (a
        refused call: None)."""
        refused, filled = _admitted(self.fill, tool, args)
        if refused is not None:
            return None
        return engine.decide(tool, filled, caller, server, now=now)

    def by(self, kind: str) -> str:
        """What a case name and a note say of the caller: nothing for a policy without
        users (its cases read as they always did), else who calls."""
        return f" by a {kind}" if len(self.kinds) > 1 else ""

    def witness(self, formula_of, tool: str, kind: str = "grant", caller: FixedGrant | FixedUser | None = None,
                server: str | None = None, like: Witness | None = None):
        """A call by a caller of `kind` satisfying `formula_of(decide(...))`. Asked first
        for a readable one — no `null` argument, and (with `like`) every argument of `like`
        keeping its JSON type — then without those wishes."""
        req = self.session.request(caller, server)
        d = decide(req, self.program, tool)
        ctx = self.session.ctx
        # (a user's id is a token's subject, never empty: docs/gateway.md)
        who = AND(ctx, req.caller_is_user(), z3.Length(req.gid) > 0) if kind == "user" else req.caller_is_grant()
        # a user that fits the declaration: one the engine denies wholesale (/principal)
        # would exercise no rule
        formula = AND(ctx, who, d.fits, formula_of(d))
        self.reasons = d.enc.reasons  # where the formula over-approximates: a witness may not replay
        wishes = [NOT(ctx, v.is_("null")) for p, v in req.paths.items() if p]
        if like is not None:
            for path, value in _leaves(like.args):
                if path in req.paths:
                    wishes.append(req.paths[path].is_(_kind(value)))
        if wishes:
            o = self.session.check(req, AND(ctx, formula, *wishes), tool=tool, witness=True)
            if o.sat:
                return self.as_sent(o.witness), o
        o = self.session.check(req, formula, tool=tool, witness=True)
        return self.as_sent(o.witness) if o.sat else None, o

    def as_sent(self, w: Witness | None) -> Witness | None:
        """Typed: a witness is the call the engine decides, its tool's declared defaults
        filled in (`Session.admit`). As the case writes it, an argument is left out when the
        gateway would fill exactly that value back in: the call left conforms, and is
        admitted as the same filled call (so the engine decides it alike)."""
        if w is None or self.listed is None or not isinstance(w.args, dict):
            return w
        decided = _canonical(w.args)
        args = dict(w.args)
        for key in sorted(w.args):
            fewer = {k: v for k, v in args.items() if k != key}
            why, filled = self.session.admit(w.tool, fewer)
            if why is None and _canonical(filled) == decided:
                args = fewer
        w.args = args
        return w

    def fixed(self, w: Witness) -> FixedGrant | FixedUser | None:
        """The witness's caller, fixed: the flipping call is asked of the same caller."""
        if not w.user:
            return FixedGrant(w.grant_id, w.label, frozenset(w.groups))
        try:
            return FixedUser.of(self.program, w.grant_id, w.attrs, w.groups)
        except PrincipalError:  # pragma: no cover - a replayed witness's user fits the declaration
            return None

    # -- permits and forbids -----------------------------------------------------------------
    def policy(self, info: PolicyInfo) -> Suggestion:
        sug = Suggestion(info.id, info.effect, self.line(info), [], [])
        if self.unlisted(info, sug):
            return sug
        tools = self.tools_of(info)
        if not tools:
            if self.listed is None or info.tools is not None:
                sug.notes.append("every tool it names is hidden: it never decides a call")
            elif self.listed:
                sug.notes.append("every tool of the catalog is hidden: it never decides a call")
            else:
                sug.notes.append("the catalog lists no tool, so the gateway refuses every call")
            return sug
        return self._each_kind(sug, lambda kind: self._policy(info, tools, kind, sug),
                               "no call satisfies it (`mcpp lint` reports it as dead)", "no call{by} satisfies it")

    def _policy(self, info: PolicyInfo, tools: list[str], kind: str, sug: Suggestion) -> None:
        allow = info.effect == "permit"
        ctx = self.session.ctx
        by = self.by(kind)
        unconfirmed = False
        for tool in tools:
            def decides(d, info=info):
                rows = d.permits if allow else d.forbids
                i = next(k for k, (p, _) in enumerate(rows) if p.id == info.id)
                earlier = OR(ctx, *(f for _, f in rows[:i]))
                mine = rows[i][1]
                if allow:
                    return AND(ctx, NOT(ctx, earlier), mine, NOT(ctx, d.forbidden()), d.limits_ok(zero=True))
                return AND(ctx, d.permitted(), NOT(ctx, earlier), mine)

            w, o = self.witness(decides, tool, kind)
            if w is None:
                if _is_refused(o):
                    sug.notes.append(_refused(f"{tool}{by}", f"{'allowed' if allow else 'denied'} by {info.id}", o.reason))
                    unconfirmed = True
                elif o.status == "unknown":
                    sug.notes.append(f"{tool}{by}: the solver could not find a call ({o.reason})")
                continue
            reasons = sorted(self.reasons)
            case = Case(f"{info.effect} {info.id} {'allows' if allow else 'denies'} {tool}{by}", [_step(w)], 0)
            if not _decided_by(self.program, case, info.id, "allow" if allow else "deny", self.fill):
                # the case's name says what it shows: a call the engine decides otherwise
                # (the "does not apply" case again) is not proposed under that name
                sug.notes.append(_unconfirmed(f"{tool}{by}", f"{'allowed' if allow else 'denied'} by {info.id}", reasons))
                unconfirmed = True
                continue
            sug.cases.append(case)

            def flips(d, info=info):
                rows = d.permits if allow else d.forbids
                mine = next(f for p, f in rows if p.id == info.id)
                opposite = NOT(ctx, d.allowed(zero=True)) if allow else d.allowed(zero=True)
                return AND(ctx, NOT(ctx, mine), opposite)

            fixed = self.fixed(w)
            w2 = None
            refusal = None  # a flipping witness the admission refused
            if fixed is not None:
                w2, o2 = self.witness(flips, tool, kind, fixed, w.server, like=w)
                refusal = o2 if _is_refused(o2) else None
            if w2 is None:
                w2, o2 = self.witness(flips, tool, kind, like=w)
                refusal = o2 if _is_refused(o2) else refusal
            if w2 is None and refusal is not None:
                sug.notes.append(_refused(f"{tool}{by}", f"{'denied' if allow else 'allowed'} with {info.id} not applying",
                                          refusal.reason))
                return
            if w2 is None:
                sug.notes.append(f"no call to {tool}{by} flips it: whenever {info.id} does not apply, the decision is "
                                 f"still {'allow' if allow else 'deny'} (or it applies to every call)")
                return
            flip = Case(f"{info.effect} {info.id} does not apply: {tool}{by} is {'denied' if allow else 'allowed'}",
                        [_step(w2)], 0)
            if (_settle(self.program, flip, self.fill)
                    and flip.steps[0].expect.get("decision") == ("deny" if allow else "allow")):
                sug.cases.append(flip)
            else:
                sug.notes.append(f"{tool}{by}: a flipping witness did not replay (an analyzer bug: please report it)")
            return
        # No call is decided by it: an earlier rule or a stricter permit always settles
        # the call first. A call it applies to still exercises it (coverage is Cedar's
        # "satisfied"); propose one, and say why it is not named. (Not when a witness was
        # merely unconfirmed: that is no evidence another rule settles every call.)
        if unconfirmed:
            return
        for tool in tools:
            def applies(d, info=info):
                rows = d.permits if allow else d.forbids
                return next(f for p, f in rows if p.id == info.id)

            w, _ = self.witness(applies, tool, kind)
            if w is None:
                continue
            case = Case(f"{info.effect} {info.id} applies to {tool}{by} (another rule decides)", [_step(w)], 0)
            st = case.steps[0]
            refused, args = _admitted(self.fill, st.tool, st.arguments)
            if refused is not None:
                continue
            satisfied = Engine(self.program, store=CaseCounters()).explain(st.tool, args, st.caller, st.server).satisfied
            if info.id in satisfied and _settle(self.program, case, self.fill):
                sug.notes.append(f"no call{by} is decided by it: another rule always settles the call first "
                                 f"(`mcpp lint` says which); here it applies, and {case.steps[0].expect['rule']} decides")
                sug.cases.append(case)
                return

    # -- limits ---------------------------------------------------------------------------------
    def limit(self, info: LimitInfo) -> Suggestion:
        sug = Suggestion(info.id, "limit", self.line(info), [], [])
        if info.stmt.max is None or info.stmt.window is None:
            return sug
        if self.unlisted(info, sug):
            return sug
        return self._each_kind(sug, lambda kind: self._limit(info, Fraction(info.stmt.max), kind, sug),
                               "no allowed call is counted by it with a positive increment",
                               "no allowed call{by} is counted by it with a positive increment")

    def _each_kind(self, sug: Suggestion, step, none: str, none_by: str) -> Suggestion:
        """`step(kind)` for each kind of caller (grants, users); a kind it proposed nothing
        for is noted (`none_by`, with `{by}` naming the kind), or `none` when no kind got any."""
        empty = []
        for kind in self.kinds:
            before = (len(sug.cases), len(sug.notes))
            step(kind)
            if (len(sug.cases), len(sug.notes)) == before:
                empty.append(kind)
        if len(empty) == len(self.kinds):
            sug.notes.append(none)
        else:
            sug.notes += [none_by.format(by=self.by(kind)) for kind in empty]
        return sug

    def _limit(self, info: LimitInfo, most: Fraction, kind: str, sug: Suggestion) -> None:
        ctx = self.session.ctx
        by = self.by(kind)
        cap = real_val(most, ctx)
        for tool in self.tools_of(info):
            def counted(d, calls: int):
                """An allowed call the limit counts, exhausting it within `calls` calls."""
                for _, rows in d.counters:
                    for li, applies, valid, amount in rows:
                        if li.id == info.id:
                            a = d.enc.num_term(amount)
                            return AND(ctx, d.allowed(zero=True), applies, valid, a > 0, a * calls > cap)
                return False

            w = None
            refusal = None  # a witness the admission refused
            for calls in (2, 10, 100, MAX_SEQUENCE):  # as short a sequence as the policy lets us
                w, o = self.witness(lambda d: counted(d, calls), tool, kind)
                if w is not None:
                    break
                refusal = o if _is_refused(o) else refusal
            if w is None:
                if refusal is not None:
                    sug.notes.append(_refused(f"{tool}{by}", f"counted by {info.id}", refusal.reason))
                continue
            engine = Engine(self.program, store=CaseCounters())
            allowed = 0
            denial = None
            for _ in range(MAX_SEQUENCE + 1):
                d = self.decide(engine, w.tool, w.args, w.grant, w.server, DEFAULT_TIME.timestamp())
                if d is None:  # the admission refuses the call as the case writes it
                    break
                if not d.allowed:
                    denial = d
                    break
                allowed += 1
            if d is None:
                sug.notes.append(f"{tool}{by}: no call counted by {info.id} could be confirmed: the gateway's admission "
                                 f"refuses the call the solver found ({json.dumps(w.args)})")
                continue
            if denial is None:
                sug.notes.append(f"{tool}{by}: exhausting it takes more than {MAX_SEQUENCE} calls of the witness "
                                 f"{json.dumps(w.args)}; write that case by hand with a larger increment")
                return
            if denial.rule.policy != info.id:
                sug.notes.append(f"{tool}{by}: the sequence was denied by {denial.rule.pointer}, not by this limit")
                continue
            steps = ([_step(w, allowed)] if allowed else []) + [_step(w)]
            case = Case(f"limit {info.id}: call {allowed + 1} to {tool}{by} is over the budget", steps, 0)
            if _settle(self.program, case, self.fill):
                sug.cases.append(case)
            if allowed:
                short = Case(f"limit {info.id}: {allowed} call{'s' if allowed != 1 else ''} to {tool}{by} "
                             f"{'are' if allowed != 1 else 'is'} within the budget", [_step(w, allowed)], 0)
                if _settle(self.program, short, self.fill):
                    sug.cases.append(short)
            return

    def all(self) -> list[Suggestion]:
        infos = sorted(list(self.program.policies) + list(self.program.limits), key=lambda i: i.stmt.span.start)
        return [self.policy(i) if isinstance(i, PolicyInfo) else self.limit(i) for i in infos]


def _canonical(v) -> str:
    """JSON text that tells `1` from `1.0` from `true` (Python's `==` does not)."""
    return json.dumps(v, sort_keys=True, ensure_ascii=False, default=str)


def _leaves(args: dict, prefix: tuple = ()):
    for k, v in args.items():
        yield prefix + (k,), v
        if isinstance(v, dict):
            yield from _leaves(v, prefix + (k,))


def _kind(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "num"
    if isinstance(v, str):
        return "str"
    return "arr" if isinstance(v, list) else "obj"


# ---- TOML -------------------------------------------------------------------------------------


def _inline(v):
    if isinstance(v, dict):
        t = tomlkit.inline_table()
        for k, x in v.items():
            t.append(k, _inline(x))
        return t
    if isinstance(v, list):
        a = tomlkit.array()
        for x in v:
            a.append(_inline(x))
        return a
    return v


def _has_null(v) -> bool:
    if v is None:
        return True
    if isinstance(v, dict):
        return any(_has_null(x) for x in v.values())
    if isinstance(v, list):
        return any(_has_null(x) for x in v)
    return False


def _call_fields(t, step: Step) -> None:
    t.add("tool", step.tool)
    if step.arguments:
        if _has_null(step.arguments):  # TOML has no null: the JSON text carries it
            t.add("arguments_json", json.dumps(step.arguments, ensure_ascii=False))
        else:
            t.add("arguments", _inline(step.arguments))
    g = step.caller
    if isinstance(g, User):
        if g.attrs or g.groups:
            t.add("user", _inline({"id": g.id, **({"attrs": dict(sorted(g.attrs.items()))} if g.attrs else {}),
                                   **({"groups": sorted(g.groups)} if g.groups else {})}))
        else:
            t.add("user", g.id)
    elif g.label or g.groups:
        t.add("grant", _inline({"id": g.id, **({"label": g.label} if g.label else {}),
                                **({"groups": sorted(g.groups)} if g.groups else {})}))
    elif g.id != "anonymous":
        t.add("grant", g.id)
    if step.server != "default":
        t.add("server", step.server)


def _expect_fields(t, step: Step) -> None:
    for k in ("decision", "rule", "policy", "message"):
        if k in step.expect:
            t.add(k, step.expect[k])


def case_toml(case: Case) -> str:
    doc = tomlkit.document()
    t = tomlkit.table()
    t.add("name", case.name)
    if len(case.steps) == 1 and case.steps[0].repeat == 1:
        _call_fields(t, case.steps[0])
        _expect_fields(t, case.steps[0])
    else:
        first = case.steps[0]
        shared = all((s.tool, s.arguments, s.caller, s.server) == (first.tool, first.arguments, first.caller, first.server)
                     for s in case.steps)
        if shared:  # the same call again and again: say it once, on the case
            _call_fields(t, first)
        calls = tomlkit.aot()
        for s in case.steps:
            st = tomlkit.table()
            if not shared:
                _call_fields(st, s)
            if s.repeat > 1:
                st.add("repeat", s.repeat)
            _expect_fields(st, s)
            calls.append(st)
        t.add("calls", calls)
    aot = tomlkit.aot()
    aot.append(t)
    doc.add("case", aot)
    return tomlkit.dumps(doc)


def suggest_file(path, timeout_ms: int = 5000) -> str:
    """`suggest_toml` for a policy file (.mcpp or the JSON form): `mcpp test --suggest`,
    typed by the catalog the policy names, found as `mcpp test` finds it. Raises
    CatalogError (an MCPPError) when that catalog cannot be used."""
    from mcpp.lang.load import load_policy

    program = load_policy(path)
    return suggest_toml(program, timeout_ms, named_catalog(Path(path), program))


def suggest_toml(program: Program, timeout_ms: int = 5000, catalog=None) -> str:
    """Every suggestion for `program`, as TOML to paste into its test file; with `catalog`
    (the one the policy names), typed by it and checked through its admission."""
    sugs = Suggester(program, timeout_ms, catalog).all()
    n = sum(len(s.cases) for s in sugs)
    out = [f"# `mcpp test --suggest {program.filename}`: {n} proposed case{'s' if n != 1 else ''}, each checked "
           "on the engine.", "# Keep the ones that state what you mean; a case you disagree with is a bug to fix.", ""]
    if catalog is not None:
        out[-1:-1] = ["# Typed by the policy's catalog: each call conforms to its tool's inputSchema and is decided after "
                      "the gateway's admission (declared defaults filled in), as `mcpp test` decides it."]
    for s in sugs:
        where = f" (line {s.line})" if s.line else ""
        out.append(f"# ---- {s.kind} {s.rule!r}{where}")
        for note in s.notes:
            out.append(f"# {note}")
        for c in s.cases:
            out.append(case_toml(c).rstrip("\n"))
            out.append("")
        if not s.cases:
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n"
