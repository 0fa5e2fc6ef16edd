"""The typed IR of an mcpp policy file: one tree that the evaluator, the compiler, the
formatter, the analyzer and the language server all consume.

Nodes are slotted dataclasses, hashable and never mutated after construction (not
`frozen=True` only because frozen construction costs 3x, and the parser builds one
node per grammar rule). Spans never take part in equality, so `parse(fmt(p)) ==
parse(p)` compares meaning and layout-independent structure.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar, Union

from .diagnostics import NOSPAN, Span

N = TypeVar("N", bound="Node")


def _span() -> Span:
    return field(default=NOSPAN, compare=False, repr=False)


class Node:
    """Every IR node. `children()` and `map_children()` are the one generic way to visit
    and rebuild the tree: walkers (validation, folding, the language server's lookups and
    span moves) use them instead of naming each node type's fields."""

    __slots__ = ()

    def children(self) -> tuple["Node", ...]:
        out: list[Node] = []
        for name, kind in _child_fields(type(self)):
            v = getattr(self, name)
            if kind == "one":
                if v is not None:
                    out.append(v)
            elif kind == "many":
                out.extend(v)
            else:  # record entries: (key, expr)
                out.extend(x for _, x in v)
        return tuple(out)

    def map_children(self: N, fn: Callable[[Any], "Node"]) -> N:
        """A copy with `fn` applied to every child (span kept); `self` if none changed.
        Nodes are never mutated: this is how a pass builds a changed tree."""
        changes = {}
        nv: object
        for name, kind in _child_fields(type(self)):
            v = getattr(self, name)
            if kind == "one":
                if v is None:
                    continue
                nv = fn(v)
                changed = nv is not v
            elif kind == "many":
                nv = tuple(fn(x) for x in v)
                changed = any(a is not b for a, b in zip(nv, v))
            else:
                nv = tuple((k, fn(x)) for k, x in v)
                changed = any(a[1] is not b[1] for a, b in zip(nv, v))
            if changed:
                changes[name] = nv
        return dataclasses.replace(self, **changes) if changes else self  # type: ignore[type-var]


_CHILD_FIELDS: dict[type, tuple[tuple[str, str], ...]] = {}


def _child_fields(cls: type) -> tuple[tuple[str, str], ...]:
    """The fields of a node class that hold nodes, read once from its annotations:
    ("one", a node or None), ("many", a tuple of nodes) or ("pairs", a tuple of
    (key, node))."""
    fields = _CHILD_FIELDS.get(cls)
    if fields is None:
        out = []
        for f in dataclasses.fields(cls):
            t = str(f.type).replace('"', "").replace("'", "")
            if f.name in ("span", "source"):
                continue
            if t.startswith("tuple[tuple["):
                out.append((f.name, "pairs"))
            elif t.startswith("tuple["):
                inner = t[len("tuple["):].split(",")[0].strip()
                if inner in _NODE_NAMES:
                    out.append((f.name, "many"))
            elif t.split("|")[0].strip() in _NODE_NAMES:
                out.append((f.name, "one"))
        fields = _CHILD_FIELDS[cls] = tuple(out)
    return fields


def walk(node: Node):
    """Every node under `node` (itself included), pre-order."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.children()))


# ---- expressions -----------------------------------------------------------


@dataclass(slots=True, unsafe_hash=True)
class EntityRef(Node):
    """`Type::"id"` — Grant, User, Group, Action (a tool or an action group), Server."""

    type: str
    id: str
    span: Span = _span()

    def __str__(self) -> str:
        from .strings import quote

        return f"{self.type}::{quote(self.id)}"


@dataclass(slots=True)
class Lit(Node):
    """A literal: str, int, float (JSON numbers with fractions), bool or None (null)."""

    value: object
    span: Span = _span()

    def __eq__(self, other: object) -> bool:  # True != 1 and 1 != 1.0 structurally
        return isinstance(other, Lit) and type(self.value) is type(other.value) and self.value == other.value

    def __hash__(self) -> int:
        return hash((type(self.value).__name__, self.value))


@dataclass(slots=True, unsafe_hash=True)
class Var(Node):
    name: str  # principal | action | resource | context
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class EntityLit(Node):
    entity: EntityRef
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class GetAttr(Node):
    obj: "Expr"
    attr: str
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class Has(Node):
    obj: "Expr"
    path: tuple[str, ...]
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class Like(Node):
    """Cedar `like`: `pattern` is a tuple of literal chunks separated by `*` wildcards."""

    obj: "Expr"
    pattern: tuple[str, ...]
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class Matches(Node):
    """mcpp extension: `s.matches("re")`, RE2 syntax, unanchored search (Go's MatchString)."""

    obj: "Expr"
    regex: str
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class Compare(Node):
    op: str  # == != < <= > >=
    left: "Expr"
    right: "Expr"
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class In(Node):
    """Entity hierarchy membership (Cedar) or, extension, value membership in a set."""

    left: "Expr"
    right: "Expr"
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class Is(Node):
    obj: "Expr"
    type: str
    in_: "Expr | None" = None
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class And(Node):
    left: "Expr"
    right: "Expr"
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class Or(Node):
    left: "Expr"
    right: "Expr"
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class Not(Node):
    expr: "Expr"
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class Neg(Node):
    expr: "Expr"
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class If(Node):
    cond: "Expr"
    then: "Expr"
    else_: "Expr"
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class SetLit(Node):
    items: tuple["Expr", ...]
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class RecordLit(Node):
    items: tuple[tuple[str, "Expr"], ...]
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class Call(Node):
    """Set methods: contains, containsAll, containsAny, isEmpty (contains also on strings)."""

    obj: "Expr"
    method: str
    args: tuple["Expr", ...]
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class Error(Node):
    """An expression whose evaluation always errors. The parser never builds it: constant
    folding does (the compiler, for a sub-expression whose value is an error), so that
    "always errors" is a node every backend understands rather than a sentinel value."""

    span: Span = _span()


Expr = Union[
    Lit, Var, EntityLit, GetAttr, Has, Like, Matches, Compare, In, Is, And, Or, Not, Neg, If,
    SetLit, RecordLit, Call, Error,
]

SET_METHODS = {"contains": 1, "containsAll": 1, "containsAny": 1, "isEmpty": 0}


# ---- statements ------------------------------------------------------------


@dataclass(slots=True, unsafe_hash=True)
class Annotation(Node):
    key: str
    value: str
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class EntityScope(Node):
    """Principal or resource scope: `any`, `== E`, `in E`, `is T`, `is T in E`."""

    op: str = "any"
    entity: EntityRef | None = None
    type: str | None = None
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class ActionScope(Node):
    """`any`, `== Action::"t"`, `in Action::"group"`, or `in [ ... ]` (op `in_list`)."""

    op: str = "any"
    entities: tuple[EntityRef, ...] = ()
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class Scope(Node):
    principal: EntityScope = EntityScope()
    action: ActionScope = ActionScope()
    resource: EntityScope = EntityScope()
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class Clause(Node):
    kind: str  # when | unless
    expr: Expr
    annotations: tuple[Annotation, ...] = ()
    span: Span = _span()

    @property
    def reason(self) -> str | None:
        return annotation(self.annotations, "reason")


def annotation(annotations: tuple[Annotation, ...], key: str) -> str | None:
    for a in annotations:
        if a.key == key:
            return a.value
    return None


@dataclass(slots=True, unsafe_hash=True)
class Policy(Node):
    effect: str  # permit | forbid
    scope: Scope
    clauses: tuple[Clause, ...] = ()
    annotations: tuple[Annotation, ...] = ()
    span: Span = _span()

    @property
    def reason(self) -> str | None:
        return annotation(self.annotations, "reason")


@dataclass(slots=True, unsafe_hash=True)
class Default(Node):
    decision: str  # allow | deny
    annotations: tuple[Annotation, ...] = ()
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class Hide(Node):
    tools: tuple[EntityRef, ...]
    annotations: tuple[Annotation, ...] = ()
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class Group(Node):
    entity: EntityRef
    members: tuple[EntityRef, ...]
    annotations: tuple[Annotation, ...] = ()
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class Limit(Node):
    """A counter: at most `max` units per calendar `window`, per grant, per principal
    (a user across all their sessions, or a grant) or per policy."""

    counter: str
    scope: Scope
    max: int | float | None
    window: str | None  # minute | hour | day
    scope_kind: str = "grant"  # grant | principal | policy
    increment: Expr | None = None
    clauses: tuple[Clause, ...] = ()
    annotations: tuple[Annotation, ...] = ()
    option_order: tuple[str, ...] = field(default=(), compare=False, repr=False)
    span: Span = _span()

    @property
    def reason(self) -> str | None:
        return annotation(self.annotations, "reason")


@dataclass(slots=True, unsafe_hash=True)
class Assert(Node):
    """A property the analyzer proves: kind allow | deny | hidden | visible | approval."""

    kind: str
    scope: Scope
    clauses: tuple[Clause, ...] = ()
    annotations: tuple[Annotation, ...] = ()
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class AttrDecl(Node):
    """One declared attribute: `email: String`, `refund_cap?: Long` (`optional`: `?`).
    `type` is one of `lang.identity.ATTR_TYPES`, written as in the source."""

    name: str
    type: str
    optional: bool = False
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class EntityDecl(Node):
    """`entity User in [Group] { email: String, refund_cap?: Long };` — the parents and
    attributes of an entity type, in Cedar's schema syntax. Only `User` (the caller
    authenticated by an OAuth token) may be declared; validation says so."""

    name: str
    parents: tuple[str, ...] = ()
    attrs: tuple[AttrDecl, ...] = ()
    annotations: tuple[Annotation, ...] = ()
    name_span: Span = field(default=NOSPAN, compare=False, repr=False)
    span: Span = _span()

    def attr(self, name: str) -> AttrDecl | None:
        for a in self.attrs:
            if a.name == name:
                return a
        return None


Statement = Union[Policy, Default, Hide, Group, Limit, Assert, EntityDecl]


@dataclass(slots=True, unsafe_hash=True)
class Comment(Node):
    text: str  # including the leading //
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class Document(Node):
    """A parsed file: statements in source order, and its comments for the formatter."""

    statements: tuple[Statement, ...]
    comments: tuple[Comment, ...] = field(default=(), compare=False)
    source: str = field(default="", compare=False, repr=False)
    filename: str = field(default="<input>", compare=False)


# the names an annotation may use for a node-valued field (`_child_fields` reads them)
_NODE_NAMES = frozenset(
    [name for name, v in list(globals().items()) if isinstance(v, type) and issubclass(v, Node)]
    + ["Expr", "Statement"]
)
