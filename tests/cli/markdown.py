"""Reading documentation pages as tests: fenced blocks in order, and outputs compared with
the page's `…` convention (inside a line: any text; a line of its own: any lines)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ELLIPSIS = "…"
_FENCE = re.compile(r"^```([\w+-]*)\s*$")


@dataclass
class Block:
    lang: str
    body: str
    line: int  # 1-based line of the opening fence, for messages


def blocks(path: Path) -> list[Block]:
    out: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        start = i
        i += 1
        body = []
        while i < len(lines) and lines[i].rstrip() != "```":
            body.append(lines[i])
            i += 1
        out.append(Block(m.group(1), "\n".join(body), start + 1))
        i += 1
    return out


def _line_pattern(line: str) -> re.Pattern:
    return re.compile(".*?".join(re.escape(part) for part in line.split(ELLIPSIS)) + r"\Z", re.S)


def matches(expected: str, actual: str) -> bool:
    """Whether `actual` is `expected` with each `…` filled in (see the module docstring)."""
    exp = expected.splitlines()
    act = actual.splitlines()
    pats = [None if e.strip() == ELLIPSIS else _line_pattern(e.rstrip()) for e in exp]
    memo: dict[tuple[int, int], bool] = {}

    def go(i: int, j: int) -> bool:
        key = (i, j)
        if key not in memo:
            if i == len(pats):
                memo[key] = j == len(act)
            elif pats[i] is None:
                memo[key] = any(go(i + 1, k) for k in range(j, len(act) + 1))
            else:
                memo[key] = j < len(act) and bool(pats[i].match(act[j].rstrip())) and go(i + 1, j + 1)
        return memo[key]

    return go(0, 0)


def excerpt_of(excerpt: str, text: str) -> bool:
    """Whether `excerpt` (with `…`) is a run of lines somewhere in `text`."""
    return matches(f"{ELLIPSIS}\n{excerpt}\n{ELLIPSIS}", text)


_FILE_MARKER = re.compile(r"#\s*([\w.-]+\.\w+)\s*$")


def file_marker(block: Block) -> str | None:
    """The file a block says it is by its first line (`# gateway.toml`), or None."""
    first = block.body.splitlines()[0] if block.body else ""
    m = _FILE_MARKER.fullmatch(first)
    return m.group(1) if m else None
