"""Cedar string literals: escapes in, canonical quoting out.

Cedar accepts `\\n \\r \\t \\\\ \\0 \\' \\" \\xHH` (HH at most 7f) and `\\u{hex}` (1 to 6
digits, a Unicode scalar value). In a `like` pattern a `*` is a wildcard however it is
written — `*`, `\\u{2a}` or `\\x2a` — and only `\\*` is a literal star: Cedar decodes the
other escapes first and then reads the stars (tests/lang/test_strings.py checks each case
against cedarpy). The formatter always re-quotes with `quote`, so output is canonical.
"""

from __future__ import annotations

from typing import Literal, overload

_SIMPLE = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", "0": "\0", "'": "'", '"': '"'}


class EscapeError(ValueError):
    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.offset = offset  # offset inside the literal, quotes included


@overload
def unescape(literal: str) -> str: ...
@overload
def unescape(literal: str, *, star: Literal[False]) -> str: ...
@overload
def unescape(literal: str, *, star: Literal[True]) -> tuple[str, ...]: ...
@overload
def unescape(literal: str, *, star: bool) -> tuple[str, ...] | str: ...


def unescape(literal: str, *, star: bool = False) -> tuple[str, ...] | str:
    """Decode a quoted literal. With `star=True` return the `like` chunks split at
    wildcards: every `*` but one written `\\*` (so `"a*b"` and `"a\\u{2a}b"` → `("a", "b")`,
    `"a\\*b"` → `("a*b",)`)."""
    body = literal[1:-1]
    chunks: list[str] = []
    buf: list[str] = []
    i = 0
    n = len(body)
    while i < n:
        c = body[i]
        if c == "\\":
            if i + 1 >= n:
                raise EscapeError("dangling backslash in string", i + 1)
            e = body[i + 1]
            if e in _SIMPLE:
                buf.append(_SIMPLE[e])
                i += 2
            elif e == "*" and star:
                buf.append("*")
                i += 2
            elif e == "x":
                digits = body[i + 2 : i + 4]
                if len(digits) != 2 or any(ch not in "0123456789abcdefABCDEF" for ch in digits) or int(digits, 16) > 0x7F:
                    raise EscapeError("bad escape \\x, expected two hex digits up to 7f", i + 1)
                c = chr(int(digits, 16))
                i += 4
                if c == "*" and star:
                    chunks.append("".join(buf))
                    buf = []
                else:
                    buf.append(c)
            elif e == "u" and i + 2 < n and body[i + 2] == "{":
                close = body.find("}", i + 3)
                digits = body[i + 3 : close] if close != -1 else ""
                if close == -1 or not (1 <= len(digits) <= 6) or any(
                    ch not in "0123456789abcdefABCDEF" for ch in digits
                ):
                    raise EscapeError("bad unicode escape, expected \\u{hex}", i + 1)
                cp = int(digits, 16)
                if cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
                    raise EscapeError(f"\\u{{{digits}}} is not a Unicode scalar value", i + 1)
                i = close + 1
                if cp == 0x2A and star:  # a star however written is a wildcard (Cedar)
                    chunks.append("".join(buf))
                    buf = []
                else:
                    buf.append(chr(cp))
            else:
                raise EscapeError(f"unknown escape \\{e}", i + 1)
        elif c == "*" and star:
            chunks.append("".join(buf))
            buf = []
            i += 1
        else:
            buf.append(c)
            i += 1
    if star:
        chunks.append("".join(buf))
        return tuple(chunks)
    return "".join(buf)


def _escape_char(c: str, star: bool) -> str:
    if c == "\\":
        return "\\\\"
    if c == '"':
        return '\\"'
    if c == "\n":
        return "\\n"
    if c == "\r":
        return "\\r"
    if c == "\t":
        return "\\t"
    if c == "\0":
        return "\\0"
    if c == "*" and star:
        return "\\*"
    if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or 0xD800 <= ord(c) <= 0xDFFF:
        return "\\u{%x}" % ord(c)
    return c


def quote(s: str) -> str:
    return '"' + "".join(_escape_char(c, False) for c in s) + '"'


def quote_like(chunks: tuple[str, ...]) -> str:
    return '"' + "*".join("".join(_escape_char(c, True) for c in chunk) for chunk in chunks) + '"'
