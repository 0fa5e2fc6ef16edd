"""Drift: how a server's tools differ from a reviewed catalog.

A remote server can change a tool's contract after the policy was reviewed (the "rug
pull"): a new argument the policy does not guard, a description that now instructs the
model, a tool that turned destructive. `diff_catalogs` shows it for CI; `check_pinned`
lets the gateway refuse calls to tools whose definition no longer matches the pin.
"""

from __future__ import annotations

import json

from .model import Catalog, definition_of, sort_keys, tool_hash

# The fields of a tool definition, in the order a reviewer cares about them.
FIELDS = ("inputSchema", "description", "annotations", "title", "outputSchema")
MAX_DETAILS = 20


def _esc(k: str) -> str:
    return k.replace("~", "~0").replace("/", "~1")


def json_changes(old, new, pointer: str = "") -> list[dict]:
    """Leaf-level differences as JSON pointers: `{"pointer", "change": added|removed|changed, "old"?, "new"?}`."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[dict] = []
        for k in sorted(set(old) | set(new)):
            p = f"{pointer}/{_esc(k)}"
            if k not in old:
                out.append({"pointer": p, "change": "added", "new": new[k]})
            elif k not in new:
                out.append({"pointer": p, "change": "removed", "old": old[k]})
            else:
                out.extend(json_changes(old[k], new[k], p))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for i, (a, b) in enumerate(zip(old, new)):
            out.extend(json_changes(a, b, f"{pointer}/{i}"))
        return out
    if old == new and type(old) is type(new):
        return []
    return [{"pointer": pointer or "/", "change": "changed", "old": old, "new": new}]


def tool_changes(old_def: dict, new_def: dict) -> list[dict]:
    """Per changed field: `{"field", "changes": [...]}` (fields outside FIELDS are reported too)."""
    a, b = sort_keys(definition_of(old_def)), sort_keys(definition_of(new_def))
    fields = list(FIELDS) + sorted((set(a) | set(b)) - set(FIELDS) - {"name"})
    out = []
    for f in fields:
        if a.get(f) != b.get(f) or (f in a) != (f in b):
            changes = json_changes(a.get(f), b.get(f))
            out.append({"field": f, "changes": changes[:MAX_DETAILS], "more": max(0, len(changes) - MAX_DETAILS)})
    return out


def diff_catalogs(old: Catalog, new: Catalog) -> dict:
    """`{"added": [...], "removed": [...], "changed": [{"name", "old_hash", "new_hash", "fields": [...]}],
    "server": {"old": …, "new": …}}`; tools in name order."""
    added = sorted(set(new.tools) - set(old.tools))
    removed = sorted(set(old.tools) - set(new.tools))
    changed = []
    for name in sorted(set(old.tools) & set(new.tools)):
        o, n = old.tools[name], new.tools[name]
        if o.hash != n.hash:
            changed.append({"name": name, "old_hash": o.hash, "new_hash": n.hash,
                            "fields": tool_changes(o.definition, n.definition)})
    return {
        "added": added,
        "removed": removed,
        "changed": changed,
        "server": {"old": {"name": old.server_name, "version": old.server_version},
                   "new": {"name": new.server_name, "version": new.server_version}},
    }


def has_drift(diff: dict) -> bool:
    return bool(diff["added"] or diff["removed"] or diff["changed"])


def _short(v, width: int = 70) -> str:
    text = json.dumps(v, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= width else text[: width - 1] + "…"


def render_text(diff: dict, old_name: str = "OLD", new_name: str = "NEW") -> str:
    """A reviewer's summary: one line per tool, then what changed in each changed tool."""
    lines = []
    so, sn = diff["server"]["old"], diff["server"]["new"]
    if so != sn:
        lines.append(f"server: {so['name']} {so['version']} → {sn['name']} {sn['version']}")
    for name in diff["added"]:
        lines.append(f"+ {name}  (added)")
    for name in diff["removed"]:
        lines.append(f"- {name}  (removed)")
    for ch in diff["changed"]:
        lines.append(f"~ {ch['name']}  (changed: {', '.join(f['field'] for f in ch['fields'])})")
        for f in ch["fields"]:
            for c in f["changes"]:
                where = f["field"] + ("" if c["pointer"] == "/" else c["pointer"])
                if c["change"] == "added":
                    lines.append(f"    {where}: added {_short(c['new'])}")
                elif c["change"] == "removed":
                    lines.append(f"    {where}: removed (was {_short(c['old'])})")
                elif isinstance(c["old"], str) and isinstance(c["new"], str):
                    # text in full: a description is where a poisoned instruction would hide
                    lines.append(f"    {where}:")
                    lines.append(f"      - {json.dumps(c['old'], ensure_ascii=False)}")
                    lines.append(f"      + {json.dumps(c['new'], ensure_ascii=False)}")
                else:
                    lines.append(f"    {where}: {_short(c['old'], 40)} → {_short(c['new'], 40)}")
            if f["more"]:
                lines.append(f"    … and {f['more']} more change{'s' if f['more'] != 1 else ''} in {f['field']}")
    if not lines or not has_drift(diff):
        lines.append(f"no tool changes between {old_name} and {new_name}")
    else:
        n = len(diff["added"]) + len(diff["removed"]) + len(diff["changed"])
        lines.append(f"{n} tool{'s' if n != 1 else ''} differ: {len(diff['added'])} added, "
                     f"{len(diff['removed'])} removed, {len(diff['changed'])} changed")
    return "\n".join(lines) + "\n"


def check_pinned(catalog: Catalog, live_tools: list[dict]) -> dict[str, str]:
    """Tools the live server lists that must not be called under this pin: tool name → a reason
    a person can read, for the denial message and the drift log.

    A live tool is refused when the pinned catalog lacks it (added after review) or when
    its definition's hash differs from the pinned one (changed after review). Tools the
    pin has but the server no longer lists are not in the result: there is nothing to
    call. A malformed entry or a name listed twice with different definitions is refused
    too (fail closed). Tools that match their pin are not in the result.
    """
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    for t in live_tools:
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            continue  # nothing can call a tool without a name
        name = t["name"]
        h = tool_hash(t)
        if name in seen:
            if seen[name] != h:
                out[name] = f"the server lists tool {name!r} twice with different definitions"
            continue
        seen[name] = h
        pinned = catalog.tools.get(name)
        if pinned is None:
            out[name] = (f"tool {name!r} is not in the pinned catalog"
                         f"{' ' + repr(catalog.path) if catalog.path else ''}: it was added after the policy was reviewed")
        elif pinned.hash != h:
            fields = [f["field"] for f in tool_changes(pinned.definition, t)]
            out[name] = (f"the definition of tool {name!r} changed since it was pinned "
                         f"({', '.join(fields) or 'definition'} differ; pinned {pinned.hash[:19]}…, live {h[:19]}…)")
    return out
