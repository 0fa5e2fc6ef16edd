"""Regular expressions with Go's meaning: RE2 syntax, unanchored search.

The JSON form's `regex` op is Go's `regexp.MatchString`; google-re2 is the same engine
family (linear time, no backreferences or lookaround). RE2 C++ accepts a few things Go
rejects; those are refused here so a policy means the same in both.
"""

from __future__ import annotations

import functools
import re

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False
_OPTIONS.never_capture = True


class RegexError(ValueError):
    pass


def _go_incompatibility(pattern: str) -> str | None:
    i = 0
    n = len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if nxt == "C":
                return "\\C (any byte) is not supported by Go's regexp"
            if nxt == "Q":  # skip a quoted literal section
                end = pattern.find("\\E", i + 2)
                i = n if end == -1 else end + 2
                continue
            i += 2
            continue
        if c == "[" and not in_class:
            in_class = True
            if pattern[i + 1 : i + 2] == "^":
                i += 1
            if pattern[i + 1 : i + 2] == "]":
                i += 1
        elif c == "]" and in_class:
            in_class = False
        i += 1
    return None


@functools.lru_cache(maxsize=4096)
def compile_regex(pattern: str):
    """Compile (cached) or raise RegexError with RE2's explanation."""
    problem = _go_incompatibility(pattern)
    if problem:
        raise RegexError(problem)
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as e:
        msg = e.args[0] if e.args else str(e)
        if isinstance(msg, bytes):
            msg = msg.decode("utf-8", "replace")
        raise RegexError(f"invalid RE2 regular expression: {msg}{_why(msg, pattern)}") from None
    except (TypeError, ValueError) as e:  # e.g. surrogates that cannot be UTF-8 encoded
        raise RegexError(f"invalid regular expression: {e}") from None


_BACKREF = re.compile(r"invalid escape sequence: \\[1-9kg]")
_LOOKAROUND = re.compile(r"invalid perl operator: \(\?<?[=!]")
_NO_BACKREFS = " (RE2 has no backreferences: it matches in linear time)"


def _why(msg: str, pattern: str) -> str:
    """What RE2's terse message means, for the features people reach for first."""
    if _BACKREF.search(msg) or ("invalid perl operator: (?P" in msg and "(?P=" in pattern):
        return _NO_BACKREFS
    if _LOOKAROUND.search(msg):
        return " (RE2 has no lookahead or lookbehind: it matches in linear time)"
    return ""


def regex_error(pattern: str) -> str | None:
    try:
        compile_regex(pattern)
    except RegexError as e:
        return str(e)
    return None


_META = set("\\.+*?()|[]{}^$")


def escape(text: str) -> str:
    """Quote literal text for RE2 (and Go): metacharacters with a backslash, controls as \\x{..}."""
    out = []
    for c in text:
        if c in _META:
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append("\\x{%x}" % ord(c))
        else:
            out.append(c)
    return "".join(out)


def like_to_regex(chunks: tuple[str, ...]) -> str:
    """Cedar `like` as an anchored RE2 pattern (`*` matches any text, newlines included)."""
    return "^" + "(?s:.*)".join(escape(c) for c in chunks) + "$"
