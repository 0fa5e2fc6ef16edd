"""`mcpp diff OLD NEW --audit DB`: the real past calls whose decision would change.

Each audited call is known as far as the audit recorded it:

- **keys** (always): the tool, the grant (id, label and, in rows written since this
  column exists, its groups), the server, and the *top-level argument keys*. Whether a
  key is present decides `has`; every value is unknown.
- **hashed** (`audit_values = "hashed"`): the whole shape (every object's keys, each
  value's JSON type, each array's length) and, per scalar, a keyed hash: for every
  constant either policy compares with, whether the value equals it.
- **full** (`audit_values = "full"`): the arguments themselves.

A call with full values is replayed through both engines: its decision changes or not.
Otherwise the question goes to Z3 over every call consistent with what was recorded:
*changes* (every such call would be decided differently: the change certainly hits
it), *may change* (some would, some would not: what decides it was not recorded), or
*unchanged* (none would). Every changing call found is replayed through both engines
before it is reported, as every analyzer witness is.

Decisions are compared as `diff` compares them (deny < approval < allow) with every
limit counter at zero: the audit does not record the counts a past call met, so a
change of a limit shows only where one call alone exceeds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import z3

from mcpp.lang import ir
from mcpp.lang.ir import walk
from mcpp.lang.program import Program
from mcpp.runtime.engine import Engine
from mcpp.runtime.retained import hash_value, key_id, parse_pointer

from .encode import decide
from .solve import Session
from .sym import AND, NOT, OR, real_val, string_val, z
from .witness import NOW, StateStore, Witness

KNOWN = ("keys", "hashed", "full")


@dataclass(frozen=True)
class PastCall:
    """What the audit knows of one call (rows with equal knowledge are one PastCall)."""

    tool: str
    grant_id: str
    label: str
    groups: tuple[str, ...] | None  # None: not recorded (older rows)
    server: str
    keys: tuple[str, ...]
    keys_complete: bool  # false when the row's key list was clipped
    known: str  # keys | hashed | full
    values: str | None = None  # the row's arg_values (JSON text) for hashed / full


@dataclass
class Replayed:
    call: PastCall
    rows: list[int] = field(default_factory=list)  # audit seq numbers
    status: str = "unchanged"  # changes | may-change | unchanged | unknown
    witness: Witness | None = None
    old: dict | None = None
    new: dict | None = None
    reason: str = ""  # (its JSON is `mcpp.Replayed.to_dict`'s, the public value's)


def rank(decision) -> int:
    return 2 if decision.allowed else (1 if decision.needs_approval else 0)


def replay(old: Program, new: Program, calls: dict[PastCall, list[int]], *, key: bytes | None = None,
           timeout_ms: int = 5000, deadline=None) -> list[Replayed]:
    """Each distinct past call, with the audit rows it stands for, replayed against both.
    `deadline` (analyzer/deadline.py): the run's budget; a symbolic question left when it
    runs out is "unknown" (a call known in full is replayed by the engines alone)."""
    lits = _literals(old) + [v for v in _literals(new) if v not in _literals(old)]
    engines = (Engine(old, store=StateStore({})), Engine(new, store=StateStore({})))
    session = Session(timeout_ms, deadline=deadline)
    out = []
    for call, seqs in calls.items():
        r = Replayed(call, sorted(seqs))
        try:
            if call.known == "full":
                _concrete(r, old, new, engines)
            else:
                _symbolic(r, old, new, engines, session, lits, key)
        except Exception as e:  # one unreadable row never stops the report
            r.status, r.reason = "unknown", f"{type(e).__name__}: {e}"
        out.append(r)
    return out


def _decide(engine: Engine, w: Witness):
    return engine.decide(w.tool, w.args, w.grant, w.server, now=NOW, reserve=False)


def _concrete(r: Replayed, old, new, engines) -> None:
    import json

    c = r.call
    assert c.values is not None  # known == "full": the values were kept
    kept = json.loads(c.values)
    args = kept.get("arguments") if isinstance(kept, dict) else None
    if not isinstance(args, dict):  # (a row written by something else, or edited)
        r.status, r.reason = "unknown", "the row's kept values have no arguments object"
        return
    w = Witness(c.tool, args, c.grant_id, c.label, tuple(c.groups or ()), c.server, {})
    d_old, d_new = _decide(engines[0], w), _decide(engines[1], w)
    if rank(d_old) != rank(d_new):
        r.status, r.witness = "changes", w
        r.old, r.new = _dec(d_old, old), _dec(d_new, new)
    if c.groups is None:
        r.reason = "the row has no groups recorded: replayed as a grant in no group"


def _symbolic(r: Replayed, old, new, engines, session: Session, lits: list, key: bytes | None) -> None:
    late = session.expired()
    if late is not None:  # the run is over: not even encoded
        r.status, r.reason = "unknown", late
        return
    c = r.call
    ctx = session.ctx
    req = session.request(None, c.server)
    req.share_users(old, new)
    d_old, d_new = decide(req, old, c.tool), decide(req, new, c.tool)
    a_old, a_new = d_old.allowed(zero=True), d_new.allowed(zero=True)
    u_old, u_new = d_old.runs(zero=True), d_new.runs(zero=True)
    changed = OR(ctx, AND(ctx, u_new, NOT(ctx, u_old)), AND(ctx, a_new, NOT(ctx, a_old)),
                 AND(ctx, u_old, NOT(ctx, u_new)), AND(ctx, a_old, NOT(ctx, a_new)))
    facts = _facts(req, c, lits, key)
    reasons = sorted(d_old.enc.reasons | d_new.enc.reasons)
    o = session.check(req, AND(ctx, facts, changed), tool=c.tool, witness=True)
    if o.unsat:
        return
    if o.status == "unknown":
        r.status, r.reason = "unknown", o.reason
        return
    w = o.witness
    assert w is not None  # sat, asked with witness=True
    w.grant_id, w.label = c.grant_id, c.label  # fixed by the facts
    x_old, x_new = _decide(engines[0], w), _decide(engines[1], w)
    if rank(x_old) == rank(x_new):
        r.status = "unknown"
        r.reason = "a possible change could not be confirmed: " + ("; ".join(reasons) or "the witness did not replay")
        return
    r.witness, r.old, r.new = w, _dec(x_old, old), _dec(x_new, new)
    same = session.check(req, AND(ctx, facts, NOT(ctx, changed)))
    if same.unsat:
        r.status = "changes"
    elif same.status == "unknown":
        r.status, r.reason = "may-change", f"whether every such call changes is undecided ({same.reason})"
    else:
        r.status = "may-change"
        r.reason = _unknown_part(c)


def _unknown_part(c: PastCall) -> str:
    if c.known == "keys":
        return "the audit has this call's argument keys, not its values; the values decide it"
    return "the audit has hashed values: equality with each policy constant is known, nothing else (order, patterns)"


def _facts(req, c: PastCall, lits: list, key: bytes | None):
    """What the audit recorded about the call, as constraints over the symbolic request."""
    import json

    ctx = req.ctx
    parts = [req.caller_is_grant(), req.gid == string_val(c.grant_id, ctx), req.label == string_val(c.label, ctx)]
    if c.groups is not None:
        parts += [b == (g in c.groups) for g, b in req.groups.items()]
    if c.known == "hashed" and c.values:
        data = json.loads(c.values)
        usable = key is not None and data.get("key") == key_id(key)
        recorded = {parse_pointer(p): v for p, v in data.get("paths", {}).items()}
        for path, (kind, info) in recorded.items():
            v = req.path(path)
            parts.append(v.is_(kind))
            if kind == "obj" and info is not None:
                parts += _children(req, path, set(info), complete=True)
            elif kind == "arr" and isinstance(info, int):
                parts.append(z3.Length(v.items) == info)
            elif kind in ("str", "num", "bool") and usable and key is not None and info is not None:
                parts += _equalities(v, kind, info, lits, key, ctx)
        # a path a rule reads below a recorded scalar or array is absent; under an unrecorded one, unknown
    else:
        parts += _children(req, (), set(c.keys), complete=c.keys_complete)
    return AND(ctx, *parts)


def _children(req, path: tuple, keys: set, complete: bool) -> list:
    """The recorded keys of an object are present; with the full list, the others a rule
    reads are absent (and keys no rule reads make `extra`)."""
    out = []
    read = {p[-1] for p in req.paths if len(p) == len(path) + 1 and p[:-1] == path}
    for k in keys:
        if not k.endswith(")") or "…(+" not in k:  # a clipped key is not a key
            out.append(z3.Not(req.path(path + (k,)).is_("missing")))
    if complete:
        for k in read - keys:
            out.append(req.path(path + (k,)).is_("missing"))
        out.append(req.path(path).extra == bool(keys - read))
    return out


def _equalities(v, kind: str, h: str, lits: list, key: bytes, ctx) -> list:
    out = []
    for lit in lits:
        if kind == "str" and isinstance(lit, str):
            term, val = v.s, string_val(lit, ctx)
        elif kind == "num" and isinstance(lit, (int, float)) and not isinstance(lit, bool):
            from fractions import Fraction

            term, val = v.n, real_val(Fraction(lit), ctx)
        else:
            continue
        eq = hash_value(key, lit) == h
        out.append(term == val if eq else term != val)
    if kind == "bool":
        out.append(v.b == (hash_value(key, True) == h))
    return out


def _literals(program: Program) -> list:
    out: list = []
    stmts = [p.stmt for p in program.policies] + [li.stmt for li in program.limits]
    for s in stmts:
        for cl in s.clauses:
            for n in walk(cl.expr):
                if isinstance(n, ir.Lit) and isinstance(n.value, (str, int, float)) and n.value not in out:
                    if isinstance(n.value, float) and n.value != n.value:
                        continue
                    out.append(n.value)
    return out


def _dec(decision, program: Program) -> dict:
    return decision.to_dict(program.filename if program.origin == "mcpp" else None)


_ = z  # re-exported helper kept for callers composing formulas
