"""What is at an offset: the token (keywords, operators, strings and comments are not IR
nodes), the innermost IR node, and the statement around it."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from mcpp.lang import ir
from mcpp.lang.lexer import Tok
from mcpp.lang.parser import tokens

from .incremental import Chunk


@dataclass
class Here:
    """The token at an offset and the tokens before it in the same statement."""

    token: Tok | None  # None when the offset is between tokens
    before: list[Tok]
    comment: Tok | None  # the comment the offset is in, if any
    chunk: Chunk | None


def chunk_at(chunks: list[Chunk], offset: int) -> Chunk | None:
    if not chunks:
        return None
    i = bisect.bisect_right([c.start for c in chunks], offset) - 1
    if i < 0:
        return None
    c = chunks[i]
    if offset > c.end and i + 1 < len(chunks):
        return None
    return c


def tokens_of(chunk: Chunk, text: str) -> tuple[list[Tok], list[Tok]]:
    """The chunk's tokens (up to a lexical error) and its comments, at file positions."""
    return tokens(text, chunk.start, chunk.end)


def here(chunks: list[Chunk], text: str, offset: int, *, touching: bool = True) -> Here:
    """The token containing `offset`; with `touching`, also one that ends right at it
    (the cursor just after a word still "is on" the word)."""
    chunk = chunk_at(chunks, offset)
    if chunk is None:
        return Here(None, [], None, None)
    toks, comments = tokens_of(chunk, text)
    for c in comments:
        if c.start_pos <= offset < c.end_pos or (offset == c.end_pos and touching):
            return Here(None, [], c, chunk)
    starts = [t.start_pos for t in toks]
    i = bisect.bisect_right(starts, offset) - 1
    if i >= 0 and (offset < toks[i].end_pos or (touching and offset == toks[i].end_pos)):
        return Here(toks[i], toks[:i], None, chunk)
    return Here(None, toks[: i + 1], None, chunk)


def statement_at(doc: ir.Document, offset: int):
    """The statement whose span holds `offset` (end inclusive), or None."""
    for s in doc.statements:
        if s.span.start <= offset <= s.span.end:
            return s
        if s.span.start > offset:
            break
    return None


def node_path(root, offset: int) -> list:
    """The nodes from `root` down to the innermost one whose span holds `offset`."""
    path = [root]
    node = root
    while True:
        best = None
        for ch in node.children():
            sp = ch.span
            if sp.start <= offset < sp.end or (sp.start == sp.end == offset):
                best = ch
                break
        if best is None:
            # the cursor right after a node (end of a word) counts as on it
            for ch in node.children():
                if ch.span.end == offset:
                    best = ch
                    break
        if best is None:
            return path
        path.append(best)
        node = best
