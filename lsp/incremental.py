"""Re-parse only the statements an edit touched.

A 2,000-line policy takes ~100 ms to parse from scratch, the whole budget for showing
diagnostics after a keystroke. The parser's own error recovery already works statement
by statement (`parse_chunks`: `split_statements`, then one `parse_chunk` per chunk at its
position in the file), and a chunk's IR depends only on its text and that position (and,
for a chunk that ends too early, on the token after it: `Parsed.reads_to`). So we keep
each chunk's result between versions: chunks before the edit are reused as they are,
chunks after it are reused with their spans moved by the edit's length, and only the
chunks in between are parsed. The result is what `parse_partial` returns for the whole
text (a property test holds the two to equality, spans included).

IR nodes are never mutated: moving a chunk rebuilds its nodes with moved spans
(`moved`), so a Document handed out earlier keeps its positions.
"""

from __future__ import annotations

import dataclasses

from mcpp.lang import ir
from mcpp.lang.diagnostics import Diagnostic, Span
from mcpp.lang.parser import Parsed, assemble, parse_chunk, parse_chunks, paused_gc, split_statements


class Chunk:
    """One top-level statement (or a run of comments) and what parsing it produced.
    `reads_to`: the end of the text the result depends on (see `Parsed.reads_to`)."""

    __slots__ = ("start", "end", "line", "col", "statements", "comments", "diags", "reads_to")

    def __init__(self, start, end, line, col, statements, comments, diags, reads_to=None):
        self.start, self.end, self.line, self.col = start, end, line, col
        self.statements, self.comments, self.diags = statements, comments, diags
        self.reads_to = end if reads_to is None else reads_to

    @classmethod
    def of(cls, parsed: Parsed, line: int, col: int) -> "Chunk":
        return cls(parsed.start, parsed.end, line, col, list(parsed.statements), list(parsed.comments),
                   list(parsed.diagnostics), parsed.reads_to)


_ATOMS = frozenset({str, int, float, bool, type(None)})
_FIELDS: dict[type, tuple[str, ...] | None] = {}


def _fields(cls: type) -> tuple[str, ...] | None:
    """The fields of an IR node class, span included (None: not a node)."""
    names = tuple(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else None
    _FIELDS[cls] = names
    return names


def moved(node, dpos: int, dline: int):
    """`node` rebuilt with every span under it moved by `dpos` characters and `dline` lines
    (columns stay: callers only move chunks whose first line starts at the same column).
    Values that are not IR nodes (strings, numbers, None) are shared, not copied.
    Iterative, so an expression nested thousands deep (`!!!…!x`) moves like any other."""
    done: list = []  # rebuilt values, in order
    todo: list = [(node, None)]  # (value, field names or None: not yet expanded)
    while todo:
        n, names = todo.pop()
        t = type(n)
        if names is None:
            if t in _ATOMS:
                done.append(n)
                continue
            if t is Span:
                done.append(Span(n.line + dline, n.col, n.end_line + dline, n.end_col, n.start + dpos, n.end + dpos))
                continue
            if t is tuple:
                todo.append((n, ()))
                todo.extend((x, None) for x in reversed(n))
                continue
            fields = _FIELDS[t] if t in _FIELDS else _fields(t)
            if fields is None:
                done.append(n)
                continue
            todo.append((n, fields))
            todo.extend((getattr(n, f), None) for f in reversed(fields))
            continue
        k = len(n) if t is tuple else len(names)
        if k:
            values = done[-k:]
            del done[-k:]
        else:
            values = []
        done.append(tuple(values) if t is tuple else t(*values))
    return done[0]


def _shift_span(s: Span, dpos: int, dline: int) -> Span:
    return Span(s.line + dline, s.col, s.end_line + dline, s.end_col, s.start + dpos, s.end + dpos)


def _shift_diag(d: Diagnostic, dpos: int, dline: int) -> Diagnostic:
    return dataclasses.replace(d, span=_shift_span(d.span, dpos, dline))


def _moved_chunk(c: Chunk, dpos: int, dline: int) -> Chunk:
    """A new Chunk for `c` moved by an edit before it (`c` and its IR stay as they were)."""
    return Chunk(
        c.start + dpos, c.end + dpos, c.line + dline, c.col,
        [moved(s, dpos, dline) for s in c.statements], [moved(x, dpos, dline) for x in c.comments],
        [_shift_diag(d, dpos, dline) for d in c.diags], c.reads_to + dpos,
    )


def _reads_all(c: Chunk, text: str) -> bool:
    """Did the chunk's result come from the whole file (an error that cutting it hid)?"""
    return c.reads_to > c.end and c.reads_to >= len(text)


def _common_prefix(a: str, b: str) -> int:
    """Length of the common prefix, by bisection over slice comparisons (memcmp-speed)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(a: str, b: str, limit: int) -> int:
    lo, hi = 0, limit
    la, lb = len(a), len(b)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[la - mid : la - lo] == b[lb - mid : lb - lo]:
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclasses.dataclass(frozen=True)
class Edit:
    """What changed between two versions: `old[start:old_end]` became `new[start:new_end]`."""

    start: int
    old_end: int
    new_end: int

    @property
    def delta(self) -> int:
        return self.new_end - self.old_end


def diff(old: str, new: str) -> Edit:
    p = _common_prefix(old, new)
    s = _common_suffix(old, new, min(len(old), len(new)) - p)
    return Edit(p, len(old) - s, len(new) - s)


class IncrementalParser:
    """Parses successive versions of one file, reusing unchanged statements."""

    def __init__(self, filename: str = "<input>"):
        self.filename = filename
        self.text: str | None = None
        self.chunks: list[Chunk] = []
        self.reused = 0  # chunks reused by the last update (for the benchmark's breakdown)

    def _parse_chunk(self, text: str, a: int, b: int) -> Chunk:
        line = text.count("\n", 0, a) + 1
        col = a - (text.rfind("\n", 0, a) + 1) + 1
        return Chunk.of(parse_chunk(text, a, b, self.filename, line=line, col=col), line, col)

    def _first_parse(self, text: str) -> list[Chunk]:
        """Parse the whole file the way `parse_partial` does (one parse when it has no
        syntax errors), keeping the result of each statement chunk."""
        chunks = []
        line, prev = 1, 0
        for c in parse_chunks(text, self.filename):
            line += text.count("\n", prev, c.start)
            prev = c.start
            col = c.start - (text.rfind("\n", 0, c.start) + 1) + 1
            chunks.append(Chunk.of(c, line, col))
        return chunks

    def _bounds(self, text: str, edit: Edit) -> list[tuple[int, int]]:
        """The statement chunks of `text`, re-splitting only around the edit: from the
        last `;` boundary before it, up to the first old chunk boundary after it where the
        splitter is provably back in step (it has just seen a top-level `;`, and the
        text from there on is unchanged)."""
        import bisect

        old, prev = self.chunks, self.text
        if not old or prev is None:
            return split_statements(text)
        ends = [c.end for c in old]
        i0 = bisect.bisect_left(ends, edit.start)
        i0 = min(i0, len(old) - 1)
        # Back up to a boundary made by a `;`: a boundary made by a statement keyword sits
        # before the keyword's annotations, so text after it decided where it is.
        while i0 > 0 and prev[old[i0].start - 1] != ";":
            i0 -= 1
        a = old[i0].start
        delta = edit.delta
        cands = [j for j in range(i0, len(old)) if old[j].end >= edit.old_end and prev[old[j].end - 1] == ";"]
        step = 1
        k = 0
        while k < len(cands):
            j = cands[k]
            b = old[j].end + delta
            window = split_statements(text[a:b] + ";")
            if window and window[-1] == (b - a, b - a + 1):
                head = [(x + a, y + a) for x, y in window[:-1]]
                return [(c.start, c.end) for c in old[:i0]] + head + [(c.start + delta, c.end + delta) for c in old[j + 1 :]]
            k += step
            step *= 4
        return [(c.start, c.end) for c in old[:i0]] + [(x + a, y + a) for x, y in split_statements(text[a:])]

    def update(self, text: str) -> tuple[ir.Document, list[Diagnostic], Edit | None]:
        """Parse `text`; returns the Document, its syntax diagnostics, and the edit from the
        previous version (None on the first call). The cyclic GC is paused meanwhile: the
        IR is acyclic, and collections set off by the many nodes that moving the chunks
        after an edit rebuilds cost more than rebuilding them."""
        with paused_gc():
            return self._update(text)

    def _update(self, text: str) -> tuple[ir.Document, list[Diagnostic], Edit | None]:
        old_text, old_chunks = self.text, self.chunks
        edit = None
        chunks: list[Chunk] = []
        reused = 0
        if old_text is None:
            chunks = self._first_parse(text)
        else:
            edit = diff(old_text, text)
            bounds = self._bounds(text, edit)
            delta = edit.delta
            dline = text.count("\n", edit.start, edit.new_end) - old_text.count("\n", edit.start, edit.old_end)
            by_start = {c.start: c for c in old_chunks}
            fresh = []
            slots: list[Chunk | None] = []  # None: to parse
            for a, b in bounds:
                c: Chunk | None = None
                old = None
                if b <= edit.start:
                    old = by_start.get(a)
                    # reused if its text, and any text after it that its result read, is unchanged
                    if old is not None and old.end == b and (old.reads_to == old.end or old.reads_to < edit.start):
                        c = old
                elif a >= edit.new_end:
                    old = by_start.get(a - delta)
                    if old is not None and old.end == b - delta and not _reads_all(old, old_text):
                        col = a - (text.rfind("\n", 0, a) + 1) + 1
                        if col == old.col:
                            c = _moved_chunk(old, delta, dline) if delta or dline else old
                if c is None:
                    fresh.append(len(slots))
                else:
                    reused += 1
                slots.append(c)
            if len(fresh) > 40 and len(fresh) * 3 > len(bounds):
                chunks, reused = self._first_parse(text), 0  # a paste or a rewrite: one parse is faster
            else:
                for i in fresh:
                    a, b = bounds[i]
                    slots[i] = self._parse_chunk(text, a, b)
                chunks = [c for c in slots if c is not None]  # every slot is filled now
        self.text, self.chunks, self.reused = text, chunks, reused
        doc, diags = assemble(((c.statements, c.comments, c.diags) for c in chunks), text, self.filename)
        return doc, diags, edit
