"""JSON text: what can be written as JSON and sent, and the reason when something cannot.

The gateway refuses a `tools/call` whose message no JSON text can carry before it checks
the tool's schema or asks the policy (runtime/gateway/proxy.py `call_tool`): a number
that is not finite (`NaN`, `Infinity`, or `1e400`, which reads as infinity) has no JSON
form, and a lone surrogate (`"\\ud800"`: valid JSON syntax) is no Unicode text, so UTF-8
cannot carry it to the upstream. Everything else that decides a call must refuse the same
calls for the same reasons — the Python API (`Policy.decide`, with or without a catalog),
`mcpp eval`, and `CatalogAdmission` (`mcpp test`, the language server) — or the policy
decides values the gateway never lets through (hostile review 18 F8: NaN passed
`maximum: 1000`, since every comparison with it is false). This module is that one
definition, with one more refusal of the same kind: arguments nested deeper than
lang/nesting.py's bound (`arguments_too_deep`).

It lives with the language, whose values are JSON values (`context.input` is the call's
arguments): everything that decides may import it at no cost (deciding without a catalog
must not load jsonschema). The gateway, which reaches the language only through the
public API and the catalogs (docs/architecture.md), imports it from
catalog/admission.py, the admission step it starts.
"""

from __future__ import annotations

import json
import re

from .nesting import MAX_NESTING, text_too_deep, too_deep

NOT_FINITE = "numbers must be finite JSON numbers"
NOT_UNICODE = "strings must be valid Unicode (a lone surrogate is not)"
# only the Python API can be handed these: the gateway and `mcpp eval` read JSON text
NOT_JSON_VALUE = "values must be JSON values (objects with string keys, arrays, strings, numbers, booleans, null)"
# a call's arguments nested deeper than lang/nesting.py's bound: refused everywhere alike,
# never left to where each recursive reader's stack runs out (hostile review 22, F7)
TOO_DEEP = f"arguments may nest at most {MAX_NESTING} levels of objects and arrays"
# a message, its `params` (or `result`), and the 64 levels below them the arguments may take
MAX_MESSAGE_NESTING = MAX_NESTING + 2
MESSAGE_TOO_DEEP = (f"a JSON-RPC message may nest at most {MAX_MESSAGE_NESTING} levels of objects and arrays "
                    f"({MAX_NESTING} below its params or result)")
TOO_MANY_DIGITS = "integers must have at most 4300 digits (the gateway cannot read longer ones: a parse error)"
# I-JSON (RFC 7493 §2.2): integers outside [-(2^53)+1, 2^53-1] are not interoperable. A
# JavaScript upstream (the TypeScript SDK: `JSON.parse`) reads 9007199254740993 as
# 9007199254740992, so a call deciding the exact integer ran another one (hostile review
# 41, H41-5): such a call is refused, everywhere a call is decided (`unsafe_integer`).
MAX_SAFE_INTEGER = 2**53 - 1
UNSAFE_INTEGER = (f"integers must be within ±{MAX_SAFE_INTEGER} (2^53-1, I-JSON: "
                  "a JavaScript server reads larger ones rounded); send a larger one as a string")
# The largest `max` a limit may have (lang/builder.py, lang/jsonform.py): counters are kept
# as doubles (SQLite REAL, Redis), exact for integers up to 2^53 only (hostile review 41, H41-1b)
MAX_LIMIT = 2**53
LIMIT_TOO_LARGE = f"limit max must be at most 2^53 ({MAX_LIMIT}): counters are kept as doubles, exact up to it"


class NotJSONText(ValueError):
    """A value no JSON text can carry; `str()` is the reason, as the gateway answers it."""


def _compact_encoder(allow_nan: bool):
    """`json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=allow_nan)`
    without its cost per call: json.dumps builds an encoder object and then a C encoder
    on every call with arguments, which is as much work as encoding a small message. Here
    the C encoder is built once. It skips the check for circular references, which no
    parsed message can have (one would recurse until RecursionError, not ValueError)."""
    enc = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=allow_nan)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # (no C accelerator: json's own path)
        return enc.encode
    try:
        c = make(None, enc.default, json.encoder.encode_basestring, None, ":", ",", False, False, allow_nan)
    except TypeError:  # (another signature: json's own path)
        return enc.encode

    def encode(obj) -> str:
        return "".join(c(obj, 0))

    return encode


# a message as compact JSON text (non-finite numbers written as json.dumps writes them), and
# the same refusing them (ValueError), for what the gateway forwards
compact = _compact_encoder(True)
compact_finite = _compact_encoder(False)


def json_bytes(value) -> bytes:
    """`value` as compact UTF-8 JSON text (what the gateway forwards), or NotJSONText with
    the reason no JSON text can carry it. Every string is checked, keys included, at any
    depth: encoding is the check, so it cannot miss a place a value can hide."""
    try:
        return compact_finite(value).encode()
    except UnicodeEncodeError:  # (a ValueError too: caught first) a lone surrogate, in a value or a key
        raise NotJSONText(NOT_UNICODE) from None
    except ValueError as e:  # NaN or ±Infinity; or an int past Python's digit limit, which no reader here reads back
        raise NotJSONText(TOO_MANY_DIGITS if "digits" in str(e) else NOT_FINITE) from None
    except TypeError:  # a set, bytes, an object, a non-string key json cannot coerce
        raise NotJSONText(NOT_JSON_VALUE) from None
    except RecursionError:  # (the gateway's reader refuses such nesting before: a parse error)
        raise NotJSONText(TOO_DEEP) from None
    except Exception:  # written by user code (a dict subclass's items(), say) that failed: refused, never raised
        raise NotJSONText(NOT_JSON_VALUE) from None


def is_text(text: str) -> bool:
    """Whether UTF-8 can carry `text` (no lone surrogate): the one check for a single string
    (an id, a key) where encoding a whole value is not what is asked."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def reader_reason(e: ValueError) -> str:
    """What a JSON or TOML reader's ValueError says, without Python's advice on raising its
    4,300-digit limit (which no user of mcpp can act on)."""
    return str(e).split("; use sys.set_int_max_str_digits")[0]


class Written(float):
    """A number JSON text holds and no float does — `1e99999` (read as infinity), or the
    `NaN`/`Infinity` Python's reader accepts — kept with the text it was written as, so that
    a document people write (a JSON-form policy, a catalog) refuses it at its pointer and
    quotes it as written."""

    text: str


def _written(text: str) -> float:
    v = float(text)
    if v - v == 0:  # (finite: nearly every number)
        return v
    out = Written(v)
    out.text = text
    return out


def read_document(text: str):
    """JSON text as a document is read: every number that is not a finite float is a
    `Written` (found by `not_finite_at`), never an error without a place."""
    return json.loads(text, parse_float=_written, parse_constant=_written)


def not_finite_at(value):
    """(pointer, message) of every number in `value` that is not finite, in document order. Iterative."""
    stack: list[tuple[object, str]] = [(value, "")]
    while stack:
        node, at = stack.pop()
        if isinstance(node, float):
            if node - node != 0:
                shown = getattr(node, "text", None) or ("NaN" if node != node else "Infinity" if node > 0 else "-Infinity")
                if len(shown) > 40:  # (a 200,000-digit number made a 200 KB message: hostile review 32, H32-5)
                    shown = shown[:40] + "…"
                yield at or "/", (f"{shown} is not a JSON number" if shown in ("NaN", "Infinity", "-Infinity")
                                  else f"number {shown} is out of range (JSON numbers must be finite)")
        elif isinstance(node, dict):
            stack.extend((v, f"{at}/{k.replace('~', '~0').replace('/', '~1')}") for k, v in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend((v, f"{at}/{i}") for i, v in reversed(list(enumerate(node))))


def not_unicode_at(value) -> str | None:
    """The JSON pointer of the first string in `value` — a key or a value — that UTF-8
    cannot carry (a lone surrogate, which `"\\ud800"` in JSON text reads as), or None.
    For documents people write (a JSON-form policy, a catalog), which are refused at their
    pointer: `check` passed them and writing them later raised (hostile review 29, F14;
    30, G1). Iterative."""
    stack: list[tuple[object, str]] = [(value, "")]
    while stack:
        node, at = stack.pop()
        if isinstance(node, str):
            if not is_text(node):
                return at or "/"
        elif isinstance(node, dict):
            for k in node:
                if not is_text(k):
                    return at or "/"
            # (pushed last first: the first problem in document order is the one reported, as
            # `not_finite_at` does — hostile review 32, H32-8)
            stack.extend((v, f"{at}/{k.replace('~', '~0').replace('/', '~1')}") for k, v in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend((v, f"{at}/{i}") for i, v in reversed(list(enumerate(node))))
    return None


def as_read(value):
    """`value` as a reader of its JSON text gets it (what the gateway decides when a client
    sends the call this value would be written as): a tuple is an array, an `Enum` its
    value, a subclass of dict, list, str, int or float the plain type, a key `1` the string
    "1". The policy must decide that, not the Python object: the engine reads types
    strictly, and a str `Enum` or a tuple skipped a `forbid` the gateway applies to the
    same JSON (hostile review 22, F1). NotJSONText when no JSON text can carry `value`, or
    when writing it fails in user code (an `items()` that raises: refused, not raised)."""
    try:
        return json.loads(json_bytes(value))
    except NotJSONText:
        raise
    except RecursionError:  # (written at this stack depth, but not read back: as deep)
        raise NotJSONText(TOO_DEEP) from None
    except Exception:  # (a dict subclass whose items() raises, a __str__ of a key that does)
        raise NotJSONText(NOT_JSON_VALUE) from None


def message_too_deep(body: str | bytes) -> bool:
    """Whether a JSON-RPC message's text nests deeper than `MAX_MESSAGE_NESTING` levels:
    the gateway refuses such a message whatever it is (hostile review 24, F8: only a call's
    `arguments` were bounded, and a `_meta` or another member nested ~950 levels deep was
    forwarded as it was). A call whose arguments are within `MAX_NESTING` levels is within
    this too. Measured in C (`text_too_deep`, which reads any well-formed JSON text: the
    message as the client wrote it); most messages are cleared by their bracket count."""
    return text_too_deep(body, MAX_MESSAGE_NESTING)


def arguments_too_deep(args) -> bool:
    """Whether a call's arguments nest deeper than `MAX_NESTING` levels of objects and
    arrays (the arguments object counting as one): such a call is refused with `TOO_DEEP`
    by the gateway (400, before its schema check: it measures the whole message first,
    `message_too_deep`, and this only to say which part is too deep), the Python API and
    `mcpp eval` (rule `/request`), `CatalogAdmission` and `mcpp test`. The arguments are
    written again on their own and their text measured (lang/nesting.py `text_too_deep`,
    where a walk over the values took seconds of the gateway's event loop for a 4 MiB
    body). Arguments no JSON text can carry are not this check's to refuse (`json_bytes`
    is): they are measured by the walk."""
    try:
        text = compact(args)
    except Exception:  # (NaN written as NaN is JSON here; a set, bytes, a key json cannot write: the walk)
        return too_deep(args) is not None
    return text_too_deep(text)


_LONG_DIGITS = re.compile(r"[0-9]{16}")
_LONG_DIGIT_BYTES = re.compile(rb"[0-9]{16}")


def may_hold_unsafe_integer(text: str | bytes) -> bool:
    """Whether JSON `text` may hold an integer beyond ±`MAX_SAFE_INTEGER` (it has a run of
    16 digits: 2^53-1 has 16); False means it holds none."""
    found = _LONG_DIGIT_BYTES.search(text) if isinstance(text, bytes) else _LONG_DIGITS.search(text)
    return found is not None


def unsafe_integer(value) -> str | None:
    """`UNSAFE_INTEGER` when `value` (a call's arguments, as read) holds an integer beyond
    ±`MAX_SAFE_INTEGER` at any depth, else None. Only text with a run of 16 digits can
    hold one (2^53-1 has 16), so most calls are cleared by one regex over their text."""
    try:
        text = compact(value)
    except Exception:  # (not JSON: the writers refuse it; walked here all the same)
        text = None
    if text is not None and not may_hold_unsafe_integer(text):
        return None
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, int) and not isinstance(node, bool):
            if not -MAX_SAFE_INTEGER <= node <= MAX_SAFE_INTEGER:
                return UNSAFE_INTEGER
        elif isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
    return None


def unwritable(value) -> str | None:
    """None when JSON text can carry `value`, else the reason (`json_bytes`'s)."""
    try:
        json_bytes(value)
    except NotJSONText as e:
        return str(e)
    return None
