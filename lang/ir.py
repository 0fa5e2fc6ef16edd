"""The typed IR of an mcpp policy file: one tree that the evaluator, the compiler, the
formatter, the analyzer and the language server all consume.

Nodes are slotted dataclasses, hashable and never mutated after construction (not
`frozen=True` only because frozen construction costs 3x, and the parser builds one
node per grammar rule). Spans never take part in equality, so `parse(fmt(p)) ==
parse(p)` compares meaning and layout-independent structure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from .diagnostics import NOSPAN, Span


def _span() -> Span:
    return field(default=NOSPAN, compare=False, repr=False)


# ---- expressions -----------------------------------------------------------


@dataclass(slots=True, unsafe_hash=True)
class EntityRef:
    """`Type::"id"` — Grant, Group, Action (a tool or an action group), Server."""

    type: str
    id: str
    span: Span = _span()

    def __str__(self) -> str:
        from .strings import quote

        return f"{self.type}::{quote(self.id)}"


@dataclass(slots=True)
class Lit:
    """A literal: str, int, float (JSON numbers with fractions), bool or None (null)."""

    value: object
    span: Span = _span()

    def __eq__(self, other: object) -> bool:  # True != 1 and 1 != 1.0 structurally
        return isinstance(other, Lit) and type(self.value) is type(other.value) and self.value == other.value

    def __hash__(self) -> int:
        return hash((type(self.value).__name__, self.value))


@dataclass(slots=True, unsafe_hash=True)
class Var:
    name: str  # principal | action | resource | context
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class EntityLit:
    entity: EntityRef
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class GetAttr:
    obj: "Expr"
    attr: str
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class Has:
    obj: "Expr"
    path: tuple[str, ...]
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class Like:
    """Cedar `like`: `pattern` is a tuple of literal chunks separated by `*` wildcards."""

    obj: "Expr"
    pattern: tuple[str, ...]
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class Matches:
    """mcpp extension: `s.matches("re")`, RE2 syntax, unanchored search (Go's MatchString)."""

    obj: "Expr"
    regex: str
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class Compare:
    op: str  # == != < <= > >=
    left: "Expr"
    right: "Expr"
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class In:
    """Entity hierarchy membership (Cedar) or, extension, value membership in a set."""

    left: "Expr"
    right: "Expr"
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class Is:
    obj: "Expr"
    type: str
    in_: "Expr | None" = None
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class And:
    left: "Expr"
    right: "Expr"
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class Or:
    left: "Expr"
    right: "Expr"
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class Not:
    expr: "Expr"
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class Neg:
    expr: "Expr"
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class If:
    cond: "Expr"
    then: "Expr"
    else_: "Expr"
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class SetLit:
    items: tuple["Expr", ...]
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class RecordLit:
    items: tuple[tuple[str, "Expr"], ...]
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class Call:
    """Set methods: contains, containsAll, containsAny, isEmpty (contains also on strings)."""

    obj: "Expr"
    method: str
    args: tuple["Expr", ...]
    span: Span = _span()


Expr = Union[
    Lit, Var, EntityLit, GetAttr, Has, Like, Matches, Compare, In, Is, And, Or, Not, Neg, If,
    SetLit, RecordLit, Call,
]

SET_METHODS = {"contains": 1, "containsAll": 1, "containsAny": 1, "isEmpty": 0}


# ---- statements ------------------------------------------------------------


@dataclass(slots=True, unsafe_hash=True)
class Annotation:
    key: str
    value: str
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class EntityScope:
    """Principal or resource scope: `any`, `== E`, `in E`, `is T`, `is T in E`."""

    op: str = "any"
    entity: EntityRef | None = None
    type: str | None = None
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class ActionScope:
    """`any`, `== Action::"t"`, `in Action::"group"`, or `in [ ... ]` (op `in_list`)."""

    op: str = "any"
    entities: tuple[EntityRef, ...] = ()
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class Scope:
    principal: EntityScope = EntityScope()
    action: ActionScope = ActionScope()
    resource: EntityScope = EntityScope()
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class Clause:
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
class Policy:
    effect: str  # permit | forbid
    scope: Scope
    clauses: tuple[Clause, ...] = ()
    annotations: tuple[Annotation, ...] = ()
    span: Span = _span()

    @property
    def reason(self) -> str | None:
        return annotation(self.annotations, "reason")


@dataclass(slots=True, unsafe_hash=True)
class Default:
    decision: str  # allow | deny
    annotations: tuple[Annotation, ...] = ()
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class Hide:
    tools: tuple[EntityRef, ...]
    annotations: tuple[Annotation, ...] = ()
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class Group:
    entity: EntityRef
    members: tuple[EntityRef, ...]
    annotations: tuple[Annotation, ...] = ()
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class Limit:
    """A counter: at most `max` units per calendar `window`, per grant or per policy."""

    counter: str
    scope: Scope
    max: int | float | None
    window: str | None  # minute | hour | day
    scope_kind: str = "grant"  # grant | policy
    increment: Expr | None = None
    clauses: tuple[Clause, ...] = ()
    annotations: tuple[Annotation, ...] = ()
    option_order: tuple[str, ...] = field(default=(), compare=False, repr=False)
    span: Span = _span()

    @property
    def reason(self) -> str | None:
        return annotation(self.annotations, "reason")


@dataclass(slots=True, unsafe_hash=True)
class Assert:
    """A property the analyzer proves: kind allow | deny | hidden | visible."""

    kind: str
    scope: Scope
    clauses: tuple[Clause, ...] = ()
    annotations: tuple[Annotation, ...] = ()
    span: Span = _span()


Statement = Union[Policy, Default, Hide, Group, Limit, Assert]


@dataclass(slots=True, unsafe_hash=True)
class Comment:
    text: str  # including the leading //
    span: Span = _span()


@dataclass(slots=True, unsafe_hash=True)
class Document:
    """A parsed file: statements in source order, and its comments for the formatter."""

    statements: tuple[Statement, ...]
    comments: tuple[Comment, ...] = field(default=(), compare=False)
    source: str = field(default="", compare=False, repr=False)
    filename: str = field(default="<input>", compare=False)
