"""The mcpp analyzer: proofs about policies with Z3.

Entry points:
- `analyze(program)`: lint findings and failed/unknown `assert`s as Diagnostics (the
  language server's call; safe in a worker thread: each call has its own Z3 context);
- `verify.verify`, `lints.lint`, `diff.diff_programs`: the CLI's `verify`, `lint`, `diff`;
- `translation.validate_translation`: `mcpp compile`'s equivalence proof;
- `visibility.visible_tools`: the gateway's `tools/list` filter.

See docs/analyzer.md for the encoding, its soundness argument and its limits.
"""

from __future__ import annotations

import logging

from mcpp.lang.diagnostics import Diagnostic, Span

ASSERT_DOCS = "docs/analyzer.md#assertions"


def analyze(program, *, timeout_ms: int = 2000, cancel=None, catalog=None, deadline=None) -> list[Diagnostic]:
    """Lints plus every assertion that failed or could not be decided, as diagnostics.

    Codes: a lint id, `assert-failed` (error; the message holds the counterexample call),
    `assert-unknown` (warning), `assert` (an input error in an assertion). Never raises:
    an internal failure becomes one `analyzer-error` diagnostic. `timeout_ms` is per
    query; setting `cancel` (a threading.Event) makes it return [] at the next query.
    With `catalog` (a `catalog.model.Catalog`) the analysis is typed (analyzer/typed.py):
    calls are assumed to conform to their tool's inputSchema, as the gateway enforces.
    `deadline` (an analyzer.deadline.Deadline) bounds the whole analysis: what is left
    undecided when it runs out is `undecided` / `assert-unknown`, never a clean result."""
    from .lints import lint
    from .solve import Cancelled
    from .typed import typed_session
    from .verify import assert_problems, verify

    out: list[Diagnostic] = []
    try:
        # unknown tools are the catalog check's findings (`catalog-unknown-tool`, an error at the
        # same span); a typed `verify` reports an assertion about one UNKNOWN, never PASS
        problems = assert_problems(program)
        out += problems
        session = typed_session(catalog, timeout_ms, cancel, deadline)
        out += lint(program, session=session)
        if not problems:
            out += assert_diagnostics(program, verify(program, session=session))
    except Cancelled:
        return []
    except Exception as e:  # never a traceback in the editor: one diagnostic, and the traceback in the log
        logging.getLogger("mcpp.analyzer").exception("analysis failed")
        out.append(Diagnostic(f"the analyzer failed: {type(e).__name__}: {e}", Span(1, 1, 1, 1), "info",
                              "analyzer-error", program.filename, (), {"docs": "docs/analyzer.md"}))
    return out


def assert_diagnostics(program, results) -> list[Diagnostic]:
    out = []
    for r in results:
        if r.status == "pass":
            continue
        code = "assert-failed" if r.status == "fail" else "assert-unknown"
        sev = "error" if r.status == "fail" else "warning"
        verdict = "fails" if r.status == "fail" else "could not be decided"
        data = {"docs": ASSERT_DOCS, "assert": r.id, "kind": r.kind}
        if r.witness is not None:
            data["counterexample"] = r.to_dict()["counterexample"]
        if r.decision is not None:
            data["decision"] = r.decision
        out.append(Diagnostic(f"assert {r.id!r} ({r.kind}) {verdict}: {r.message}", r.span, sev, code,
                              program.filename, tuple(r.reasons), data))
    return out
