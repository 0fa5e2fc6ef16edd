"""`mcpp test` output: text for people, JSON for programs, JUnit XML for CI systems
(GitLab, GitHub Actions' test reporters and Jenkins read the same `testsuites` shape)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import timezone
from pathlib import Path

from mcpp.runtime.engine import Grant, User

from .cases import Step
from .coverage import CATEGORIES
from .runner import CaseResult, Mismatch, Run, total_percent


def _v(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def caller_text(c: Grant | User) -> str:
    """`grant "g" (label "l") in Group::"x"`, or `User::"alice" {scopes: ["k8s:write"],
    groups: ["sre"]}` (as `mcpp verify` shows a user)."""
    if isinstance(c, User):
        parts = [f"{k}: {_v(v)}" for k, v in sorted(c.attrs.items())]
        parts.append(f"groups: {_v(sorted(c.groups))}")
        return f"User::{_v(c.id)} {{{', '.join(parts)}}}"
    who = f"grant {_v(c.id)}"
    if c.label:
        who += f" (label {_v(c.label)})"
    if c.groups:
        who += " in " + ", ".join(f"Group::{_v(x)}" for x in sorted(c.groups))
    return who


def caller_dict(c: Grant | User) -> dict:
    """The caller in JSON reports: under `grant` for a grant, `user` for a user."""
    if isinstance(c, User):
        return {"user": {"id": c.id, "attrs": dict(sorted(c.attrs.items())), "groups": sorted(c.groups)}}
    return {"grant": {"id": c.id, "label": c.label, "groups": sorted(c.groups)}}


def call_text(step: Step) -> str:
    who = caller_text(step.caller)
    when = step.time.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{step.tool} {_v(step.arguments)} by {who} on server {_v(step.server)} at {when}"


def mismatch_lines(m: Mismatch, sequence: bool) -> list[str]:
    """What the case expected against what the engine said: `-` expected, `+` actual,
    two spaces for a key that matched."""
    where = f"call {m.step_index + 1}" if sequence else "call"
    if m.step.repeat > 1:
        where += f" (repeat {m.repeat_index + 1} of {m.step.repeat})"
    a = m.actual
    by = f" (policy {_v(a['policy'])})" if a.get("policy") else ""
    out = [f"{where}: {call_text(m.step)}",
           f"engine: {a['decision']} by {a['rule']}{by}: {a['message']}"]
    for k, v in m.expected.items():
        if a.get(k) == v:
            out.append(f"  {k} = {_v(v)}")
        else:
            out.append(f"- {k} = {_v(v)}")
            out.append(f"+ {k} = {_v(a.get(k))}")
    return out


# ---- text ------------------------------------------------------------------------------------


def text(run: Run, show_passed: bool = True) -> str:
    out: list[str] = []  # the problems go to stderr, as `mcpp check`'s diagnostics do
    for f in run.files:
        out.append(f"{f.test} → {f.policy}")
        for c in f.cases:
            if c.passed:
                if show_passed:
                    out.append(f"  ok    {c.case.name}")
                continue
            line = c.mismatch.step.line if c.mismatch and c.mismatch.step.line else c.case.line
            out.append(f"  FAIL  {c.case.name}" + (f"  ({f.test}:{line})" if line else ""))
            assert c.mismatch is not None
            out += ["        " + s for s in mismatch_lines(c.mismatch, c.case.sequence)]
    for p in run.untested:
        out.append(f"note: no test file tests {p}")
    files = len({f.test for f in run.files})
    summary = f"{run.passed} passed, {run.failed} failed ({len(run.cases)} cases in {files} test file{'s' if files != 1 else ''})"
    if run.problems:
        summary += f"; {len(run.problems)} error{'s' if len(run.problems) != 1 else ''} in test files or policies"
    out.append(summary)
    return "\n".join(out)


def coverage_text(run: Run) -> str:
    out: list[str] = []
    for name, rep in run.coverage.items():
        counts = rep.counts()
        c, n = counts["total"]
        out.append(f"coverage of {name}: {_pct(c, n)} ({c}/{n} items)")
        out.append(f"  {'':<12}{'covered':>9}{'items':>7}{'':>9}")
        for cat in CATEGORIES:
            c, n = counts[cat]
            out.append(f"  {cat:<12}{c:>9}{n:>7}{_pct(c, n):>9}")
        missing = rep.uncovered()
        if missing:
            out.append("  not covered:")
            for u in missing:
                where = f"{name}:{u['line']}:{u['col']}" if u["line"] else name
                out.append(f"    {where}: {u['what']}")
    if len(run.coverage) > 1:
        covered = sum(r.counts()["total"][0] for r in run.coverage.values())
        total = sum(r.counts()["total"][1] for r in run.coverage.values())
        out.append(f"total coverage: {_pct(covered, total)} ({covered}/{total} items in {len(run.coverage)} policies)")
    return "\n".join(out)


def _pct(c: int, n: int) -> str:
    return f"{100.0 if n == 0 else 100.0 * c / n:.1f}%"


# ---- JSON ------------------------------------------------------------------------------------


def _case_dict(c: CaseResult) -> dict:
    d: dict = {"name": c.case.name, "status": "pass" if c.passed else "fail", "calls": c.calls}
    if c.case.line:
        d["line"] = c.case.line
    if c.mismatch is not None:
        m = c.mismatch
        d["failure"] = {
            "call": m.step_index, "repeat": m.repeat_index, "line": m.step.line or c.case.line,
            "request": {"name": m.step.tool, "arguments": m.step.arguments},
            **caller_dict(m.step.caller),
            "server": m.step.server, "time": m.step.time.isoformat(),
            "expected": m.expected, "actual": m.actual, "mismatched": m.keys,
        }
    return d


def coverage_json(run: Run) -> dict:
    reports = list(run.coverage.values())
    covered = sum(r.counts()["total"][0] for r in reports)
    total = sum(r.counts()["total"][1] for r in reports)
    return {"policies": [r.to_dict() for r in reports],
            "summary": {"covered": covered, "total": total, "percent": round(total_percent(reports), 2)}}


def json_report(run: Run) -> dict:
    out: dict = {
        "files": [{"test": str(f.test), "policy": str(f.policy), "cases": [_case_dict(c) for c in f.cases]}
                  for f in run.files],
        "problems": [{"file": d.file, "line": d.span.line, "col": d.span.col, "message": d.message}
                     for d, _ in run.problems],
        "untested": [str(p) for p in run.untested],
        "summary": {"passed": run.passed, "failed": run.failed, "errors": len(run.problems)},
    }
    if run.coverage:
        out["coverage"] = coverage_json(run)
    return out


# ---- JUnit XML -------------------------------------------------------------------------------


def _classname(test: Path) -> str:
    name = str(test)
    if name.endswith(".test.toml"):
        name = name[: -len(".test.toml")]
    return name.replace("\\", "/").strip("/").replace("/", ".")


def junit(run: Run) -> str:
    root = ET.Element("testsuites", name="mcpp test", tests=str(len(run.cases) + len(run.problems)),
                      failures=str(run.failed), errors=str(len(run.problems)))
    multi: dict[Path, set[Path]] = {}
    for f in run.files:
        multi.setdefault(f.test, set()).add(f.policy)
    for f in run.files:
        seconds = sum(c.seconds for c in f.cases)
        suite = ET.SubElement(root, "testsuite", name=f"{f.test} ({f.policy})", tests=str(len(f.cases)),
                              failures=str(f.failed), errors="0", skipped="0", time=f"{seconds:.6f}", file=str(f.test))
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="policy", value=str(f.policy))
        for c in f.cases:
            name = c.case.name if len(multi[f.test]) == 1 else f"{c.case.name} [{f.policy.name}]"
            tc = ET.SubElement(suite, "testcase", name=name, classname=_classname(f.test), file=str(f.test),
                               time=f"{c.seconds:.6f}")
            if c.case.line:
                tc.set("line", str(c.case.line))
            if c.mismatch is not None:
                m = c.mismatch
                first = m.keys[0]
                fail = ET.SubElement(tc, "failure", type="mismatch",
                                     message=f"{first}: expected {_v(m.expected[first])}, got {_v(m.actual.get(first))}")
                fail.text = "\n".join(mismatch_lines(m, c.case.sequence))
    if run.problems:
        suite = ET.SubElement(root, "testsuite", name="test files and policies", tests=str(len(run.problems)),
                              failures="0", errors=str(len(run.problems)), skipped="0", time="0")
        for d, source in run.problems:
            tc = ET.SubElement(suite, "testcase", name=f"{d.file}:{d.span.line}:{d.span.col}" if d.span.line else d.file,
                               classname="mcpp.test.load", file=d.file)
            err = ET.SubElement(tc, "error", type=d.code, message=d.message)
            err.text = d.render(source)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
