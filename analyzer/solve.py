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
from typing import Any, Callable, Sequence, TypeVar

import z3
from z3 import z3core

from mcpp.catalog.defaults import FillTooLarge

from .deadline import Deadline
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
DEADLINE_GRACE_MS = 100  # the same when the run's deadline set the timeout: the run is over, not the query
CAN_FORK = hasattr(os, "fork")


def bounded(solver: z3.Solver, then: Callable[[z3.CheckSatResult], T], *, budget_ms: int, isolate: bool = False,
            assumptions=(), cancel=None, grace_ms: int = GRACE_MS) -> T:
    """`then(solver.check(*assumptions))`, never running unbounded.

    In-process the solver's own timeout bounds the check. With `isolate` (a query Z3
    may not stop: see `regex.WIDE_CLASS`) the check and `then` run in a forked child,
    which shares the parent's Z3 objects copy-on-write and sends back `then`'s
    (picklable) value; past `budget_ms` + GRACE_MS the child is killed and OutOfTime is
    raised. Without fork (Windows) the check runs in-process."""
    if not (isolate and CAN_FORK):
        return then(solver.check(*assumptions))
    return _in_child(lambda: then(solver.check(*assumptions)), budget_ms + grace_ms, cancel)


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


_FILLED = object()  # Session.violation: the witness conformed as sent, not once its defaults were filled in

# JSON Schema keywords the typed encoding reads exactly (analyzer/typed.py), and those
# under which it widens: a witness failing one of the first, outside the second, is a bug
_EXACT_KEYWORDS = frozenset({"type", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                             "minLength", "maxLength", "minItems", "maxItems", "required"})
_WIDENING = frozenset({"allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependentSchemas", "dependencies",
                       "patternProperties", "items", "prefixItems", "additionalItems", "unevaluatedProperties",
                       "unevaluatedItems", "contains", "propertyNames", "$defs", "definitions"})

class Session:
    """One analysis: its own Z3 context (never shared between threads) and a per-query
    timeout. `cancel` (a threading.Event) stops it between queries. `deadline` (shared
    by every session of a run: analyzer/deadline.py) caps each query's timeout by what
    is left of the run; once it has passed, every check raises OutOfTime at once."""

    def __init__(self, timeout_ms: int = 2000, cancel=None, schemas: dict | None = None,
                 deadline: Deadline | None = None):
        self.cancel = cancel
        self.deadline = deadline
        self.schemas = schemas  # typed calls (analyzer/typed.py): tool → SchemaAssumption
        self.ctx = z3.Context()
        self.sorts = Sorts(self.ctx)
        self.timeout_ms = max(1, int(timeout_ms))
        self.replayer = Replayer()
        self.queries = 0
        self._live: OrderedDict[int, Request] = OrderedDict()  # requests with a live solver, least recent first
        self._validators: dict = {}
        self.violation: Any = None  # the last witness check's failure, a conformance.Violation (`_why_unconfirmed`)

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
        try:
            violation = check(v, args)
        except SchemaUnusable as e:
            return f"the input schema of {tool!r} is unusable ({e}), so the gateway refuses every call to it"
        self.violation = violation
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
        try:
            filled = assumption.fill(args) if assumption is not None else args
        except FillTooLarge as e:  # the gateway refuses such a call (invalid_default)
            self.violation = _FILLED
            return f"the tool's declared defaults are too large to fill in: {e}", args
        if filled is args:
            return None, args
        why = self.nonconforming(tool, filled)
        if why is not None:
            self.violation = _FILLED  # the call conformed as sent: the filling broke it (`_why_unconfirmed`)
            return f"the tool's declared default does not conform once filled in: {why}", args
        return None, filled

    def request(self, grant: FixedGrant | FixedUser | None = None, server: str | None = None) -> Request:
        return Request(self.ctx, self.sorts, grant, server, self.schemas, budget_ms=self.timeout_ms,
                       deadline=self.deadline)

    def expired(self) -> str | None:
        """The run's deadline has passed: why (for an UNKNOWN), else None."""
        if self.deadline is not None and self.deadline.expired():
            return self.deadline.reason
        return None

    def query_ms(self, ms: int | None = None) -> int:
        """A query's timeout (`ms`, by default the session's), capped by the run's deadline."""
        ms = self.timeout_ms if ms is None else ms
        return ms if self.deadline is None else self.deadline.cap(ms)

    def _start_query(self) -> None:
        """Count a query about to run, unless the run was cancelled (Cancelled) or its
        deadline has passed (OutOfTime): no query starts after either."""
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled()
        late = self.expired()
        if late is not None:
            raise OutOfTime(late)
        self.queries += 1

    def solve(self, solver: z3.Solver, then: Callable[[z3.CheckSatResult], T], *, isolate: bool = False,
              assumptions=(), extra_ms: int = 0) -> T:
        """Every check of an analysis: `bounded`, with this session's timeout (set on the
        solver here) and cancellation. Raises OutOfTime or Cancelled."""
        self._start_query()
        ms = self.query_ms()
        # a timeout the deadline shortened reads as the deadline's (`unknown_reason`)
        capped = solver.mcpp_capped = ms < self.timeout_ms
        self._set_timeout(solver, ms)
        if extra_ms:
            extra_ms = max(0, self.query_ms(ms + extra_ms) - ms)
        try:
            return bounded(solver, then, budget_ms=ms + extra_ms, isolate=isolate, assumptions=assumptions,
                           cancel=self.cancel, grace_ms=DEADLINE_GRACE_MS if capped else GRACE_MS)
        except OutOfTime:
            if capped:  # killed at the run's deadline, not at the query's own timeout
                raise OutOfTime(self.deadline.reason if self.deadline is not None else "") from None
            raise

    def check(self, req: Request, formula, *, tool: str | None = None, witness: bool = False,
              likely: bool = False) -> Outcome:
        """Is `formula` satisfiable by some real call? With `witness`, decode a readable one for `tool`.

        `likely` (with `witness`): the caller expects a witness, so the readable one is
        asked for first (`_preferred`), which settles most such queries in one check
        instead of a plain check and then the preferences; the answer is the same."""
        if formula is False:
            return Outcome("unsat")
        late = self.expired()
        if late is not None:  # before the formula is asserted: asserting a large regex costs time too
            return Outcome("unknown", late)
        s = self.solver_for(req)
        lit = z3.FreshBool("query", self.ctx)  # this query, and only it, is assumed
        if formula is not True:
            s.add(z3.Implies(lit, formula))
        try:
            return self._check(s, req, lit, tool, witness, likely)
        finally:
            _retire(s, lit)

    def _check(self, s: z3.Solver, req: Request, lit, tool: str | None, witness: bool, likely: bool) -> Outcome:
        prefer = witness
        if witness and likely:
            try:
                first = self._preferred(s, req, lit, tool)
            except OutOfTime:  # isolated and killed: the plain check below has its own budget
                first = None
            except z3.Z3Exception as e:  # defensive: never a traceback
                return Outcome("unknown", f"Z3 failed: {e}")
            if isinstance(first, Outcome):
                return first
            prefer = first is None  # "exhausted": the preferences were tried, keep the first model

        def then(r) -> Outcome:
            if r == z3.unsat:
                return Outcome("unsat")
            if r == z3.unknown:
                return Outcome("unknown", self.unknown_reason(s))
            if not witness:
                return Outcome("sat")
            model = s.model()  # before _prefer's checks replace it
            if prefer:
                model = self._prefer(s, req, [lit]) or model
            return self._witness(req, model, tool)

        try:
            return self.solve(s, then, isolate=req.isolate, assumptions=[lit],
                              extra_ms=self.prefer_budget() if prefer else 0)
        except OutOfTime as e:
            return Outcome("unknown", e.reason)
        except z3.Z3Exception as e:  # defensive: never a traceback
            return Outcome("unknown", f"Z3 failed: {e}")

    def _witness(self, req: Request, model, tool: str | None) -> Outcome:
        w = Decoder(req, model).witness(tool or "?")
        self.violation = None
        why, w.args = self.admit(w.tool, w.args)
        if why is not None:
            return Outcome("unknown", "the counterexample does not conform to the tool's inputSchema, which the gateway "
                           f"enforces: {why}{self._why_unconfirmed(w.tool)}")
        return Outcome("sat", witness=w)

    def _why_unconfirmed(self, tool: str) -> str:
        """Why the encoding's call was not one the gateway forwards. The encoding widens
        what it does not read exactly (analyzer/typed.py), so a witness that does not
        conform is expected where the schema is unmodelled, where the failing keyword is
        one the encoding does not read, or where a declared default makes the filled call
        invalid (catalog/defaults.py reports it: `unfilled-default`); only a keyword it
        reads exactly, outside any combinator, failing is an analyzer bug."""
        a = self.schemas.get(tool) if self.schemas is not None else None
        if a is None:
            return ""
        if a.unmodelled:
            return f"; the analysis reads nothing of this tool's schema ({a.unmodelled}), so it cannot confirm a call"
        refused = [c for c in a.caveats if c.kind == "refused"]
        if self.violation is _FILLED:
            where = f" for `{refused[0].where}`" if refused else ""
            return (f"; the call conformed as sent, and the tool's declared default{where} makes it invalid once filled "
                    "in (the gateway refuses it: `invalid_default`), which the analysis does not model")
        if refused:
            return (f"; the tool's declared default for `{refused[0].where}` makes calls that omit it invalid (`mcpp lint`: "
                    "unfilled-default), which the analysis does not model")
        v = self.violation
        tokens: list[str] = v.pointer.split("/")[1:] if v is not None else []
        keyword = tokens[-1] if tokens else ""
        if keyword in _EXACT_KEYWORDS and not (set(tokens[:-1]) & _WIDENING):
            return " (an analyzer bug: please report it)"
        return f"; the analysis does not model `{keyword or '?'}` here ({v.pointer if v else '/'}), so it found no conforming call"

    def _preferred(self, s: z3.Solver, req: Request, lit, tool: str | None) -> Outcome | str | None:
        """The query `lit` asked with the readability preferences assumed from the start:
        `_prefer`'s rounds (each unsat core's preferences dropped, at most three checks of
        PREFER_MS) without the plain check before them. A model is the witness; a core
        with no preference in it proves the query unsatisfiable (the preferences are only
        assumed). Otherwise "exhausted" (the rounds ran out: the plain check decides and
        its first model is kept) or None (a check ran out of time or there are no
        preferences: the plain check and `_prefer` as usual)."""
        prefs, lits, guarded = self._preferences(req)
        if not prefs:
            return None
        self._start_query()

        def job() -> Outcome | str | None:
            s.push()  # the preferences, each behind its own literal, for this query only
            try:
                _assert(s, guarded)
                self._set_timeout(s, self.query_ms(min(self.timeout_ms, PREFER_MS)))
                active = list(lits)
                for _ in range(3):
                    r = s.check(lit, *active)
                    if r == z3.sat:
                        return self._witness(req, s.model(), tool)
                    if r != z3.unsat:
                        return None
                    core = {c.get_id() for c in s.unsat_core()}  # ids: printing costs more than the check
                    kept = [a for a in active if a.get_id() not in core]
                    if len(kept) == len(active):
                        return Outcome("unsat")  # without any preference: the query itself
                    active = kept
                return "exhausted"
            finally:
                s.pop()

        if not (req.isolate and CAN_FORK):
            return job()
        return _in_child(job, self.prefer_budget() + GRACE_MS, self.cancel)

    def _set_timeout(self, s: z3.Solver, ms: int) -> None:
        if getattr(s, "mcpp_timeout", None) != ms:  # setting parameters costs a millisecond
            s.set("timeout", ms)
            s.mcpp_timeout = ms

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

    def release(self, req: Request) -> None:
        """Free `req`'s incremental solver now (a caller done with a request); a later
        check over it builds a new one."""
        if self._live.pop(id(req), None) is not None:
            req.solver = None

    def which_sat(self, req: Request, formulas: list, together: Sequence[list[int]] = ()) -> list[str | None]:
        """For each formula, "sat" or "unsat" over `req` where a few shared checks settle
        it, else None (then ask it alone with `check`). Either way the answer is the one
        `check` would give: a lint asking a dozen questions about a tool pays two or three
        checks instead of one per question. Raises Cancelled like `check`.

        Every model found shows each open formula true in it (evaluated in the model,
        completed) satisfiable. First, each group of `together` (indices of formulas that
        tend to hold at once) is asked as a conjunction: one check settles the whole group
        when it holds (a group of one either way), and its model is read only for the
        formulas in no group. Then, while formulas are open, one model of their
        disjunction; an unsatisfiable disjunction shows each of them unsatisfiable. A
        check that runs out of time leaves its formulas open."""
        ctx = self.ctx
        out: list[str | None] = [None] * len(formulas)
        for i, f in enumerate(formulas):
            if f is False:
                out[i] = "unsat"
        todo = [i for i, v in enumerate(out) if v is None]
        if not todo or self.expired() is not None:  # past the deadline: `check` reports each as UNKNOWN
            return out
        s = self.solver_for(req)

        def ask(formula, read: list[int]) -> tuple[str, list[int]]:
            """Check `formula`; when sat, which of `read` the model makes true."""
            lit = z3.FreshBool("batch", ctx)
            s.add(z3.Implies(lit, z(ctx, formula)))

            def then(r):
                if r != z3.sat:
                    return str(r), []
                if not read:
                    return "sat", []
                m = s.model()
                return "sat", [i for i in read if z3.is_true(m.eval(z(ctx, formulas[i]), model_completion=True))]

            try:
                return self.solve(s, then, isolate=req.isolate, assumptions=[lit])
            finally:
                _retire(s, lit)

        grouped = {i for group in together for i in group}
        for group in together:
            group = [i for i in group if out[i] is None]
            if not group:
                continue
            try:
                # a model is read only for the formulas no group asks for (the rest get
                # their own conjunction): taking it out of Z3 costs half a check
                status, hits = ask(AND(ctx, *(formulas[i] for i in group)),
                                   [i for i in todo if i not in grouped])
            except (OutOfTime, z3.Z3Exception):
                continue  # the disjunctions below may still settle them
            if status == "sat":
                hits += group
            elif status == "unsat" and len(group) == 1:  # a conjunction of one: the formula itself
                out[group[0]] = "unsat"
            for i in hits:
                out[i] = "sat"
            todo = [i for i in todo if out[i] is None]
        while todo:
            try:
                status, hits = ask(OR(ctx, *(formulas[i] for i in todo)), todo)
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
        """The longest `_prefer` can take: three checks of at most PREFER_MS each (capped by the deadline)."""
        return self.query_ms(3 * min(self.timeout_ms, PREFER_MS))

    def unknown_reason(self, s: z3.Solver) -> str:
        why = s.reason_unknown()
        if why in ("timeout", "canceled", "max. resource limit exceeded"):
            if self.deadline is not None and (getattr(s, "mcpp_capped", False) or self.deadline.expired()):
                return self.deadline.reason
            return f"the solver timed out after {self.timeout_ms} ms"
        return f"the solver gave up ({why})"

    def _prefer(self, s: z3.Solver, req: Request, assumed=()):
        """A model of `s` under the assumptions `assumed` that also meets as many
        readability preferences as possible, or None."""
        prefs, lits, guarded = self._preferences(req)
        if not prefs or self.expired() is not None:  # out of time: the first model will do
            return None
        s.push()
        try:
            _assert(s, guarded)
            self._set_timeout(s, self.query_ms(min(self.timeout_ms, PREFER_MS)))
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

    def _preferences(self, req: Request) -> tuple[list, list, list]:
        """(preferences, their assumption literals, `literal → preference` for each) for
        `req`: built once per request shape (building costs more than checking)."""
        ctx = self.ctx
        key = (req.shape(), len(req.groups))
        cached = req.preferences
        if cached is not None and cached[0] == key:
            prefs, lits, guarded = cached[1]
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
            cache = self.sorts.cache  # a path's preferences are the same terms in every request
            for p, v in req.paths.items():
                if not p:
                    continue
                hit = cache.get(("prefer", v.name))
                if hit is None:
                    printable = cache.get("printable")
                    if printable is None:
                        printable = cache["printable"] = z3.Star(z3.Range(string_val(" ", ctx), string_val("~", ctx)))
                    hit = cache[("prefer", v.name)] = [
                        z3.InRe(v.s, printable),  # (a length bound here costs 10x; Z3's strings are short anyway)
                        z3.IsInt(v.n), z3.Length(v.items) <= 3, z3.Not(v.extra)]
                prefs += hit
            prefs += [c == 0 for c in req.counters.values()]
            lits, guarded = [], []
            for pref in prefs:  # one literal per preference term, in every request of the session
                hit = cache.get(("guard", pref.get_id()))
                if hit is None:
                    lit = z3.FreshBool("prefer", ctx)
                    hit = cache[("guard", pref.get_id())] = (lit, z3.Implies(lit, pref))
                lits.append(hit[0])
                guarded.append(hit[1])
            req.preferences = (key, (prefs, lits, guarded))
        return prefs, lits, guarded


def _retire(s: z3.Solver, lit) -> None:
    """A query's literal, once it is answered, is asserted false: `lit → formula` then
    constrains nothing (as before, its literal being free), and Z3 stops carrying the
    formula into later checks — it had kept choosing old literals true (it reuses the
    last model's values) and solving their formulas again, which made the checks that
    followed a batch 3–4 times slower."""
    z3core.Z3_solver_assert(s.ctx.ref(), s.solver, z3core.Z3_mk_not(s.ctx.ref(), lit.as_ast()))


def _assert(s: z3.Solver, terms: list) -> None:
    """`s.add(*terms)` for terms already built in the solver's context, without the
    bindings' per-term coercions (a witness query asserts two dozen preferences)."""
    ctx, solver = s.ctx.ref(), s.solver
    for t in terms:
        z3core.Z3_solver_assert(ctx, solver, t.as_ast())


def _user_prefs(req: Request) -> list:
    """Readable users: printable strings, small numbers, short sets of such elements, no
    group nobody names."""
    ctx = req.ctx
    out = []
    printable = z3.Star(z3.Range(string_val(" ", ctx), string_val("~", ctx)))
    for key, (present, sv) in req.user_attrs.items():
        t = key.split(":", 1)[1]
        (alt,) = sv.alts
        if t == "String":
            out.append(z3.InRe(alt.val, printable))
        elif t == "Long":
            out.append(AND(ctx, alt.val >= -1000000, alt.val <= 1000000))
        elif t in ("Set<String>", "Set<Long>"):
            us = alt.val
            out.append(us.length <= 3)
            for i in range(3):
                x = us.seq[i]
                small = z3.InRe(x, printable) if us.elem == "str" else AND(ctx, x >= -1000000, x <= 1000000)
                out.append(z3.Implies(us.length > i, small))
        elif t == "Set<Bool>":
            out.append(alt.val.length <= 2)
    if req.user_in_groups is not None:
        out.append(z3.Not(req.user_in_groups))
    return out
