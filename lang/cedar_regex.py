"""RE2 regexes that Cedar can express: those whose unanchored search is a finite `||` of
`like` patterns.

Cedar has no regexes, only `like` with `*` wildcards (matching newlines too). An mcpp
`s.matches("re")` is an unanchored RE2 search, so it exports exactly when the regex
denotes finitely many wildcard patterns: literal text (escaped punctuation included),
alternation `|`, groups, `?`, small character classes (`[ab]`, `[0-3]`), `^` and `$` at
the edges of a branch, and `.*` under the `(?s)` flag (a plain `.` stops at a newline,
where `*` does not). Anything else — `+`, `*` on other atoms, `{n}`, `\\d`, negated
classes, other flags — returns None, and the export refuses with the regex.
"""

from __future__ import annotations

_STAR, _START, _END = object(), object(), object()
_META = set(".^$*+?()[]{}|\\")
_ESCAPABLE = set(".^$*+?()[]{}|\\/-_ ,:;=!@#%&'\"<>~`")
LIMIT = 32  # patterns per regex: beyond this the `||` would be unreadable


class _NotLike(Exception):
    pass


class _Parser:
    def __init__(self, s: str, dotall: bool):
        self.s, self.i, self.dotall = s, 0, dotall

    def peek(self) -> str | None:
        return self.s[self.i] if self.i < len(self.s) else None

    def alternation(self) -> list[tuple]:
        out = self.sequence()
        while self.peek() == "|":
            self.i += 1
            out = out + self.sequence()
            _cap(out)
        return out

    def sequence(self) -> list[tuple]:
        seqs: list[tuple] = [()]
        while self.peek() not in (None, "|", ")"):
            atom = self.atom()
            if self.peek() == "?":
                self.i += 1
                atom = atom + [()]
            if self.peek() in ("*", "+", "{", "?"):
                raise _NotLike
            seqs = [a + b for a in seqs for b in atom]
            _cap(seqs)
        return seqs

    def atom(self) -> list[tuple]:
        c = self.s[self.i]
        self.i += 1
        if c == "\\":
            e = self.peek()
            if e is None or e not in _ESCAPABLE:
                raise _NotLike
            self.i += 1
            return [(e,)]
        if c == ".":
            if self.dotall and self.peek() == "*":
                self.i += 1
                return [(_STAR,)]
            raise _NotLike
        if c == "^":
            return [(_START,)]
        if c == "$":
            return [(_END,)]
        if c == "[":
            return [(x,) for x in self.char_class()]
        if c == "(":
            if self.s.startswith("?:", self.i):
                self.i += 2
            elif self.peek() == "?":
                raise _NotLike
            inner = self.alternation()
            if self.peek() != ")":
                raise _NotLike
            self.i += 1
            return inner
        if c in _META:
            raise _NotLike
        return [(c,)]

    def char_class(self) -> list[str]:
        chars: list[str] = []
        if self.peek() in ("^", "]", None):
            raise _NotLike
        while self.peek() != "]":
            c = self.peek()
            if c is None or c in ("[", "\\"):
                raise _NotLike
            self.i += 1
            if self.peek() == "-" and self.i + 1 < len(self.s) and self.s[self.i + 1] != "]":
                hi = self.s[self.i + 1]
                if hi in ("[", "\\") or ord(hi) < ord(c):
                    raise _NotLike
                chars += [chr(x) for x in range(ord(c), ord(hi) + 1)]
                self.i += 2
            else:
                chars.append(c)
            if len(chars) > 16:
                raise _NotLike
        self.i += 1
        return list(dict.fromkeys(chars))


def _cap(seqs: list) -> None:
    if len(seqs) > LIMIT:
        raise _NotLike


def _chunks(seq: tuple) -> tuple[str, ...]:
    start = bool(seq) and seq[0] is _START
    end = bool(seq) and seq[-1] is _END
    body = seq[1 if start else 0: len(seq) - 1 if end else len(seq)]
    if any(x is _START or x is _END for x in body):
        raise _NotLike  # an anchor inside a branch
    chunks = [""]
    for x in body:
        if x is _STAR:
            chunks.append("")
        else:
            chunks[-1] += x
    if not start:
        chunks.insert(0, "")
    if not end:
        chunks.append("")
    if len(chunks) > 2:  # `**` is `*`
        chunks = [chunks[0]] + [c for c in chunks[1:-1] if c] + [chunks[-1]]
    return tuple(chunks)


def regex_as_likes(regex: str) -> list[tuple[str, ...]] | None:
    """The `like` patterns (each a tuple of chunks between `*`s) whose `||` equals an
    unanchored RE2 search for `regex`, or None when there are no such finitely many."""
    dotall = regex.startswith("(?s)")
    p = _Parser(regex[4:] if dotall else regex, dotall)
    try:
        seqs = p.alternation()
        if p.peek() is not None:
            raise _NotLike
        out = list(dict.fromkeys(_chunks(s) for s in seqs))
    except _NotLike:
        return None
    if ("", "") in out:  # one pattern matches every string
        return [("", "")]
    return out


def regex_as_like(regex: str) -> tuple[str, ...] | None:
    """The single `like` pattern equal to a search for `regex`, if there is one."""
    likes = regex_as_likes(regex)
    return likes[0] if likes is not None and len(likes) == 1 else None
