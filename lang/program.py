"""Resolve and validate a parsed Document into a `Program`: the checked policy set that
the evaluator, the compiler and the analyzer consume.

Resolution expands action groups to tool names and fixes policy ids; validation
reports everything that is knowable without a tool catalog (unknown entity types,
`context` attributes other than `input`, bad regexes, comparisons that can only
error) — all at once, each with its span.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import ir
from .ir import walk
from .diagnostics import Diagnostic, MCPPError, Span
from .identity import GRANT_ATTRS, PrincipalChecks, names_users
from .regex import regex_error
from .values import is_number

if TYPE_CHECKING:
    from .plan import DecisionPlan

ENTITY_TYPES = {"Grant", "User", "Group", "Action", "Server"}
PRINCIPAL_ATTRS = set(GRANT_ATTRS)  # a grant's; a user's are declared (`entity User`)


@dataclass(frozen=True)
class PolicyInfo:
    """A policy with its resolved id and the tools its action scope names (None = any tool).

    Every info object holds its statement as `stmt`, so code over rules of several kinds
    needs no duck typing."""

    stmt: ir.Policy
    id: str
    index: int
    tools: frozenset[str] | None
    approval: str | None = None  # `@approval("…")` on a permit: what the approver is shown ("" when bare)

    @property
    def effect(self) -> str:
        return self.stmt.effect


@dataclass(frozen=True)
class LimitInfo:
    stmt: ir.Limit
    id: str
    tools: frozenset[str] | None


@dataclass(frozen=True)
class AssertInfo:
    stmt: ir.Assert
    id: str
    tools: frozenset[str] | None


@dataclass
class Program:
    default: str = "deny"
    default_span: Span | None = None
    hidden: dict[str, Span] = field(default_factory=dict)
    groups: dict[str, frozenset[str]] = field(default_factory=dict)  # action group → tools
    group_spans: dict[str, Span] = field(default_factory=dict)
    policies: list[PolicyInfo] = field(default_factory=list)
    limits: list[LimitInfo] = field(default_factory=list)
    asserts: list[AssertInfo] = field(default_factory=list)
    document: ir.Document | None = None
    # `entity User …`: the attributes and parents of user callers (None: not declared,
    # which means users with no attributes, in groups; lang/identity.py)
    user_decl: ir.EntityDecl | None = None
    # whether user callers are considered: the policy declares `entity User` or names the
    # type User. Validation reports reads that error for users, and the analyzer treats the
    # caller's kind as unknown, only then; a gateway serving users may set it.
    identity_aware: bool = False
    origin: str = "mcpp"  # mcpp | json | cedar
    cedar: object = None  # a .cedar file: what lang.cedar_import learnt of it (CedarSource)
    filename: str = "<input>"
    _plan: object = field(default=None, repr=False, compare=False)

    def plan(self) -> DecisionPlan:
        """The decision plan every backend consumes (`lang.plan`), built once."""
        from .plan import build_plan

        return build_plan(self)

    @property
    def permits(self) -> list[PolicyInfo]:
        """The ordinary permits (an allow needs nobody); `approvals` are the others."""
        return [p for p in self.policies if p.effect == "permit" and p.approval is None]

    @property
    def approvals(self) -> list[PolicyInfo]:
        """The `@approval` permits: a call they allow waits for a person (lang/plan.py)."""
        return [p for p in self.policies if p.approval is not None]

    @property
    def forbids(self) -> list[PolicyInfo]:
        return [p for p in self.policies if p.effect == "forbid"]

    def named_tools(self) -> set[str]:
        """Every tool the policy set names anywhere (scopes, hide, limits, asserts, conditions)."""
        tools: set[str] = set(self.hidden)
        for coll in (self.policies, self.limits, self.asserts):
            for p in coll:
                if p.tools:
                    tools |= p.tools
        for members in self.groups.values():
            tools |= members
        for p in self.policies:
            for c in p.stmt.clauses:
                tools |= _action_literals(c.expr, self)
        return tools

    def action_ancestors(self, tool: str) -> frozenset[str]:
        return frozenset(g for g, members in self.groups.items() if tool in members)

    @property
    def principal_attrs(self) -> dict[str, ir.AttrDecl]:
        """The declared attributes of user callers, by name (a grant's one is `label`)."""
        return {a.name: a for a in self.user_decl.attrs} if self.user_decl is not None else {}


def _action_literals(e: ir.Expr, program: Program) -> set[str]:
    out: set[str] = set()
    for node in walk(e):
        if isinstance(node, ir.EntityLit) and node.entity.type == "Action":
            out.add(node.entity.id)
            out |= program.groups.get(node.entity.id, frozenset())
    return out


MAX_DEPTH = 200  # every backend recurses over expressions; keep far from Python's stack limit


def nesting_depth(e: ir.Expr) -> int:
    """The depth of the expression tree (a chain `a && b && c` counts one level per operand)."""
    best = 0
    stack: list[tuple[ir.Node, int]] = [(e, 1)]
    while stack:
        n, d = stack.pop()
        best = max(best, d)
        for child in n.children():
            stack.append((child, d + 1))
    return best


class _Validator:
    def __init__(self, filename: str):
        self.filename = filename
        self.diags: list[Diagnostic] = []
        self.principals = PrincipalChecks(None, False, self.error, self.warning)
        self.reads_principal = False  # the expressions validated so far read a principal attribute

    def error(self, msg: str, span: Span, code: str = "validation", notes=()) -> None:
        self.diags.append(Diagnostic(msg, span, "error", code, self.filename, tuple(notes)))

    def warning(self, msg: str, span: Span, code: str, notes=()) -> None:
        self.diags.append(Diagnostic(msg, span, "warning", code, self.filename, tuple(notes)))

    # -- entities and scopes ----------------------------------------------------
    def entity(self, ent: ir.EntityRef, allowed: set[str], where: str) -> None:
        if ent.type not in ENTITY_TYPES:
            self.error(
                f"unknown entity type {ent.type}",
                ent.span,
                notes=("entity types are Grant, User, Group (of grants and users), Action (a tool or action group) "
                       "and Server",),
            )
        elif ent.type not in allowed:
            self.error(f"{ent.type} cannot be used {where}; expected {' or '.join(sorted(allowed))}", ent.span)

    def scope(self, scope: ir.Scope) -> None:
        p = scope.principal
        if p.entity is not None:
            self.entity(p.entity, {"Grant", "User"} if p.op == "eq" else {"Grant", "User", "Group"},
                        "in the principal scope")
        if p.type is not None and p.type not in ("Grant", "User"):
            self.error(f"principals are of type Grant or User, not {p.type}", p.span)
        for e in scope.action.entities:
            self.entity(e, {"Action"}, "in the action scope")
        r = scope.resource
        if r.entity is not None:
            self.entity(r.entity, {"Server"}, "in the resource scope")
        if r.type is not None and r.type != "Server":
            self.error(f"resources are of type Server, not {r.type}", r.span)

    # -- expressions ----------------------------------------------------------------
    def expr(self, e: ir.Expr, condition: bool = True) -> None:
        depth = nesting_depth(e)
        if depth > MAX_DEPTH:
            self.error(
                f"this condition nests {depth} levels deep; the limit is {MAX_DEPTH}",
                e.span,
                notes=("split it into several when/unless clauses (they are ANDed) or several policies",),
            )
            return
        reads_before = self.reads_principal
        self.reads_principal = False
        for n in walk(e):
            if isinstance(n, ir.EntityLit):
                self.entity(n.entity, ENTITY_TYPES, "here")
            elif isinstance(n, ir.GetAttr):
                self.get_attr(n)
            elif isinstance(n, ir.Has):
                if isinstance(n.obj, ir.Var) and n.obj.name == "context" and n.path[0] != "input":
                    self.error(f"context has only the attribute input, so `has {n.path[0]}` is always false", n.span)
                elif isinstance(n.obj, ir.Var) and n.obj.name == "principal":
                    self.principals.has(n)
            elif isinstance(n, ir.Matches):
                problem = regex_error(n.regex)
                if problem:
                    self.error(problem, n.span, code="regex")
                self.string_operand(n.obj, "matches()")
            elif isinstance(n, ir.Like):
                self.string_operand(n.obj, "like")
            elif isinstance(n, ir.Compare) and n.op in ("<", "<=", ">", ">="):
                for side in (n.left, n.right):
                    if isinstance(side, (ir.Lit, ir.SetLit, ir.RecordLit, ir.EntityLit)) and not (
                        isinstance(side, ir.Lit) and is_number(side.value)
                    ):
                        self.error(
                            f"`{n.op}` compares numbers; this operand is never a number, so the condition always errors",
                            side.span,
                            code="type",
                        )
            elif isinstance(n, ir.In):
                if isinstance(n.right, (ir.Lit, ir.RecordLit)):
                    self.error(
                        "the right side of `in` must be an entity or a set",
                        n.right.span,
                        code="type",
                        notes=("for a substring test use s.contains(\"text\") or s like \"*text*\"",),
                    )
            elif isinstance(n, ir.Is):
                if n.type not in ENTITY_TYPES:
                    self.error(f"unknown entity type {n.type}", n.span)
            elif isinstance(n, ir.Call):
                if isinstance(n.obj, (ir.Lit, ir.RecordLit, ir.EntityLit)) and not (
                    n.method == "contains" and isinstance(n.obj, ir.Lit) and isinstance(n.obj.value, str)
                ):
                    self.error(f"{n.method}() needs a set", n.obj.span, code="type")
                if n.method in ("containsAll", "containsAny") and isinstance(n.args[0], (ir.Lit, ir.RecordLit)):
                    self.error(f"{n.method}() takes a set", n.args[0].span, code="type")
        if self.reads_principal:  # declared attribute types: only what reads the principal pays for them
            if condition:
                self.principals.boolean(e)
            for n in walk(e):
                self.principals.types(n)
        self.reads_principal = self.reads_principal or reads_before

    def string_operand(self, obj: ir.Expr, what: str) -> None:
        if isinstance(obj, (ir.Lit, ir.SetLit, ir.RecordLit, ir.EntityLit)) and not (
            isinstance(obj, ir.Lit) and isinstance(obj.value, str)
        ):
            self.error(f"{what} applies to strings; this operand is never a string", obj.span, code="type")

    def get_attr(self, n: ir.GetAttr) -> None:
        obj = n.obj
        if isinstance(obj, ir.Var):
            if obj.name == "context" and n.attr != "input":
                self.error(
                    f"context has no attribute {n.attr!r}",
                    n.span,
                    notes=("tool-call arguments are under context.input, e.g. context.input." + n.attr,),
                )
            elif obj.name == "principal":
                self.reads_principal = True
                self.principals.get_attr(n)
            elif obj.name in ("action", "resource"):
                self.error(f"{obj.name} has no attributes", n.span)
        elif isinstance(obj, (ir.Lit, ir.SetLit, ir.EntityLit)):
            self.error(f"cannot read attribute {n.attr!r} of this value", n.span, code="type")



def _entity_decl(s: ir.EntityDecl, prog: Program, v: _Validator) -> None:
    """`entity User …`: the one entity type a policy declares (lang/identity.py)."""
    if s.name != "User":
        if s.name in ENTITY_TYPES:
            v.error(f"{s.name} cannot be declared: only `entity User` can", s.name_span,
                    notes=("grants carry `label`; groups, actions and servers have no attributes",))
        else:
            v.error(f"unknown entity type {s.name} (only `entity User` can be declared)", s.name_span,
                    notes=("users are the callers an OAuth token authenticates; see docs/language.md §3.4",))
        return
    if prog.user_decl is not None:
        v.error("`entity User` is declared twice", s.name_span,
                notes=(f"the first is at line {prog.user_decl.span.line}",))
        return
    for parent in s.parents:
        if parent != "Group":
            v.error(f"users can be in groups only (`in [Group]`), not in {parent}", s.span)
    prog.user_decl = s


def _expand_groups(groups: dict[str, ir.Group], v: _Validator) -> dict[str, frozenset[str]]:
    resolved: dict[str, frozenset[str]] = {}

    def expand(name: str, trail: tuple[str, ...]) -> frozenset[str]:
        if name in resolved:
            return resolved[name]
        if name in trail:
            v.error(f"action group cycle: {' → '.join(trail + (name,))}", groups[name].span)
            return frozenset()
        out: set[str] = set()
        for m in groups[name].members:
            out.add(m.id)  # a member group is itself `in` this group, as in Cedar
            if m.id in groups:
                out |= expand(m.id, trail + (name,))
        resolved[name] = frozenset(out)
        return resolved[name]

    for name in groups:
        expand(name, ())
    return resolved


def action_tools(scope: ir.ActionScope, groups: dict[str, frozenset[str]]) -> frozenset[str] | None:
    """The tools an action scope names. `in` is Cedar's entity `in`: reflexive, then
    every transitive member, so `in Action::"ops"` names a tool called `ops` too."""
    if scope.op == "any":
        return None
    out: set[str] = set()
    for e in scope.entities:
        out.add(e.id)
        if scope.op != "eq":
            out |= groups.get(e.id, frozenset())
    return frozenset(out)


def build_program(doc: ir.Document) -> tuple[Program, list[Diagnostic]]:
    """Resolve and validate; returns the program and its diagnostics (errors and warnings)."""
    from .parser import paused_gc

    with paused_gc():
        return _build_program(doc)


def _build_program(doc: ir.Document) -> tuple[Program, list[Diagnostic]]:
    v = _Validator(doc.filename)
    prog = Program(document=doc, filename=doc.filename)
    group_decls: dict[str, ir.Group] = {}
    defaults = [s for s in doc.statements if isinstance(s, ir.Default)]
    for d in defaults[1:]:
        v.error("a second `default` declaration", d.span, notes=(f"the first is at line {defaults[0].span.line}",))
    if defaults:
        prog.default = defaults[0].decision
        prog.default_span = defaults[0].span
    for s in doc.statements:
        if isinstance(s, ir.EntityDecl):
            _entity_decl(s, prog, v)
        elif isinstance(s, ir.Group):
            v.entity(s.entity, {"Action"}, "as an action group")
            for m in s.members:
                v.entity(m, {"Action"}, "in an action group")
            if s.entity.id in group_decls:
                v.error(f"action group {s.entity.id!r} is declared twice", s.entity.span)
            else:
                group_decls[s.entity.id] = s
                prog.group_spans[s.entity.id] = s.entity.span
        elif isinstance(s, ir.Hide):
            for t in s.tools:
                v.entity(t, {"Action"}, "in hide")
                prog.hidden.setdefault(t.id, t.span)
    prog.identity_aware = prog.user_decl is not None or names_users(doc)
    v.principals = PrincipalChecks(prog.user_decl, prog.identity_aware, v.error, v.warning)
    prog.groups = _expand_groups(group_decls, v)
    for name in list(prog.hidden):
        if name in prog.groups:  # hiding a group hides every tool `in` it (itself included)
            span = prog.hidden[name]
            for tool in prog.groups[name]:
                prog.hidden.setdefault(tool, span)

    ids: dict[str, Span] = {}
    counters = {"permit": 0}

    def take_id(annotations, span: Span, prefix: str) -> str:
        explicit = ir.annotation(annotations, "id")
        if explicit is not None:
            pid = explicit
            if pid in ids:
                v.error(f"duplicate @id({pid!r})", span, notes=(f"first used at line {ids[pid].line}",))
        else:
            n = counters.setdefault(prefix, 0)
            pid = f"{prefix}{n}"
            while pid in ids:
                n += 1
                pid = f"{prefix}{n}"
            counters[prefix] = n + 1
        ids.setdefault(pid, span)
        return pid

    for s in doc.statements:
        v.reads_principal = False
        if not isinstance(s, ir.Policy) and ir.annotation(getattr(s, "annotations", ()), "approval") is not None:
            v.error("@approval applies to permits only", _annotation_span(s, "approval"), code="approval",
                    notes=("write `@approval(\"…\") permit (…) when { … };` for calls a person must approve",))
        if not isinstance(s, ir.Default) and ir.annotation(getattr(s, "annotations", ()), "catalog") is not None:
            # the catalog a policy names is read from its `default` statement only: elsewhere
            # the annotation would silently name nothing (no typed analysis, no tool checks)
            v.warning("@catalog names the policy's catalog only on its `default` statement; here it is ignored",
                      _annotation_span(s, "catalog"), code="catalog",
                      notes=('write `@catalog("tools.json") default deny;` at the top of the policy',))
        if isinstance(s, ir.Policy):
            v.scope(s.scope)
            for c in s.clauses:
                v.expr(c.expr)
            if v.reads_principal:
                v.principals.rule(s, s.effect)
            pid = take_id(s.annotations, s.span, "policy")
            approval = ir.annotation(s.annotations, "approval")
            if approval is not None and s.effect != "permit":
                v.error("@approval applies to permits only: a forbid always denies, with or without a person",
                        _annotation_span(s, "approval"), code="approval")
                approval = None
            prog.policies.append(PolicyInfo(s, pid, len(prog.policies), action_tools(s.scope.action, prog.groups),
                                            approval))
        elif isinstance(s, ir.Limit):
            v.scope(s.scope)
            for c in s.clauses:
                v.expr(c.expr)
            if s.increment is not None:
                v.expr(s.increment, condition=False)
                if _input_path(s.increment) is None:
                    v.error("a limit increment must be an argument path such as context.input.bytes", s.increment.span)
            if v.reads_principal:
                v.principals.rule(s, "limit")
            lid = take_id(s.annotations, s.span, "limit")
            prog.limits.append(LimitInfo(s, lid, action_tools(s.scope.action, prog.groups)))
        elif isinstance(s, ir.Assert):
            v.scope(s.scope)
            for c in s.clauses:
                v.expr(c.expr)
            if v.reads_principal:
                v.principals.rule(s, "assert")
            aid = take_id(s.annotations, s.span, "assert")
            prog.asserts.append(AssertInfo(s, aid, action_tools(s.scope.action, prog.groups)))
    return prog, v.diags


def _annotation_span(s, key: str) -> Span:
    for a in getattr(s, "annotations", ()):
        if a.key == key:
            return a.span
    return s.span


def _input_path(e: ir.Expr) -> tuple[str, ...] | None:
    from .atoms import input_path

    return input_path(e)


def load_program(source: str, filename: str = "<input>") -> Program:
    """Parse + validate, raising MCPPError with every error found."""
    prog, diags = check_source(source, filename)
    errors = [d for d in diags if d.severity == "error"]
    if errors:
        raise MCPPError(errors, source)
    return prog


def check_source(source: str, filename: str = "<input>") -> tuple[Program, list[Diagnostic]]:
    """Everything `mcpp check` reports: syntax (with recovery) and validation diagnostics,
    in source order. A `.cedar` file is read with Cedar's meaning and type names
    (lang/cedar_import.py)."""
    from .parser import diagnostic_order, parse_partial

    doc, diags = parse_partial(source, filename)
    cedar = None
    if filename.endswith(".cedar"):
        from .cedar_import import read_cedar

        doc, cedar, diags = read_cedar(doc, diags)
    prog, more = build_program(doc)
    if cedar is not None:
        from .cedar_import import without_follow_ons

        prog.origin, prog.cedar = "cedar", cedar
        more = without_follow_ons(diags, more)
    return prog, sorted(diags + more, key=diagnostic_order)
