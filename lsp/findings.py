"""Our diagnostics as LSP diagnostics: ranges, severities, codes with docs links, fixes.

A `Finding` is a diagnostic pinned to offsets of one version of the text. The
analyzer's findings arrive for a version the user may already have edited; rather than
blank them until the next analysis, they are moved along with each edit (or dropped
when the edit touches them), so warnings do not flicker while typing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from lsprotocol import types as t

from mcpp.lang.diagnostics import Diagnostic

from .incremental import Edit
from .positions import LineIndex

SEVERITY = {
    "error": t.DiagnosticSeverity.Error,
    "warning": t.DiagnosticSeverity.Warning,
    "info": t.DiagnosticSeverity.Information,
    "hint": t.DiagnosticSeverity.Hint,
}

# Docs pages of the codes the language itself reports (the analyzer's and the catalog's
# findings name their own page in `data["docs"]`).
CODE_DOCS = {
    "syntax": "docs/editors.md#syntax",
    "validation": "docs/editors.md#validation",
    "type": "docs/editors.md#type",
    "regex": "docs/editors.md#regex",
    "catalog": "docs/catalogs.md#catalog-the-catalog-itself",
}
UNNECESSARY = {"dead-permit", "redundant-rule", "unsatisfiable-condition"}


def docs_path(d: Diagnostic) -> str | None:
    given = d.data.get("docs") if isinstance(d.data, dict) else None
    if isinstance(given, str) and given:
        return given
    if d.code in CODE_DOCS:
        return CODE_DOCS[d.code]
    if d.code.startswith("catalog-"):
        return f"docs/catalogs.md#{d.code}"
    if d.code.startswith("assert"):
        return "docs/analyzer.md#assertions"
    return f"docs/lints/{d.code}.md"


def _jsonable(value):
    """Diagnostic data goes over the wire as JSON: anything else becomes its string.

    A nested JSON-RPC message (a counterexample's `tools/call` request) is reduced to its
    method and params: pygls decodes any object with a "jsonrpc" key as a message, so a
    client or server built on it would mangle the data when it comes back."""
    def clean(v):
        if isinstance(v, dict):
            if "jsonrpc" in v and "method" in v:
                return {"method": v.get("method"), "params": clean(v.get("params"))}
            return {str(k): clean(x) for k, x in v.items() if k != "jsonrpc"}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    try:
        return clean(json.loads(json.dumps(value, default=str)))
    except (TypeError, ValueError):
        return None


@dataclass
class Finding:
    diag: Diagnostic
    start: int
    end: int
    fix: dict | None = None  # {"title", "edits": [(start, end, text, old)]}
    related: tuple = ()  # ((start, end, message), …): other places the finding is about
    static: tuple[tuple, dict] | None = field(default=None, compare=False, repr=False)  # cached JSON of the fixed parts

    @classmethod
    def of(cls, d: Diagnostic, index: LineIndex, source: str) -> "Finding":
        start, end = index.span_offsets(d.span)
        fix = None
        raw = d.data.get("fix") if isinstance(d.data, dict) else None
        if isinstance(raw, dict) and isinstance(raw.get("edits"), list):
            edits: list[tuple[int, int, str, str]] = []
            for e in raw["edits"]:
                if not (isinstance(e, dict) and isinstance(e.get("start"), int) and isinstance(e.get("end"), int)
                        and isinstance(e.get("text"), str) and 0 <= e["start"] <= e["end"] <= len(source)):
                    edits = []
                    break
                edits.append((e["start"], e["end"], e["text"], source[e["start"] : e["end"]]))
            if edits:
                fix = {"title": str(raw.get("title") or "Apply the suggested fix"), "edits": edits}
        return cls(d, start, end, fix)

    def moved(self, edit: Edit) -> "Finding | None":
        """This finding in the next version of the text, or None if the edit touched it."""
        def move(a: int, b: int):
            if b <= edit.start and not (a == b == edit.start and edit.old_end > edit.start):
                return a, b
            if a >= edit.old_end:
                return a + edit.delta, b + edit.delta
            return None

        span = move(self.start, self.end)
        if span is None:
            return None
        fix = None
        if self.fix is not None:
            edits: list[tuple[int, int, str, str]] = []
            for s, e, text, old in self.fix["edits"]:
                m = move(s, e)
                if m is None:
                    edits = []
                    break
                edits.append((m[0], m[1], text, old))
            fix = {"title": self.fix["title"], "edits": edits} if edits else None
        related = tuple((m[0], m[1], msg) for a, b, msg in self.related if (m := move(a, b)) is not None)
        return Finding(self.diag, span[0], span[1], fix, related, self.static)

    def to_json(self, index: LineIndex, docs_base: str, tags_ok: bool = False, uri: str | None = None) -> dict:
        """The LSP `Diagnostic`, as JSON. What does not depend on where the finding sits is
        built once: the analyzer's findings are re-published with every keystroke."""
        key = (docs_base, tags_ok)
        if self.static is None or self.static[0] != key:
            self.static = (key, self._static_json(docs_base, tags_ok))
        out = dict(self.static[1])
        out["range"] = index.range_json(self.start, self.end)
        if self.fix is not None:
            out["data"] = {**out["data"], "fix": {
                "title": self.fix["title"],
                "edits": [{"range": index.range_json(s, e), "newText": text, "oldText": old}
                          for s, e, text, old in self.fix["edits"]],
            }}
        if uri and self.related:
            out["relatedInformation"] = [{"location": {"uri": uri, "range": index.range_json(a, b)}, "message": msg}
                                         for a, b, msg in self.related]
        return out

    def _static_json(self, docs_base: str, tags_ok: bool) -> dict:
        d = self.diag
        message = d.message
        if d.notes:
            message += "".join(f"\nnote: {n}" for n in d.notes)
        out: dict = {
            "message": message,
            "severity": int(SEVERITY.get(d.severity, t.DiagnosticSeverity.Error)),
            "code": d.code,
            "source": "mcpp",
        }
        path = docs_path(d)
        if path:
            out["codeDescription"] = {"href": docs_base + path}
        if tags_ok and d.code in UNNECESSARY:
            out["tags"] = [int(t.DiagnosticTag.Unnecessary)]
        data: dict = {"code": d.code}
        extra = {k: v for k, v in (d.data or {}).items() if k not in ("fix", "docs")}
        if extra:
            data["details"] = _jsonable(extra)
        out["data"] = data
        return out
