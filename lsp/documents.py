"""One open policy: its text, incremental parse, program, and the findings to publish."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING

from mcpp.lang import ir
from mcpp.lang.diagnostics import Diagnostic, Span
from mcpp.lang.program import Program, build_program

if TYPE_CHECKING:
    from mcpp import Policy

from .findings import Finding
from .fixes import language_fix
from .incremental import IncrementalParser
from .positions import LineIndex


class PolicyDocument:
    def __init__(self, uri: str, path: str | None, encoding: str | None):
        self.uri = uri
        self.path = path  # the file system path, when the URI has one
        self.filename = path or uri
        self.encoding = encoding
        self.parser = IncrementalParser(self.filename)
        self.version: int | None = None
        self.text = ""
        self.index = LineIndex("", encoding)
        self.program: Program | None = None
        self.catalog = None
        self.errors = 0  # error-level syntax and validation findings: the program is incomplete
        self.catalog_checks = CatalogChecks()
        self.fast: list[Finding] = []  # syntax, validation and catalog findings of this version
        self.analysis: list[Finding] = []  # the analyzer's, moved along with edits
        self.analysis_version: int | None = None  # the version `analysis` was computed for
        self.timings: dict[str, float] = {}
        self._policy: Policy | None = None

    def update(self, text: str, version: int | None, catalogs, settings, roots: list[str]) -> None:
        """Re-check the new text: parse (incrementally), validate, check against the catalog."""
        t0 = time.perf_counter()
        doc, syntax, edit = self.parser.update(text)
        t1 = time.perf_counter()
        program, validation = build_program(doc)
        t2 = time.perf_counter()
        diags: list[Diagnostic] = list(syntax) + list(validation)
        self.catalog = None
        if catalogs is not None:
            catalog, problem = catalogs.for_policy(self.path, program, settings.catalog, roots)
            self.catalog = catalog
            if problem is not None:
                diags.append(problem)
            if catalog is not None:
                try:
                    diags.extend(self.catalog_checks.run(program, catalog))
                except Exception as e:  # a schema the checker chokes on must not cost the other diagnostics
                    self.catalog_checks = CatalogChecks()
                    diags.append(Diagnostic(f"the catalog check failed: {type(e).__name__}: {e}", Span(1, 1, 1, 1, 0, 0),
                                            "warning", "catalog", self.filename))
        t3 = time.perf_counter()
        self.text, self.version, self.program = text, version, program
        self.index = LineIndex(text, self.encoding)
        fast = []
        for d in diags:
            if d.code in ("syntax", "validation") and "fix" not in d.data:
                fix = language_fix(d, text)
                if fix is not None:
                    d = dataclasses.replace(d, data={**d.data, "fix": fix})
            fast.append(Finding.of(d, self.index, text))
        self.fast = fast
        self.errors = sum(1 for d in list(syntax) + list(validation) if d.severity == "error")
        if edit is not None:
            self.analysis = [m for m in (f.moved(edit) for f in self.analysis) if m is not None]
        else:
            self.analysis = []
        self._policy = None
        t4 = time.perf_counter()
        self.timings = {"parse_ms": (t1 - t0) * 1000, "validate_ms": (t2 - t1) * 1000,
                        "catalog_ms": (t3 - t2) * 1000, "findings_ms": (t4 - t3) * 1000,
                        "reused_chunks": self.parser.reused, "chunks": len(self.parser.chunks)}

    def set_analysis(self, diags: list[Diagnostic]) -> None:
        findings = []
        for d in diags:
            f = Finding.of(d, self.index, self.text)
            f.related = tuple(self._related(d))
            findings.append(f)
        self.analysis = findings
        self.analysis_version = self.version

    def _related(self, d: Diagnostic):
        """The other rules a finding names, as places to jump to."""
        program = self.program
        if program is None:
            return
        spans = {p.id: (p.stmt.span, p.effect) for p in program.policies}
        spans.update({li.id: (li.stmt.span, "limit") for li in program.limits})
        data = d.data or {}
        decision = data.get("decision") if isinstance(data.get("decision"), dict) else None
        if decision and decision.get("policy") in spans:
            span, kind = spans[decision["policy"]]
            verb = "allows" if decision.get("decision") == "allow" else "denies"
            yield (*self.index.span_offsets(span), f"{kind} {decision['policy']!r} {verb} the counterexample call")
        if data.get("implied_by") in spans:
            span, kind = spans[data["implied_by"]]
            yield (*self.index.span_offsets(span), f"{kind} {data['implied_by']!r} applies whenever this rule does")

    def policy(self) -> Policy | None:
        """This version as a `mcpp.Policy`, for deciding sample calls through the public
        API like every other caller (built on first use: compiling every rule costs more
        than a keystroke should). It wraps the program parsed incrementally here."""
        if self._policy is None and self.program is not None:
            from mcpp import Policy

            self._policy = Policy(self.program, catalog=self.catalog)  # decides as the gateway: defaults filled
        return self._policy


class CatalogChecks:
    """The catalog validator's findings, per statement, reused while the statement (the
    same IR object: the incremental parser keeps unchanged statements), its id, the
    action groups and the catalog are unchanged — checking every rule of a 2,000-line
    policy on each keystroke would cost more than parsing it."""

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.cache: dict[int, tuple] = {}  # id(stmt) → (stmt, rule id, start, line, diags)

    def run(self, program: Program, catalog) -> list[Diagnostic]:
        from mcpp.catalog import validate

        key = (id(catalog), tuple(sorted((g, tuple(sorted(m))) for g, m in program.groups.items())))
        if key != self.key:
            self.key, self.cache = key, {}
        ids = {id(p.stmt): p.id for p in program.policies}
        ids.update({id(li.stmt): li.id for li in program.limits})
        ids.update({id(a.stmt): a.id for a in program.asserts})
        out: list[Diagnostic] = []
        todo = []
        cache: dict[int, tuple] = {}
        document = program.document
        assert document is not None  # built from a source
        for s in document.statements:
            hit = self.cache.get(id(s))
            if hit is not None and hit[0] is s and hit[1] == ids.get(id(s)):
                _, sid, start, line, diags = hit
                dp, dl = s.span.start - start, s.span.line - line
                if dp or dl:
                    diags = [_shift(d, dp, dl) for d in diags]
                cache[id(s)] = (s, sid, s.span.start, s.span.line, diags)
                out.extend(diags)
            else:
                todo.append(s)
        if todo:
            wanted = {id(s) for s in todo}
            sub = Program(
                default=program.default, default_span=program.default_span, hidden=program.hidden,
                groups=program.groups, group_spans=program.group_spans,
                policies=[p for p in program.policies if id(p.stmt) in wanted],
                limits=[li for li in program.limits if id(li.stmt) in wanted],
                asserts=[a for a in program.asserts if id(a.stmt) in wanted],
                document=ir.Document(tuple(todo), (), document.source, program.filename),
                filename=program.filename,
            )
            found = validate(sub, catalog)
            out.extend(found)
            placed = {id(d) for d in found}
            for s in todo:
                mine = [d for d in found if s.span.start <= d.span.start <= s.span.end]
                placed -= {id(d) for d in mine}
                cache[id(s)] = (s, ids.get(id(s)), s.span.start, s.span.line, mine)
            if placed:  # a finding outside every statement: keep nothing we cannot place
                cache = {}
        self.cache = cache
        return sorted(out, key=lambda d: (d.span.start, d.code, d.message))


def _shift(d: Diagnostic, dp: int, dl: int) -> Diagnostic:
    s = d.span
    span = Span(s.line + dl, s.col, s.end_line + dl, s.end_col, s.start + dp, s.end + dp)
    data = d.data
    fix = data.get("fix") if isinstance(data, dict) else None
    if isinstance(fix, dict) and isinstance(fix.get("edits"), list):
        edits = []
        for e in fix["edits"]:
            e = dict(e)
            for k in ("start", "end"):
                if isinstance(e.get(k), int):
                    e[k] += dp
            for k in ("line", "end_line"):
                if isinstance(e.get(k), int):
                    e[k] += dl
            edits.append(e)
        data = {**data, "fix": {**fix, "edits": edits}}
    return dataclasses.replace(d, span=span, data=data)
