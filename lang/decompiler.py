"""`mcpp decompile`: the JSON form → readable .mcpp.

The text is the canonical formatting of the IR that gives the JSON its meaning
(jsonform.to_document), so compiling it back yields a document with the same
decisions. Policy ids are JSON pointers into the original document.

The JSON form has no `like`: the compiler writes `x like "prod-*"` as the regex
`^prod-(?s:.*)$` (regex.like_to_regex). A regex of exactly that shape is turned back
into `like`, which is what the author wrote and means the same: `like_to_regex` is
inverted precisely (`like_chunks`), and only a pattern it would produce again, byte for
byte, counts. Any other regex stays `.matches(…)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

from . import ir
from .formatter import format_document
from .jsonform import loads, to_document
from .regex import _META, like_to_regex

_WILDCARD = "(?s:.*)"


def decompile(text: str, filename: str = "<json>") -> str:
    doc = to_document(loads(text, filename), filename)
    header = f"// Decompiled from {Path(filename).name} by `mcpp decompile`; @id values are JSON pointers into it.\n\n"
    return header + format_document(doc.map_children(_restore_like))


def like_chunks(regex: str) -> tuple[str, ...] | None:
    """The `like` pattern (literal chunks between `*`s) whose `like_to_regex` is exactly
    `regex`, or None when `regex` is not of that form."""
    if not (regex.startswith("^") and regex.endswith("$")) or len(regex) < 2:
        return None
    body = regex[1:-1]
    chunks = []
    for escaped in body.split(_WILDCARD):  # escape() never writes `(?`, so the split is exact
        chunk = _unescape(escaped)
        if chunk is None:
            return None
        chunks.append(chunk)
    result = tuple(chunks)
    return result if like_to_regex(result) == regex else None


def _unescape(text: str) -> str | None:
    """The inverse of regex.escape: `\\` + a metacharacter, `\\x{hh}` for a control
    character, anything else literal; None for what escape() never writes."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            if i + 1 >= n:
                return None
            nxt = text[i + 1]
            if nxt in _META:
                out.append(nxt)
                i += 2
                continue
            if nxt == "x" and text.startswith("{", i + 2):
                end = text.find("}", i + 3)
                if end == -1:
                    return None
                try:
                    out.append(chr(int(text[i + 3:end], 16)))
                except (ValueError, OverflowError):
                    return None
                i = end + 1
                continue
            return None
        if c in _META:  # an unescaped metacharacter: a real regex, not a literal
            return None
        out.append(c)
        i += 1
    return "".join(out)


def _restore_like(node: ir.Node) -> ir.Node:
    if isinstance(node, ir.Matches):
        chunks = like_chunks(node.regex)
        if chunks is not None:
            return ir.Like(cast(ir.Expr, _restore_like(node.obj)), chunks, node.span)  # an expression stays one
    return node.map_children(_restore_like)
