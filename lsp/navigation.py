"""The outline (document symbols) and go to definition.

Definitions: an action group reference (`Action::"g"`) goes to its `group`
declaration; a tool goes to its entry in the tool catalog; a policy id wherever it is
mentioned — a string or a comment naming it, or a decision's rule pointer such as
`/policies/refund-cap` or `/tools/delete_pod/…` pasted into a comment — goes to the
statement(s) it names.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from lsprotocol import types as t
from pygls.uris import from_fs_path

from mcpp.lang import ir
from mcpp.lang.strings import EscapeError, unescape

from .documents import PolicyDocument
from .locate import here, node_path, statement_at

S = t.SymbolKind


def _stmt_id(program, stmt) -> str | None:
    for info in [*program.policies, *program.limits, *program.asserts]:
        if info.stmt is stmt:
            return info.id
    return None


def _describe_scope(scope: ir.Scope) -> str:
    a = scope.action
    if a.op == "any":
        return "any tool"
    names = ", ".join(e.id for e in a.entities)
    return names if a.op == "eq" else f"in {names}"


def symbols(doc: PolicyDocument) -> list[t.DocumentSymbol]:
    program = doc.program
    if program is None or program.document is None:
        return []
    rng = doc.index.span_range
    out = []
    for s in program.document.statements:
        sel = s.span
        if isinstance(s, ir.Policy):
            name, kind = _stmt_id(program, s) or "?", S.Function
            detail = f"{s.effect} · {_describe_scope(s.scope)}"
        elif isinstance(s, ir.Limit):
            name, kind = _stmt_id(program, s) or "?", S.Event
            detail = f"limit {s.counter!r} · max {s.max} per {s.window} · {_describe_scope(s.scope)}"
        elif isinstance(s, ir.Assert):
            name, kind = _stmt_id(program, s) or "?", S.Boolean
            detail = f"assert {s.kind} · {_describe_scope(s.scope)}"
        elif isinstance(s, ir.Group):
            name, kind, sel = s.entity.id, S.Namespace, s.entity.span
            detail = "action group"
            children = [t.DocumentSymbol(name=m.id, kind=S.EnumMember, range=rng(m.span), selection_range=rng(m.span),
                                         detail="tool" if m.id not in program.groups else "group")
                        for m in s.members]
            out.append(t.DocumentSymbol(name=name, kind=kind, range=rng(s.span), selection_range=rng(sel),
                                        detail=detail, children=children))
            continue
        elif isinstance(s, ir.Default):
            name, kind, detail = f"default {s.decision}", S.Constant, "tools no permit names"
        elif isinstance(s, ir.Hide):
            name, kind = "hide", S.Key
            detail = ", ".join(e.id for e in s.tools)
        else:
            continue
        for a in getattr(s, "annotations", ()):
            if a.key == "id":
                sel = a.span
        out.append(t.DocumentSymbol(name=name, kind=kind, range=rng(s.span), selection_range=rng(sel),
                                    detail=detail))
    return out


_POINTER = re.compile(r"/(policies|tools)/((?:[^/\s\"'`]|~[01])+)")
_WORD = re.compile(r"[\w.\-~/:]+")


def _ids_in(text: str, at: int) -> list[tuple[str, str]]:
    """Names a comment or string may refer to around position `at`: ("id", x) or ("tool", t)."""
    out = []
    for m in _POINTER.finditer(text):
        if m.start() <= at <= m.end():
            value = m.group(2).replace("~1", "/").replace("~0", "~")
            out.append(("id" if m.group(1) == "policies" else "tool", value))
    for m in re.finditer(r'"((?:[^"\\]|\\.)*)"|\'([^\']*)\'|`([^`]*)`', text):
        if m.start() <= at <= m.end():
            out.append(("id", next(g for g in m.groups() if g is not None)))
    for m in _WORD.finditer(text):
        if m.start() <= at <= m.end():
            out.append(("id", m.group().strip(".:,")))
    return out


def definition(doc: PolicyDocument, offset: int, uri: str) -> list[t.Location] | None:
    program = doc.program
    if program is None or program.document is None:
        return None
    h = here(doc.parser.chunks, doc.text, offset)
    stmt = statement_at(program.document, offset)
    if h.token is not None and h.token.type in ("ENTITY_TYPE", "STRING") and stmt is not None:
        for n in reversed(node_path(stmt, offset)):
            ref = n.entity if isinstance(n, ir.EntityLit) else n if isinstance(n, ir.EntityRef) else None
            if ref is None:
                continue
            if ref.type == "Action" and ref.id in program.group_spans:
                return [t.Location(uri=uri, range=doc.index.span_range(_group_decl_span(program, ref.id)))]
            if ref.type == "Action":
                loc = _catalog_location(doc, ref.id)
                return [loc] if loc else None
            break
    candidates: list[tuple[str, str]] = []
    if h.comment is not None:
        candidates = _ids_in(str(h.comment), offset - h.comment.start_pos)
    elif h.token is not None and h.token.type == "STRING":
        try:
            value = unescape(str(h.token))
        except EscapeError:  # a half-typed string: take it as written
            value = str(h.token)[1:-1]
        if _annotation_key(h) == "id":
            return None  # the definition itself
        candidates = _ids_in(value, max(0, offset - h.token.start_pos - 1)) + [("id", value)]
    for kind, name in candidates:
        locs = _locations(doc, uri, kind, name)
        if locs:
            return locs
    return None


def _annotation_key(h) -> str | None:
    b = h.before
    if len(b) >= 3 and str(b[-1]) == "(" and b[-2].type == "NAME" and str(b[-3]) == "@":
        return str(b[-2])
    return None


def _group_decl_span(program, name: str):
    for s in program.document.statements:
        if isinstance(s, ir.Group) and s.entity.id == name:
            return s.span
    return program.group_spans[name]


def _id_span(stmt):
    for a in getattr(stmt, "annotations", ()):
        if a.key == "id":
            return a.span
    return stmt.span


def _locations(doc: PolicyDocument, uri: str, kind: str, name: str) -> list[t.Location]:
    program = doc.program
    assert program is not None  # a located name is in a parsed program
    out = []
    infos: list[tuple[str, ir.Policy | ir.Limit | ir.Assert, frozenset[str] | None]] = [(p.id, p.stmt, p.tools) for p in program.policies]
    infos += [(li.id, li.stmt, li.tools) for li in program.limits]
    infos += [(a.id, a.stmt, a.tools) for a in program.asserts]
    for sid, stmt, tools in infos:
        if (kind == "id" and sid == name) or (kind == "tool" and tools is not None and name in tools):
            out.append(t.Location(uri=uri, range=doc.index.span_range(_id_span(stmt))))
    if kind == "tool" and not out and name in program.groups:
        out.append(t.Location(uri=uri, range=doc.index.span_range(_group_decl_span(program, name))))
    return out


def _catalog_location(doc: PolicyDocument, tool: str) -> t.Location | None:
    """The tool's entry in the catalog file: the line of its `"name": "<tool>"`."""
    catalog = doc.catalog
    if catalog is None or tool not in catalog.tools or not catalog.path:
        return None
    path = Path(catalog.path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    needle = re.compile(r'"name"\s*:\s*' + re.escape(json.dumps(tool, ensure_ascii=False)))
    m = needle.search(text) or re.compile(re.escape(json.dumps(tool, ensure_ascii=False)) + r"\s*:").search(text)
    if m is None:
        return None
    from .positions import LineIndex

    rng = LineIndex(text, doc.encoding).range(m.start(), m.end())
    return t.Location(uri=from_fs_path(str(path.resolve())) or path.resolve().as_uri(), range=rng)
