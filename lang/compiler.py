"""`mcpp compile`: a Program → the gateway's JSON form, exactly, or a refusal that says why.

Per tool, the permits that name it become its `require` entries (one entry per
`when`/`unless` clause, see atoms.py for T/F), its forbids become `deny_if` entries
(one per disjunct), its limits become `limits`. Tools the policy does not name get
`default`. Whatever the JSON form cannot carry (a disjunction of permits, a negated
regex, a condition on the principal without `--grant`, conditions on tools the
document does not list) is refused with the rule's id, span and the reason.

Conditions on the principal, the resource or the action are folded to constants
first (per tool, and per principal when one is given: a grant, or a user with its
claims), using the evaluator's closures, so the folding means exactly what evaluation
means. The JSON form has no identity: one document is compiled per principal.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from . import ir
from .atoms import BOTTOM, TOP, NotExpressible, _and, dnf, input_path
from .diagnostics import Diagnostic, MCPPError, Span
from .evaluator import Env, compile_expr, scope_check
from .identity import PrincipalError, check_user_groups, user_attributes
from .ir import walk
from .program import LimitInfo, PolicyInfo, Program
from .values import ERR, Entity


@dataclass(frozen=True)
class GrantContext:
    """Compile for this grant (`mcpp compile --grant ID --label L --group G`)."""

    id: str
    label: str = ""
    groups: frozenset[str] = frozenset()

    def entity(self, program: Program) -> Entity:  # noqa: ARG002 (PrincipalContext: a user reads the program)
        return Entity("Grant", self.id, {"label": self.label}, frozenset(("Group", x) for x in self.groups))


@dataclass(frozen=True)
class UserContext:
    """Compile for this user (`mcpp compile --user ID --claim name=JSON --group G`): its
    claims are typed by the policy's `entity User` declaration (`user_attributes`)."""

    id: str
    claims: tuple[tuple[str, object], ...] = ()
    groups: frozenset[str] = frozenset()

    def entity(self, program: Program) -> Entity:
        """The user as the principal entity; PrincipalError when it does not fit `entity User`."""
        check_user_groups(program.user_decl, self.groups)
        attrs = user_attributes(program.user_decl, dict(self.claims))
        return Entity("User", self.id, attrs, frozenset(("Group", x) for x in self.groups))


PrincipalContext = GrantContext | UserContext


class _Unknown(Exception):
    def __init__(self, what: str, span: Span | None):
        self.what = what
        self.span = span


@dataclass
class _Ctx:
    program: Program
    tool: str | None  # None: "any other tool"
    grant: PrincipalContext | None  # the principal: a grant or a user
    server: str | None
    _env: Env | None = field(default=None)

    def env(self) -> Env:
        if self._env is None:
            principal = (self.grant or GrantContext("?")).entity(self.program)
            groups_of = self.program.action_ancestors
            action = Entity("Action", self.tool or "?", None, frozenset(("Action", x) for x in groups_of(self.tool or "")))
            self._env = Env(principal, action, Entity("Server", self.server or "?"), {}, lambda t: frozenset(("Action", x) for x in groups_of(t)))
        return self._env


def _vars(e: ir.Expr) -> set[str]:
    return {n.name for n in walk(e) if isinstance(n, ir.Var)}


def _value_node(v, span: Span) -> ir.Expr:
    if v is ERR:
        return ir.Error(span)
    if isinstance(v, Entity):
        return ir.EntityLit(ir.EntityRef(v.type, v.id), span)
    if isinstance(v, list):
        return ir.SetLit(tuple(_value_node(x, span) for x in v), span)
    if isinstance(v, dict):
        return ir.RecordLit(tuple((k, _value_node(x, span)) for k, x in v.items()), span)
    return ir.Lit(v, span)


# operators that error when an operand errors (`&&`, `||` and `if` short-circuit instead)
_LAZY = (ir.And, ir.Or, ir.If)


def fold(e: ir.Expr, ctx: _Ctx) -> ir.Expr:
    """Replace every sub-expression that does not read `context` by its value, computed
    by the evaluator (so folding means exactly what evaluation means). A sub-expression
    whose value is an error becomes `ir.Error`, and so does a strict operation with an
    `ir.Error` operand."""
    used = _vars(e)
    if "context" not in used:
        if "principal" in used and ctx.grant is None:
            raise _Unknown("the principal (grant or user)", e.span)
        if "resource" in used and ctx.server is None:
            raise _Unknown("the resource (server)", e.span)
        if "action" in used and ctx.tool is None:
            raise _Unknown("the action (tool name)", e.span)
        if isinstance(e, (ir.Lit, ir.Error)):
            return e
        return _value_node(compile_expr(e)(ctx.env()), e.span)
    new = e.map_children(lambda c: fold(c, ctx))
    if not isinstance(new, _LAZY) and any(isinstance(c, ir.Error) for c in new.children()):
        return ir.Error(e.span)
    return new


_EVERY_TOOL = (
    "it applies to every tool, including tools this document does not list, and the JSON form attaches "
    "conditions and limits to listed tools only"
)


class _Refusal(Exception):
    def __init__(self, rule_id: str, span: Span | None, reason: str):
        self.rule_id, self.span, self.reason = rule_id, span, reason


def _scope_applies(scope: ir.Scope, ctx: _Ctx, rule_id: str) -> bool:
    """Fold the principal and resource scope; False if the rule cannot apply in this context."""
    for var, s, known in (("principal", scope.principal, ctx.grant), ("resource", scope.resource, ctx.server)):
        check = scope_check(s, var)
        if check is None:
            continue
        if known is None:
            what = "grant or user" if var == "principal" else "server"
            raise _Refusal(rule_id, s.span, f"its {var} scope depends on the {what}, which one JSON document cannot carry")
        if not check(ctx.env()):
            return False
    return True


def _clause_dnfs(stmt, ctx: _Ctx, rule_id: str) -> list[tuple[ir.Clause, list]] | None:
    """Each clause's DNF (T for when, F for unless); None if the rule never applies here."""
    if not _scope_applies(stmt.scope, ctx, rule_id):
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
        path = input_path(lim.increment)
        assert path is not None, lim.increment  # validation: an increment is an argument path
        d["increment_from"] = "args." + ".".join(path)
    if lim.reason:
        d["on_deny"] = lim.reason
    return d


def _check_keys(conj, rule_id: str, span: Span) -> None:
    for c in conj:
        for k in c.path:
            if "." in k:
                raise _Refusal(rule_id, span, f"argument key {k!r} contains a '.', which JSON-form paths cannot express")
            if k == "":
                raise _Refusal(rule_id, span, "an empty argument key, which JSON-form paths cannot express")


@dataclass
class _ToolPlan:
    allow: list  # TOP | BOTTOM | list of (conj, on_deny) require entries
    deny_if: list
    limits: list


def _applicable(infos: tuple[PolicyInfo, ...] | tuple[LimitInfo, ...], ctx: _Ctx) -> list:
    """The plan's rules for this tool that can apply in this context, each with its
    clauses' DNFs."""
    out = []
    for info in infos:
        dnfs = _clause_dnfs(info.stmt, ctx, info.id)
        if dnfs is not None:
            out.append((info, dnfs))
    return out


def _plan(program: Program, ctx: _Ctx) -> _ToolPlan:
    """The JSON entries of one tool (None: every tool the document does not name), read
    off the program's decision plan."""
    tool = ctx.tool
    plan = program.plan()
    tp = plan.for_tool(tool) if tool is not None else plan.other
    assert tp is not None  # build_plan always sets `other`
    allow: list = BOTTOM
    applicable = _applicable(tp.permits, ctx)
    if tp.default_allows:
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
            entries.append((d[0], c.reason or p.stmt.reason))
        allow = entries
    elif len(applicable) > 1:
        a, b = applicable[0][0], applicable[1][0]
        raise _Refusal(
            b.id, b.stmt.span,
            f"permits {a.id!r} and {b.id!r} both apply to tool {tool!r}; the JSON form cannot express a "
            "disjunction of permits",
        )
    deny_if = []
    for f, dnfs in _applicable(tp.forbids, ctx):
        combined = list(TOP)
        try:
            for _, d in dnfs:
                combined = _and(combined, d)
        except NotExpressible as ne:
            raise _Refusal(f.id, f.stmt.span, ne.reason)
        for conj in combined:
            _check_keys(conj, f.id, f.stmt.span)
            deny_if.append((conj, f.stmt.reason))
    limits = []
    for li, dnfs in _applicable(tp.limits, ctx):
        if any(d != TOP for _, d in dnfs):
            raise _Refusal(li.id, li.stmt.span, "a limit with a condition has no JSON-form equivalent")
        inc = li.stmt.increment
        if inc is not None and any("." in k for k in input_path(inc) or ()):
            raise _Refusal(li.id, li.stmt.span, "its increment path has a key with a '.'")
        if li.stmt.scope_kind == "principal":
            raise _Refusal(li.id, li.stmt.span, "it counts per principal (`scope principal`), and the JSON form "
                           "counts per grant or per policy")
        limits.append(li.stmt)
    return _ToolPlan(allow, deny_if, limits)


def compile_program(
    program: Program, grant: PrincipalContext | None = None, server: str | None = None
) -> dict:
    """The JSON form, or MCPPError naming each rule that cannot be expressed. `grant` fixes
    the principal (a GrantContext or a UserContext): rules that read it are compiled for
    that one caller; without it they are refused."""
    errors: list[Diagnostic] = []
    native = "`mcpp serve` and `mcpp eval` run this policy natively."
    if isinstance(grant, UserContext):
        try:
            grant.entity(program)
        except PrincipalError as e:
            raise MCPPError([Diagnostic(
                f"--user {grant.id}: the user does not fit `entity User`: {e}",
                program.user_decl.span if program.user_decl is not None else Span(1, 1, 1, 1),
                "error", "compile", program.filename,
            )], program.document.source if program.document else None) from None

    def refuse(r: _Refusal) -> None:
        notes = [native]
        if "grant or user" in r.reason:
            notes.insert(0, "compile one document per grant or per user: mcpp compile FILE --grant ID [--label L] "
                            "[--group G], or --user ID [--claim NAME=JSON] [--group G]")
        elif "server" in r.reason:
            notes.insert(0, "compile one document per server: mcpp compile FILE --server ID")
        d = Diagnostic(
            f"cannot compile rule {r.rule_id!r} to the JSON form: {r.reason}",
            r.span or Span(1, 1, 1, 1), "error", "compile", program.filename, tuple(notes),
        )
        if d not in errors:
            errors.append(d)

    # the JSON form has allow and deny, nothing that waits for a person (the policy
    # product's articles have no such notion either): an @approval permit is refused,
    # never compiled as an ordinary permit (that would run the call without anyone)
    for p in program.approvals:
        refuse(_Refusal(p.id, p.stmt.span,
                        "it is an @approval permit (a call it allows waits for a person), and the JSON form "
                        "has no effect for approval; compiling it as a permit would run those calls unapproved"))

    # the tools it does not name ("any other tool") decide the JSON `default`
    json_default = "deny"
    try:
        other = _plan(program, _Ctx(program, None, grant, server))
        if other.allow == TOP and not any(conj == () for conj, _ in other.deny_if):
            if other.deny_if:
                f = next(f for f in program.forbids if f.tools is None)
                raise _Refusal(f.id, f.stmt.span, _EVERY_TOOL)
            if other.limits:
                li = next(li for li in program.limits if li.tools is None)
                raise _Refusal(li.id, li.stmt.span, _EVERY_TOOL)
            json_default = "allow"
        elif other.allow not in (TOP, BOTTOM):
            p = next(p for p in program.permits if p.tools is None)
            raise _Refusal(
                p.id, p.stmt.span,
                "it permits every tool under a condition, and the JSON form has no conditions for tools it "
                "does not list",
            )
    except _Refusal as r:
        refuse(r)

    tools: dict[str, dict] = {}
    hide: list[str] = list(program.hidden)
    for tool in sorted(set(program.plan().tools) - set(program.hidden), key=_tool_order(program)):
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


# ---- one principal's view of a program -----------------------------------------------------


def _reads_principal(e: ir.Expr) -> bool:
    return any(
        (isinstance(n, ir.Var) and n.name == "principal")
        or (isinstance(n, ir.EntityLit) and n.entity.type in ("Grant", "User"))
        for n in walk(e)
    )


def _fold_principal(e: ir.Expr, ctx: _Ctx) -> ir.Expr:
    """Replace every sub-expression that reads the principal (or names a grant or a user:
    an entity literal naming the caller has its attributes) but not the call by its value
    for this caller, computed by the evaluator."""
    if not _reads_principal(e):
        return e
    if not (_vars(e) - {"principal"}):
        return _value_node(compile_expr(e)(ctx.env()), e.span)
    new = e.map_children(lambda c: _fold_principal(c, ctx))
    if not isinstance(new, _LAZY) and any(isinstance(c, ir.Error) for c in new.children()):
        return ir.Error(e.span)
    return new


_NEVER = ir.Clause("when", ir.Lit(False))


def specialise(program: Program, principal: PrincipalContext) -> tuple[Program | None, str]:
    """`program` as this one caller sees it: principal scopes decided (a scope that holds
    becomes `principal`, one that does not adds `when { false }`), and every sub-expression
    that reads the principal but not the call replaced by its value. It decides every call
    by this caller as `program` does and reads nothing of the principal (translation
    validation of a `--user` document fixes the user in the analyzer instead:
    `analyzer.encode.FixedUser`). (None, why) when a principal value remains inside a
    condition on the call, where it cannot be folded away."""
    from .program import build_program

    doc = program.document
    if doc is None:
        return None, "the program has no source"
    ctx = _Ctx(program, None, principal, None)
    stmts: list = []
    for s in doc.statements:
        if not isinstance(s, (ir.Policy, ir.Limit, ir.Assert)):
            stmts.append(s)
            continue
        check = scope_check(s.scope.principal, "principal")
        holds = check is None or check(ctx.env())
        clauses = tuple(
            ir.Clause(c.kind, _fold_principal(c.expr, ctx), c.annotations, c.span) for c in s.clauses
        )
        if not holds:
            clauses = (_NEVER,) + clauses
        scope = ir.Scope(ir.EntityScope(), s.scope.action, s.scope.resource, s.scope.span)
        for c in clauses:
            if _reads_principal(c.expr):
                return None, (f"a condition of the rule at line {s.span.line} uses the principal inside a "
                              "condition on the call, which the analyzer cannot check for a user yet")
        stmts.append(dataclasses.replace(s, scope=scope, clauses=clauses))
    out, _ = build_program(ir.Document(tuple(stmts), doc.comments, doc.source, doc.filename))
    out.origin = program.origin
    return out, ""
