"""The catalog file: what one MCP server's `tools/list` said, frozen for review.

A catalog is the evidence a policy is checked against, and the pin a gateway compares
the live server with, so it must be byte-stable (same tools → same file, whatever
order the server sent keys in) and tamper-evident (each tool carries the SHA-256 of its
canonical JSON, re-checked on load). See docs/catalogs.md for the format.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcpp.lang.diagnostics import Diagnostic, MCPPError, Span
from mcpp.lang.jsontext import NOT_UNICODE, not_finite_at, not_unicode_at, read_document, reader_reason
from mcpp.lang.stack import TooDeepAnywhere, retry_on_fresh_stack

from .depth import MAX_NESTING, clip as clip_pointer, describe as describe_depth, too_deep

FORMAT_VERSION = 1

# The spec fixes these defaults (MCP `ToolAnnotations`): a tool that says nothing is
# assumed to write, destructively, non-idempotently, to the open world.
ANNOTATION_DEFAULTS = {
    "readOnlyHint": False,
    "destructiveHint": True,
    "idempotentHint": False,
    "openWorldHint": True,
}

_NOPOS = Span(0, 0, 0, 0)


class CatalogError(MCPPError):
    """A catalog that cannot be used; messages start with a JSON pointer, like the JSON form's."""

    def __init__(self, file: str, message: str, pointer: str = ""):
        text = f"{pointer}: {message}" if pointer else message
        super().__init__([Diagnostic(text, _NOPOS, "error", "catalog", file)])
        self.file = file
        self.message = message
        self.pointer = pointer


def sort_keys(value: Any) -> Any:
    """A copy with every object's keys sorted, so the file never depends on server key order."""
    if isinstance(value, dict):
        return {k: sort_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [sort_keys(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 kept: the bytes a tool's hash is taken over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def definition_of(tool: dict) -> dict:
    """The part of a wire `Tool` that is its contract: everything but `_meta`, which servers
    use for volatile bookkeeping that says nothing about what a call does."""
    return {k: v for k, v in tool.items() if k != "_meta"}


def tool_hash(tool: dict) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(definition_of(tool)).encode("utf-8")).hexdigest()


def effective_annotations(raw: Any) -> dict:
    """The four hints with the spec's defaults filled in (the title hint is kept as given)."""
    out = dict(ANNOTATION_DEFAULTS)
    if isinstance(raw, dict):
        for k, v in raw.items():
            if k in ANNOTATION_DEFAULTS:
                if isinstance(v, bool):
                    out[k] = v
            else:
                out[k] = v
    return out


@dataclass(frozen=True)
class ToolInfo:
    """One tool as catalogued. `annotations` has the spec defaults applied; `declared_annotations`
    is what the server actually sent (a classifier must know which hints are real)."""

    name: str
    title: str | None
    description: str
    input_schema: dict
    annotations: dict
    hash: str
    declared_annotations: dict = field(default_factory=dict)
    output_schema: dict | None = None
    definition: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_wire(cls, tool: dict) -> "ToolInfo":
        tool = sort_keys(definition_of(tool))
        given = tool.get("annotations")
        raw_ann = given if isinstance(given, dict) else {}
        title = tool.get("title")
        if title is None and isinstance(raw_ann.get("title"), str):
            title = raw_ann["title"]
        schema = tool.get("inputSchema")
        return cls(
            name=tool["name"],
            title=title if isinstance(title, str) else None,
            description=description if isinstance(description := tool.get("description"), str) else "",
            input_schema=schema if isinstance(schema, dict) else {"type": "object"},
            annotations=effective_annotations(raw_ann),
            hash=tool_hash(tool),
            declared_annotations=dict(raw_ann),
            output_schema=tool.get("outputSchema") if isinstance(tool.get("outputSchema"), dict) else None,
            definition=tool,
        )


@dataclass
class Catalog:
    tools: dict[str, ToolInfo]
    server_name: str | None = None
    server_version: str | None = None
    protocol_version: str | None = None
    source: str | None = None
    captured_at: str | None = None
    path: str | None = None

    @classmethod
    def from_tools(cls, tools: list[dict], **meta) -> "Catalog":
        """Build from wire `Tool` dicts (a `tools/list` result's `tools`, all pages)."""
        where = meta.get("path") or "<tools>"
        out: dict[str, ToolInfo] = {}
        for i, t in enumerate(tools):
            problem = _tool_problem(t)
            if problem:
                raise CatalogError(where, problem, f"/tools/{i}")
            deep = _depth_problem(t)
            if deep:
                raise CatalogError(where, deep[1], f"/tools/{i}{deep[0]}")
            if t["name"] in out:
                raise CatalogError(where, f"tool {t['name']!r} is listed twice", f"/tools/{i}")
            out[t["name"]] = ToolInfo.from_wire(t)
        return cls(tools=dict(sorted(out.items())), **meta)

    def to_json(self) -> dict:
        """The file's content; key order is part of the format (docs/catalogs.md)."""
        server: dict = {"name": self.server_name, "version": self.server_version}
        doc: dict = {
            "mcppCatalog": FORMAT_VERSION,
            "server": server,
            "protocolVersion": self.protocol_version,
            "source": self.source,
            "capturedAt": self.captured_at,
            "tools": {name: {"sha256": t.hash, "tool": t.definition} for name, t in self.tools.items()},
        }
        return doc

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n"

    def write(self, path: str | Path) -> None:
        Path(path).write_text(self.dumps(), encoding="utf-8")


def _depth_problem(t: Any) -> tuple[str, str] | None:
    """(the pointer below the tool, the message) when the tool's definition nests deeper
    than mcpp reads (catalog/depth.py); checked before anything recursive reads it
    (`sort_keys`, the hash, the validator, the fill of a default)."""
    deep = too_deep(t)
    if deep is None:
        return None
    return clip_pointer(deep), f"tool {t['name']!r} is {describe_depth()}"


def _tool_problem(t: Any) -> str | None:
    if not isinstance(t, dict):
        return "a tool must be a JSON object"
    if not isinstance(t.get("name"), str) or not t["name"]:
        return "a tool needs a non-empty string \"name\""
    schema = t.get("inputSchema")
    if not isinstance(schema, dict):
        return f"tool {t['name']!r}: \"inputSchema\" must be a JSON object (a JSON Schema)"
    for key in ("title", "description"):
        if key in t and t[key] is not None and not isinstance(t[key], str):
            return f"tool {t['name']!r}: \"{key}\" must be a string"
    if "annotations" in t and t["annotations"] is not None and not isinstance(t["annotations"], dict):
        return f"tool {t['name']!r}: \"annotations\" must be an object"
    return None


def parse_catalog(text: str, path: str = "<catalog>") -> Catalog:
    """Parse a catalog file, or a bare `tools/list` result (`{"tools": [...]}`) for convenience.
    Raises CatalogError naming the JSON pointer of the first problem."""
    try:
        # (json's reader recurses: from a deep stack a catalog it reads from an empty one ran
        # out, and was refused as too deep — read again from an empty stack first)
        doc = retry_on_fresh_stack(read_document, text)
    except json.JSONDecodeError as e:
        raise CatalogError(path, f"not JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    except ValueError as e:  # (an integer past 4,300 digits: hostile review 29, F13)
        raise CatalogError(path, f"not JSON that can be read: {reader_reason(e)}") from None
    except TooDeepAnywhere:  # (a plain RecursionError: this stack ran out first; a caller retries)
        raise CatalogError(path, "nested too deeply to read (a tool definition may nest at most "
                                 f"{MAX_NESTING} levels of objects and arrays)") from None
    # every command that wrote these out again raised (hostile review 30, G1): a lone
    # surrogate, and a number no float holds (`NaN`, `Infinity`, `1e99999`)
    where = not_unicode_at(doc)
    if where is not None:
        raise CatalogError(path, NOT_UNICODE, where)
    for where, message in not_finite_at(doc):
        raise CatalogError(path, message, where)
    if not isinstance(doc, dict):
        raise CatalogError(path, "a catalog is a JSON object")
    if "mcppCatalog" not in doc:
        if isinstance(doc.get("tools"), list):  # a raw tools/list result
            return Catalog.from_tools(doc["tools"], path=path)
        if isinstance(doc.get("result"), dict) and isinstance(doc["result"].get("tools"), list):
            return Catalog.from_tools(doc["result"]["tools"], path=path)  # a JSON-RPC response
        raise CatalogError(path, "not a catalog: no \"mcppCatalog\" version and no \"tools\" list")
    version = doc["mcppCatalog"]
    if version != FORMAT_VERSION:
        raise CatalogError(
            path, f"catalog format version {version!r} is not supported (this mcpp reads version {FORMAT_VERSION})",
            "/mcppCatalog")
    unknown = set(doc) - {"mcppCatalog", "server", "protocolVersion", "source", "capturedAt", "tools"}
    if unknown:
        raise CatalogError(path, f"unknown key {sorted(unknown)[0]!r}", "")
    server = doc.get("server") or {}
    if not isinstance(server, dict):
        raise CatalogError(path, "must be an object", "/server")
    tools = doc.get("tools")
    if not isinstance(tools, dict):
        raise CatalogError(path, "must be an object mapping tool names to entries", "/tools")
    wire = []
    for name, entry in tools.items():
        ptr = "/tools/" + name.replace("~", "~0").replace("/", "~1")
        if not isinstance(entry, dict) or not isinstance(entry.get("tool"), dict):
            raise CatalogError(path, "an entry is {\"sha256\": …, \"tool\": {…}}", ptr)
        if entry["tool"].get("name") != name:
            raise CatalogError(path, f"the tool's \"name\" is {entry['tool'].get('name')!r}, not {name!r}", ptr + "/tool/name")
        problem = _tool_problem(entry["tool"])
        if problem:
            raise CatalogError(path, problem, ptr + "/tool")
        deep = _depth_problem(entry["tool"])
        if deep:
            raise CatalogError(path, deep[1], ptr + "/tool" + deep[0])
        actual = tool_hash(entry["tool"])
        if entry.get("sha256") != actual:
            raise CatalogError(
                path,
                f"hash mismatch: the file says {entry.get('sha256')!r} but the definition hashes to {actual!r}; "
                "the catalog was edited after capture (pull it again rather than editing it)",
                ptr + "/sha256")
        wire.append(entry["tool"])

    def text_or_none(key, obj=doc):
        v = obj.get(key)
        return v if isinstance(v, str) else None

    return Catalog.from_tools(
        wire,
        server_name=text_or_none("name", server),
        server_version=text_or_none("version", server),
        protocol_version=text_or_none("protocolVersion"),
        source=text_or_none("source"),
        captured_at=text_or_none("capturedAt"),
        path=path,
    )


def load_catalog(path: str | Path) -> Catalog:
    """Read and verify a catalog file. Raises CatalogError (an MCPPError) on any problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError(str(p), "no such catalog file") from None
    except IsADirectoryError:
        raise CatalogError(str(p), "is a directory, not a catalog file") from None
    except UnicodeDecodeError as e:
        raise CatalogError(str(p), f"not UTF-8 text ({e.reason})") from None
    except OSError as e:
        raise CatalogError(str(p), f"cannot read: {e.strerror}") from None
    try:
        # (reading it recurses past json too — the tools' checks: from a deep stack, read again
        # from an empty one; hostile review 30, G4)
        return retry_on_fresh_stack(parse_catalog, text, str(p))
    except TooDeepAnywhere:
        raise CatalogError(str(p), "nested too deeply to read (a tool definition may nest at most "
                                   f"{MAX_NESTING} levels of objects and arrays)") from None
