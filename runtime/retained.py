"""Argument values an operator chose to keep in the audit (`audit_values`), in a form
`mcpp diff --audit` can replay against a new policy.

- `full`: the arguments as decided (`{"kind": "full", "arguments": {...}}`): a past call
  replays exactly (limits aside).
- `hashed`: the shape of the arguments and a keyed hash of each scalar
  (`{"kind": "hashed", "key": "<key id>", "paths": {"/a/b": ["str", "<hmac>"], …}}`):
  every object's keys (JSON pointers), each scalar's JSON type and HMAC-SHA256 (keyed by
  a secret in the state directory) of its RFC 8785 form, each array's type and length.
  Without the key nobody can test a guess; with it, a replay learns, for every constant a
  policy compares a path with, whether the value equals it — and nothing else (no order,
  no prefix, no pattern). Arrays keep no element hashes.

Both are bounded: at most MAX_PATHS paths, MAX_DEPTH levels (beyond: the row says
`truncated` and the replay treats what is missing as unknown).

This module is below the gateway (which writes rows) and the analyzer (which replays
them): both must hash a value the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import rfc8785

MAX_PATHS = 256
MAX_DEPTH = 8


def _pointer(path: tuple) -> str:
    return "".join("/" + str(k).replace("~", "~0").replace("/", "~1") for k in path)


def parse_pointer(ptr: str) -> tuple:
    if not ptr:
        return ()
    return tuple(p.replace("~1", "/").replace("~0", "~") for p in ptr.split("/")[1:])


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"mcpp-audit-values\0" + key).hexdigest()[:12]


def hash_value(key: bytes, value) -> str | None:
    """HMAC-SHA256 of the RFC 8785 form of a scalar (None if it has none)."""
    try:
        data = rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError):
        return None
    return hmac.new(key, data, hashlib.sha256).hexdigest()[:32]


def json_type(v) -> str:
    if isinstance(v, bool):
        return "bool"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return "num"
    if isinstance(v, str):
        return "str"
    if isinstance(v, list):
        return "arr"
    return "obj"


def retain(arguments, kind: str, key: bytes | None) -> str | None:
    """The value a row keeps for `arguments` (JSON text), or None for kind `none`."""
    if kind == "none" or not isinstance(arguments, dict):
        return None
    if kind == "full":
        return json.dumps({"kind": "full", "arguments": arguments}, separators=(",", ":"), ensure_ascii=False)
    assert key is not None
    paths: dict[str, list] = {}
    truncated = False
    stack: list[tuple[tuple, Any, int]] = [((), arguments, 0)]
    while stack:
        path, v, depth = stack.pop()
        if len(paths) >= MAX_PATHS:
            truncated = True
            break
        t = json_type(v)
        if t == "obj":
            paths[_pointer(path)] = ["obj", sorted(v)] if depth < MAX_DEPTH else ["obj", None]
            if depth < MAX_DEPTH:
                for k in sorted(v, reverse=True):
                    stack.append((path + (k,), v[k], depth + 1))
            else:
                truncated = True
        elif t == "arr":
            paths[_pointer(path)] = ["arr", len(v)]
        else:
            paths[_pointer(path)] = [t, hash_value(key, v)]
    out: dict[str, object] = {"kind": "hashed", "key": key_id(key), "paths": paths}
    if truncated:
        out["truncated"] = True
    return json.dumps(out, separators=(",", ":"), ensure_ascii=False)
