"""Running queries: one fresh Z3 context per analysis, a timeout on every check, and
readable witnesses.

Readability is a preference, not a constraint: after a SAT answer the query is asked
again under assumption literals (server "default", grant "anonymous", no groups,
printable strings, whole numbers, short arrays, zero counters); the assumptions in the
unsat core are dropped and the rest kept. The first model is used if that fails.
"""

from __future__ import annotations

from dataclasses import dataclass

import z3

from .encode import FixedGrant, Request
from .sym import Sorts, string_val
from .witness import Decoder, Replayer, Witness


PREFER_MS = 250  # readability is worth a little time, not a slow analysis


@dataclass
class Outcome:
    status: str  # sat | unsat | unknown
    reason: str = ""
    witness: Witness | None = None

    @property
    def sat(self) -> bool:
        return self.status == "sat"

    @property
    def unsat(self) -> bool:
        return self.status == "unsat"


class Cancelled(Exception):
    """The caller no longer wants this analysis (the document changed)."""


class Session:
    """One analysis: its own Z3 context (never shared between threads) and a per-query
    timeout. `cancel` (a threading.Event) stops it between queries."""

    def __init__(self, timeout_ms: int = 2000, cancel=None, schemas: dict | None = None):
        self.cancel = cancel
        self.schemas = schemas  # typed calls (analyzer/typed.py): tool → SchemaAssumption
        self.ctx = z3.Context()
        self.sorts = Sorts(self.ctx)
        self.timeout_ms = max(1, int(timeout_ms))
        self.replayer = Replayer()
        self.queries = 0
        self._validators: dict = {}

    @property
    def typed(self) -> bool:
        """Is this a typed analysis (a catalog: calls conform to their tool's inputSchema)?"""
        return self.schemas is not None

    def tools(self) -> list[str] | None:
        """With a catalog, the tools a call can name: the catalog's, and nothing else (the
        gateway refuses a call to a tool its catalog does not list). None when untyped."""
        return sorted(self.schemas) if self.schemas is not None else None

    def nonconforming(self, tool: str, args) -> str | None:
        """In a typed analysis, why a witness's arguments are not a call the gateway would
        forward (checked by the gateway's own validator, catalog/conformance.py), else None.

        The encoding assumes conformance, so a witness that does not conform is an analyzer
        bug: callers report UNKNOWN, never a FAIL the gateway could not produce."""
        if self.schemas is None:
            return None
        assumption = self.schemas.get(tool)
        if assumption is None:
            return f"the catalog has no tool {tool!r}, so the gateway refuses every call to it"
        from mcpp.catalog.conformance import SchemaUnusable, check, compile_schema

        v = self._validators.get(tool)
        if v is None:
            try:
                v = compile_schema(assumption.schema)
            except SchemaUnusable as e:
                v = e
            self._validators[tool] = v
        if isinstance(v, SchemaUnusable):
            return f"the input schema of {tool!r} is unusable ({v}), so the gateway refuses every call to it"
        violation = check(v, args)
        if violation is None:
            return None
        return f"{violation.message} (schema {violation.pointer or '/'})"

    def request(self, grant: FixedGrant | None = None, server: str | None = None) -> Request:
        return Request(self.ctx, self.sorts, grant, server, self.schemas)

    def check(self, req: Request, formula, *, tool: str | None = None, witness: bool = False) -> Outcome:
        """Is `formula` satisfiable by some real call? With `witness`, decode a readable one for `tool`."""
        if formula is False:
            return Outcome("unsat")
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled()
        self.queries += 1
        s = z3.Solver(ctx=self.ctx)
        s.set("timeout", self.timeout_ms)
        if formula is not True:
            s.add(formula)
        s.add(*req.constraints())
        try:
            r = s.check()
        except z3.Z3Exception as e:  # pragma: no cover - defensive: never a traceback
            return Outcome("unknown", f"Z3 failed: {e}")
        if r == z3.unsat:
            return Outcome("unsat")
        if r == z3.unknown:
            why = s.reason_unknown()
            if why in ("timeout", "canceled", "max. resource limit exceeded"):
                return Outcome("unknown", f"the solver timed out after {self.timeout_ms} ms")
            return Outcome("unknown", f"the solver gave up ({why})")
        if not witness:
            return Outcome("sat")
        model = s.model()
        better = self._prefer(s, req)
        if better is not None:
            model = better
        w = Decoder(req, model).witness(tool or "?")
        why = self.nonconforming(w.tool, w.args)
        if why is not None:
            return Outcome("unknown", "the counterexample does not conform to the tool's inputSchema, which the gateway "
                           f"enforces: {why} (an analyzer bug: please report it)")
        return Outcome("sat", witness=w)

    def _prefer(self, s: z3.Solver, req: Request):
        """A model of `s` that also meets as many readability preferences as possible, or None."""
        ctx = self.ctx
        prefs = []
        if req.grant is None:
            prefs.append(req.gid == string_val("anonymous", ctx))
            prefs.append(req.label == string_val("", ctx))
            prefs += [z3.Not(b) for b in req.groups.values()]
        if req.server is None:
            prefs.append(req.sid == string_val("default", ctx))
        printable = z3.Star(z3.Range(string_val(" ", ctx), string_val("~", ctx)))
        for p, v in req.paths.items():
            if not p:
                continue
            prefs.append(z3.InRe(v.s, printable))  # (a length bound here costs 10x; Z3's strings are short anyway)
            prefs.append(z3.IsInt(v.n))
            prefs.append(z3.Length(v.items) <= 3)
            prefs.append(z3.Not(v.extra))
        prefs += [c == 0 for c in req.counters.values()]
        if not prefs:
            return None
        lits = [z3.Bool(f"prefer{i}", ctx) for i in range(len(prefs))]
        s.push()
        try:
            for lit, pref in zip(lits, prefs):
                s.add(z3.Implies(lit, pref))
            s.set("timeout", min(self.timeout_ms, PREFER_MS))
            active = list(lits)
            for _ in range(3):
                r = s.check(*active)
                if r == z3.sat:
                    return s.model()
                if r != z3.unsat:
                    return None
                core = {str(c) for c in s.unsat_core()}
                if not core:
                    return None
                active = [a for a in active if str(a) not in core]
            return None
        finally:
            s.pop()
            s.set("timeout", self.timeout_ms)
