"""Concrete calls from Z3 models, and their replay through the real engine.

A witness is everything `Engine.decide` needs: tool, arguments, grant (id, label,
groups), server, plus the limit counters it assumes (all zero unless a limit is part
of the story). `replay` runs it with `reserve=False` against a counter store that
reports exactly those counts, so a claimed decision is checked by the code that
enforces it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fractions import Fraction

import z3

from mcpp.lang.program import Program
from mcpp.runtime.engine import Decision, Engine, Grant

from .sym import string_of

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z: a fixed instant, so counter windows are stable


@dataclass
class Witness:
    tool: str
    args: dict
    grant_id: str = "anonymous"
    label: str = ""
    groups: tuple = ()
    server: str = "default"
    counters: dict = field(default_factory=dict)  # (counter, scope, window) → count

    @property
    def grant(self) -> Grant:
        return Grant(self.grant_id, self.label, frozenset(self.groups))

    def call(self) -> dict:
        """The MCP `tools/call` JSON-RPC request."""
        return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": self.tool, "arguments": self.args}}

    def to_dict(self) -> dict:
        d = {
            "request": self.call(),
            "grant": {"id": self.grant_id, "label": self.label, "groups": list(self.groups)},
            "server": self.server,
        }
        if self.counters:
            d["counters"] = [
                {"counter": c, "scope": s, "window": w, "count": _num(v)} for (c, s, w), v in sorted(self.counters.items())
            ]
        return d

    def brief(self) -> str:
        """One line for messages: the call, then who made it where."""
        who = f"grant {self.grant_id!r}"
        if self.label:
            who += f" (label {self.label!r})"
        if self.groups:
            who += " in " + ", ".join(f"Group::{json.dumps(g)}" for g in self.groups)
        text = f"{json.dumps({'name': self.tool, 'arguments': self.args}, ensure_ascii=False)} by {who} on server {self.server!r}"
        if self.counters:
            text += " with " + ", ".join(f"counter {c!r} ({s}, per {w}) at {_num(v)}" for (c, s, w), v in sorted(self.counters.items()))
        return text


def _num(v):
    if isinstance(v, Fraction):
        return int(v) if v.denominator == 1 else float(v)
    return v


# ---- replay ------------------------------------------------------------------------------------


class StateStore:
    """A read-only counter store for replay: every key reads the count the witness assumes.

    Engine keys are `namespace|counter|scope:id|window:start`; the counter name may hold
    `|`, so it is everything between the first and the last two fields."""

    def __init__(self, counts: dict):
        self.counts = counts

    def value(self, key: str) -> float:
        parts = key.split("|")
        window = parts[-1].split(":", 1)[0]
        scope = parts[-2].split(":", 1)[0]
        counter = "|".join(parts[1:-2])
        return float(self.counts.get((counter, scope, window), 0))

    def reserve(self, charges):  # noqa: ARG002 (CounterStore's signature)  # pragma: no cover - replay never reserves
        raise RuntimeError("replay does not reserve")

    def release(self, charges):  # pragma: no cover
        pass


class Replayer:
    """Engines per program, built once (compiling a large program is not free)."""

    def __init__(self):
        self._engines: dict[int, tuple[Program, Engine]] = {}

    def engine(self, program: Program) -> Engine:
        hit = self._engines.get(id(program))
        if hit is None or hit[0] is not program:
            hit = (program, Engine(program))
            self._engines[id(program)] = hit
        return hit[1]

    def decide(self, program: Program, w: Witness) -> Decision:
        engine = self.engine(program)
        engine.store = StateStore(w.counters)
        return engine.decide(w.tool, w.args, w.grant, w.server, now=NOW, reserve=False)


def matches_scope(program: Program, stmt, w: Witness, engine: Engine | None = None) -> bool:
    """Whether the assert (or any policy-shaped statement) applies to the witness call."""
    from mcpp.lang import ir
    from mcpp.lang.program import PolicyInfo
    from mcpp.runtime.engine import CompiledRule

    engine = engine or Engine(program)
    policy = ir.Policy("permit", stmt.scope, stmt.clauses)
    rule = CompiledRule(PolicyInfo(policy, "assert", -1, None), policy)  # the assert read as a permit
    env = engine.env(w.tool, w.args, w.grant, w.server)
    try:
        return rule.applies(env)
    except Exception:
        return False


# ---- decoding models ----------------------------------------------------------------------------


class Decoder:
    """Turn a model of a Request into a Witness."""

    def __init__(self, req, model: z3.ModelRef):
        self.req = req
        self.m = model
        self.S = req.S

    def ev(self, t):
        return self.m.eval(t, model_completion=True)

    def string(self, t) -> str:
        v = self.ev(t)
        return string_of(v) if v.is_string_value() else ""

    def number(self, t):
        v = self.ev(t)
        if isinstance(v, z3.RatNumRef):
            fr = v.as_fraction()
        elif isinstance(v, z3.IntNumRef):
            fr = Fraction(v.as_long())
        else:  # pragma: no cover - only linear arithmetic is used
            fr = Fraction(str(v.as_decimal(20)).rstrip("?"))
        if fr.denominator == 1:
            return int(fr)
        f = float(fr)
        return f

    def witness(self, tool: str) -> Witness:
        req = self.req
        groups = tuple(sorted(g for g, b in req.groups.items() if z3.is_true(self.ev(b))))
        if req.grant is not None:
            gid, label, groups = req.grant.id, req.grant.label, tuple(sorted(req.grant.groups))
        else:
            gid, label = self.string(req.gid), self.string(req.label)
        server = req.server if req.server is not None else self.string(req.sid)
        counters = {}
        for key, var in req.counters.items():
            v = self.number(var)
            if v:
                counters[key] = v
        args = self.value(())
        if not isinstance(args, dict):  # pragma: no cover - constrained to be an object
            args = {}
        return Witness(tool, args, gid, label, groups, server, counters)

    def kind(self, v) -> str:
        return str(self.ev(v.kind))

    def value(self, p: tuple, depth: int = 0):
        v = self.req.paths[p]
        kind = self.kind(v)
        if kind == "str":
            return self.string(v.s)
        if kind == "num":
            return self.number(v.n)
        if kind == "bool":
            return z3.is_true(self.ev(v.b))
        if kind == "null":
            return None
        if kind == "arr":
            return self.items(v.items, depth)
        if kind == "obj":
            out = {}
            kids = self.req.children.get(p, set())
            for k in sorted(kids):
                if self.kind(self.req.paths[p + (k,)]) == "missing":
                    continue
                out[k] = self.value(p + (k,), depth)
            if z3.is_true(self.ev(v.extra)):
                key, n = "other", 1
                while key in kids:
                    n += 1
                    key = f"other{n}"
                out[key] = None
            return out
        return _MISSING

    def items(self, seq, depth: int):
        n = self.ev(z3.Length(seq)).as_long()
        out = []
        for i in range(min(n, 64)):
            out.append(self.elem(self.ev(seq[i]), depth))
        return out

    def elem(self, e, depth: int):
        E = self.S.Elem
        name = e.decl().name()
        if name == "estr":
            return self.string(E.es(e))
        if name == "enum":
            return self.number(E.en(e))
        if name == "ebool":
            return z3.is_true(self.ev(E.eb(e)))
        if name == "enull":
            return None
        cid = self.ev(E.ecid(e)).as_long()
        if depth < 3:  # a nested value equal to an argument compound: reuse that argument
            for p, v in self.req.paths.items():
                if self.kind(v) in ("arr", "obj") and self.ev(v.cid).as_long() == cid:
                    return self.value(p, depth + 1)
        return {"mcpp_value": cid}


class _Missing:
    pass


_MISSING = _Missing()


# ---- pinning a concrete call ------------------------------------------------------------------


def pin(req, w: Witness) -> list:
    """Constraints fixing every variable of `req` to the concrete call `w`: the model the
    soundness argument says exists for every real call (docs/analyzer.md, "Soundness").
    Compound values get class ids by Cedar equality; objects get `extra` when they hold
    keys no rule reads."""
    from mcpp.lang.values import cedar_eq

    from .sym import real_val, string_val

    ctx = req.ctx
    S = req.S
    E = S.Elem
    reps: list = []

    def cls(x) -> int:
        for i, r in enumerate(reps):
            if cedar_eq(r, x):
                return i
        reps.append(x)
        return len(reps) - 1

    def elem(x):
        if isinstance(x, bool):
            return E.ebool(z3.BoolVal(x, ctx))
        if isinstance(x, (int, float)):
            return E.enum(real_val(x, ctx))
        if isinstance(x, str):
            return E.estr(string_val(x, ctx))
        if x is None:
            return E.enull
        return E.ecomp(z3.IntVal(cls(x), ctx))

    out = []
    if req.grant is None:
        out += [req.gid == string_val(w.grant_id, ctx), req.label == string_val(w.label, ctx)]
        out += [b == z3.BoolVal(g in w.groups, ctx) for g, b in req.groups.items()]
    if req.server is None:
        out.append(req.sid == string_val(w.server, ctx))
    for key, var in req.counters.items():
        out.append(var == real_val(w.counters.get(key, 0), ctx))
    for p, v in req.paths.items():
        x = w.args
        for k in p:
            x = x.get(k, _MISSING) if isinstance(x, dict) else _MISSING
        if x is _MISSING:
            out.append(v.is_("missing"))
        elif isinstance(x, bool):
            out += [v.is_("bool"), v.b == z3.BoolVal(x, ctx)]
        elif isinstance(x, (int, float)):
            out += [v.is_("num"), v.n == real_val(x, ctx)]
        elif isinstance(x, str):
            out += [v.is_("str"), v.s == string_val(x, ctx)]
        elif x is None:
            out.append(v.is_("null"))
        elif isinstance(x, list):
            seq = z3.Empty(S.Seq) if not x else (z3.Unit(elem(x[0])) if len(x) == 1 else z3.Concat(*[z3.Unit(elem(i)) for i in x]))
            out += [v.is_("arr"), v.items == seq, v.cid == cls(x)]
        else:
            extra = bool(set(x) - req.children.get(p, set()))
            out += [v.is_("obj"), v.extra == z3.BoolVal(extra, ctx), v.cid == cls(x)]
    return out
