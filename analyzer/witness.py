"""Concrete calls from Z3 models, and their replay through the real engine.

A witness is everything `Engine.decide` needs: tool, arguments, grant (id, label,
groups), server, plus the limit counters it assumes (all zero unless a limit is part
of the story). `replay` runs it with `reserve=False` against a counter store that
reports exactly those counts, so a claimed decision is checked by the code that
enforces it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import z3

from mcpp.lang.program import Program
from mcpp.runtime.engine import Decision, Engine, Grant, User

from .sym import UserSet, high_decode, string_of

log = logging.getLogger("mcpp.analyzer")

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z: a fixed instant, so counter windows are stable


@dataclass
class Witness:
    tool: str
    args: dict
    grant_id: str = "anonymous"  # the caller's id: a grant's, or a user's (`user`)
    label: str = ""
    groups: tuple = ()
    server: str = "default"
    counters: dict = field(default_factory=dict)  # (counter, scope, window) → count
    user: bool = False  # the caller is `User::"<grant_id>"` with `attrs`, not a grant
    attrs: dict = field(default_factory=dict)  # a user's attributes (its mapped claims)

    @property
    def grant(self):
        """The caller as the engine takes it: a Grant, or a User."""
        if self.user:
            return User(self.grant_id, dict(self.attrs), frozenset(self.groups))
        return Grant(self.grant_id, self.label, frozenset(self.groups))

    def call(self) -> dict:
        """The MCP `tools/call` JSON-RPC request."""
        return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": self.tool, "arguments": self.args}}

    def caller(self) -> str:
        """Who calls, for people: `grant "g" (label "l") in Group::"x"`, or
        `User::"u1" {email: "a@b.c", groups: ["sre"]}` (the user and its claims)."""
        if self.user:
            parts = [f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in sorted(self.attrs.items())]
            parts.append(f"groups: {json.dumps(list(self.groups), ensure_ascii=False)}")
            return f"User::{json.dumps(self.grant_id, ensure_ascii=False)} {{{', '.join(parts)}}}"
        who = f"grant {self.grant_id!r}"
        if self.label:
            who += f" (label {self.label!r})"
        if self.groups:
            who += " in " + ", ".join(f"Group::{json.dumps(g)}" for g in self.groups)
        return who

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"request": self.call()}
        if self.user:
            d["caller"] = {"type": "User", "id": self.grant_id, "attrs": dict(sorted(self.attrs.items())),
                           "groups": list(self.groups)}
        else:
            d["grant"] = {"id": self.grant_id, "label": self.label, "groups": list(self.groups)}
        d["server"] = self.server
        if self.counters:
            d["counters"] = [
                {"counter": c, "scope": s, "window": w, "count": _num(v)} for (c, s, w), v in sorted(self.counters.items())
            ]
        return d

    def brief(self) -> str:
        """One line for messages: the call, then who made it where."""
        text = (f"{json.dumps({'name': self.tool, 'arguments': self.args}, ensure_ascii=False)} by {self.caller()} "
                f"on server {self.server!r}")
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


class ReplayError(Exception):
    """The engine could not evaluate what a witness was to be checked against; `reason`
    says why. Callers answer UNKNOWN with it: a check that cannot run never passes."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def matches_scope(program: Program, stmt, w: Witness, engine: Engine | None = None) -> bool:
    """Whether the assertion (or any statement with a scope and clauses) selects the
    witness call, by the engine's own rule evaluation: the scope matches and every
    clause has its wanted value (an erroring clause does not). Raises ReplayError when
    the evaluation itself fails (a pattern the engine cannot compile, an expression too
    deep for Python's stack, or a bug, which is also logged): never read as "no"."""
    from mcpp.lang import ir
    from mcpp.lang.identity import PrincipalError
    from mcpp.lang.program import PolicyInfo
    from mcpp.lang.regex import RegexError
    from mcpp.runtime.engine import CompiledRule

    engine = engine or Engine(program)
    policy = ir.Policy("permit", stmt.scope, stmt.clauses)
    try:
        rule = CompiledRule(PolicyInfo(policy, "assertion", -1, None), policy)
        try:
            env = engine.env(w.tool, w.args, w.grant, w.server)
        except PrincipalError:  # a user who does not fit `entity User`: the engine denies it everything
            return False
        return rule.evaluate(env) is True
    except (RegexError, RecursionError) as e:
        raise ReplayError(f"the engine cannot evaluate the conditions on the witness ({type(e).__name__}: {e})") from e
    except Exception as e:
        log.exception("evaluating a statement's scope on a witness failed")
        raise ReplayError(f"the engine failed evaluating the conditions on the witness ({type(e).__name__}: {e})") from e


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
        return high_decode(self.S.cache, string_of(v)) if v.is_string_value() else ""

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
        if req.grant is not None:  # a fixed grant or user
            gid, label, groups = req.grant.id, req.grant.label, tuple(sorted(req.grant.groups))
        else:
            gid, label = self.string(req.gid), self.string(req.label)
        server = req.server if req.server is not None else self.string(req.sid)
        user, attrs = self.user()
        if user and req.user_in_groups is not None and z3.is_true(self.ev(req.user_in_groups)) and not groups:
            groups = (self.unnamed_group(),)  # in a group no rule names
        counters = {}
        for key, var in req.counters.items():
            v = self.number(var)
            if v:
                counters[key] = v
        args = self.value(())
        if not isinstance(args, dict):  # pragma: no cover - constrained to be an object
            args = {}
        return Witness(tool, args, gid, label, groups, server, counters, user, attrs)

    def user(self) -> tuple[bool, dict]:
        """(the caller is a user, its attributes: each present one, of its declared type —
        a set's elements are of its element type by construction, `sym.UserSet`)."""
        req = self.req
        if req.fixed_user:
            return True, {k: list(v) if isinstance(v, tuple) else v for k, v in req.grant.attrs}
        if req.user is None or not z3.is_true(self.ev(req.user)):
            return False, {}
        attrs: dict[str, object] = {}
        for key, (present, sv) in sorted(req.user_attrs.items()):
            name, t = key.split(":", 1)
            if name in attrs or not z3.is_true(self.ev(present)):
                continue
            (alt,) = sv.alts
            if t == "String":
                attrs[name] = self.string(alt.val)
            elif t == "Long":
                attrs[name] = int(self.number(alt.val))
            elif t == "Bool":
                attrs[name] = z3.is_true(self.ev(alt.val))
            else:
                attrs[name] = self.user_set(alt.val)
        return True, attrs

    def user_set(self, us) -> list:
        """A user's set attribute: its first 64 elements (readability prefers at most 3)."""
        n = self.ev(us.length).as_long()
        out: list = []
        for i in range(min(n, 64)):
            x = self.ev(us.seq[i])
            if us.elem == "str":
                out.append(self.string(x))
            elif us.elem == "num":
                out.append(x.as_long())
            else:
                out.append(z3.is_true(x))
        return out

    def unnamed_group(self) -> str:
        name, n = "other_group", 1
        while name in self.req.groups:
            n += 1
            name = f"other_group_{n}"
        return name

    def kind(self, v) -> str:
        """The kind the model gives the path (by the constant's identity: printing the
        term, as str() does, costs a tenth of a millisecond each)."""
        names = self.S.cache.get("kind names")
        if names is None:
            names = self.S.cache["kind names"] = {c.get_id(): k for k, c in self.S.kinds.items()}
        val = self.ev(v.kind)
        hit = names.get(val.get_id())
        return hit if hit is not None else str(val)

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
        for present, sv in self.req.user_attrs.values():  # … or a user's set
            us = sv.alts[0].val
            if isinstance(us, UserSet) and z3.is_true(self.ev(present)) and self.ev(us.cid).as_long() == cid:
                return self.user_set(us)
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
    from .sym import real_val, string_val

    ctx = req.ctx
    out = []
    reps: list = []  # compound values by Cedar equality: the arguments' and the user's sets share them
    if req.grant is None:
        out += [req.gid == string_val(w.grant_id, ctx), req.label == string_val(w.label, ctx)]
        out += [b == z3.BoolVal(g in w.groups, ctx) for g, b in req.groups.items()]
        out += _pin_user(req, w, reps)
    if req.server is None:
        out.append(req.sid == string_val(w.server, ctx))
    for key, var in req.counters.items():
        out.append(var == real_val(w.counters.get(key, 0), ctx))
    return out + [var == value for var, value in arg_assignment(req, w.args, reps=reps)]


def arg_assignment(req, args: dict, complete: bool = False, reps: list | None = None) -> list[tuple]:
    """(variable, value) pairs giving every argument-path variable of `req` its value for
    the concrete arguments `args`. The payloads of the kinds a path does not have are
    left out, or with `complete` set to fixed defaults (the encoding reads a payload only
    under its kind, so any value does): a substitution must leave no variable free.
    `reps`: the compound values given class ids so far (`pin` shares them with the user)."""
    from .sym import real_val, seq_of, string_val

    ctx = req.ctx
    S = req.S
    E = S.Elem
    reps = [] if reps is None else reps

    def cls(x) -> int:
        return _class_of(reps, x)

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
    for p, v in req.paths.items():
        x = args
        for k in p:
            x = x.get(k, _MISSING) if isinstance(x, dict) else _MISSING
        fixed = {}
        if x is _MISSING:
            kind = "missing"
        elif isinstance(x, bool):
            kind, fixed = "bool", {v.b: z3.BoolVal(x, ctx)}
        elif isinstance(x, (int, float)):
            kind, fixed = "num", {v.n: real_val(x, ctx)}
        elif isinstance(x, str):
            kind, fixed = "str", {v.s: string_val(x, ctx)}
        elif x is None:
            kind = "null"
        elif isinstance(x, list):
            kind, fixed = "arr", {v.items: seq_of(S.Seq, [z3.Unit(elem(i)) for i in x]), v.cid: z3.IntVal(cls(x), ctx)}
        else:
            extra = bool(set(x) - req.children.get(p, set()))
            kind, fixed = "obj", {v.extra: z3.BoolVal(extra, ctx), v.cid: z3.IntVal(cls(x), ctx)}
        out.append((v.kind, S.kinds[kind]))
        out += list(fixed.items())
        if complete:
            defaults = {v.s: string_val("", ctx), v.n: real_val(0, ctx), v.b: z3.BoolVal(False, ctx),
                        v.items: z3.Empty(S.Seq), v.cid: z3.IntVal(-1, ctx), v.extra: z3.BoolVal(False, ctx)}
            out += [(var, val) for var, val in defaults.items() if not any(var.eq(f) for f in fixed)]
    return out


def _class_of(reps: list, x) -> int:
    """The equality-class id of compound value `x` among `reps` (Cedar equality; new: added)."""
    from mcpp.lang.values import cedar_eq

    for i, r in enumerate(reps):
        if cedar_eq(r, x):
            return i
    reps.append(x)
    return len(reps) - 1


def _pin_user(req, w: Witness, reps: list | None = None) -> list:
    """The caller's kind and, for a user, its attributes (by declared type: a value of
    another type is no value of that attribute) and whether it is in any group. With
    `reps` (`pin`), a set attribute's class id too, among the arguments' compounds."""
    from .sym import real_val, seq_of, string_val

    ctx = req.ctx

    def elem(x):  # a set element of the declared type (`_fits_type` checked it)
        if isinstance(x, bool):
            return z3.BoolVal(x, ctx)
        if isinstance(x, int):
            return z3.IntVal(x, ctx)
        return string_val(x, ctx)

    out = []
    if req.user is not None:
        out.append(req.user == z3.BoolVal(w.user, ctx))
    if req.user_in_groups is not None:
        out.append(req.user_in_groups == z3.BoolVal(bool(w.user and w.groups), ctx))
    for key, (present, sv) in req.user_attrs.items():
        name, t = key.split(":", 1)
        v = w.attrs.get(name) if w.user else None
        ok = v is not None and _fits_type(t, v)
        out.append(present == z3.BoolVal(ok, ctx))
        if not ok or v is None:
            continue
        (alt,) = sv.alts
        if t == "String":
            out.append(alt.val == string_val(v, ctx))
        elif t == "Long":
            out.append(alt.val == real_val(v, ctx))
        elif t == "Bool":
            out.append(alt.val == z3.BoolVal(v, ctx))
        else:
            us = alt.val
            out.append(us.seq == seq_of(us.seq.sort(), [z3.Unit(elem(i)) for i in v]))
            if reps is not None:
                out.append(us.cid == _class_of(reps, list(v)))
    return out


def _fits_type(t: str, v) -> bool:
    from mcpp.lang.identity import PrincipalError, typed_value

    try:
        typed_value(t, v)
    except PrincipalError:
        return False
    return True
