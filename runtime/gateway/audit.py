"""The audit log: one durable row per decided `tools/call`, written before the response.

SQLite in WAL mode. With `synchronous=NORMAL` (the default) a committed row is in the
WAL file when `write` returns, so it survives the gateway being SIGKILLed (the OS still
has it); `synchronous=FULL` also survives power loss, at an fsync per call. Argument
*keys* are stored, never values.

A forwarded call's row is made durable before the call is forwarded by one append to the
gateway's audit journal (`AuditJournal`, below), and committed to the database right after
the call is sent, while the upstream works, before the client reads the answer. A denied
call's row is committed before the denial is sent. The commit's cost is on every call, so
one index (on time, for `--since`/`--until`/`--follow`) is kept; queries by grant or tool
scan (each secondary index cost about a third more per row on the development machine;
databases created before keep the indexes they have). `seq` is the rowid without
AUTOINCREMENT, which would write SQLite's sequence table on every insert (a quarter to a
third of a commit's cost here): the gateway never deletes a row (retention erases values,
`purge_values`), so the largest seq plus one is always a new number, and `seq` only grows.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import sqlite3
import time
from typing import Any
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

COLUMNS = (
    "seq", "ts", "request_id", "trace_id", "grant_id", "grant_label", "server", "tool", "decision", "rule",
    "message", "arg_keys", "outcome", "policy_sha256", "replica",
    "mode", "shadow_decision", "shadow_rule", "shadow_sha256", "approval_id", "grant_groups", "arg_values",
    "issuer", "subject", "jid",
)
# columns added after the first release: added to an older database when it is opened
_ADDED = {"mode": "TEXT", "shadow_decision": "TEXT", "shadow_rule": "TEXT", "shadow_sha256": "TEXT",
          "approval_id": "TEXT", "grant_groups": "TEXT", "arg_values": "TEXT", "issuer": "TEXT", "subject": "TEXT",
          "jid": "TEXT"}


@dataclass
class AuditRow:
    ts: float
    request_id: str | None
    trace_id: str | None
    grant_id: str
    grant_label: str
    server: str
    tool: str
    decision: str  # allow | deny | approval; approved | rejected for a person's answer
    rule: str
    message: str
    arg_keys: list[str]
    outcome: str  # forwarded | denied | awaiting_approval | upstream_error | … | approval (a person's answer)
    policy_sha256: str | None = None
    replica: str | None = None
    mode: str = "enforce"  # enforce | log-only (nothing was denied on the policy's word)
    shadow_decision: str | None = None  # the shadow policy's decision (docs/rollout.md), if one decided
    shadow_rule: str | None = None
    shadow_sha256: str | None = None
    approval_id: str | None = None
    grant_groups: list[str] | None = None  # the groups the call was decided with
    arg_values: str | None = None  # opt-in (audit_values): hashed or full values, JSON
    issuer: str | None = None  # an OAuth caller: the token's issuer (grant callers: None)
    subject: str | None = None  # …and the user's id (a keyed pseudonym when `sub` is a private claim)
    jid: str | None = None  # the row's id in the audit journal, if it went through one (AuditJournal)


def _values(r: AuditRow) -> tuple:
    return (r.ts, r.request_id, r.trace_id, r.grant_id, r.grant_label, r.server, r.tool, r.decision, r.rule,
            r.message, json.dumps(r.arg_keys), r.outcome, r.policy_sha256, r.replica,
            r.mode, r.shadow_decision, r.shadow_rule, r.shadow_sha256, r.approval_id,
            json.dumps(r.grant_groups) if r.grant_groups is not None else None, r.arg_values, r.issuer, r.subject, r.jid)


class GroupCommit:
    """Rows submitted in one event-loop turn share one commit; each caller still waits for
    its own row to be committed before it answers, so durability per response is kept."""

    def __init__(self, log: "AuditLog", journal: "AuditJournal | None" = None):
        self.log = log
        self.journal = journal  # told when rows it holds are committed (it may then be emptied)
        self.pending: list = []
        self.scheduled = False

    def submit(self, row: AuditRow):
        import asyncio

        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.pending.append((row, fut))
        if not self.scheduled:
            self.scheduled = True
            loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        self.scheduled = False
        batch, self.pending = self.pending, []
        try:
            seqs = self.log.write_many([r for r, _ in batch]) if len(batch) > 1 else [self.log.write(batch[0][0])]
        except Exception as e:
            for _, f in batch:
                if not f.done():
                    f.set_exception(e)
            return
        for (_, f), s in zip(batch, seqs):
            if not f.done():
                f.set_result(s)
        if self.journal is not None:
            journaled = sum(1 for r, _ in batch if r.jid is not None)
            if journaled:
                self.journal.committed(journaled, max(seqs))


class AuditJournal:
    """The durable half of a forwarded call's audit row, written before the call is forwarded.

    Why: committing a row to SQLite is a transaction (locks, two WAL frames, about ten
    system calls; 60–190 µs on the development machine), and it had to finish before the call
    could be sent. One append to this file is one write(2), which leaves the row as durable
    as a commit with `synchronous=NORMAL`: the OS has it once the write returns, so it
    survives the gateway being SIGKILLed (with `synchronous=FULL` the append is also
    fdatasync'd, so it survives a power loss). The row is then committed to the database
    in the next event-loop turn, after the call has been sent, while the upstream works,
    and before the client reads the answer; `committed` counts it off.

    Each gateway process writes a journal of its own (`<state>/audit-journal/<pid>-<random>.jsonl`)
    and holds an exclusive `flock` on it while it runs. A journal whose lock is free belongs
    to a gateway that is gone: the next `AuditLog` opened on the state directory (a
    gateway's start, `mcpp audit`) inserts the rows the database lacks (`recover_journals`)
    and removes it. The first line holds `base_seq`, a sequence number below every row
    the journal holds, so recovery compares ids only with the rows after it. Once every
    row in the journal is committed and the file has grown past `max_bytes`, it is emptied."""

    def __init__(self, state_dir: str | Path, synchronous: str = "normal", base_seq: int = 0, max_bytes: int = 4 << 20):
        self.dir = Path(state_dir) / "audit-journal"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.path = self.dir / f"{self.name}.jsonl"
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            raise
        self.fsync = synchronous == "full"
        self.max_bytes = max_bytes
        self.pending = 0  # rows appended and not yet committed to the database
        self.count = 0
        self.size = 0
        self._header(base_seq)

    def _header(self, base_seq: int) -> None:
        self._write(json.dumps({"mcpp_audit_journal": 1, "base_seq": base_seq}).encode() + b"\n")

    def _write(self, data: bytes) -> None:
        n = os.write(self.fd, data)
        if n != len(data):  # (a full disk): the row is not durable, the call must not go on
            raise OSError(f"audit journal: wrote {n} of {len(data)} bytes")
        if self.fsync:
            os.fdatasync(self.fd)
        self.size += n

    def append(self, row: AuditRow) -> None:
        """Make `row` durable (it gets its `jid`); raises OSError if it could not be."""
        self.count += 1
        row.jid = f"{self.name}:{self.count}"
        self._write(json.dumps(_values(row), separators=(",", ":")).encode() + b"\n")
        self.pending += 1

    def committed(self, n: int, last_seq: int) -> None:
        """`n` journaled rows were committed, the last of them as `last_seq`."""
        self.pending -= n
        if self.pending == 0 and self.size > self.max_bytes:
            # every row in the file is in the database with a seq ≤ last_seq; every row
            # appended from now on will get a larger one
            os.ftruncate(self.fd, 0)
            self.size = 0
            self._header(last_seq)

    def close(self) -> None:
        """Remove the journal if the database has every row in it; else leave it for recovery."""
        if self.fd < 0:
            return
        if self.pending == 0:
            self.path.unlink(missing_ok=True)
        os.close(self.fd)  # (releases the lock)
        self.fd = -1


def recover_journals(state_dir: str | Path, db: sqlite3.Connection) -> int:
    """Insert the rows of journals left by gateways that are gone (their lock is free) that
    the database lacks; remove those journals. Returns the number of rows inserted."""
    d = Path(state_dir) / "audit-journal"
    if not d.is_dir():
        return 0
    cols = COLUMNS[1:]
    insert = f"INSERT INTO audit({', '.join(cols)}) VALUES ({','.join('?' * len(cols))})"
    added = 0
    for path in sorted(d.glob("*.jsonl")):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:  # (recovered by another process meanwhile)
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # its gateway is running
            with os.fdopen(os.dup(fd), "rb") as f:
                lines = f.read().split(b"\n")
            base, rows = 0, []
            for line in lines:
                try:
                    rec = json.loads(line)
                except ValueError:  # an empty or torn line: that append never completed
                    continue
                if isinstance(rec, dict):
                    base = int(rec.get("base_seq", 0))
                elif isinstance(rec, list) and len(rec) == len(cols):
                    rows.append(rec)
            have = {j for (j,) in db.execute("SELECT jid FROM audit WHERE seq > ? AND jid IS NOT NULL", (base,))}
            missing = [r for r in rows if r[-1] not in have]
            if missing:
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.executemany(insert, missing)
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
                added += len(missing)
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return added


def iso_ms(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"


def _seq(cursor: sqlite3.Cursor) -> int:
    """The sequence number an INSERT gave its row."""
    seq = cursor.lastrowid
    assert seq is not None  # set by every INSERT
    return seq


class AuditLog:
    def __init__(self, state_dir: str | Path, synchronous: str = "normal", readonly: bool = False):
        Path(state_dir).mkdir(parents=True, exist_ok=True)
        self.path = Path(state_dir) / "audit.db"
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
        if not readonly:
            self.db.executescript(
                """
                CREATE TABLE IF NOT EXISTS audit (
                  seq INTEGER PRIMARY KEY, ts REAL NOT NULL, request_id TEXT, trace_id TEXT,
                  grant_id TEXT NOT NULL, grant_label TEXT NOT NULL, server TEXT NOT NULL, tool TEXT NOT NULL,
                  decision TEXT NOT NULL, rule TEXT NOT NULL, message TEXT NOT NULL, arg_keys TEXT NOT NULL,
                  outcome TEXT NOT NULL, policy_sha256 TEXT, replica TEXT);
                CREATE INDEX IF NOT EXISTS audit_ts ON audit(ts);
                """
            )
            have = {r[1] for r in self.db.execute("PRAGMA table_info(audit)")}
            for col, kind in _ADDED.items():
                if col not in have:
                    try:
                        self.db.execute(f"ALTER TABLE audit ADD COLUMN {col} {kind}")
                    except sqlite3.OperationalError:  # another process added it first
                        pass
        self.columns = COLUMNS if not readonly else self._present()
        cols = COLUMNS[1:]
        self._insert = f"INSERT INTO audit({', '.join(cols)}) VALUES ({','.join('?' * len(cols))})"
        self.synchronous = synchronous
        self.journal: AuditJournal | None = None
        # rows a gateway that is gone made durable but never committed (AuditJournal)
        self.recovered = 0
        if "jid" in self.columns:
            try:
                self.recovered = recover_journals(state_dir, self.db)
            except (OSError, sqlite3.Error):
                if not readonly:  # a reader (`mcpp audit`) shows what the database has
                    raise

    def open_journal(self) -> "AuditJournal":
        """This process's audit journal (a gateway's: forwarded calls' rows go through it)."""
        if self.journal is None:
            base = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM audit").fetchone()[0]
            self.journal = AuditJournal(self.path.parent, self.synchronous, base)
        return self.journal

    def _present(self) -> tuple:
        """The columns a database opened read-only has (an older one lacks the newer ones)."""
        try:
            have = {r[1] for r in self.db.execute("PRAGMA table_info(audit)")}
        except sqlite3.Error:
            return COLUMNS
        return tuple(c for c in COLUMNS if c in have)

    def write(self, r: AuditRow) -> int:
        """Commit one row and return its sequence number (autocommit: the INSERT is the transaction)."""
        return _seq(self.db.execute(self._insert, _values(r)))

    def write_many(self, rows: list[AuditRow]) -> list[int]:
        """Commit several rows in one transaction (group commit); their sequence numbers."""
        db = self.db
        db.execute("BEGIN")
        try:
            seqs = [_seq(db.execute(self._insert, _values(r))) for r in rows]
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return seqs

    def purge_values(self, before: float) -> int:
        """Erase retained argument values from rows older than `before` (the retention bound)."""
        return self.db.execute("UPDATE audit SET arg_values=NULL WHERE ts<? AND arg_values IS NOT NULL", (before,)).rowcount

    def set_outcome(self, seq: int, outcome: str, message: str | None = None) -> None:
        if message is None:
            self.db.execute("UPDATE audit SET outcome=? WHERE seq=?", (outcome, seq))
        else:
            self.db.execute("UPDATE audit SET outcome=?, message=? WHERE seq=?", (outcome, message, seq))

    def query(self, *, grant: str | None = None, tool: str | None = None, decision: str | None = None,
              server: str | None = None, since: float | None = None, until: float | None = None,
              after_seq: int = 0, limit: int | None = None, newest: bool = False,
              mismatches: bool = False, subject: str | None = None) -> list[dict]:
        where: list[str] = ["seq > ?"]
        args: list[object] = [after_seq]
        if subject:  # an OAuth user (docs/gateway.md, Identity)
            if "subject" not in self.columns:
                return []
            where.append("subject = ?")
            args.append(subject)
        if mismatches:  # the shadow policy decided differently (docs/rollout.md)
            if "shadow_decision" not in self.columns:
                return []
            where.append("shadow_decision IS NOT NULL AND shadow_decision != decision")
        if grant:
            where.append("(grant_id = ? OR grant_label = ?)")
            args += [grant, grant]
        for col, val in (("tool", tool), ("decision", decision), ("server", server)):
            if val:
                where.append(f"{col} = ?")
                args.append(val)
        if since is not None:
            where.append("ts >= ?")
            args.append(since)
        if until is not None:
            where.append("ts < ?")
            args.append(until)
        sql = f"SELECT {', '.join(self.columns)} FROM audit WHERE {' AND '.join(where)} ORDER BY seq {'DESC' if newest else 'ASC'}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = [self._dict(r) for r in self.db.execute(sql, args).fetchall()]
        return list(reversed(rows)) if newest else rows

    def _dict(self, r) -> dict:
        d: dict[str, Any] = {c: None for c in COLUMNS}
        d.update(zip(self.columns, r))
        d.pop("jid", None)  # (the journal's bookkeeping, not the call's)
        d["time"] = iso_ms(d.pop("ts"))
        d["arg_keys"] = json.loads(d["arg_keys"])
        d["mode"] = d["mode"] or "enforce"
        if d["grant_groups"] is not None:
            d["grant_groups"] = json.loads(d["grant_groups"])
        if d["arg_values"] is not None:
            d["arg_values"] = json.loads(d["arg_values"])
        return d

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM audit").fetchone()[0]

    def close(self) -> None:
        if self.journal is not None:
            self.journal.close()
        self.db.close()


def now() -> float:
    return time.time()
