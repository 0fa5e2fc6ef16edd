"""The values the public API returns: decisions, explanations, proofs, diffs, diagnostics.

Plain frozen dataclasses with typed fields, built from the toolchain's internal objects
(which stay free to change). Each has `to_dict()` giving the JSON the command line
prints for the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from mcpp.analyzer.replay import PastCall
    from mcpp.runtime.engine import Grant, User

__all__ = [
    "AssertResult", "Caveat", "Change", "Counterexample", "Decision", "Diagnostic", "Explanation", "LimitHit",
    "Replayed", "Span", "ToolDiff", "UserAttribute", "UserDeclaration",
]


@dataclass(frozen=True, slots=True)
class Span:
    """A place in a .mcpp file: 1-based line and column of the first and last character.

    `start` and `end` are the same place as 0-based code-point offsets into the text
    (`text[start:end]` is the spanned source), for tools that place it exactly (the
    language server); both are 0 where only the line and column are known. They do not
    take part in comparisons: two spans are equal when they name the same lines and
    columns of the same file."""

    file: str | None
    line: int
    col: int
    end_line: int
    end_col: int
    start: int = field(default=0, compare=False)
    end: int = field(default=0, compare=False)

    def __str__(self) -> str:
        return f"{self.file or '<input>'}:{self.line}:{self.col}"

    @staticmethod
    def _of(span, file: str | None) -> Span | None:
        """From an internal span; None where there is no source position (JSON input)."""
        if span is None or not span.line:
            return None
        return Span(file, span.line, span.col, span.end_line, span.end_col, span.start, span.end)


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in a policy. `span` is None for JSON documents, whose messages
    start with the JSON pointer of the offending value (also in `pointer`), and for
    findings about the whole file.

    `data` holds what a tool needs beyond the message, as JSON values, by key (each
    present only where it applies): `docs` (the page that explains the code), `fix` (text
    edits that resolve it), `counterexample` and `decision` (a failing assertion's call
    and its replayed decision), `assert` and `kind`, `implied_by` (the rule that makes this
    one redundant) — what `mcpp lint --format json` prints and the language server shows."""

    message: str
    severity: Literal["error", "warning", "info"]
    code: str
    file: str
    span: Span | None = None
    notes: tuple[str, ...] = ()
    pointer: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def render(self, source: str | None = None) -> str:
        """`file:line:col: severity: message` (and the line, underlined, given the source)."""
        from mcpp.lang.diagnostics import Diagnostic as _D, Span as _S

        s = self.span
        inner = _S(s.line, s.col, s.end_line, s.end_col, s.start, s.end) if s is not None else _S(0, 0, 0, 0)
        return _D(self.message, inner, self.severity, self.code, self.file, self.notes).render(source)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object `mcpp lint --format json` prints for it (line and column 0:
        no source position)."""
        s = self.span
        out: dict[str, Any] = {
            "file": self.file, "line": s.line if s else 0, "col": s.col if s else 0,
            "end_line": s.end_line if s else 0, "end_col": s.end_col if s else 0,
            "severity": self.severity, "code": self.code, "message": self.message,
        }
        if self.notes:
            out["notes"] = list(self.notes)
        if self.data:
            out["data"] = self.data
        return out

    @staticmethod
    def _of(d) -> Diagnostic:
        data = dict(d.data) if isinstance(d.data, dict) else {}
        return Diagnostic(d.message, d.severity, d.code, d.file, Span._of(d.span, d.file), tuple(d.notes),
                          data.get("pointer"), data)


@dataclass(frozen=True, slots=True)
class LimitHit:
    """The limit that denied a call: its counter, budget, window and scope, and when the
    window resets (ISO 8601, UTC)."""

    counter: str
    max: float
    window: Literal["minute", "hour", "day"]
    scope: Literal["grant", "global"]
    resets_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"counter": self.counter, "max": self.max, "window": self.window, "scope": self.scope}
        if self.resets_at is not None:
            d["resets_at"] = self.resets_at
        return d


@dataclass(frozen=True, slots=True)
class Decision:
    """The decision for one `tools/call`.

    `rule` is the JSON pointer of the deciding rule (`/tools/<tool>/require/…`,
    `/policies/<id>`, `/default`, `/hide`, `/tools/<tool>/limits/<counter>`), `policy` the
    deciding statement's id, `span` where it is in the source (None for JSON-form
    policies), `message` the text a denied caller sees. An allowed call that a limit
    counts holds its budget: call `release()` if the call then does not happen."""

    allowed: bool
    tool: str
    rule: str
    policy: str | None
    message: str
    span: Span | None = None
    limit: LimitHit | None = None
    _reservation: Any = field(default=None, repr=False, compare=False)
    needs_approval: bool = False  # an `@approval` permit allows it once a person approves
    approval: str | None = None  # what the approver is shown (the permit's `@approval` text)

    @property
    def decision(self) -> Literal["allow", "deny", "approval"]:
        """"approval": not allowed now, and allowed once a person approves this exact call."""
        if self.allowed:
            return "allow"
        return "approval" if self.needs_approval else "deny"

    def release(self) -> None:
        """Give back the limit budget this allowed call holds (idempotent; a no-op for a denial)."""
        if self._reservation is not None:
            self._reservation.release()

    def to_dict(self) -> dict[str, Any]:
        """The JSON object `mcpp eval` prints for this decision."""
        d: dict[str, Any] = {"decision": self.decision, "rule": self.rule, "message": self.message,
                             "policy": self.policy, "tool": self.tool}
        if self.span is not None and self.span.file:
            d["span"] = f"{self.span.file}:{self.span.line}:{self.span.col}"
        if self.limit is not None:
            d["limit"] = self.limit.to_dict()
        if self.needs_approval:
            d["needs_approval"] = True
            d["approval"] = self.approval
        return d

    @staticmethod
    def _of(d, filename: str | None) -> Decision:
        """From the engine's decision; `filename` is None for a JSON-form policy (no spans)."""
        limit = None
        if d.limit is not None:
            lim = d.limit
            limit = LimitHit(lim["counter"], lim["max"], lim["window"], lim["scope"], lim.get("resets_at"))
        span = Span._of(d.rule.span, filename) if filename else None
        return Decision(d.allowed, d.tool, d.rule.pointer, d.rule.policy, d.message, span, limit, d.reservation,
                        needs_approval=d.needs_approval, approval=d.approval)


@dataclass(frozen=True, slots=True)
class Explanation:
    """Cedar's full answer for one call beside the decision: the ids of the policies that
    apply (`satisfied`), of those whose evaluation errored (`errored`, which Cedar skips),
    and Cedar's reasons (`determining`: the applying policies of the deciding effect)."""

    decision: Decision
    satisfied: tuple[str, ...]
    errored: tuple[str, ...]
    determining: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"decision": self.decision.to_dict(), "satisfied": list(self.satisfied),
                "errored": list(self.errored), "determining": list(self.determining)}


@dataclass(frozen=True, slots=True)
class Counterexample:
    """A concrete call the analyzer found and the engine replayed: the tool and its
    arguments, who made it (a `Grant`, or a `User` with its attributes), on which server,
    and (for limits) the counter values it met, as `(counter, scope, window, count)`.
    `request()` is the MCP `tools/call` request, `caller()` and `brief()` the words
    `mcpp verify` and `mcpp diff` print for it, `to_dict()` its JSON."""

    tool: str
    arguments: dict[str, Any]
    principal: Grant | User
    server: str
    counters: tuple[tuple[str, str, str, Any], ...] = ()
    _witness: Any = field(default=None, repr=False, compare=False)

    def request(self) -> dict[str, Any]:
        """The MCP `tools/call` JSON-RPC request."""
        return self._witness.call()

    def caller(self) -> str:
        """Who calls, for people: `grant 'g' (label 'l') in Group::"x"`, or
        `User::"u1" {email: "a@b.c", groups: ["sre"]}`."""
        return self._witness.caller()

    def brief(self) -> str:
        """One line: the call, then who made it where (and at which counter values)."""
        return self._witness.brief()

    def to_dict(self) -> dict[str, Any]:
        """`request`, the `grant` (or, for a user, `caller`), `server` and `counters`."""
        return self._witness.to_dict()

    @staticmethod
    def _of(w) -> Counterexample | None:
        if w is None:
            return None
        d = w.to_dict()
        counters = tuple((c["counter"], c["scope"], c["window"], c["count"]) for c in d.get("counters", ()))
        return Counterexample(w.tool, w.args, w.grant, w.server, counters, w)


@dataclass(frozen=True, slots=True)
class Caveat:
    """A caveat of a typed analysis (docs/analyzer.md, "Typed analysis"): an argument a
    rule reads whose declared default the gateway does not fill (`kind` "unfilled": the
    proof treats it as possibly absent), or fills but refuses (`kind` "refused")."""

    tool: str
    argument: str
    kind: str
    reason: str
    rule: str  # the first statement that reads it
    line: int
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"tool": self.tool, "argument": self.argument, "kind": self.kind, "reason": self.reason,
                "rule": self.rule, "line": self.line, "message": self.message}

    @staticmethod
    def _of(c) -> Caveat:
        d = c.to_dict()
        return Caveat(d["tool"], d["argument"], d["kind"], d["reason"], d["rule"], d["line"], d["message"])


@dataclass(frozen=True, slots=True)
class AssertResult:
    """One `assert` statement, proved (`pass`), refuted with a counterexample (`fail`), or
    undecided in the time budget (`unknown`, with the reason in `message`/`reasons`).
    `counterexample` is a concrete call (and grant, server, counters) the engine decides
    against the assertion; `decision` is that replayed decision."""

    id: str
    kind: Literal["allow", "deny", "hidden", "visible"]
    status: Literal["pass", "fail", "unknown"]
    message: str
    span: Span | None
    tool: str | None = None
    counterexample: dict[str, Any] | None = None
    decision: dict[str, Any] | None = None
    reasons: tuple[str, ...] = ()
    tools_checked: int = 0  # how many tools the proof covered (the catalog's, or those named and one stand-in)
    witness: Counterexample | None = field(default=None, repr=False, compare=False)
    finding: Diagnostic | None = field(default=None, repr=False, compare=False)

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "kind": self.kind, "status": self.status, "message": self.message,
                             "line": self.span.line if self.span else 0, "col": self.span.col if self.span else 0,
                             "tools_checked": self.tools_checked}
        for k in ("tool", "counterexample", "decision"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        if self.reasons:
            d["reasons"] = list(self.reasons)
        return d

    @staticmethod
    def _of(r, filename: str | None, finding=None) -> AssertResult:
        d = r.to_dict()
        return AssertResult(r.id, r.kind, r.status, r.message, Span._of(r.span, filename), r.tool,
                            d.get("counterexample"), r.decision, tuple(str(x) for x in r.reasons), r.tools_checked,
                            Counterexample._of(r.witness), Diagnostic._of(finding) if finding is not None else None)


@dataclass(frozen=True, slots=True)
class Change:
    """One direction of a diff for one tool: `yes` with a concrete call (`call`) and the two
    versions' replayed decisions (`old`, `new`), `no` (proved), or `unknown` (`reason`)."""

    status: Literal["yes", "no", "unknown"]
    call: dict[str, Any] | None = None
    old: dict[str, Any] | None = None
    new: dict[str, Any] | None = None
    reason: str = ""
    witness: Counterexample | None = field(default=None, repr=False, compare=False)

    @staticmethod
    def _of(direction) -> Change:
        d = direction.to_dict()
        return Change(d["status"], d.get("call"), d.get("old"), d.get("new"), d.get("reason", ""),
                      Counterexample._of(direction.witness))


@dataclass(frozen=True, slots=True)
class ToolDiff:
    """How a change to a policy changes one tool: `looser` (some call newly allowed),
    `stricter` (some call newly denied), `both`, `equivalent` or `unknown`. `other_tools`
    marks the entry that stands for every tool neither version names."""

    tool: str
    other_tools: bool
    status: Literal["equivalent", "looser", "stricter", "both", "unknown"]
    looser: Change
    stricter: Change

    def to_dict(self) -> dict[str, Any]:
        def ch(c: Change) -> dict[str, Any]:
            d: dict[str, Any] = {"status": c.status}
            if c.call is not None:
                d.update(call=c.call, old=c.old, new=c.new)
            if c.reason:
                d["reason"] = c.reason
            return d

        return {"tool": self.tool, "other_tools": self.other_tools, "status": self.status,
                "looser": ch(self.looser), "stricter": ch(self.stricter)}

    @staticmethod
    def _of(t) -> ToolDiff:
        return ToolDiff(t.tool, t.other, t.status, Change._of(t.looser), Change._of(t.stricter))


@dataclass(frozen=True, slots=True)
class Replayed:
    """One distinct past call (`mcpp.PastCall`: what an audit knows of it) replayed against
    two versions of a policy (`mcpp.replay`), with the audit rows it stands for. `status`:
    `changes` (its decision changes), `may-change` (it would for some call the audit
    cannot tell from this one: `witness` is such a call), `unchanged`, or `unknown`
    (`reason`). `old` and `new` are the two decisions of `witness`."""

    call: PastCall
    rows: tuple[int, ...]
    status: Literal["changes", "may-change", "unchanged", "unknown"]
    witness: Counterexample | None = None
    old: dict[str, Any] | None = None
    new: dict[str, Any] | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON `mcpp diff --audit --format json` prints for it."""
        c = self.call
        d: dict[str, Any] = {"tool": c.tool, "grant_id": c.grant_id, "grant_label": c.label, "server": c.server,
                             "known": c.known, "status": self.status, "rows": len(self.rows),
                             "first_seq": min(self.rows), "last_seq": max(self.rows)}
        if self.witness is not None:
            d["call"] = self.witness.to_dict()
            d["old"], d["new"] = self.old, self.new
        if self.reason:
            d["reason"] = self.reason
        return d

    @staticmethod
    def _of(r) -> Replayed:
        return Replayed(r.call, tuple(r.rows), r.status, Counterexample._of(r.witness), r.old, r.new, r.reason)


@dataclass(frozen=True, slots=True)
class UserAttribute:
    """One attribute of the policy's `entity User` declaration: `email: String` or, with
    `optional`, `refund_cap?: Long`. `type` is written as in the source (`String`,
    `Long`, `Bool`, `Set<String>`, …)."""

    name: str
    type: str
    optional: bool = False


@dataclass(frozen=True, slots=True)
class UserDeclaration:
    """The policy's `entity User` declaration (docs/language.md): what an authenticated
    user must bring to be decided — each attribute, typed — and whether users may be in
    groups (`entity User in [Group]`). A `User` principal that does not fit it is denied
    (rule `/principal`)."""

    attributes: tuple[UserAttribute, ...]
    groups: bool
    span: Span | None = None

    def attribute(self, name: str) -> UserAttribute | None:
        return next((a for a in self.attributes if a.name == name), None)

    @staticmethod
    def _of(decl, filename: str | None) -> UserDeclaration:
        return UserDeclaration(tuple(UserAttribute(a.name, a.type, bool(a.optional)) for a in decl.attrs),
                               "Group" in tuple(decl.parents), Span._of(decl.span, filename) if filename else None)
