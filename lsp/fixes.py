"""Quick fixes: the one edit that clearly resolves a diagnostic, as `data["fix"]`.

The format is the catalog validator's: `{"title", "edits": [{"start", "end", "text"}]}`
with code-point offsets into the source the diagnostic was computed on (line/col keys
may be present too and are ignored here). Producers:

- the catalog validator and, where it provides one, the analyzer: used as given;
- `attach_fixes` (run in the analyzer's worker, next to the program): fills in the fix
  for lints whose finding already carries it as advice: `unanchored-regex` (the
  anchored pattern) and `forbid-bypass` (the type guard to add to the permit that
  lets the call through, or the permit to add under `default allow`);
- `language_fix` (run on every keystroke): "did you mean" fixes for syntax and
  validation errors whose message names the replacement.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import re

from mcpp.lang.diagnostics import Diagnostic

_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_ANCHOR_NOTE = re.compile(r'anchor it: \.matches\(("(?:[^"\\]|\\.)*")\)')
_GUARD_NOTE = re.compile(r"add `when \{ (?P<guard>.+?) \}` to permit (?P<pid>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")")
_GOVERN_NOTE = re.compile(r"govern the tool with `(?P<stmt>permit \(.+?\) when \{ .+? \};)`")


def edit(start: int, end: int, text: str) -> dict:
    return {"start": start, "end": end, "text": text}


def attach_fixes(diags: list[Diagnostic], program) -> list[Diagnostic]:
    """The analyzer's findings, each fixable one with `data["fix"]` filled in."""
    source = program.document.source if program.document is not None else ""
    out = []
    for d in diags:
        if "fix" not in d.data and source:
            fix = None
            if d.code == "unanchored-regex":
                fix = _anchor_fix(d, source)
            elif d.code == "forbid-bypass":
                fix = _guard_fix(d, program, source)
            if fix is not None:
                d = dataclasses.replace(d, data={**d.data, "fix": fix})
        out.append(d)
    return out


def _anchor_fix(d: Diagnostic, source: str) -> dict | None:
    """Replace the regex literal of `.matches("…")` (the finding's span) with the anchored
    pattern the lint advises, or `^(?:…)$` when it gives none."""
    text = source[d.span.start : d.span.end]
    call = text.rfind(".matches(")
    if call < 0:
        return None
    lit = _STRING.search(text, call)
    if lit is None:
        return None
    replacement = None
    for note in d.notes:
        m = _ANCHOR_NOTE.search(note)
        if m:
            replacement = m.group(1)
    if replacement is None:
        regex = d.data.get("regex")
        if not isinstance(regex, str):
            return None
        from mcpp.lang.strings import quote

        replacement = quote(("" if regex.startswith("^") else "^") + f"(?:{regex})" + ("" if regex.endswith("$") else "$"))
    start = d.span.start + lit.start()
    return {"title": f"Anchor the regex: {replacement}", "edits": [edit(start, start + len(lit.group()), replacement)]}


def _guard_fix(d: Diagnostic, program, source: str) -> dict | None:
    """Add the guard the lint advises where an error fails closed: a `when` clause on the
    permit that lets the bypassing call through, or (under `default allow`) a permit that
    governs the tool."""
    for note in d.notes:
        m = _GUARD_NOTE.search(note)
        if m:
            try:
                pid = ast.literal_eval(m.group("pid"))
            except (ValueError, SyntaxError):
                return None
            guard = m.group("guard")
            for p in program.policies:
                if p.id == pid:
                    end = p.policy.span.end
                    if end and source[end - 1 : end] == ";":
                        return {"title": f"Guard permit {pid!r}: when {{ {guard} }}",
                                "edits": [edit(end - 1, end - 1, f"\nwhen {{ {guard} }}")]}
            return None
        m = _GOVERN_NOTE.search(note)
        if m:
            rule = d.data.get("rule")
            for p in program.policies:
                if p.id == rule:
                    end = p.policy.span.end
                    stmt = m.group("stmt")
                    return {"title": f"Govern the tool: {stmt}", "edits": [edit(end, end, "\n\n" + stmt)]}
            return None
    return None


def language_fix(d: Diagnostic, source: str) -> dict | None:
    """A fix for a syntax or validation error whose message names the replacement."""
    s, e = d.span.start, d.span.end
    got = source[s:e]
    msg = d.message
    if d.code == "syntax":
        for hint, repl in (("did you mean '=='?", "=="), ("did you mean '&&'?", "&&"), ("did you mean '||'?", "||")):
            if hint in msg and got and got in "=&|":
                return {"title": f"Replace '{got}' with '{repl}'", "edits": [edit(s, e, repl)]}
        if "strings use double quotes" in msg and got == "'":
            close = source.find("'", e)
            line_end = source.find("\n", e)
            if close > 0 and (line_end < 0 or close < line_end):
                return {"title": "Use double quotes", "edits": [edit(s, e, '"'), edit(close, close + 1, '"')]}
        return None
    m = re.match(r"context has no attribute '([^']*)'", msg)
    if m and got.startswith("context"):
        fixed = f"context.input.{m.group(1)}" if re.fullmatch(r"[_a-zA-Z][_a-zA-Z0-9]*", m.group(1)) else \
            f'context.input["{m.group(1)}"]'
        return {"title": f"Use {fixed}", "edits": [edit(s, e, fixed)]}
    m = re.match(r"unknown entity type (\S+)", msg)
    if m:
        from mcpp.lang.program import ENTITY_TYPES

        near = difflib.get_close_matches(m.group(1), sorted(ENTITY_TYPES), n=1, cutoff=0.5)
        if near and got.startswith(m.group(1)):
            return {"title": f"Replace with {near[0]}", "edits": [edit(s, s + len(m.group(1)), near[0])]}
    return None
