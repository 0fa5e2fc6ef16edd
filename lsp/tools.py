"""Tools and their arguments, as the catalog describes them, for hover and completion."""

from __future__ import annotations

import json
import re

from mcpp.lang.program import AssertInfo, LimitInfo, PolicyInfo, Program

_SCOPE_EQ = re.compile(r'\baction\s*==\s*Action::"((?:[^"\\\n]|\\.)*)"')
_SCOPE_IN = re.compile(r'\baction\s+in\s+Action::"((?:[^"\\\n]|\\.)*)"')
_SCOPE_LIST = re.compile(r"\baction\s+in\s+\[([^\]]*)\]")
_ACTION = re.compile(r'Action::"((?:[^"\\\n]|\\.)*)"')


def statement_tools(program: Program | None, stmt) -> list[str] | None:
    """The tools a parsed statement's scope names (groups expanded); None = any tool."""
    if program is None or stmt is None:
        return None
    infos: list[PolicyInfo | LimitInfo | AssertInfo] = [*program.policies, *program.limits, *program.asserts]
    for info in infos:
        if info.stmt is stmt:
            return None if info.tools is None else sorted(info.tools)
    return None


def text_tools(program: Program | None, text: str) -> list[str] | None:
    """The tools named by the scope of a statement still being typed (it may not parse)."""
    groups = program.groups if program is not None else {}
    m = _SCOPE_EQ.search(text)
    if m:
        return [m.group(1)]
    m = _SCOPE_IN.search(text)
    if m:
        return sorted(groups.get(m.group(1), {m.group(1)}))
    m = _SCOPE_LIST.search(text)
    if m:
        out: set[str] = set()
        for name in _ACTION.findall(m.group(1)):
            out |= groups.get(name, {name})
        return sorted(out)
    return None


def types_text(view) -> str:
    from mcpp.catalog.schema import describe_types

    if view is None:
        return "never present"
    text = describe_types(view.types)
    values = view.values
    if values is not None and 0 < len(values) <= 12:
        text += ", one of " + ", ".join(json.dumps(v, ensure_ascii=False) for v in values)
    return text


def description_of(view) -> str:
    if view is None:
        return ""
    for alt in view.alts:
        d = alt.get("description")
        if isinstance(d, str) and d.strip():
            return d.strip()
    return ""


def argument_info(catalog, tools: list[str], path: tuple[str, ...]) -> list[tuple[str, object]]:
    """(tool, PathInfo) for each catalogued tool in `tools`."""
    from mcpp.catalog.schema import follow

    return [(t, follow(catalog.tools[t].input_schema, path, t)) for t in tools if t in catalog.tools]


def properties(catalog, tools: list[str], path: tuple[str, ...]) -> dict[str, dict]:
    """The keys the value at `path` may have, merged over `tools`: name → {types, doc,
    required, tools}."""
    from mcpp.catalog.schema import root_view

    out: dict[str, dict] = {}
    for t in tools:
        info = catalog.tools.get(t)
        if info is None:
            continue
        view = root_view(info.input_schema)
        ok = True
        for key in path:
            ch = view.child(key)
            if ch.status == "absent":
                ok = False
                break
            view = ch.view
        if not ok:
            continue
        names = view.child("\0").siblings
        for name in names:
            ch = view.child(name)
            entry = out.setdefault(name, {"types": types_text(ch.view), "doc": description_of(ch.view),
                                          "required": ch.required, "tools": []})
            entry["tools"].append(t)
    return out


def schema_markdown(schema: dict, limit: int = 2500) -> str:
    text = json.dumps(schema, indent=2, ensure_ascii=False)
    if len(text) > limit:
        text = text[:limit] + "\n…"
    return f"```json\n{text}\n```"


def tool_markdown(catalog, name: str, program: Program | None) -> str:
    """A tool's hover: catalog description, hints, arguments and schema; which rules name it."""
    lines = [f"**tool** `{name}`"]
    info = catalog.tools.get(name) if catalog is not None else None
    if catalog is None:
        lines.append("No tool catalog is configured: name one with `@catalog(\"tools.json\")` on the `default` "
                     "statement, an `mcpp.toml`, or the `mcpp.catalog` setting to see its description and schema.")
    elif info is None:
        server = catalog.server_name or "the server"
        lines.append(f"⚠ The catalog of {server} has no tool `{name}`.")
    else:
        if info.title:
            lines[0] += f" — {info.title}"
        if info.description:
            lines.append(info.description.strip())
        hints = [k for k in ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint")
                 if info.annotations.get(k) is True]
        if hints:
            declared = info.declared_annotations or {}
            lines.append("Hints: " + ", ".join(h + ("" if h in declared else " (default)") for h in hints))
        props = properties(catalog, [name], ())
        if props:
            rows = [f"- `{k}`{'' if v['required'] else '?'}: {v['types']}" + (f" — {v['doc']}" if v["doc"] else "")
                    for k, v in props.items()]
            lines.append("Arguments (`?` = optional):\n" + "\n".join(rows))
        lines.append("Input schema:\n" + schema_markdown(info.input_schema))
    if program is not None:
        users = [f"{p.effect} `{p.id}`" for p in program.policies if p.tools and name in p.tools]
        users += [f"limit `{li.id}`" for li in program.limits if li.tools and name in li.tools]
        if name in program.hidden:
            users.insert(0, "hidden")
        groups = sorted(g for g, members in program.groups.items() if name in members)
        if groups:
            users.append("in group " + ", ".join(f"`{g}`" for g in groups))
        if users:
            lines.append("In this policy: " + "; ".join(users))
    return "\n\n".join(lines)
