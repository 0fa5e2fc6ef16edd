"""Classify a tool as read, write, destructive or secret-exposing, and find its risky arguments.

Annotations come from the server, which the policy does not trust (the spec says as
much), so each verdict also weighs the tool's name: where the two disagree, the more
dangerous reading wins, and the reason says both. Only hints the server actually
declared count as evidence; the spec's defaults (destructive, open-world) are what a
silent server is *assumed* to be, which is why a tool with neither annotations nor a
recognisable name is treated as destructive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .model import ToolInfo
from .schema import resolve, root_view

DESTRUCTIVE_VERBS = {
    "delete", "remove", "drop", "destroy", "purge", "truncate", "wipe", "erase", "kill", "terminate", "revoke",
    "uninstall", "reset", "overwrite", "rm", "unlink", "shutdown", "reboot", "ban", "kick", "evict", "merge",
    "archive", "force", "format", "deprovision", "decommission",
}
WRITE_VERBS = {
    "create", "add", "update", "edit", "write", "set", "put", "post", "send", "push", "upload", "apply", "patch",
    "insert", "append", "move", "rename", "copy", "fork", "comment", "reply", "react", "toggle", "trigger", "run",
    "exec", "execute", "invoke", "start", "stop", "scale", "restart", "approve", "assign", "close", "submit",
    "save", "store", "modify", "change", "enable", "disable", "install", "deploy", "publish", "schedule",
    "transfer", "pay", "refund", "charge", "invite", "share", "subscribe", "mark", "lock", "unlock", "simulate",
    "gzip", "compress", "generate", "import", "sync", "tag", "label", "review", "new", "make", "build", "cancel",
}
READ_VERBS = {
    "get", "list", "read", "search", "find", "describe", "show", "view", "fetch", "query", "lookup", "count",
    "stat", "info", "tree", "inspect", "status", "history", "echo", "open", "diff", "log", "logs", "watch",
    "preview", "explain", "validate", "sum", "check", "browse", "lookup", "resolve", "ping", "whoami",
}
SECRET_WORDS = {"env", "environ", "secret", "secrets", "credential", "credentials", "password", "passwords", "token",
                "tokens", "apikey", "privatekey", "keychain", "vault"}

# risky argument kinds, recognised by name words (and `format: uri` for URLs)
RISKY_NAMES = {
    "path": {"path", "file", "filename", "filepath", "dir", "directory", "folder", "source", "destination", "dest"},
    "url": {"url", "uri", "href", "link", "endpoint", "webhook", "site"},
    "command": {"command", "cmd", "script", "shell", "commandline"},
    "amount": {"amount", "price", "total", "cost", "quantity", "qty", "fee", "payment", "refund", "charge"},
    "namespace": {"namespace", "ns", "environment", "cluster", "stage", "context"},
    "channel": {"channel", "room", "conversation", "chat", "recipient", "recipients", "cc", "bcc", "email"},
    "repository": {"repo", "repository", "owner", "org", "organization", "project"},
}
KIND_ORDER = ("read", "write", "destructive", "secret")


def words(name: str) -> list[str]:
    """`get-env`, `create_or_update_file`, `readTextFile`, `slack.postMessage` → lower-case words."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [w.lower() for w in re.split(r"[^A-Za-z0-9]+", spaced) if w]


@dataclass(frozen=True)
class RiskyArg:
    path: tuple[str, ...]
    kind: str  # path | url | command | amount | namespace | channel | repository
    type: str  # string | number | array (a list of them) | nested (inside a list of objects)
    required: bool  # in every call the policy decides (required, or filled in with the schema's default)
    why: str
    nullable: bool = False  # the schema allows null (the Python SDK's `x: str | None = None`)
    filled: bool = False  # optional, but the gateway fills the schema's default in when a call omits it

    @property
    def path_text(self) -> str:
        return ".".join(self.path)

    def to_dict(self) -> dict:
        return {"path": self.path_text, "kind": self.kind, "type": self.type, "required": self.required, "why": self.why,
                "nullable": self.nullable, "filled": self.filled}


@dataclass
class Classification:
    name: str
    kind: str  # read | write | destructive | secret
    reason: str
    risky: list[RiskyArg] = field(default_factory=list)
    conflict: bool = False  # annotations and name disagreed

    @property
    def unguardable(self) -> list[RiskyArg]:
        """Top-level lists of paths, URLs or commands: no mcpp rule can test each element, so
        such a tool would let a caller around the guards its siblings get."""
        return [a for a in self.risky if a.type == "array" and a.kind in ("path", "url", "command")]

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "reason": self.reason, "conflict": self.conflict,
                "risky": [a.to_dict() for a in self.risky]}


def _name_verdict(ws: list[str]) -> tuple[str | None, str | None]:
    for kind, verbs in (("destructive", DESTRUCTIVE_VERBS), ("write", WRITE_VERBS), ("read", READ_VERBS)):
        for w in ws:
            if w in verbs:
                return kind, w
    return None, None


def _annotation_verdict(declared: dict) -> tuple[str | None, str]:
    ro, de = declared.get("readOnlyHint"), declared.get("destructiveHint")
    if ro is True:
        return "read", "readOnlyHint: true"
    if de is True:
        return "destructive", "destructiveHint: true"
    if de is False:
        return "write", "readOnlyHint: false, destructiveHint: false" if ro is False else "destructiveHint: false"
    if ro is False:
        return "destructive", "readOnlyHint: false and no destructiveHint (the spec's default is destructive)"
    return None, "no annotations"


def classify(tool: ToolInfo) -> Classification:
    ws = words(tool.name)
    by_name, verb = _name_verdict(ws)
    by_ann, ann_text = _annotation_verdict(tool.declared_annotations)
    name_text = f'name says "{verb}"' if verb else "the name has no verb mcpp recognises"
    rank = {None: -1, "read": 0, "write": 1, "destructive": 2}
    # a conflict worth naming: the name makes the tool more dangerous than the server claims
    conflict = by_ann is not None and by_name is not None and rank[by_name] > rank[by_ann]
    if by_ann is None and by_name is None:
        kind = "destructive"
        reason = "no annotations and " + name_text + ": the spec's defaults make it destructive until shown otherwise"
    else:
        worst = max((by_ann, by_name), key=lambda k: rank[k])
        assert worst is not None  # one of the two is set
        kind = worst
        reason = f"{ann_text}; {name_text}"
        if conflict:
            reason += f" — the name contradicts the server's hint, so the more dangerous reading ({kind}) wins"
    if kind == "read" and any(w in SECRET_WORDS for w in ws):
        secret = next(w for w in ws if w in SECRET_WORDS)
        kind = "secret"
        reason += f'; but the name says "{secret}": it may return credentials to the model'
    risky = risky_args(tool) if kind != "destructive" else []
    return Classification(tool.name, kind, reason, risky, conflict)


def risky_args(tool: ToolInfo) -> list[RiskyArg]:
    """Arguments whose value decides the blast radius, found by name and schema (top level and
    nested objects; inside arrays they are marked `array`: no rule can test each element)."""
    out: list[RiskyArg] = []

    def visit(view, prefix: tuple[str, ...], required_chain: bool, in_array: bool, depth: int) -> None:
        if depth > 3:
            return
        names: list[str] = []
        required: set[str] = set()
        for alt in view.alts:
            props = alt.get("properties") if isinstance(alt.get("properties"), dict) else {}
            names.extend(k for k in props if k not in names)
            if isinstance(alt.get("required"), list):
                required |= {r for r in alt["required"] if isinstance(r, str)}
        for key in names:
            ch = view.child(key)
            path = prefix + (key,)
            ts = ch.view.types or frozenset()
            # required: in every call the policy decides (the gateway fills a declared default in)
            req = required_chain and (key in required or ch.filled)
            kind, why = _risk_of(key, ch.view)
            if kind is not None:
                null = ch.view.types is None or "null" in ch.view.types
                filled = required_chain and ch.filled and key not in required
                if in_array:
                    out.append(RiskyArg(path, kind, "nested", req, why, null, filled))
                elif "array" in ts and not ({"string", "number"} & ts):
                    out.append(RiskyArg(path, kind, "array", req, why, null, filled))
                elif kind == "amount" and "number" in ts:
                    out.append(RiskyArg(path, kind, "number", req, why, null, filled))
                elif kind != "amount" and "string" in ts:
                    out.append(RiskyArg(path, kind, "string", req, why, null, filled))
                continue
            if "object" in ts:
                visit(ch.view, path, req, in_array, depth + 1)
            elif "array" in ts:
                items = ch.view.items()
                if items.types is not None and "object" in items.types:
                    visit(items, path, False, True, depth + 1)

    visit(root_view(tool.input_schema), (), True, False, 0)
    return out


def _risk_of(key: str, view) -> tuple[str | None, str]:
    ws = words(key)
    fmt = {alt.get("format") for alt in view.alts} | {
        alt.get("items", {}).get("format") for alt in view.alts if isinstance(alt.get("items"), dict)}
    if "uri" in fmt or "url" in fmt or "uri-reference" in fmt:
        return "url", "the schema says format: uri"
    for kind, names in RISKY_NAMES.items():
        hit = next((w for w in ws if w in names or w.rstrip("s") in names), None)
        if hit is not None:
            return kind, f'the argument is named "{key}"'
    desc = " ".join(str(alt.get("description", "")) for alt in view.alts).lower()
    if re.search(r"\b(file|directory) path\b|\bpath to\b", desc):
        return "path", "its description speaks of a file path"
    if re.search(r"\burl\b", desc):
        return "url", "its description speaks of a URL"
    return None, ""


__all__ = ["Classification", "RiskyArg", "classify", "risky_args", "words", "resolve"]
