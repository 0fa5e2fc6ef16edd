"""Rendering analyzer results: text for people, JSON for machines, SARIF 2.1.0 for GitHub
code scanning (one run, the rules table listing every lint and assertion outcome, each
with its docs page)."""

from __future__ import annotations

import json

from mcpp.lang.diagnostics import Diagnostic

from .lints import LINTS, docs_path

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"

RULES = {
    **{i.id: (i.severity, i.summary, docs_path(i.id)) for i in LINTS.values()},
    "assert-failed": ("error", "an assertion is false: a counterexample call exists", "docs/analyzer.md#assertions"),
    "assert-unknown": ("warning", "an assertion could not be decided", "docs/analyzer.md#assertions"),
    "assert": ("error", "an assertion is malformed", "docs/analyzer.md#assertions"),
    "diff-looser": ("warning", "the new policy allows a call the old one denied", "docs/analyzer.md#diff"),
    "diff-stricter": ("note", "the new policy denies a call the old one allowed", "docs/analyzer.md#diff"),
    "diff-unknown": ("warning", "a tool's change could not be decided", "docs/analyzer.md#diff"),
}

_LEVEL = {"error": "error", "warning": "warning", "info": "note", "note": "note"}


def diag_dict(d: Diagnostic) -> dict:
    out = {
        "file": d.file, "line": d.span.line, "col": d.span.col, "end_line": d.span.end_line,
        "end_col": d.span.end_col, "severity": d.severity, "code": d.code, "message": d.message,
    }
    if d.notes:
        out["notes"] = list(d.notes)
    if d.data:
        out["data"] = d.data
    return out


def sarif(diags: list, extra_results: list[dict] | None = None, properties: dict | None = None) -> dict:
    """SARIF 2.1.0: one run; `properties` (e.g. what a typed analysis assumed) go on the run.
    `diags` are the analyzer's diagnostics or the public API's (`mcpp.Diagnostic`, whose
    span is None where there is no source position)."""
    used = sorted({d.code for d in diags} | {r["ruleId"] for r in extra_results or []})
    rules = []
    for rid in used:
        sev, summary, doc = RULES.get(rid, ("warning", rid, "docs/analyzer.md"))
        rules.append({
            "id": rid,
            "name": "".join(w.capitalize() for w in rid.split("-")),
            "shortDescription": {"text": summary},
            "help": {"text": f"{summary}. See {doc} in the mcpp repository.", "markdown": f"{summary}. See [{doc}]({doc})."},
            "defaultConfiguration": {"level": _LEVEL.get(sev, "warning")},
            "properties": {"docs": doc},
        })
    index = {r["id"]: i for i, r in enumerate(rules)}
    results = []
    for d in diags:
        text = d.message + "".join(f"\nnote: {n}" for n in d.notes)
        s = d.span  # None: a public `mcpp.Diagnostic` with no source position
        where = (s.line, s.col, s.end_line, s.end_col) if s is not None else (0, 0, 0, 0)
        res = {
            "ruleId": d.code,
            "ruleIndex": index[d.code],
            "level": _LEVEL.get(d.severity, "warning"),
            "message": {"text": text},
            "locations": [_location(d.file, *where)],
        }
        if d.data.get("counterexample"):
            res["properties"] = {"counterexample": d.data["counterexample"]}
        results.append(res)
    for r in extra_results or []:
        r = dict(r)
        r["ruleIndex"] = index[r["ruleId"]]
        results.append(r)
    run = {"tool": {"driver": {"name": "mcpp", "version": _version(), "rules": rules}}, "results": results}
    if properties:
        run["properties"] = properties
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mcpp")
    except PackageNotFoundError:  # pragma: no cover - run from a checkout without installing
        return "0"


def _location(file: str, line: int, col: int, end_line: int | None = None, end_col: int | None = None) -> dict:
    region = {"startLine": max(1, line or 1), "startColumn": max(1, col or 1)}
    if end_line and end_line >= region["startLine"]:
        region["endLine"] = end_line
        if end_col and (end_line > region["startLine"] or end_col > region["startColumn"]):
            region["endColumn"] = end_col
    return {"physicalLocation": {"artifactLocation": {"uri": file}, "region": region}}


def location_result(rule_id: str, text: str, file: str, line: int = 1, col: int = 1, props: dict | None = None) -> dict:
    level = _LEVEL.get(RULES[rule_id][0], "warning")
    r = {"ruleId": rule_id, "level": level, "message": {"text": text}, "locations": [_location(file, line, col)]}
    if props:
        r["properties"] = props
    return r


def dumps(obj) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False)
