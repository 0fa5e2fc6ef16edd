"""Check a policy against the tools a server really has (Cedar's strict validation, for MCP).

Every finding is a Diagnostic with a span and a stable code documented in
docs/catalogs.md; where one edit clearly fixes it, `data["fix"]` holds it:
`{"title": str, "edits": [{"start", "end", "line", "col", "end_line", "end_col", "text"}]}`
(offsets and 1-based line/col of the source range to replace with `text`).

The unguarded-optional check encodes the asymmetry of skip-on-error: a condition that
reads an absent argument errors and its policy is skipped. For a `permit` that denies
(fails closed) — worth saying, so a warning. For a `forbid`, or a `limit`'s
condition, it lets the call through uncounted (fails open) — an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from mcpp.lang import ir
from mcpp.lang.atoms import has_path, input_path
from mcpp.lang.diagnostics import Diagnostic, Span, did_you_mean
from mcpp.lang.formatter import expr as fmt_expr
from mcpp.lang.program import Program

from .conformance import closed_world
from .model import Catalog
from .schema import View, describe_types, follow, json_type

UNKNOWN_TOOL = "catalog-unknown-tool"
GROUP_IS_TOOL = "catalog-group-is-tool"
UNKNOWN_ARGUMENT = "catalog-unknown-argument"
TYPE_MISMATCH = "catalog-type-mismatch"
NOT_A_STRING = "catalog-not-a-string"
UNGUARDED_OPTIONAL = "catalog-unguarded-optional"
ENUM_MISMATCH = "catalog-enum-mismatch"

CODES = (UNKNOWN_TOOL, UNKNOWN_ARGUMENT, TYPE_MISMATCH, NOT_A_STRING, UNGUARDED_OPTIONAL, ENUM_MISMATCH)

Path = tuple[str, ...]


def validate(program: Program, catalog: Catalog) -> list[Diagnostic]:
    """Every way `program` disagrees with `catalog`, in source order."""
    v = _Validator(program, catalog)
    v.run()
    return sorted(v.out.values(), key=lambda d: (d.span.start, d.code, d.message))


def _edit(span: Span, text: str) -> dict:
    return {"start": span.start, "end": span.end, "line": span.line, "col": span.col,
            "end_line": span.end_line, "end_col": span.end_col, "text": text}


def _prefixes(path: Path) -> set[Path]:
    return {path[:i] for i in range(1, len(path) + 1)}


@dataclass
class _Stmt:
    """The statement a condition belongs to, which decides how bad a failure to evaluate is."""

    kind: str  # permit | forbid | limit | assert
    label: str
    tools: list[str]  # the catalogued tools it applies to
    any_tool: bool  # its scope names no tool


class _Validator:
    def __init__(self, program: Program, catalog: Catalog):
        self.program = program
        self.catalog = catalog
        self.source = program.document.source if program.document is not None else ""
        self.file = program.filename
        self.out: dict[tuple, Diagnostic] = {}
        self._schemas: dict[str, dict] = {}

    def schema(self, tool: str) -> dict:
        """The schema calls to `tool` are checked against by the gateway (typed calls): as
        declared, but an argument the tool does not declare at all is refused unless the
        schema says something about other keys (`conformance.closed_world`). So a condition
        on an undeclared argument reads a key no forwarded call has: an error."""
        hit = self._schemas.get(tool)
        if hit is None:
            hit = self._schemas[tool] = closed_world(self.catalog.tools[tool].input_schema)
        return hit

    # -- output -----------------------------------------------------------------------
    def emit(self, key: tuple, msg: str, span: Span, severity: str, code: str, notes=(), fix: dict | None = None):
        if key in self.out:
            return
        data = {"fix": fix} if fix else {}
        self.out[key] = Diagnostic(msg, span, severity, code, self.file, tuple(notes), data)

    # -- tools ----------------------------------------------------------------------------
    def tool_ref(self, ent: ir.EntityRef, severity: str, where: str) -> None:
        if ent.type != "Action" or ent.id in self.program.groups or ent.id in self.catalog.tools:
            return
        near = did_you_mean(ent.id, self.catalog.tools)
        server = self.catalog.server_name or "the server"
        notes = []
        fix = None
        if near:
            notes.append(f"did you mean {near!r}?")
            fix = {"title": f"Replace with Action::\"{near}\"",
                   "edits": [_edit(ent.span, str(ir.EntityRef("Action", near)))]}
        if severity == "error":
            notes.append("a rule about a tool the server does not have never governs the tool you meant")
        self.emit((UNKNOWN_TOOL, ent.span.start), f"unknown tool {ent.id!r} {where}: the catalog of {server} has no such tool",
                  ent.span, severity, UNKNOWN_TOOL, notes, fix)

    def run(self) -> None:
        doc = self.program.document
        if doc is None:
            return
        for s in doc.statements:
            if isinstance(s, ir.Hide):
                for t in s.tools:
                    # hiding a tool the server does not have may be deliberate (in case it
                    # appears); one a letter away from a real tool is a typo that leaves the
                    # tool meant listed and callable (fail open): an error
                    typo = t.type == "Action" and did_you_mean(t.id, self.catalog.tools) is not None
                    self.tool_ref(t, "error" if typo else "warning", "in hide")
            elif isinstance(s, ir.Group):
                for t in s.members:
                    self.tool_ref(t, "error", f"in group {s.entity.id!r}")
                if s.entity.id in self.catalog.tools:
                    self.emit(
                        (GROUP_IS_TOOL, s.entity.span.start),
                        f"group {s.entity.id!r} has the name of a tool of {self.catalog.server_name or 'the server'}: `in` is reflexive, "
                        "so every rule on the group governs that tool too",
                        s.entity.span, "warning", GROUP_IS_TOOL,
                        ("rename the group if the tool is not meant to be one of its members",),
                    )
            elif isinstance(s, (ir.Policy, ir.Limit, ir.Assert)):
                for t in s.scope.action.entities:
                    self.tool_ref(t, "error", "in the scope")
        infos: list[tuple[ir.Policy | ir.Limit | ir.Assert, str, str, frozenset[str] | None]]
        infos = [(p.stmt, p.stmt.effect, p.id, p.tools) for p in self.program.policies]
        infos += [(lim.stmt, "limit", lim.id, lim.tools) for lim in self.program.limits]
        infos += [(a.stmt, "assert", a.id, a.tools) for a in self.program.asserts]
        for stmt, kind, sid, tools in infos:
            for c in stmt.clauses:
                for n in ir.walk(c.expr):
                    if isinstance(n, ir.EntityLit):
                        self.tool_ref(n.entity, "error", "in a condition")
            known = sorted(t for t in (tools or ()) if t in self.catalog.tools)
            st = _Stmt(kind, f"{kind} {sid!r}", known if tools is not None else sorted(self.catalog.tools), tools is None)
            if not st.tools:
                continue
            guarded: set[Path] = set()
            for c in stmt.clauses:
                self.visit(c.expr, frozenset(guarded), st, c)
                guarded |= _implied(c.expr, c.kind == "when")
            if isinstance(stmt, ir.Limit) and stmt.increment is not None:
                self.increment(stmt.increment, st, frozenset(guarded))

    # -- expressions ------------------------------------------------------------------
    def visit(self, e: ir.Expr, known: frozenset, st: _Stmt, clause: ir.Clause) -> None:
        path = input_path(e)
        if path is not None:
            self.read(e, path, known, st, clause)
            return
        if isinstance(e, ir.And):
            self.visit(e.left, known, st, clause)
            self.visit(e.right, known | _implied(e.left, True), st, clause)
            return
        if isinstance(e, ir.Or):
            self.visit(e.left, known, st, clause)
            self.visit(e.right, known | _implied(e.left, False), st, clause)
            return
        if isinstance(e, ir.If):
            self.visit(e.cond, known, st, clause)
            self.visit(e.then, known | _implied(e.cond, True), st, clause)
            self.visit(e.else_, known | _implied(e.cond, False), st, clause)
            return
        if isinstance(e, ir.Has):
            self.has(e, st)
        elif isinstance(e, ir.Compare):
            self.compare(e, st)
        elif isinstance(e, ir.In):
            self.membership(e, st)
        elif isinstance(e, (ir.Like, ir.Matches)):
            self.string_op(e, st)
        elif isinstance(e, ir.Call):
            self.call(e, st)
        for child in e.children():
            self.visit(child, known, st, clause)  # type: ignore[arg-type]

    def views(self, path: Path, st: _Stmt) -> dict[str, View]:
        """Per tool, the schema view at `path` (tools where the path cannot exist are left out)."""
        out = {}
        for t in st.tools:
            info = follow(self.schema(t), path, t)
            if info.view is not None:
                out[t] = info.view
        return out

    def read(self, e: ir.Expr, path: Path, known: frozenset, st: _Stmt, clause: ir.Clause) -> None:
        if not path:
            return
        results = {t: follow(self.schema(t), path, t) for t in st.tools}
        bad = {t: r for t, r in results.items() if r.problem}
        if st.any_tool:
            # A rule for every tool reads arguments that only some tools have; that is fine
            # unless no tool at all has it.
            if len(bad) == len(results):
                self.unknown_path(e, path, bad, st)
        elif bad:
            self.unknown_path(e, path, bad, st)
        if st.any_tool:
            return
        optional: dict[str, Path] = {}
        for t, r in results.items():
            if r.problem is not None or r.optional_at is None:
                continue
            schema = self.schema(t)
            for i in range(r.optional_at, len(path)):
                p = path[: i + 1]
                if p not in known and _optional_segment(schema, p, t):
                    optional[t] = p
                    break
        if optional:
            self.unguarded(e, optional, st, clause)

    def unknown_path(self, e, path: Path, bad: dict, st: _Stmt) -> None:
        kinds = {r.problem_kind for r in bad.values()}
        tools = sorted(bad)
        first = bad[tools[0]]
        # a key the schema lets through but does not declare: in a permit the condition
        # fails closed (the tool never reads it, so callers rarely send it), in a forbid or a
        # limit it fails open (the guard applies only to callers who send the key)
        severity = "warning" if kinds == {"undeclared"} and st.kind not in ("forbid", "limit") else "error"
        notes = []
        fix = None
        if len(tools) > 1:
            notes.append("tools without it: " + ", ".join(tools))
        if len({(r.suggestion, r.at) for r in bad.values()}) == 1 and first.suggestion:
            fixed = path[: first.at] + (first.suggestion,) + path[first.at + 1:]
            notes.append(f"did you mean {'.'.join(fixed)!r}?")
            if isinstance(e, ir.GetAttr):
                fix = {"title": f"Use context.input.{'.'.join(fixed)}",
                       "edits": [_edit(e.span, fmt_expr(_path_expr(fixed)))]}
        if kinds == {"undeclared"}:
            notes.append("the schema lets undeclared keys through, but the server ignores what it does not declare; "
                         "a condition on it tests something the tool never reads")
            if severity == "error":
                notes.append(f"a {st.kind} guarded by it applies only to callers who choose to send it")
        elif st.kind in ("forbid", "limit"):
            if kinds == {"absent"}:
                notes.append("the gateway refuses calls with arguments the tool does not declare (typed calls), "
                             "so no call it forwards has this one")
            notes.append(f"a {st.kind} whose condition reads a missing argument is skipped: it never applies")
        else:
            notes.append(f"a {st.kind} whose condition reads a missing argument never applies")
        self.emit((UNKNOWN_ARGUMENT, e.span.start), first.problem, e.span, severity, UNKNOWN_ARGUMENT, notes, fix)

    def unguarded(self, e, optional: dict[str, Path], st: _Stmt, clause: ir.Clause) -> None:
        opt = max(optional.values(), key=len)
        name = ".".join(opt)
        tools = sorted(optional)
        has_text = fmt_expr(ir.Has(ir.GetAttr(ir.Var("context"), "input"), opt))
        which = tools[0] if len(tools) == 1 else "some of its tools (" + ", ".join(tools) + ")"
        fix = None
        if st.kind in ("forbid", "limit"):
            severity = "error"
            verb = "denies" if st.kind == "forbid" else "counts"
            head = (f"`{name}` is optional in {which}: when a call omits it this condition errors and the "
                    f"{st.kind} is skipped, so the call gets through {'un-denied' if st.kind == 'forbid' else 'uncounted'} "
                    "(fails open)")
            notes = [f"the fix {verb} calls that omit `{name}` (fails closed); if omitting it is truly harmless, "
                     f"write `{has_text} && …` instead to make the exemption explicit"]
            fix_text = self.rewrite(clause, has_text, closed=True)
            if fix_text is not None:
                fix = {"title": f"Also {'deny' if st.kind == 'forbid' else 'count'} calls that omit {name}",
                       "edits": [_edit(clause.expr.span, fix_text)]}
        elif st.kind == "permit":
            severity = "warning"
            head = (f"`{name}` is optional in {which}: when a call omits it this condition errors and the permit "
                    "does not apply (fails closed: the call is denied)")
            notes = ["if that is what you want, say so with a `has` test; the fix keeps the decision and removes the error"]
            fix_text = self.rewrite(clause, has_text, closed=False)
            if fix_text is not None:
                fix = {"title": f"Require {name} explicitly", "edits": [_edit(clause.expr.span, fix_text)]}
        else:
            if clause.kind == "when":
                return  # selecting calls by an argument's value naturally leaves out calls without it
            severity = "warning"
            head = (f"`{name}` is optional in {which}: this `unless` errors on calls that omit it, so the "
                    "assertion says nothing about them")
            notes = [f"add `{has_text}` to the condition, or assert separately what happens without it"]
        self.emit((UNGUARDED_OPTIONAL, e.span.start), head, e.span, severity, UNGUARDED_OPTIONAL, notes, fix)

    def rewrite(self, clause: ir.Clause, has_text: str, *, closed: bool) -> str | None:
        """The clause body with a `has` test added. `closed` makes the clause hold when the argument
        is absent for a forbid/limit (`when`: `!(has) || e`; `unless`: `has && e`); otherwise it makes
        the clause fail without an error, keeping a permit's decision (`when`: `has && e`)."""
        sp = clause.expr.span
        if not self.source or sp.end <= sp.start:
            return None
        body = self.source[sp.start:sp.end]
        holds_when_absent = closed == (clause.kind == "when")
        if holds_when_absent:
            wrap = isinstance(clause.expr, ir.If)
            return f"!({has_text}) || " + (f"({body})" if wrap else body)
        wrap = isinstance(clause.expr, (ir.Or, ir.If))
        return f"{has_text} && " + (f"({body})" if wrap else body)

    def has(self, e: ir.Has, st: _Stmt) -> None:
        path = has_path(e)
        if path is None or st.any_tool:
            return
        bad = {}
        for t in st.tools:
            r = follow(self.schema(t), path, t)
            if r.problem and r.problem_kind != "undeclared":
                bad[t] = r
        if bad:
            self.unknown_path(e, path, bad, st)

    # -- types ------------------------------------------------------------------------------
    def typed(self, e: ir.Expr, st: _Stmt) -> tuple[Path, dict[str, View]] | None:
        path = input_path(e)
        if path is None or not path:
            return None
        views = self.views(path, st)
        return (path, views) if views else None

    def compare(self, e: ir.Compare, st: _Stmt) -> None:
        for side, other in ((e.left, e.right), (e.right, e.left)):
            t = self.typed(side, st)
            if t is None:
                continue
            path, views = t
            name = ".".join(path)
            if e.op in ("<", "<=", ">", ">="):
                wrong = {tool: v.types for tool, v in views.items() if not v.may_be("number")}
                if len(wrong) == len(views):
                    ty = describe_types(next(iter(wrong.values())))
                    self.emit((TYPE_MISMATCH, e.span.start), f"`{e.op}` compares numbers, but `{name}` is {ty}: "
                              "the condition always errors", e.span, "error", TYPE_MISMATCH,
                              ["use == / in for exact values, or like / matches() to examine a string"])
            elif isinstance(other, ir.Lit):
                self.literal_against(other, views, name, e.op)

    def literal_against(self, lit: ir.Lit, views: dict[str, View], name: str, op: str = "==") -> None:
        lt = json_type(lit.value)
        wrong = {tool: v.types for tool, v in views.items() if not v.may_be(lt)}
        if len(wrong) == len(views):
            ty = describe_types(next(iter(wrong.values())))
            always = "false" if op == "==" else "true" if op == "!=" else "false"
            notes = []
            fix = None
            if all(ts is not None and "string" in ts for ts in wrong.values()) and lt in ("number", "boolean"):
                text = ir.Lit(str(lit.value).lower() if lt == "boolean" else _num_text(lit.value))
                fix = {"title": "Compare with the string", "edits": [_edit(lit.span, fmt_expr(text))]}
                notes.append(f"the argument is a string: compare with {fmt_expr(text)}")
            elif all(ts is not None and "number" in ts for ts in wrong.values()) and lt == "string":
                try:
                    num = float(cast(str, lit.value))  # lt == "string"
                    val = int(num) if num.is_integer() else num
                    fix = {"title": "Compare with the number", "edits": [_edit(lit.span, fmt_expr(ir.Lit(val)))]}
                    notes.append(f"the argument is a number: compare with {fmt_expr(ir.Lit(val))}")
                except ValueError:
                    pass
            self.emit((TYPE_MISMATCH, lit.span.start),
                      f"`{name}` is {ty}, so it never equals {fmt_expr(lit)} (always {always})",
                      lit.span, "error", TYPE_MISMATCH, notes, fix)
            return
        sets = [v.values for v in views.values() if v.values is not None]
        if len(sets) == len(views) and not any(_json_eq(lit.value, x) for s in sets for x in s):
            allowed = sorted({fmt_expr(ir.Lit(x)) for s in sets for x in s if isinstance(x, (str, int, float, bool)) or x is None})
            self.emit((ENUM_MISMATCH, lit.span.start),
                      f"`{name}` only takes {', '.join(allowed)}; {fmt_expr(lit)} never matches", lit.span, "warning",
                      ENUM_MISMATCH, [f"the schema's enum for `{name}` does not contain it"])

    def membership(self, e: ir.In, st: _Stmt) -> None:
        t = self.typed(e.left, st)
        if t is None or not isinstance(e.right, ir.SetLit):
            return
        path, views = t
        for item in e.right.items:
            if isinstance(item, ir.Lit):
                self.literal_against(item, views, ".".join(path))

    def string_op(self, e: ir.Like | ir.Matches, st: _Stmt) -> None:
        t = self.typed(e.obj, st)
        if t is None:
            return
        path, views = t
        wrong = {tool: v.types for tool, v in views.items() if not v.may_be("string")}
        if len(wrong) == len(views):
            what = "like" if isinstance(e, ir.Like) else "matches()"
            ty = describe_types(next(iter(wrong.values())))
            notes = ["compare numbers with < <= > >=, and values with == or in"]
            self.emit((NOT_A_STRING, e.span.start), f"{what} applies to strings, but `{'.'.join(path)}` is {ty}: "
                      "the condition always errors", e.span, "error", NOT_A_STRING, notes)

    def call(self, e: ir.Call, st: _Stmt) -> None:
        t = self.typed(e.obj, st)
        if t is None:
            return
        path, views = t
        name = ".".join(path)
        if e.method == "contains":
            wrong = {tool: v.types for tool, v in views.items() if not (v.may_be("array") or v.may_be("string"))}
            if len(wrong) == len(views):
                self.emit((TYPE_MISMATCH, e.span.start),
                          f"contains() needs an array (or a string), but `{name}` is {describe_types(next(iter(wrong.values())))}: "
                          "the condition always errors", e.span, "error", TYPE_MISMATCH)
                return
            arg = e.args[0]
            if isinstance(arg, ir.Lit) and all(not v.may_be("array") for v in views.values()) and not isinstance(arg.value, str):
                self.emit((TYPE_MISMATCH, arg.span.start), f"`{name}` is a string, so contains() takes a string",
                          arg.span, "error", TYPE_MISMATCH)
            elif isinstance(arg, ir.Lit) and all(v.types == frozenset({"array"}) for v in views.values()):
                self.literal_against(arg, {tool: v.items() for tool, v in views.items()}, name + "[…]")
        else:
            wrong = {tool: v.types for tool, v in views.items() if not v.may_be("array")}
            if len(wrong) == len(views):
                self.emit((TYPE_MISMATCH, e.span.start),
                          f"{e.method}() needs an array, but `{name}` is {describe_types(next(iter(wrong.values())))}: "
                          "the condition always errors", e.span, "error", TYPE_MISMATCH)

    def increment(self, e: ir.Expr, st: _Stmt, known: frozenset) -> None:
        path = input_path(e)
        if path is None or not path or st.any_tool:
            return
        results = {t: follow(self.schema(t), path, t) for t in st.tools}
        bad = {t: r for t, r in results.items() if r.problem}
        if bad:
            self.unknown_path(e, path, bad, st)
            return
        views = {t: r.view for t, r in results.items() if r.view is not None}
        wrong = {t: v.types for t, v in views.items() if not v.may_be("number")}
        if wrong and len(wrong) == len(views):
            self.emit((TYPE_MISMATCH, e.span.start), f"a limit increment must be a number, but `{'.'.join(path)}` is "
                      f"{describe_types(next(iter(wrong.values())))}: every call would be denied", e.span, "error",
                      TYPE_MISMATCH)
        optional = [t for t, r in results.items() if r.optional_at is not None and path not in known]
        if optional:
            self.emit((UNGUARDED_OPTIONAL, e.span.start),
                      f"`{'.'.join(path)}` is optional in {', '.join(sorted(optional))}: a call that omits it is denied "
                      "by this limit (a missing increment fails closed)", e.span, "warning", UNGUARDED_OPTIONAL,
                      ["add `when { context.input has " + ".".join(path) + " }` if calls without it should not be limited"])


def _optional_segment(schema: dict, p: Path, tool: str) -> bool:
    """Is the last key of `p` optional in its parent object?"""
    parent = follow(schema, p[:-1], tool)
    if parent.view is None:
        return False
    ch = parent.view.child(p[-1])
    return ch.status == "declared" and not ch.required


def _num_text(v) -> str:
    from mcpp.lang.formatter import lit

    return lit(v)


def _json_eq(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def _path_expr(path: Path) -> ir.Expr:
    e: ir.Expr = ir.GetAttr(ir.Var("context"), "input")
    for k in path:
        e = ir.GetAttr(e, k)
    return e


def _strict(e: ir.Expr) -> set[Path]:
    """Argument paths read by every evaluation of `e` that does not error."""
    path = input_path(e)
    if path is not None:
        return _prefixes(path) if path else set()
    if isinstance(e, (ir.And, ir.Or)):
        return _strict(e.left)
    if isinstance(e, ir.If):
        return _strict(e.cond)
    if isinstance(e, ir.Has):
        base = input_path(e.obj)
        return _prefixes(base) if base else set()
    out: set[Path] = set()
    for c in e.children():
        out |= _strict(c)  # type: ignore[arg-type]
    return out


def _implied(e: ir.Expr, value: bool) -> set[Path]:
    """Paths certainly present when `e` evaluated to `value` (without error)."""
    out = _strict(e)
    if isinstance(e, ir.Has) and value:
        p = has_path(e)
        if p:
            out |= _prefixes(p)
    elif isinstance(e, ir.Not):
        out |= _implied(e.expr, not value)
    elif isinstance(e, ir.And) and value:
        out |= _implied(e.left, True) | _implied(e.right, True)
    elif isinstance(e, ir.Or) and not value:
        out |= _implied(e.left, False) | _implied(e.right, False)
    elif isinstance(e, ir.And):  # false: the left side was false, or true with the right side false
        out |= _implied(e.left, False) & (_implied(e.left, True) | _implied(e.right, False))
    elif isinstance(e, ir.Or):  # true: the left side was true, or false with the right side true
        out |= _implied(e.left, True) & (_implied(e.left, False) | _implied(e.right, True))
    return out
