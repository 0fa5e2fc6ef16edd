"""Quick fixes: the one edit that clearly resolves a diagnostic, as `data["fix"]`.

The format is the catalog validator's: `{"title", "edits": [{"start", "end", "text"}]}`
with code-point offsets into the source the diagnostic was computed on (line/col keys
may be present too and are ignored here). Producers:

- the catalog validator and the analyzer (`unanchored-regex`: the anchored pattern;
  `forbid-bypass`: the guard to add to the permit that lets the call through, or the
  permit to add under `default allow`): used as given;
- `language_fix` (run on every keystroke): "did you mean" fixes for syntax and
  validation errors whose message names the replacement.
"""

from __future__ import annotations

import re

from mcpp.lang.diagnostics import Diagnostic, did_you_mean

_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')


def edit(start: int, end: int, text: str) -> dict:
    return {"start": start, "end": end, "text": text}


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

        near = did_you_mean(m.group(1), sorted(ENTITY_TYPES), max_edits=max(1, len(m.group(1)) // 2))  # short type names
        if near and got.startswith(m.group(1)):
            return {"title": f"Replace with {near}", "edits": [edit(s, s + len(m.group(1)), near)]}
    return None
