"""Translation validation: a compiled JSON document decides exactly as its source.

The document's meaning is the JSON form's (`jsonform.validate` → `to_document` →
`build_program`). For every tool either side names, and for one fresh name standing for
every other tool, the analyzer asks for a call (and counter state) on which the two
decisions differ, in each direction. None found: proved equivalent. A difference is
reported only after both engines replay it; anything undecided is reported too, so
`mcpp compile` fails closed.
"""

from __future__ import annotations

import logging

from mcpp.lang.diagnostics import MCPPError
from mcpp.lang.program import Program, build_program

from .encode import FixedGrant, FixedUser, decide, query_tools
from .solve import Session
from .sym import AND, NOT

log = logging.getLogger("mcpp.analyzer")


def validate_translation(
    program: Program, doc: dict, *, grant=None, label: str = "", groups=(), server=None, timeout_ms: int = 5000,
    user: FixedUser | None = None,
) -> str | None:
    """None when `doc` provably decides every call as `program` does; else why not.
    With `grant` (or `user`, a `FixedUser`), every call by that one caller."""
    from mcpp.lang import jsonform

    try:
        parsed = jsonform.validate(doc, "<compiled>")
        jprog, diags = build_program(jsonform.to_document(parsed, "<compiled>"))
    except MCPPError as e:
        return "the compiled document is not a valid JSON-form policy: " + "; ".join(d.message for d in e.diagnostics)
    if any(d.severity == "error" for d in diags):
        return "the compiled document does not load: " + "; ".join(d.message for d in diags if d.severity == "error")
    jprog.origin = "json"
    fixed = FixedGrant(grant, label or "", frozenset(groups or ())) if grant is not None else user
    try:
        return _compare(program, jprog, fixed, server, timeout_ms)
    except Exception as e:  # fail closed (compilation refuses), never a traceback; logged, since none is expected
        log.exception("translation validation failed")
        return f"the analyzer failed: {type(e).__name__}: {e}"


def _compare(program: Program, jprog: Program, fixed, server, timeout_ms: int) -> str | None:
    session = Session(timeout_ms)
    named, other = query_tools(program, jprog)
    ctx = session.ctx
    for tool in named + [other]:
        req = session.request(fixed, server)
        req.share_users(program, jprog)
        src, out = decide(req, program, tool), decide(req, jprog, tool)
        a, b = src.allowed(zero=False), out.allowed(zero=False)
        for src_allows, q in ((True, AND(ctx, a, NOT(ctx, b))), (False, AND(ctx, b, NOT(ctx, a)))):
            o = session.check(req, q, tool=tool, witness=True)
            if o.unsat:
                continue
            label = f"tool {tool!r}" if tool != other else f"tools the policy does not name (e.g. {tool!r})"
            if o.status == "unknown":
                return f"could not prove the JSON form equivalent for {label}: {o.reason}"
            w = o.witness
            assert w is not None  # sat, asked with witness=True
            d_src = session.replayer.decide(program, w)
            d_out = session.replayer.decide(jprog, w)
            if d_src.allowed != src_allows or d_out.allowed == src_allows:
                why = "; ".join(sorted(src.enc.reasons | out.enc.reasons)) or "a witness did not replay"
                return f"could not prove the JSON form equivalent for {label}: {why}"
            verb = ("allows", "denies") if src_allows else ("denies", "allows")
            return (
                f"for {label} the source {verb[0]} and the JSON form {verb[1]} this call: {w.brief()} "
                f"(source: {d_src.rule.pointer}; JSON: {d_out.rule.pointer})"
            )
    return None
