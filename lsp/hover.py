"""Hover: tools (from the catalog), argument paths (their schema type), keywords,
operators and methods (their meaning, from the language reference)."""

from __future__ import annotations

import json

from lsprotocol import types as t

from mcpp.lang import ir
from mcpp.lang.atoms import has_path, input_path

from .documents import PolicyDocument
from .locate import here, node_path, statement_at
from .reference import hover_markdown
from .tools import argument_info, description_of, statement_tools, text_tools, tool_markdown, types_text

def hover(doc: PolicyDocument, offset: int, docs_base: str) -> t.Hover | None:
    h = here(doc.parser.chunks, doc.text, offset)
    tok = h.token
    if tok is None:
        return None
    program = doc.program
    stmt = statement_at(program.document, offset) if program is not None and program.document else None
    rng = doc.index.range(tok.start_pos, tok.end_pos)

    if tok.type in ("ENTITY_TYPE", "STRING"):
        ref = _entity_at(stmt, offset) if stmt is not None else None
        if ref is None:
            ref = _entity_from_tokens(h, doc)  # a statement being typed has no IR yet
        if ref is not None:
            return _md(_entity_markdown(doc, ref, docs_base), doc.index.span_range(ref.span))

    key = str(tok)
    if tok.type == "INPUT_PATH":  # `context.input.a.b` is one token: which segment is under the cursor?
        parts = key.split(".")
        rel, acc, idx = offset - tok.start_pos, 0, len(parts) - 1
        for i, part in enumerate(parts):
            if rel <= acc + len(part):
                idx = i
                break
            acc += len(part) + 1
        seg_start = tok.start_pos + sum(len(p) + 1 for p in parts[:idx])
        seg = doc.index.range(seg_start, seg_start + len(parts[idx]))
        if idx >= 2:
            return _md(_argument_markdown(doc, _tools_in_scope(doc, stmt, h), tuple(parts[2 : idx + 1])), seg)
        key, rng = parts[idx], seg
    elif tok.type in ("NAME", "STRING") and stmt is not None:
        path = _node_path_at(stmt, offset, tok)
        if path:
            return _md(_argument_markdown(doc, _tools_in_scope(doc, stmt, h), path), rng)
    if tok.type == "NAME":
        prev = h.before[-1] if h.before else None
        if prev is not None and str(prev) == "." and key not in ("contains", "containsAll", "containsAny",
                                                                 "isEmpty", "matches", "label", "input"):
            return None  # an attribute of something that is not the call's arguments
    if tok.type == "STRING":
        return None
    text = hover_markdown(key, docs_base)
    return _md(text, rng) if text is not None else None


def _md(value: str, rng: t.Range) -> t.Hover:
    return t.Hover(contents=t.MarkupContent(kind=t.MarkupKind.Markdown, value=value), range=rng)


def _entity_at(stmt, offset: int) -> ir.EntityRef | None:
    for n in reversed(node_path(stmt, offset)):
        if isinstance(n, ir.EntityRef):
            return n
        if isinstance(n, ir.EntityLit):
            return n.entity
    return None


def _entity_from_tokens(h, doc: PolicyDocument) -> ir.EntityRef | None:
    """`Type::"id"` from the tokens around the cursor, for statements that do not parse."""
    from mcpp.lang.diagnostics import Span
    from mcpp.lang.strings import EscapeError, unescape

    from .locate import tokens_of

    tok = h.token
    if tok.type == "STRING" and h.before and h.before[-1].type == "ENTITY_TYPE":
        etype, lit = h.before[-1], tok
    elif tok.type == "ENTITY_TYPE" and h.chunk is not None:
        toks, _ = tokens_of(h.chunk, doc.text)
        i = next((k for k, x in enumerate(toks) if x.start_pos == tok.start_pos), None)
        if i is None or i + 1 >= len(toks) or toks[i + 1].type != "STRING":
            return None
        etype, lit = tok, toks[i + 1]
    else:
        return None
    try:
        value = unescape(str(lit))
    except EscapeError:
        return None
    span = Span(etype.line, etype.column, lit.end_line, lit.end_column, etype.start_pos, lit.end_pos)
    return ir.EntityRef(str(etype)[:-2], value, span)


def _entity_markdown(doc: PolicyDocument, ref: ir.EntityRef, docs_base: str) -> str:
    program = doc.program
    if ref.type == "Action" and program is not None and ref.id in program.groups:
        members = ", ".join(f"`{m}`" for m in sorted(program.groups[ref.id]))
        return f"**action group** `{ref.id}`\n\nTools: {members}\n\n`action in Action::\"{ref.id}\"` matches each of them."
    if ref.type == "Action":
        return tool_markdown(doc.catalog, ref.id, program)
    base = hover_markdown(ref.type, docs_base) or f"**{ref.type}**"
    return f"`{ref}`\n\n{base}"


def _node_path_at(stmt, offset: int, tok) -> tuple[str, ...] | None:
    """The argument path of the innermost `context.input…` node under the cursor (written
    with spaces or `["key"]`, it is several tokens), cut after the key hovered."""
    for n in reversed(node_path(stmt, offset)):
        if isinstance(n, ir.GetAttr):
            path = input_path(n)
            if path:
                return path
        if isinstance(n, ir.Has):
            full = has_path(n)
            key = str(tok)[1:-1] if tok.type == "STRING" else str(tok)
            if full is not None and key in full:
                return full[: full.index(key) + 1]
    return None


def _tools_in_scope(doc: PolicyDocument, stmt, h) -> list[str] | None:
    """The tools of the statement under the cursor (None = any tool); for a statement that
    does not parse yet, read from its text."""
    if stmt is not None:
        return statement_tools(doc.program, stmt)
    if h.chunk is not None:
        return text_tools(doc.program, doc.text[h.chunk.start : h.chunk.end])
    return None


def _filled_text(schema: dict, path: tuple[str, ...]) -> str:
    """` (default 5000, filled in by the gateway)` for an argument with a declared default the
    gateway fills into calls that omit it (catalog/defaults.py), else ``."""
    from mcpp.catalog.defaults import level_at

    level = level_at(schema, path[:-1])
    if level is None or path[-1] not in level.defaults:
        return ""
    text = json.dumps(level.defaults[path[-1]], ensure_ascii=False)
    return f" (default `{text if len(text) <= 40 else text[:40] + '…'}`, filled in by the gateway)"


def _argument_markdown(doc: PolicyDocument, tools: list[str] | None, path: tuple[str, ...]) -> str:
    name = ".".join(path)
    head = f"**argument** `context.input.{name}` (`args.{name}` in the JSON form)"
    catalog = doc.catalog
    if catalog is None:
        return head + "\n\nNo tool catalog is configured, so its type is unknown."
    if tools is None:
        tools = sorted(catalog.tools)
    rows = []
    for tool, info in argument_info(catalog, tools, path):
        if info.problem:
            if len(tools) <= 8:
                rows.append(f"- `{tool}`: ⚠ {info.problem}")
            continue
        optional = info.optional_at is not None
        desc = description_of(info.view)
        rows.append(f"- `{tool}`: {types_text(info.view)}{' (optional)' if optional else ''}"
                    + _filled_text(catalog.tools[tool].input_schema, path) + (f" — {desc}" if desc else ""))
    if not rows:
        return head + "\n\nNo catalogued tool in this rule's scope has this argument."
    return head + "\n\n" + "\n".join(rows)
