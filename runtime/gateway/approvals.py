"""Approvals: a person's yes or no to one exact `tools/call` an `@approval` permit holds.

An approval is bound to the call by a hash (`binding`): SHA-256 of the RFC 8785
canonical JSON of `{"tool", "arguments", "principal", "server"}` — the same call with
one argument changed, by another grant, or on another server has another binding and
needs its own approval. Each approval has an expiry (`approval_ttl` seconds from its
request) and runs its call at most once: `consume` moves it from `approved` to `used`
in one conditional UPDATE, so two identical calls racing after one approval get one run.
If the upstream certainly did not run the call (the outcomes whose limit reservation is
given back), `restore` makes it usable again; whenever the call may have run, it stays
used.

States: pending → approved | rejected (by a person, with who and how) → used; any
state but used becomes expired at its expiry. A rejection stays in force until it
expires, so an agent cannot ask again and again. The arguments are kept (they are what
the approver is shown) only until the approval expires or is used.

SQLite (`<state>/approvals.db`, WAL), shared by every gateway process and `mcpp approve`
/ `mcpp reject` on the same state directory. With Redis replicas each replica's state
directory has its own approvals (docs/approval.md says what that means).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import rfc8785

STATUSES = ("pending", "approved", "rejected", "used", "expired")
MAX_SHOWN_ARGUMENTS = 4096  # characters of canonical arguments kept to show the approver


class Unbindable(ValueError):
    """The call's arguments have no RFC 8785 form (a number outside the I-JSON range)."""


def binding(tool: str, arguments: dict, principal: str, server: str) -> str:
    """The hash an approval is bound to: tool, canonical arguments, principal and server."""
    try:
        text = rfc8785.dumps({"tool": tool, "arguments": arguments, "principal": principal, "server": server})
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as e:
        raise Unbindable(str(e)) from None
    return hashlib.sha256(text).hexdigest()


def canonical_arguments(arguments: dict) -> str:
    return rfc8785.dumps(arguments).decode("utf-8")


@dataclass
class Approval:
    id: str
    binding: str
    server: str
    grant_id: str
    grant_label: str
    tool: str
    arguments: str | None  # canonical JSON; None once expired or used
    reason: str
    rule: str
    policy_sha256: str | None
    status: str
    created: float
    expires: float
    decided_by: str | None = None
    decided_via: str | None = None
    decided_at: float | None = None
    used_at: float | None = None

    def public(self) -> dict:
        from .audit import iso_ms

        d = dict(self.__dict__)
        for k in ("created", "expires", "decided_at", "used_at"):
            if d[k] is not None:
                d[k] = iso_ms(d[k])
        return d


_COLUMNS = ("id", "binding", "server", "grant_id", "grant_label", "tool", "arguments", "reason", "rule", "policy_sha256",
            "status", "created", "expires", "decided_by", "decided_via", "decided_at", "used_at")


class ApprovalError(Exception):
    """An approver's action that cannot be done (unknown id, already decided, expired)."""


class ApprovalStore:
    def __init__(self, state_dir: str | Path, wait: bool = True):
        """`wait=False`: once opened, a write that finds the file locked by another process
        fails at once (SQLITE_BUSY) instead of sleeping up to 10 s in this thread: the
        gateway retries it from the event loop (`Runtime.approvals_write`)."""
        Path(state_dir).mkdir(parents=True, exist_ok=True)
        self.path = Path(state_dir) / "approvals.db"
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(
            """
            CREATE TABLE IF NOT EXISTS approvals (
              id TEXT PRIMARY KEY, binding TEXT NOT NULL, server TEXT NOT NULL, grant_id TEXT NOT NULL,
              grant_label TEXT NOT NULL, tool TEXT NOT NULL, arguments TEXT, reason TEXT NOT NULL, rule TEXT NOT NULL,
              policy_sha256 TEXT, status TEXT NOT NULL, created REAL NOT NULL, expires REAL NOT NULL,
              decided_by TEXT, decided_via TEXT, decided_at REAL, used_at REAL);
            CREATE INDEX IF NOT EXISTS approvals_binding ON approvals(binding, status);
            """
        )
        if not wait:
            self.db.execute("PRAGMA busy_timeout=0")

    # -- reading -----------------------------------------------------------------------------
    def _row(self, r) -> Approval:
        return Approval(**dict(zip(_COLUMNS, r)))

    def get(self, approval_id: str) -> Approval | None:
        r = self.db.execute(f"SELECT {', '.join(_COLUMNS)} FROM approvals WHERE id=?", (approval_id,)).fetchone()
        return self._row(r) if r else None

    def current(self, bind: str, now: float | None = None) -> Approval | None:
        """The newest unexpired approval of this binding that still says something:
        pending, approved or rejected (a used one has run its call)."""
        now = time.time() if now is None else now
        r = self.db.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM approvals WHERE binding=? AND status IN ('pending','approved','rejected')"
            " AND expires>? ORDER BY created DESC LIMIT 1", (bind, now)).fetchone()
        return self._row(r) if r else None

    def list(self, status: str | None = None, server: str | None = None, now: float | None = None) -> list[Approval]:
        self.expire(now)
        where, args = ["1=1"], []
        if status:
            where.append("status=?")
            args.append(status)
        if server:
            where.append("server=?")
            args.append(server)
        rows = self.db.execute(f"SELECT {', '.join(_COLUMNS)} FROM approvals WHERE {' AND '.join(where)} ORDER BY created",
                               args).fetchall()
        return [self._row(r) for r in rows]

    # -- writing -----------------------------------------------------------------------------
    def request(self, bind: str, *, server: str, grant_id: str, grant_label: str, tool: str, arguments: dict,
                reason: str, rule: str, policy_sha256: str | None, ttl: float, now: float | None = None) -> tuple[Approval, bool]:
        """The approval this call waits on: the binding's current one, or a new pending
        one. Returns (approval, created)."""
        now = time.time() if now is None else now
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            cur = self.current(bind, now)
            if cur is not None:
                db.execute("COMMIT")
                return cur, False
            shown = canonical_arguments(arguments)
            if len(shown) > MAX_SHOWN_ARGUMENTS:
                shown = shown[:MAX_SHOWN_ARGUMENTS] + f"…(+{len(shown) - MAX_SHOWN_ARGUMENTS} chars)"
            a = Approval("ap_" + secrets.token_hex(8), bind, server, grant_id, grant_label, tool, shown, reason, rule,
                         policy_sha256, "pending", now, now + ttl)
            db.execute(f"INSERT INTO approvals({', '.join(_COLUMNS)}) VALUES ({','.join('?' * len(_COLUMNS))})",
                       tuple(a.__dict__[c] for c in _COLUMNS))
            db.execute("COMMIT")
            return a, True
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def decide(self, approval_id: str, approve: bool, by: str, via: str, now: float | None = None) -> Approval:
        """A person's answer to a pending approval; ApprovalError if there is none to answer."""
        now = time.time() if now is None else now
        cur = self.db.execute(
            "UPDATE approvals SET status=?, decided_by=?, decided_via=?, decided_at=? WHERE id=? AND status='pending' AND expires>?",
            ("approved" if approve else "rejected", by, via, now, approval_id, now))
        if cur.rowcount == 1:
            return self.get(approval_id)  # type: ignore[return-value]
        a = self.get(approval_id)
        if a is None:
            raise ApprovalError(f"no approval {approval_id}")
        if a.status == "pending" or a.expires <= now:
            raise ApprovalError(f"approval {approval_id} expired at {a.public()['expires']}")
        raise ApprovalError(f"approval {approval_id} is already {a.status}"
                            + (f" (by {a.decided_by} via {a.decided_via})" if a.decided_by else ""))

    def consume(self, approval_id: str, now: float | None = None) -> bool:
        """Use an approval to run its call: true for exactly one caller."""
        now = time.time() if now is None else now
        cur = self.db.execute("UPDATE approvals SET status='used', used_at=?, arguments=NULL"
                              " WHERE id=? AND status='approved' AND expires>?", (now, approval_id, now))
        return cur.rowcount == 1

    def restore(self, approval_id: str, arguments: dict) -> None:
        """The call certainly did not run (never sent, refused before dispatch): the
        approval may run it again, until it expires."""
        self.db.execute("UPDATE approvals SET status='approved', used_at=NULL, arguments=? WHERE id=? AND status='used'",
                        (canonical_arguments(arguments), approval_id))

    def expire(self, now: float | None = None) -> int:
        """Mark what passed its expiry, and forget its arguments."""
        now = time.time() if now is None else now
        cur = self.db.execute("UPDATE approvals SET status='expired', arguments=NULL"
                              " WHERE status IN ('pending','approved','rejected') AND expires<=?", (now,))
        return cur.rowcount

    def close(self) -> None:
        self.db.close()


def answer_row(a: Approval, replica: str | None, mode: str = "enforce"):
    """The audit row of a person's answer: decision `approved` or `rejected`, outcome
    `approval`, who decided and how in the message, the approval id."""
    from .audit import AuditRow

    return AuditRow(
        ts=a.decided_at or time.time(), request_id=None, trace_id=None, grant_id=a.grant_id, grant_label=a.grant_label,
        server=a.server, tool=a.tool, decision=a.status, rule=a.rule,
        message=f"approval {a.id} {a.status} by {a.decided_by} via {a.decided_via}", arg_keys=[], outcome="approval",
        policy_sha256=a.policy_sha256, replica=replica, mode=mode, approval_id=a.id,
    )


def shown_arguments(a: Approval) -> str:
    """The arguments as the approver reads them (JSON), or why they are gone."""
    if a.arguments is None:
        return "(no longer kept)"
    try:
        return json.dumps(json.loads(a.arguments), ensure_ascii=False, indent=None)
    except ValueError:
        return a.arguments
