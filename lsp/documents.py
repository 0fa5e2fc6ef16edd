"""One open policy: its text, incremental parse, program, and the findings to publish."""

from __future__ import annotations

import dataclasses
import time

from mcpp.lang.diagnostics import Diagnostic
from mcpp.lang.program import Program, build_program

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
        self.errors = 0  # error-level syntax/validation/catalog findings
        self.fast: list[Finding] = []  # syntax, validation and catalog findings of this version
        self.analysis: list[Finding] = []  # the analyzer's, moved along with edits
        self.analysis_version: int | None = None  # the version `analysis` was computed for
        self.timings: dict[str, float] = {}
        self._engine = None

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
                from mcpp.catalog import validate

                diags.extend(validate(program, catalog))
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
        self.errors = sum(1 for d in diags if d.severity == "error")
        if edit is not None:
            self.analysis = [m for m in (f.moved(edit) for f in self.analysis) if m is not None]
        else:
            self.analysis = []
        self._engine = None
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
        spans = {p.id: (p.policy.span, p.effect) for p in program.policies}
        spans.update({li.id: (li.limit.span, "limit") for li in program.limits})
        data = d.data or {}
        decision = data.get("decision") if isinstance(data.get("decision"), dict) else None
        if decision and decision.get("policy") in spans:
            span, kind = spans[decision["policy"]]
            verb = "allows" if decision.get("decision") == "allow" else "denies"
            yield (*self.index.span_offsets(span), f"{kind} {decision['policy']!r} {verb} the counterexample call")
        if data.get("implied_by") in spans:
            span, kind = spans[data["implied_by"]]
            yield (*self.index.span_offsets(span), f"{kind} {data['implied_by']!r} applies whenever this rule does")

    def engine(self):
        """The decision engine for this version (built on first use: compiling every rule
        costs more than a keystroke should)."""
        if self._engine is None and self.program is not None:
            from mcpp.runtime.engine import Engine

            self._engine = Engine(self.program)
        return self._engine
