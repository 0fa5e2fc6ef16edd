"""The analyzer's process: `python -m mcpp.lsp.worker`, one JSON request a line on stdin,
one JSON reply a line on stdout.

The language server runs Z3 here rather than in a thread so that a stale analysis can
be cancelled by ending the process (a solver call cannot be interrupted from Python),
and so that the solver never holds the GIL the editor's keystrokes are waiting for.

Request: `{"id", "source", "filename", "timeout_ms", "catalog"?}`; with `catalog` (the path of
the catalog the document is checked against: its `@catalog`, mcpp.toml, or the `mcpp.catalog`
setting) the analysis is typed (docs/analyzer.md, "Typed analysis").
Reply: `{"id", "diagnostics": [...], "elapsed_ms"}`, or `{"id", "skipped": why}` when the
text has errors (the analysis of a half-parsed policy would mislead), or `{"id", "error"}`.
"""

from __future__ import annotations

import json
import os
import sys
import time


def diag_to_json(d) -> dict:
    """A diagnostic (the API's `mcpp.Diagnostic`, or the language's) as the reply carries it."""
    s = d.span
    return {
        "message": d.message,
        "span": [s.line, s.col, s.end_line, s.end_col, s.start, s.end] if s is not None else [0, 0, 0, 0, 0, 0],
        "severity": d.severity,
        "code": d.code,
        "notes": list(d.notes),
        "data": d.data,
    }


def diag_from_json(obj: dict):
    from mcpp.lang.diagnostics import Diagnostic, Span

    return Diagnostic(
        str(obj["message"]), Span(*obj["span"]), str(obj["severity"]), str(obj["code"]), "<analyzer>",
        tuple(obj.get("notes") or ()), obj.get("data") or {},
    )


def handle(req: dict) -> dict:
    """One analysis: the text checked by the language (a half-parsed policy is not
    analysed), then proved through the public API (`Policy.analyze`, typed by the catalog)."""
    from mcpp.lang.program import check_source

    rid = req.get("id")
    source, filename = req.get("source"), req.get("filename", "<input>")
    if not isinstance(source, str):
        return {"id": rid, "error": "request without a source text"}
    t0 = time.perf_counter()
    program, diags = check_source(source, filename)
    if any(d.severity == "error" for d in diags):
        return {"id": rid, "skipped": "the policy has errors"}
    from mcpp import Policy

    timeout = req.get("timeout_ms", 2000)
    catalog = _catalog(req.get("catalog"))
    policy = Policy(program)  # the program just checked, not parsed again
    found = policy.analyze(timeout_ms=int(timeout) if isinstance(timeout, (int, float)) else 2000, catalog=catalog)
    from .coverage import coverage_diagnostics  # only when <name>.test.toml is beside the policy

    covered = coverage_diagnostics(program, filename, source)
    return {
        "id": rid,
        "diagnostics": [diag_to_json(d) for d in found] + [diag_to_json(d) for d in covered],
        "elapsed_ms": round((time.perf_counter() - t0) * 1000, 1),
    }


_CATALOGS: dict = {}


def _catalog(path):
    """The catalog at `path`, re-read when the file changes; None when there is none or it
    cannot be loaded (the server already shows why, and an untyped analysis only reports more)."""
    if not isinstance(path, str) or not path:
        return None
    from mcpp.catalog import CatalogError, load_catalog

    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (st.st_mtime_ns, st.st_size)
    hit = _CATALOGS.get(path)
    if hit is not None and hit[0] == key:
        return hit[1]
    try:
        cat = load_catalog(path)
    except CatalogError:
        cat = None
    _CATALOGS[path] = (key, cat)
    return cat


def main() -> None:
    try:
        os.nice(10)  # background work: on a busy machine the editor's server gets the CPU first
    except OSError:
        pass
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        req = None
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ValueError("a request is a JSON object")
            reply = handle(req)
        except Exception as e:  # reported to the server, which logs it; the worker goes on
            reply = {"id": req.get("id") if isinstance(req, dict) else None, "error": f"{type(e).__name__}: {e}"}
        out.write(json.dumps(reply, default=str, ensure_ascii=False) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
