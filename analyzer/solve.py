"""Running queries: one fresh Z3 context per analysis, a bound on every check, and
readable witnesses.

Every check goes through `bounded`: Z3's own timeout, and for a query whose regexes
hold a character class wider than `regex.WIDE_CLASS` (where Z3's regex derivatives
ignore the timeout and interrupts, measured running for minutes) a child process that
is killed at the deadline. Either way the answer is sat, unsat or UNKNOWN with the
reason; no check runs unbounded.

Readability is a preference, not a constraint: after a SAT answer the query is asked
again under assumption literals (server "default", grant "anonymous", no groups,
printable strings, whole numbers, short arrays, zero counters); the assumptions in the
unsat core are dropped and the rest kept. The first model is used if that fails.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import z3

from .encode import FixedGrant, FixedUser, Request
from .sym import AND, OR, Sorts, string_val, z
from .witness import Decoder, Replayer, Witness

T = TypeVar("T")

PREFER_MS = 250  # readability is worth a little time, not a slow analysis
MAX_LIVE_SOLVERS = 8  # incremental solvers kept per session (see Session.solver_for)


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


class OutOfTime(Exception):
    """A check was stopped at its deadline; `reason` says why, for an UNKNOWN."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


GRACE_MS = 500  # past Z3's own timeout, for the child to decode and send its answer
CAN_FORK = hasattr(os, "fork")


def bounded(solver: z3.Solver, then: Callable[[z3.CheckSatResult], T], *, budget_ms: int, isolate: bool = False,
            assumptions=(), cancel=None) -> T:
    """`then(solver.check(*assumptions))`, never running unbounded.

    In-process the solver's own timeout bounds the check. With `isolate` (a query Z3
    may not stop: see `regex.WIDE_CLASS`) the check and `then` run in a forked child,
    which shares the parent's Z3 objects copy-on-write and sends back `then`'s
    (picklable) value; past `budget_ms` + GRACE_MS the child is killed and OutOfTime is
    raised. Without fork (Windows) the check runs in-process."""
    if not (isolate and CAN_FORK):
        return then(solver.check(*assumptions))
    return _in_child(lambda: then(solver.check(*assumptions)), budget_ms + GRACE_MS, cancel)


def _in_child(job: Callable[[], T], deadline_ms: int, cancel=None) -> T:
    r, w = os.pipe()
    with warnings.catch_warnings():  # Python 3.12+ warns about fork in a threaded process; the child only runs `job`
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: one answer down the pipe, then exit without any of the parent's cleanup
        try:
            os.close(r)
            try:
                payload = pickle.dumps((True, job()))
            except BaseException as e:  # handed to the parent, which raises it
                try:
                    payload = pickle.dumps((False, e))
                except Exception:
                    payload = pickle.dumps((False, RuntimeError(f"{type(e).__name__}: {e}")))
            view = memoryview(payload)
            while view:
                view = view[os.write(w, view):]
        finally:
            os._exit(0)
    os.close(w)
    chunks: list[bytes] = []
    end = time.monotonic() + deadline_ms / 1000
    stop: BaseException | None = None
    try:
        while True:
            left = end - time.monotonic()
            if left <= 0:
                stop = OutOfTime(f"the solver did not stop at its timeout and was stopped after {deadline_ms} ms "
                                 f"(a regex with a character class of more than {_wide()} ranges)")
                break
            if cancel is not None and cancel.is_set():
                stop = Cancelled()
                break
            ready, _, _ = select.select([r], [], [], min(left, 0.1))
            if ready:
                chunk = os.read(r, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        if stop is not None:
            os.kill(pid, signal.SIGKILL)
        os.close(r)
        _, status = os.waitpid(pid, 0)
    if stop is not None:
        raise stop
    if not chunks:
        raise OutOfTime(f"the solver process ended without an answer (status {status})")
    ok, value = pickle.loads(b"".join(chunks))
    if ok:
        return value
    raise value


def _wide() -> int:
    from .regex import WIDE_CLASS

    return WIDE_CLASS


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
        self._live: OrderedDict[int, Request] = OrderedDict()  # requests with a live solver, least recent first
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

    def admit(self, tool: str, args) -> tuple[str | None, Any]:
        """(why the gateway would not forward the call, or None; the arguments it would
        decide and forward). In a typed analysis that is the gateway's admission: the call
        conforms, its tool's declared defaults are filled in (catalog/defaults.py), and the
        filled call conforms too; a witness is replayed and reported as the filled call."""
        why = self.nonconforming(tool, args)
        if why is not None or self.schemas is None:
            return why, args
        assumption = self.schemas.get(tool)
        filled = assumption.fill(args) if assumption is not None else args
        if filled is args:
            return None, args
        why = self.nonconforming(tool, filled)
        if why is not None:
            return f"the tool's declared default does not conform once filled in: {why}", args
        return None, filled

    def request(self, grant: FixedGrant | FixedUser | None = None, server: str | None = None) -> Request:
        return Request(self.ctx, self.sorts, grant, server, self.schemas, budget_ms=self.timeout_ms)

    def solve(self, solver: z3.Solver, then: Callable[[z3.CheckSatResult], T], *, isolate: bool = False,
              assumptions=(), extra_ms: int = 0) -> T:
        """Every check of an analysis: `bounded`, with this session's timeout (set on the
        solver here) and cancellation. Raises OutOfTime or Cancelled."""
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled()
        self.queries += 1
        if getattr(solver, "mcpp_timeout", None) != self.timeout_ms:  # setting parameters costs a millisecond
            solver.set("timeout", self.timeout_ms)
            solver.mcpp_timeout = self.timeout_ms
        return bounded(solver, then, budget_ms=self.timeout_ms + extra_ms, isolate=isolate, assumptions=assumptions,
                       cancel=self.cancel)

    def check(self, req: Request, formula, *, tool: str | None = None, witness: bool = False) -> Outcome:
        """Is `formula` satisfiable by some real call? With `witness`, decode a readable one for `tool`."""
        if formula is False:
            return Outcome("unsat")
        s = self.solver_for(req)
        lit = z3.FreshBool("query", self.ctx)  # this query, and only it, is assumed
        if formula is not True:
            s.add(z3.Implies(lit, formula))

        def then(r) -> Outcome:
            if r == z3.unsat:
                return Outcome("unsat")
            if r == z3.unknown:
                return Outcome("unknown", self.unknown_reason(s))
            if not witness:
                return Outcome("sat")
            model = s.model()  # before _prefer's checks replace it
            model = self._prefer(s, req, [lit]) or model
            w = Decoder(req, model).witness(tool or "?")
            why, w.args = self.admit(w.tool, w.args)
            if why is not None:
                return Outcome("unknown", "the counterexample does not conform to the tool's inputSchema, which the gateway "
                               f"enforces: {why} (an analyzer bug: please report it)")
            return Outcome("sat", witness=w)

        try:
            return self.solve(s, then, isolate=req.isolate, assumptions=[lit],
                              extra_ms=self.prefer_budget() if witness else 0)
        except OutOfTime as e:
            return Outcome("unknown", e.reason)
        except z3.Z3Exception as e:  # defensive: never a traceback
            return Outcome("unknown", f"Z3 failed: {e}")

    def solver_for(self, req: Request) -> z3.Solver:
        """The incremental solver of `req`: its well-formedness constraints asserted once,
        each query added as `query_i → formula` and checked under the assumption
        `query_i` (the other queries' literals are free, so their formulas constrain
        nothing). A fresh solver per query re-ran Z3's preprocessing over the whole
        request every time: 20x slower on a lint of 1,000 rules. When the request has
        tracked more since (new paths change the constraints), a new solver."""
        cons = req.constraints()
        shape = req.shape()
        key = id(req)
        if req.solver is not None and req.solver[0] == shape and key in self._live:
            self._live.move_to_end(key)
            return req.solver[1]
        s = z3.Solver(ctx=self.ctx)
        s.add(*cons)
        req.solver = (shape, s)
        # a solver holds its own copy of everything it learnt: keep the most recently used
        # few alive (a lint visits the tools lint by lint), not one per tool of a large
        # policy (1,000 live solvers took 11 GB on a 5,000-rule lint)
        self._live[key] = req
        self._live.move_to_end(key)
        while len(self._live) > MAX_LIVE_SOLVERS:
            _, old = self._live.popitem(last=False)
            old.solver = None
        return s

    def which_sat(self, req: Request, formulas: list) -> list[str | None]:
        """For each formula, "sat" or "unsat" over `req` where a few shared checks settle
        it, else None (then ask it alone with `check`). One model of the disjunction of
        the open formulas shows every formula it satisfies (evaluated in that model,
        completed) satisfiable; an unsatisfiable disjunction shows each unsatisfiable.
        Either way the answer is the one `check` would give: a lint asking "can this rule
        apply?" for every rule of a tool pays two or three checks instead of one per rule.
        Raises Cancelled like `check`."""
        ctx = self.ctx
        out: list[str | None] = [None] * len(formulas)
        for i, f in enumerate(formulas):
            if f is False:
                out[i] = "unsat"
        todo = [i for i, v in enumerate(out) if v is None]
        if not todo:
            return out
        s = self.solver_for(req)
        while todo:
            lit = z3.FreshBool("batch", ctx)
            s.add(z3.Implies(lit, z(ctx, OR(ctx, *(formulas[i] for i in todo)))))

            def then(r, todo=todo):
                if r != z3.sat:
                    return str(r), []
                m = s.model()
                return "sat", [i for i in todo if z3.is_true(m.eval(z(ctx, formulas[i]), model_completion=True))]

            try:
                status, hits = self.solve(s, then, isolate=req.isolate, assumptions=[lit])
            except (OutOfTime, z3.Z3Exception):
                break  # left to `check`, which reports it
            if status == "unsat":
                for i in todo:
                    out[i] = "unsat"
                break
            if status != "sat" or not hits:
                break
            for i in hits:
                out[i] = "sat"
            todo = [i for i in todo if out[i] is None]
        return out

    def prefer_budget(self) -> int:
        """The longest `_prefer` can take: three checks of at most PREFER_MS each."""
        return 3 * min(self.timeout_ms, PREFER_MS)

    def unknown_reason(self, s: z3.Solver) -> str:
        why = s.reason_unknown()
        if why in ("timeout", "canceled", "max. resource limit exceeded"):
            return f"the solver timed out after {self.timeout_ms} ms"
        return f"the solver gave up ({why})"

    def _prefer(self, s: z3.Solver, req: Request, assumed=()):
        """A model of `s` under the assumptions `assumed` that also meets as many
        readability preferences as possible, or None."""
        ctx = self.ctx
        key = (req.shape(), len(req.groups))
        cached = req.preferences
        if cached is not None and cached[0] == key:  # built once per request shape: building costs more than checking
            prefs, lits = cached[1]
        else:
            prefs = []
            if req.grant is None:
                if req.user is not None:  # a user reads as User::"u1", a grant as anonymous
                    prefs.append(z3.If(req.user, req.gid == string_val("u1", ctx), req.gid == string_val("anonymous", ctx)))
                else:
                    prefs.append(req.gid == string_val("anonymous", ctx))
                prefs.append(req.label == string_val("", ctx))
                prefs += [z3.Not(b) for b in req.groups.values()]
                prefs += _user_prefs(req)
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
            lits = [z3.Bool(f"prefer{i}", ctx) for i in range(len(prefs))]
            req.preferences = (key, (prefs, lits))
        if not prefs:
            return None
        s.push()
        try:
            for lit, pref in zip(lits, prefs):
                s.add(z3.Implies(lit, pref))
            s.set("timeout", min(self.timeout_ms, PREFER_MS))
            active = list(lits)
            for _ in range(3):
                r = s.check(*assumed, *active)
                if r == z3.sat:
                    return s.model()
                if r != z3.unsat:
                    return None
                core = {c.get_id() for c in s.unsat_core()}  # ids, not printed names: printing costs more than the check
                if not core:
                    return None
                active = [a for a in active if a.get_id() not in core]
            return None
        finally:
            s.pop()
            s.set("timeout", self.timeout_ms)


def _user_prefs(req: Request) -> list:
    """Readable users: printable strings, whole small numbers, short sets whose first
    elements have the declared type (the encoding does not force it: see
    `ProgramEncoder.USER_REASON`), no group nobody names."""
    ctx = req.ctx
    E = req.S.Elem
    out = []
    printable = z3.Star(z3.Range(string_val(" ", ctx), string_val("~", ctx)))
    for key, (present, sv) in req.user_attrs.items():
        t = key.split(":", 1)[1]
        (alt,) = sv.alts
        if t == "String":
            out.append(z3.InRe(alt.val, printable))
        elif t == "Long":
            out.append(AND(ctx, alt.val >= -1000000, alt.val <= 1000000))
        elif t.startswith("Set<"):
            items = alt.val.var.items
            out.append(z3.Length(items) <= 3)
            test = {"Set<String>": E.is_estr, "Set<Long>": E.is_enum, "Set<Bool>": E.is_ebool}[t]
            for i in range(3):
                out.append(z3.Implies(z3.Length(items) > i, test(items[i])))
                if t == "Set<String>":
                    out.append(z3.Implies(z3.Length(items) > i, z3.InRe(E.es(items[i]), printable)))
                if t == "Set<Long>":
                    out.append(z3.Implies(z3.Length(items) > i, z3.IsInt(E.en(items[i]))))
    if req.user_in_groups is not None:
        out.append(z3.Not(req.user_in_groups))
    return out
