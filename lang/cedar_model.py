"""mcpp's request model in Cedar terms: the entity type names, the Cedar types of tool
arguments (from each tool's JSON Schema), and the Cedar schema text that declares them.

Both directions use it: `lang.cedar_export` writes policies and a schema with these
names and types, `lang.cedar_import` reads a Cedar file's own type names into it. The
schema follows the shape of cedar-for-agents' MCP schema generator
(`cedar-policy-mcp-schema-generator`): entity types for the principal and the resource,
one action per tool whose context is `{ input: <tool>Input }`, and action groups as
actions the tools are `in`. It differs from the generator's defaults where mcpp's
meaning needs it, as its `objectsAsRecords` and `numbersAsDecimal` options do: objects
are records, JSON `number` is `decimal` (as AgentCore maps it); and enums stay `String`
(mcpp compares them as strings). docs/cedar.md lists every mapping.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .strings import quote

IDENT = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*\Z")
# Cedar's reserved identifiers: never an attribute name after `.`, never a bare `has` key.
RESERVED = {"true", "false", "if", "then", "else", "in", "is", "like", "has", "__cedar"}
# Cedar's built-in type names, which a common type may not take.
BUILTIN_TYPES = {"Bool", "Boolean", "String", "Long", "Set", "Record", "Entity", "Extension"}

LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
DECIMAL_SCALE = 10_000  # Cedar's decimal: an i64 count of 1/10,000ths


@dataclass(frozen=True)
class CedarNames:
    """The Cedar entity type names of mcpp's types, fully qualified.

    mcpp's own names are the default. `with_namespace("NS")` puts all of them in one
    namespace (the generator's shape); an imported file keeps the names it used, so
    exporting it again writes them back. `user` is the type of callers authenticated by
    an OAuth token (mcpp's `User`, typed by `entity User`); None: the model has no users
    (AgentCore's principal is one OAuthUser type, read as mcpp's grant)."""

    principal: str = "Grant"
    group: str | None = "Group"
    resource: str = "Server"
    action: str = "Action"
    # AgentCore (`CedarNames.agentcore`): tool t is the action `<target>___t`, and the
    # resource is one gateway, scoped as AgentCore requires (docs/cedar.md)
    action_prefix: str = ""
    gateway: str | None = None
    user: str | None = "User"

    @staticmethod
    def with_namespace(namespace: str | None) -> "CedarNames":
        if not namespace:
            return CedarNames()
        return CedarNames(f"{namespace}::Grant", f"{namespace}::Group", f"{namespace}::Server", f"{namespace}::Action",
                          user=f"{namespace}::User")

    @staticmethod
    def agentcore(gateway_arn: str, target: str) -> "CedarNames":
        """Amazon Bedrock AgentCore Policy's model: principals are `AgentCore::OAuthUser`
        (no label, no groups: JWT claims are tags), the resource is the gateway
        `AgentCore::Gateway::"<arn>"`, and a target's tool t is `AgentCore::Action::"<target>___t"`."""
        return CedarNames("AgentCore::OAuthUser", None, "AgentCore::Gateway", "AgentCore::Action",
                          action_prefix=f"{target}___", gateway=gateway_arn, user=None)

    def action_ref(self, tool: str) -> str:
        return f"{self.action}::{quote(self.action_prefix + tool)}"

    def of(self, mcpp_type: str) -> str | None:
        """The Cedar name of an mcpp entity type (None: no Cedar type, e.g. no group type)."""
        return {"Grant": self.principal, "Group": self.group, "Server": self.resource, "Action": self.action,
                "User": self.user}.get(mcpp_type)

    @property
    def namespace(self) -> str:
        """The namespace of the action type (where the schema declares everything)."""
        return self.action.rpartition("::")[0]


def namespace_ok(ns: str) -> bool:
    return all(IDENT.match(p) and p not in RESERVED for p in ns.split("::"))


# ---- Cedar types of tool arguments -------------------------------------------------


@dataclass(frozen=True)
class CType:
    """A Cedar type: `String`, `Long`, `Bool`, `decimal`, `Set` (of `elem`), `Record`
    (`attrs`: name → (type, required)), `Entity` (of `entity`), or `Opaque`: a JSON
    Schema Cedar cannot represent (`why`), left out of the schema and never read."""

    kind: str
    elem: "CType | None" = None
    attrs: tuple[tuple[str, "CType", bool], ...] = ()
    entity: str | None = None
    why: str = ""

    def attr(self, name: str) -> tuple["CType", bool] | None:
        for n, t, req in self.attrs:
            if n == name:
                return t, req
        return None

    def __str__(self) -> str:
        if self.kind == "Set":
            return f"Set<{self.elem}>"
        if self.kind == "Record":
            return "{" + ", ".join(f"{n}{'' if r else '?'}: {t}" for n, t, r in self.attrs) + "}"
        if self.kind == "Entity":
            return str(self.entity)
        if self.kind == "Opaque":
            return f"(no Cedar type: {self.why})"
        return self.kind


STRING, LONG, BOOL, DECIMAL = CType("String"), CType("Long"), CType("Bool"), CType("decimal")
EMPTY_RECORD = CType("Record")


def opaque(why: str) -> CType:
    return CType("Opaque", why=why)


def ctype_of(schema: object, depth: int = 0) -> CType:
    """The Cedar type of a JSON Schema (one tool argument). Unions, `null`, `$ref`s and
    untyped values have none (Opaque)."""
    if depth > 32:
        return opaque("nested more than 32 levels deep")
    if not isinstance(schema, dict):
        return opaque("not a JSON Schema object")
    if "$ref" in schema:
        return opaque("a $ref (references are not resolved)")
    for key in ("anyOf", "oneOf", "allOf", "not"):
        if key in schema:
            return opaque(f"a union ({key})")
    t = schema.get("type")
    if isinstance(t, list):
        kinds = [k for k in t if k != "null"]
        if len(kinds) == 1 and len(t) == 1:
            t = kinds[0]
        else:
            return opaque(f"a union of types {t}")
    if t is None:
        if "properties" in schema:
            t = "object"
        elif isinstance(schema.get("enum"), list) and schema["enum"] and all(isinstance(v, str) for v in schema["enum"]):
            t = "string"
        elif "const" in schema and isinstance(schema["const"], str):
            t = "string"
        else:
            return opaque("no \"type\"")
    if t == "string":
        return STRING
    if t == "integer":
        return LONG
    if t == "number":
        return DECIMAL
    if t == "boolean":
        return BOOL
    if t == "array":
        items = schema.get("items")
        if not isinstance(items, dict):
            return opaque("an array without one \"items\" schema")
        elem = ctype_of(items, depth + 1)
        if elem.kind == "Opaque":
            return opaque(f"an array of {elem.why}")
        return CType("Set", elem=elem)
    if t == "object":
        props = schema.get("properties") or {}
        if not isinstance(props, dict):
            return opaque("\"properties\" is not an object")
        listed = schema.get("required")
        required = listed if isinstance(listed, list) else []
        attrs = []
        for name in sorted(props):
            at = ctype_of(props[name], depth + 1)
            if at.kind == "Opaque":
                attrs.append((name, at, False))
            else:
                attrs.append((name, at, name in required))
        return CType("Record", attrs=tuple(attrs))
    if t == "null":
        return opaque("null (Cedar has no null)")
    return opaque(f"type {t!r}")


def declared_type(t: str) -> CType:
    """The Cedar type of an `entity User` attribute type (`String`, `Long`, `Bool`,
    `Set<…>` of those: lang.identity.ATTR_TYPES), which is already Cedar's."""
    if t.startswith("Set<") and t.endswith(">"):
        return CType("Set", elem=declared_type(t[4:-1]))
    scalar = {"String": STRING, "Long": LONG, "Bool": BOOL}.get(t)
    if scalar is None:
        raise ValueError(f"not a declared attribute type: {t!r}")
    return scalar


@dataclass(frozen=True)
class SchemaUser:
    """The user principal type of a schema: its attributes (a Record type) and whether
    users may be in groups (`entity User in [Group]`)."""

    attrs: CType
    in_groups: bool = True


def input_type(input_schema: dict) -> CType:
    """A tool's `context.input` record. Opaque attributes stay in it (so a policy that
    reads one is refused with the reason) but the schema text leaves them out."""
    t = ctype_of(input_schema)
    if t.kind == "Record":
        return t
    return EMPTY_RECORD


# ---- schema text ------------------------------------------------------------------------


def _type_text(t: CType, indent: str) -> str:
    if t.kind == "Set":
        return f"Set<{_type_text(t.elem, indent)}>"  # type: ignore[arg-type]
    if t.kind == "Record":
        fields = [(n, ty, r) for n, ty, r in t.attrs if ty.kind != "Opaque"]
        if not fields:
            return "{}"
        inner = indent + "  "
        lines = [f"{inner}{quote(n)}{'' if r else '?'}: {_type_text(ty, inner)}" for n, ty, r in fields]
        return "{\n" + ",\n".join(lines) + "\n" + indent + "}"
    if t.kind == "Entity":
        return str(t.entity)
    return t.kind


@dataclass
class SchemaAction:
    """One Cedar action: a tool (with its input type) or an action group (None)."""

    name: str
    parents: list[str] = field(default_factory=list)
    input: CType | None = None


def _local(name: str, namespace: str) -> str:
    """A type name as written inside `namespace { … }`."""
    prefix = namespace + "::"
    return name[len(prefix):] if namespace and name.startswith(prefix) else name


def input_type_name(tool: str, taken: set[str]) -> str | None:
    """The generator's `<tool>Input` common type name, when the tool name makes one."""
    name = f"{tool}Input"
    if IDENT.match(name) and name not in RESERVED and name not in BUILTIN_TYPES and name not in taken:
        return name
    return None


def schema_text(names: CedarNames, actions: list[SchemaAction], *, header: str = "", user: SchemaUser | None = None,
                grants: bool = True) -> str:
    """The Cedar schema (human-readable form) declaring mcpp's entity types and `actions`.
    `user`: callers may also be users (`entity User` in the policy): the schema declares
    the user type with its attributes, and every action's principals include it.
    `grants=False` (with `user`): users are the only callers, as in an imported Cedar file
    whose schema types its principal."""
    if names.gateway is not None:
        return _agentcore_schema(names, actions, header)
    ns = names.namespace
    ind = "  " if ns else ""
    out: list[str] = []
    if header:
        out += [f"// {line}" if line else "//" for line in header.splitlines()]
    if ns:
        out.append(f"namespace {ns} {{")
    if user is not None and names.user is None:
        raise ValueError("this Cedar model has no user type")
    user_name = _local(names.user, ns) if user is not None and names.user else None
    entity_names = {_local(n, ns) for n in (names.principal, names.group, names.resource) if n}
    if user_name:
        entity_names.add(user_name)
    common: list[str] = []
    type_names: dict[str, str] = {}
    for a in actions:
        if a.input is not None:
            tname = input_type_name(a.name, entity_names | set(type_names.values()))
            if tname is not None:
                type_names[a.name] = tname
                common.append(f"{ind}type {tname} = {_type_text(a.input, ind)};")
    out += common
    if names.group:
        out.append(f"{ind}entity {_local(names.group, ns)};")
    principal_types = []
    if grants or not user_name:
        if names.group:
            out.append(f"{ind}entity {_local(names.principal, ns)} in [{_local(names.group, ns)}] = {{")
        else:
            out.append(f"{ind}entity {_local(names.principal, ns)} = {{")
        out.append(f"{ind}  \"label\": String")
        out.append(f"{ind}}};")
        principal_types.append(_local(names.principal, ns))
    if user_name and user is not None:
        parents = f" in [{_local(names.group, ns)}]" if user.in_groups and names.group else ""
        out.append(f"{ind}entity {user_name}{parents} = {_type_text(user.attrs, ind)};")
        principal_types.append(user_name)
    principals = ", ".join(principal_types)
    out.append(f"{ind}entity {_local(names.resource, ns)};")
    for a in actions:
        line = f"{ind}action {quote(a.name)}"
        if a.parents:
            line += " in [" + ", ".join(f"Action::{quote(p)}" for p in a.parents) + "]"
        if a.input is None:
            out.append(line + ";")
            continue
        ctx = type_names.get(a.name) or _type_text(a.input, ind + "    ")
        out.append(line + " appliesTo {")
        out.append(f"{ind}  principal: [{principals}],")
        out.append(f"{ind}  resource: [{_local(names.resource, ns)}],")
        out.append(f"{ind}  context: {{ \"input\": {ctx} }}")
        out.append(f"{ind}}};")
    if ns:
        out.append("}")
    return "\n".join(out) + "\n"


def _agentcore_schema(names: CedarNames, actions: list[SchemaAction], header: str) -> str:
    """AgentCore generates its schema from the gateway's tool manifest; this is that
    schema as its documentation describes it (OAuthUser with `id` and string tags, the
    Gateway, tool actions under the target, CallTool and Mcp), for checking the export
    locally. The hierarchy above the tools is our reading of the documentation."""
    target = names.action_prefix[:-3]
    out = [f"// {line}" if line else "//" for line in header.splitlines()]
    out.append("namespace AgentCore {")
    out.append('  entity OAuthUser = { "id": String } tags String;')
    out.append("  entity Gateway;")
    out.append('  action "Mcp";')
    out.append('  action "CallTool" in [Action::"Mcp"];')
    out.append(f'  action {quote(target)} in [Action::"CallTool"];')
    for a in actions:
        if a.input is None:
            continue
        name = names.action_prefix + a.name
        out.append(f"  action {quote(name)} in [Action::{quote(target)}] appliesTo {{")
        out.append("    principal: [OAuthUser],")
        out.append("    resource: [Gateway],")
        out.append(f'    context: {{ "input": {_type_text(a.input, "    ")} }}')
        out.append("  };")
    out.append("}")
    return "\n".join(out) + "\n"
