"""What a tool's JSON Schema says about one argument path, answered conservatively.

Validation may only report what the schema makes *certain* (an argument that cannot
exist, a type that cannot match), so every uncertainty widens: `$ref`s outside the
schema, `anyOf`/`oneOf` branches and missing `type`s all mean "could be anything".
A key is declared if any branch declares it, and required only if every branch
requires it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mcpp.lang.diagnostics import did_you_mean
from mcpp.lang.regex import RegexError, compile_regex
from mcpp.lang.values import json_type  # noqa: F401 - re-exported for catalog.validate

if TYPE_CHECKING:
    from .defaults import Level

JSON_TYPES = ("string", "number", "boolean", "null", "array", "object")
_MAX_DEPTH = 32


def _pointer(root: dict, ref: str):
    """Resolve a local `$ref` (`#`, `#/$defs/x`, `#/definitions/x`); None if not local or missing."""
    if not isinstance(ref, str) or not ref.startswith("#"):
        return None
    node = root
    if ref == "#":  # (`#/` is the root's member named "", RFC 6901, as `referencing` reads it: hostile review 42, H42-4)
        return root
    for raw in ref[2:].split("/") if ref.startswith("#/") else [None]:
        if raw is None:
            return None
        key = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isascii() and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return None
    return node


def _merge(a: dict, b: dict) -> dict:
    """allOf of two resolved schemas, approximately: both sets of properties and required keys."""
    out = dict(a)
    for k, v in b.items():
        if k == "properties" and isinstance(v, dict) and isinstance(out.get("properties"), dict):
            props = dict(out["properties"])
            for pk, pv in v.items():
                props[pk] = {"allOf": [props[pk], pv]} if pk in props else pv
            out["properties"] = props
        elif k == "required" and isinstance(v, list) and isinstance(out.get("required"), list):
            out["required"] = list(dict.fromkeys(out["required"] + v))
        elif k == "type" and "type" in out:
            ta, tb = _type_set(out), _type_set({"type": v})
            if ta is not None and tb is not None:
                out["type"] = sorted(ta & tb)
        else:
            out.setdefault(k, v)
    return out


# in-place applicators whose subschemas may evaluate keys (for `unevaluatedProperties`)
# that `resolve` does not merge into an alternative's `properties`
_EVALUATES_UNSEEN = ("anyOf", "oneOf", "if", "then", "else", "dependentSchemas", "dependencies", "$dynamicRef",
                     "$recursiveRef", "extends")
# keywords that evaluate keys themselves: in an `allOf` member or a `$ref` target, `_merge`
# may keep another schema's in their place
_EVALUATES_KEYS = ("patternProperties", "additionalProperties", "unevaluatedProperties")


# what an opened `unevaluatedProperties` reads as: any key, any value, and "declared" (a
# conditional subschema may declare it: `check` must not call it undeclared or absent)
_EVALUATED_ELSEWHERE = {"$comment": "mcpp: other keys may be evaluated by subschemas not modelled here"}


def _evaluates_listed_only(schema: dict, root: dict) -> bool:
    """Whether every key that a valid `schema` evaluates (in `unevaluatedProperties`' sense)
    is one its resolved alternative lists: its own `properties`/`patternProperties`/
    `additionalProperties` and the `properties` of the `$ref` targets and `allOf` members
    `resolve` merges into it. Anything else — `if`/`then`/`else`, `dependentSchemas`, an
    `anyOf`/`oneOf` (an `allOf` member with several alternatives, which `resolve` drops), a
    `$dynamicRef`, a reference that does not resolve, a member's own `patternProperties` —
    may evaluate keys the alternative does not show (hostile review 41, H41-4)."""
    todo: list = [(schema, True)]
    seen: set[int] = set()
    while todo:
        n, top = todo.pop()
        if n is True or n is False:
            continue
        if not isinstance(n, dict) or n is _OTHER_DIALECT or id(n) in seen or len(seen) > 256:
            return False
        seen.add(id(n))
        if any(k in n for k in _EVALUATES_UNSEEN):
            return False
        if not top and any(k in n for k in _EVALUATES_KEYS):
            return False
        if "$ref" in n:
            target = _pointer(root, n["$ref"])
            if target is None:
                return False
            todo.append((target, False))
        if "allOf" in n:
            if not isinstance(n["allOf"], list):
                return False
            todo.extend((m, False) for m in n["allOf"])
    return True


def resolve(schema, root: dict, depth: int = 0, seen: frozenset = frozenset()) -> list[dict]:
    """The alternatives a value may satisfy, each free of `$ref`/`anyOf`/`oneOf`.
    `{}` stands for "anything" (an unresolvable reference widens to it)."""
    if schema is True or depth > _MAX_DEPTH:
        return [{}]
    if schema is False:
        return []
    if not isinstance(schema, dict):
        return [{}]
    if "unevaluatedProperties" in schema and "additionalProperties" not in schema \
            and schema["unevaluatedProperties"] not in ({}, True) and not _evaluates_listed_only(schema, root):
        # the keys some other subschema evaluates are not the ones this schema lists: other
        # keys are open, as under an unresolvable reference (H41-4)
        schema = {**schema, "unevaluatedProperties": _EVALUATED_ELSEWHERE}
    if "$ref" in schema:
        ref = schema["$ref"]
        target = _pointer(root, ref)
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        if target is None or ref in seen:
            return [{}]
        return [_merge(alt, rest) if rest else alt for alt in resolve(target, root, depth + 1, seen | {ref})]
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            base = {k: v for k, v in schema.items() if k != key}
            out: list[dict] = []
            for branch in schema[key]:
                for alt in resolve(branch, root, depth + 1, seen):
                    for b in resolve(base, root, depth + 1, seen) if base else [{}]:
                        out.append(_merge(b, alt) if base else alt)
            return out
    if isinstance(schema.get("allOf"), list):
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            alts = resolve(part, root, depth + 1, seen)
            if len(alts) == 1:
                merged = _merge(merged, alts[0])
        return resolve(merged, root, depth + 1, seen)
    return [schema]


def _type_set(alt: dict) -> frozenset[str] | None:
    """JSON types one resolved alternative allows (integer counts as number); None = any."""
    t = alt.get("type")
    if isinstance(t, str):
        t = [t]
    if isinstance(t, list) and all(isinstance(x, str) for x in t):
        return frozenset("number" if x == "integer" else x for x in t if x in JSON_TYPES or x == "integer")
    values = _values(alt)
    if values is not None:
        return frozenset(json_type(v) for v in values)
    return None


def _values(alt: dict) -> list | None:
    if "const" in alt:
        return [alt["const"]]
    if isinstance(alt.get("enum"), list):
        return list(alt["enum"])
    return None


@dataclass
class View:
    """The schemas a value at some argument path may satisfy.

    `level` is what the gateway fills in when the value is an object (catalog/defaults.py):
    a key with a fillable default is always present in the calls the policy decides, so
    `child` reports it required."""

    alts: list[dict]
    root: dict
    level: Level | None = None

    @property
    def types(self) -> frozenset[str] | None:
        out: set[str] = set()
        for alt in self.alts:
            ts = _type_set(alt)
            if ts is None:
                return None
            out |= ts
        return frozenset(out)

    @property
    def values(self) -> list | None:
        """The only values allowed (enum/const across every alternative), or None if unconstrained."""
        out: list = []
        for alt in self.alts:
            vs = _values(alt)
            if vs is None:
                return None
            out.extend(vs)
        return out

    def may_be(self, t: str) -> bool:
        ts = self.types
        return ts is None or t in ts

    def items(self) -> "View":
        alts: list[dict] = []
        for alt in self.alts:
            it = _OTHER_DIALECT if alt is _OTHER_DIALECT else alt.get("items")
            alts.extend(resolve(it, self.root) if it is not None else [{}])
        return View(alts, self.root)  # nothing is filled inside array elements

    def filled(self) -> list[str]:
        """The keys the gateway fills in when this value is an object (and they are absent)."""
        return list(self.level.defaults) if self.level is not None else []

    def child(self, key: str) -> "Child":
        """What the schema says about `value[key]` when the value is an object."""
        declared: list[dict] = []
        open_ = False
        required_all = True
        object_alts = 0
        names: list[str] = []
        for alt in self.alts:
            ts = _type_set(alt)
            if ts is not None and "object" not in ts:
                continue
            object_alts += 1
            if alt is _OTHER_DIALECT:  # not read: any key, any value, declared or not (H41-3)
                required_all = False
                declared.append(_OTHER_DIALECT)
                continue
            given = alt.get("properties")
            props = given if isinstance(given, dict) else {}
            names.extend(k for k in props if k not in names)
            listed = alt.get("required")
            req = listed if isinstance(listed, list) else []
            if key not in req:
                required_all = False
            if key in props:
                declared.extend(resolve(props[key], self.root))
                continue
            pattern_hit = False
            pats = alt.get("patternProperties")
            if isinstance(pats, dict):
                for pat, sub in pats.items():
                    try:  # RE2, as the gateway's validator runs it (catalog/conformance.py)
                        if compile_regex(pat).search(key) is not None:
                            declared.extend(resolve(sub, self.root))
                            pattern_hit = True
                    except (RegexError, TypeError, ValueError, UnicodeError):
                        open_ = True
            if pattern_hit:
                continue
            # `unevaluatedProperties` acts as `additionalProperties` only where the alternative
            # lists every key the schema evaluates (`resolve` opens it otherwise: H41-4)
            extra = alt.get("additionalProperties", alt.get("unevaluatedProperties", True))
            if extra is False:
                continue
            if isinstance(extra, dict) and extra:
                declared.extend(resolve(extra, self.root))
            else:
                open_ = True
        if declared or open_:
            alts = declared + ([{}] if open_ else [])
            status = "declared" if declared else "undeclared"
        else:
            alts, status = [], "absent"
        level = self.level.children.get(key) if self.level is not None else None
        filled = self.level is not None and key in self.level.defaults
        return Child(status, View(alts, self.root, level), (required_all and object_alts > 0) or filled, names, filled)


@dataclass
class Child:
    status: str  # declared | undeclared (the schema lets any key through) | absent (the schema forbids it)
    view: View
    required: bool  # in every call the policy decides: required by the schema, or filled in (`filled`)
    siblings: list[str] = field(default_factory=list)
    filled: bool = False  # the gateway fills its declared default in when a call omits it


DIALECT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
DIALECT_2019_09 = "https://json-schema.org/draft/2019-09/schema"
DRAFTS_6_7 = ("http://json-schema.org/draft-07/schema", "http://json-schema.org/draft-06/schema")
DRAFT_4 = "http://json-schema.org/draft-04/schema"
# keywords 2020-12 has and older drafts do not: their validators ignore them
_NEWER_THAN_7 = ("dependentSchemas", "dependentRequired", "unevaluatedProperties", "unevaluatedItems", "prefixItems",
                 "minContains", "maxContains")
_NEWER_THAN_4 = _NEWER_THAN_7 + ("const", "contains", "propertyNames", "if", "then", "else")


def dialect(schema: dict) -> str | None:
    """The dialect a schema declares (`$schema`, without an empty fragment), None for none,
    "?" for a `$schema` that is no string."""
    d = schema.get("$schema")
    return d.rstrip("#") if isinstance(d, str) else (None if d is None else "?")


def as_validated(schema: dict) -> dict:
    """A draft-4, -6 or -7 schema as its validator reads it, in 2020-12 terms (the terms this
    module reads): a `$ref` replaces its siblings (up to draft-07 the keywords beside a
    `$ref` are ignored: `{"$ref": "#/definitions/N", "type": "string"}` takes whatever N
    takes), and keywords the draft lacks are dropped (draft-04 has no `const`). Other
    dialects are returned as they are. Read beside the `$ref`, such a sibling made an
    argument the gateway forwards "never present" to `mcpp check` (hostile review 33)."""
    d = dialect(schema)
    dropped: tuple[str, ...]
    if d == DRAFT_4:
        dropped = _NEWER_THAN_4
    elif d in DRAFTS_6_7:
        dropped = _NEWER_THAN_7
    else:
        return schema

    def walk(n, depth=0, names=False):  # names: a map of names to subschemas (`properties`, …)
        if depth > 64:
            return {}
        if n is _OTHER_DIALECT:  # (`root_view`: kept, not copied — it is known by identity)
            return n
        if isinstance(n, dict):
            if names:  # (an argument named `maxContains` is no keyword: hostile review 42, H42-5)
                return {k: walk(v, depth + 1) for k, v in n.items()}
            if isinstance(n.get("$ref"), str):
                keep = {"$ref": n["$ref"]}
                if n is schema:  # the root keeps the definitions its references point into
                    keep.update({k: walk(v, depth + 1, True) for k, v in n.items() if k in ("definitions", "$defs")})
                return keep
            # (a data keyword's value is data: `const: {"if": 1}` keeps its `if`)
            return {k: v if k in _DATA_KEYWORDS else walk(v, depth + 1, k in _NAME_MAPS)
                    for k, v in n.items() if k not in dropped}
        if isinstance(n, list):
            return [walk(x, depth + 1) for x in n]
        return n

    return walk(schema)


# what a subschema in another dialect reads as (`root_view`): anything, evaluating unknown keys
_OTHER_DIALECT = {"$comment": "mcpp: a subschema in another dialect, not read"}
_DATA_KEYWORDS = ("const", "enum", "default", "examples")  # their values are data, not schemas
_NAME_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas", "dependencies")


def _other_dialects(schema: dict) -> tuple[dict, bool]:
    """`schema` with every subschema that names a `$schema` other than the root's replaced by
    `_OTHER_DIALECT`, and whether there was one. The gateway's validator switches dialect for
    such a subschema (catalog/conformance.py `_evolve`): a draft-04 property ignores `const`,
    a draft-07 one the keywords beside a `$ref` — read in the root's dialect, they were
    constraints the gateway does not check (hostile review 41, H41-3)."""
    root = dialect(schema) or DIALECT_2020_12  # (the gateway's validator defaults to 2020-12)
    if _refs_outside_subschemas(schema):
        return _OTHER_DIALECT, True
    found = False

    def walk(n, depth, names=False):  # names: a map of names to subschemas (`properties`, …)
        nonlocal found
        if depth > 64:
            return n
        if isinstance(n, dict):
            if names:
                return {k: walk(v, depth + 1) for k, v in n.items()}
            if depth and isinstance(n.get("$schema"), str) and (dialect(n) or DIALECT_2020_12) != root:
                found = True
                return _OTHER_DIALECT
            return {k: v if k in _DATA_KEYWORDS else walk(v, depth + 1, k in _NAME_MAPS) for k, v in n.items()}
        if isinstance(n, list):
            return [walk(x, depth + 1) for x in n]
        return n

    out = walk(schema, 0)
    if not found and _names_other_dialect(schema, root) and _has_key(schema, _REFS):
        # a `$schema` where the walk reads no schema (in a `const` or `examples` value, an
        # unknown keyword's member) that a `$ref` can still point at, and the validator then
        # switches dialect there (hostile review 42, H42-1): nothing of the tool is read
        return _OTHER_DIALECT, True
    return (out, True) if found else (schema, False)


_REFS = ("$ref", "$dynamicRef", "$recursiveRef")
_TOO_DEEP = {"$ref": "#/?", "$schema": "?"}  # (stands for what lies deeper than read: assumed, the safe way)


def _objects(n, depth: int = 0):
    """Every object anywhere in `n`, in any position (data values too); past 64 levels,
    `_TOO_DEEP`, which holds both a reference and another dialect."""
    if depth > 64:
        yield _TOO_DEEP
    elif isinstance(n, dict):
        yield n
        for v in n.values():
            yield from _objects(v, depth + 1)
    elif isinstance(n, list):
        for v in n:
            yield from _objects(v, depth + 1)


def _has_key(n, keys: tuple[str, ...]) -> bool:
    """Whether any object anywhere in `n` has one of `keys`."""
    return any(k in o for o in _objects(n) for k in keys)


def _names_other_dialect(n, root: str) -> bool:
    """Whether a `$schema` other than `root` is anywhere in `n`, in any position."""
    return any(isinstance(d, str) and (d.rstrip("#") or DIALECT_2020_12) != root
               for d in (o.get("$schema") for o in _objects(n)))


_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems", "items")


def _refs_outside_subschemas(schema: dict) -> bool:
    """Whether a local `$ref` points into a value this module reads as no subschema: a
    `const`, `enum`, `default` or `examples` value (kept whole as data), or a map of names
    itself (`#/definitions`). The validator reads whatever a reference reaches as a schema,
    in the root's dialect; read here as data or as names, its keywords were taken without
    the draft's reading (`$ref` siblings, keywords the draft lacks: hostile review 43,
    H43-1)."""
    refs = [r for r in (o.get("$ref") for o in _objects(schema)) if isinstance(r, str)]
    for r in refs:
        if not r.startswith("#/"):
            continue  # (`#`, anchors and other documents: resolved, or not, elsewhere)
        node: Any = schema
        state = "schema"
        for raw in r[2:].split("/"):
            key = raw.replace("~1", "/").replace("~0", "~")
            if state == "data":
                return True
            if state == "schema":
                state = ("data" if key in _DATA_KEYWORDS else "names" if key in _NAME_MAPS
                         else "list" if key in _SCHEMA_LISTS and isinstance(node, dict) and isinstance(node.get(key), list)
                         else "schema")
            else:  # a name in a map, an index in a list: a subschema
                state = "schema"
            node = node.get(key) if isinstance(node, dict) else (
                node[int(key)] if isinstance(node, list) and key.isascii() and key.isdigit() and int(key) < len(node) else None)
        if state != "schema":
            return True
    return False


def nested_dialect(schema: dict) -> str | None:
    """Why `schema` cannot be read in one dialect (`_other_dialects`), or None."""
    if isinstance(schema, dict) and _other_dialects(schema)[1]:
        if _refs_outside_subschemas(schema):
            return "a reference points into a value that is no subschema (a const, enum, default or examples value, or a map of names)"
        return "a subschema names its own $schema"
    return None


def root_view(input_schema: dict) -> View:
    """The view of a tool's arguments, as the gateway's validator reads the schema
    (`as_validated`); defaults are planned from the schema as declared, as the gateway
    fills them (catalog/defaults.py). A subschema in another dialect than the root's is
    not read (`_other_dialects`): any value may be there, and it may evaluate any key."""
    from .defaults import plan  # (defaults reads this module's resolution)

    read = as_validated(_other_dialects(input_schema)[0]) if isinstance(input_schema, dict) else input_schema
    return View(resolve(read, read), read, plan(input_schema))


@dataclass
class PathInfo:
    """The result of following an argument path through a tool's schema."""

    view: View | None  # None when the path cannot exist
    problem: str | None = None  # why it cannot exist / is undeclared
    problem_kind: str | None = None  # absent | undeclared | not-object
    at: int = 0  # index of the offending segment
    suggestion: str | None = None
    optional_at: int | None = None  # first segment that is optional (not required)


def follow(input_schema: dict, path: tuple[str, ...], tool: str) -> PathInfo:
    view = root_view(input_schema)
    optional_at = None
    for i, key in enumerate(path):
        where = "the arguments" if i == 0 else "`" + ".".join(path[:i]) + "`"
        if not view.may_be("object"):
            return PathInfo(None, f"{where} of {tool} is {_describe(view.types)}, so it has no attribute {key!r}",
                            "not-object", i)
        ch = view.child(key)
        if ch.status != "declared":
            suggestion = did_you_mean(key, ch.siblings)
            if ch.status == "absent":
                msg = f"{tool} has no argument {'.'.join(path[:i + 1])!r}: {where} allow no other keys"
            else:
                msg = f"{tool} does not declare an argument {'.'.join(path[:i + 1])!r}"
            return PathInfo(None if ch.status == "absent" else ch.view, msg, ch.status, i, suggestion, optional_at)
        if not ch.required and optional_at is None:
            optional_at = i
        view = ch.view
    return PathInfo(view, optional_at=optional_at)


def _describe(types: frozenset[str] | None) -> str:
    if types is None:
        return "any value"
    if not types:
        return "never present"
    return " or ".join(("an " if t in ("array", "object") else "a ") + t for t in sorted(types))


describe_types = _describe
