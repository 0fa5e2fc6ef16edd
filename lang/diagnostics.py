"""Source spans and diagnostics shared by every stage (parser, validator, analyzer, LSP).

Spans are 1-based line/column pairs plus 0-based character offsets, so the CLI can
print `file:line:col` and the language server can convert to LSP positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable


@dataclass(slots=True, unsafe_hash=True)
class Span:
    """Never mutated after construction (not frozen only because that triples its cost)."""

    line: int
    col: int
    end_line: int
    end_col: int
    start: int = 0
    end: int = 0

    def __str__(self) -> str:
        return f"{self.line}:{self.col}"

    def contains(self, line: int, col: int) -> bool:
        if (line, col) < (self.line, self.col):
            return False
        return (line, col) <= (self.end_line, self.end_col)


NOSPAN = Span(1, 1, 1, 1, 0, 0)


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding. `code` names the check (a docs page), e.g. `syntax`, `E-unknown-attr`."""

    message: str
    span: Span = NOSPAN
    severity: str = "error"  # error | warning | info
    code: str = "error"
    file: str = "<input>"
    notes: tuple[str, ...] = ()
    data: dict = field(default_factory=dict, compare=False, hash=False)

    def render(self, source: str | None = None) -> str:
        """`file:line:col: severity: message`, then the offending line with a caret underline."""
        if self.span.line == 0:  # JSON input: the message starts with its JSON pointer
            out = f"{self.file}: {self.severity}: {self.message}"
        else:
            out = f"{self.file}:{self.span.line}:{self.span.col}: {self.severity}: {self.message}"
        if source is not None:
            lines = source.splitlines()
            if 1 <= self.span.line <= len(lines):
                text = lines[self.span.line - 1]
                width = 1
                if self.span.end_line == self.span.line:
                    width = max(1, self.span.end_col - self.span.col)
                else:
                    width = max(1, len(text) - self.span.col + 1)
                out += f"\n  {text}\n  {' ' * (self.span.col - 1)}{'^' * width}"
        for note in self.notes:
            out += f"\n  note: {note}"
        return out


class MCPPError(Exception):
    """Raised when input cannot be used; carries every diagnostic found, not just the first."""

    def __init__(self, diagnostics: Iterable[Diagnostic], source: str | None = None):
        self.diagnostics = list(diagnostics)
        self.source = source
        super().__init__("\n".join(d.message for d in self.diagnostics))

    def render(self) -> str:
        return "\n".join(d.render(self.source) for d in self.diagnostics)


def did_you_mean(word: str, candidates: Iterable[str], max_edits: int | None = None) -> str | None:
    """The candidate `word` is most likely a typo of, or None. One rule for every "did you
    mean" mcpp prints: a typo is one edit (insert, delete, substitute, swap two
    neighbours), two in a word longer than 12 characters — so `pth` suggests `path` and
    `delete_pdo` suggests `delete_pod`, but neither `delete_repo` nor `list_nodes` suggests
    a sibling tool (`delete_pod`, `list_pods`)."""
    limit = max_edits if max_edits is not None else (1 if len(word) <= 12 else 2)
    best: tuple[int, str] | None = None
    for c in candidates:
        if c == word:
            continue
        d = _edits(word, c, limit)
        if d <= limit and (best is None or (d, c) < best):
            best = (d, c)
    return best[1] if best else None


def _edits(a: str, b: str, limit: int) -> int:
    """Optimal string alignment distance, giving up (limit + 1) past `limit`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[len(b)]
