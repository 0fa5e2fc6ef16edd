"""`mcpp compile`: a Program → the gateway's JSON form, exactly, or a refusal that says why.

Per tool, the permits that name it become its `require` entries (one entry per
`when`/`unless` clause, see atoms.py for T/F), its forbids become `deny_if` entries
(one per disjunct), its limits become `limits`. Tools the policy does not name get
`default`. Whatever the JSON form cannot carry (a disjunction of permits, a negated
regex, a condition on the principal without `--grant`, conditions on tools the
document does not list) is refused with the rule's id, span and the reason.

Conditions on the principal, the resource or the action are folded to constants
first (per tool, and per grant when one is given), using the evaluator's closures,
so the folding means exactly what evaluation means.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import ir
from .atoms import BOTTOM, TOP, NotExpressible, dnf, input_path
from .diagnostics import Diagnostic, MCPPError, Span
from .program import Program, walk

_ERR_MARK = object()  # folded value of a sub-expression that always errors


@dataclass(frozen=True)
class GrantContext:
    id: str
    label: str = ""
    groups: frozenset[str] = frozenset()


class _Unknown(Exception):
    def __init__(self, what: str, span: Span | None):
        self.what = what
        self.span = span


@dataclass
class _Ctx:
    program: Program
    tool: str | None  # None: "any other tool"
    grant: GrantContext | None
    server: str | None
    _env: object = field(default=None)

    def env(self):
        if self._env is None:
            from mcpp.runtime.closures import Env
            from mcpp.runtime.values import Entity

            g = self.grant or GrantContext("?")
            principal = Entity("Grant", g.id, {"label": g.label}, frozenset(("Group", x) for x in g.groups))
            groups_of = self.program.action_ancestors
            action = Entity("Action", self.tool or "?", None, frozenset(("Action", x) for x in groups_of(self.tool or "")))
            self._env = Env(principal, action, Entity("Server", self.server or "?"), {}, lambda t: frozenset(("Action", x) for x in groups_of(t)))
        return self._env


def _vars(e: ir.Expr) -> set[str]:
    return {n.name for n in walk(e) if isinstance(n, ir.Var)}


_STRICT = (ir.Compare, ir.In, ir.Like, ir.Matches, ir.Call, ir.Has, ir.GetAttr, ir.Is, ir.Neg, ir.SetLit, ir.RecordLit, ir.Not)


def _value_node(v, span: Span) -> ir.Expr:
    from mcpp.runtime.values import ERR, Entity

    if v is ERR:
        return ir.Lit(_ERR_MARK, span)
    if isinstance(v, Entity):
        return ir.EntityLit(ir.EntityRef(v.type, v.id), span)
    if isinstance(v, list):
        return ir.SetLit(tuple(_value_node(x, span) for x in v), span)
    if isinstance(v, dict):
        return ir.RecordLit(tuple((k, _value_node(x, span)) for k, x in v.items()), span)
    return ir.Lit(v, span)


def fold(e: ir.Expr, ctx: _Ctx) -> ir.Expr:
    """Replace every sub-expression that does not read `context` by its value."""
    used = _vars(e)
    if "context" not in used:
        if "principal" in used and ctx.grant is None:
            raise _Unknown("the principal (grant)", e.span)
        if "resource" in used and ctx.server is None:
            raise _Unknown("the resource (server)", e.span)
        if "action" in used and ctx.tool is None:
            raise _Unknown("the action (tool name)", e.span)
        if isinstance(e, (ir.Lit,)):
            return e
        from mcpp.runtime.closures import compile_expr

        return _value_node(compile_expr(e)(ctx.env()), e.span)
    # rebuild with folded children
    if isinstance(e, ir.GetAttr):
        new = ir.GetAttr(fold(e.obj, ctx), e.attr, e.span)
    elif isinstance(e, ir.Has):
        new = ir.Has(fold(e.obj, ctx), e.path, e.span)
    elif isinstance(e, ir.Like):
        new = ir.Like(fold(e.obj, ctx), e.pattern, e.span)
    elif isinstance(e, ir.Matches):
        new = ir.Matches(fold(e.obj, ctx), e.regex, e.span)
    elif isinstance(e, ir.Compare):
        new = ir.Compare(e.op, fold(e.left, ctx), fold(e.right, ctx), e.span)
    elif isinstance(e, ir.In):
        new = ir.In(fold(e.left, ctx), fold(e.right, ctx), e.span)
    elif isinstance(e, ir.Is):
        new = ir.Is(fold(e.obj, ctx), e.type, fold(e.in_, ctx) if e.in_ is not None else None, e.span)
    elif isinstance(e, ir.And):
        return ir.And(fold(e.left, ctx), fold(e.right, ctx), e.span)
    elif isinstance(e, ir.Or):
        return ir.Or(fold(e.left, ctx), fold(e.right, ctx), e.span)
    elif isinstance(e, ir.If):
        return ir.If(fold(e.cond, ctx), fold(e.then, ctx), fold(e.else_, ctx), e.span)
    elif isinstance(e, ir.Not):
        new = ir.Not(fold(e.expr, ctx), e.span)
    elif isinstance(e, ir.Neg):
        new = ir.Neg(fold(e.expr, ctx), e.span)
    elif isinstance(e, ir.SetLit):
        new = ir.SetLit(tuple(fold(i, ctx) for i in e.items), e.span)
    elif isinstance(e, ir.RecordLit):
        new = ir.RecordLit(tuple((k, fold(v, ctx)) for k, v in e.items), e.span)
    elif isinstance(e, ir.Call):
        new = ir.Call(fold(e.obj, ctx), e.method, tuple(fold(a, ctx) for a in e.args), e.span)
    else:
        return e
    # a strict operation with an always-erroring operand always errors
    for child in _children(new):
        if isinstance(child, ir.Lit) and child.value is _ERR_MARK:
            return ir.Lit(_ERR_MARK, e.span)
    return new


def _children(e: ir.Expr):
    if isinstance(e, (ir.GetAttr, ir.Has, ir.Like, ir.Matches, ir.Call)):
        yield e.obj
        yield from getattr(e, "args", ())
    elif isinstance(e, (ir.Compare, ir.In)):
        yield e.left
        yield e.right
    elif isinstance(e, ir.Is):
        yield e.obj
        if e.in_ is not None:
            yield e.in_
    elif isinstance(e, (ir.Not, ir.Neg)):
        yield e.expr
    elif isinstance(e, ir.SetLit):
        yield from e.items
    elif isinstance(e, ir.RecordLit):
        yield from (v for _, v in e.items)


_EVERY_TOOL = (
    "it applies to every tool, including tools this document does not list, and the JSON form attaches "
    "conditions and limits to listed tools only"
)


class _Refusal(Exception):
    def __init__(self, rule_id: str, span: Span | None, reason: str):
        self.rule_id, self.span, self.reason = rule_id, span, reason


def _scope_applies(scope: ir.Scope, ctx: _Ctx, rule_id: str, span: Span) -> bool:
    """Fold the principal and resource scope; False if the rule cannot apply in this context."""
    from mcpp.runtime.engine import _entity_scope_check

    for var, s, known in (("principal", scope.principal, ctx.grant), ("resource", scope.resource, ctx.server)):
        check = _entity_scope_check(s, var)
        if check is None:
            continue
        if known is None:
            what = "grant" if var == "principal" else "server"
            raise _Refusal(rule_id, s.span, f"its {var} scope depends on the {what}, which one JSON document cannot carry")
        if not check(ctx.env()):
            return False
    return True


def _clause_dnfs(stmt, ctx: _Ctx, rule_id: str) -> list[tuple[ir.Clause, list]] | None:
    """Each clause's DNF (T for when, F for unless); None if the rule never applies here."""
    if not _scope_applies(stmt.scope, ctx, rule_id, stmt.span):
        return None
    out = []
    for c in stmt.clauses:
        try:
            d = dnf(fold(c.expr, ctx), c.kind == "when")
        except _Unknown as u:
            raise _Refusal(rule_id, u.span, f"its condition depends on {u.what}, which one JSON document cannot carry")
        except NotExpressible as ne:
            raise _Refusal(rule_id, ne.span or c.span, ne.reason)
        if d == BOTTOM:
            return None
        out.append((c, d))
    return out


def _entry(conj, on_deny: str | None) -> dict:
    e: dict = {"conditions": [c.to_json() for c in conj]}
    if on_deny:
        e["on_deny"] = on_deny
    return e


def _limit_json(lim: ir.Limit) -> dict:
    d: dict = {"counter": lim.counter, "max": lim.max, "window": lim.window, "scope": lim.scope_kind}
    if lim.increment is not None:
        d["increment_from"] = "args." + ".".join(input_path(lim.increment))
    if lim.reason:
        d["on_deny"] = lim.reason
    return d


def _check_keys(conj, rule_id: str, span: Span) -> None:
    for c in conj:
        for k in c.path:
            if "." in k:
                raise _Refusal(rule_id, span, f"argument key {k!r} contains a '.', which JSON-form paths cannot express")


@dataclass
class _ToolPlan:
    allow: object  # TOP | BOTTOM | list of (conj, on_deny) require entries
    deny_if: list
    limits: list


def _applicable(infos, ctx: _Ctx, names) -> list:
    """The rules whose action scope covers the context's tool and that can apply there,
    each with its clauses' DNFs."""
    out = []
    for info in infos:
        if names(info):
            stmt = getattr(info, "policy", None) or info.limit
            dnfs = _clause_dnfs(stmt, ctx, info.id)
            if dnfs is not None:
                out.append((info, dnfs))
    return out


def _plan(program: Program, ctx: _Ctx) -> _ToolPlan:
    tool = ctx.tool
    names = lambda info: info.tools is None or (tool is not None and tool in info.tools)  # noqa: E731
    named_permits = [p for p in program.permits if p.tools is not None and tool in p.tools] if tool else []
    allow: object = BOTTOM
    applicable = _applicable(program.permits, ctx, names)
    if program.default == "allow" and not named_permits:
        allow = TOP
    elif any(all(d == TOP for _, d in dnfs) for _, dnfs in applicable):
        allow = TOP
    elif len(applicable) == 1:
        p, dnfs = applicable[0]
        entries = []
        for c, d in dnfs:
            if d == TOP:
                continue
            if len(d) > 1:
                raise _Refusal(
                    p.id, c.span,
                    "its condition is a disjunction; JSON `require` entries are conjunctions "
                    "(split it into separate permits only if each can stand alone, or run it natively)",
                )
            _check_keys(d[0], p.id, c.span)
            entries.append((d[0], c.reason or p.policy.reason))
        allow = entries
    elif len(applicable) > 1:
        a, b = applicable[0][0], applicable[1][0]
        raise _Refusal(
            b.id, b.policy.span,
            f"permits {a.id!r} and {b.id!r} both apply to tool {tool!r}; the JSON form cannot express a "
            "disjunction of permits",
        )
    deny_if = []
    for f, dnfs in _applicable(program.forbids, ctx, names):
        combined = list(TOP)
        from .atoms import _and

        try:
            for _, d in dnfs:
                combined = _and(combined, d)
        except NotExpressible as ne:
            raise _Refusal(f.id, f.policy.span, ne.reason)
        for conj in combined:
            _check_keys(conj, f.id, f.policy.span)
            deny_if.append((conj, f.policy.reason))
    limits = []
    for li, dnfs in _applicable(program.limits, ctx, names):
        if any(d != TOP for _, d in dnfs):
            raise _Refusal(li.id, li.limit.span, "a limit with a condition has no JSON-form equivalent")
        if li.limit.increment is not None and any("." in k for k in input_path(li.limit.increment)):
            raise _Refusal(li.id, li.limit.span, "its increment path has a key with a '.'")
        limits.append(li.limit)
    return _ToolPlan(allow, deny_if, limits)


def compile_program(
    program: Program, grant: GrantContext | None = None, server: str | None = None
) -> dict:
    """The JSON form, or MCPPError naming each rule that cannot be expressed."""
    errors: list[Diagnostic] = []
    native = "`mcpp serve` and `mcpp eval` run this policy natively."

    def refuse(r: _Refusal) -> None:
        notes = [native]
        if "grant" in r.reason:
            notes.insert(0, "compile one document per grant: mcpp compile FILE --grant ID [--label L] [--group G]")
        elif "server" in r.reason:
            notes.insert(0, "compile one document per server: mcpp compile FILE --server ID")
        d = Diagnostic(
            f"cannot compile rule {r.rule_id!r} to the JSON form: {r.reason}",
            r.span or Span(1, 1, 1, 1), "error", "compile", program.filename, tuple(notes),
        )
        if d not in errors:
            errors.append(d)

    # the tools it does not name ("any other tool") decide the JSON `default`
    json_default = "deny"
    try:
        other = _plan(program, _Ctx(program, None, grant, server))
        if other.allow == TOP and not any(conj == () for conj, _ in other.deny_if):
            if other.deny_if:
                f = next(f for f in program.forbids if f.tools is None)
                raise _Refusal(f.id, f.policy.span, _EVERY_TOOL)
            if other.limits:
                li = next(li for li in program.limits if li.tools is None)
                raise _Refusal(li.id, li.limit.span, _EVERY_TOOL)
            json_default = "allow"
        elif other.allow not in (TOP, BOTTOM):
            p = next(p for p in program.permits if p.tools is None)
            raise _Refusal(
                p.id, p.policy.span,
                "it permits every tool under a condition, and the JSON form has no conditions for tools it "
                "does not list",
            )
    except _Refusal as r:
        refuse(r)

    tools: dict[str, dict] = {}
    hide: list[str] = list(program.hidden)
    for tool in sorted(program.named_tools() - set(program.hidden), key=_tool_order(program)):
        try:
            plan = _plan(program, _Ctx(program, tool, grant, server))
        except _Refusal as r:
            refuse(r)
            continue
        never = plan.allow == BOTTOM or any(conj == () for conj, _ in plan.deny_if)
        if never:
            if json_default == "allow":
                hide.append(tool)
            continue
        entry: dict = {}
        if plan.allow not in (TOP, BOTTOM):
            entry["require"] = [_entry(conj, msg) for conj, msg in plan.allow]
        if plan.deny_if:
            entry["deny_if"] = [_entry(conj, msg) for conj, msg in plan.deny_if]
        if plan.limits:
            entry["limits"] = [_limit_json(li) for li in plan.limits]
        if entry or json_default == "deny":
            tools[tool] = entry
    if errors:
        raise MCPPError(errors, program.document.source if program.document else None)
    out: dict = {"version": "1", "default": json_default}
    if hide:
        out["hide"] = hide
    out["tools"] = tools
    return out


def _tool_order(program: Program):
    """Tools in order of first mention in the source, so output follows the author's order."""
    first: dict[str, int] = {}
    for s in program.document.statements if program.document else ():
        scope = getattr(s, "scope", None)
        if scope is None:
            continue
        for e in scope.action.entities:
            if scope.action.op != "eq" and e.id in program.groups:
                for t in sorted(program.groups[e.id]):
                    first.setdefault(t, len(first))
            else:
                first.setdefault(e.id, len(first))
    return lambda t: (first.get(t, len(first)), t)


def principal_references(program: Program) -> list[tuple[str, Span]]:
    """Rules that read the principal: they need `--grant` to compile."""
    out = []
    for p in list(program.policies) + list(program.limits):
        stmt = getattr(p, "policy", None) or p.limit
        if stmt.scope.principal.op != "any" or any("principal" in _vars(c.expr) for c in stmt.clauses):
            out.append((p.id, stmt.span))
    return out
