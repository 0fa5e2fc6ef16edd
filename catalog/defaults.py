"""Schema defaults: the values a server runs with when a call leaves an argument out.

An SDK server fills in the `default` its tool's schema declares: the Python SDK publishes
`amount: float = 5000` as `{"type": "number", "default": 5000}` (optional) and calls the
function with 5000 when the call omits `amount`; the TypeScript SDK's zod `.default(…)`
does the same. A policy that decided the call as sent would decide a call *without*
`amount` (`context.input has amount` false, a forbid on `amount > 1000` skipped) while the
upstream refunds 5000. So the gateway fills the declared defaults in after the schema
check and before the decision, and forwards the filled call (docs/gateway.md, "Typed
calls"): the policy decides, the audit records and the upstream runs the same arguments.
The analyzer reads the same plan (`catalog.schema.View`, analyzer/typed.py): an argument
this module fills is always present, so a proof covers what the upstream runs and a
counterexample replays on the filled call.

`fill(schema, args)` is that step, pure: the arguments with every fillable default of an
absent property put in, at the top level and inside nested objects that are present
(including objects that were themselves just filled in). What is fillable is decided
once per schema (`plan`), by these rules:

- A property is a fill candidate where an object's schema declares it in `properties`
  unconditionally: in the schema itself, behind a `$ref` or an `allOf` member — all of
  which apply to every value. A `$ref` resolves exactly as the gateway's validator
  resolves it (`_Planner.lookup`: the `referencing` library over the validator's own
  registry): against the base URI of the subschema it sits in, which a nested `$id`
  moves, with anchors and percent-encoding; resolving `#/…` against the document root
  instead would fill a default no applicable schema declares, and miss the one that
  applies. Its default is the `default` those declarations carry
  (with a `patternProperties` entry whose RE2 pattern matches the name, which applies
  too). An `anyOf`/`oneOf` of which exactly one branch can be an object (pydantic's
  `Opts | None`: `{"anyOf": [{"$ref": "#/$defs/Opts"}, {"type": "null"}]}`) is that
  branch for an object value, so the properties of a present object are filled from it.
- Not filled, because a different default could apply, and reported as a typed-call
  caveat (`caveats`; `mcpp lint`'s `unfilled-default`, `mcpp verify`'s typed line) so it
  is visible: a default that only a conditional subschema declares (`anyOf`/`oneOf`
  branches, `if`/`then`/`else`, `dependentSchemas`/`dependencies`), two declarations
  with different defaults, a pattern the gateway cannot run beside a default, a
  reference that cannot be resolved within the schema (remote: the validator never
  fetches one, and refuses a call whose check needs it) or a `$dynamicRef`, defaults inside array
  items (`items`, `prefixItems`, …: no rule reads an element by position) and inside the
  values of properties not declared by name (`additionalProperties`, `patternProperties`:
  the plan goes by property name), and a default
  whose filling would start over inside itself without end (`_unfill_endless`). The analyzer
  treats such an argument as possibly absent — which it is, as the gateway forwards it
  — and the caveat says that the upstream may run it with its default.
- `null` defaults are never filled. The Python SDK writes `path: str | None = None` as
  `{"anyOf": [{"type": "string"}, {"type": "null"}], "default": null}`: to such a server
  an absent argument and a null one mean the same, so filling changes nothing it does,
  while it would change what a policy reads (`context.input has path` would become true
  on a null value, and a guard written `has path && path.matches(…)` would then error
  instead of being false). An absent argument stays absent.
- A default that does not conform to its own schema (`{"type": "number", "default":
  "5000"}`, or 5000 under `maximum: 1000`) is filled like any other, and the gateway
  re-checks the filled call: a call that omits such an argument is refused (fail closed:
  the server would run a value its schema forbids, which no policy can reason about),
  and the caller is told to pass the argument. The same holds for a default that conforms
  on its own but makes the filled call invalid (`dependentRequired` on it, an
  `additionalProperties: false` in another `allOf` member). `caveats` reports both: the
  first by checking the default against its declarations, the second by probing the
  smallest call that reaches the argument with the validator, filled and not
  (`_breaks_call`). For the analyzer nothing changes: every forwarded call has the
  argument, and it conforms.

Defaults are copied into the call (`copy.deepcopy`), never shared with the schema.
"""

from __future__ import annotations

import copy
import json
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from jsonschema_specifications import REGISTRY as SPECIFICATIONS
from referencing import Resource
from referencing.exceptions import CannotDetermineSpecification, Unresolvable
from referencing.jsonschema import DRAFT202012, UnknownDialect, specification_with

from mcpp.lang.regex import RegexError, compile_regex

from .schema import _type_set

_MAX_NODES = 4096  # schema nodes one closure may visit
_MAX_LEVELS = 2048  # distinct object levels one plan may hold
_MAX_CAVEAT_DEPTH = 8  # argument depth the caveat report walks to
# argument paths the caveat report visits: levels shared through references are reached by
# exponentially many paths (6 levels of 5 properties: 15,625; `mcpp lint` took 43 s on a
# 2.4 KB schema, hostile review 30, G6); what filling breaks is probed once per level and key
_MAX_CAVEAT_VISITS = 2000
_PLAN_CACHE = 4096  # plans kept (by schema object), least recently used dropped first

# keywords whose subschemas apply only sometimes: a default declared under them is
# conditional, so it makes the property's default ambiguous
_CONDITIONAL = ("anyOf", "oneOf", "if", "then", "else", "dependentSchemas", "dependencies")
# keywords whose subschemas describe array elements: their defaults are never filled
_ARRAY_KEYWORDS = ("items", "prefixItems", "additionalItems", "unevaluatedItems", "contains")
_SCHEMA_MAPS = ("properties", "patternProperties", "dependentSchemas", "dependencies", "$defs", "definitions")
_SCHEMA_ONE = ("additionalProperties", "unevaluatedProperties", "items", "additionalItems", "unevaluatedItems",
               "contains", "not", "if", "then", "else", "propertyNames", "contentSchema")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems", "items")


@dataclass(eq=False)
class Level:
    """What filling does inside one object: the defaults of its absent keys, and the levels
    of the objects at its keys. `notes` are the caveats of this level: (key or None, why a
    default there is not filled, or is filled but refused)."""

    defaults: dict[str, Any] = field(default_factory=dict)
    children: dict[str, "Level"] = field(default_factory=dict)
    notes: list[tuple[str | None, str]] = field(default_factory=list)
    sources: dict[str, list] = field(default_factory=dict)  # key → the declarations its default is checked against

    @property
    def empty(self) -> bool:
        return not self.defaults and not self.children and not self.notes


EMPTY = Level()


@dataclass(frozen=True)
class Caveat:
    """A default the gateway does not fill (the analysis treats the argument as possibly
    absent, the upstream may run it with its default), or fills but refuses."""

    path: tuple[str, ...]  # the argument (or the object) it is about
    reason: str
    kind: str = "unfilled"  # unfilled (possibly absent, the upstream may apply it) | refused (calls omitting it are refused)

    @property
    def where(self) -> str:
        return ".".join(self.path) if self.path else "the arguments"


# ---- filling ------------------------------------------------------------------------------


MAX_FILLED_VALUES = 1_000  # JSON values the defaults may add to one call (real ones add a handful)
MAX_FILLED_DEPTH = 64  # objects deep that filling goes (catalog/depth.py's bound on definitions)


class FillTooLarge(ValueError):
    """Filling would add more than MAX_FILLED_VALUES values, or go deeper than
    MAX_FILLED_DEPTH objects. Defaults are filled inside defaults just filled in, and a
    `$ref` can make a small schema do that again and again: a 2.7 KB schema whose levels
    each default two properties to `{}` through a reference grew a 2-byte call into 16 MB.
    The call is refused instead (`invalid_default`); lint reports the default."""


def fill(schema, args):
    """`args` with the declared non-null defaults of absent properties filled in, where the
    schema makes them unambiguous (module docstring). Returns `args` itself when nothing is
    filled; never changes it. Anything that is not an object is returned as it is. Raises
    FillTooLarge past the bounds above."""
    return fill_level(plan(schema), args)


def fill_level(level: Level, value):
    """`fill` from a plan already made (the analyzer and the gateway keep theirs)."""
    if not isinstance(value, dict) or (not level.defaults and not level.children):
        return value
    return _fill(level, value, [MAX_FILLED_VALUES], 0)


def _fill(level: Level, value: dict, budget: list[int], depth: int) -> dict:
    if depth > MAX_FILLED_DEPTH:
        raise FillTooLarge(f"the declared defaults nest filled objects deeper than {MAX_FILLED_DEPTH} levels")
    out: dict | None = None
    for k, d in level.defaults.items():
        if k not in value:
            if out is None:
                out = dict(value)
            budget[0] -= _values_in(d)
            if budget[0] < 0:
                raise FillTooLarge(f"the declared defaults would add more than {MAX_FILLED_VALUES} values to the call")
            out[k] = copy.deepcopy(d)
    src = out if out is not None else value
    for k, child in level.children.items():
        v = src.get(k)
        if isinstance(v, dict) and (child.defaults or child.children):
            nv = _fill(child, v, budget, depth + 1)
            if nv is not v:
                if out is None:
                    out = dict(value)
                out[k] = nv
    return out if out is not None else value


def _values_in(d) -> int:
    """How many JSON values `d` is (1 for a scalar)."""
    if not isinstance(d, (dict, list)):
        return 1
    n, stack = 0, [d]
    while stack:
        x = stack.pop()
        n += 1
        if isinstance(x, dict):
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
    return n


# ---- planning -----------------------------------------------------------------------------

_plans: OrderedDict[int, tuple[Any, Level]] = OrderedDict()  # least recently used first
_plans_lock = threading.Lock()  # (the gateway plans in its compile threads and fills on its event loop)


def plan(schema) -> Level:
    """The fill plan of a tool's input schema (the root object's `Level`). Cached by the
    schema object (held while cached, so its id cannot be reused); schemas are not
    changed after they are loaded.

    The least recently used plan goes first when the cache is full, never all of them: the
    gateway makes a tool's plan in its compile thread, beside the validator, and fills calls
    on its event loop from the cache; cleared whole after 1,024 other tools, a costly plan
    was made again on the event loop, and every request waited for it (hostile review 33,
    H33-8). A validator the gateway still holds (at most 1,024: conformance.MAX_VALIDATORS)
    was used more recently than 4,096 others' plans, so its plan is here."""
    key = id(schema)
    with _plans_lock:
        hit = _plans.get(key)
        if hit is not None and hit[0] is schema:
            _plans.move_to_end(key)
            return hit[1]
    if not isinstance(schema, dict):
        return EMPTY
    lvl = _prune(_unfill_endless(_Planner(schema).plan()))
    with _plans_lock:
        _plans[key] = (schema, lvl)
        _plans.move_to_end(key)
        while len(_plans) > _PLAN_CACHE:
            _plans.popitem(last=False)
    return lvl


def _prune(root: Level) -> Level:
    """Drop the children through which nothing is filled or noted. A recursive reference
    makes a level its own descendant, and the planner records such a child while the level
    is still being built (hostile review 24, F7: it used to record none, and filling
    stopped two levels down when the recursive key sorted before the defaulted one); once
    the plan is whole, a child counts only if a default or a note is reachable through
    it."""
    seen = _levels(root)
    useful = {i for i, lvl in seen.items() if lvl.defaults or lvl.notes}
    grew = True
    while grew:
        grew = False
        for i, lvl in seen.items():
            if i not in useful and any(id(c) in useful for c in lvl.children.values()):
                useful.add(i)
                grew = True
    for lvl in seen.values():
        for k in [k for k, c in lvl.children.items() if id(c) not in useful]:
            del lvl.children[k]
    return root


def _levels(root: Level) -> dict[int, Level]:
    """Every level of a plan, by id (a recursive schema makes the plan a graph)."""
    seen: dict[int, Level] = {}
    todo = [root]
    while todo:
        lvl = todo.pop()
        if id(lvl) not in seen:
            seen[id(lvl)] = lvl
            todo.extend(lvl.children.values())
    return seen


def _unfill_endless(root: Level) -> Level:
    """Take out the defaults whose filling never ends, and note why (hostile review 26, F7).

    Filling puts a default in, then fills the defaults of the object just put in. Through a
    recursive schema that can start over: `{"properties": {"a": {"$ref": "#", "default":
    {}}}}` fills `a: {}`, whose level is the root's, which fills `a: {}` again, and so on
    to `MAX_FILLED_DEPTH`, so every call to the tool was refused — while a pydantic server
    takes the default as it is, one level. No finite call has "`a` present at every level",
    which is what the plan promises the analyzer (`View.child(...).required`), so such a
    default cannot be filled; it is treated as the other defaults the gateway does not
    fill: the call is forwarded without it, the analysis treats the argument as possibly
    absent, and `caveats` (lint's `unfilled-default`) says the upstream may apply it.

    Exactly which: a *state* is (level, key) — "the default of `key` was just put into an
    object at `level`". What filling does from there depends on nothing else (the default
    is a fixed value, its object's level fixed), so the states it leads to (the absent
    defaulted keys of the objects inside that value, at their levels) form a graph, and
    filling from a state ends iff no cycle is reachable from it. Peeling the states all of
    whose successors end leaves exactly the endless ones; each is taken out. What remains
    ends within the number of states (deep or wide growth that ends is still bounded at
    fill time: `FillTooLarge`)."""
    levels = _levels(root)

    def leads_on(i: int, k: str) -> bool:
        return isinstance(levels[i].defaults.get(k), dict) and k in levels[i].children

    # (a state whose default is no object, or has no level, leads nowhere: it ends, and is
    # left out of the graph; 100 objects each with 3,000 scalar defaults made 300,000 states
    # to peel, H33-9)
    succ: dict[tuple[int, str], set[tuple[int, str]]] = {}
    for lvl in levels.values():
        for k, d in lvl.defaults.items():
            if not isinstance(d, dict) or k not in lvl.children:
                continue
            out: set[tuple[int, str]] = set()
            stack = [(lvl.children.get(k), d)]
            while stack:
                child, value = stack.pop()
                if child is None or not isinstance(value, dict):
                    continue
                out.update((id(child), k2) for k2 in child.defaults if k2 not in value)
                stack.extend((c, value[k2]) for k2, c in child.children.items() if k2 in value)
            succ[(id(lvl), k)] = out
    # peeled from the states that lead nowhere back towards their predecessors, each state
    # once (a pass over every state per link was quadratic: 3.2 s on a 250-link chain of
    # defaults, hostile review 28, F3)
    preds: dict[tuple[int, str], list[tuple[int, str]]] = {}
    waiting: dict[tuple[int, str], int] = {}
    for state, nxt in succ.items():
        nxt = {n for n in nxt if leads_on(*n)}
        waiting[state] = len(nxt)
        for n in nxt:
            preds.setdefault(n, []).append(state)
    ends: set[tuple[int, str]] = set()
    todo = [state for state, n in waiting.items() if n == 0]
    while todo:
        state = todo.pop()
        ends.add(state)
        for p in preds.get(state, ()):
            waiting[p] -= 1
            if waiting[p] == 0:
                todo.append(p)
    for (i, k) in [s for s in succ if s not in ends]:
        lvl = levels[i]
        d = lvl.defaults.pop(k)
        lvl.sources.pop(k, None)
        lvl.notes.append((k, f"its default {_show(d)} would be filled in again inside itself without end (a recursive "
                             "schema), so the gateway does not fill it"))
    return root


def level_at(schema, path: tuple[str, ...]) -> Level | None:
    """The level of the object at `path` (None when nothing is filled inside it)."""
    lvl: Level | None = plan(schema)
    for k in path:
        if lvl is None:
            return None
        lvl = lvl.children.get(k)
    return lvl


_NONE = object()  # (no default)


@dataclass
class _KeyPlan:
    """What `_Planner.key` puts into a level for one key."""

    notes: list
    default: Any
    sources: list
    child: Level | None


@dataclass
class _Closure:
    nodes: list  # the schemas that apply to the value unconditionally
    conditional: list  # subschemas that may or may not apply
    opaque: str | None = None  # why part of what applies cannot be seen


class _Planner:
    """Reads one schema document. References resolve as the gateway's validator resolves
    them (the `referencing` library jsonschema runs on, over the same registry: the
    schema and the metaschemas, nothing fetched): against the base URI of the subschema
    they sit in, which a nested `$id` moves, with anchors and percent-encoding as the
    standard has them. `self.base` records the resolver each subschema is read with."""

    def __init__(self, root: dict):
        self.root = root
        self.levels: dict[frozenset, Level] = {}
        # levels found and not yet planned, with their closures and depths (objects below the root)
        self.queue: deque[tuple[Level, _Closure, int]] = deque()
        self._closures: dict[tuple, _Closure] = {}  # (the schemas' ids, as_object) → their closure
        self._items: dict[int, bool] = {}  # subschema id → whether its array items declare defaults
        self._objects: dict[int, bool] = {}  # subschema id → whether an object may match it
        self._expansions: dict[tuple, tuple] = {}  # (subschema id, as_object) → `expand`
        self._typed: dict[int, bool] = {}  # subschema id → whether its own `type` allows an object
        self._keys: dict[tuple, _KeyPlan] = {}  # what `key` settles, by everything it reads
        self._node_keys: dict[int, frozenset] = {}  # subschema id → the names its `properties` declares
        self._node_plans: dict[tuple, Level] = {}  # (subschema id, depth) → what its `properties` plan
        dialect = root.get("$schema")
        try:
            self.spec = specification_with(dialect.rstrip("#"), default=DRAFT202012) if isinstance(dialect, str) \
                else DRAFT202012
        except UnknownDialect:  # the validator refuses such a schema: nothing is filled for it
            self.spec = DRAFT202012
        try:
            root_resolver: Any = SPECIFICATIONS.resolver_with_root(self.spec.create_resource(root))
        except Exception:  # an `$id` that is no URI (the validator refuses the schema): nothing resolves
            root_resolver = None
        self.base: dict[int, Any] = {id(root): root_resolver}
        # the subschemas of this document: a reference may only lead to one of them (the
        # validator's registry also holds the metaschemas, whose defaults no server applies)
        self.own: set[int] = set()
        stack: list = [root]
        while stack:
            n = stack.pop()
            if isinstance(n, dict):
                self.own.add(id(n))
                stack.extend(n.values())
            elif isinstance(n, list):
                stack.extend(n)

    def enter(self, parent, child):
        """`child`, a subschema of `parent`, with the resolver it is read with recorded
        (its own `$id`, if any, moves the base). Returns `child`."""
        if isinstance(child, dict) and id(child) not in self.base:
            r = self.base.get(id(parent), self.base[id(self.root)])
            if r is not None:
                try:
                    r = r.in_subresource(Resource.from_contents(child, default_specification=self.spec))
                except Exception:  # (CannotDetermineSpecification, a non-string `$id` or `$schema`, …)
                    r = None  # its base is unknown: no reference inside it resolves (`lookup`)
            self.base[id(child)] = r
        return child

    def lookup(self, node: dict, ref) -> tuple[Any, str | None]:
        """(the subschema `node`'s `$ref` names, as the validator resolves it, None), or
        (None, why it is not read): it cannot be resolved within the document (the
        validator refuses a call that needs it), or it is another document (a metaschema
        in the validator's registry: no server applies its defaults)."""
        r = self.base.get(id(node), self.base[id(self.root)])
        shown = repr(str(ref)[:80])
        if not isinstance(ref, str) or r is None:
            return None, f"the reference {shown} cannot be resolved within the schema (the gateway refuses a call that needs it)"
        try:
            resolved = r.lookup(ref)
        except (Unresolvable, CannotDetermineSpecification, TypeError, ValueError, KeyError, AttributeError):
            return None, f"the reference {shown} cannot be resolved within the schema (the gateway refuses a call that needs it)"
        target = resolved.contents
        if isinstance(target, bool):
            return target, None  # `true`/`false`: nothing to fill from (the closure skips it)
        if not isinstance(target, dict) or id(target) not in self.own:
            return None, f"the reference {shown} names another document, whose defaults are not filled"
        self.base.setdefault(id(target), resolved.resolver)
        return target, None

    def closure(self, schemas: list, as_object: bool) -> _Closure:
        """Every schema that applies to a value of `schemas` whatever the value is: them,
        their `$ref` targets and `allOf` members (and, for an object value, the one branch
        of an `anyOf`/`oneOf` that can be an object). Remembered per schemas: sibling
        objects that include one shared definition (`allOf: [{$ref: Big}]`) ask for the
        closures of its thousands of properties once each, not once per sibling (hostile
        review 32, H32-2: 100 such siblings took 8.5 s to plan)."""
        memo_key = (tuple(map(id, schemas)), as_object)
        hit = self._closures.get(memo_key)
        if hit is None:
            hit = self._closures[memo_key] = self._closure(schemas, as_object)
        return hit

    def _closure(self, schemas: list, as_object: bool) -> _Closure:
        nodes: list = []
        cond: list = []
        opaque = None
        seen: set[int] = set()
        todo = deque(schemas)
        while todo:
            s = todo.popleft()
            if not isinstance(s, dict) or id(s) in seen:
                continue  # true, false: nothing to fill from
            if len(seen) >= _MAX_NODES:
                opaque = "the schema is too large to read whole"
                break
            seen.add(id(s))
            nodes.append(s)
            more, conditional, why = self.expand(s, as_object)
            if why is not None:
                opaque = why
            todo.extend(more)
            cond.extend(conditional)
        return _Closure(nodes, cond, opaque)

    def expand(self, s: dict, as_object: bool) -> tuple[tuple, tuple, str | None]:
        """What `s` adds to a closure: (the schemas that apply with it, in order; the
        conditional ones; why part of it cannot be seen, or None). Remembered per subschema
        once its base is known: the nodes of a definition that 100 objects include are in
        each of their closures (hostile review 33, H33-9)."""
        memo_key = (id(s), as_object)
        hit = self._expansions.get(memo_key)
        if hit is not None:
            return hit
        todo: list = []
        cond: list = []
        opaque = None
        if "$ref" in s:
            ref = s["$ref"]
            target, why = self.lookup(s, ref)
            if why is not None:
                opaque = why
            else:
                todo.append(target)
        for key in ("$dynamicRef", "$recursiveRef"):
            if key in s:
                opaque = f"`{key}` resolves at run time"
        if isinstance(s.get("allOf"), list):
            todo.extend(self.enter(s, x) for x in s["allOf"])
        for key in ("anyOf", "oneOf"):
            branches = s.get(key)
            if not isinstance(branches, list):
                continue
            branches = [self.enter(s, b) for b in branches]
            if as_object:
                objects = [b for b in branches if self.may_be_object(b)]
                if len(objects) <= 1:
                    todo.extend(objects)  # the only branch an object can match (none: no object is valid)
                    continue
            cond.extend(branches)
        for key in ("if", "then", "else"):
            if key in s:
                cond.append(self.enter(s, s[key]))
        for key in ("dependentSchemas", "dependencies"):
            d = s.get(key)
            if isinstance(d, dict):
                cond.extend(self.enter(s, v) for v in d.values() if isinstance(v, (dict, bool)))
        hit = (tuple(todo), tuple(cond), opaque)
        if id(s) in self.base:  # (read before its base was recorded, its references may resolve otherwise later)
            self._expansions[memo_key] = hit
        return hit

    def items_default(self, n: dict) -> bool:
        """`_items_default(n)`, once per subschema (a shared definition's properties are read
        by every object that includes it)."""
        hit = self._items.get(id(n))
        if hit is None:
            hit = self._items[id(n)] = _items_default(n, self)
        return hit

    def may_be_object(self, schema, depth: int = 0) -> bool:
        """Can an object match `schema`? No only when something that applies to every value
        of it (itself, its references, `allOf` members) or every `anyOf`/`oneOf` branch
        allows no object; anything unresolvable may.

        A subschema with a `$ref` is not read for it: up to draft-07 the validator ignores
        the keywords beside a `$ref`, so `{"$ref": "#/definitions/Opts", "type": "string"}`
        takes an object there, and reading its `type` left the object's defaults unfilled,
        unreported, while the upstream applied them (hostile review 33, H33-3). Where the
        keywords do apply, saying "may" costs only a level planned for nothing.

        Remembered per subschema (a "may" cut short by the depth bound is the cautious
        answer): every branch of an `anyOf` whose branches all say "no object" was asked again
        at each of 8 levels, k⁸ times — 14 s to plan a 1.5 KB schema (H33-7)."""
        if schema is False:
            return False
        if not isinstance(schema, dict) or depth > 8:
            return True
        hit = self._objects.get(id(schema))
        if hit is None:
            hit = self._objects[id(schema)] = self._may_be_object(schema, depth)
        return hit

    def _may_be_object(self, schema: dict, depth: int) -> bool:
        c = self.closure([schema], as_object=False)
        if c.opaque is not None:
            return True
        for n in c.nodes:
            if "$ref" in n:
                continue
            typed = self._typed.get(id(n))  # (a shared definition's nodes are in many closures)
            if typed is None:
                ts = _type_set(n)
                typed = self._typed[id(n)] = ts is None or "object" in ts
            if not typed:
                return False
            for key in ("anyOf", "oneOf"):
                branches = n.get(key)
                if isinstance(branches, list) and not any(self.may_be_object(self.enter(n, b), depth + 1)
                                                          for b in branches):
                    return False
        return True

    def reach(self, schemas: list) -> tuple[list, str | None]:
        """Every schema that may apply to the value: the closure and, recursively, every
        conditional branch."""
        c = self.closure(schemas, as_object=False)
        nodes, opaque = list(c.nodes), c.opaque
        seen = {id(n) for n in c.nodes}
        # each conditional branch read once: branches reached again through references
        # (k `anyOf` branches per level over 8 levels) were queued k⁸ times (hostile review 33, H33-7)
        todo, queued = deque(c.conditional), {id(x) for x in c.conditional}
        while todo:
            more = self.closure([todo.popleft()], as_object=False)
            opaque = opaque or more.opaque
            for n in more.nodes:
                if id(n) not in seen:
                    seen.add(id(n))
                    nodes.append(n)
            for x in more.conditional:
                if id(x) not in queued:
                    queued.add(id(x))
                    todo.append(x)
            if len(seen) >= _MAX_NODES:
                return nodes, "the schema is too large to read whole"
        return nodes, opaque

    def plan(self) -> Level:
        """The root's level, every level below it planned breadth first."""
        root = self.level([self.root], 0)
        while self.queue:
            self._plan_level(*self.queue.popleft())
        return root

    def level(self, schemas: list, depth: int) -> Level:
        """The level of an object `schemas` apply to, `depth` objects below the root: the one
        already found for the same schemas, else a new one, queued to be planned.

        Breadth first, so that each level is first found, and planned, at the least depth any
        path reaches it. Depth first, a level found first at the end of a long chain of
        references was planned there with what lies below the depth bound cut off, and the
        same level reached in one step from the root reused that cut plan: a default three
        objects deep went unfilled, and two schemas equal as JSON filled differently by the
        order of their keys (hostile review 30, G3). A plan that nests levels as deep as a
        chain is long also recursed out of the stack (hostile review 28, F5); a queue does not."""
        c = self.closure(schemas, as_object=True)
        key = frozenset(id(n) for n in c.nodes)
        hit = self.levels.get(key)
        if hit is not None:
            return hit
        lvl = Level()
        if len(self.levels) >= _MAX_LEVELS:
            # nothing filled deeper (the analyzer reads the same plan), and said where it
            # matters: planned breadth first, the cap fell on a default three objects deep
            # beside a sibling with 2,100 properties, silently (hostile review 32, H32-1)
            if any(_deep_default(n, self) for n in c.nodes):
                lvl.notes.append((None, f"defaults inside it are not filled: the schema has more than {_MAX_LEVELS} "
                                        "objects to plan"))
            self.levels[key] = lvl
            return lvl
        self.levels[key] = lvl
        if depth >= MAX_FILLED_DEPTH:
            # filling never goes deeper than this (`FillTooLarge`), and no path reaches this
            # level at a lesser depth (breadth first): what is below is not filled, and says so
            if any(_deep_default(n, self) for n in c.nodes):
                lvl.notes.append((None, f"defaults inside it are not filled: it is more than {MAX_FILLED_DEPTH} "
                                        "objects deep in the schema's references"))
            return lvl
        self.queue.append((lvl, c, depth))
        return lvl

    def _plan_level(self, lvl: Level, c: "_Closure", depth: int) -> None:
        if c.opaque is not None:
            if any(_deep_default(n, self) for n in c.nodes):
                lvl.notes.append((None, f"defaults inside it are not filled: {c.opaque}"))
            return
        # the values of properties it does not declare by name (pydantic's `dict[str, Opts]`:
        # `additionalProperties: {$ref: Opts}`; or a `patternProperties` entry): a server fills
        # the defaults inside such a value, the plan (by property name) cannot — said, not
        # silent (hostile review 32, H32-6)
        if any(_deep_default(self.enter(n, sub), self, skip_top=True)
               for n in c.nodes for sub in _map_values(n)):
            lvl.notes.append((None, "defaults inside the values of properties it does not declare by name "
                                    "(additionalProperties, patternProperties) are not filled"))
        if self.copy_properties(lvl, c, depth):
            return
        props: dict[str, list] = {}
        for n in c.nodes:
            p = n.get("properties")
            if isinstance(p, dict):
                for k, v in p.items():
                    props.setdefault(k, []).append(self.enter(n, v))
        patterns = [(pat, self.enter(n, sub)) for n in c.nodes if isinstance(n.get("patternProperties"), dict)
                    for pat, sub in n["patternProperties"].items()]
        # what the conditional subschemas of this object declare, key by key
        cond_nodes, cond_opaque = self.reach(c.conditional) if c.conditional else ([], None)
        cond_decls: dict[str, list] = {}
        for n in cond_nodes:
            p = n.get("properties")
            if isinstance(p, dict):
                for k, v in p.items():
                    cond_decls.setdefault(k, []).append(self.enter(n, v))
        cond_patterns = [(pat, self.enter(n, sub)) for n in cond_nodes if isinstance(n.get("patternProperties"), dict)
                         for pat, sub in n["patternProperties"].items()]
        for k in list(props) + [k for k in cond_decls if k not in props]:
            self.key(lvl, k, props.get(k, []), patterns, cond_decls.get(k, []), cond_patterns, cond_opaque, depth)

    def copy_properties(self, lvl: Level, c: "_Closure", depth: int) -> bool:
        """Plan the keys of `lvl` from the plans of the subschemas that declare them, where
        that is what key-by-key planning would give (then True): no pattern, no conditional
        subschema and no name declared twice, so each key's plan is that of its one
        declaration, whatever else applies to the object. Each subschema's `properties` are
        then planned once (per depth) and copied into every object that includes it, in
        the order key-by-key planning puts them in. 100 siblings including one 3,000-
        property definition walked its properties once per sibling (hostile review 33,
        H33-9: 28 s to plan 199 KB)."""
        if c.conditional or any(isinstance(n.get("patternProperties"), dict) for n in c.nodes):
            return False
        owners = [n for n in c.nodes if isinstance(n.get("properties"), dict) and n["properties"]]
        names = [self.node_keys(n) for n in owners]
        if sum(map(len, names)) != len(frozenset().union(*names)):
            return False
        for n in owners:
            part = self.node_plan(n, depth)
            lvl.defaults.update(part.defaults)
            lvl.sources.update(part.sources)
            lvl.children.update(part.children)
            lvl.notes.extend(part.notes)
        return True

    def node_keys(self, n: dict) -> frozenset:
        hit = self._node_keys.get(id(n))
        if hit is None:
            hit = self._node_keys[id(n)] = frozenset(n["properties"])
        return hit

    def node_plan(self, n: dict, depth: int) -> Level:
        """What the `properties` of `n` plan in an object at `depth` where nothing else
        declares those names and no pattern or conditional subschema applies: a `Level`
        its including levels copy (`_plan_level`), made once per subschema and depth."""
        hit = self._node_plans.get((id(n), depth))
        if hit is None:
            hit = self._node_plans[(id(n), depth)] = Level()
            for k, v in n["properties"].items():
                self.key(hit, k, [self.enter(n, v)], [], [], [], None, depth)
        return hit

    def key(self, lvl: Level, k: str, decls: list, patterns: list, cond_decls: list, cond_patterns: list,
            cond_opaque: str | None, depth: int) -> None:
        """Plan the key `k` of `lvl`: its default, its notes, the level of its object.
        Settled once per distinct input (`_key`): the outcome depends on nothing else, and a
        definition shared by many objects gives each of them the same declarations."""
        sig = (k, tuple(map(id, decls)), tuple((p, id(x)) for p, x in patterns), tuple(map(id, cond_decls)),
               tuple((p, id(x)) for p, x in cond_patterns), cond_opaque, depth)
        hit = self._keys.get(sig)
        if hit is None:
            # (every id is a subschema's of the document, which outlives the planner: ids stay theirs)
            scratch = Level()
            self._key(scratch, k, decls, patterns, cond_decls, cond_patterns, cond_opaque, depth)
            hit = self._keys[sig] = _KeyPlan(scratch.notes, scratch.defaults.get(k, _NONE), scratch.sources.get(k, []),
                                             scratch.children.get(k))
        lvl.notes.extend(hit.notes)
        if hit.default is not _NONE:
            lvl.defaults[k] = hit.default
            lvl.sources[k] = hit.sources
        if hit.child is not None:
            lvl.children[k] = hit.child

    def _key(self, lvl: Level, k: str, decls: list, patterns: list, cond_decls: list, cond_patterns: list,
             cond_opaque: str | None, depth: int) -> None:
        decls = list(decls)
        unknown = None
        for pat, sub in patterns:
            hit = _search(pat, k)
            if hit:
                decls.append(sub)
            elif hit is None and _deep_default(sub, self):
                unknown = f"the pattern {pat[:60]!r} (which declares defaults) cannot be run to see if it applies"
        cond = list(cond_decls) + [sub for pat, sub in cond_patterns if _search(pat, k) is not False]
        if not decls:
            # declared only conditionally: nothing to fill, but the upstream may apply a default
            if any(_deep_default(s, self) for s in cond):
                lvl.notes.append((k, "only conditional subschemas (anyOf/oneOf/if/then/else/dependentSchemas) declare "
                                     "it with a default, so the gateway does not fill it"))
            return
        vc = self.closure(decls, as_object=False)
        uncond = [n["default"] for n in vc.nodes if "default" in n]
        extra, opaque = self.reach(vc.conditional) if vc.conditional else ([], None)
        own = {id(x) for x in vc.nodes}
        conditional = [n["default"] for n in extra if "default" in n and id(n) not in own]
        cond_nodes, opaque2 = self.reach(cond) if cond else ([], None)
        conditional += [n["default"] for n in cond_nodes if "default" in n]
        opaque = vc.opaque or opaque or opaque2 or cond_opaque or unknown
        nonnull = [d for d in uncond + conditional if d is not None]
        if opaque is not None:
            if nonnull or any(_deep_default(n, self) for n in vc.nodes):
                lvl.notes.append((k, f"its default is not filled: {opaque}"))
            return
        distinct = {_canon(d) for d in uncond + conditional}
        if not uncond:
            if nonnull:
                lvl.notes.append((k, "only conditional subschemas (anyOf/oneOf/if/then/else/dependentSchemas) declare "
                                     f"a default for it ({_show(nonnull[0])}), so the gateway does not fill it"))
        elif len(distinct) > 1:
            shown = ", ".join(sorted(_show(d) for d in {_canon(d): d for d in uncond + conditional}.values()))
            lvl.notes.append((k, f"its schema declares different defaults ({shown}), so the gateway fills none"))
        elif uncond[0] is not None:
            lvl.defaults[k] = uncond[0]
            lvl.sources[k] = decls
        # defaults a conditional declaration puts deeper inside it: not filled
        if any(_deep_default(s, self, skip_top=True) for s in cond):
            lvl.notes.append((k, "conditional subschemas declare defaults inside it, which the gateway does not fill"))
        if any(self.items_default(n) for n in vc.nodes):
            lvl.notes.append((k, "its array items declare defaults, which the gateway does not fill"))
        # (planned later, breadth first: whether anything is filled through it, `_prune` settles).
        # Only where the value can be an object: a level for each of 2,000 integer properties
        # filled the cap and cost seconds of planning (hostile review 32, H32-1, H32-2)
        if all(self.may_be_object(d) for d in decls):
            lvl.children[k] = self.level(decls, depth + 1)


def _search(pattern, key: str) -> bool | None:
    """Does the `patternProperties` pattern match `key` (RE2, as the validator runs it)? None: cannot tell."""
    try:
        return compile_regex(pattern).search(key) is not None
    except (RegexError, TypeError, ValueError, UnicodeError):
        return None


def _canon(v) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def _show(v) -> str:
    text = json.dumps(v, ensure_ascii=False, default=str)
    return text if len(text) <= 40 else text[:40] + "…"


def _subschemas(n: dict, skip_arrays: bool = False):
    for k in _SCHEMA_MAPS:
        m = n.get(k)
        if isinstance(m, dict) and k not in ("$defs", "definitions"):
            yield from (v for v in m.values() if isinstance(v, dict))
    for k in _SCHEMA_ONE:
        if skip_arrays and k in _ARRAY_KEYWORDS:
            continue
        v = n.get(k)
        if isinstance(v, dict):
            yield v
    for k in _SCHEMA_LISTS:
        if skip_arrays and k in _ARRAY_KEYWORDS:
            continue
        v = n.get(k)
        if isinstance(v, list):
            yield from (x for x in v if isinstance(x, dict))


def _deep_default(schema, planner: _Planner, skip_top: bool = False) -> bool:
    """Does a non-null `default` appear anywhere in `schema` (following its references as
    the validator resolves them)?"""
    todo = [(schema, True)]
    seen: set[int] = set()
    while todo:
        n, top = todo.pop()
        if not isinstance(n, dict) or id(n) in seen:
            continue
        seen.add(id(n))
        if len(seen) > _MAX_NODES:
            return True  # cannot tell: say so
        if "default" in n and n["default"] is not None and not (top and skip_top):
            return True
        if "$ref" in n:
            target, _ = planner.lookup(n, n["$ref"])
            if target is not None:
                todo.append((target, top))
        same = _same_value(n) if top else set()
        for sub in _subschemas(n):
            planner.enter(n, sub)
            # a subschema of the same value (an allOf or anyOf member, if/then/else) is still "top"
            todo.append((sub, top and id(sub) in same))
    return False


def _map_values(n: dict) -> list[dict]:
    """The subschemas of `n` that describe the values of properties not declared by name."""
    out = [n["additionalProperties"]] if isinstance(n.get("additionalProperties"), dict) else []
    if isinstance(n.get("patternProperties"), dict):
        out += [v for v in n["patternProperties"].values() if isinstance(v, dict)]
    return out


def _same_value(n: dict) -> set[int]:
    out = set()
    for k in ("allOf", "anyOf", "oneOf"):
        if isinstance(n.get(k), list):
            out |= {id(x) for x in n[k]}
    for k in ("if", "then", "else"):
        if k in n:
            out.add(id(n[k]))
    for k in ("dependentSchemas", "dependencies"):
        if isinstance(n.get(k), dict):
            out |= {id(x) for x in n[k].values()}
    return out


def _items_default(n: dict, planner: _Planner) -> bool:
    for k in _ARRAY_KEYWORDS:
        v = n.get(k)
        subs = v if isinstance(v, list) else [v]
        if any(isinstance(s, dict) and _deep_default(planner.enter(n, s), planner) for s in subs):
            return True
    return False


# ---- caveats ------------------------------------------------------------------------------


def caveats(schema) -> list[Caveat]:
    """The defaults of `schema` that are not filled (and why), and the filled defaults the
    gateway refuses because they do not conform to their own schema or are not JSON text,
    each at its argument path (arguments nested deeper than a few objects are left out)."""
    out: list[Caveat] = []
    if not isinstance(schema, dict):
        return out
    validator = _validator(schema)
    rebased = _rebased(schema)
    filled: dict[tuple[int, str], Any] = {}  # (level, key) → the filled value, or the FillTooLarge it raised

    def filled_value(lvl: Level, k: str, d):
        key = (id(lvl), k)
        if key not in filled:
            try:
                filled[key] = _filled_value(lvl, k, d)
            except FillTooLarge as e:
                filled[key] = e
        hit = filled[key]
        if isinstance(hit, FillTooLarge):
            raise hit
        return hit

    probes: dict[tuple, str | None] = {}  # (level, key or None) → what filling breaks, probed on its first path
    visits = [_MAX_CAVEAT_VISITS]

    def breaks(lvl: Level, k: str | None, path: tuple[str, ...], filled: dict) -> str | None:
        key = (id(lvl), k)
        if key not in probes:
            probes[key] = _breaks_call(validator, path, filled)
        return probes[key]

    def walk(lvl: Level, path: tuple[str, ...], stack: tuple) -> None:
        for k, why in lvl.notes:
            out.append(Caveat(path + ((k,) if k is not None else ()), why))
        broken = False
        for k, d in lvl.defaults.items():
            try:
                value = filled_value(lvl, k, d)
            except FillTooLarge as e:
                out.append(Caveat(path + (k,), f"{e} when it is filled in, so the gateway refuses every call that "
                                                "omits it", "refused"))
                broken = True
                continue
            bad = _bad_default(validator, lvl.sources.get(k, []), d, rebased)
            if bad:
                out.append(Caveat(path + (k,), f"its default {_show(d)} {bad}, so the gateway refuses every call "
                                                "that omits it", "refused"))
                broken = True
                continue
            broke = breaks(lvl, k, path, {k: value})
            if broke:
                out.append(Caveat(path + (k,), f"its default {_show(d)} makes a call that omits it not conform to the "
                                                f"tool's schema ({broke}), so the gateway refuses such calls", "refused"))
                broken = True
        if not broken and len(lvl.defaults) > 1:
            try:  # (as the gateway fills a call that omits them all)
                together = fill_level(lvl, {})
            except FillTooLarge:
                together = None
            broke = breaks(lvl, None, path, together) if together is not None else None
            if together is None:
                out.append(Caveat(path, f"its declared defaults ({', '.join(lvl.defaults)}) together would add more "
                                        f"than {MAX_FILLED_VALUES} values to a call that omits them, so the gateway "
                                        "refuses such calls", "refused"))
            if broke:
                out.append(Caveat(path, f"its declared defaults ({', '.join(lvl.defaults)}) together make a call that "
                                        f"omits them not conform to the tool's schema ({broke}), so the gateway refuses "
                                        "such calls", "refused"))
        for k, child in lvl.children.items():
            todo.append((child, path + (k,), stack + (id(lvl),)))

    # breadth first: when the visits run out, what is left unreported is the deepest
    todo: deque = deque([(plan(schema), (), ())])
    while todo and visits[0] > 0:
        lvl, path, stack = todo.popleft()
        if len(path) > _MAX_CAVEAT_DEPTH or id(lvl) in stack:
            continue
        visits[0] -= 1
        walk(lvl, path, stack)
    return out


def _validator(schema):
    from .conformance import SchemaUnusable, compile_schema

    try:
        return compile_schema(schema)
    except (SchemaUnusable, RecursionError):
        return None  # the gateway refuses every call to the tool: nothing to say about defaults


def _bad_default(validator, sources: list, d, rebased: bool = False) -> str | None:
    try:
        json.dumps(d, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        return "is not JSON text the gateway can send"
    if validator is None or rebased:
        # (a subschema checked on its own resolves its references against the root's
        # base: under a nested `$id` that is not what the validator does, so only the
        # whole-call probe, `_breaks_call`, speaks for such a schema)
        return None
    for s in sources:
        try:
            if not validator.evolve(schema=s).is_valid(d):
                return "does not conform to the argument's own schema"
        except Exception:  # a reference the validator cannot resolve: the call check refuses it anyway
            return None
    return None


def _rebased(schema) -> bool:
    """Does a subschema below the root declare its own base (`$id`, draft-04 `id`)?"""
    stack = [schema]
    while stack:
        n = stack.pop()
        if isinstance(n, dict):
            if n is not schema and (isinstance(n.get("$id"), str) or isinstance(n.get("id"), str)):
                return True
            stack.extend(n.values())
        elif isinstance(n, list):
            stack.extend(n)
    return False


def _filled_value(lvl: Level, k: str, d):
    """The value `fill` puts at `k`: the default, with the defaults of an object it is
    filled in too (as `fill_level` does for objects that were just filled in)."""
    child = lvl.children.get(k)
    return fill_level(child, d) if child is not None else d


def _breaks_call(validator, path: tuple[str, ...], filled: dict) -> str | None:
    """Does filling `filled` into the object at `path` make a call the validator accepted
    not conform? Probed on the smallest call that reaches it (the objects along `path`,
    nothing else): the errors the filled probe has that the bare one does not are the
    defaults' doing (a `dependentRequired` the default triggers, an
    `additionalProperties: false` in another `allOf` member that does not list it, a
    `maxProperties`, a `not`…). What it says is the validator's own message. It can miss a
    default that breaks only calls shaped otherwise — the gateway still refuses each such
    call (`invalid_default`) — but what it reports is a call the gateway refuses."""
    if validator is None:
        return None

    def probe(inner: dict) -> dict:
        out = inner
        for k in reversed(path):
            out = {k: out}
        return out

    from jsonschema.exceptions import best_match
    from referencing.exceptions import Unresolvable

    from .conformance import describe

    def ident(e) -> tuple:
        return tuple(e.absolute_schema_path), tuple(e.absolute_path), e.validator

    try:
        before = {ident(e) for e in validator.iter_errors(probe({}))}
        new = [e for e in validator.iter_errors(probe(copy.deepcopy(filled))) if ident(e) not in before]
        if not new:
            return None
        return describe(best_match(new))
    except (Unresolvable, RecursionError):
        return None  # the call check refuses what needs such a reference, or nests that deep
