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

# (the bound and the walk are the language's: one for definitions and for calls' arguments)
from mcpp.lang.nesting import MAX_NESTING, too_deep  # noqa: F401


def clip(pointer: str) -> str:
    return pointer if len(pointer) <= 160 else pointer[:160] + "…"


def describe(pointer: str | None = None, limit: int = MAX_NESTING) -> str:
    """The sentence for a definition `too_deep` refused (with the pointer, clipped, when
    the message does not already start with it)."""
    at = f" (at {clip(pointer)})" if pointer is not None else ""
    return f"nested deeper than {limit} levels of objects and arrays{at}, which mcpp does not read"
