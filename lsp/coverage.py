"""Uncovered rules in the editor, when the policy has tests beside it.

If `<name>.test.toml` (docs/testing.md) sits beside the policy being edited and tests
it, the analyzer's worker runs its cases on the text being edited — after the same
debounce, off the editor's thread — and each permit, forbid, limit and assert they
leave uncovered gets an information diagnostic (`test-uncovered`) on the rule's first
line. Failing cases or a test file that cannot be used are one diagnostic at the top of
the file, pointing at `mcpp test`. Without a test file nothing is shown.
"""

from __future__ import annotations

from pathlib import Path

from mcpp.lang.diagnostics import Diagnostic, Span
from mcpp.lang.program import Program

DOCS = "docs/testing.md#in-the-editor"


def _first_line(span: Span, source: str) -> Span:
    """The rule's span cut at the end of its first line: a hint, not a wall of squiggles."""
    if span.end <= span.start:
        return span
    nl = source.find("\n", span.start, span.end)
    if nl < 0:
        return span
    return Span(span.line, span.col, span.line, span.col + (nl - span.start), span.start, nl)


def coverage_diagnostics(program: Program, filename: str, source: str) -> list[Diagnostic]:
    """Never raises: a failure here must not cost the analyzer's other findings."""
    try:
        return _diagnostics(program, filename, source)
    except Exception as e:
        return [Diagnostic(f"running the tests beside this policy failed: {type(e).__name__}: {e}",
                           Span(1, 1, 1, 1, 0, 0), "info", "test-file", filename, (), {"docs": DOCS})]


def _diagnostics(program: Program, filename: str, source: str) -> list[Diagnostic]:
    from mcpp.policytest.cases import TestFileError, load_test_file, test_files_for
    from mcpp.policytest.runner import filler, run_with_coverage

    path = Path(filename)
    if not path.is_absolute():
        return []
    test = next((t for t in test_files_for(path) if t.is_file()), None)
    if test is None:
        return []
    top = Span(1, 1, 1, 1, 0, 0)
    try:
        tf = load_test_file(test)
    except TestFileError as e:
        first = e.diagnostics[0]
        where = f"{test.name}:{first.span.line}:{first.span.col}" if first.span.line else test.name
        return [Diagnostic(f"{test.name} cannot be used ({where}: {first.message}); `mcpp test` lists every problem",
                           top, "info", "test-file", filename, (), {"docs": DOCS})]
    if not any(p.resolve() == path.resolve() for p in tf.policies):
        return []
    # the catalog the policy names admits each case's call as `mcpp test` admits it (a
    # catalog that cannot be used is reported by the policy's own diagnostics; here it
    # makes the except above say so)
    report, results = run_with_coverage(program, tf, filler(path, program))
    out: list[Diagnostic] = []
    spans = {p.id: p.stmt.span for p in program.policies}
    spans.update({li.id: li.stmt.span for li in program.limits})
    spans.update({a.id: a.stmt.span for a in program.asserts})
    for u in report.uncovered():
        if u["kind"] == "condition" or u["id"] not in spans:
            continue
        out.append(Diagnostic(f"not covered by {test.name}: {u['what']}", _first_line(spans[u["id"]], source),
                              "info", "test-uncovered", filename, (), {"docs": DOCS, "rule": u["id"]}))
    out.sort(key=lambda d: d.span.start)
    failing = [r.case.name for r in results if not r.passed]
    if failing:
        names = ", ".join(repr(n) for n in failing[:3]) + (" …" if len(failing) > 3 else "")
        out.append(Diagnostic(f"{len(failing)} of {len(tf.cases)} cases in {test.name} fail on this text ({names}); "
                              "`mcpp test` shows the differences", top, "info", "test-failed", filename, (),
                              {"docs": DOCS}))
    return out
