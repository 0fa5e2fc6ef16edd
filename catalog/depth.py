"""How deep a tool definition may nest: one bound, checked without recursion.

Every step that reads a tool's definition — the catalog loader (`sort_keys`, the hash),
the validator (jsonschema descends recursively), the fill of a declared default
(`copy.deepcopy`) and the analyzer's schema walks — is recursive, so a definition nested
deep enough (a `default` of 500 nested objects is valid JSON that `json.loads` reads)
would exhaust Python's stack in one of them: an internal error in the CLI, and at the
gateway a refusal that depends on how deep the stack already was. Instead a definition
nested deeper than `MAX_NESTING` is refused up front, deterministically, with the JSON
pointer of the first value too deep: the catalog loader rejects it (`CatalogError`), and
the gateway refuses calls to a tool whose listed schema is that deep (`unusable_schema`).
No real SDK schema comes near it (pydantic's nested models sit under `$defs`, a few
levels each).
"""

from __future__ import annotations

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


def clip(pointer: str) -> str:
    return pointer if len(pointer) <= 160 else pointer[:160] + "…"


def describe(pointer: str | None = None, limit: int = MAX_NESTING) -> str:
    """The sentence for a definition `too_deep` refused (with the pointer, clipped, when
    the message does not already start with it)."""
    at = f" (at {clip(pointer)})" if pointer is not None else ""
    return f"nested deeper than {limit} levels of objects and arrays{at}, which mcpp does not read"
