"""A small Cedar expression tree and its printer, for the Cedar export.

The export builds Cedar text that mcpp's IR has no node for (extension calls such as
`decimal("1.5")`, guards it adds) and simplifies as it goes (constant folding,
flattened `&&`/`||` chains without repeats), so it uses its own tree rather than
printing IR with the mcpp formatter. Nodes are frozen dataclasses: equal trees are
equal, which the simplifier and the per-tool clause merging rely on.
"""

from __future__ import annotations

from dataclasses import dataclass

from .cedar_model import IDENT, RESERVED
from .strings import quote, quote_like

P_IF, P_OR, P_AND, P_REL, P_UNARY, P_MEMBER = 0, 1, 2, 3, 4, 5


class C:
    __slots__ = ()


@dataclass(frozen=True)
class Raw(C):
    """Text printed as is: literals, variables, entity references, `decimal("…")`."""

    text: str


TRUE, FALSE = Raw("true"), Raw("false")


@dataclass(frozen=True)
class Attr(C):
    obj: C
    name: str


@dataclass(frozen=True)
class HasC(C):
    obj: C
    name: str


@dataclass(frozen=True)
class Method(C):
    obj: C
    name: str
    args: tuple[C, ...]


@dataclass(frozen=True)
class Bin(C):
    """`==` `!=` `<` `<=` `>` `>=` `in`."""

    op: str
    left: C
    right: C


@dataclass(frozen=True)
class LikeC(C):
    obj: C
    chunks: tuple[str, ...]


@dataclass(frozen=True)
class IsC(C):
    obj: C
    type: str
    in_: C | None = None


@dataclass(frozen=True)
class NotC(C):
    expr: C


@dataclass(frozen=True)
class AndC(C):
    items: tuple[C, ...]


@dataclass(frozen=True)
class OrC(C):
    items: tuple[C, ...]


@dataclass(frozen=True)
class IfC(C):
    cond: C
    then: C
    else_: C


@dataclass(frozen=True)
class SetC(C):
    items: tuple[C, ...]


@dataclass(frozen=True)
class RecC(C):
    items: tuple[tuple[str, C], ...]


# ---- building, with simplification ------------------------------------------------------


def and_(*xs: C) -> C:
    out: list[C] = []
    for x in xs:
        parts = x.items if isinstance(x, AndC) else (x,)
        for p in parts:
            if p == FALSE:
                return FALSE
            if p != TRUE and p not in out:
                out.append(p)
    if not out:
        return TRUE
    return out[0] if len(out) == 1 else AndC(tuple(out))


def or_(*xs: C) -> C:
    out: list[C] = []
    for x in xs:
        parts = x.items if isinstance(x, OrC) else (x,)
        for p in parts:
            if p == TRUE:
                return TRUE
            if p != FALSE and p not in out:
                out.append(p)
    if not out:
        return FALSE
    return out[0] if len(out) == 1 else OrC(tuple(out))


_NEGATED = {"==": "!=", "!=": "==", "<": ">=", ">=": "<", "<=": ">", ">": "<="}


def not_(x: C) -> C:
    """`!x` for an error-free boolean `x` (so `!(a < b)` may become `a >= b`)."""
    if x == TRUE:
        return FALSE
    if x == FALSE:
        return TRUE
    if isinstance(x, NotC):
        return x.expr
    if isinstance(x, Bin) and x.op in _NEGATED:
        return Bin(_NEGATED[x.op], x.left, x.right)
    return NotC(x)


# ---- printing ------------------------------------------------------------------------------


def attr_access(obj: str, name: str) -> str:
    if IDENT.match(name) and name not in RESERVED:
        return f"{obj}.{name}"
    return f"{obj}[{quote(name)}]"


def has_key(name: str) -> str:
    return name if IDENT.match(name) and name not in RESERVED else quote(name)


def text(e: C, prec: int = P_IF) -> str:
    s, p = _text(e)
    return f"({s})" if p < prec else s


def _text(e: C) -> tuple[str, int]:
    if isinstance(e, Raw):
        return e.text, (P_UNARY if e.text.startswith("-") else P_MEMBER)
    if isinstance(e, Attr):
        return attr_access(text(e.obj, P_MEMBER), e.name), P_MEMBER
    if isinstance(e, Method):
        return f"{text(e.obj, P_MEMBER)}.{e.name}({', '.join(text(a) for a in e.args)})", P_MEMBER
    if isinstance(e, HasC):
        return f"{text(e.obj, P_UNARY)} has {has_key(e.name)}", P_REL
    if isinstance(e, Bin):
        return f"{text(e.left, P_UNARY)} {e.op} {text(e.right, P_UNARY)}", P_REL
    if isinstance(e, LikeC):
        return f"{text(e.obj, P_UNARY)} like {quote_like(e.chunks)}", P_REL
    if isinstance(e, IsC):
        s = f"{text(e.obj, P_UNARY)} is {e.type}"
        if e.in_ is not None:
            s += f" in {text(e.in_, P_UNARY)}"
        return s, P_REL
    if isinstance(e, NotC):
        return "!" + text(e.expr, P_UNARY), P_UNARY
    if isinstance(e, AndC):
        return " && ".join(text(i, P_REL) for i in e.items), P_AND
    if isinstance(e, OrC):
        return " || ".join(text(i, P_AND) for i in e.items), P_OR
    if isinstance(e, IfC):
        return f"if {text(e.cond)} then {text(e.then)} else {text(e.else_)}", P_IF
    if isinstance(e, SetC):
        return "[" + ", ".join(text(i) for i in e.items) + "]", P_MEMBER
    if isinstance(e, RecC):
        return "{" + ", ".join(f"{quote(k)}: {text(v)}" for k, v in e.items) + "}", P_MEMBER
    raise TypeError(type(e))  # pragma: no cover


def condition_lines(e: C, width: int = 76) -> list[str]:
    """A clause body: one line when it fits, else one operand of the top `||` (or `&&`)
    chain a line, continuation lines indented."""
    one = text(e)
    if len(one) <= width or not isinstance(e, (AndC, OrC)):
        return [one]
    op, prec = ("||", P_AND) if isinstance(e, OrC) else ("&&", P_REL)
    parts = [text(i, prec) for i in e.items]
    return [parts[0]] + [f"{op} {p}" for p in parts[1:]]
