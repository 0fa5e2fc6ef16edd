"""Evaluate: run the policy being edited on sample calls, like Regal's "Evaluate" lens.

Sample calls live beside the policy in `<name>.calls.jsonl` (for `refunds.mcpp`,
`refunds.calls.jsonl`): one `tools/call` a line, `{"name", "arguments", "grant"?,
"server"?}` — the format of `mcpp eval --calls`. Each call is decided on its own
(limits are checked, never consumed). Lenses: one at the top summing up every sample,
and one on each policy, limit or hide that decided some sample, naming the call and the
decision. Clicking a lens (or calling the `mcpp.evaluate` command with call objects)
shows the full decisions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from lsprotocol import types as t

from mcpp import Grant
from mcpp.lang.diagnostics import Span

from .documents import PolicyDocument

COMMAND = "mcpp.evaluate"


class CallError(ValueError):
    """A sample call or a command argument that is not a valid call."""


@dataclass
class Call:
    name: str
    arguments: object
    grant: Grant
    server: str
    line: int | None = None  # in the samples file

    def to_json(self) -> dict:
        d = {"name": self.name, "arguments": self.arguments,
             "grant": {"id": self.grant.id, "label": self.grant.label, "groups": sorted(self.grant.groups)},
             "server": self.server}
        return d

    def brief(self) -> str:
        args = json.dumps(self.arguments, ensure_ascii=False, separators=(", ", ": "))
        if len(args) > 60:
            args = args[:57] + "…}"
        return f"{self.name} {args}"


def parse_call(obj: object, where: str = "the call") -> Call:
    """A call object: `{"name": str, "arguments": {…}, "grant": id | {"id", "label", "groups"}, "server": str}`."""
    if not isinstance(obj, dict):
        raise CallError(f"{where} must be an object like {{\"name\": \"tool\", \"arguments\": {{…}}}}")
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise CallError(f"{where}: \"name\" (the tool) must be a non-empty string")
    args = obj.get("arguments", {})
    if args is None:
        args = {}
    grant = obj.get("grant")
    if grant is None:
        g = Grant()
    elif isinstance(grant, str):
        g = Grant(grant)
    elif isinstance(grant, dict) and isinstance(grant.get("id"), str):
        groups = grant.get("groups", [])
        if not isinstance(groups, list) or not all(isinstance(x, str) for x in groups):
            raise CallError(f"{where}: \"grant.groups\" must be a list of strings")
        label = grant.get("label", "")
        if not isinstance(label, str):
            raise CallError(f"{where}: \"grant.label\" must be a string")
        g = Grant(grant["id"], label, frozenset(groups))
    else:
        raise CallError(f"{where}: \"grant\" must be a grant id or {{\"id\", \"label\", \"groups\"}}")
    server = obj.get("server", "default")
    if not isinstance(server, str):
        raise CallError(f"{where}: \"server\" must be a string")
    return Call(name, args, g, server)


def samples_path(doc: PolicyDocument) -> Path | None:
    if not doc.path:
        return None
    p = Path(doc.path)
    return p.with_name(p.stem + ".calls.jsonl")


def load_samples(path: Path) -> tuple[list[Call], list[str]]:
    """The calls in a samples file, and a message per line that is not a call."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return [], []
    calls, problems = [], []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("//"):
            continue
        try:
            c = parse_call(json.loads(line), f"{path.name}:{n}")
        except json.JSONDecodeError as e:
            problems.append(f"{path.name}:{n}: not JSON ({e.msg})")
            continue
        except CallError as e:
            problems.append(str(e))
            continue
        c.line = n
        calls.append(c)
    return calls, problems


def decide(doc: PolicyDocument, call: Call) -> dict:
    """The decision for `call` (`Policy.decide`, counting nothing), as `mcpp eval` prints
    it, plus the decisive rule's range in the document."""
    policy = doc.policy()
    assert policy is not None  # a document is checked before it is evaluated
    # arguments that are not an object are decided too (denied, `/request`), never raised
    args = cast("dict[str, Any]", call.arguments)
    d = policy.decide(call.name, args, principal=call.grant, server=call.server, dry_run=True)
    out = d.to_dict()
    out["call"] = call.to_json()
    if d.span is not None:
        s = d.span
        r = doc.index.span_range(Span(s.line, s.col, s.end_line, s.end_col, s.start, s.end))
        out["range"] = {"start": {"line": r.start.line, "character": r.start.character},
                        "end": {"line": r.end.line, "character": r.end.character}}
    return out


def summary(decisions: list[dict]) -> str:
    lines = []
    for d in decisions:
        call = d["call"]
        args = json.dumps(call["arguments"], ensure_ascii=False)
        lines.append(f"{call['name']} {args} → {d['decision'].upper()} by {d['rule']}"
                     + (f": {d['message']}" if d.get("message") else ""))
    return "\n".join(lines)


def _lens_line(d: dict) -> int:
    rng = d.get("range")
    return rng["start"]["line"] if rng else 0


def code_lenses(doc: PolicyDocument) -> list[t.CodeLens]:
    path = samples_path(doc)
    if path is None or not path.is_file():
        return []
    calls, problems = load_samples(path)
    top = t.Range(start=t.Position(line=0, character=0), end=t.Position(line=0, character=0))
    if doc.errors:
        return [t.CodeLens(range=top, command=t.Command(
            title=f"▶ Evaluate: fix the {doc.errors} error{'s' if doc.errors != 1 else ''} first ({path.name})",
            command="", arguments=None))]
    if not calls and not problems:
        return []
    decisions = [decide(doc, c) for c in calls]
    allowed = sum(1 for d in decisions if d["decision"] == "allow")
    held = sum(1 for d in decisions if d["decision"] == "approval")  # @approval permits: waits for a person
    title = f"▶ Evaluate {len(calls)} sample call{'s' if len(calls) != 1 else ''} ({path.name}): " \
            f"{allowed} allow, " + (f"{held} approval, " if held else "") + f"{len(calls) - allowed - held} deny"
    if problems:
        title += f" · {len(problems)} bad line{'s' if len(problems) != 1 else ''}: {problems[0]}"
    lenses = [t.CodeLens(range=top, command=t.Command(title=title, command=COMMAND,
                                                        arguments=[{"uri": doc.uri, **c.to_json()} for c in calls]))]
    by_line: dict[int, list[tuple[Call, dict]]] = {}
    for c, d in zip(calls, decisions):
        if d.get("range"):
            by_line.setdefault(_lens_line(d), []).append((c, d))
    for line, items in sorted(by_line.items()):
        pos = t.Position(line=line, character=0)
        for c, d in items[:3]:
            lenses.append(t.CodeLens(range=t.Range(start=pos, end=pos), command=t.Command(
                title=f"{c.brief()} → {d['decision']}", command=COMMAND,
                arguments=[{"uri": doc.uri, **c.to_json()}])))
        if len(items) > 3:
            lenses.append(t.CodeLens(range=t.Range(start=pos, end=pos), command=t.Command(
                title=f"+{len(items) - 3} more", command=COMMAND,
                arguments=[{"uri": doc.uri, **c.to_json()} for c, _ in items])))
    return lenses
