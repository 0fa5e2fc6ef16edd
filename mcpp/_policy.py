"""`mcpp.load_policy` and `mcpp.Policy`: a policy as a library, without a gateway.

A `Policy` wraps the decision engine (`mcpp.runtime.engine.Engine`) of one loaded
program, so `Policy.decide` is exactly what `mcpp serve` and `mcpp eval` decide. The
analyzer (Z3) is imported only by the methods that prove things (`verify`, `visible`,
`diff`), so deciding calls never loads it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from datetime import datetime
from typing import TYPE_CHECKING, Any, Union

from mcpp.lang.diagnostics import Diagnostic as LangDiagnostic, MCPPError, Span as LangSpan
from mcpp.lang.jsontext import TOO_DEEP, NotJSONText, arguments_too_deep, as_read, unsafe_integer
from mcpp.lang.stack import NoFreshStack, TooDeepAnywhere, less_stack_than, on_fresh_stack, retry_on_fresh_stack
from mcpp.runtime.engine import Engine, Grant, User
from mcpp.runtime.limits import CounterStore, MemoryCounters

from ._errors import CompileError, PolicyValidationError, from_mcpp_error
from ._types import AssertResult, Caveat, Decision, Diagnostic, Explanation, Replayed, ToolDiff, UserDeclaration

MAX_TOOL_NAME = 128  # MCP: tool names are 1 to 128 characters (the gateway refuses others with 400)

# Python frames a decision may need below `sys.getrecursionlimit()`. Measured: arguments 64
# levels deep under a recursive `$ref` (jsonschema, four frames a level) take 256; the first
# call to a tool whose definition nests 62 levels (compiling it) 306; the same arguments
# without a catalog 66; a condition nested 190 levels 6. A caller deeper than the limit
# less this is refused up front, the same way every time (hostile review 24, F3, F10: from
# 700 to 990 frames deep the API denied calls the gateway allows, or raised).
STACK_HEADROOM = 400
STACK_TOO_DEEP = (f"the call was not decided: it came from too deep in the Python stack (mcpp needs {STACK_HEADROOM} "
                  "frames below sys.getrecursionlimit(); call from a shallower stack, or raise the limit)")


def _stack_too_deep() -> bool:
    return less_stack_than(STACK_HEADROOM)

if TYPE_CHECKING:
    from mcpp.analyzer.deadline import Deadline  # (deciding never loads the analyzer)
    from mcpp.catalog import Catalog
    from mcpp.lang.program import Program

__all__ = ["CedarPolicies", "Checked", "Policy", "Principal", "check", "decompile", "diff", "format_policy", "lint_names",
           "load_policy", "replay"]

Principal = Union[Grant, User, str]
"""Who makes a call: a `Grant` (id, label, groups), a grant id as a string, or a `User`
(an authenticated user: id, attributes from its token's claims, groups), which the
policy's `entity User` declaration types."""

PolicySource = Union[str, "os.PathLike[str]", bytes]
CatalogSource = Union[str, "os.PathLike[str]", "Catalog"]


def _is_text(source: str) -> bool:
    """A `str` is policy text (not a path) when it could not be a file name: it has a line
    break or a `;` (every .mcpp statement ends with one), it is a JSON object, or it is
    empty (an empty policy: everything denied)."""
    return "\n" in source or ";" in source or source.lstrip().startswith("{") or not source.strip()


def load_policy(
    source: PolicySource,
    *,
    catalog: CatalogSource | None = None,
    counters: CounterStore | None = None,
    filename: str | None = None,
    namespace: str = "default",
) -> Policy:
    """Load a policy from a file (a `Path`, or a `str` naming one), from its text, or
    from a file's content as `bytes` (UTF-8; what a caller that also hashes or caches
    the file read — the gateway does both).

    `.json` files and text starting with `{` are the JSON form; anything else is .mcpp
    (text or bytes given a `filename` are read by its name first, as the file would be:
    `*.json` is the JSON form, `*.mcpp` is .mcpp).
    `catalog` (a catalog file or a loaded `mcpp.catalog.Catalog`) is checked against the
    policy the way `mcpp check --catalog` does and kept as `Policy.catalog`; `decide` and
    `explain` then admit each call as the gateway does before it decides (docs/gateway.md,
    "Typed calls"): arguments that break the tool's schema get the gateway's refusal, and
    the tool's declared defaults are filled in. `counters`
    is where limits count (default: in this process's memory; see `SQLiteCounters`,
    `RedisCounters`), under keys that start with `namespace` (policies sharing a store
    count apart unless they share a namespace). `filename` names text in diagnostics and
    spans (default `<input>`). Raises a `PolicyError` subclass with every problem found."""
    text, name, json_form = _read(source, filename)
    if not isinstance(namespace, str):
        raise TypeError(f"namespace must be a string, not {type(namespace).__name__}")
    # loading recurses (the parser's tree, validation, a catalog's schemas): a policy that
    # loads from an empty stack raised RecursionError from a deep one. One that runs out of
    # stack is loaded again from an empty stack, and answers as it would anywhere
    try:
        return retry_on_fresh_stack(lambda: Policy._load(text, name, json_form, catalog=catalog, counters=counters,
                                                         namespace=namespace))
    except TooDeepAnywhere:
        # (every reader bounds what it reads; what still runs out from an empty stack — a
        # hand-built `Catalog` whose schema nests thousands of levels, hostile review 29, F9 —
        # is the input's fault, and an error like any other)
        raise from_mcpp_error(MCPPError([LangDiagnostic(
            "the policy or its catalog nests too deeply to load", LangSpan(0, 0, 0, 0), "error", "catalog" if catalog
            is not None else "json", name)])) from None


def _read(source: PolicySource, filename: str | None) -> tuple[str, str, bool]:
    """(text, the name diagnostics give it, whether it is the JSON form) of a policy source."""
    from mcpp.lang.load import is_json, read_text

    if isinstance(source, os.PathLike) or (isinstance(source, str) and not _is_text(source)):
        path = os.fspath(source)
        try:
            text = read_text(path)
        except MCPPError as e:
            raise from_mcpp_error(e, file_error=True) from None
        name = filename or str(path)
        json_form = is_json(path, text)
    elif isinstance(source, (str, bytes)):
        name = filename or "<input>"
        if isinstance(source, bytes):
            try:
                text = source.decode("utf-8")
            except UnicodeDecodeError as e:
                err = MCPPError([LangDiagnostic(f"not UTF-8 text ({e.reason})", _NOWHERE, file=name)])
                raise from_mcpp_error(err, file_error=True) from None
        else:
            text = source
        json_form = is_json(name, text)  # `<input>`: text starting with `{`
    else:
        raise TypeError(f"a policy is a path, policy text or bytes, not {type(source).__name__}")
    return text, name, json_form


class Policy:
    """One loaded policy. Thread-safe: deciding keeps no per-call state except the
    limit counters, which live in the counter store."""

    def __init__(self, program: Program, *, counters: CounterStore | None = None,
                 catalog: Catalog | None = None, warnings: Iterable[Diagnostic] = (),
                 namespace: str = "default") -> None:
        """Use `load_policy`. This wraps a program the toolchain already built — the
        language server's, parsed incrementally as the user types — so that such a
        tool decides and proves through the same methods as everyone else."""
        self._program = program
        self._store: CounterStore = counters if counters is not None else MemoryCounters()
        self._namespace = namespace
        self._filename = program.filename if program.origin == "mcpp" else None  # the JSON form has no source spans
        self.catalog = catalog
        self.warnings: tuple[Diagnostic, ...] = tuple(warnings)
        # the public decision of each shared engine decision (see `decide`)
        self._decisions: dict[int, tuple[Any, Decision]] = {}
        self._tools: frozenset[str] | None = None
        self._admission: tuple[Any, Any] | None = None  # (the catalog, its CatalogAdmission): `_admitted`

    @classmethod
    def _load(cls, text: str, name: str, json_form: bool, *, catalog=None, counters=None,
              namespace: str = "default") -> Policy:
        try:
            if json_form:
                from mcpp.lang.jsonform import load_program as load_json

                program = load_json(text, name)
                diags: list[LangDiagnostic] = []
            else:
                from mcpp.lang.program import check_source

                program, diags = check_source(text, name)
                errors = [d for d in diags if d.severity == "error"]
                if errors:
                    raise MCPPError(errors, text)
            cat = _catalog(catalog)
            if cat is not None:
                from mcpp.catalog import validate

                more = validate(program, cat)
                errors = [d for d in more if d.severity == "error"]
                if errors:
                    raise MCPPError(errors, text)
                diags = diags + more
        except MCPPError as e:
            raise from_mcpp_error(e) from None
        policy = cls(program, counters=counters, catalog=cat, warnings=(Diagnostic._of(d) for d in diags),
                     namespace=namespace)
        policy._engine  # compiled now, so that the first decision pays nothing
        return policy

    @cached_property
    def _engine(self) -> Engine:
        """The decision engine, compiled on first use: `load_policy` compiles it at once;
        a policy wrapped only to be proved (the language server's analysis) never needs it."""
        return Engine(self._program, self._store, self._namespace)

    # -- what it is ---------------------------------------------------------------------
    @property
    def filename(self) -> str:
        """The file it was loaded from (or the `filename` given with its text)."""
        return self._program.filename

    @property
    def origin(self) -> str:
        """`mcpp` (source text) or `json` (the JSON form)."""
        return self._program.origin

    @property
    def counters(self) -> CounterStore:
        """The store limits count in when `decide` is given none."""
        return self._store

    @property
    def limited(self) -> bool:
        """Whether the policy has any `limit`: without one, `decide` never touches the
        counter store (a gateway need not prepare one for the call)."""
        return bool(self._program.limits)

    @property
    def namespace(self) -> str:
        """The prefix of this policy's counter keys (`load_policy(namespace=…)`)."""
        return self._namespace

    @property
    def tools(self) -> frozenset[str]:
        """Every tool the policy names: in scopes, `hide`, limits, assertions, conditions
        and action groups. Any other tool is decided by the policy's default."""
        if self._tools is None:
            self._tools = frozenset(self._program.named_tools())
        return self._tools

    @property
    def user_declaration(self) -> UserDeclaration | None:
        """The policy's `entity User` declaration (None: it declares none, so a `User`
        principal has no attributes and may be in any groups)."""
        decl = self._program.user_decl
        return UserDeclaration._of(decl, self._filename) if decl is not None else None

    def named_catalog(self) -> Catalog | None:
        """The catalog the policy names — its `@catalog("…")` annotation, else the
        `catalog` of the nearest `mcpp.toml` above its file — loaded; None when it names
        none. Raises `CatalogError` when the named catalog cannot be used."""
        from mcpp.catalog import find_catalog_for

        try:
            return find_catalog_for(self.filename, self._program)
        except MCPPError as e:
            raise from_mcpp_error(e) from None

    def catalog_problems(self) -> list[Diagnostic]:
        """The policy checked against the catalog it names (`mcpp check` does the same):
        its unknown tools and arguments, errors and warnings — or, when the named catalog
        cannot be used, one error at the annotation (or `mcpp.toml`) that names it. Empty
        when it names none."""
        from mcpp.catalog import catalog_diagnostics

        return [Diagnostic._of(d) for d in catalog_diagnostics(self.filename, self._program)]

    # -- deciding -----------------------------------------------------------------------
    def decide(
        self,
        tool: str,
        arguments: dict[str, Any] | None = None,
        *,
        principal: Principal | None = None,
        server: str | None = None,
        now: float | datetime | None = None,
        counters: CounterStore | None = None,
        dry_run: bool = False,
        approved: bool = False,
        from_json: bool = False,
    ) -> Decision:
        """Decide one `tools/call`: `tool` with its JSON `arguments`, made by `principal`
        (default: the anonymous grant) on `server` (default `"default"`).

        What is decided is the call as the gateway reads it: `tool` and `arguments` are
        written as JSON and read back first (a tuple is an array, an `Enum` its value, a
        subclass the plain type, a key `1` the string "1"), and a call no JSON text can
        carry (NaN, ±Infinity, a lone surrogate, anywhere) or whose tool name is not 1 to
        128 characters is denied, rule `/request`, as the gateway refuses it.
        Arguments nested deeper than 64 levels of objects and arrays are denied the same
        way. `from_json=True` says they are already what a JSON reader returned and the
        gateway's reading refused (the gateway's own case: it read them from the request,
        and refused NaN and arguments nested too deep there), and skips the round trip
        and the nesting check.

        Never raises for a bad call: anything that cannot be decided is denied, with the
        reason in the message (fail closed). Limits count in `counters` (default: the
        policy's store) at `now` (default: the current time); an allowed call holds its
        budget until `Decision.release()`. `dry_run` decides without counting: limits
        are checked against the counts as they stand. `approved` says a person approved
        this exact call, so a call only an `@approval` permit allows is allowed (and its
        limits count) instead of being decided `"approval"`."""
        refused, read = self._admitted(tool, arguments, from_json)
        if refused is not None:  # the gateway refuses it before the policy decides
            return Decision._of(refused, self._filename)
        tool, args = read
        d = self._engine.decide(tool, args, _principal(principal), server or "default", _epoch(now),
                                not dry_run, counters, approved)
        if d.reservation is not None or d.limit is not None:
            return Decision._of(d, self._filename)
        # The engine hands every call one cause decides the same decision object (a
        # tool's failing permit step, a forbid, an allowing permit), so its public form is
        # built once. The entry holds the engine's object, so its id is not reused while
        # the entry lives; the identity check skips an entry of an id that was.
        hit = self._decisions.get(id(d))
        if hit is not None and hit[0] is d:
            return hit[1]
        out = Decision._of(d, self._filename)
        if len(self._decisions) >= 4096:
            self._decisions.clear()
        self._decisions[id(d)] = (d, out)
        return out

    def _admitted(self, tool: str, arguments, from_json: bool = False):
        """(None, (the tool, the arguments) as the gateway decides them) or (the gateway's
        refusal, as an engine decision, None).

        First the call as the gateway reads it (`from_json`: it is already): written as
        JSON and read back (lang/jsontext.py `as_read`), so the policy decides the JSON
        values the gateway would, never Python objects the engine reads otherwise (a str
        `Enum`, a tuple, a key `1`: hostile review 22, F1); a call no JSON text can carry
        (NaN, ±Infinity, a lone surrogate, anywhere; hostile review 18, F8), whose tool
        name is not 1 to 128 characters (MCP; the gateway answers 400) or whose arguments
        nest deeper than lang/nesting.py's bound (hostile review 22, F7) is refused, rule
        `/request`, with the gateway's reason. A call made from too deep in the Python
        stack to decide it the same way every time is denied, rule `/error`
        (`STACK_TOO_DEEP`).

        Then, with a catalog, the gateway's admission (catalog/admission.py
        `CatalogAdmission`): arguments that break the tool's declared schema are refused
        (`invalid_arguments`), the declared defaults are filled in where the call omits
        them, and a call that the filling makes invalid is refused (`invalid_default`) —
        the decision, rule and message the gateway gives. A tool the catalog does not list
        is decided by the policy."""
        refusal: dict | None = None
        args = arguments
        if _stack_too_deep():
            from mcpp.runtime.engine import Decision as EngineDecision, Rule

            return EngineDecision(False, tool if isinstance(tool, str) else str(tool), Rule("/error"), STACK_TOO_DEEP), None
        if not from_json:
            try:
                tool, args = as_read([tool, arguments])
            except NotJSONText as e:
                refusal = {"pointer": "/request", "message": str(e)}
        if refusal is None and not (isinstance(tool, str) and 1 <= len(tool) <= MAX_TOOL_NAME):
            refusal = {"pointer": "/request", "message": f"tool name must be 1 to {MAX_TOOL_NAME} characters"}
        if refusal is None and not from_json and arguments_too_deep(args):
            # (from_json: as the gateway hands them over, which refused deeper ones when it read them)
            refusal = {"pointer": "/request", "message": TOO_DEEP}
        if refusal is None and not from_json and (why := unsafe_integer(args)) is not None:
            # an integer beyond ±(2^53-1) (I-JSON): the gateway refuses it before it decides
            # (from_json: as the gateway hands them over, which refused them when it read them)
            refusal = {"pointer": "/request", "message": why}
        if refusal is None and self.catalog is not None:
            adm = self._admission
            if adm is None or adm[0] is not self.catalog:
                from mcpp.catalog.admission import CatalogAdmission

                adm = self._admission = (self.catalog, CatalogAdmission(self.catalog))
            refusal, args = adm[1].admit(tool, args)
        if refusal is None:
            return None, (tool, args)
        from mcpp.runtime.engine import Decision as EngineDecision, Rule

        return EngineDecision(False, tool if isinstance(tool, str) else str(tool), Rule(refusal["pointer"]),
                              refusal["message"]), None

    def explain(
        self,
        tool: str,
        arguments: dict[str, Any] | None = None,
        *,
        principal: Principal | None = None,
        server: str | None = None,
    ) -> Explanation:
        """The decision (counting nothing) with every policy that applies and every one
        whose evaluation errored: Cedar's reasons and errors for the same request."""
        refused, read = self._admitted(tool, arguments)
        if refused is not None:  # refused before the policy decides: no policy applies
            return Explanation(Decision._of(refused, self._filename), (), (), ())
        tool, args = read
        x = self._engine.explain(tool, args, _principal(principal), server or "default")
        return Explanation(Decision._of(x.decision, self._filename), x.satisfied, x.errored, x.determining)

    def visible(self, tools: Iterable[str], *, principal: Principal | None = None,
                server: str | None = None, on_error: Callable[[Exception], object] | None = None) -> set[str]:
        """The tools of `tools` some call could be allowed for — the gateway's `tools/list`
        filter (proved with Z3, cached per policy, principal and server). Hidden tools are
        never visible; a `User` that does not fit the policy's `entity User` sees none.
        Where the solver cannot answer in time a tool stays listed: its calls are still
        decided one by one. If the analyzer fails, `on_error` (when given) is called with
        the exception, and the answer is what is certain without it: hidden tools go, and
        for a user, tools whose every permit is for other principals."""
        names = [t for t in tools if isinstance(t, str)]
        g = _principal(principal)
        if _stack_too_deep():
            # the analyzer recurses: from too deep a stack it failed, and the answer became
            # the fallback's (hostile review 26, F6). Asked from an empty stack instead
            try:
                return on_fresh_stack(lambda: self.visible(names, principal=principal, server=server, on_error=on_error))
            except (NoFreshStack, RecursionError) as e:  # (hostile review 27, F3)
                if on_error is not None:
                    on_error(e)
                return self._visible_without_analysis(names, g)
        srv = server or "default"
        try:
            if isinstance(g, User):
                from mcpp.analyzer.visibility import visible_tools_for_user

                return set(visible_tools_for_user(self._program, names, user_id=g.id, attrs=dict(g.attrs),
                                                  groups=g.groups, server=srv))
            from mcpp.analyzer.visibility import visible_tools

            return set(visible_tools(self._program, names, grant_id=g.id, label=g.label, groups=g.groups,
                                     server=srv))
        except Exception as e:
            if on_error is not None:
                on_error(e)
            return self._visible_without_analysis(names, g)

    def _visible_without_analysis(self, names: list[str], g: Grant | User) -> set[str]:
        """What is certain without the analyzer: hidden tools go, and for a user, tools
        whose every permit is for other principals."""
        if isinstance(g, User):
            return _user_visible(self._program, names, g.id, g.groups)
        return {n for n in names if n not in self._program.hidden}

    # -- proving ------------------------------------------------------------------------
    # Each proof is typed by a catalog when there is one (`catalog=`, else the policy's
    # own `catalog`): calls are taken to conform to each tool's input schema, as the
    # gateway enforces (docs/analyzer.md, "Typed analysis"). A catalog given here only
    # types the proof; checking the policy against it is `load_policy(catalog=…)`'s.
    def verify(self, *, timeout_ms: int = 2000, catalog: CatalogSource | None = None,
               deadline: float | Deadline | None = None) -> list[AssertResult]:
        """Prove every `assert` statement (Z3), in source order. Raises
        `PolicyValidationError` for a malformed assertion (or, with a catalog, one naming
        a tool the catalog does not have), `CatalogError` for a catalog that cannot be used.
        `timeout_ms` bounds each solver query; `deadline` (seconds) the whole call: an
        assertion not decided when it runs out is `unknown` ("the run's deadline of N s
        ran out"), never `pass`."""
        cat = self._typing(catalog)
        run = _deadline(deadline)
        if not self._program.asserts:
            return []  # nothing to prove: no need to load the prover
        from mcpp.analyzer.typed import typed_session
        from mcpp.analyzer.verify import assert_problems, verify

        problems = [d for d in assert_problems(self._program, set(cat.tools) if cat is not None else None)
                    if d.severity == "error"]
        if problems:
            raise PolicyValidationError([Diagnostic._of(d) for d in problems])
        from mcpp.analyzer import assert_diagnostics

        results = verify(self._program, session=typed_session(cat, timeout_ms, deadline=run))
        findings = iter(assert_diagnostics(self._program, results))
        return [AssertResult._of(r, self._filename, None if r.status == "pass" else next(findings)) for r in results]

    def assertion_problems(self, *, catalog: CatalogSource | None = None) -> list[Diagnostic]:
        """The malformed `assert` statements `verify` refuses, as diagnostics (errors and
        warnings): `hidden`/`visible` assertions that read arguments, and (with a catalog:
        `catalog=`, else the policy's own) assertions about tools the catalog does not have
        (`unknown-tool`)."""
        from mcpp.analyzer.verify import assert_problems

        cat = self._typing(catalog)
        return [Diagnostic._of(d) for d in assert_problems(self._program, cat)]

    def caveats(self, *, catalog: CatalogSource | None = None) -> list[Caveat]:
        """What a proof typed by the catalog (`catalog=`, else the policy's own) cannot
        promise about declared defaults: each argument a rule reads whose default the
        gateway does not fill, or fills but refuses (docs/analyzer.md, "Typed analysis").
        Empty without a catalog."""
        cat = self._typing(catalog)
        if cat is None:
            return []
        from mcpp.analyzer.typed import catalog_schemas, default_caveats

        return [Caveat._of(c) for c in default_caveats(self._program, catalog_schemas(cat))]

    def lint(self, *, timeout_ms: int = 2000, catalog: CatalogSource | None = None,
             errors_only: bool = False, only: Iterable[str] | None = None,
             deadline: float | Deadline | None = None, undecided: bool | None = None) -> list[Diagnostic]:
        """The analyzer's findings (`mcpp lint`; docs/lints/): rules that can never
        apply, that another makes redundant, that a caller can bypass, …, in source
        order. `errors_only`: only the error-level ones — a rule a caller can bypass with
        a missing or mistyped argument — which `mcpp verify` fails on and `mcpp serve`
        refuses to enforce (checked alone, which is faster). `only`: run just these lints
        (names from `mcpp.lint_names()`; an unknown name is a `ValueError`); a chosen
        lint's `undecided` finding (checks it could not settle) is kept. `deadline`
        (seconds, or a shared `mcpp.Deadline`) bounds the whole call: the checks left when
        it runs out are listed by each lint's `undecided` finding (with `errors_only`, as
        an error), never dropped. `undecided` (with `errors_only`): report the checks
        left undecided by a timeout too, as errors — what `mcpp verify` fails on; by
        default only when a `deadline` is given (the gateway's start-up gate does not)."""
        from mcpp.analyzer.typed import typed_session

        cat = self._typing(catalog)
        run = _deadline(deadline)
        if errors_only:
            from mcpp.analyzer.safety import blocking_findings

            found = blocking_findings(self._program, cat, timeout_ms=timeout_ms, deadline=run,
                                      undecided=run is not None if undecided is None else undecided)
        else:
            from mcpp.analyzer.lints import LINTS, lint

            chosen = None
            if only is not None:
                chosen = {only} if isinstance(only, str) else set(only)
                unknown = sorted(n for n in chosen if n not in LINTS)
                if unknown:
                    raise ValueError(f"unknown lint {unknown[0]!r}; lints are {', '.join(sorted(LINTS))}")
            found = lint(self._program, timeout_ms=timeout_ms, only=chosen, session=typed_session(cat, timeout_ms, deadline=run))
            if chosen is not None:
                found = [d for d in found if d.code in chosen or d.code == "undecided"]
        return [Diagnostic._of(d) for d in found]

    def analyze(self, *, timeout_ms: int = 2000, catalog: CatalogSource | None = None,
                deadline: float | Deadline | None = None) -> list[Diagnostic]:
        """Everything the analyzer finds, as diagnostics: the lint findings, malformed
        assertions, and each assertion that fails (`assert-failed`, its counterexample in
        `data`) or could not be decided (`assert-unknown`) — what the language server
        shows. Never raises for the policy: an analyzer failure is one `analyzer-error`
        diagnostic. `deadline` (seconds) bounds the whole call, as for `verify`."""
        from mcpp.analyzer import analyze

        return [Diagnostic._of(d) for d in analyze(self._program, timeout_ms=timeout_ms, catalog=self._typing(catalog),
                                                   deadline=_deadline(deadline))]

    def _typing(self, catalog: CatalogSource | None) -> Catalog | None:
        try:
            return _catalog(catalog) if catalog is not None else self.catalog
        except MCPPError as e:
            raise from_mcpp_error(e) from None

    # -- compiling ----------------------------------------------------------------------
    def compile(self, *, principal: Principal | None = None, server: str | None = None,
                validate: bool = True, timeout_ms: int = 5000) -> dict[str, Any]:
        """The policy in the gateway's JSON form (`mcpp compile`; docs/language.md), as a
        JSON value. Rules that read the principal (or the server) are compiled for the one
        `principal` (a `Grant`, a grant id, or a `User`, whose attributes are typed by the
        policy's `entity User`) and `server` given; without them they are refused. Raises
        `PolicyValidationError` naming each rule the JSON form cannot express, and, with
        `validate` (the default), `CompileError` unless Z3 proves the result decides every
        call as the policy does."""
        from mcpp.lang.compiler import GrantContext, UserContext, compile_program

        who: GrantContext | UserContext | None = None
        if principal is not None:
            p = _principal(principal)
            who = (UserContext(p.id, tuple(p.attrs.items()), p.groups) if isinstance(p, User)
                   else GrantContext(p.id, p.label, p.groups))
        try:
            doc = compile_program(self._program, who, server)
        except MCPPError as e:
            raise from_mcpp_error(e) from None
        if validate:
            problem = self._translation_problem(doc, who, server, timeout_ms)
            if problem is not None:
                raise CompileError.of(problem, self.filename)
        return doc

    def to_cedar(self, *, catalog: CatalogSource | None = None, namespace: str | None = None,
                 agentcore: tuple[str, str] | None = None, partial: bool = False,
                 schema: bool = False) -> CedarPolicies:
        """The policy as Cedar policies (`mcpp compile --target cedar`; docs/cedar.md).

        `catalog` (else the policy's own) types `context.input` by each tool's input
        schema, and is needed for `schema` (also write the Cedar schema) and `agentcore`.
        Entity types and actions are mcpp's names, or in `namespace`, or (a policy read
        from a `.cedar` file) the names it used; `agentcore=(gateway_arn, target)` writes
        for Amazon Bedrock AgentCore Policy instead. Raises `PolicyValidationError` with
        one error per statement Cedar cannot express (limits, `hide`, …), unless
        `partial`, which leaves them out and lists each in `CedarPolicies.left_out`.
        A `namespace` that is not one (identifiers joined by `::`) is a `ValueError`."""
        from mcpp.lang.cedar_export import export_program
        from mcpp.lang.cedar_model import CedarNames, namespace_ok

        if namespace is not None and not namespace_ok(namespace):
            raise ValueError(f"{namespace!r} is not a Cedar namespace (identifiers joined by ::)")
        if agentcore is not None and namespace is not None:
            raise ValueError("a namespace does not apply with agentcore (AgentCore's namespace is AgentCore)")
        cat = self._typing(catalog)
        tools = {name: t.input_schema for name, t in cat.tools.items()} if cat is not None else None
        program = self._program
        imported = getattr(program, "cedar", None)  # read from a .cedar file: its names, its `.contains` calls
        if agentcore is not None:
            names = CedarNames.agentcore(*agentcore)
        elif namespace is not None or imported is None:
            names = CedarNames.with_namespace(namespace)
        else:
            names = imported.names
        try:
            result = export_program(program, tools=tools, names=names, partial=partial, schema=schema,
                                    contains_spans=imported.contains_spans if imported is not None else frozenset())
        except MCPPError as e:
            raise from_mcpp_error(e) from None
        return CedarPolicies(result.policies, result.schema, tuple(Diagnostic._of(d) for d in result.left_out),
                             tuple(result.ids))

    @property
    def source(self) -> str | None:
        """The text the policy was loaded from (what its spans point into)."""
        doc = self._program.document
        return doc.source if doc is not None else None

    def _translation_problem(self, doc, who, server, timeout_ms: int) -> str | None:
        """Why `doc` does not decide as the policy does (None: proved that it does)."""
        from mcpp.analyzer.translation import validate_translation

        if who is None or not hasattr(who, "claims"):
            return validate_translation(self._program, doc, grant=who.id if who else None,
                                        label=who.label if who else "", groups=list(who.groups) if who else [],
                                        server=server, timeout_ms=timeout_ms)
        from mcpp.analyzer.encode import FixedUser
        from mcpp.lang.identity import PrincipalError

        try:
            user = FixedUser.of(self._program, who.id, dict(who.claims), who.groups)
        except PrincipalError as e:  # compile_program refuses such a user first; fail closed anyway
            return f"user {who.id}: {e}"
        return validate_translation(self._program, doc, server=server, user=user, timeout_ms=timeout_ms)

    def __repr__(self) -> str:
        return f"<mcpp.Policy {self.filename!r} ({self.origin})>"


def diff(old: Policy | PolicySource, new: Policy | PolicySource, *, timeout_ms: int = 2000,
         catalog: CatalogSource | None = None, deadline: float | Deadline | None = None) -> list[ToolDiff]:
    """Per tool, which calls `new` newly allows (`looser`) or newly denies (`stricter`)
    compared with `old`, each with a concrete call both versions replay. Either side may
    be a `Policy`, a path or policy text. The comparison is typed by `catalog` (else
    `new`'s catalog, else `old`'s): both are judged on the calls the catalog's input
    schemas admit, and its tools are the cases. `timeout_ms` bounds each solver query;
    `deadline` (seconds, counted from the call after both are loaded) the whole diff: a
    direction not decided when it runs out is `unknown`."""
    from mcpp.analyzer.diff import diff_programs
    from mcpp.analyzer.typed import typed_session

    a = old if isinstance(old, Policy) else load_policy(old)
    b = new if isinstance(new, Policy) else load_policy(new)
    cat = b._typing(catalog) if catalog is not None else (b.catalog if b.catalog is not None else a.catalog)
    run = _deadline(deadline)
    return [ToolDiff._of(t) for t in diff_programs(a._program, b._program, timeout_ms=timeout_ms,
                                                   session=typed_session(cat, timeout_ms, deadline=run), deadline=run)]


def replay(old: Policy | PolicySource, new: Policy | PolicySource, calls: Mapping[Any, Sequence[int]], *,
           key: bytes | None = None, timeout_ms: int = 5000, deadline: float | Deadline | None = None) -> list[Replayed]:
    """Past calls replayed against two versions of a policy (`mcpp diff --audit`): which
    real calls would be decided differently. `calls` maps each distinct `mcpp.PastCall`
    (what a gateway's audit row knows of a call: tool, caller, server, argument keys, and
    for `hashed`/`full` audits the values' digest or the values) to the audit row numbers
    it stands for; `key` is the audit's value-hashing key (`audit-values.key`) for
    `hashed` rows. Limits are compared at zero counts (an audit does not record them).
    `deadline` (seconds) bounds the whole replay: a call whose symbolic question is left
    when it runs out is "unknown"."""
    from mcpp.analyzer.replay import replay as run

    a = old if isinstance(old, Policy) else load_policy(old)
    b = new if isinstance(new, Policy) else load_policy(new)
    return [Replayed._of(r) for r in run(a._program, b._program, {c: list(rows) for c, rows in calls.items()},
                                          key=key, timeout_ms=timeout_ms, deadline=_deadline(deadline))]


def lint_names() -> list[str]:
    """The name of every lint (docs/lints/), for `Policy.lint(only=…)`."""
    from mcpp.analyzer.lints import LINTS

    return sorted(LINTS)


# ---- checking, formatting ------------------------------------------------------------------


@dataclass(frozen=True)
class CedarPolicies:
    """`Policy.to_cedar`'s result: the Cedar policy text, the Cedar schema (when asked
    for), each statement left out (`partial`; a warning saying why Cedar cannot express
    it), and the mcpp id of each written policy in output order (Cedar names an
    unannotated policy by its position, `policy<N>`)."""

    policies: str
    schema: str | None
    left_out: tuple[Diagnostic, ...] = ()
    ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Checked:
    """What `mcpp check` finds in one policy, without raising for it.

    `diagnostics` are the language's (syntax and validation; errors and warnings),
    `catalog_diagnostics` those against the catalog (its unknown tools and arguments, or
    one error at the `@catalog` annotation saying why the named catalog cannot be used).
    `policy` is None when the language found errors; otherwise it is the policy, with
    `catalog` as its own even when `catalog_diagnostics` has errors (such a policy is
    one `load_policy` would refuse: use it to report, not to enforce). `source` is the
    text, for rendering diagnostics; `catalog_name` names the catalog as found (the
    argument, or the path the policy's annotation or mcpp.toml resolves to)."""

    source: str
    diagnostics: tuple[Diagnostic, ...]
    catalog_diagnostics: tuple[Diagnostic, ...] = ()
    policy: Policy | None = None
    catalog: Catalog | None = None
    catalog_name: str | None = None

    @property
    def errors(self) -> list[Diagnostic]:
        """Every error-level diagnostic, the language's first."""
        return [d for d in (*self.diagnostics, *self.catalog_diagnostics) if d.severity == "error"]


def check(source: PolicySource, *, catalog: CatalogSource | None = None, filename: str | None = None,
          named_catalog: bool = True) -> Checked:
    """Check a policy as `mcpp check` does and return everything found, errors included
    (`load_policy` raises at the first error instead). `source` is read as by
    `load_policy`; a file that cannot be read raises `PolicyFileError`.

    A .mcpp policy is checked against `catalog` (a file or a loaded catalog; one that
    cannot be used raises `CatalogError`) or, with `named_catalog`, the catalog it names
    (`@catalog`, else the nearest `mcpp.toml`). A JSON-form policy is not checked against
    a catalog (its tools were checked when it was compiled); `catalog` is still kept as
    its catalog. JSON-form documents have no warnings."""
    text, name, json_form = _read(source, filename)
    try:
        cat = _catalog(catalog)
    except MCPPError as e:
        raise from_mcpp_error(e) from None
    if json_form:
        from mcpp.lang.jsonform import loads, to_document
        from mcpp.lang.program import build_program

        try:
            doc = loads(text, name)
        except MCPPError as e:
            return Checked(text, tuple(Diagnostic._of(d) for d in e.diagnostics))
        program, diags = build_program(to_document(doc, name))
        program.origin = "json"
        errors = tuple(Diagnostic._of(d) for d in diags if d.severity == "error")
        if errors:
            return Checked(text, errors)
        return Checked(text, (), (), Policy(program, catalog=cat), cat, _catalog_label(catalog))
    from mcpp.catalog import CatalogError as _CatalogError
    from mcpp.catalog import catalog_diagnostics, find_catalog_for, find_catalog_ref, validate
    from mcpp.lang.program import check_source

    program, diags = check_source(text, name)
    label = _catalog_label(catalog)
    if cat is not None:
        more = validate(program, cat)
    elif named_catalog:
        try:
            cat = find_catalog_for(name, program)
        except _CatalogError:
            more = catalog_diagnostics(name, program)  # the error, at the annotation
        else:
            more = validate(program, cat) if cat is not None else []
            if cat is not None:
                ref = find_catalog_ref(name, program)
                label = str(ref.path) if ref is not None else "?"
    else:
        more = []
    found = tuple(Diagnostic._of(d) for d in diags)
    policy = None
    if not any(d.severity == "error" for d in diags):
        policy = Policy(program, catalog=cat, warnings=found)
    return Checked(text, found, tuple(Diagnostic._of(d) for d in more), policy, cat, label)


def format_policy(text: str, *, filename: str = "<input>") -> str:
    """.mcpp text formatted canonically (`mcpp fmt`: idempotent, comments kept). Raises
    `PolicySyntaxError` for text that does not parse (formatting does not validate)."""
    from mcpp.lang.formatter import format_document
    from mcpp.lang.parser import parse

    try:
        return format_document(parse(text, filename))
    except MCPPError as e:
        raise from_mcpp_error(e) from None


def decompile(text: str, *, filename: str = "<json>") -> str:
    """A JSON-form policy (what `Policy.compile` returns, as JSON text) as readable .mcpp
    (`mcpp decompile`). Raises `PolicySyntaxError` or `PolicyValidationError` for a
    document that is not one."""
    from mcpp.lang.decompiler import decompile as run

    try:
        return run(text, filename)
    except MCPPError as e:
        raise from_mcpp_error(e) from None


def _deadline(seconds: float | Deadline | None):
    """The analyzer's Deadline for a `deadline=` argument (seconds from now, or a
    `mcpp.Deadline` several calls share: one budget for a whole run), or None.
    Raises ValueError/TypeError for a negative, infinite or non-numeric value."""
    if seconds is None:
        return None
    from mcpp.analyzer.deadline import deadline_of

    return deadline_of(seconds)


# ---- arguments ----------------------------------------------------------------------------

_ANONYMOUS = Grant()
_NOWHERE = LangSpan(0, 0, 0, 0)


def _principal(principal: Principal | None) -> Grant | User:
    """The engine's principal for an API principal (a grant, a grant id or a user)."""
    if principal is None:
        return _ANONYMOUS
    if type(principal) is Grant:
        groups = principal.groups
        if type(groups) is frozenset and type(principal.id) is str and type(principal.label) is str:
            return principal
        if not isinstance(principal.id, str) or not isinstance(principal.label, str):
            raise TypeError("Grant.id and Grant.label must be strings")
        if isinstance(groups, str) or not all(isinstance(g, str) for g in groups):
            raise TypeError("Grant.groups must be a collection of group names (strings)")
        return replace(principal, groups=frozenset(groups))
    if type(principal) is User:
        if type(principal.id) is str and type(principal.groups) is frozenset:
            return principal  # its attributes are checked against the policy's `entity User` when decided
        if not isinstance(principal.id, str):
            raise TypeError("User.id must be a string")
        groups = principal.groups
        if isinstance(groups, str) or not all(isinstance(g, str) for g in groups):
            raise TypeError("User.groups must be a collection of group names (strings)")
        return replace(principal, groups=frozenset(groups))
    if isinstance(principal, str):
        return Grant(principal)
    raise TypeError(f"principal must be a mcpp.Grant, a mcpp.User or a grant id, not {type(principal).__name__}")


def _epoch(now: float | datetime | None) -> float | None:
    if now is None or isinstance(now, (int, float)) and not isinstance(now, bool):
        return None if now is None else float(now)
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware (limit windows are UTC)")
        return now.timestamp()
    raise TypeError(f"now must be a datetime or epoch seconds, not {type(now).__name__}")


def _catalog(catalog):
    if catalog is None:
        return None
    from mcpp.catalog import Catalog, load_catalog

    if isinstance(catalog, Catalog):
        return catalog
    if isinstance(catalog, (str, os.PathLike)):
        return load_catalog(os.fspath(catalog))  # CatalogError is an MCPPError: the caller maps it
    raise TypeError(f"catalog must be a path or a mcpp.catalog.Catalog, not {type(catalog).__name__}")


def _catalog_label(catalog) -> str | None:
    """How a catalog given as an argument is named in reports: its path (a loaded one, by
    the file it was loaded from when it knows it)."""
    if catalog is None:
        return None
    if isinstance(catalog, (str, os.PathLike)):
        return os.fspath(catalog)
    return getattr(catalog, "path", None) and str(catalog.path)


def _user_visible(program, names: list[str], user_id: str, groups) -> set[str]:
    """`visible` for a user when the analyzer cannot answer: a tool is listed unless it
    is hidden, or default deny holds for it and no permit that names it can apply to this
    user by its scope. Conditions are taken as possibly true and forbids as possibly not
    applying, so a tool some call by this user could be allowed for is always listed
    (showing a tool only lets the agent try; the call is still decided)."""
    plan = program.plan()
    out = set()
    for name in names:
        tp = plan.for_tool(name)
        if tp.hidden:
            continue
        # an @approval permit counts: a person may let the call run
        if tp.default_allows or any(
            _scope_may_match(p.stmt.scope.principal, "User", user_id, groups)
            for p in (*tp.permits, *getattr(tp, "approvals", ()))
        ):
            out.add(name)
    return out


def _scope_may_match(scope, principal_type: str, principal_id: str, groups) -> bool:
    """Whether a rule's principal scope can match this caller (exact: the scope reads only
    the principal's type, id and groups)."""
    op = scope.op
    if op == "any":
        return True
    if op == "is":
        return scope.type == principal_type
    ent = scope.entity
    me = ent.type == principal_type and ent.id == principal_id
    if op == "eq":
        return me
    within = me or (ent.type == "Group" and ent.id in groups)
    if op == "in":
        return within
    return scope.type == principal_type and within  # is … in …
