"""Typed calls: the gateway's admission of one call, which everything that decides shares.

These are the pure steps of the gateway's admission path for a `tools/call`
(runtime/gateway/proxy.py `schema_check`): from the tool's definitions in a listing (the
pinned catalog's, or the upstream's own `tools/list`) to a validator or the reason there
is none, and from a validator and the call's arguments to None (conforms: the policy
decides next) or the refusal the caller reads. Where the listing comes from, caching and
memoising stay in the proxy; validation itself is `mcpp.catalog.conformance` (jsonschema,
RE2 patterns).

`admit` is the whole step: the check, then the tool's declared defaults filled in
(catalog/defaults.py) so that the policy decides, and the upstream runs, the arguments an
SDK server would run with; the filled call is checked again (a declared default that does
not conform to the tool's schema — on its own, or in the call it is filled into — refuses
the call that omits it: `invalid_default`).

It lives with the catalogs, not in the gateway, because every other place that decides a
call against a catalog must give the gateway's outcome: `mcpp eval` and the Python API
with a catalog (`Policy.decide`), `mcpp test` for a policy that names one, and the
language server (`CatalogAdmission`), and the property tests run exactly this
(tests/gateway/test_typed_property.py). runtime/gateway/schemas.py re-exports it.
"""

from __future__ import annotations

import json

from .conformance import SchemaCache, SchemaUnusable, check
from .defaults import FillTooLarge, fill, plan
from .depth import MAX_NESTING, describe as describe_depth, too_deep
# (NotJSONText and the encoders: re-exported for the gateway, which may not import the language)
from mcpp.lang.jsontext import (  # noqa: F401
    MAX_MESSAGE_NESTING, MESSAGE_TOO_DEEP, TOO_DEEP, NotJSONText, arguments_too_deep, compact, compact_finite,
    is_text, json_bytes, may_hold_unsafe_integer, message_too_deep, unsafe_integer, unwritable,
)
from mcpp.lang.nesting import may_nest_deeper  # noqa: F401


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
    for d in defs:
        deep = too_deep(d.get("inputSchema"))
        if deep is not None:  # (comparing the definitions below is recursive: bounded first)
            why = f"the input schema is {describe_depth(deep)}"
            return ("unusable_schema", why, f"Tool {name} cannot be checked: its declared input schema cannot be used ({why}).")
    distinct = {json.dumps(d.get("inputSchema"), sort_keys=True, default=str) for d in defs}
    if len(distinct) > 1:
        return ("ambiguous", f"the upstream lists tool {name!r} twice with different schemas",
                f"Tool {name} cannot be checked: the server lists it twice with different input schemas.")
    schema = defs[0].get("inputSchema")
    if not isinstance(schema, dict):
        return ("no_schema", "no inputSchema object in the tool's definition",
                f"Tool {name} cannot be checked: the server declares no input schema for it.")
    try:
        validator = schemas.get(schema)
    except SchemaUnusable as e:
        return ("unusable_schema", str(e), f"Tool {name} cannot be checked: its declared input schema cannot be used ({e}).")
    # the fill plan is made here too, where the validator is (the gateway compiles in a worker
    # thread): made by the first call's `fill`, a large schema's plan took seconds of the
    # event loop, `/healthz` included (hostile review 32, H32-2)
    try:
        plan(validator.schema)
    except RecursionError:  # (called from a deep stack: `fill` makes it where its failures are handled)
        pass
    return validator


def check_arguments(checker, name: str, args) -> dict | None:
    """None when `args` conforms (the call goes on to the policy); else the refusal:
    {kind, pointer, reason, message}, the pointer `/tools/<tool>/schema` + the JSON pointer
    of the failing keyword, the message naming the argument, never its value."""
    if isinstance(checker, tuple):
        kind, reason, message = checker
        return {"kind": kind, "pointer": schema_pointer(name), "reason": reason, "message": message}
    try:
        v = check(checker, args)
    except RecursionError:
        return {"kind": "invalid_arguments", "pointer": schema_pointer(name), "reason": "arguments nested too deeply",
                "message": f"The arguments of {name} are nested too deeply to check."}
    except SchemaUnusable as e:
        return _unusable(name, schema_pointer(name), e)
    if v is None:
        return None
    return {"kind": "invalid_arguments", "pointer": schema_pointer(name) + v.pointer, "reason": v.message,
            "message": f"{v.message} (tool {name}; the call was not forwarded)"}


def schema_pointer(name: str) -> str:
    """The rule pointer of a tool's schema, `/tools/<tool>/schema`: built for refusals only
    (a call that conforms, nearly every call, never needs it)."""
    return f"/tools/{escape_pointer(name)}/schema"


def _unusable(name: str, base: str, e: SchemaUnusable) -> dict:
    return {"kind": "unusable_schema", "pointer": base, "reason": str(e),
            "message": f"Tool {name} cannot be checked: its declared input schema cannot be used ({e})."}


def admit(checker, name: str, args) -> tuple[dict | None, object]:
    """(None, the arguments the policy decides and the upstream runs) when the call may go
    on to the policy, else (the refusal, `args`): `check_arguments`, then the declared
    defaults of absent properties filled in (`catalog.defaults.fill`, over the schema the
    validator checks). The filled arguments are `args` itself when nothing was filled; when
    something was, they are checked again and must be JSON text the gateway can send."""
    refusal = check_arguments(checker, name, args)
    if refusal is not None or isinstance(checker, tuple):
        return refusal, args
    try:
        filled = fill(checker.schema, args)
    except FillTooLarge as e:  # (defaults filled inside defaults, through references: bounded)
        return {"kind": "invalid_default", "pointer": schema_pointer(name), "reason": str(e),
                "message": (f"Tool {name} declares defaults for arguments this call omits that are too large to fill in "
                            f"({e}); pass the arguments explicitly. The call was not forwarded.")}, args
    except RecursionError:  # (a schema within catalog/depth.py's bound never gets here: defensive)
        return {"kind": "invalid_default", "pointer": schema_pointer(name), "reason": "a declared default is nested too deeply to fill",
                "message": (f"Tool {name} declares a default for an argument this call omits that is nested too deeply "
                            "to fill in; pass the argument explicitly. The call was not forwarded.")}, args
    if filled is args:
        return None, args
    base = schema_pointer(name)
    if arguments_too_deep(filled):
        # the call was within the bound and the tool's own defaults took it past: the
        # tool's declaration is at fault, and every part that admits calls refuses it alike
        # (hostile review 24, F1: the API decided it, the gateway denied it at /request)
        return {"kind": "invalid_default", "pointer": base, "reason": f"declared defaults, filled in, make the arguments nest "
                f"deeper than {MAX_NESTING} levels", "message": (
                    f"Tool {name} declares defaults for arguments this call omits that, filled in, nest the arguments deeper "
                    f"than {MAX_NESTING} levels of objects and arrays; pass them explicitly. The call was not forwarded.")}, args
    try:
        v = check(checker, filled)
        if v is None:
            json_bytes(filled)  # (what the gateway forwards: NotJSONText, a ValueError, if it cannot)
    except RecursionError:
        return {"kind": "invalid_arguments", "pointer": base, "reason": "arguments nested too deeply",
                "message": f"The arguments of {name} are nested too deeply to check."}, args
    except SchemaUnusable as e:
        return _unusable(name, base, e), args
    except ValueError:  # a default with a lone surrogate: no JSON text can carry it
        return {"kind": "invalid_default", "pointer": base, "reason": "a declared default is not valid JSON text",
                "message": (f"Tool {name} declares a default for an argument this call omits that cannot be sent "
                            "(it is not valid Unicode text); pass the argument explicitly. The call was not forwarded.")}, args
    if v is not None:
        return {"kind": "invalid_default", "pointer": base + v.pointer,
                "reason": f"a declared default does not conform to the tool's own schema once filled in: {v.message}",
                "message": (f"Tool {name} declares a default for an argument this call omits that makes the call not "
                            f"conform to its own input schema ({v.message}); pass the argument explicitly. The call was "
                            "not forwarded.")}, args
    return None, filled


def not_json(tool, args) -> dict | None:
    """None when JSON text can carry the call (`tool`, `args`), else the gateway's refusal
    of it, as a refusal here: kind `not_json`, rule `/request` (the engine's rule for a
    call that is not a well-formed `tools/call`; the gateway answers it with a JSON-RPC
    error, before any rule), its reason as the message (lang/jsontext.py): arguments nested
    deeper than its bound too (`TOO_DEEP`)."""
    why = unwritable([tool, args])
    if why is None:
        if arguments_too_deep(args):
            why = TOO_DEEP
        else:
            why = unsafe_integer(args)  # (beyond ±(2^53-1): I-JSON, as the gateway refuses it)
            if why is None:
                return None
    return {"kind": "not_json", "pointer": "/request", "reason": why, "message": why}


class CatalogAdmission:
    """The gateway's admission for the tools of one catalog (`catalog.model.Catalog`), as
    `mcpp eval`, the Python API, `mcpp test` and the language server apply it: (the
    gateway's refusal `{kind, pointer, reason, message}`, or None; the arguments the
    policy decides, with the declared defaults filled in).

    It is the gateway's own step (`admit`, which proxy.py `schema_check` runs) over the
    catalog's definition of the tool, with nothing added or excused: a call whose
    arguments break the tool's schema (`{"amount": "5000"}` for a number, an undeclared
    argument, a value out of bounds, a required argument left out) gets the gateway's
    `invalid_arguments` refusal, a declared default that makes the filled call not
    conform gets `invalid_default`, and a tool whose schema cannot be used refuses every
    call, with the same pointers and messages. (An earlier version let a call that only
    left out required arguments reach the policy; hostile review 18 found the policy then
    deciding calls the gateway refuses in every completion: defaults filled unchecked,
    `dependentSchemas`, `if`/`then`, `maxProperties`.) A tool the catalog does not list
    is left to the policy. Validators are compiled once per distinct schema.

    Before all that, as at the gateway (proxy.py `call_tool`, for every call whether or not
    the server checks schemas), a call no JSON text can carry — NaN, ±Infinity, a lone
    surrogate, anywhere in it — is refused (`not_json`)."""

    def __init__(self, catalog, schemas: SchemaCache | None = None):
        self.tools = catalog.tools
        self.schemas = schemas if schemas is not None else SchemaCache()
        self._checkers: dict[str, object] = {}

    def admit(self, tool, args) -> tuple[dict | None, object]:
        # what no JSON text can carry (NaN, ±Infinity, a lone surrogate, at any depth, keys
        # too) the gateway refuses before its schema check, for any tool: so here, first
        # (lang/jsontext.py, the gateway's own definition; hostile review 18 F8)
        refusal = not_json(tool, args)
        if refusal is not None:
            return refusal, args
        t = self.tools.get(tool) if isinstance(tool, str) else None
        if t is None:
            return None, args
        checker = self._checkers.get(tool)
        if checker is None:
            checker = self._checkers[tool] = tool_checker(self.schemas, [{"inputSchema": t.input_schema}], tool)
        return admit(checker, tool, {} if args is None else args)  # (the proxy reads absent arguments as {})
