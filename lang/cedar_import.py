"""Reading a Cedar policy file (`.cedar`) as an mcpp program, with Cedar's meaning.

mcpp's syntax is Cedar's, so the parser reads the file; this module then makes the
program mean what Cedar means, or says precisely why it cannot:

- **Entity types.** Cedar files name their own types (`AgentCore::OAuthUser`,
  `MyMcpServer::User`, `AgentCore::Gateway`). The file's roles decide the mapping onto
  mcpp's model, no flag needed: the type of `principal == E` / `principal is T` is the
  principal (read as `Grant`), the type of `principal in E` that is not the principal's
  is a group (`Group`), the resource's type is `Server`, and `Ns::Action` is `Action`.
  One type per role; any other entity type is reported. Exporting the program again
  (`mcpp compile --target cedar`) writes the file's names back.
- **Users.** When that schema (below) gives the principal type attributes and the file
  reads one, the principal is mcpp's `User` instead, declared as `entity User` from the
  schema's attribute types (String, Long, Bool, sets of them; other types are reported
  where read), its one parent type the group type.
- **Action groups.** Cedar declares them in the schema, not in policies. A schema next
  to the file (`policy.cedarschema` for `policy.cedar`, the cedar-for-agents generator's
  output) is read for its `action … in [...]` memberships; without one, `action in
  Action::"g"` covers `g` alone, and a warning says so.
- **Meaning.** Where mcpp's extensions would read Cedar text differently, the import
  keeps Cedar's meaning: `s.contains(v)` is set membership only (mcpp's substring
  extension does not apply: it is read as `s.containsAny([v])`, printed back as
  `contains` on export); `v in [..]` with a value on the left is an error in Cedar (the
  policy never applies) and is reported, as are mcpp-only forms (`matches`, `null`,
  fractions, clause annotations, declarations other than `assert`).

`assert` statements are accepted, so a `.cedar` file can carry the properties
`mcpp verify` proves; Cedar itself would reject them, and the Cedar export drops them.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

from . import ir
from .cedar_model import CedarNames
from .diagnostics import NOSPAN, Diagnostic, Span

MCPP_TYPES = ("Grant", "Group", "Server", "Action")


@dataclass(frozen=True)
class CedarSource:
    """What the import knows about the file it read: its type names (for exporting it
    back), the `.contains` calls it read as `containsAny([v])`, and the schema it used."""

    names: CedarNames
    contains_spans: frozenset = frozenset()
    schema_file: str | None = None
    # the file's principal is a user typed by the schema (so its callers are users only)
    users_only: bool = False


class _Reader:
    def __init__(self, filename: str):
        self.filename = filename
        self.diags: list[Diagnostic] = []

    def error(self, message: str, span: Span, notes: tuple[str, ...] = ()) -> None:
        self.diags.append(Diagnostic(message, span, "error", "cedar-import", self.filename, notes))

    def warning(self, message: str, span: Span, notes: tuple[str, ...] = ()) -> None:
        self.diags.append(Diagnostic(message, span, "warning", "cedar-import", self.filename, notes))


# ---- the file's entity types ----------------------------------------------------------------


def _is_action_type(t: str) -> bool:
    return t == "Action" or t.endswith("::Action")


def _role_uses(doc: ir.Document):
    """(role, type, span) for every entity type use: role is principal, group, resource,
    action, or other (an entity literal in no role)."""
    out: list[tuple[str, str, Span]] = []

    def scope(s: ir.Scope) -> None:
        for var, es in (("principal", s.principal), ("resource", s.resource)):
            if es.op in ("is", "is_in"):
                out.append((var, es.type, es.span))  # type: ignore[arg-type]
            if es.op == "eq":
                out.append((var, es.entity.type, es.entity.span))  # type: ignore[union-attr]
            if es.op in ("in", "is_in"):
                out.append((f"{var}-in", es.entity.type, es.entity.span))  # type: ignore[union-attr]
        for e in s.action.entities:
            out.append(("action", e.type, e.span))

    def var_of(e: ir.Expr) -> str | None:
        return e.name if isinstance(e, ir.Var) and e.name in ("principal", "resource", "action") else None

    def targets(e: ir.Expr) -> list[ir.EntityRef]:
        if isinstance(e, ir.EntityLit):
            return [e.entity]
        if isinstance(e, ir.SetLit):
            return [i.entity for i in e.items if isinstance(i, ir.EntityLit)]
        return []

    def expr(e: ir.Expr) -> None:
        seen: set[int] = set()
        for n in ir.walk(e):
            if isinstance(n, ir.Compare) and n.op in ("==", "!="):
                for a, b in ((n.left, n.right), (n.right, n.left)):
                    v = var_of(a)
                    if v and isinstance(b, ir.EntityLit):
                        out.append((v, b.entity.type, b.entity.span))
                        seen.add(id(b))
            elif isinstance(n, ir.In):
                v = var_of(n.left)
                if v is None and isinstance(n.left, ir.EntityLit) and not _is_action_type(n.left.entity.type):
                    # `E in F`, E an entity literal: the caller's own entity asked about its groups
                    # (mcpp's export writes `Grant::"g" in Group::"a"` so); resolved in _type_mapping
                    lt = n.left.entity.type
                    out.append(("literal-in", lt, n.left.entity.span))
                    for ref in targets(n.right):
                        out.append((f"literal-in:{lt}", ref.type, ref.span))
                    seen.update(id(i) for i in ir.walk(n))
                    continue
                for ref in targets(n.right):
                    out.append((f"{v}-in" if v in ("principal", "resource") else (v or "other"), ref.type, ref.span))
                if v:
                    seen.update(id(i) for i in ir.walk(n.right))
            elif isinstance(n, ir.Is):
                v = var_of(n.obj)
                out.append((v or "other", n.type, n.span))
                if n.in_ is not None:
                    for ref in targets(n.in_):
                        out.append((f"{v}-in" if v in ("principal", "resource") else "other", ref.type, ref.span))
                    seen.update(id(i) for i in ir.walk(n.in_))
            elif isinstance(n, ir.EntityLit) and id(n) not in seen:
                out.append(("action" if _is_action_type(n.entity.type) else "other", n.entity.type, n.entity.span))

    for s in doc.statements:
        if isinstance(s, (ir.Policy, ir.Assert)):
            scope(s.scope)
            for c in s.clauses:
                expr(c.expr)
    return out


def _type_mapping(doc: ir.Document, r: _Reader) -> tuple[dict[str, str], CedarNames]:
    uses = _role_uses(doc)
    roles: dict[str, list[tuple[str, Span]]] = {"principal": [], "group": [], "resource": [], "action": []}

    def add(role: str, t: str, span: Span) -> None:
        if t not in [x for x, _ in roles[role]]:
            roles[role].append((t, span))

    uses = _resolve_literal_in(uses)
    principal_types = {t for role, t, _ in uses if role == "principal"}
    for role, t, span in uses:
        if _is_action_type(t):
            if role not in ("action", "other") and not role.startswith("action"):
                r.error(f"{t} is an action type, not a {role.split('-')[0]} type", span)
            add("action", t, span)
        elif role == "principal" or (role == "principal-in" and t in principal_types):
            add("principal", t, span)
        elif role == "principal-in":
            add("group", t, span)
        elif role in ("resource", "resource-in"):
            add("resource", t, span)
    mapping: dict[str, str] = {}
    mcpp_of = {"principal": "Grant", "group": "Group", "resource": "Server", "action": "Action"}
    for role, found in roles.items():
        for t, span in found[1:]:
            r.error(
                f"a second {role} type {t} (the first is {found[0][0]})",
                span,
                notes=(f"mcpp's request model has one {role} type (its {mcpp_of[role]}); "
                       "check the policies for each principal or resource type separately",),
            )
        if found:
            mapping[found[0][0]] = mcpp_of[role]
    inverse: dict[str, str] = {}
    for cedar, mcpp in mapping.items():
        if mcpp in inverse and inverse[mcpp] != cedar:
            r.error(f"{cedar} and {inverse[mcpp]} would both be read as {mcpp}", NOSPAN)
        inverse[mcpp] = cedar
    taken_roles = {t: role for role, found in roles.items() for t, _ in found}
    for role, t, span in uses:
        if role in ("other", "literal") and t not in taken_roles and not _is_action_type(t):
            r.error(
                f"entity type {t} has no place in mcpp's request model",
                span,
                notes=("mcpp reads one principal type, its groups, one resource type and the actions; "
                       "cedar-for-agents makes enum arguments entities (`MyMcpServer::format::\"markdown\"`) — "
                       "mcpp compares such arguments as strings",),
            )
    for t in list(mapping):
        if t.count("::") > 0 and not all(p for p in t.split("::")):
            r.error(f"bad entity type name {t}", NOSPAN)
    ns = next((t.rpartition("::")[0] for t in mapping if mapping[t] == "Action"), None)
    if ns is None:
        ns = next((t.rpartition("::")[0] for t in mapping), "")

    def name(mcpp: str) -> str:
        if mcpp in inverse:
            return inverse[mcpp]
        return f"{ns}::{mcpp}" if ns else mcpp

    names = CedarNames(principal=name("Grant"), group=name("Group"), resource=name("Server"), action=name("Action"))
    full = {cedar: mcpp for cedar, mcpp in mapping.items()}
    for mcpp in MCPP_TYPES:  # the defaults in the file's namespace read as themselves
        full.setdefault(name(mcpp), mcpp)
    return full, names


def _resolve_literal_in(uses: list[tuple[str, str, Span]]) -> list[tuple[str, str, Span]]:
    """Roles for `E in F` with an entity literal E. A type the file uses as the resource's
    keeps that role (`Server::"s" in Server::"t"`, F the resource type too); when F has
    E's own type, `in` is `==` and says nothing of roles (the other uses decide them);
    otherwise E is a caller asked about its groups: E's type is the principal's and F's a
    group (or the principal's, read as the principal)."""
    resource_types = {t for role, t, _ in uses if role in ("resource", "resource-in")}
    out: list[tuple[str, str, Span]] = []
    for role, t, span in uses:
        if role == "literal-in":
            if t in resource_types:
                out.append(("resource", t, span))
            elif any(r == f"literal-in:{t}" and x != t for r, x, _ in uses):
                out.append(("principal", t, span))
            else:
                out.append(("literal", t, span))  # in a role only if another use gives it one
        elif role.startswith("literal-in:"):
            left = role.partition(":")[2]
            if left in resource_types:
                out.append(("resource-in", t, span))
            elif t == left:
                out.append(("literal", t, span))
            else:
                out.append(("principal-in", t, span))
        else:
            out.append((role, t, span))
    return out


# ---- rewriting -------------------------------------------------------------------------------


class _Rewrite:
    def __init__(self, mapping: dict[str, str], r: _Reader, unreadable: dict[str, str] | None = None):
        self.mapping = mapping
        self.r = r
        self.contains_spans: set[Span] = set()
        self.unreadable = unreadable or {}  # user attribute → its schema type mcpp cannot declare

    def ref(self, e: ir.EntityRef) -> ir.EntityRef:
        t = self.mapping.get(e.type)
        return e if t is None or t == e.type else dataclasses.replace(e, type=t)

    def type_name(self, t: str | None) -> str | None:
        return self.mapping.get(t, t) if t is not None else None

    def scope(self, s: ir.Scope) -> ir.Scope:
        def es(x: ir.EntityScope) -> ir.EntityScope:
            return dataclasses.replace(x, entity=self.ref(x.entity) if x.entity else None, type=self.type_name(x.type))

        action = dataclasses.replace(s.action, entities=tuple(self.ref(e) for e in s.action.entities))
        return dataclasses.replace(s, principal=es(s.principal), action=action, resource=es(s.resource))

    def expr(self, e: ir.Expr) -> ir.Expr:
        if isinstance(e, ir.EntityLit):
            return dataclasses.replace(e, entity=self.ref(e.entity))
        if isinstance(e, ir.Is):
            e = dataclasses.replace(e, type=self.mapping.get(e.type, e.type))
        attr = _principal_attr(e)
        if attr is not None and attr in self.unreadable:
            self.r.error(f"the principal's attribute {attr!r} has the Cedar type {self.unreadable[attr]}, "
                         "which mcpp does not read", e.span,
                         notes=("mcpp's users have String, Long and Bool attributes and sets of them (`entity User`)",))
        if isinstance(e, ir.Matches):
            self.r.error("`.matches()` is an mcpp extension, not Cedar", e.span,
                         notes=("Cedar matches strings with `like` (`*` wildcards)",))
        elif isinstance(e, ir.Lit) and e.value is None:
            self.r.error("`null` is not Cedar", e.span, notes=("Cedar has no null value",))
        elif isinstance(e, ir.Lit) and isinstance(e.value, float):
            self.r.error("a fractional number is not Cedar", e.span,
                         notes=("Cedar writes fractions as decimal(\"1.5\"), which mcpp does not read",))
        elif isinstance(e, ir.In) and not _entity_side(e.left):
            self.r.error(
                "Cedar's `in` tests entity membership: with a value on the left it is an error, "
                "so Cedar never applies this policy",
                e.span,
                notes=("mcpp would read it as set membership; write it as Cedar's [..].contains(x) "
                       "(cedar-policy/cedar#2428)",),
            )
        elif isinstance(e, ir.Call) and e.method == "contains" and not isinstance(e.obj, ir.SetLit):
            # Cedar's `contains` is set membership only (an error on strings): read it so
            self.contains_spans.add(e.span)
            inner = e.map_children(self.expr)
            return ir.Call(inner.obj, "containsAny", (ir.SetLit((inner.args[0],), inner.args[0].span),), e.span)
        return e.map_children(self.expr)

    def clause(self, c: ir.Clause) -> ir.Clause:
        for a in c.annotations:
            self.r.error(f"an annotation on a {c.kind} clause (@{a.key}) is an mcpp extension, not Cedar", a.span)
        return dataclasses.replace(c, expr=self.expr(c.expr))


def _principal_attr(e: ir.Expr) -> str | None:
    """`x` for `principal.x` and `principal has x`."""
    if isinstance(e, ir.GetAttr) and isinstance(e.obj, ir.Var) and e.obj.name == "principal":
        return e.attr
    if isinstance(e, ir.Has) and isinstance(e.obj, ir.Var) and e.obj.name == "principal":
        return e.path[0]
    return None


def _entity_side(e: ir.Expr) -> bool:
    return isinstance(e, ir.EntityLit) or (isinstance(e, ir.Var) and e.name in ("principal", "action", "resource"))


# ---- action groups from a schema -------------------------------------------------------------

_TOKEN = re.compile(r'\s+|//[^\n]*|"(?:[^"\\]|\\.)*"|[_a-zA-Z][_a-zA-Z0-9]*|::|.', re.S)



def _token_name(tok: str) -> str:
    """A schema token as a name: a quoted string unescaped (as written if it does not
    unescape), anything else as it is."""
    from .strings import EscapeError, unescape

    if tok.startswith('"'):
        try:
            return str(unescape(tok))
        except EscapeError:
            return tok[1:-1]
    return tok

def schema_action_groups(text: str) -> dict[str, list[str]]:
    """`action "t" in [Action::"g", …]` memberships of a Cedar schema (human-readable
    form): group → its direct members. Everything else in the schema is skipped."""
    toks = [t for t in _TOKEN.findall(text) if t.strip() and not t.startswith("//")]

    groups: dict[str, list[str]] = {}
    i, depth = 0, 0
    while i < len(toks):
        start = i
        i, depth = _step(toks, i, depth, groups)
        if i == start:  # a stray token: every step moves on
            i += 1
    return groups


def _step(toks: list[str], i: int, depth: int, groups: dict[str, list[str]]) -> tuple[int, int]:
    """One declaration (or namespace bracket) of a schema from token `i`: the next token
    index and the namespace depth."""
    t = toks[i]
    if t == "@":  # an annotation: @name("value")
        i += 2
        if i < len(toks) and toks[i] == "(":
            while i < len(toks) and toks[i] != ")":
                i += 1
        return i + 1, depth
    if t == "namespace":
        while i < len(toks) and toks[i] != "{":
            i += 1
        return i + 1, depth + 1
    if t == "}" and depth:
        return i + 1, depth - 1
    if t == "action":
        i += 1
        names = []
        while i < len(toks) and toks[i] not in ("in", "appliesTo", "attributes", ";", "{"):
            if toks[i] != ",":
                names.append(_token_name(toks[i]))
            i += 1
        parents = []
        if i < len(toks) and toks[i] == "in":
            i += 1
            bracket = i < len(toks) and toks[i] == "["
            if bracket:
                i += 1
            ref: list[str] = []
            while i < len(toks):
                tok = toks[i]
                if tok in (",", "]") or (not bracket and tok in ("appliesTo", "attributes", ";", "{")):
                    if ref:
                        parents.append(_token_name(ref[-1]))
                        ref = []
                    if tok == "]":
                        i += 1
                    if tok != ",":
                        break
                elif tok != "::":
                    ref.append(tok)
                i += 1
        for n in names:
            for p in parents:
                groups.setdefault(p, [])
                if n not in groups[p]:
                    groups[p].append(n)
    # skip to the end of this declaration
    level = 0
    while i < len(toks):
        if toks[i] in ("{", "[", "("):
            level += 1
        elif toks[i] in ("}", "]", ")"):
            if level == 0:
                if toks[i] != "}":  # stray: step over it
                    i += 1
                break  # a `}` at level 0 closes the namespace (the outer loop takes it)
            level -= 1
        elif toks[i] == ";" and level == 0:
            i += 1
            break
        i += 1
    return i, depth


# ---- entity types from a schema ---------------------------------------------------------------


@dataclass(frozen=True)
class SchemaEntity:
    """An `entity` declaration of a Cedar schema: its parent types and its attributes,
    each (name, Cedar type text with spaces removed, required)."""

    parents: tuple[str, ...] = ()
    attrs: tuple[tuple[str, str, bool], ...] = ()


def schema_entity_types(text: str) -> dict[str, SchemaEntity]:
    """The `entity` declarations of a Cedar schema (human-readable form), by fully
    qualified name (`MyMcpServer::User`). Parents are qualified in the declaration's
    namespace; attribute types are kept as written (`String`, `Set<Long>`, `decimal`,
    `{…}`). Everything else in the schema is skipped; junk never raises."""
    return _schema_entities(text)[0]


def schema_principal_types(text: str) -> set[str]:
    """The types the schema's actions name as `principal: [...]`, fully qualified."""
    return _schema_entities(text)[1]


def _schema_entities(text: str) -> tuple[dict[str, SchemaEntity], set[str]]:
    toks = [t for t in _TOKEN.findall(text) if t.strip() and not t.startswith("//")]
    out: dict[str, SchemaEntity] = {}
    principals: set[str] = set()
    stack: list[tuple[str, int]] = []  # (namespace, brace depth of its body)
    depth = 0

    def qualify(n: str) -> str:
        ns = stack[-1][0] if stack else ""
        return f"{ns}::{n}" if ns and "::" not in n else n

    def path(i: int) -> tuple[str, int]:  # A::B::C from token i
        parts = [toks[i]]
        i += 1
        while i + 1 < len(toks) and toks[i] == "::":
            parts.append(toks[i + 1])
            i += 2
        return "::".join(parts), i

    def record(i: int) -> tuple[list[tuple[str, str, bool]], int]:  # toks[i] == "{"
        attrs: list[tuple[str, str, bool]] = []
        i += 1
        while i < len(toks) and toks[i] != "}":
            if toks[i] == "@":  # an annotation on the attribute
                i += 2
                if i < len(toks) and toks[i] == "(":
                    while i < len(toks) and toks[i] != ")":
                        i += 1
                    i += 1
                continue
            if toks[i] == ",":
                i += 1
                continue
            attr = _token_name(toks[i])
            i += 1
            required = True
            if i < len(toks) and toks[i] == "?":
                required = False
                i += 1
            if i < len(toks) and toks[i] == ":":
                i += 1
            level, parts = 0, []
            while i < len(toks) and not (level == 0 and toks[i] in (",", "}")):
                if toks[i] in ("{", "<"):
                    level += 1
                elif toks[i] in ("}", ">"):
                    level -= 1
                parts.append(toks[i])
                i += 1
            attrs.append((attr, "".join(parts), required))
        return attrs, i + 1

    i = 0
    while i < len(toks):
        t = toks[i]
        if t == "namespace":
            ns, i = path(i + 1) if i + 1 < len(toks) else ("", i + 1)
            if i < len(toks) and toks[i] == "{":
                depth += 1
                stack.append((ns, depth))
                i += 1
            continue
        if t == "{":
            depth += 1
        elif t == "}":
            if stack and stack[-1][1] == depth:
                stack.pop()
            depth = max(0, depth - 1)
        elif t == "principal" and i + 2 < len(toks) and toks[i + 1] == ":" and toks[i + 2] == "[" and depth > len(stack):
            i += 3  # `principal: [A, B]` in an action's appliesTo
            while i < len(toks) and toks[i] not in ("]", ";", "}"):
                if toks[i] == ",":
                    i += 1
                    continue
                p, i = path(i)
                principals.add(qualify(p))
            continue
        elif t == "entity" and (i == 0 or toks[i - 1] in (";", "{", "}", ")")):
            i += 1
            names: list[str] = []
            while i < len(toks) and toks[i] not in ("in", "=", "{", ";", "tags", "enum"):
                if toks[i] != ",":
                    names.append(toks[i])
                i += 1
            parents: list[str] = []
            if i < len(toks) and toks[i] == "in":
                i += 1
                bracket = i < len(toks) and toks[i] == "["
                i += bracket
                while i < len(toks) and toks[i] not in ("]", "=", "{", ";", "tags"):
                    if toks[i] == ",":
                        i += 1
                        continue
                    p, i = path(i)
                    parents.append(qualify(p))
                    if not bracket:
                        break
                if i < len(toks) and toks[i] == "]":
                    i += 1
            if i < len(toks) and toks[i] == "=":
                i += 1
            attrs: list[tuple[str, str, bool]] = []
            if i < len(toks) and toks[i] == "{":
                attrs, i = record(i)
            for n in names:
                out[qualify(n)] = SchemaEntity(tuple(parents), tuple(attrs))
            continue
        i += 1
    return out, principals


_SCALARS = {"String": "String", "Long": "Long", "Bool": "Bool", "Boolean": "Bool"}


def declared_attr_type(cedar: str) -> str | None:
    """A schema attribute type as an `entity User` type (`String`, `Long`, `Bool`,
    `Set<…>` of those), or None when mcpp's declaration has no such type."""
    t = cedar.removeprefix("__cedar::")
    if t in _SCALARS:
        return _SCALARS[t]
    if t.startswith("Set<") and t.endswith(">"):
        inner = t[4:-1].removeprefix("__cedar::")
        return f"Set<{_SCALARS[inner]}>" if inner in _SCALARS else None
    return None


# ---- the import ------------------------------------------------------------------------------

_NOT_CEDAR = {ir.Default: "default", ir.Hide: "hide", ir.Group: "group", ir.Limit: "limit"}


def read_cedar(doc: ir.Document, diags: list[Diagnostic]) -> tuple[ir.Document, CedarSource, list[Diagnostic]]:
    """The parsed Cedar file as an mcpp document with mcpp's types and Cedar's meaning,
    what the import knows about it, and its diagnostics (the parser's, with notes for
    Cedar users, then the import's)."""
    r = _Reader(doc.filename)
    r.diags.extend(_explain_parse(d) for d in diags)
    for s in doc.statements:
        kw = _NOT_CEDAR.get(type(s))
        if kw is not None:
            r.error(f"`{kw}` is an mcpp declaration, not Cedar", s.span,
                    notes=("a .cedar file holds Cedar policies (and mcpp `assert`s, which Cedar ignores on export); "
                           "write mcpp declarations in a .mcpp file",))
    mapping, names = _type_mapping(doc, r)
    schema_file, schema = _sibling_schema(doc.filename, r)
    groups = schema_action_groups(schema) if schema is not None else {}
    decl, unreadable = None, {}
    if schema is not None:
        uses = _resolve_literal_in(_role_uses(doc))
        named = [t for role, t, _ in uses if role == "principal"]
        group_named = any(role == "principal-in" and mapping.get(t) == "Group" for role, t, _ in uses)
        read = {a for s in doc.statements if isinstance(s, (ir.Policy, ir.Assert))
                for c in s.clauses for n in ir.walk(c.expr) for a in [_principal_attr(n)] if a is not None}
        mapping, names, decl, unreadable = _users_from_schema(schema, named[0] if named else None, group_named, read,
                                                              mapping, names)
    rw = _Rewrite(mapping, r, unreadable)
    out: list[ir.Statement] = []
    for s in doc.statements:
        if isinstance(s, (ir.Policy, ir.Assert)):
            out.append(dataclasses.replace(s, scope=rw.scope(s.scope), clauses=tuple(rw.clause(c) for c in s.clauses)))
    group_stmts = [ir.Group(ir.EntityRef("Action", g), tuple(ir.EntityRef("Action", m) for m in members))
                   for g, members in sorted(groups.items())]
    _warn_unknown_groups(out, groups, r)
    head: tuple[ir.Statement, ...] = (decl,) if decl is not None else ()
    new = ir.Document(head + tuple(group_stmts) + tuple(out), doc.comments, doc.source, doc.filename)
    return new, CedarSource(names, frozenset(rw.contains_spans), schema_file, decl is not None), r.diags


def _users_from_schema(schema: str, named: str | None, group_named: bool, read: set[str], mapping: dict[str, str],
                       names: CedarNames):
    """When the schema next to the file gives the principal type attributes (the
    cedar-for-agents generator's `User = { id, username }`, a schema typing claims) and
    the file reads one of them other than `label`, the principal is mcpp's user, declared
    as `entity User` from the schema (a file that reads none stays with grants, which the
    analyzer models fully and which decide alike): the attributes
    whose types mcpp's declaration has (String, Long, Bool, sets of them), in groups
    when the schema makes it a member of the group type. Which type is the principal:
    the one the file names, else the schema's actions' one principal type. Returns the
    mapping, the names, the declaration (None: the principal stays a grant) and the
    attributes mcpp cannot read (name → Cedar type)."""
    entities = schema_entity_types(schema)
    principal = named
    if principal is None:
        declared = sorted(schema_principal_types(schema))
        principal = declared[0] if len(declared) == 1 else None
    ent = entities.get(principal) if principal is not None else None
    if ent is None or not (read & {a[0] for a in ent.attrs if a[0] != "label"}):
        return mapping, names, None, {}
    attrs: list[ir.AttrDecl] = []
    unreadable: dict[str, str] = {}
    for attr, cedar_type, required in ent.attrs:
        t = declared_attr_type(cedar_type)
        if t is None:
            unreadable[attr] = cedar_type
        else:
            attrs.append(ir.AttrDecl(attr, t, not required))
    group = names.group
    if ent.parents and group not in ent.parents and len(ent.parents) == 1 and not group_named:
        group = ent.parents[0]  # the file uses no group type: the schema's
    mapping = {cedar: mcpp for cedar, mcpp in mapping.items() if mcpp not in ("Grant", "Group")}
    mapping[principal] = "User"  # type: ignore[index]
    if group is not None:
        mapping[group] = "Group"
    ns = names.namespace
    grant = f"{ns}::Grant" if ns else "Grant"
    if grant not in mapping:
        mapping[grant] = "Grant"
    names = dataclasses.replace(names, principal=grant, group=group, user=principal)
    parents = ("Group",) if group is not None and group in ent.parents else ()
    return mapping, names, ir.EntityDecl("User", parents, tuple(attrs)), unreadable


def without_follow_ons(reported: list[Diagnostic], more: list[Diagnostic]) -> list[Diagnostic]:
    """Validation errors that only restate an import or parse error at the same place (the
    parser stands `false` in for a construct it refused, the import's second principal
    type is also "not a Grant"): reported once is enough."""
    spans = [d.span for d in reported if d.severity == "error" and d.span.line]

    def inside(s: Span) -> bool:
        return any(o.start <= s.start and s.end <= o.end for o in spans)

    return [d for d in more if not (d.severity == "error" and inside(d.span))]


def _sibling_schema(filename: str, r: _Reader) -> tuple[str | None, str | None]:
    """The schema next to the file (its path and text), if there is one."""
    path = Path(filename).with_suffix(".cedarschema")
    if filename.startswith("<") or not path.is_file():
        return None, None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        r.warning(f"cannot read the schema {path} for action groups and the principal's attributes: {e}", NOSPAN)
        return None, None
    return str(path), text


def _warn_unknown_groups(stmts: list[ir.Statement], groups: dict[str, list[str]], r: _Reader) -> None:
    warned: set[str] = set()
    for s in stmts:
        scope = s.scope  # type: ignore[union-attr]
        if scope.action.op == "in":
            e = scope.action.entities[0]
            if e.id not in groups and e.id not in warned:
                warned.add(e.id)
                r.warning(
                    f"`action in Action::\"{e.id}\"` is read as that one action: no schema says which tools are in it",
                    e.span,
                    notes=("put the Cedar schema next to this file (same name, .cedarschema) so its action groups are known",),
                )


def _explain_parse(d: Diagnostic) -> Diagnostic:
    """The parser's diagnostics, with notes for what Cedar users write that mcpp does not read."""
    m = d.message
    if "getTag()" in m or "hasTag()" in m:
        return dataclasses.replace(d, notes=(
            "AgentCore puts JWT claims in principal tags; mcpp's principal (a grant) has a label and groups, "
            "so a claim check reads as `principal in Group::\"…\"` once the gateway puts grants in groups",))
    if "decimal()" in m or "lessThan()" in m or "greaterThan()" in m or "lessThanOrEqual()" in m \
            or "greaterThanOrEqual()" in m:
        return dataclasses.replace(d, notes=(
            "mcpp compares JSON numbers directly (`context.input.amount < 500.5`), so decimal arguments are not read; "
            "`mcpp compile --target cedar` writes decimals back from such comparisons",))
    if "ip()" in m or "datetime()" in m or "duration()" in m:
        return dataclasses.replace(d, notes=("mcpp has no IP address or time values",))
    if m.startswith("unexpected character '?'") or m.startswith("unexpected '?'"):
        return dataclasses.replace(d, notes=("Cedar templates (?principal, ?resource) are not read: link them first",))
    return d
