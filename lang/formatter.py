"""`mcpp fmt`: one canonical layout for a Document, comments kept.

Layout (Cedar's): annotations one per line, the effect and scope on one line when it
fits in 80 columns, each `when`/`unless` clause on its own line at column 0, long
conditions broken at the top-level `&&`/`||`. One blank line between statements.

Comments are attached by position: lines above a statement stay above it, a comment
after `;` stays on that line, a comment inside a statement moves above the clause it
was in. The result is a fixed point: `fmt(fmt(x)) == fmt(x)`.
"""

from __future__ import annotations

import re

from . import ir
from .strings import quote, quote_like

WIDTH = 80
INDENT = "  "
_IDENT = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*\Z")
_KEYWORDS_AS_VALUES = {"true", "false", "null", "if", "then", "else", "in", "has", "like", "is"}

# precedence levels (higher binds tighter)
P_IF, P_OR, P_AND, P_REL, P_UNARY, P_MEMBER = 0, 1, 2, 3, 5, 6


def _num(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    r = repr(v)
    if "e" in r or "E" in r:
        mant, exp = r.lower().split("e")
        if "." not in mant:
            mant += ".0"
        return f"{mant}e{exp}"
    return r


def lit(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return _num(v)
    if isinstance(v, str):
        return quote(v)
    raise TypeError(type(v))


def _key(k: str) -> str:
    return k if _IDENT.match(k) else quote(k)


def expr(e: ir.Expr, prec: int = P_IF) -> str:
    s, p = _expr(e)
    return f"({s})" if p < prec else s


def _expr(e: ir.Expr) -> tuple[str, int]:
    if isinstance(e, ir.Lit):
        if isinstance(e.value, (int, float)) and not isinstance(e.value, bool) and e.value < 0:
            return _num(e.value), P_UNARY
        return lit(e.value), P_MEMBER
    if isinstance(e, ir.Var):
        return e.name, P_MEMBER
    if isinstance(e, ir.EntityLit):
        return str(e.entity), P_MEMBER
    if isinstance(e, ir.GetAttr):
        base = expr(e.obj, P_MEMBER)
        if _IDENT.match(e.attr):
            return f"{base}.{e.attr}", P_MEMBER
        return f"{base}[{quote(e.attr)}]", P_MEMBER
    if isinstance(e, ir.Call):
        args = ", ".join(expr(a) for a in e.args)
        return f"{expr(e.obj, P_MEMBER)}.{e.method}({args})", P_MEMBER
    if isinstance(e, ir.Matches):
        return f"{expr(e.obj, P_MEMBER)}.matches({quote(e.regex)})", P_MEMBER
    if isinstance(e, ir.Not):
        return "!" + expr(e.expr, P_UNARY), P_UNARY
    if isinstance(e, ir.Neg):
        inner = expr(e.expr, P_UNARY)
        return ("- " if inner.startswith("-") else "-") + inner, P_UNARY
    if isinstance(e, ir.Compare):
        return f"{expr(e.left, P_UNARY)} {e.op} {expr(e.right, P_UNARY)}", P_REL
    if isinstance(e, ir.In):
        return f"{expr(e.left, P_UNARY)} in {expr(e.right, P_UNARY)}", P_REL
    if isinstance(e, ir.Has):
        return f"{expr(e.obj, P_UNARY)} has {'.'.join(_key(k) for k in e.path)}", P_REL
    if isinstance(e, ir.Like):
        return f"{expr(e.obj, P_UNARY)} like {quote_like(e.pattern)}", P_REL
    if isinstance(e, ir.Is):
        s = f"{expr(e.obj, P_UNARY)} is {e.type}"
        if e.in_ is not None:
            s += f" in {expr(e.in_, P_UNARY)}"
        return s, P_REL
    if isinstance(e, ir.And):
        return f"{expr(e.left, P_AND)} && {expr(e.right, P_REL)}", P_AND
    if isinstance(e, ir.Or):
        return f"{expr(e.left, P_OR)} || {expr(e.right, P_AND)}", P_OR
    if isinstance(e, ir.If):
        return f"if {expr(e.cond)} then {expr(e.then)} else {expr(e.else_)}", P_IF
    if isinstance(e, ir.SetLit):
        return "[" + ", ".join(expr(i) for i in e.items) + "]", P_MEMBER
    if isinstance(e, ir.RecordLit):
        return "{" + ", ".join(f"{_key(k)}: {expr(v)}" for k, v in e.items) + "}", P_MEMBER
    raise TypeError(type(e))  # pragma: no cover


def _chain(e: ir.Expr) -> tuple[str, list[ir.Expr]] | None:
    """Split a top-level && (or ||) chain into its operands, for line breaking."""
    for cls, op in ((ir.And, "&&"), (ir.Or, "||")):
        if isinstance(e, cls):
            parts: list[ir.Expr] = []
            node: ir.Expr = e
            while isinstance(node, cls):
                parts.append(node.right)
                node = node.left
            parts.append(node)
            return op, list(reversed(parts))
    return None


def clause(c: ir.Clause) -> list[str]:
    lines = [_annotation(a) for a in c.annotations]
    one = f"{c.kind} {{ {expr(c.expr)} }}"
    if len(one) <= WIDTH:
        return lines + [one]
    chain = _chain(c.expr)
    if chain is None:
        return lines + [f"{c.kind} {{", INDENT + expr(c.expr), "}"]
    op, parts = chain
    prec = P_REL if op == "&&" else P_AND
    body = [INDENT + expr(parts[0], P_AND if op == "&&" else P_OR)]
    body += [INDENT + expr(p, prec) for p in parts[1:]]
    body = [b + f" {op}" for b in body[:-1]] + [body[-1]]
    return lines + [f"{c.kind} {{"] + body + ["}"]


def _annotation(a: ir.Annotation) -> str:
    return f"@{a.key}" if a.value == "" else f"@{a.key}({quote(a.value)})"


def _entity_scope(var: str, s: ir.EntityScope) -> str:
    if s.op == "any":
        return var
    if s.op == "eq":
        return f"{var} == {s.entity}"
    if s.op == "in":
        return f"{var} in {s.entity}"
    if s.op == "is":
        return f"{var} is {s.type}"
    return f"{var} is {s.type} in {s.entity}"


def _action_scope(s: ir.ActionScope) -> tuple[str, list[str]]:
    if s.op == "any":
        return "action", []
    if s.op == "eq":
        return f"action == {s.entities[0]}", []
    if s.op == "in":
        return f"action in {s.entities[0]}", []
    items = [str(e) for e in s.entities]
    return "action in [" + ", ".join(items) + "]", items


def scope_lines(head: str, scope: ir.Scope) -> list[str]:
    action, items = _action_scope(scope.action)
    p = _entity_scope("principal", scope.principal)
    r = _entity_scope("resource", scope.resource)
    one = f"{head} ({p}, {action}, {r})"
    if len(one) <= WIDTH:
        return [one]
    lines = [f"{head} (", f"{INDENT}{p},"]
    if items and len(INDENT + action) + 1 > WIDTH:
        lines.append(f"{INDENT}action in [")
        lines += [f"{INDENT * 2}{it}," for it in items[:-1]] + [f"{INDENT * 2}{items[-1]}"]
        lines.append(f"{INDENT}],")
    else:
        lines.append(f"{INDENT}{action},")
    lines += [f"{INDENT}{r}", ")"]
    return lines


def _entity_list(
    head: str, ents: tuple[ir.EntityRef, ...], tail: str,
    before: dict[int, list[str]] | None = None, after: dict[int, list[str]] | None = None,
) -> list[str]:
    """`head[a, b]tail` on one line if it fits and carries no comments, else one item a line
    with each item's comments kept next to it."""
    before, after = before or {}, after or {}
    items = [str(e) for e in ents]
    one = f"{head}[{', '.join(items)}]{tail}"
    if len(one) <= WIDTH and not before and not after:
        return [one]
    lines = [f"{head}["]
    for i, item in enumerate(items):
        lines += [INDENT + c for c in before.get(i, [])]
        line = INDENT + item + ("," if i < len(items) - 1 else "")
        if i in after:
            line += " " + " ".join(after[i])
        lines.append(line)
    lines.append(f"]{tail}")
    return lines


def _item_comments(items, comments: list[ir.Comment]):
    """Attach comments inside a list to its items: same line after an item trails it,
    anything else goes above the next item (or trails the last)."""
    before: dict[int, list[str]] = {}
    after: dict[int, list[str]] = {}
    for c in comments:
        k = next((i for i, e in enumerate(items) if e.span.line == c.span.line and c.span.start >= e.span.end), None)
        if k is not None and not any(
            e.span.line == c.span.line and e.span.start > c.span.start for e in items
        ):
            after.setdefault(k, []).append(c.text)
            continue
        k = next((i for i, e in enumerate(items) if e.span.start > c.span.start), None)
        if k is None:
            after.setdefault(len(items) - 1, []).append(c.text)
        else:
            before.setdefault(k, []).append(c.text)
    return before, after


def _limit_options(s: ir.Limit) -> str:
    opts = f"max {_num(s.max)} per {s.window} scope {s.scope_kind}"
    if s.increment is not None:
        opts += f" increment {expr(s.increment, P_MEMBER)}"
    return INDENT + opts


def statement_parts(s: ir.Statement) -> tuple[list[str], list[tuple[ir.Clause, list[str]]]]:
    """Header lines (annotations, head, scope) and the clause blocks, before the final `;`."""
    head = [_annotation(a) for a in s.annotations]
    if isinstance(s, ir.Default):
        return head + [f"default {s.decision}"], []
    if isinstance(s, ir.Hide):
        if len(s.tools) == 1:
            return head + [f"hide {s.tools[0]}"], []
        return head + _entity_list("hide ", s.tools, ""), []
    if isinstance(s, ir.Group):
        return head + _entity_list(f"group {s.entity} = ", s.members, ""), []
    if isinstance(s, ir.Policy):
        return head + scope_lines(s.effect, s.scope), [(c, clause(c)) for c in s.clauses]
    if isinstance(s, ir.Limit):
        lines = head + scope_lines(f"limit {quote(s.counter)}", s.scope) + [_limit_options(s)]
        return lines, [(c, clause(c)) for c in s.clauses]
    if isinstance(s, ir.Assert):
        return head + scope_lines(f"assert {s.kind}", s.scope), [(c, clause(c)) for c in s.clauses]
    if isinstance(s, ir.EntityDecl):
        return head + entity_decl_lines(s), []
    raise TypeError(type(s))  # pragma: no cover


def entity_decl_lines(s: ir.EntityDecl) -> list[str]:
    """`entity User in [Group] { a: String, b?: Long }` on one line when it fits, else one
    attribute a line. No parents and no attributes print nothing (`entity User`)."""
    head = f"entity {s.name}"
    if s.parents:
        head += " in [" + ", ".join(s.parents) + "]"
    if not s.attrs:
        return [head]
    attrs = [f"{_key(a.name)}{'?' if a.optional else ''}: {a.type}" for a in s.attrs]
    one = f"{head} {{ {', '.join(attrs)} }}"
    if len(one) + 1 <= WIDTH:
        return [one]
    return [head + " {"] + [INDENT + a + "," for a in attrs[:-1]] + [INDENT + attrs[-1], "}"]


# ---- documents with comments ---------------------------------------------------------------


def _blank_between(source: str, a: int, b: int) -> bool:
    """Is there an empty line in source[a:b] (between two things)?"""
    return "\n\n" in re.sub(r"[ \t\r\f]+", "", source[a:b])


def format_document(doc: ir.Document) -> str:
    src = doc.source
    comments = sorted(doc.comments, key=lambda c: c.span.start)
    out: list[str] = []
    ci = 0
    prev_end = 0
    for idx, s in enumerate(doc.statements):
        start, end = s.span.start, s.span.end
        # leading comments
        leading: list[ir.Comment] = []
        while ci < len(comments) and comments[ci].span.start < start:
            leading.append(comments[ci])
            ci += 1
        interior: list[ir.Comment] = []
        while ci < len(comments) and comments[ci].span.start < end:
            interior.append(comments[ci])
            ci += 1
        trailing: list[ir.Comment] = []
        end_line = s.span.end_line
        while ci < len(comments) and comments[ci].span.line == end_line and comments[ci].span.start >= end:
            trailing.append(comments[ci])
            ci += 1
        block: list[str] = []
        last = prev_end
        for c in leading:
            if block and _blank_between(src, last, c.span.start):
                block.append("")
            block.append(c.text)
            last = c.span.end
        if leading and _blank_between(src, last, start):
            block.append("")
        header, clauses = statement_parts(s)
        if isinstance(s, (ir.Hide, ir.Group)) and interior:
            items = s.tools if isinstance(s, ir.Hide) else s.members
            after_ann = s.annotations[-1].span.end if s.annotations else start
            bracket = src.find("[", after_ann, end) if src else -1
            first = bracket if bracket != -1 else (items[0].span.start if items else end)
            inside = [c for c in interior if c.span.start >= first]
            interior = [c for c in interior if c.span.start < first]
            if inside:
                before, after = _item_comments(items, inside)
                head = f"group {s.entity} = " if isinstance(s, ir.Group) else "hide "
                header = [_annotation(a) for a in s.annotations] + _entity_list(head, items, "", before, after)
        clause_of: dict[int, list[str]] = {}
        head_comments: list[str] = []
        clause_trailing: dict[int, list[str]] = {}
        clause_spans = [c.span for c, _ in clauses]
        header_end = clause_spans[0].start if clause_spans else end
        for c in interior:
            if c.span.start < header_end:
                # inside the header: above the statement; between scope and first clause: above that clause
                if not clause_spans or c.span.start < _header_stop(s, clause_spans):
                    head_comments.append(c.text)
                else:
                    clause_of.setdefault(0, []).append(c.text)
                continue
            k = next((i for i, sp in enumerate(clause_spans) if c.span.start < sp.end), None)
            if k is None:
                trailing.insert(0, c)
                continue
            # a comment right after the previous clause's `}` on its line trails that clause
            if k > 0 and c.span.line == clause_spans[k - 1].end_line and c.span.start >= clause_spans[k - 1].end:
                clause_trailing.setdefault(k - 1, []).append(c.text)
            else:
                clause_of.setdefault(k, []).append(c.text)
        lines = head_comments + header
        for i, (_, cl) in enumerate(clauses):
            lines += clause_of.get(i, [])
            cl = list(cl)
            if i in clause_trailing and i != len(clauses) - 1:
                cl[-1] += " " + " ".join(clause_trailing[i])
            elif i in clause_trailing:
                trailing = [ir.Comment(t) for t in clause_trailing[i]] + trailing
            lines += cl
        lines[-1] += ";"
        if trailing:
            lines[-1] += " " + " ".join(c.text for c in trailing)
        if out:
            out.append("")
        out.extend(block + lines)
        prev_end = max(end, trailing[-1].span.end if trailing and trailing[-1].span.end else end)
    rest = comments[ci:]
    if rest:
        block = []
        last = prev_end
        for c in rest:
            if (block or out) and _blank_between(src, last, c.span.start):
                block.append("")
            elif out and not block:
                block.append("")
            block.append(c.text)
            last = c.span.end
        if out and block and block[0] != "":
            block.insert(0, "")
        out.extend(block)
    text = "\n".join(out)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n") + "\n" if text.strip() else ""


def _header_stop(s: ir.Statement, clause_spans: list) -> int:
    """Offset where the statement header (annotations + scope + limit options) ends."""
    scope = getattr(s, "scope", None)
    if scope is None:
        return s.span.end
    if isinstance(s, ir.Limit):
        return clause_spans[0].start if clause_spans else s.span.end
    return scope.span.end


def format_source(source: str, filename: str = "<input>") -> str:
    from .parser import parse

    return format_document(parse(source, filename))
