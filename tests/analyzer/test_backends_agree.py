"""The three backends agree on random programs: the engine running the source, the
engine running the compiled JSON form, and the Z3 encoding the analyzer proves with.

- Z3 against the engine, both ways, per tool: every SAT witness (a call, a grant and the
  counters) replays through the engine with the claimed decision, for "allowed" and for
  "denied"; every UNSAT answer is checked on sampled calls and sampled counter states.
- Sequences of calls against live counters: after each call the source engine, the JSON
  engine (where the program compiles) and Z3 pinned to the call and to the counters the
  store holds give one decision, and the two stores hold the same counts.

Programs come from tests/strategies.py: action groups (nested, named like tools), limits
sharing counters (summed increments against the smallest max, per docs/language.md),
`default allow` with hide, `is T in <argument>`, i64 edges.
"""

from __future__ import annotations

import dataclasses
import json
import threading

import z3
from hypothesis import event, given, note
from hypothesis import strategies as st

from mcpp.analyzer.encode import decide, query_tools
from mcpp.analyzer.solve import Session
from mcpp.analyzer.sym import NOT, z
from mcpp.analyzer.witness import NOW, StateStore, Witness, pin
from mcpp.lang import jsonform
from mcpp.lang.compiler import GrantContext, compile_program
from mcpp.lang.diagnostics import MCPPError
from mcpp.lang.formatter import format_document
from mcpp.runtime.engine import Engine, Grant
from tests import strategies as base
from tests.profiles import programs_in_ci

from .strategies import calls_for, programs

TIMEOUT_MS = 20000


def _text(prog) -> str:
    return format_document(prog.document)


def _bounds(prog) -> dict:
    """Per counter key, the largest max among the limits counting it: no reachable count
    exceeds it (a reservation never passes a max that counts it)."""
    out: dict = {}
    for li in prog.limits:
        key = (li.stmt.counter, li.stmt.scope_kind, li.stmt.window)
        out[key] = max(out.get(key, 0), li.stmt.max)
    return out


def counter_states(prog):
    """Counts each counter key can reach: 0, 1, half-way, just under and at its bound."""
    keys = sorted(_bounds(prog).items())
    if not keys:
        return st.just({})
    return st.fixed_dictionaries({
        key: st.sampled_from(sorted({v for v in (0, 1, bound / 2, bound - 1, bound) if 0 <= v <= bound}))
        for key, bound in keys
    })


def _replay(prog, w: Witness):
    return Engine(prog, store=StateStore(w.counters)).decide(w.tool, w.args, w.grant, w.server, now=NOW, reserve=False)


@given(st.data())
@programs_in_ci(2000)
def test_witnesses_replay_and_unsat_answers_hold_on_samples(data):
    prog = data.draw(programs(max_policies=4), label="program")
    note(_text(prog))
    session = Session(TIMEOUT_MS)
    named, other = query_tools(prog)
    sample = st.tuples(calls_for(prog), counter_states(prog))  # built once: building costs more than a draw
    more = st.lists(sample, max_size=4)
    samples = data.draw(st.lists(sample, max_size=8), label="samples")
    for tool in named + [other]:
        req = session.request()
        d = decide(req, prog, tool)
        exact = not d.enc.reasons
        allowed = d.allowed(zero=False)
        for want, formula in ((True, allowed), (False, NOT(session.ctx, allowed))):
            o = session.check(req, formula, tool=tool, witness=True)
            assert o.status != "unknown", o.reason
            if o.sat:
                event("sat: exact" if exact else "sat: over-approximated")
                if exact:  # an over-approximation may find a call that is not real
                    got = _replay(prog, o.witness)
                    assert got.allowed == want, (tool, want, o.witness.brief(), got.to_dict())
                continue
            event("unsat")
            # the sampled calls to this tool, and a few more drawn for it alone
            mine = [(c, n) for c, n in samples if (c.tool if c.tool in named else other) == tool]
            mine += [(dataclasses.replace(c, tool=tool), n) for c, n in data.draw(more, label=f"samples for {tool}")]
            for c, counters in mine:
                w = Witness(c.tool, c.args, c.grant, c.label, tuple(sorted(c.groups)), c.server, counters)
                got = _replay(prog, w)
                assert got.allowed != want, (f"Z3: {tool} is never {'allowed' if want else 'denied'}", w.brief(), got.to_dict())


# ---- sequences of calls against live counters --------------------------------------------------


class Ledger:
    """A counter store (the engine's CounterStore protocol) that can say what it holds."""

    def __init__(self):
        self.values: dict[str, float] = {}
        self.lock = threading.Lock()

    def reserve(self, charges):
        with self.lock:
            for i, c in enumerate(charges):
                if self.values.get(c.key, 0) + c.amount > c.max:
                    return i
            for c in charges:
                self.values[c.key] = self.values.get(c.key, 0) + c.amount
            return None

    def release(self, charges):
        with self.lock:
            for c in charges:
                self.values[c.key] = self.values.get(c.key, 0) - c.amount

    def value(self, key):
        return self.values.get(key, 0)

    def counts_for(self, grant_id: str) -> dict:
        """(counter, scope, window) → count, as the grant's calls see them (keys are
        `namespace|counter|scope:id|window:start`; the counter name may hold `|`)."""
        out = {}
        for key, v in self.values.items():
            parts = key.split("|")
            scope, sid = parts[-2].split(":", 1)
            if (scope == "grant" and sid == grant_id) or scope == "policy":
                out[("|".join(parts[1:-2]), scope, parts[-1].split(":", 1)[0])] = v
        return out


WHO = st.tuples(st.sampled_from(base.LABELS), st.frozensets(st.sampled_from(base.GROUPS), max_size=2))  # a grant's label and groups
LATER = 4_102_444_800.0  # 2100-01-01: one instant for the whole sequence, windows never roll


@given(st.data())
@programs_in_ci(2000)
def test_engine_json_and_z3_agree_on_call_sequences(data):
    prog = data.draw(programs(max_policies=4), label="program")
    note(_text(prog))
    who = {g: data.draw(WHO, label=f"grant {g}") for g in base.GRANTS + ["anonymous"]}
    steps = data.draw(st.lists(st.tuples(calls_for(prog), st.booleans()), min_size=1, max_size=8), label="calls")
    source_store, json_store = Ledger(), Ledger()
    source = Engine(prog, store=source_store)
    json_engines: dict = {}  # (grant, server) → the engine on that context's JSON form
    json_ok = True  # every call so far had a JSON form, so both stores saw the same calls
    session = Session(TIMEOUT_MS)
    named, other = query_tools(prog)
    encoded: dict = {}
    for c, upstream_fails in steps:
        label, groups = who[c.grant]
        grant = Grant(c.grant, label, groups)
        ctx_key = (c.grant, c.server)
        if ctx_key not in json_engines:
            try:
                doc = compile_program(prog, GrantContext(c.grant, label, groups), c.server)
                json_engines[ctx_key] = Engine(jsonform.load_program(json.dumps(doc), "compiled.json"), store=json_store)
                event("compiled")
            except MCPPError:
                json_engines[ctx_key] = None
                event("not compilable: Z3 and the source only")
        json_ok = json_ok and json_engines[ctx_key] is not None
        counts = source_store.counts_for(c.grant)
        a = source.decide(c.tool, c.args, grant, c.server, now=LATER)
        # Z3, pinned to this call and to the counters before it
        tool = c.tool if c.tool in named else other
        if tool not in encoded:
            req = session.request()
            d = decide(req, prog, tool)
            encoded[tool] = (req, d, d.allowed(zero=False))
        req, d, formula = encoded[tool]
        w = Witness(tool, c.args, c.grant, label, tuple(sorted(groups)), c.server, counts)
        s = z3.Solver(ctx=session.ctx)
        s.set("timeout", TIMEOUT_MS)
        s.add(z(session.ctx, formula), *req.constraints(), *pin(req, w))
        r = s.check()
        assert r != z3.unknown, s.reason_unknown()
        where = (w.brief(), a.to_dict())
        if d.enc.reasons:  # over-approximated: a real allow is still a model
            assert r == z3.sat or not a.allowed, ("Z3 denies what the engine allows", *where)
        else:
            assert (r == z3.sat) == a.allowed, ("Z3 and the engine disagree", *where)
        je = json_engines[ctx_key] if json_ok else None
        if je is not None:
            b = je.decide(c.tool, c.args, grant, c.server, now=LATER)
            assert (a.allowed, a.limit) == (b.allowed, b.limit), ("source and JSON form disagree", *where, b.to_dict())
        if upstream_fails:  # the upstream failed: the gateway gives the budget back
            a.release()
            if je is not None:
                b.release()
        if je is not None:
            assert source_store.values == json_store.values
