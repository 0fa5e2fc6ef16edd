"""How deep JSON values may nest in mcpp: one bound, checked without recursion.

Everything that reads a value recursively — `json` itself, jsonschema (a few Python frames
per level), `copy.deepcopy`, the engine and the analyzer's walks — fails with a
RecursionError at a depth that depends on how deep the Python stack already was. A
refusal that depends on the caller's stack is two meanings of one input: the Python API
allowed arguments nested 980 levels deep that the gateway answered with a parse error, and
`mcpp eval --call` crashed where `--calls` decided (hostile review 22, F7); a tool
definition nested 500 levels crashed the CLI (hostile review 11, F6). So values deeper than
`MAX_NESTING` are refused up front, the same way everywhere, by a walk that cannot itself
run out of stack: a call's arguments (lang/jsontext.py `TOO_DEEP`), and a tool's definition
(catalog/depth.py).

64 is .NET's System.Text.Json and Json.NET default maximum depth; no tool's arguments or
SDK schema come near it, and it leaves every recursive reader here hundreds of frames of
headroom (jsonschema over a recursive `$ref: "#"` schema reaches about 245 levels from an
empty stack).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MAX_NESTING = 64  # JSON objects and arrays one inside another, counting the outermost


def _escape(token) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def too_deep(value, limit: int = MAX_NESTING) -> str | None:
    """The JSON pointer (relative to `value`) of the first object or array nested deeper
    than `limit` levels, or None. Iterative, so it cannot itself run out of stack."""
    # (node, depth, parent entry, key): the path is rebuilt only when it is needed
    stack: list[tuple] = [(value, 1, None, None)]
    while stack:
        entry = stack.pop()
        node, depth = entry[0], entry[1]
        children: Iterable[tuple[Any, Any]]
        if isinstance(node, dict):
            children = node.items()
        elif isinstance(node, list):
            children = enumerate(node)
        else:
            continue
        if depth > limit:
            tokens = []
            e = entry
            while e[2] is not None:
                tokens.append(_escape(e[3]))
                e = e[2]
            return "".join("/" + t for t in reversed(tokens))
        for k, v in children:
            if isinstance(v, (dict, list)):
                stack.append((v, depth + 1, entry, k))
    return None


def may_nest_deeper(text: str | bytes, limit: int = MAX_NESTING) -> bool:
    """False when JSON `text` cannot hold anything nested deeper than `limit` levels: it has
    no more opening brackets than that (a bracket inside a string counts too, so this only
    ever errs towards walking). Counting runs in C; nearly every call is decided by it
    without `too_deep`'s walk."""
    if isinstance(text, bytes):
        return text.count(b"{") + text.count(b"[") > limit
    return text.count("{") + text.count("[") > limit


# a JSON string as a JSON encoder writes it (quotes and backslashes inside escaped)
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_STRING_B = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
# what is left of JSON text once its strings are out: brackets, kept as parentheses (well
# formed JSON nests them properly: one kind will do), and the rest of its grammar, dropped
_GRAMMAR = ",:0123456789+-.eEtrufalsnNIiy \t\r\n"  # (NaN and Infinity too, which Python's encoder can write)
_PARENS = str.maketrans("[]{}", "()()", _GRAMMAR)
_PARENS_B = (bytes.maketrans(b"[]{}", b"()()"), _GRAMMAR.encode())
_RUNS = re.compile(r"\(+|\)+")
ROUNDS = 4  # innermost pairs taken out before the rest is measured run by run


def text_too_deep(text: str | bytes, limit: int = MAX_NESTING) -> bool:
    """Whether the JSON `text` (as a JSON encoder writes it: well formed; str or UTF-8)
    nests deeper than `limit` levels of objects and arrays: `too_deep`'s answer for the
    value it encodes, without a Python step per value. The strings go first (a bracket in
    one is no nesting), then everything but the brackets. A round then takes out every
    innermost pair, which lowers the depth by exactly one: `ROUNDS` of them (C passes) leave
    little of a wide structure; what is left is measured run by run (a run of opening or
    closing brackets: one Python step each). A 4 MiB body costs 30-170 ms this way in
    every shape tried (flat, 63-deep nests, binary trees, objects with strings); 64
    rounds cost 0.7 s on many 63-deep nests, and the walk over values 1.7 s of the
    gateway's event loop (hostile reviews 24 F4, 26 F3)."""
    if not may_nest_deeper(text, limit):
        return False
    if isinstance(text, bytes):
        s = _STRING_B.sub(b"", text).translate(*_PARENS_B).decode("ascii", "replace")
    else:
        s = _STRING.sub("", text).translate(_PARENS)
    taken = 0
    while taken < min(ROUNDS, limit):
        inner = s.replace("()", "")  # (one pass: a pair a removal exposes waits for the next round)
        if not inner:
            return False
        if inner == s:  # (no innermost pair left: not JSON text; refused, as too deep to read)
            return True
        s, taken = inner, taken + 1
    depth = deepest = 0
    for run in _RUNS.findall(s):
        if run[0] == "(":
            depth += len(run)
            if depth > deepest:
                deepest = depth
        else:
            depth -= len(run)
    if depth != 0:  # (unbalanced: not JSON text; refused, as too deep to read)
        return True
    return taken + deepest > limit
