"""The findings that keep a policy out of production: error-level lints, the ones that
make a rule bypassable (a `forbid` a caller skips by sending a missing or mistyped
argument). `mcpp verify` fails on them (exit 1) and `mcpp serve` refuses to start on
them, so the safe workflow (`check`, `verify`, `serve`) catches what `mcpp lint` reports.

With a catalog the analysis is typed (analyzer/typed.py): the gateway refuses calls that
do not conform to their tool's schema, so only the types the schema still allows can
bypass a forbid.
"""

from __future__ import annotations

import dataclasses

from mcpp.lang.diagnostics import Diagnostic
from mcpp.lang.program import Program

from .deadline import Deadline
from .lints import LINTS, lint
from .solve import Session
from .typed import catalog_schemas

BLOCKING = tuple(sorted(i.id for i in LINTS.values() if i.severity == "error"))


def blocking_findings(program: Program, catalog=None, *, timeout_ms: int = 2000, deadline: Deadline | None = None,
                      undecided: bool = False) -> list[Diagnostic]:
    """Error-level lint findings of `program` (typed when `catalog` is given).

    With `undecided` (what `mcpp verify` asks), a check of these lints that could not be
    decided — a query past `--timeout`, or anything left when the run's `deadline` ran
    out — is an error too (the `undecided` finding, at error level): an unproved "no
    bypassable rule" must not let `verify` pass."""
    session = Session(timeout_ms, schemas=catalog_schemas(catalog) if catalog is not None else None, deadline=deadline)
    out = []
    for d in lint(program, timeout_ms=timeout_ms, only=set(BLOCKING), session=session):
        if d.severity == "error":
            out.append(d)
        elif undecided and d.code == "undecided" and d.data.get("lint") in BLOCKING:
            out.append(dataclasses.replace(d, severity="error"))
    return out
