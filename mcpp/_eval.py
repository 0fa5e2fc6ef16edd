"""`mcpp eval --calls FILE`: `Policy.decide` over a file of calls, one JSON line in, one out.

Each output line is `json.dumps(policy.decide(...).to_dict())` for its input line. It
is the batch face of the API, so it must cost little beyond the decisions themselves;
what it does per line, and why:

- parse with the JSON decoder's scanner directly (what `json.loads` calls after its
  argument checks), falling back to `json.loads` only for a line the scanner does not
  take whole, which then gives the error message;
- build each distinct grant once (`"grant"` objects repeat) so the engine's entity
  cache hits, instead of a new `Grant` per line;
- encode each distinct decision once: the engine hands back the same `Rule` and message
  objects for the same cause, so the encoded line is cached by their identity (the
  cache holds the rule, so an id cannot be reused while its entry lives); limit denials,
  whose reset time varies, are encoded each time;
- write once, at the end, rather than a write and a flush per call.

A line that is not a call stops the run with `where:line: message` (`CallError`) and
nothing is written: a batch is decided whole or not at all, so a script never reads the
decisions of half a file as if they were the file's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any
from json.encoder import encode_basestring

from mcpp.lang.jsontext import may_hold_unsafe_integer
from mcpp.lang.nesting import may_nest_deeper
from mcpp.runtime.engine import Grant

from ._policy import Policy

_CACHE_MAX = 20_000


class CallError(ValueError):
    """A line of the calls file that is not a call; `str()` is `where:line: message`."""


def _finite(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise ValueError(f"number {text} is out of range (JSON numbers must be finite)")
    return v


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON (numbers must be finite)")


_DECODER = json.JSONDecoder(parse_float=_finite, parse_constant=_no_constant)


def parse_call(line: str) -> Any:
    """One line as JSON (strict: no NaN or Infinity, no number that overflows a float)."""
    return _DECODER.decode(line)


def grant_of(value: object, default: Grant) -> Grant:
    """A call's `"grant"`: absent (the command's grant), a grant id, or {id, label, groups}."""
    if value is None:
        return default
    if isinstance(value, str):
        if value == default.id:
            return default
        return Grant(value)
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        groups = value.get("groups", [])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise ValueError("\"grant.groups\" must be a list of strings")
        label = value.get("label", "")
        if not isinstance(label, str):
            raise ValueError("\"grant.label\" must be a string")
        return Grant(value["id"], label, frozenset(groups))
    raise ValueError("\"grant\" must be a grant id or {\"id\", \"label\", \"groups\"}")


_NOT_ARGUMENTS = "\"arguments\" must be a JSON object of the tool's arguments"


def call_fields(obj: object) -> tuple[str, dict]:
    """A call's tool name and arguments (absent or null: none). Arguments that are not an
    object are not a `tools/call` (MCP declares them an object): bad input, not a decision."""
    if not isinstance(obj, dict):
        raise ValueError("a call must be a JSON object like {\"name\": …, \"arguments\": {…}}")
    name = obj.get("name")
    if not isinstance(name, str):
        raise ValueError("\"name\" (the tool) must be a string")
    args = obj.get("arguments")
    if args is None:
        return name, {}
    if type(args) is not dict:
        raise ValueError(_NOT_ARGUMENTS)
    return name, args


def run_calls(policy: Policy, text: str, write: Callable[[str], object], *, principal: Grant,
              server: str, now: float | None, where: str) -> int:
    """Decide every call in `text` (JSON Lines), writing one decision line per call with
    `write`; the number of calls. Raises `CallError` at the first line that is not a call,
    having written nothing."""
    engine = policy._engine
    decide = engine.decide
    admit = policy._admitted if policy.catalog is not None else None  # the gateway's admission: checked, defaults filled
    filename = engine.filename
    # typeshed leaves out the attribute JSONDecoder.__init__ sets (the C scanner)
    scan = _DECODER.scan_once  # type: ignore[attr-defined]
    by_name: dict[str, Grant] = {}  # "grant": "<id>"
    by_id: dict[Any, tuple[dict, Grant]] = {}  # "grant": {"id", "label", "groups"}
    encoded: dict[int, tuple] = {}
    lines = text.split("\n")
    skipped = 0
    out: list[str] = []
    for n, line in enumerate(lines, 1):
        try:
            try:
                obj, end = scan(line, 0)
                if end != len(line) and line[end:].strip():
                    raise ValueError
            except (StopIteration, ValueError):
                if not line.strip():
                    skipped += 1
                    continue
                obj = parse_call(line)  # the whole line, for the error message
            if type(obj) is not dict:
                raise ValueError("a call must be a JSON object like {\"name\": …, \"arguments\": {…}}")
            name = obj.get("name")
            if type(name) is not str:
                raise ValueError("\"name\" (the tool) must be a string")
            args = obj.get("arguments")
            if args is None:
                args = {}
            elif type(args) is not dict:
                raise ValueError(_NOT_ARGUMENTS)
            g = obj.get("grant")
            if g is None:
                grant = principal
            elif type(g) is str:
                named = by_name.get(g)
                grant = named if named is not None else _bounded_put(by_name, g, grant_of(g, principal))
            else:
                # a repeated grant object is built once: the last valid object seen
                # with its id, if equal to this one (equal JSON values are equal
                # strings and lists of strings, so it is valid too), gives the Grant
                try:
                    seen = by_id.get(g.get("id")) if type(g) is dict else None
                except TypeError:  # an id that is not even hashable
                    seen = None
                if seen is not None and seen[0] == g:
                    grant = seen[1]
                else:
                    grant = grant_of(g, principal)
                    _bounded_put(by_id, grant.id, (g, grant))
            srv = obj.get("server", server)
            if type(srv) is not str:
                raise ValueError("\"server\" must be a string")
        except json.JSONDecodeError as e:
            raise CallError(f"{where}:{n}: invalid JSON: {e.msg}") from None
        except ValueError as e:
            raise CallError(f"{where}:{n}: {e}") from None
        except RecursionError:  # (beyond what json reads at all; a shallower excess is decided: refused)
            raise CallError(f"{where}:{n}: invalid JSON: nested too deeply to read") from None
        refused = read = None
        if admit is not None:  # (CatalogAdmission checks what JSON text can carry itself)
            refused, read = admit(name, args, True)
        elif "\\u" in line or not 1 <= len(name) <= 128 or may_nest_deeper(line) or may_hold_unsafe_integer(line):
            # in text read as UTF-8 (console.read_input refuses anything else), a lone
            # surrogate can only come from a `\u` escape (NaN and Infinity are refused
            # above, when the line is read): such a line is admitted as `Policy.decide`
            # admits it, refused with the gateway's reason (lang/jsontext.py); any other line
            # is not encoded again on this hot path. So is a tool name the gateway refuses
            # (not 1 to 128 characters: hostile23 F5), and a line with more brackets than
            # arguments may nest (lang/nesting.py), whose arguments are walked there, and a
            # line with a run of 16 digits (an integer beyond ±(2^53-1) is refused: I-JSON)
            refused, read = policy._admitted(name, args)
        if read is not None:
            name, args = read
        d = refused if refused is not None else decide(name, args, grant, srv, now)
        if d.limit is None:
            # the engine builds one Rule object per tool and cause and always pairs
            # it with the same message object: rule and message determine the line.
            # The entry keeps its rule alive, so its id is not reused meanwhile.
            rule = d.rule
            hit = encoded.get(id(rule))
            if hit is None or hit[1] is not d.message:
                if len(encoded) >= _CACHE_MAX:
                    encoded.clear()
                hit = encoded[id(rule)] = (rule, d.message, _encode(d, filename))
            out.append(hit[2])
        else:
            out.append(_encode(d, filename))
    if out:
        out.append("")
        write("\n".join(out))
    return len(lines) - skipped


def json_writer(write: Callable[[str], object]) -> Callable[[str], None]:
    """`write` for JSON text that may hold a lone surrogate (a JSON string can: `"\\ud800"`),
    which UTF-8 cannot encode: such a block is written with the surrogate as its `\\u`
    escape again, which is the same JSON."""

    def safe(text: str) -> None:
        try:
            write(text)
        except UnicodeEncodeError:
            write(text.encode("utf-8", "backslashreplace").decode("utf-8"))

    return safe


def _bounded_put(cache: dict, key, value):
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[key] = value
    return value


def _encode(d, filename: str | None) -> str:
    """`json.dumps(Decision.to_dict())` for an engine decision (same keys, order, escaping)."""
    rule = d.rule
    policy = "null" if rule.policy is None else _str(rule.policy)
    s = (f'{{"decision": "{d.decision}", "rule": {_str(rule.pointer)}, '
         f'"message": {_str(d.message)}, "policy": {policy}, "tool": {_str(d.tool)}')
    span = rule.span
    if span is not None and span.line and filename:
        s += f', "span": {_str(f"{filename}:{span.line}:{span.col}")}'
    if d.limit is not None:
        s += f', "limit": {json.dumps(d.limit, ensure_ascii=False)}'
    if d.needs_approval:
        s += f', "needs_approval": true, "approval": {"null" if d.approval is None else _str(d.approval)}'
    return s + "}"


def _str(s: str) -> str:
    return encode_basestring(s)
