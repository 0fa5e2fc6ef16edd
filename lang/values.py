"""Values and the concrete meaning of mcpp's operators on them: JSON values as decoded
by `json`, plus entities and the error marker.

This module is the one place for what an operator means on concrete values: equality
(`cedar_eq`), set membership, `like`, the number test and JSON type names. The
evaluator (`lang.evaluator`) applies them; the Z3 encoding (`analyzer.encode`) states
the same meaning symbolically and is held to this one by property tests.

Equality is Cedar's: values of different types are unequal (never an error), arrays
compare as sets, `1 == 1.0` (JSON numbers), and `true != 1`.
"""

from __future__ import annotations

import math

from typing import Any, TypeGuard


class _Err:
    """The result of an erroring evaluation (missing attribute, wrong type)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ERR"

    def __bool__(self) -> bool:  # never silently truthy
        raise TypeError("ERR has no truth value")


ERR = _Err()


class Entity:
    __slots__ = ("type", "id", "attrs", "parents", "groups")

    def __init__(self, type: str, id: str, attrs: dict | None = None, parents: frozenset = frozenset()):
        self.type = type
        self.id = id
        self.attrs = attrs or {}
        self.parents = parents  # frozenset of (type, id)
        self.groups: frozenset[str] | None = None  # for grants: the group names it was built from (a cache check)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Entity) and self.type == other.type and self.id == other.id

    def __hash__(self) -> int:
        return hash((self.type, self.id))

    def __repr__(self) -> str:
        return f'{self.type}::"{self.id}"'

    @property
    def key(self) -> tuple[str, str]:
        return (self.type, self.id)


def is_number(v: object) -> TypeGuard[int | float]:
    """A JSON number: int or float, never bool (`True` is not `1` in mcpp or Cedar)."""
    t = type(v)
    return t is int or t is float


def is_finite_number(v: object) -> TypeGuard[int | float]:
    """A JSON number other than NaN and ±inf. An int always is: `math.isfinite` converts it
    to a float first, which overflows past 10^308 (a schema's `maximum` of 401 digits made
    `mcpp verify` end in an internal error and the gateway refuse its policy: hostile
    review 41, H41-8)."""
    t = type(v)
    return t is int or (t is float and math.isfinite(v))  # type: ignore[arg-type]


def like_match(s: str, chunks: tuple[str, ...]) -> bool:
    """Cedar `like`: `chunks` are the literal pieces between `*` wildcards; a wildcard
    matches any text, newlines included. Greedy leftmost matching of the middle pieces
    is exact for patterns whose only metacharacter is `*`."""
    if len(chunks) == 1:
        return s == chunks[0]
    first, last = chunks[0], chunks[-1]
    if len(s) < len(first) + len(last) or not s.startswith(first) or not s.endswith(last):
        return False
    pos, end = len(first), len(s) - len(last)
    for c in chunks[1:-1]:
        i = s.find(c, pos, end)
        if i < 0:
            return False
        pos = i + len(c)
    return True


def cedar_eq(a: Any, b: Any) -> bool:
    ta, tb = type(a), type(b)
    if ta is tb:
        if ta is list:
            return _set_eq(a, b)
        if ta is dict:
            return a.keys() == b.keys() and all(cedar_eq(a[k], b[k]) for k in a)
        return a == b
    if (ta is int and tb is float) or (ta is float and tb is int):
        return a == b
    return False


def _set_eq(a: list, b: list) -> bool:
    return all(any(cedar_eq(x, y) for y in b) for x in a) and all(any(cedar_eq(y, x) for x in a) for y in b)


def set_contains(s: list, v: object) -> bool:
    tv = type(v)
    if tv is str or tv is bool:
        for x in s:
            if type(x) is tv and x == v:
                return True
        return False
    return any(cedar_eq(x, v) for x in s)


def type_name(v: object) -> str:
    if v is ERR:
        return "error"
    if v is None:
        return "null"
    t = type(v)
    return {bool: "bool", int: "number", float: "number", str: "string", list: "set", dict: "record"}.get(
        t, "entity" if isinstance(v, Entity) else t.__name__
    )


def json_type(v: object) -> str:
    """JSON Schema's name for the type of a decoded JSON value (`boolean`, `number`, …)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"
