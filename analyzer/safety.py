"""The findings that keep a policy out of production: error-level lints, the ones that
make a rule bypassable (a `forbid` a caller skips by sending a missing or mistyped
argument). `mcpp verify` fails on them (exit 1) and `mcpp serve` refuses to start on
them, so the safe workflow (`check`, `verify`, `serve`) catches what `mcpp lint` reports.

With a catalog the analysis is typed (analyzer/typed.py): the gateway refuses calls that
do not conform to their tool's schema, so only the types the schema still allows can
bypass a forbid.
"""

from __future__ import annotations

from mcpp.lang.diagnostics import Diagnostic
from mcpp.lang.program import Program

from .lints import LINTS, lint
from .solve import Session
from .typed import catalog_schemas

BLOCKING = tuple(sorted(i.id for i in LINTS.values() if i.severity == "error"))


def blocking_findings(program: Program, catalog=None, *, timeout_ms: int = 2000) -> list[Diagnostic]:
    """Error-level lint findings of `program` (typed when `catalog` is given)."""
    session = Session(timeout_ms, schemas=catalog_schemas(catalog) if catalog is not None else None)
    return [d for d in lint(program, timeout_ms=timeout_ms, only=set(BLOCKING), session=session) if d.severity == "error"]
