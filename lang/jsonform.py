"""The gateway's JSON policy form: validation with JSON pointers, and its meaning as IR.

A document is validated structurally with pydantic (unknown keys, wrong types), then
per op (value types, path syntax, RE2 regexes). Every error names its JSON pointer.
Its meaning is given by translation to the IR, so the JSON form runs through the same
engine as .mcpp and the analyzer sees one semantics:

    tools.T                → permit (principal, action == Action::"T", resource)
                               when { <require entry 1> } when { <require entry 2> } … ;
    tools.T.deny_if[i]     → forbid (…T…) when { <entry i> };
    tools.T.limits[i]      → limit "<counter>" (…T…) max … per … scope … ;
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, ValidationError
from pydantic_core import ErrorDetails

from . import ir
from .atoms import OPS, Cond, cond_expr, parse_path, path_expr
from .diagnostics import Diagnostic, MCPPError, Span
from .jsontext import LIMIT_TOO_LARGE, MAX_LIMIT, NOT_UNICODE, not_finite_at, not_unicode_at, read_document
from .nesting import MAX_NESTING, too_deep
from .stack import TooDeepAnywhere, retry_on_fresh_stack
from .regex import regex_error
from .values import is_number

NOVALUE = object()


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Condition(_Model):
    path: StrictStr
    op: StrictStr
    value: Any = Field(default=NOVALUE)


class Entry(_Model):
    conditions: list[Condition]
    on_deny: StrictStr | None = None


class LimitEntry(_Model):
    counter: StrictStr
    max: StrictInt | StrictFloat
    window: Literal["minute", "hour", "day"]
    scope: Literal["grant", "policy"] = "grant"
    increment_from: StrictStr | None = None
    on_deny: StrictStr | None = None


class ToolEntry(_Model):
    require: list[Entry] = []
    deny_if: list[Entry] = []
    limits: list[LimitEntry] = []


class PolicyDocument(_Model):
    version: Literal["1"]
    default: Literal["allow", "deny"] = "deny"
    hide: list[StrictStr] = []
    tools: dict[str, ToolEntry] = {}


def pointer(loc: tuple) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in loc)


def _diag(file: str, ptr: str, message: str, code: str = "json") -> Diagnostic:
    d = Diagnostic(f"{ptr or '/'}: {message}", Span(0, 0, 0, 0), "error", code, file)
    d.data["pointer"] = ptr or "/"
    return d



def _pydantic_message(err: ErrorDetails) -> str:
    t = err.get("type", "")
    if t == "extra_forbidden":
        return "unknown key"
    if t == "missing":
        return "required key is missing"
    if t == "literal_error":
        return err["msg"].replace("Input should be", "must be")
    return err["msg"].replace("Input should be", "must be")


def validate(data: object, file: str = "<json>") -> PolicyDocument:
    """Validate decoded JSON; raise MCPPError with one diagnostic per problem, each with its pointer."""
    diags: list[Diagnostic] = []
    if not isinstance(data, dict):
        raise MCPPError([_diag(file, "/", "a policy document must be a JSON object")])
    for at, message in not_finite_at(data):
        diags.append(_diag(file, at, message))
    if diags:
        raise MCPPError(diags)
    try:
        doc = PolicyDocument.model_validate(data)
    except ValidationError as e:
        for err in e.errors():
            loc = tuple(err["loc"])
            # pydantic reports union members separately; keep the useful one
            if loc and loc[-1] in ("int", "float") and err.get("type") in ("int_type", "float_type"):
                msg = "must be a number"
                loc = loc[:-1]
            else:
                msg = _pydantic_message(err)
            d = _diag(file, pointer(loc), msg)
            if d not in diags:
                diags.append(d)
        raise MCPPError(diags) from None
    for i, name in enumerate(doc.hide):
        if not name:
            diags.append(_diag(file, f"/hide/{i}", "tool name must not be empty"))
    for tool, entry in doc.tools.items():
        base = f"/tools/{pointer((tool,))[1:]}"
        if not tool:
            diags.append(_diag(file, base, "tool name must not be empty"))
        for section in ("require", "deny_if"):
            for i, ent in enumerate(getattr(entry, section)):
                for j, c in enumerate(ent.conditions):
                    diags.extend(_check_condition(c, f"{base}/{section}/{i}/conditions/{j}", file))
        for i, lim in enumerate(entry.limits):
            at = f"{base}/limits/{i}"
            if not lim.counter:
                diags.append(_diag(file, f"{at}/counter", "counter name must not be empty"))
            if lim.max < 0:
                diags.append(_diag(file, f"{at}/max", "must not be negative"))
            elif lim.max > MAX_LIMIT:
                diags.append(_diag(file, f"{at}/max", LIMIT_TOO_LARGE))
            if lim.increment_from is not None and parse_path(lim.increment_from) in (None, ()):
                diags.append(_diag(file, f"{at}/increment_from", "must be an argument path like args.bytes"))
    if diags:
        raise MCPPError(diags)
    return doc


def _check_condition(c: Condition, at: str, file: str) -> list[Diagnostic]:
    out = []
    if parse_path(c.path) is None:
        out.append(_diag(file, f"{at}/path", f"path {c.path!r} must be `args` or start with `args.` (e.g. args.amount)"))
    if c.op not in OPS:
        out.append(_diag(file, f"{at}/op", f"unknown op {c.op!r}; ops are {', '.join(OPS)}"))
        return out
    v = c.value
    if c.op == "exists":
        if v is not NOVALUE and not isinstance(v, bool):
            out.append(_diag(file, f"{at}/value", "exists takes no value, or true/false"))
        return out
    if v is NOVALUE:
        out.append(_diag(file, f"{at}/value", f"op {c.op!r} needs a value"))
    elif c.op in ("lt", "lte", "gt", "gte") and not is_number(v):
        out.append(_diag(file, f"{at}/value", f"op {c.op!r} compares numbers; value must be a number"))
    elif c.op in ("in", "not_in") and not isinstance(v, list):
        out.append(_diag(file, f"{at}/value", f"op {c.op!r} needs an array of values"))
    elif c.op == "regex":
        if not isinstance(v, str):
            out.append(_diag(file, f"{at}/value", "op 'regex' needs a string (Go RE2 syntax)"))
        else:
            problem = regex_error(v)
            if problem:
                out.append(_diag(file, f"{at}/value", problem, code="regex"))
    return out


TOO_DEEP = f"a policy document may nest at most {MAX_NESTING} levels of objects and arrays"


def loads(text: str, file: str = "<json>") -> PolicyDocument:
    try:
        # (json's reader recurses: from a deep stack a document it reads from an empty one ran
        # out, and was refused as too deep — read again from an empty stack first: hostile
        # review 29, F2)
        data = retry_on_fresh_stack(read_document, text)
    except json.JSONDecodeError as e:
        raise MCPPError(
            [Diagnostic(f"invalid JSON: {e.msg}", Span(e.lineno, e.colno, e.lineno, e.colno + 1, e.pos, e.pos + 1), file=file)],
            text,
        ) from None
    except ValueError as e:
        raise MCPPError([_diag(file, "/", str(e))]) from None
    except TooDeepAnywhere:
        # (json's reader recurses: past ~990 levels it raised out of every command as an
        # internal error. A plain RecursionError — this stack ran out before it could read
        # again from an empty one — goes on up, to a caller that can: `load_policy`)
        raise MCPPError([_diag(file, "/", f"{TOO_DEEP}: too deep to read")]) from None
    where = too_deep(data)
    if where is not None:  # (no policy document comes near: its deepest values are a handful of levels)
        raise MCPPError([_diag(file, where, TOO_DEEP)])
    where = not_unicode_at(data)
    if where is not None:  # (`check` passed it, and `compile` and `diff` raised writing it: hostile review 29, F14)
        raise MCPPError([_diag(file, where, NOT_UNICODE)])
    return validate(data, file)


# ---- meaning: JSON form → IR -------------------------------------------------------------


def _checked_path(path: str) -> tuple[str, ...]:
    """An argument path `validate` accepted, parsed."""
    parsed = parse_path(path)
    assert parsed is not None, path  # validate refused it otherwise
    return parsed


def _scope(tool: str) -> ir.Scope:
    return ir.Scope(ir.EntityScope(), ir.ActionScope("eq", (ir.EntityRef("Action", tool),)), ir.EntityScope())


def _conj(conditions: list[Condition]) -> ir.Expr:
    exprs = [cond_expr(Cond(_checked_path(c.path), c.op, True if c.value is NOVALUE else c.value)) for c in conditions]
    if not exprs:
        return ir.Lit(True)
    e = exprs[0]
    for x in exprs[1:]:
        e = ir.And(e, x)
    return e


def _ann(**kv: str | None) -> tuple[ir.Annotation, ...]:
    return tuple(ir.Annotation(k, v) for k, v in kv.items() if v is not None)


def to_document(doc: PolicyDocument, filename: str = "<json>") -> ir.Document:
    stmts: list[ir.Statement] = [ir.Default(doc.default)]
    if doc.hide:
        stmts.append(ir.Hide(tuple(ir.EntityRef("Action", t) for t in doc.hide)))
    for tool, entry in doc.tools.items():
        base = "/tools/" + pointer((tool,))[1:]
        clauses = tuple(
            ir.Clause("when", _conj(e.conditions), _ann(reason=e.on_deny)) for e in entry.require
        )
        stmts.append(ir.Policy("permit", _scope(tool), clauses, _ann(id=base)))
        for i, e in enumerate(entry.deny_if):
            stmts.append(
                ir.Policy(
                    "forbid", _scope(tool), (ir.Clause("when", _conj(e.conditions)),),
                    _ann(id=f"{base}/deny_if/{i}", reason=e.on_deny),
                )
            )
        for i, lim in enumerate(entry.limits):
            inc = path_expr(_checked_path(lim.increment_from)) if lim.increment_from else None
            stmts.append(
                ir.Limit(
                    lim.counter, _scope(tool), lim.max, lim.window, lim.scope, inc, (),
                    _ann(id=f"{base}/limits/{i}", reason=lim.on_deny),
                )
            )
    return ir.Document(tuple(stmts), (), "", filename)


def load_program(text: str, filename: str = "<json>"):
    """JSON text → validated `Program` (origin json)."""
    from .program import build_program

    doc = loads(text, filename)
    prog, diags = build_program(to_document(doc, filename))
    errors = [d for d in diags if d.severity == "error"]
    if errors:  # pragma: no cover - validate() already guarantees a well-formed document
        raise MCPPError(errors)
    prog.origin = "json"
    return prog
