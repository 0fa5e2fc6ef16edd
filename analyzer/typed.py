"""Typed calls: what a tool's `inputSchema` guarantees about every call the gateway forwards.

The gateway refuses a `tools/call` whose arguments do not conform to the tool's declared
schema before the policy decides (docs/gateway.md, "Typed calls"). With a catalog, the
analyzer may therefore assume conformance: a proof then covers every call that can reach
the policy, and a bypass lint reports only the types the schema still allows.

Soundness: the constraints added here must hold for *every* value that conforms, so a
proof (UNSAT) under them stays a proof about every forwarded call. Everything uncertain
widens, exactly as `catalog.schema` does for validation: `anyOf`/`oneOf` become the union
of their branches, an unresolvable `$ref` is "anything", `items`, `uniqueItems`,
`multipleOf`, `format` and `patternProperties` add nothing, and a `pattern` the regex
translator does not model adds nothing. A counterexample is still replayed through the
engine, and checked against the schema by the same validator the gateway runs, before it
is reported.

Defaults: the gateway fills a tool's declared defaults into the call after the schema
check and before the decision (catalog/defaults.py), so a key it fills is present in every
call the policy decides — the constraints say so (`View.child(...).required`), over the
plan the gateway uses (made from the schema as declared) — and a counterexample is the
filled call (`fill`, applied by `Session.check` before it is checked and replayed). A key
whose default is not filled (a combinator could apply another) stays possibly absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import z3

from mcpp.catalog.defaults import Caveat, caveats, fill_level, plan
from mcpp.catalog.schema import DIALECT_2019_09, DIALECT_2020_12, DRAFTS_6_7, View, dialect, nested_dialect, root_view
from mcpp.lang import ir
from mcpp.lang.atoms import has_path, input_path
from mcpp.lang.diagnostics import Span
from mcpp.lang.ir import walk
from mcpp.lang.values import is_finite_number, is_number

from . import regex as rx
from .sym import AND, IMPLIES, NOT, OR, PathVar, high_image, real_val, string_val

MAX_REQUIRED_DEPTH = 4  # required keys below this depth are not materialised in witnesses


class SchemaAssumption:
    """The calls of one tool conform to `input_schema` (a JSON Schema object)."""

    def __init__(self, tool: str, input_schema: dict):
        self.tool = tool
        self.schema = input_schema if isinstance(input_schema, dict) else {}
        # defaults are planned from the schema as declared, as the gateway fills them
        # (catalog/defaults.py): a key it fills is in every call the policy decides
        self.root = root_view(self.schema)
        self.defaults = plan(self.schema)
        self._caveats: list[Caveat] | None = None
        # a schema whose meaning this module does not read exactly as the gateway's
        # validator does assumes nothing beyond "the arguments are an object" (sound)
        self.unmodelled = unmodelled(self.schema)
        # a schema the gateway cannot use (a pattern RE2 cannot run, say) refuses every
        # call to its tool: no call of it reaches the policy (hostile review 18 F6: the
        # encoding read such a pattern and raised)
        self.refused = _unusable(self.schema)

    # -- the request's paths -------------------------------------------------------------------
    def prepare(self, req) -> None:
        """Track every required key and every key the gateway fills in (to a small depth),
        so a witness carries what the schema demands even when no rule reads it."""
        if self.unmodelled or self.refused:
            return
        todo: list[tuple[tuple, View]] = [((), self.root)]
        while todo:
            path, view = todo.pop()
            if len(path) >= MAX_REQUIRED_DEPTH:
                continue
            keys = _required_everywhere(view)
            keys += [k for k in view.filled() if k not in keys]
            for key in keys:
                child = view.child(key)
                req.path(path + (key,))
                todo.append((path + (key,), child.view))

    def constraints(self, req) -> list:
        ctx = req.ctx
        if self.refused:
            return [z3.BoolVal(False, ctx)]
        if self.unmodelled:
            return [req.paths[()].is_("obj")]
        out: list = []
        views: dict[tuple, View | None] = {(): self.root}
        for path in sorted(req.paths, key=len):
            if not path:
                out.append(self._value(req, req.paths[()], self.root))
                continue
            parent = views.get(path[:-1])
            if parent is None:  # below a path the schema says nothing about (or cannot exist)
                views[path] = None
                continue
            child = parent.child(path[-1])
            var = req.paths[path]
            if child.status == "absent":
                out.append(var.is_("missing"))
                views[path] = None
                continue
            if child.required:  # required by the schema, or filled in by the gateway
                out.append(IMPLIES(ctx, req.paths[path[:-1]].is_("obj"), NOT(ctx, var.is_("missing"))))
            out.append(OR(ctx, var.is_("missing"), self._value(req, var, child.view)))
            views[path] = child.view
        return [c for c in out if c is not True]

    def fill(self, args):
        """The arguments as the gateway forwards them: declared defaults filled in."""
        return fill_level(self.defaults, args)

    @property
    def caveats(self) -> list[Caveat]:
        """The defaults of this tool the gateway does not fill, or refuses (catalog/defaults.py)."""
        if self._caveats is None:
            self._caveats = [] if self.refused else caveats(self.schema)
        return self._caveats

    # -- one value ----------------------------------------------------------------------------
    def _value(self, req, var: PathVar, view: View):
        """`var` (present) satisfies some alternative of `view`."""
        return OR(req.ctx, *(self._alternative(req, var, alt) for alt in view.alts)) if view.alts else False

    def _alternative(self, req, var: PathVar, alt: dict):
        ctx = req.ctx
        parts: list = []
        kinds = _kinds(alt.get("type"))
        if kinds is not None:
            parts.append(OR(ctx, *(var.is_(k) for k in kinds)))
            if alt.get("type") == "integer" or alt.get("type") == ["integer"]:
                parts.append(z3.IsInt(var.n))
        values = alt.get("enum") if isinstance(alt.get("enum"), list) else (
            [alt["const"]] if "const" in alt else None)
        if values is not None:
            parts.append(OR(ctx, *(_equals(req, var, v) for v in values)))
        num = var.is_("num")
        for key, op in (("minimum", ">="), ("maximum", "<="), ("exclusiveMinimum", ">"), ("exclusiveMaximum", "<")):
            bound = alt.get(key)
            if is_finite_number(bound):
                b = real_val(Fraction(bound), ctx)
                cmp = {">=": var.n >= b, "<=": var.n <= b, ">": var.n > b, "<": var.n < b}[op]
                parts.append(IMPLIES(ctx, num, cmp))
        s = var.is_("str")
        for key, cmp in (("minLength", lambda n: z3.Length(var.s) >= n), ("maxLength", lambda n: z3.Length(var.s) <= n)):
            n = alt.get(key)
            if isinstance(n, int) and not isinstance(n, bool) and n >= 0:
                parts.append(IMPLIES(ctx, s, cmp(n)))
        pattern = alt.get("pattern")
        if isinstance(pattern, str):
            regex = _regex(req, pattern)
            if regex is not None:
                parts.append(IMPLIES(ctx, s, z3.InRe(var.s, regex)))
        arr = var.is_("arr")
        for key, cmp in (("minItems", lambda n: z3.Length(var.items) >= n), ("maxItems", lambda n: z3.Length(var.items) <= n)):
            n = alt.get(key)
            if isinstance(n, int) and not isinstance(n, bool) and n >= 0:
                parts.append(IMPLIES(ctx, arr, cmp(n)))
        return AND(ctx, *parts)


def _kinds(t) -> list[str] | None:
    names = [t] if isinstance(t, str) else t if isinstance(t, list) and all(isinstance(x, str) for x in t) else None
    if names is None:
        return None
    out = []
    for name in names:
        kind = {"string": "str", "number": "num", "integer": "num", "boolean": "bool", "null": "null",
                "array": "arr", "object": "obj"}.get(name)
        if kind is not None and kind not in out:
            out.append(kind)
    return out


def _equals(req, var: PathVar, v):
    ctx = req.ctx
    if v is None:
        return var.is_("null")
    if isinstance(v, bool):
        return AND(ctx, var.is_("bool"), var.b == z3.BoolVal(v, ctx))
    if is_number(v):
        if not is_finite_number(v):
            return False
        return AND(ctx, var.is_("num"), var.n == real_val(Fraction(v), ctx))
    if isinstance(v, str):
        image = high_image(req.S.cache, v)  # a character from U+2FA20 up is a block character
        if image is None:
            return var.is_("str")
        return AND(ctx, var.is_("str"), var.s == string_val(image, ctx, raw=True))
    if isinstance(v, list):
        return var.is_("arr")  # compound members are not modelled: any array may be the one
    if isinstance(v, dict):
        return var.is_("obj")
    return True


def _regex(req, pattern: str):
    cache = req.S.cache
    tr = cache.get("regex")
    if tr is None:
        tr = cache["regex"] = rx.Z3Regex(req.ctx)
    try:
        return tr(rx.search_ast(pattern))  # JSON Schema's `pattern` is a search, as RE2's
    except rx.Unsupported:
        return None


def _required_everywhere(view: View) -> list[str]:
    """Keys every object alternative of `view` requires."""
    out: list[str] | None = None
    for alt in view.alts:
        t = _kinds(alt.get("type"))
        if t is not None and "obj" not in t:
            continue
        req = [k for k in alt.get("required", []) if isinstance(k, str)] if isinstance(alt.get("required"), list) else []
        out = req if out is None else [k for k in out if k in req]
    return out or []


_GATEWAY_SCHEMAS = None  # the gateway's compiled validators (catalog/conformance.py), shared by every session


def _unusable(schema: dict) -> str | None:
    """Why the gateway cannot use `schema` (so refuses every call to its tool), or None:
    its own compilation, not a second reading."""
    global _GATEWAY_SCHEMAS
    from mcpp.catalog.conformance import SchemaCache, SchemaUnusable

    if _GATEWAY_SCHEMAS is None:
        _GATEWAY_SCHEMAS = SchemaCache()
    try:
        _GATEWAY_SCHEMAS.get(schema)
    except SchemaUnusable as e:
        return str(e)
    return None


def unmodelled(schema: dict) -> str | None:
    """Why the typed-call assumption must not be read from `schema`, or None.

    The model below reads JSON Schema 2020-12 (the dialect MCP declares) with local `$ref`s
    resolved against the document root. The gateway validates by the schema's declared
    `$schema` and resolves references by the standard's base-URI rules, so where those can
    differ from the model — another dialect (draft-07 ignores keywords beside a `$ref`,
    draft-04 has no `const`), an `$id` that moves the base of a reference, a reference with
    percent-encoding or one that is not local, a subschema that names its own `$schema` (the
    validator switches dialect there) — the analysis assumes nothing of that tool's
    arguments: a proof stays a proof, only less is proved."""
    declared = dialect(schema)
    if declared not in (None, DIALECT_2020_12, DIALECT_2019_09) + DRAFTS_6_7:
        return f"the schema declares the dialect {str(schema.get('$schema'))[:80]!r}; the analysis reads 2020-12 and drafts 6, 7 and 2019-09"
    nested = nested_dialect(schema)
    if nested:
        return nested
    stack: list = [schema]
    while stack:
        n = stack.pop()
        if isinstance(n, dict):
            if n is not schema and "$id" in n:
                return "a nested `$id` changes what its references resolve to"
            for key in ("$ref", "$dynamicRef", "$recursiveRef"):
                ref = n.get(key)
                if ref is not None and (not isinstance(ref, str) or not ref.startswith("#") or "%" in ref
                                        or key != "$ref"):
                    return f"the reference {str(ref)[:80]!r} is not a plain local pointer"
            if "$anchor" in n or "$dynamicAnchor" in n or "$recursiveAnchor" in n:
                return "anchors change what references resolve to"
            stack.extend(n.values())
        elif isinstance(n, list):
            stack.extend(n)
    return None


@dataclass(frozen=True)
class DefaultCaveat:
    """A typed-call caveat of a policy: an argument a rule reads whose declared default the
    gateway does not fill (the analysis treats it as possibly absent; the upstream may run
    the call with that default), or fills but refuses (it does not conform to its schema)."""

    tool: str
    caveat: Caveat
    rule: str  # the first statement that reads it
    span: Span  # where

    @property
    def argument(self) -> str:
        return self.caveat.where

    def message(self) -> str:
        c = self.caveat
        if c.kind == "refused":
            return f"{self.tool}: argument `{c.where}`: {c.reason}"
        return (f"{self.tool}: argument `{c.where}`: {c.reason}; the analysis treats it as possibly absent, but the upstream "
                "may run a call that omits it with its declared default")

    def to_dict(self) -> dict:
        return {"tool": self.tool, "argument": self.argument, "kind": self.caveat.kind, "reason": self.caveat.reason,
                "rule": self.rule, "line": self.span.line, "message": self.message()}


def default_caveats(program, schemas: dict[str, SchemaAssumption] | None) -> list[DefaultCaveat]:
    """The typed-call caveats about defaults that matter to `program`: for each tool, each
    caveat of its schema whose argument (or an object around it, or an argument inside
    it) a statement that applies to the tool reads, at the first such read."""
    if not schemas:
        return []
    infos = [*program.policies, *program.limits, *program.asserts]
    reads = []
    for info in infos:
        for node in walk(info.stmt):
            p = input_path(node) if isinstance(node, ir.GetAttr) else (has_path(node) if isinstance(node, ir.Has) else None)
            if p:
                reads.append((info, node, p))
    out = []
    for tool in sorted(schemas):
        for c in schemas[tool].caveats:
            for info, node, p in reads:
                if info.tools is not None and tool not in info.tools:
                    continue
                if p[: len(c.path)] == c.path or c.path[: len(p)] == p:
                    out.append(DefaultCaveat(tool, c, info.id, node.span))
                    break
    return out


def catalog_schemas(catalog) -> dict[str, SchemaAssumption]:
    """The typed-call assumption for every tool of a catalog (`catalog.model.Catalog`),
    over the schema the gateway really checks (`closed_world`: undeclared top-level
    arguments refused)."""
    from mcpp.catalog.conformance import closed_world

    return {name: SchemaAssumption(name, closed_world(t.input_schema)) for name, t in catalog.tools.items()}


def typed_session(catalog, timeout_ms: int = 2000, cancel=None, deadline=None):
    """A `solve.Session` for a typed analysis over `catalog` (a `catalog.model.Catalog`),
    or an untyped one when `catalog` is None; `deadline` is the run's budget
    (analyzer/deadline.py), shared by every session of the run."""
    from .solve import Session

    return Session(timeout_ms, cancel, schemas=catalog_schemas(catalog) if catalog is not None else None,
                   deadline=deadline)
