"""RE2 regular expressions → Z3, with RE2's meaning of unanchored search.

The pattern is first validated by google-re2 (`mcpp.lang.regex.compile_regex`), then
parsed here into a small AST. The *structure* (concatenation, alternation, repetition,
groups, flags, anchors) is parsed by hand; the *character set* of every atom (`.`, a
class, `\\d`, a literal under `(?i)`, `\\pL`…) is asked of RE2 itself, by scanning a
string of every code point for runs of the atom. So classes, case folding and
Perl/POSIX tables are RE2's by construction, not a re-implementation that can drift.

Search (`s.matches(re)` is `re2.search`) is the language Σ*·R·Σ* with `^`/`$` pinned to
the ends. The anchors are removed on the AST, never in Z3 (asserting real sentinel
characters in Z3 timed out where this answers at once, research/analysis-lsp.md §3).
Anchors are zero-width, so `$$` or `(^|/)` need care: for each node we compute whether
it can match ε at a position that is/isn't the start/end, and an anchor-free regex for
its non-empty matches (`_Anchors`), which is the derivative idea made exact for
zero-width symbols.

Z3 strings range over code points 0..U+2FFFF. Every code point from U+2FA20 (an
unassigned block) up to U+10FFFF is represented by that block: a pattern whose classes
distinguish characters in that zone, or that names one literally, is `Unsupported`.
Unsupported features (`\\b`, `\\B`, multi-line `^`/`$`, such classes) raise
`Unsupported`; the encoder then treats the match as an unconstrained boolean, so no
proof depends on it (see docs/analyzer.md, "Limits").
"""

from __future__ import annotations

import re
import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache

MAXCHAR = 0x2FFFF  # Z3's largest character
HIGH = 0x2FA20  # first code point of the block that stands for every code point above it
TOP = 0x10FFFF


class Unsupported(Exception):
    """A regex feature outside the analysable subset; `reason` says which."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class OutOfTime(Unsupported):
    """The translation of a pattern ran past its time limit (see `time_limit`)."""


# ---- bounded work ------------------------------------------------------------------------------
#
# Translating a pattern asks RE2 for the character set of every distinct atom, one scan
# of up to 1.1M code points each (≈ 40 ms for a Unicode property class): a pattern of
# thousands of such atoms is minutes of work before Z3 sees anything, and removing
# anchors from repetitions (`_Anchors`) or building the Z3 terms of a huge AST takes
# time too. The analysis sets a deadline (its per-query timeout, and the run's
# `--deadline` when there is one) around each translation; a scan, anchor step or term
# that would start after it raises OutOfTime, which the encoder treats like any
# unsupported feature (an unconstrained test, named in the reasons).

_DEADLINE: ContextVar[tuple | None] = ContextVar("mcpp_regex_deadline", default=None)


@contextmanager
def time_limit(ms: int | None, run=None):
    """Translations inside the block give up (OutOfTime) once `ms` milliseconds have
    passed, or once `run` (an analyzer.deadline.Deadline: the whole run's budget) has.
    Nested limits keep the earlier end."""
    outer = _DEADLINE.get()
    if ms is None and run is None:
        yield
        return
    end = time.monotonic() + ms / 1000 if ms is not None else None
    runs = (run,) if run is not None else ()
    if outer is not None:
        if outer[0] is not None:
            end = outer[0] if end is None else min(end, outer[0])
        runs += outer[1]
    token = _DEADLINE.set((end, runs))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _check_deadline() -> None:
    limit = _DEADLINE.get()
    if limit is None:
        return
    end, runs = limit
    for run in runs:
        if run.expired():
            raise OutOfTime(run.reason)
    if end is not None and time.monotonic() > end:
        raise OutOfTime("a translation that ran out of time")


# Z3's regex derivatives (seq::derive) do not check the solver's timeout or interrupt.
# On a class of hundreds of ranges (\p{Lu}, \p{L}: ~650) a 3-character string kept a
# check running for minutes under a 1 s timeout; classes up to ~230 ranges (\p{S}) never
# did in fuzzing. A query whose regexes hold a class wider than this runs in a child
# process that is killed at the deadline (analyzer/solve.py).
WIDE_CLASS = 64


@lru_cache(maxsize=4096)
def widest_class(n) -> int:
    """The number of ranges of the widest character class in the AST."""
    if isinstance(n, Chars):
        return len(n.ivs)
    if isinstance(n, (Cat, Alt)):
        return max((widest_class(x) for x in n.items), default=0)
    if isinstance(n, Rep):
        return widest_class(n.node)
    return 0


# ---- AST ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chars:
    """One character from a set of code point intervals; no intervals = ∅."""

    ivs: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Eps:
    pass


@dataclass(frozen=True)
class Cat:
    items: tuple


@dataclass(frozen=True)
class Alt:
    items: tuple


@dataclass(frozen=True)
class Rep:
    node: object
    lo: int
    hi: int | None  # None: unbounded


@dataclass(frozen=True)
class Bos:
    pass


@dataclass(frozen=True)
class Eos:
    pass


NOTHING = Chars(())
EPS = Eps()
ANY = Chars(((0, TOP),))


def cat(*items):
    out: list = []
    for x in items:
        if x == NOTHING:
            return NOTHING
        if isinstance(x, Eps):
            continue
        if isinstance(x, Cat):
            out.extend(x.items)
        else:
            out.append(x)
    if not out:
        return EPS
    return out[0] if len(out) == 1 else Cat(tuple(out))


def alt(*items):
    out: list = []
    for x in items:
        parts = x.items if isinstance(x, Alt) else (x,)
        for p in parts:
            if p == NOTHING or p in out:
                continue
            out.append(p)
    if not out:
        return NOTHING
    return out[0] if len(out) == 1 else Alt(tuple(out))


def rep(node, lo: int, hi: int | None):
    if hi == 0 or isinstance(node, Eps):
        return EPS
    if node == NOTHING:
        return EPS if lo == 0 else NOTHING
    if lo == 1 and hi == 1:
        return node
    return Rep(node, lo, hi)


def nullable(n) -> bool:
    if isinstance(n, Eps):
        return True
    if isinstance(n, (Chars, Bos, Eos)):
        return False
    if isinstance(n, Cat):
        return all(nullable(x) for x in n.items)
    if isinstance(n, Alt):
        return any(nullable(x) for x in n.items)
    if isinstance(n, Rep):
        return n.lo == 0 or nullable(n.node)
    raise TypeError(n)


def _has_anchor(n) -> bool:
    if isinstance(n, (Bos, Eos)):
        return True
    if isinstance(n, (Cat, Alt)):
        return any(_has_anchor(x) for x in n.items)
    if isinstance(n, Rep):
        return _has_anchor(n.node)
    return False


class _Anchors:
    """Anchors are zero-width: `^` holds only at position 0, `$` only at the end.

    For a node and flags (a, b) = (the match starts at position 0, it ends at the text
    end), `E` says whether the node can match the empty string there and `P` is an
    anchor-free regex for its non-empty matches. Inside a non-empty match every inner
    boundary is neither the start nor the end, which is what makes the split exact.
    `P` of an anchor-free node is the node itself (it may add ε, which is harmless: both
    E and P are monotone in the flags, so such ε is also counted by E).
    """

    def __init__(self):
        self.memo: dict = {}

    def E(self, n, a: bool, b: bool) -> bool:
        if isinstance(n, Bos):
            return a
        if isinstance(n, Eos):
            return b
        if not _has_anchor(n):
            return nullable(n)
        if isinstance(n, Cat):
            return all(self.E(x, a, b) for x in n.items)
        if isinstance(n, Alt):
            return any(self.E(x, a, b) for x in n.items)
        if isinstance(n, Rep):
            return n.lo == 0 or self.E(n.node, a, b)
        raise TypeError(n)  # pragma: no cover

    def P(self, n, a: bool, b: bool):
        key = (id(n), a, b)
        hit = self.memo.get(key)
        if hit is not None and hit[0] is n:
            return hit[1]
        out = self._P(n, a, b)
        self.memo[key] = (n, out)
        return out

    def _P(self, n, a: bool, b: bool):
        _check_deadline()  # a repetition with anchors inside unrolls: bounded work, not small
        if isinstance(n, (Bos, Eos)):
            return NOTHING
        if not _has_anchor(n):
            return n
        if isinstance(n, Alt):
            return alt(*(self.P(x, a, b) for x in n.items))
        if isinstance(n, Cat):
            x, y = n.items[0], cat(*n.items[1:])
            parts = [cat(self.P(x, a, False), self.P(y, False, b))]
            if self.E(y, False, b):
                parts.append(self.P(x, a, b))
            if self.E(x, a, False):
                parts.append(self.P(y, a, b))
            return alt(*parts)
        if isinstance(n, Rep):
            x = n.node
            if all(self.P(x, fa, fb) == NOTHING for fa in (False, True) for fb in (False, True)):
                return NOTHING  # only anchors and ε inside: never consumes a character
            if n.hi is not None:
                if n.hi > 16:
                    raise Unsupported("an anchor inside a repetition of more than 16")
                return self.P(alt(*(cat(*([x] * k)) if k else EPS for k in range(n.lo, n.hi + 1))), a, b)
            plus = alt(self.P(x, a, b), cat(self.P(x, a, False), rep(self.P(x, False, False), 0, None), self.P(x, False, b)))
            if n.lo <= 1:
                return plus
            return self.P(cat(*([x] * (n.lo - 1)), Rep(x, 1, None)), a, b)  # x{m,} = x{m-1}·x+
        raise TypeError(n)  # pragma: no cover


def search_language(ast):
    """The anchor-free regex whose full matches are exactly the strings RE2 *finds* `ast` in.

    A match s[i:j] is empty or not, starts at 0 or not, ends at the end or not; each of
    the eight cases is a concatenation of Σ-padding and E/P of the pattern."""
    sigma = rep(ANY, 0, None)
    if not _has_anchor(ast):
        return cat(sigma, ast, sigma)
    plus = cat(ANY, sigma)
    an = _Anchors()
    parts = [
        an.P(ast, True, True),
        cat(an.P(ast, True, False), plus),
        cat(plus, an.P(ast, False, True)),
        cat(plus, an.P(ast, False, False), plus),
    ]
    if an.E(ast, True, True):
        parts.append(EPS)
    if an.E(ast, True, False) or an.E(ast, False, True):
        parts.append(plus)
    if an.E(ast, False, False):
        parts.append(cat(ANY, plus))
    return alt(*parts)


# ---- character sets, asked of RE2 ------------------------------------------------------------

_ALL_LOCK = threading.Lock()
_ALL: dict[int, bytes] = {}


def _code_points(top: int) -> bytes:
    """Every Unicode scalar value up to `top`, in order, UTF-8 encoded (built once each)."""
    with _ALL_LOCK:
        hit = _ALL.get(top)
        if hit is None:
            chars = "".join(map(chr, range(0xD800))) + "".join(map(chr, range(0xE000, top + 1)))
            hit = _ALL[top] = chars.encode("utf-8")
        return hit


_EXPLICIT_CP = re.compile(r"\\x\{([0-9A-Fa-f]+)\}")


def _low_atom(atom: str) -> bool:
    """True when the atom cannot tell apart code points from U+2FA20 (`HIGH`) up: no
    Unicode property classes and no character (literal or `\\x{…}`, alone or as a range
    endpoint) at or above U+2FA20. What is left (ASCII Perl/POSIX classes, `.`, case
    folding, which stops below U+1F000, and characters and ranges below U+2FA20) treats
    every code point from U+2FA20 to U+10FFFF alike, so every one of them is in the set
    iff U+2FFFF is, and a scan of the first three planes is exact.

    The bound is `HIGH`, not U+30000: a character in U+2FA20..U+2FFFF is scanned, but the
    code points above it are not, and they are on the other side of it (`[\\x{0}-\\x{2FFFF}]`
    stops at U+2FFFF, `[^\\x{2FA20}-\\x{2FFFF}]` holds U+30000): such an atom is scanned
    in full, and `_check_high` refuses it if it splits the block."""
    if "\\p" in atom or "\\P" in atom or any(ord(c) >= HIGH for c in atom):
        return False
    return all(int(h, 16) < HIGH for h in _EXPLICIT_CP.findall(atom))


# code points the shortcut extrapolates to: each must be in the set iff U+2FFFF is
_HIGH_PROBES = "".join(map(chr, (0x30000, 0x31350, 0xE0001, 0xF0000, 0x10FFFD, TOP)))


@lru_cache(maxsize=4096)
def charset(atom: str, fold: bool, dotall: bool) -> tuple[tuple[int, int], ...]:
    """The code points one occurrence of `atom` matches under the flags, as intervals."""
    import re2

    _check_deadline()
    opts = re2.Options()
    opts.never_capture = True
    opts.log_errors = False
    flags = ("i" if fold else "") + ("s" if dotall else "")
    prefix = f"(?{flags})" if flags else ""
    rx = re2.compile(f"{prefix}(?:{atom})+".encode("utf-8"), opts)
    low = _low_atom(atom)
    if low:
        out = _scan(rx, _code_points(MAXCHAR))
        # the premise of the shortcut, checked where it is cheap: the scanned part of the
        # block is uniform, and code points above U+2FFFF go with U+2FFFF
        top = any(lo <= MAXCHAR <= hi for lo, hi in out)
        uniform = not any(HIGH < lo <= MAXCHAR or HIGH <= hi < MAXCHAR for lo, hi in out)
        one = re2.compile(f"{prefix}^(?:{atom})$".encode("utf-8"), opts)
        if uniform and all((one.search(c.encode("utf-8")) is not None) == top for c in _HIGH_PROBES):
            # the rest of Unicode behaves like U+2FFFF for this atom
            return tuple((lo, TOP if hi == MAXCHAR else hi) for lo, hi in out)
    return tuple(_scan(rx, _code_points(TOP)))


def _scan(rx, data: bytes) -> list[tuple[int, int]]:
    out = []
    for m in rx.finditer(data):
        s, e = m.start(), m.end()
        first = ord(data[s : s + 4].decode("utf-8", "ignore")[0])
        last = ord(data[max(s, e - 4) : e].decode("utf-8", "ignore")[-1])
        out.append((first, last))
    return out


def _check_high(ivs) -> None:
    for lo, hi in ivs:
        if HIGH <= lo <= TOP or HIGH <= hi < TOP:
            raise Unsupported("a character class that distinguishes code points above U+2FA1F")


def _literal(c: str, fold: bool) -> Chars:
    cp = ord(c)
    if cp >= HIGH:
        raise Unsupported("a literal character above U+2FA1F")
    if not fold or not c.isalpha() and cp < 0x80:
        return Chars(((cp, cp),))
    from mcpp.lang.regex import escape

    ivs = charset(escape(c), True, False)
    _check_high(ivs)
    return Chars(ivs)


def _set(atom: str, flags: dict) -> Chars:
    ivs = charset(atom, flags["i"], flags["s"])
    _check_high(ivs)
    return Chars(ivs)


# ---- parser ----------------------------------------------------------------------------------

_REPEAT = re.compile(r"\{(\d+)(?:(,)(\d*))?\}")
_SIMPLE_ESC = {"a": 7, "f": 12, "t": 9, "n": 10, "r": 13, "v": 11}


class _Parser:
    def __init__(self, pattern: str):
        self.p = pattern
        self.i = 0

    def peek(self) -> str:
        return self.p[self.i] if self.i < len(self.p) else ""

    def parse(self):
        node = self.alternation({"i": False, "s": False, "m": False})
        if self.i != len(self.p):  # pragma: no cover - RE2 validated the pattern
            raise Unsupported(f"unexpected {self.peek()!r} at offset {self.i}")
        return node

    def alternation(self, flags: dict):
        branches = [self.concat(flags)]
        while self.peek() == "|":
            self.i += 1
            branches.append(self.concat(flags))
        return alt(*branches) if len(branches) > 1 else branches[0]

    def concat(self, flags: dict):
        items = []
        while self.i < len(self.p) and self.peek() not in "|)":
            a = self.atom(flags)
            if a is None:
                continue
            items.append(self.repeats(a))
        return cat(*items)

    def repeats(self, a):
        while True:
            c = self.peek()
            if c in ("*", "+", "?"):
                self.i += 1
                a = rep(a, 0 if c != "+" else 1, None if c != "?" else 1)
            elif c == "{":
                m = _REPEAT.match(self.p, self.i)
                if not m:
                    return a
                self.i = m.end()
                lo = int(m.group(1))
                hi = lo if m.group(2) is None else (int(m.group(3)) if m.group(3) else None)
                a = rep(a, lo, hi)
            else:
                return a
            if self.peek() == "?":  # lazy: same language
                self.i += 1

    def group(self, flags: dict):
        node = self.alternation(flags)
        if self.peek() != ")":  # pragma: no cover - validated
            raise Unsupported("unbalanced parenthesis")
        self.i += 1
        return node

    def atom(self, flags: dict):
        p, c = self.p, self.peek()
        if c == "(":
            self.i += 1
            if p.startswith("?P<", self.i) or p.startswith("?<", self.i):
                self.i = p.index(">", self.i) + 1
                return self.group(dict(flags))
            if self.peek() == "?":
                j = self.i + 1
                while j < len(p) and p[j] not in ":)":
                    j += 1
                spec, end = p[self.i + 1 : j], p[j]
                self.i = j + 1
                new = dict(flags) if end == ":" else flags
                on = True
                for f in spec:
                    if f == "-":
                        on = False
                    elif f in "ism":
                        new[f] = on
                    # U (ungreedy) does not change the language
                if end == ":":
                    return self.group(new)
                return None
            return self.group(dict(flags))
        if c == ".":
            self.i += 1
            return _set(".", flags)
        if c == "^":
            self.i += 1
            if flags["m"]:
                raise Unsupported("multi-line `^` ((?m))")
            return Bos()
        if c == "$":
            self.i += 1
            if flags["m"]:
                raise Unsupported("multi-line `$` ((?m))")
            return Eos()
        if c == "[":
            return _set(self.class_source(), flags)
        if c == "\\":
            return self.escape(flags)
        self.i += 1
        return _literal(c, flags["i"])

    def class_source(self) -> str:
        p, start = self.p, self.i
        j = self.i + 1
        if j < len(p) and p[j] == "^":
            j += 1
        if j < len(p) and p[j] == "]":
            j += 1
        while j < len(p) and p[j] != "]":
            if p[j] == "\\":
                j += 2
                if p[j - 1] in "pP" and j < len(p) and p[j] == "{":
                    j = p.index("}", j) + 1
                continue
            if p.startswith("[:", j):
                end = p.find(":]", j + 2)
                if end != -1:
                    j = end + 2
                    continue
            j += 1
        self.i = j + 1
        return p[start : j + 1]

    def escape(self, flags: dict):
        p = self.p
        c = p[self.i + 1] if self.i + 1 < len(p) else ""
        self.i += 2
        if c == "A":
            return Bos()
        if c == "z":
            return Eos()
        if c in ("b", "B"):
            raise Unsupported(f"the word boundary \\{c}")
        if c in "dDsSwW":
            return _set("\\" + c, flags)
        if c in ("p", "P"):
            if self.peek() == "{":
                end = p.index("}", self.i)
                name, self.i = p[self.i : end + 1], end + 1
            else:
                name, self.i = self.peek(), self.i + 1
            return _set(f"\\{c}{name}", flags)
        if c == "Q":
            end = p.find("\\E", self.i)
            text = p[self.i :] if end == -1 else p[self.i : end]
            self.i = len(p) if end == -1 else end + 2
            return cat(*(_literal(ch, flags["i"]) for ch in text))
        if c == "x":
            if self.peek() == "{":
                end = p.index("}", self.i)
                cp, self.i = int(p[self.i + 1 : end], 16), end + 1
            else:
                cp, self.i = int(p[self.i : self.i + 2], 16), self.i + 2
            return _literal(chr(cp), flags["i"])
        if c in "01234567":
            j = self.i
            while j < len(p) and j < self.i + 2 and p[j] in "01234567":
                j += 1
            cp = int(p[self.i - 1 : j], 8)
            self.i = j
            return _literal(chr(cp), flags["i"])
        if c in _SIMPLE_ESC:
            return _literal(chr(_SIMPLE_ESC[c]), False)
        return _literal(c, flags["i"])


@lru_cache(maxsize=4096)
def parse(pattern: str):
    """The AST of a validated RE2 pattern; raises RegexError (invalid) or Unsupported."""
    from mcpp.lang.regex import compile_regex

    compile_regex(pattern)  # RegexError for anything RE2 (or Go) rejects
    return _Parser(pattern).parse()


@lru_cache(maxsize=4096)
def search_ast(pattern: str):
    """The anchor-free AST of "RE2 finds `pattern` somewhere in the string"."""
    return search_language(parse(pattern))


def like_ast(chunks: tuple[str, ...]):
    """Cedar `like`: literal chunks joined by `*` (any text, newlines too), whole string."""
    parts = []
    for i, chunk in enumerate(chunks):
        if i:
            parts.append(rep(ANY, 0, None))
        for ch in chunk:
            parts.append(_literal(ch, False))
    return cat(*parts)


# ---- Z3 ------------------------------------------------------------------------------------


class Z3Regex:
    """Translate ASTs into one Z3 context, memoised (ASTs are hashable values)."""

    def __init__(self, ctx):
        import z3

        self.z3 = z3
        self.ctx = ctx
        self.sort = z3.ReSort(z3.StringSort(ctx))
        self._memo: dict = {}

    def char(self, cp: int):
        from .sym import string_val

        return string_val(chr(cp), self.ctx, raw=True)

    def __call__(self, n):
        hit = self._memo.get(n)
        if hit is None:
            hit = self._build(n)
            self._memo[n] = hit
        return hit

    def _build(self, n):
        from .sym import re_concat, re_union

        _check_deadline()  # one check per distinct node: a huge AST is many terms
        z3 = self.z3
        if isinstance(n, Eps):
            return z3.Re(self.literal(""), self.ctx)
        if isinstance(n, Chars):
            ranges = []
            for lo, hi in n.ivs:
                hi = min(hi, MAXCHAR)
                if lo > hi:
                    continue
                if lo == hi:
                    ranges.append(z3.Re(self.char(lo), self.ctx))
                else:
                    ranges.append(z3.Range(self.char(lo), self.char(hi), self.ctx))
            return re_union(self.sort, ranges)
        if isinstance(n, Cat):
            parts = []
            buf = []  # runs of single characters become one string literal
            for x in n.items:
                if isinstance(x, Chars) and len(x.ivs) == 1 and x.ivs[0][0] == x.ivs[0][1] <= MAXCHAR:
                    buf.append(chr(x.ivs[0][0]))
                    continue
                if buf:
                    parts.append(z3.Re(self.literal("".join(buf)), self.ctx))
                    buf = []
                parts.append(self(x))
            if buf:
                parts.append(z3.Re(self.literal("".join(buf)), self.ctx))
            return re_concat(self.ctx, parts)
        if isinstance(n, Alt):
            return re_union(self.sort, [self(x) for x in n.items])
        if isinstance(n, Rep):
            inner = self(n.node)
            if n.hi is None:
                if n.lo == 0:
                    return z3.Star(inner)
                return re_concat(self.ctx, [z3.Loop(inner, n.lo, n.lo), z3.Star(inner)])
            if n.hi == 0:  # never Loop(r, 0, 0): Z3 reads it as unbounded
                return z3.Re(self.literal(""), self.ctx)
            return z3.Loop(inner, n.lo, n.hi)
        if isinstance(n, (Bos, Eos)):  # pragma: no cover - removed by search_language
            return z3.Empty(self.sort)
        raise TypeError(n)

    def literal(self, text: str):
        from .sym import string_val

        return string_val(text, self.ctx)


# ---- facts for lints -------------------------------------------------------------------------


def whole_match_ast(pattern: str):
    """The strings the pattern matches whole, with its anchors satisfied at both ends."""
    return _Anchors().P(parse(pattern), True, True)


def anchored(pattern: str) -> tuple[bool, bool]:
    """(start, end): whether every alternative of the pattern is pinned by `^`/`\\A` at the
    start (by `$`/`\\z`, or a final `/` delimiter, at the end). Syntactic, per branch:
    `^a|b` is not anchored."""
    ast = parse(pattern)
    return _pinned(ast, Bos, 0), _pinned(ast, Eos, -1)


_SLASH = Chars(((ord("/"), ord("/")),))


def _pinned(n, anchor, side: int) -> bool:
    """`side` -1 also accepts a final `/`: a path prefix ending at a delimiter is intended."""
    if isinstance(n, anchor) or (side == -1 and n == _SLASH):
        return True
    if isinstance(n, Cat):
        return _pinned(n.items[side], anchor, side)
    if isinstance(n, Alt):
        return all(_pinned(x, anchor, side) for x in n.items)
    if isinstance(n, Rep):
        return n.lo >= 1 and _pinned(n.node, anchor, side)
    return False
