"""Offsets and spans ↔ LSP positions.

Our spans count code points (1-based line/col plus 0-based offsets); LSP counts lines
by `\\n`, `\\r\\n` or `\\r`, and columns in the code units the client negotiated (UTF-16
unless it asked for UTF-8 or UTF-32). Everything converts through the offset, which the
parser records exactly, so a tab, a CRLF or an emoji before a token never skews a range.
"""

from __future__ import annotations

import bisect
import re

from lsprotocol import types as t

from mcpp.lang.diagnostics import Span

_EOL = re.compile(r"\r\n|\r|\n")


def _units_fn(encoding: str | None):
    if encoding == t.PositionEncodingKind.Utf8:
        return lambda s: len(s) if s.isascii() else len(s.encode("utf-8"))
    if encoding == t.PositionEncodingKind.Utf32:
        return len
    return lambda s: len(s) if s.isascii() else len(s.encode("utf-16-le")) // 2


class LineIndex:
    """Line starts of one version of a text, for converting in both directions."""

    __slots__ = ("text", "starts", "units", "encoding", "_nl_starts")

    def __init__(self, text: str, encoding: str | None = t.PositionEncodingKind.Utf16):
        self.text = text
        self.starts = [0] + [m.end() for m in _EOL.finditer(text)]
        self.encoding = encoding
        self.units = _units_fn(encoding)
        self._nl_starts: list[int] | None = None

    def line_end(self, line: int) -> int:
        """Offset of the end of `line`'s content (before its line break)."""
        if line + 1 < len(self.starts):
            end = self.starts[line + 1] - 1
            if end > self.starts[line] and self.text[end] == "\n" and self.text[end - 1] == "\r":
                end -= 1
            return end
        return len(self.text)

    def position(self, offset: int) -> t.Position:
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self.starts, offset) - 1
        start = self.starts[line]
        offset = min(offset, self.line_end(line))  # never inside a CRLF
        return t.Position(line=line, character=self.units(self.text[start:offset]))

    def offset(self, pos: t.Position) -> int:
        """The code-point offset of an LSP position; out-of-range positions are clamped
        (clients send end-of-line and end-of-file positions legitimately)."""
        if pos.line < 0:
            return 0
        if pos.line >= len(self.starts):
            return len(self.text)
        start = self.starts[pos.line]
        end = self.line_end(pos.line)
        seg = self.text[start:end]
        want = max(0, pos.character)
        if self.units is len or seg.isascii():
            return start + min(want, len(seg))
        acc = 0
        for i, ch in enumerate(seg):
            if acc >= want:
                return start + i
            acc += self.units(ch)
        return end

    def position_json(self, offset: int) -> dict:
        p = self.position(offset)
        return {"line": p.line, "character": p.character}

    def range_json(self, start: int, end: int) -> dict:
        return {"start": self.position_json(start), "end": self.position_json(max(start, end))}

    def range(self, start: int, end: int) -> t.Range:
        return t.Range(start=self.position(start), end=self.position(max(start, end)))

    def span_offsets(self, span: Span) -> tuple[int, int]:
        """The offsets a span covers. Spans made without offsets (only line/col, e.g. a
        finding about the whole file) are located by their line and column."""
        start, end = span.start, span.end
        if start == 0 and end == 0 and (span.line, span.col) != (1, 1) and span.line > 0:
            start = self._from_line_col(span.line, span.col)
            end = self._from_line_col(span.end_line, span.end_col)
        n = len(self.text)
        start = max(0, min(start, n))
        return start, max(start, min(end, n))

    def span_range(self, span: Span) -> t.Range:
        return self.range(*self.span_offsets(span))

    def _from_line_col(self, line: int, col: int) -> int:
        """Our lexer counts lines by `\\n` only; find the offset of its 1-based line/col."""
        if self._nl_starts is None:
            self._nl_starts = [0] + [m.end() for m in re.finditer("\n", self.text)]
        starts = self._nl_starts
        if line < 1:
            return 0
        if line > len(starts):
            return len(self.text)
        base = starts[line - 1]
        nxt = starts[line] - 1 if line < len(starts) else len(self.text)
        return min(base + max(0, col - 1), nxt)
