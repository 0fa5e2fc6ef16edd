"""Typed calls at the gateway: what checks a tool's calls, and the check of one call.

These are the two pure steps of the gateway's admission path for a `tools/call`
(proxy.schema_check): from the tool's definitions in a listing (the pinned catalog's, or
the upstream's own `tools/list`) to a validator or the reason there is none, and from a
validator and the call's arguments to None (conforms: the policy decides next) or the
refusal the caller reads. Where the listing comes from, caching and memoising stay in
the proxy; validation itself is `mcpp.catalog.conformance` (jsonschema, RE2 patterns).
They are separate so that the property tests can run exactly what the gateway runs
without a gateway (tests/gateway/test_typed_property.py).

`admit` is the whole step: the check, then the tool's declared defaults filled in
(catalog/defaults.py) so that the policy decides, and the upstream runs, the arguments an
SDK server would run with; the filled call is checked again (a declared default that does
not conform to its own schema refuses the call that omits it).
"""

from __future__ import annotations

import json

from mcpp.catalog.conformance import SchemaCache, SchemaUnusable, check
from mcpp.catalog.defaults import fill


def escape_pointer(token: str) -> str:
    """One JSON Pointer reference token (RFC 6901: `~` → `~0`, `/` → `~1`), as in the rule
    pointers decisions name (`/tools/<tool>/…`), which the gateway builds and reads."""
    return token.replace("~", "~0").replace("/", "~1")


def tool_checker(schemas: SchemaCache, defs: list[dict], name: str):
    """A validator for the calls of tool `name` (listed as `defs`: every definition the
    listing has under that name), or (kind, reason, message) saying why calls to it are
    refused: not listed, listed twice with different schemas, no schema, or a schema
    that cannot be used."""
    if not defs:
        return ("unlisted", f"the upstream does not list tool {name!r}",
                f"Tool {name} is not offered by this server (it is not in the server's tool list).")
    distinct = {json.dumps(d.get("inputSchema"), sort_keys=True, default=str) for d in defs}
    if len(distinct) > 1:
        return ("ambiguous", f"the upstream lists tool {name!r} twice with different schemas",
                f"Tool {name} cannot be checked: the server lists it twice with different input schemas.")
    schema = defs[0].get("inputSchema")
    if not isinstance(schema, dict):
        return ("no_schema", "no inputSchema object in the tool's definition",
                f"Tool {name} cannot be checked: the server declares no input schema for it.")
    try:
        return schemas.get(schema)
    except SchemaUnusable as e:
        return ("unusable_schema", str(e), f"Tool {name} cannot be checked: its declared input schema cannot be used ({e}).")


def check_arguments(checker, name: str, args) -> dict | None:
    """None when `args` conforms (the call goes on to the policy); else the refusal:
    {kind, pointer, reason, message}, the pointer `/tools/<tool>/schema` + the JSON pointer
    of the failing keyword, the message naming the argument, never its value."""
    base = f"/tools/{escape_pointer(name)}/schema"
    if isinstance(checker, tuple):
        kind, reason, message = checker
        return {"kind": kind, "pointer": base, "reason": reason, "message": message}
    try:
        v = check(checker, args)
    except RecursionError:
        return {"kind": "invalid_arguments", "pointer": base, "reason": "arguments nested too deeply",
                "message": f"The arguments of {name} are nested too deeply to check."}
    if v is None:
        return None
    return {"kind": "invalid_arguments", "pointer": base + v.pointer, "reason": v.message,
            "message": f"{v.message} (tool {name}; the call was not forwarded)"}


def admit(checker, name: str, args) -> tuple[dict | None, object]:
    """(None, the arguments the policy decides and the upstream runs) when the call may go
    on to the policy, else (the refusal, `args`): `check_arguments`, then the declared
    defaults of absent properties filled in (`catalog.defaults.fill`, over the schema the
    validator checks). The filled arguments are `args` itself when nothing was filled; when
    something was, they are checked again and must be JSON text the gateway can send."""
    refusal = check_arguments(checker, name, args)
    if refusal is not None or isinstance(checker, tuple):
        return refusal, args
    base = f"/tools/{escape_pointer(name)}/schema"
    try:
        filled = fill(checker.schema, args)
        if filled is args:
            return None, args
        v = check(checker, filled)
        if v is None:
            json.dumps(filled, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except RecursionError:
        return {"kind": "invalid_arguments", "pointer": base, "reason": "arguments nested too deeply",
                "message": f"The arguments of {name} are nested too deeply to check."}, args
    except (ValueError, UnicodeEncodeError):  # a default with a lone surrogate: no JSON text can carry it
        return {"kind": "invalid_default", "pointer": base, "reason": "a declared default is not valid JSON text",
                "message": (f"Tool {name} declares a default for an argument this call omits that cannot be sent "
                            "(it is not valid Unicode text); pass the argument explicitly. The call was not forwarded.")}, args
    if v is not None:
        return {"kind": "invalid_default", "pointer": base + v.pointer,
                "reason": f"a declared default does not conform to the tool's own schema: {v.message}",
                "message": (f"Tool {name} declares a default for an argument this call omits that does not conform to "
                            f"its own input schema ({v.message}); pass the argument explicitly. The call was not "
                            "forwarded.")}, args
    return None, filled
