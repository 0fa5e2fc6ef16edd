"""Typed calls: does a call's `arguments` conform to its tool's declared `inputSchema`?

The gateway checks every `tools/call` with this module before the policy decides, and
the analyzer checks its counterexamples with it (so a reported call is one the gateway
would forward) and assumes what it guarantees (`analyzer/typed.py`, over `closed_world`).
It lives with the catalogs because both sit on it.

A `tools/call` whose arguments do not conform to the tool's declared
`inputSchema` is denied before the policy decides, so no policy can be bypassed by sending
a value of the wrong type (`{"amount": "5000"}` where the tool declares a number: the
policy's `args.amount > 1000` errors, the forbid does not apply, and an SDK upstream
coerces the string and refunds 5000).

Validation is the `jsonschema` library's: the validator class the schema's `$schema`
names (JSON Schema 2020-12 when it names none, as MCP declares), compiled once per
distinct schema (by the SHA-256 of its canonical JSON) and kept in a bounded cache. Two
changes to the stock classes, both fail-closed:

- Regular expressions (`pattern`, `patternProperties`, and the `additionalProperties`
  that depends on them) run on RE2 (`mcpp.lang.regex`), in linear time: the pattern comes
  from the upstream but the string comes from the caller, and Python's backtracking `re`
  can be made to spin for minutes. A pattern RE2 cannot run (lookaround, backreferences)
  makes the schema unusable, and calls to that tool are refused.
- A schema that combines `unevaluatedProperties` with `patternProperties` is refused too
  (jsonschema evaluates that combination with Python's `re`).

What the caller reads names the argument and what was expected, never the value it sent
(values are not stored anywhere; the same message goes to the audit log), and the rule
pointer is `/tools/<tool>/schema` + the JSON pointer of the failing keyword in the schema.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from itertools import chain, islice
from typing import Any

import attrs
from jsonschema import Draft202012Validator, validators
from jsonschema._utils import find_evaluated_item_indexes_by_schema, find_evaluated_property_keys_by_schema
from jsonschema.exceptions import SchemaError, ValidationError, best_match
from jsonschema.protocols import Validator
from jsonschema_specifications import REGISTRY as SPECIFICATIONS
from referencing.exceptions import Unresolvable

from mcpp.lang.regex import RegexError, compile_regex
from mcpp.lang.stack import NoFreshStack, on_fresh_stack, on_fresh_stack_now, retry_on_fresh_stack

from .depth import describe as describe_depth, too_deep

MAX_VALIDATORS = 1024  # distinct schemas kept compiled
_KNOWN_DIALECTS = {
    "https://json-schema.org/draft/2020-12/schema", "https://json-schema.org/draft/2019-09/schema",
    "http://json-schema.org/draft-07/schema", "http://json-schema.org/draft-06/schema",
    "http://json-schema.org/draft-04/schema",
}


def escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


# ---- RE2-backed keywords --------------------------------------------------------------


def _search(pattern: str, text: str) -> bool:
    try:
        return compile_regex(pattern).search(text) is not None
    except (TypeError, ValueError, UnicodeError):  # a lone surrogate in the caller's string: no match
        return False


def _pattern(validator, patrn, instance, schema):  # noqa: ARG001 (jsonschema's keyword-validator signature)
    if validator.is_type(instance, "string") and not _search(patrn, instance):
        yield ValidationError("does not match the pattern")


def _pattern_properties(validator, pattern_properties, instance, schema):  # noqa: ARG001 (jsonschema's signature)
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in pattern_properties.items():
        for k, v in instance.items():
            if _search(pattern, k):
                yield from validator.descend(v, subschema, path=k, schema_path=pattern)


def _additional(instance, schema) -> list[str]:
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    return [k for k in instance if k not in properties and not any(_search(p, k) for p in patterns)]


def _additional_properties(validator, ap, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    extras = _additional(instance, schema)
    if validator.is_type(ap, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], ap, path=extra)
    elif not ap and extras:
        yield ValidationError("additional properties are not allowed")


# ---- keywords whose cost the caller must not control -------------------------------------
# jsonschema's own `uniqueItems` compares unhashable items pairwise (a 43 kB array of objects
# took 32 s), and its `anyOf`/`oneOf` collect every error of every branch, each with the
# whole instance in its message, before saying the one thing a refusal uses (a 0.2 MB array
# under a four-way anyOf took 16.7 s): hostile review 18, F5 and F9, on the event loop of the
# gateway. Same verdicts, with bounded work: uniqueness by hashing, and at most
# MAX_CONTEXT errors kept per branch (what `best_match` descends into to name a violation).

MAX_CONTEXT = 32  # errors kept per anyOf/oneOf branch
MAX_ERRORS = 256  # errors `check` weighs to name the most relevant violation


def _same_key(value):
    """A hashable key under which two JSON values are equal exactly when jsonschema's
    `equal` says so: booleans are not numbers, 1 and 1.0 are the same number, arrays
    compare element by element and objects key by key."""
    if value is True or value is False:
        return ("b", value)
    if isinstance(value, (int, float)):
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    if value is None:
        return ("z",)
    if isinstance(value, list):
        return ("a", tuple(_same_key(v) for v in value))
    if isinstance(value, dict):
        return ("o", frozenset((k, _same_key(v)) for k, v in value.items()))
    return ("?", id(value))  # (not JSON: the gateway never reads such a value)


def _unique_items(validator, unique, instance, schema):  # noqa: ARG001 (jsonschema's signature)
    if unique and validator.is_type(instance, "array") and len({_same_key(v) for v in instance}) != len(instance):
        yield ValidationError("has non-unique elements")


def _branch_errors(validator, instance, subschema, index) -> list:
    return list(islice(validator.descend(instance, subschema, schema_path=index), MAX_CONTEXT))


def _any_of(validator, any_of, instance, schema):  # noqa: ARG001 (jsonschema's signature)
    context = []
    for index, subschema in enumerate(any_of):
        errs = _branch_errors(validator, instance, subschema, index)
        if not errs:
            return
        context.extend(errs)
    yield ValidationError("is not valid under any of the given schemas", context=context)


def _one_of(validator, one_of, instance, schema):  # noqa: ARG001 (jsonschema's signature)
    context, valid = [], 0
    for index, subschema in enumerate(one_of):
        errs = _branch_errors(validator, instance, subschema, index)
        if errs:
            if not valid:
                context.extend(errs)
        else:
            valid += 1
            if valid > 1:
                yield ValidationError("is valid under more than one of the given schemas")
                return
    if not valid:
        yield ValidationError("is not valid under any of the given schemas", context=context)


def _unevaluated_items(validator, unevaluated, instance, schema):  # noqa: ARG001 (jsonschema's signature)
    # jsonschema's own tests each index against a list of the evaluated ones: quadratic (a
    # valid 62 kB call under `items` + `unevaluatedItems: false` took 4.9 s; hostile review 20, F5)
    if not validator.is_type(instance, "array"):
        return
    evaluated = set(find_evaluated_item_indexes_by_schema(validator, instance, schema))
    if any(i not in evaluated for i in range(len(instance))):
        yield ValidationError("Unevaluated items are not allowed")


def _unevaluated_properties(validator, unevaluated, instance, schema):
    # the same, keyed by property name (a set, not a list, of the evaluated keys)
    if not validator.is_type(instance, "object"):
        return
    evaluated = set(find_evaluated_property_keys_by_schema(validator, instance, schema))
    for name in instance:
        if name not in evaluated and next(validator.descend(instance[name], unevaluated, path=name, schema_path=name), None):
            err = ValidationError("Unevaluated properties are not allowed")
            # the keys refused, for `describe` (every key of the instance is not: H41-7)
            err.mcpp_unevaluated = [name] + [  # type: ignore[attr-defined]
                k for k in islice((k for k in instance if k not in evaluated and k != name), 5)
                if unevaluated is False or next(validator.descend(instance[k], unevaluated, path=k, schema_path=k), None)]
            yield err
            return


_RE2_KEYWORDS = {"pattern": _pattern, "patternProperties": _pattern_properties, "additionalProperties": _additional_properties,
                 "uniqueItems": _unique_items, "anyOf": _any_of, "oneOf": _one_of,
                 "unevaluatedItems": _unevaluated_items, "unevaluatedProperties": _unevaluated_properties}
_CLASSES: dict[type, type] = {}  # jsonschema's class for a dialect → mcpp's (these keywords)
_OURS: set[type] = set()


def _re2_class(base: type) -> type:
    cls = _CLASSES.get(base)
    if cls is None:
        # only the keywords the dialect has: draft-04/06/07 ignore `unevaluated*` (the
        # gateway enforced them there: hostile review 42, H42-2). (2019-09's own
        # `unevaluatedItems` reads a tuple-form `items` more strictly, H42-3, but is quadratic:
        # 20,000 items took 1.75 s, H43-3; the linear one here is kept, more lenient there)
        stock: dict = getattr(base, "VALIDATORS", {})
        mine = {k: f for k, f in _RE2_KEYWORDS.items() if k in stock}
        cls = _CLASSES[base] = validators.extend(base, mine)
        cls.evolve = _evolve
        _OURS.add(cls)
    return cls


def _evolve(self, **changes):
    """jsonschema's `evolve` (what `descend` calls for every subschema) with mcpp's keywords
    kept: the stock one looks a subschema that names its `$schema` — and the root, reached
    again through `$ref: "#"` when the root names its dialect, as zod-to-json-schema emits —
    up in jsonschema's registry, and went on with the stock class: Python `re` for patterns
    (a 26-byte argument took 8.8 s on the gateway's event loop), pairwise `uniqueItems`,
    unbounded `anyOf` (hostile review 20, F1). The dialect still switches, to mcpp's class
    for it."""
    cls = type(self)
    schema = changes.setdefault("schema", self.schema)
    if type(schema) is dict and "$schema" not in schema:
        new = cls  # (what validator_for answers for it, without the lookup: nearly every subschema)
    else:
        new = validators.validator_for(schema, default=cls)
        if new not in _OURS:
            new = _re2_class(new)
    fields = _INIT_FIELDS.get(cls)
    if fields is None:
        fields = _INIT_FIELDS[cls] = tuple((f.alias, f.name) for f in attrs.fields(cls) if f.init)
    for alias, name in fields:
        if alias not in changes:
            changes[alias] = getattr(self, name)
    return new(**changes)


_INIT_FIELDS: dict[type, tuple[tuple[str, str], ...]] = {}  # a validator class → its (alias, attribute) pairs


# ---- compiling schemas ------------------------------------------------------------------


class SchemaUnusable(Exception):
    """The declared schema cannot be used to check calls (the reason is for the operator)."""


def _walk(node):
    """Every (key, value) of every object in a schema."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, dict):
            for k, v in n.items():
                yield k, v
                stack.append(v)
        elif isinstance(n, list):
            stack.extend(n)


def compile_schema(schema) -> object:
    """A validator for `schema`, or SchemaUnusable."""
    if not isinstance(schema, (dict, bool)):
        raise SchemaUnusable("the input schema is not a JSON object")
    deep = too_deep(schema)
    if deep is not None:  # the validator descends recursively: bounded before it runs (catalog/depth.py)
        raise SchemaUnusable(f"the input schema is {describe_depth(deep)}")
    base: type[Validator] = Draft202012Validator
    if isinstance(schema, dict) and "$schema" in schema:
        uri = schema["$schema"]
        if not isinstance(uri, str) or uri.rstrip("#") not in _KNOWN_DIALECTS:
            raise SchemaUnusable(f"unsupported JSON Schema dialect {str(uri)[:100]!r}")
        base = validators.validator_for(schema, default=Draft202012Validator)
    try:
        _check_schema(base, schema)
    except SchemaError as e:
        where = "" if not e.path else f"at {'/' + '/'.join(escape(str(p)) for p in e.path)}: "
        raise SchemaUnusable(f"not a valid JSON Schema: {where}{e.message[:200]}") from None
    except RecursionError:
        raise
    except Exception as e:
        # the metaschema's own checks can raise rather than report: its `regex` format
        # compiles each pattern with Python's `re`, which raises OverflowError, not re.error,
        # for `a{4294967296}` (hostile review 31, H31-2) — out of the compile worker thread
        raise SchemaUnusable(f"not a valid JSON Schema: {type(e).__name__}: {str(e)[:200]}") from None
    keys = {k for k, _ in _walk(schema)}
    if "unevaluatedProperties" in keys and "patternProperties" in keys:
        raise SchemaUnusable("unevaluatedProperties with patternProperties is not supported")
    for k, v in _walk(schema):
        patterns = [v] if k == "pattern" and isinstance(v, str) else (list(v) if k == "patternProperties" and isinstance(v, dict) else [])
        for p in patterns:
            try:
                compile_regex(p)
            except RegexError as e:
                raise SchemaUnusable(f"the pattern {p[:80]!r} cannot be run in linear time ({e})") from None
    # the metaschemas, and nothing fetched: jsonschema's default registry retrieves a remote
    # `$ref` over the network (deprecated), which would let a tool's schema make the gateway
    # request any URL on every call; a reference the schema cannot resolve itself refuses
    return _re2_class(base)(schema, registry=SPECIFICATIONS)


def _check_schema(base: "type[Validator]", schema) -> None:
    """`base.check_schema(schema)` — the schema checked against its dialect's metaschema —
    with mcpp's keywords (`_re2_class`): jsonschema's own `uniqueItems` compares items that
    cannot be sorted pairwise, and the draft-04 metaschema says an `enum` is unique, so a
    56 KB schema whose `enum` holds 3,000 objects took 25 s to compile, and kept every
    first call of a small tool waiting for a compile thread meanwhile (hostile review 31,
    H31-4). Same verdicts (the keywords are held to jsonschema's by tests), bounded work.
    Raises SchemaError as `check_schema` does."""
    meta: Any = _re2_class(validators.validator_for(base.META_SCHEMA, default=base))
    validator = meta(schema=base.META_SCHEMA, format_checker=meta.FORMAT_CHECKER)
    for error in validator.iter_errors(schema):
        raise SchemaError.create_from(error)


# keywords that can admit or describe properties beyond `properties`: when a top-level
# schema has none of them, the properties it lists are all the arguments the tool takes
_OPEN_ENDED = {"additionalProperties", "patternProperties", "unevaluatedProperties", "allOf", "anyOf", "oneOf", "$ref",
               "$dynamicRef", "if", "then", "else", "dependentSchemas", "dependencies", "not"}


def closed_world(schema):
    """The schema calls are checked against: as declared, except that an argument the tool
    does not declare at all is refused (`additionalProperties: false` at the top level)
    unless the schema says anything about other properties. SDK servers drop or reject
    undeclared arguments; a lenient server might act on them, and no policy can guard an
    argument the tool does not declare."""
    if isinstance(schema, dict) and "properties" in schema and not (_open_ended(schema) & schema.keys()):
        return {**schema, "additionalProperties": False}
    return schema


# keywords a draft-04/06/07 validator ignores (it reads 2019-09's and 2020-12's as unknown):
# no reason to leave such a tool's other arguments open (hostile review 43, H43-2: a
# draft-07 `unevaluatedProperties: false`, ignored by its validator, left them open)
_NOT_BEFORE_2019 = {"unevaluatedProperties", "$dynamicRef", "dependentSchemas"}
_DRAFTS_TO_7 = ("http://json-schema.org/draft-04/schema", "http://json-schema.org/draft-06/schema",
                "http://json-schema.org/draft-07/schema")


def _open_ended(schema: dict) -> set:
    d = schema.get("$schema")
    if isinstance(d, str) and d.rstrip("#") in _DRAFTS_TO_7:
        return _OPEN_ENDED - _NOT_BEFORE_2019
    return _OPEN_ENDED


class SchemaCache:
    """Compiled validators by schema fingerprint (least recently used dropped first), and
    the reason a schema is unusable, so each distinct schema is compiled once."""

    def __init__(self, size: int = MAX_VALIDATORS):
        self.size = size
        self._by_key: OrderedDict[bytes, object] = OrderedDict()
        # the gateway compiles in worker threads (a first call's schema, a large call): the
        # order and the eviction are changed under this lock; compiling is not
        self._lock = threading.Lock()

    def get(self, schema):
        deep = too_deep(schema)
        if deep is not None:  # (hashing it below is recursive too)
            raise SchemaUnusable(f"the input schema is {describe_depth(deep)}")
        try:
            canon = json.dumps(schema, sort_keys=True, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError):
            raise SchemaUnusable("the input schema is not plain JSON (NaN or Infinity)") from None
        key = hashlib.sha256(canon.encode()).digest()
        with self._lock:
            hit = self._by_key.get(key)
            if hit is not None:
                self._by_key.move_to_end(key)
        if hit is None:
            try:
                # compiled from its canonical form (keys sorted): which violation a refusal
                # names, when a call has several, follows the order keywords are checked
                # in, so the pinned catalog's copy of a schema, the upstream's listing of it
                # and every tool outside the gateway name the same one
                hit = compile_schema(closed_world(json.loads(canon)))
            except SchemaUnusable as e:
                hit = e
            except RecursionError:
                # within the bound above, so the caller's stack may be what was deep: compiled
                # again from an empty one (`on_fresh_stack`), and only what fails there too is
                # remembered (hostile review 24, F9: one call from a deep stack refused the
                # tool's every later call for the cache's lifetime)
                hit = _compile_fresh(canon)
            with self._lock:
                self._by_key[key] = hit
                while len(self._by_key) > self.size:
                    self._by_key.popitem(last=False)
        if isinstance(hit, SchemaUnusable):
            raise hit
        return hit


def _compile_fresh(canon: str):
    """The validator of the schema `canon`, compiled from an empty stack, or why not."""
    def compile_it():
        try:
            return compile_schema(closed_world(json.loads(canon)))
        except SchemaUnusable as e:
            return e
        except RecursionError:
            return SchemaUnusable("the input schema is nested too deeply")

    if on_fresh_stack_now():
        return compile_it()
    try:
        return on_fresh_stack(compile_it)
    except NoFreshStack as e:  # refused this time, and never remembered
        raise SchemaUnusable(f"the input schema is nested too deeply to compile here ({e})") from None


# ---- checking a call --------------------------------------------------------------------


@dataclass(frozen=True)
class Violation:
    pointer: str  # JSON pointer into the schema, of the keyword that failed
    message: str  # for the caller and the audit: names the argument, never its value


def check(validator, args) -> Violation | None:
    """None if `args` conforms; else the most relevant violation. Raises SchemaUnusable when
    validating needs a reference the schema does not resolve itself (never fetched).
    Decided as from an empty stack (`on_fresh_stack`); RecursionError when even that is
    too shallow for these arguments under this schema."""
    return retry_on_fresh_stack(_check, validator, args)  # (RecursionError: refused as too deep to check)


def _check(validator, args) -> Violation | None:
    try:
        errors = validator.iter_errors(args)
        first = next(errors, None)
        if first is None:
            return None
        # the first MAX_ERRORS errors are weighed, not all: a caller controls how many there
        # are (300,000 wrong items cost 6 s), and the refusal names one
        err = best_match(islice(chain([first], errors), MAX_ERRORS))
    except Unresolvable as e:
        raise SchemaUnusable(unresolvable(e)) from None
    except (AttributeError, TypeError) as e:
        # a `$ref` to a value that is no schema (`"$ref": "#/title"`: the metaschema allows
        # both) is found only when a call reaches it; jsonschema then raises while descending
        # into the string (hostile review 31, H31-2). The schema cannot check such a call.
        raise SchemaUnusable(f"the input schema cannot check this call: it refers to a value that is not a schema "
                             f"({type(e).__name__}: {str(e)[:120]})") from None
    except ValueError as e:
        # `referencing` reads a pointer segment it takes for an index with `int()`, which a
        # non-ASCII digit (`#/allOf/²`) breaks (hostile review 41, H41-10): the reference
        # does not resolve, and the call cannot be checked, as for an unresolvable one
        raise SchemaUnusable(f"the input schema cannot check this call: a reference does not resolve "
                             f"({type(e).__name__}: {str(e)[:120]})") from None
    except BaseException as e:
        # a reference that recurses without end can overflow inside `referencing`'s Rust
        # maps, which raise pyo3's PanicException: a BaseException that would pass every
        # `except Exception` on its way out (hostile review 20, F3). It is the recursion
        # callers already refuse ("nested too deeply").
        if type(e).__name__ == "PanicException":
            raise RecursionError("a schema reference recursed without end") from None
        raise
    return Violation("".join("/" + escape(str(p)) for p in err.absolute_schema_path), describe(err))


def unresolvable(e: Unresolvable) -> str:
    return (f"the reference {str(getattr(e, 'ref', '?'))[:100]!r} cannot be resolved within the schema "
            "(mcpp never fetches a remote schema)")


_JSON_TYPE = (
    (bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"), (list, "an array"),
    (dict, "an object"), (type(None), "null"),
)
_TYPE_WORD = {"string": "a string", "number": "a number", "integer": "an integer", "boolean": "true or false",
              "array": "an array", "object": "an object", "null": "null"}


def _kind(value) -> str:
    for t, word in _JSON_TYPE:
        if type(value) is t:
            return word
    return "a value"


def _where(path) -> str:
    if not path:
        return "The arguments object"
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return f"Argument {_clip(out)!r}"


def _clip(text: str, n: int = 128) -> str:
    return text if len(text) <= n else text[:n] + "…"


def _literal(v) -> str:
    return _clip(json.dumps(v, ensure_ascii=False), 60)


def _choices(values) -> str:
    shown = ", ".join(_literal(v) for v in list(values)[:10])
    return shown + (", …" if len(values) > 10 else "")


def describe(err: ValidationError) -> str:
    """A sentence a model can act on: which argument, what the schema expects."""
    val: Any = err.validator_value  # the keyword's value, as the schema wrote it
    inst, path = err.instance, list(err.absolute_path)
    kw = err.validator if isinstance(err.validator, str) else "false"  # None: the `false` schema
    if kw == "required" and isinstance(inst, dict):
        missing = [p for p in val if p not in inst]
        name = _where(path + missing[:1])
        return f"{name} is required but missing."
    if kw in ("additionalProperties", "unevaluatedProperties") and isinstance(inst, dict):
        schema = err.schema if isinstance(err.schema, dict) else {}
        extras = _additional(inst, schema) if kw == "additionalProperties" else \
            sorted(getattr(err, "mcpp_unevaluated", None) or inst)
        names = ", ".join(repr(_clip(str(x))) for x in extras[:5]) + (", …" if len(extras) > 5 else "")
        where = "" if not path else f" in {_where(path)[9:]}"
        return f"Unexpected argument{'s' if len(extras) != 1 else ''} {names}{where}: the tool does not declare {'them' if len(extras) != 1 else 'it'}."
    where = _where(path)
    if kw == "type":
        want = val if isinstance(val, list) else [val]
        words = " or ".join(_TYPE_WORD.get(t, str(t)) for t in want)
        return f"{where} must be {words}, not {_kind(inst)}."
    simple = {
        "enum": lambda: f"must be one of {_choices(val)}",
        "const": lambda: f"must be {_literal(val)}",
        "minimum": lambda: f"must be at least {val}",
        "maximum": lambda: f"must be at most {val}",
        "exclusiveMinimum": lambda: f"must be greater than {val}",
        "exclusiveMaximum": lambda: f"must be less than {val}",
        "multipleOf": lambda: f"must be a multiple of {val}",
        "minLength": lambda: f"must be at least {val} characters long",
        "maxLength": lambda: f"must be at most {val} characters long",
        "pattern": lambda: f"must match the pattern {_clip(str(val), 80)!r}",
        "minItems": lambda: f"must have at least {val} items",
        "maxItems": lambda: f"must have at most {val} items",
        "uniqueItems": lambda: "must not repeat items",
        "minProperties": lambda: f"must have at least {val} properties",
        "maxProperties": lambda: f"must have at most {val} properties",
        "format": lambda: f"must be a valid {_clip(str(val), 40)}",
        "anyOf": lambda: "does not match any of the forms the tool accepts",
        "oneOf": lambda: "must match exactly one of the forms the tool accepts",
        "not": lambda: "has a form the tool does not accept",
        "false": lambda: "is not accepted by the tool",
    }
    phrase = simple.get(kw)
    if phrase is not None:
        return f"{where} {phrase()}."
    return f"{where} does not conform to the tool's input schema ({_clip(str(kw), 40)})."
