"""Quick fixes: code actions built from the `fix` a published diagnostic carries.

The fix travels inside the diagnostic's `data` with LSP ranges and the text each edit
expects to replace; the client hands the diagnostic back with the request, and an edit
whose text is no longer there (the document moved on) is not offered.
"""

from __future__ import annotations

from typing import Sequence

from lsprotocol import types as t

from .documents import PolicyDocument


def _range(obj) -> t.Range | None:
    try:
        s, e = obj["start"], obj["end"]
        return t.Range(start=t.Position(line=int(s["line"]), character=int(s["character"])),
                       end=t.Position(line=int(e["line"]), character=int(e["character"])))
    except (KeyError, TypeError, ValueError):
        return None


def quick_fixes(doc: PolicyDocument, diagnostics: Sequence[t.Diagnostic]) -> list[t.CodeAction]:
    actions: list[t.CodeAction] = []
    seen: set[str] = set()
    for d in diagnostics:
        data = d.data if isinstance(d.data, dict) else None
        fix = data.get("fix") if data else None
        if not isinstance(fix, dict) or not isinstance(fix.get("edits"), list):
            continue
        edits: list[t.TextEdit] = []
        for e in fix["edits"]:
            rng = _range(e.get("range")) if isinstance(e, dict) else None
            if rng is None or not isinstance(e.get("newText"), str):
                edits = []
                break
            a, b = doc.index.offset(rng.start), doc.index.offset(rng.end)
            if isinstance(e.get("oldText"), str) and doc.text[a:b] != e["oldText"]:
                edits = []  # stale: the text under the fix changed since it was computed
                break
            edits.append(t.TextEdit(range=rng, new_text=e["newText"]))
        title = str(fix.get("title") or "Apply the suggested fix")
        if not edits or title in seen:
            continue
        seen.add(title)
        actions.append(t.CodeAction(
            title=title,
            kind=t.CodeActionKind.QuickFix,
            diagnostics=[d],
            is_preferred=len([x for x in diagnostics if isinstance(x.data, dict) and x.data.get("fix")]) == 1,
            edit=t.WorkspaceEdit(changes={doc.uri: edits}),
        ))
    return actions
