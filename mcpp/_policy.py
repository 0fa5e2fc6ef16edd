"""`mcpp.load_policy` and `mcpp.Policy`: a policy as a library, without a gateway.

A `Policy` wraps the decision engine (`mcpp.runtime.engine.Engine`) of one loaded
program, so `Policy.decide` is exactly what `mcpp serve` and `mcpp eval` decide. The
analyzer (Z3) is imported only by the methods that prove things (`verify`, `visible`,
`diff`), so deciding calls never loads it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Union

from mcpp.lang.diagnostics import Diagnostic as LangDiagnostic, MCPPError
from mcpp.runtime.engine import Engine, Grant
from mcpp.runtime.limits import CounterStore

from ._errors import PolicyValidationError, from_mcpp_error
from ._types import AssertResult, Decision, Diagnostic, Explanation, ToolDiff

if TYPE_CHECKING:
    from mcpp.catalog import Catalog
    from mcpp.lang.program import Program

__all__ = ["Policy", "Principal", "diff", "load_policy"]

Principal = Union[Grant, str]
"""Who makes a call: a `Grant` (id, label, groups), or a grant id as a string. Other kinds
of principal (an authenticated user with claims) will join this union; `principal=`
stays a keyword argument, so code written for grants keeps working."""

PolicySource = Union[str, "os.PathLike[str]"]


def _is_text(source: str) -> bool:
    """A `str` is policy text (not a path) when it could not be a file name: it has a line
    break or a `;` (every .mcpp statement ends with one), it is a JSON object, or it is
    empty (an empty policy: everything denied)."""
    return "\n" in source or ";" in source or source.lstrip().startswith("{") or not source.strip()


def load_policy(
    source: PolicySource,
    *,
    catalog: str | os.PathLike[str] | Catalog | None = None,
    counters: CounterStore | None = None,
    filename: str | None = None,
) -> Policy:
    """Load a policy from a file (a `Path`, or a `str` naming one) or from its text.

    `.json` files and text starting with `{` are the JSON form; anything else is .mcpp.
    `catalog` (a catalog file or a loaded `mcpp.catalog.Catalog`) is checked against the
    policy the way `mcpp check --catalog` does and kept as `Policy.catalog`; `decide` and
    `explain` then fill each tool's declared defaults into the arguments, as the gateway
    does before it decides (docs/gateway.md, "Typed calls"). `counters`
    is where limits count (default: in this process's memory; see `SQLiteCounters`,
    `RedisCounters`). `filename` names text in diagnostics and spans (default
    `<input>`). Raises a `PolicyError` subclass with every problem found."""
    from mcpp.lang.load import is_json, read_text

    if isinstance(source, os.PathLike) or (isinstance(source, str) and not _is_text(source)):
        path = os.fspath(source)
        try:
            text = read_text(path)
        except MCPPError as e:
            raise from_mcpp_error(e, file_error=True) from None
        name = filename or str(path)
        json_form = is_json(path, text)
    elif isinstance(source, str):
        text = source
        name = filename or "<input>"
        json_form = text.lstrip().startswith("{")
    else:
        raise TypeError(f"load_policy takes a path or policy text, not {type(source).__name__}")
    return Policy._load(text, name, json_form, catalog=catalog, counters=counters)


class Policy:
    """One loaded policy. Thread-safe: deciding keeps no per-call state except the
    limit counters, which live in the counter store."""

    def __init__(self, program: Program, *, counters: CounterStore | None = None,
                 catalog: Catalog | None = None, warnings: Iterable[Diagnostic] = ()) -> None:
        """Use `load_policy`; this wraps a program the toolchain already built."""
        self._program = program
        self._engine = Engine(program, counters)
        self._filename = self._engine.filename  # None for the JSON form: no source spans
        self.catalog = catalog
        self.warnings: tuple[Diagnostic, ...] = tuple(warnings)

    @classmethod
    def _load(cls, text: str, name: str, json_form: bool, *, catalog=None, counters=None) -> Policy:
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
        return cls(program, counters=counters, catalog=cat, warnings=(Diagnostic._of(d) for d in diags))

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
        return self._engine.store

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
    ) -> Decision:
        """Decide one `tools/call`: `tool` with its JSON `arguments`, made by `principal`
        (default: the anonymous grant) on `server` (default `"default"`).

        Never raises for a bad call: anything that cannot be decided is denied, with the
        reason in the message (fail closed). Limits count in `counters` (default: the
        policy's store) at `now` (default: the current time); an allowed call holds its
        budget until `Decision.release()`. `dry_run` decides without counting."""
        d = self._engine.decide(tool, self._filled(tool, arguments), _grant(principal), server or "default",
                                _epoch(now), not dry_run, counters)
        return Decision._of(d, self._filename)

    def _filled(self, tool: str, arguments):
        """With a catalog, the arguments as the gateway decides them: the tool's declared
        defaults filled in where the call omits them (catalog/defaults.py)."""
        if self.catalog is None:
            return arguments
        t = self.catalog.tools.get(tool) if isinstance(tool, str) else None
        if t is None:
            return arguments
        from mcpp.catalog.defaults import fill

        return fill(t.input_schema, {} if arguments is None else arguments)

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
        x = self._engine.explain(tool, self._filled(tool, arguments), _grant(principal), server or "default")
        return Explanation(Decision._of(x.decision, self._filename), x.satisfied, x.errored, x.determining)

    def visible(self, tools: Iterable[str], *, principal: Principal | None = None,
                server: str | None = None) -> set[str]:
        """The tools of `tools` some call could be allowed for — the gateway's `tools/list`
        filter (proved with Z3, cached per policy, principal and server). Hidden tools are
        never visible. Where the solver cannot answer in time a tool stays listed: its
        calls are still decided one by one."""
        names = [t for t in tools if isinstance(t, str)]
        g = _grant(principal)
        try:
            from mcpp.analyzer.visibility import visible_tools

            return set(visible_tools(self._program, names, grant_id=g.id, label=g.label, groups=g.groups,
                                     server=server or "default"))
        except Exception:  # without the analyzer's answer, what is certain: hidden tools go
            return {n for n in names if n not in self._program.hidden}

    # -- proving ------------------------------------------------------------------------
    def verify(self, *, timeout_ms: int = 2000) -> list[AssertResult]:
        """Prove every `assert` statement (Z3), in source order. Raises
        `PolicyValidationError` for a malformed assertion (or, with a catalog, one naming
        a tool the catalog does not have)."""
        from mcpp.analyzer.verify import assert_problems, verify

        problems = assert_problems(self._program, set(self.catalog.tools) if self.catalog is not None else None)
        if problems:
            raise PolicyValidationError([Diagnostic._of(d) for d in problems])
        return [AssertResult._of(r, self._filename) for r in verify(self._program, timeout_ms=timeout_ms)]

    def __repr__(self) -> str:
        return f"<mcpp.Policy {self.filename!r} ({self.origin})>"


def diff(old: Policy | PolicySource, new: Policy | PolicySource, *, timeout_ms: int = 2000) -> list[ToolDiff]:
    """Per tool, which calls `new` newly allows (`looser`) or newly denies (`stricter`)
    compared with `old`, each with a concrete call both versions replay. Either side may
    be a `Policy`, a path or policy text."""
    from mcpp.analyzer.diff import diff_programs

    a = old if isinstance(old, Policy) else load_policy(old)
    b = new if isinstance(new, Policy) else load_policy(new)
    return [ToolDiff._of(t) for t in diff_programs(a._program, b._program, timeout_ms=timeout_ms)]


# ---- arguments ----------------------------------------------------------------------------

_ANONYMOUS = Grant()


def _grant(principal: Principal | None) -> Grant:
    """The engine's principal for an API principal (a grant or a grant id)."""
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
    if isinstance(principal, str):
        return Grant(principal)
    raise TypeError(f"principal must be a mcpp.Grant or a grant id, not {type(principal).__name__}")


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
