"""The audit log: one durable row per decided `tools/call`, written before the response.

SQLite in WAL mode. With `synchronous=NORMAL` (the default) a committed row is in the
WAL file when `write` returns, so it survives the gateway being SIGKILLed (the OS still
has it); `synchronous=FULL` also survives power loss, at an fsync per call. Argument
*keys* are stored, never values.

The row is committed before the call is forwarded, so its cost is on every call's path:
one index (on time, for `--since`/`--until`/`--follow`) is kept; queries by grant or tool
scan (each secondary index cost about a third more per row on the development machine;
databases created before keep the indexes they have). `seq` is the rowid without
AUTOINCREMENT, which would write SQLite's sequence table on every insert (a quarter to a
third of a commit's cost here): the gateway never deletes a row (retention erases values,
`purge_values`), so the largest seq plus one is always a new number, and `seq` only grows.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from typing import Any
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .checkpoints import Checkpointer
from .deferred import CALL_GONE, FIRST_PAUSE, HELD_LOCK, ClientGone, is_locked, next_pause, wait_until

COLUMNS = (
    "seq", "ts", "request_id", "trace_id", "grant_id", "grant_label", "server", "tool", "decision", "rule",
    "message", "arg_keys", "outcome", "policy_sha256", "replica",
    "mode", "shadow_decision", "shadow_rule", "shadow_sha256", "approval_id", "grant_groups", "arg_values",
    "issuer", "subject",
)
# columns added after the first release: added to an older database when it is opened
_ADDED = {"mode": "TEXT", "shadow_decision": "TEXT", "shadow_rule": "TEXT", "shadow_sha256": "TEXT",
          "approval_id": "TEXT", "grant_groups": "TEXT", "arg_values": "TEXT", "issuer": "TEXT", "subject": "TEXT"}


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


def _values(r: AuditRow) -> tuple:
    return (r.ts, r.request_id, r.trace_id, r.grant_id, r.grant_label, r.server, r.tool, r.decision, r.rule,
            r.message, json.dumps(r.arg_keys), r.outcome, r.policy_sha256, r.replica,
            r.mode, r.shadow_decision, r.shadow_rule, r.shadow_sha256, r.approval_id,
            json.dumps(r.grant_groups) if r.grant_groups is not None else None, r.arg_values, r.issuer, r.subject)


class GroupCommit:
    """The gateway's audit writer. Rows submitted in one event-loop turn share one commit;
    each caller still waits for its own row to be committed before it answers, so
    durability per response is kept.

    The connection never sleeps on a lock (`AuditLog(wait=False)`): SQLite's busy timeout
    waits in the calling thread, which is the event loop's, so one process holding
    audit.db's write lock (a long `mcpp audit` export in a transaction, a backup tool)
    stalled every call, `/healthz` and `/metrics` for up to 10 s each. A commit that finds
    the file locked is tried again from the event loop, with backoff (deferred.py), and the
    rows wait there; a row still unwritten `busy_timeout` seconds after it was submitted
    fails, and its call is refused (503: no audit row, no call). Outcome updates (`set_outcome`)
    are written at once when the file is free, and otherwise join the next commit: an
    outcome that cannot be written in time is logged, since its call has already been
    answered."""

    def __init__(self, log: "AuditLog", busy_timeout: float = 10.0, logger=None, max_waiting: int | None = None):
        """`max_waiting`: how many rows may wait while audit.db is locked; past it, a row is
        refused at once (its call gets 503), so waiting calls cannot hold every connection
        the server takes (deferred.Waiters, hostile16 F10)."""
        self.log = log
        self.busy_timeout = busy_timeout
        self.logger = logger
        self.max_waiting = max_waiting
        self.locked_since: float | None = None  # when commits began finding audit.db locked (None: they do not)
        self.failure: str | None = None  # the last commit failed, not on a lock (audit.db broken): for /healthz
        self.failure_at = 0.0
        self.pending: list = []  # (row, future, deadline, has its client gone? or None)
        self.outcomes: list = []  # (seq, outcome, message, deadline)
        self.scheduled = False  # a flush is due: this turn's end, or a retry's timer
        self.pause = FIRST_PAUSE

    def submit(self, row: AuditRow):
        import asyncio

        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        since = self.locked_since
        if (since is not None and self.max_waiting is not None and len(self.pending) >= self.max_waiting
                and time.monotonic() - since >= HELD_LOCK):
            # (held by another process, not another gateway's commit: deferred.Waiters)
            fut.set_exception(sqlite3.OperationalError(
                f"audit.db is locked by another process, and {self.max_waiting} calls already wait for it"))
            return fut
        # (a call's row: within the call's deadline; a row whose client has gone stops waiting)
        self.pending.append((row, fut, wait_until(self.busy_timeout), CALL_GONE.get()))
        if not self.scheduled:
            self.scheduled = True
            loop.call_soon(self._flush)
        return fut

    def set_outcome(self, seq: int, outcome: str, message: str | None = None) -> None:
        """Record what became of a forwarded call: now if audit.db is free (so the row says
        it before the client reads the answer), else with the next commit."""
        if not self.scheduled:
            try:
                self.log.set_outcome(seq, outcome, message)
                return
            except sqlite3.OperationalError as e:
                if not is_locked(e):
                    raise
        self.outcomes.append((seq, outcome, message, time.monotonic() + self.busy_timeout))
        if not self.scheduled:
            self._retry_later()

    def _retry_later(self) -> None:
        import asyncio

        self.scheduled = True
        asyncio.get_running_loop().call_later(self.pause, self._flush)
        self.pause = next_pause(self.pause)

    def _flush(self) -> None:
        self.scheduled = False
        # a row whose call was cancelled while it waited (the shutdown timeout) was not
        # forwarded, and is not written as if it had been
        batch, self.pending = [p for p in self.pending if not p[1].cancelled()], []
        outcomes, self.outcomes = self.outcomes, []
        if not batch and not outcomes:
            return
        try:
            if self.log.replaced():  # rows go where `audit.db` is now, never into an unlinked file
                if self.logger is not None:
                    self.logger.warning("audit_db_reopened", path=str(self.log.path),
                                        why="audit.db was deleted or replaced while the gateway ran")
                self.log.reopen()
            seqs = self.log.commit([r for r, *_ in batch], [o[:3] for o in outcomes])
        except Exception as e:
            if is_locked(e):
                if self.locked_since is None:
                    self.locked_since = time.monotonic()
                self._locked(batch, outcomes)
                return
            self.locked_since = None
            self.failure, self.failure_at = f"{type(e).__name__}: {e}", time.monotonic()
            for _, f, *_ in batch:
                if not f.done():
                    f.set_exception(e)
            if outcomes and self.logger is not None:
                self.logger.error("audit_write_failed", error=f"{type(e).__name__}: {e}", lost=_lost(outcomes))
            return
        self.pause = FIRST_PAUSE
        self.locked_since = None
        self.failure = None
        for (_, f, *_), s in zip(batch, seqs):
            if not f.done():
                f.set_result(s)

    async def drain(self) -> None:
        """At shutdown: outcome updates still queued (audit.db was locked) are written
        before the process exits, retried until their own deadlines like any other; what
        cannot be written is logged (`audit_write_failed`, with the rows it concerns),
        never dropped without a word."""
        import asyncio

        while self.pending or self.outcomes:
            if not self.scheduled:
                self._flush()
            await asyncio.sleep(self.pause)

    def _locked(self, batch: list, outcomes: list) -> None:
        """audit.db is locked: what is past its deadline fails, the rest waits for a retry."""
        now = time.monotonic()
        err = sqlite3.OperationalError(f"audit.db is locked by another process (waited {self.busy_timeout:g}s)")
        keep = []
        for item in batch:
            gone = item[3]
            if gone is not None and gone():  # nobody waits for this call any more: neither does its row
                if not item[1].done():
                    item[1].set_exception(ClientGone("the client left while its call waited for audit.db"))
            elif item[2] > now:
                keep.append(item)
            elif not item[1].done():
                item[1].set_exception(err)
        late = [o for o in outcomes if o[3] <= now]
        if late and self.logger is not None:
            self.logger.error("audit_write_failed", error=str(err), lost=_lost(late))
        since = self.locked_since
        if self.max_waiting is not None and since is not None and now - since >= HELD_LOCK:
            # held by another process: rows past the cap (a burst that came in before the lock
            # counted as held) are refused now rather than hold their connections
            cap = sqlite3.OperationalError(f"audit.db is locked by another process, and {self.max_waiting} calls already wait for it")
            for item in keep[self.max_waiting:]:
                if not item[1].done():
                    item[1].set_exception(cap)
            keep = keep[:self.max_waiting]
        self.pending = keep + self.pending
        self.outcomes = [o for o in outcomes if o[3] > now] + self.outcomes
        if self.pending or self.outcomes:
            self._retry_later()
        else:  # nothing waits: the next row tries the file afresh (hostile21 F6: the flag outlived the lock)
            self.locked_since = None


def _lost(outcomes: list) -> list[dict]:
    """Outcome updates that could not be written, for the log: which rows still say
    `forwarded`, and what they should say."""
    return [{"seq": seq, "outcome": outcome} for seq, outcome, *_ in outcomes]


def iso_ms(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"


def _seq(cursor: sqlite3.Cursor) -> int:
    """The sequence number an INSERT gave its row."""
    seq = cursor.lastrowid
    assert seq is not None  # set by every INSERT
    return seq


class AuditLog:
    def __init__(self, state_dir: str | Path, synchronous: str = "normal", readonly: bool = False, wait: bool = True):
        """`wait=False`: once opened, a write that finds the file locked by another process
        fails at once (SQLITE_BUSY) instead of sleeping up to 10 s in this thread (the
        gateway's `GroupCommit` retries it from the event loop)."""
        Path(state_dir).mkdir(parents=True, exist_ok=True)
        self.path = Path(state_dir) / "audit.db"
        self._where = str(self.path)  # (os.stat of a str: a Path is converted on every call)
        self.synchronous, self.readonly, self.wait = synchronous, readonly, wait
        self.checkpointer: Checkpointer | None = None
        self._open()

    def background_checkpoints(self, logger=None, **bounds) -> None:
        """The gateway's writer: WAL checkpoints done ahead by a thread of their own
        (checkpoints.py), rather than inside a call's commit on the event loop. `bounds`:
        Checkpointer's `every` and `interval`."""
        cp = self.checkpointer = Checkpointer(self.path, logger=logger, **bounds)
        with cp.lock:
            cp.follow(self.file)

    def _committed(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.committed()

    def _open(self) -> None:
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        synchronous, readonly, wait = self.synchronous, self.readonly, self.wait
        self.db.execute("PRAGMA journal_mode=WAL")
        st = os.stat(self.path)  # (the file exists once the journal mode is set)
        self.file = (st.st_dev, st.st_ino)
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
        if not wait:
            self.db.execute("PRAGMA busy_timeout=0")
        self.columns = COLUMNS if not readonly else self._present()
        cols = COLUMNS[1:]
        self._insert = f"INSERT INTO audit({', '.join(cols)}) VALUES ({','.join('?' * len(cols))})"

    def replaced(self) -> bool:
        """Whether `audit.db` is no longer the file this connection writes: deleted, or
        renamed over (log rotation, or tampering). Rows written to it would be lost with the
        unlinked file, and nobody reading `audit.db` would see them."""
        try:
            st = os.stat(self._where)
        except FileNotFoundError:
            return True
        return (st.st_dev, st.st_ino) != self.file

    def reopen(self) -> None:
        """Write to whatever `audit.db` is now (created, with its schema, if it is gone).
        The old file's WAL is copied into it first: closing a connection to a moved
        database skips SQLite's last checkpoint, and the new file's first connection then
        deletes the old WAL, rows and all (hostile21 F2: the last 84-611 answered calls had
        no row in either file)."""
        cp = self.checkpointer
        if cp is None:
            self._reopen()
            return
        # the thread's connection to the old file goes first, so that this connection's close
        # is the old file's last, and ends its WAL before the new file's path-named one is
        # opened (checkpoints.py; hostile review 23, F1)
        with cp.lock:
            cp.follow((-1, -1))
            self._reopen()
            cp.follow(self.file)

    def _reopen(self) -> None:
        try:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error:  # (best effort: a reader holding the old file keeps its frames)
            pass
        try:
            self.db.close()
        except sqlite3.Error:
            pass
        self._open()

    def _present(self) -> tuple:
        """The columns a database opened read-only has (an older one lacks the newer ones)."""
        try:
            have = {r[1] for r in self.db.execute("PRAGMA table_info(audit)")}
        except sqlite3.Error:
            return COLUMNS
        return tuple(c for c in COLUMNS if c in have)

    def write(self, r: AuditRow) -> int:
        """Commit one row and return its sequence number (autocommit: the INSERT is the transaction)."""
        seq = _seq(self.db.execute(self._insert, _values(r)))
        self._committed()
        return seq

    def write_many(self, rows: list[AuditRow]) -> list[int]:
        """Commit several rows in one transaction (group commit); their sequence numbers."""
        return self.commit(rows, [])

    def commit(self, rows: list[AuditRow], outcomes: list[tuple[int, str, str | None]]) -> list[int]:
        """Commit rows and outcome updates (seq, outcome, message) in one transaction; the
        rows' sequence numbers. All or nothing: a failed commit leaves no trace."""
        if len(rows) == 1 and not outcomes:
            return [self.write(rows[0])]
        db = self.db
        db.execute("BEGIN")
        try:
            seqs = [_seq(db.execute(self._insert, _values(r))) for r in rows]
            for seq, outcome, message in outcomes:
                self.set_outcome(seq, outcome, message)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._committed()
        return seqs

    def purge_values(self, before: float) -> int:
        """Erase retained argument values from rows older than `before` (the retention bound)."""
        n = self.db.execute("UPDATE audit SET arg_values=NULL WHERE ts<? AND arg_values IS NOT NULL", (before,)).rowcount
        self._committed()
        return n

    def set_outcome(self, seq: int, outcome: str, message: str | None = None) -> None:
        if message is None:
            self.db.execute("UPDATE audit SET outcome=? WHERE seq=?", (outcome, seq))
        else:
            self.db.execute("UPDATE audit SET outcome=?, message=? WHERE seq=?", (outcome, message, seq))
        if not self.db.in_transaction:  # (its own commit, not part of `commit`'s)
            self._committed()

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
        d["time"] = iso_ms(d.pop("ts"))
        d["arg_keys"] = _json_column(d["arg_keys"])
        d["mode"] = d["mode"] or "enforce"
        if d["grant_groups"] is not None:
            d["grant_groups"] = _json_column(d["grant_groups"])
        if d["arg_values"] is not None:
            d["arg_values"] = _json_column(d["arg_values"])
        return d

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM audit").fetchone()[0]

    def close(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.close()
        self.db.close()


def now() -> float:
    return time.time()


def _json_column(text):
    """A JSON column of a row, as written; a column the gateway did not write (a hand-edited
    or damaged audit.db: not JSON, nested past what json reads, a 4,300-digit integer) is
    shown as what it is, not raised out of `mcpp audit` (hostile review 29, F12)."""
    try:
        return json.loads(text)
    except (ValueError, TypeError, RecursionError) as e:
        return f"(unreadable column: {type(e).__name__})"
