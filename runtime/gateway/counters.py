"""Limit counters shared beyond one process: SQLite (embedded) and Redis (replicas).

Both implement `mcpp.CounterStore`: `reserve` applies every charge or
none (atomically: one SQLite write transaction, or one Redis Lua script), so N
concurrent calls against a budget of K allow exactly K whichever replica they reach.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from mcpp import Charge

from .deferred import DeferredCounters, StaleDecision, StoreUnavailable, Waiters, is_locked, retry_while_locked


class SQLiteCounters:
    """Counters in `<state>/counters.db`; `BEGIN IMMEDIATE` serialises writers across processes."""

    def __init__(self, state_dir: str | Path, wait: bool = True):
        """`wait=False`: once opened, a write that finds the file locked by another process
        fails at once (SQLITE_BUSY) instead of sleeping up to 10 s in this thread; the
        gateway's `SQLiteDeferredCounters` retries it from the event loop."""
        Path(state_dir).mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(Path(state_dir) / "counters.db", isolation_level=None, check_same_thread=False, timeout=10)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, value REAL NOT NULL, expires_at INTEGER NOT NULL)")
        if not wait:
            self.db.execute("PRAGMA busy_timeout=0")
        self._lock = threading.Lock()
        self._sweep_at = 0.0

    def reserve(self, charges: list[Charge], fresh_only: bool = False) -> int | None:
        """`fresh_only`: raise StaleDecision, reserving nothing, if a charge's window has
        ended by the time the write lock is held (the gateway's decision was made before a
        wait on the lock; a caller that decides and reserves at one instant need not ask)."""
        with self._lock:
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            try:
                now = time.time()
                if fresh_only and any(c.expires_at <= now for c in charges):
                    db.execute("ROLLBACK")
                    raise StaleDecision(f"a limit window ended at {min(c.expires_at for c in charges)} before the reservation")
                if now >= self._sweep_at:
                    self._sweep_at = now + 60
                    db.execute("DELETE FROM counters WHERE expires_at <= ?", (int(now),))
                totals: dict = {}  # key → its new total (a key charged twice in one call adds up)
                for i, c in enumerate(charges):
                    if c.key in totals:
                        current = totals[c.key]
                    else:
                        row = db.execute("SELECT value, expires_at FROM counters WHERE key=?", (c.key,)).fetchone()
                        current = row[0] if row and row[1] > now else 0
                    # exactly, as the analyzer adds (hostile review 41, H41-1): never the
                    # double `current + amount`, which rounds and lets a call through
                    if c.exceeds(current):
                        db.execute("ROLLBACK")
                        return i
                    # the new total, written rounded up (SQL's `value + ?` rounds to nearest:
                    # a small increment near 2^53 vanished)
                    totals[c.key] = c.added_to(current)
                for c in charges:
                    db.execute(
                        "INSERT INTO counters(key, value, expires_at) VALUES (?,?,?) ON CONFLICT(key) DO UPDATE SET"
                        " value = excluded.value, expires_at = excluded.expires_at",
                        (c.key, totals[c.key], c.expires_at),
                    )
                db.execute("COMMIT")
                return None
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def release(self, charges: list[Charge]) -> None:
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for c in charges:
                    row = self.db.execute("SELECT value FROM counters WHERE key=?", (c.key,)).fetchone()
                    if row is not None:  # (left rounded up: a refund never drains more than it gave)
                        self.db.execute("UPDATE counters SET value = ? WHERE key=?", (c.taken_from(row[0]), c.key))
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise

    def value(self, key: str) -> float:
        with self._lock:
            row = self.db.execute("SELECT value, expires_at FROM counters WHERE key=?", (key,)).fetchone()
        return row[0] if row and row[1] > time.time() else 0

    def close(self) -> None:
        self.db.close()


class SQLiteDeferredCounters(DeferredCounters):
    """The gateway's counters in `<state>/counters.db`: `SQLiteCounters`' transactions, on
    a connection that never sleeps on a lock, awaited through deferred.py's two passes.
    While another process holds the file locked, a limited call waits (asynchronously: the
    gateway goes on serving) up to `busy_timeout` seconds, then is refused; a refund that
    cannot be made in that time is lost, which over-counts (the safe direction)."""

    name = "SQLite counter store"

    def __init__(self, state_dir: str | Path, busy_timeout: float, log, max_waiting: int | None = None):
        """`max_waiting`: how many calls may wait for the file while it is locked (deferred.Waiters)."""
        super().__init__()
        self.sync = SQLiteCounters(state_dir, wait=False)
        self.busy_timeout = busy_timeout
        self.log = log
        self.waiters = Waiters(max_waiting) if max_waiting is not None else None

    async def values_async(self, keys: list[str]) -> dict:
        return await retry_while_locked(lambda: {k: self.sync.value(k) for k in dict.fromkeys(keys)},
                                        self.busy_timeout, "counters.db", self.waiters, for_call=True)

    async def reserve_async(self, charges: list[Charge]) -> int | None:
        return await retry_while_locked(lambda: self.sync.reserve(charges, fresh_only=True), self.busy_timeout,
                                        "counters.db", self.waiters, for_call=True)

    def release(self, charges: list[Charge]) -> None:
        """Give a reservation back now, so it is in place before the client reads the answer
        and can call again; only if counters.db is locked, in the background."""
        try:
            self.sync.release(charges)
        except sqlite3.Error as e:  # any SQLite failure: the refund is lost, never the answer
            if not is_locked(e):
                self.log.warning("limit_refund_lost", error=f"counters.db: {type(e).__name__}: {e}", counters=len(charges))
                return
            super().release(charges)

    async def release_async(self, charges: list[Charge]) -> None:
        try:
            await retry_while_locked(lambda: self.sync.release(charges), self.busy_timeout, "counters.db")
        except (StoreUnavailable, sqlite3.Error) as e:
            self.log.warning("limit_refund_lost", error=str(e), counters=len(charges))

    def close(self) -> None:
        self.sync.close()


def release_args(charges: list[Charge]) -> list[str]:
    """ARGV of `_RELEASE`: each amount as the reservation added it (rounded up)."""
    return [repr(float(c.stored_amount)) for c in charges]


def reserve_args(charges: list[Charge]) -> tuple[list[str], list]:
    """KEYS and ARGV of `_RESERVE` for these charges."""
    argv: list = [len(charges)]
    for c in charges:
        argv += [repr(float(c.stored_amount)), repr(float(c.max)), int(c.expires_at)]
    return [RedisCounters.PREFIX + c.key for c in charges], argv


# Exact arithmetic on doubles (hostile review 41, H41-1): `two_sum` gives a + b as the
# rounded sum s and its error e (s + e == a + b exactly: Knuth's TwoSum, round to nearest);
# `up` is the next double above s (s > 0). A charge passes its max when the exact total does (`s > max`,
# or `s == max` and the sum was rounded down), as runtime/limits.py `exceeds` decides; a
# total or a refund's remainder rounded down is stored one double higher, so a counter
# over-counts by a rounding, never under-counts. Stored with 17 digits (a double's, read
# back exactly; Lua's `tostring` keeps 14).
_EXACT = """
local function two_sum(a, b)
  local s = a + b
  local bb = s - a
  return s, (a - (s - bb)) + (b - bb)
end
local function up(s)
  local _, e = math.frexp(s)
  local step = math.ldexp(1, e - 53)
  if step < 4.9406564584124654e-324 then step = 4.9406564584124654e-324 end
  return s + step
end
local function text(x)
  return string.format('%.17g', x)
end
"""

# KEYS: counter keys; ARGV: n, then per charge amount, max, expires_at. Returns -1 (all
# reserved) or the 0-based index of the first charge that would pass its max (none applied).
_RESERVE = _EXACT + """
local n = tonumber(ARGV[1])
local totals = {}
local seen = {}
for i = 1, n do
  local cur = seen[KEYS[i]] or tonumber(redis.call('GET', KEYS[i]) or '0')
  local amount = tonumber(ARGV[1 + (i - 1) * 3 + 1])
  local max = tonumber(ARGV[1 + (i - 1) * 3 + 2])
  local s, e = two_sum(cur, amount)
  if s > max or (s == max and e > 0) then return i - 1 end
  if e > 0 then s = up(s) end
  totals[i] = s
  seen[KEYS[i]] = s
end
for i = 1, n do
  local exp = tonumber(ARGV[1 + (i - 1) * 3 + 3])
  redis.call('SET', KEYS[i], text(totals[i]))
  redis.call('EXPIREAT', KEYS[i], exp + 60)
end
return -1
"""

_RELEASE = _EXACT + """
for i = 1, #KEYS do
  local cur = tonumber(redis.call('GET', KEYS[i]) or '0')
  local amount = tonumber(ARGV[i])
  if cur > 0 then
    local left, e = two_sum(cur, -amount)
    if e > 0 then left = up(left) end
    if left < 0 then left = 0 end
    redis.call('SET', KEYS[i], text(left), 'KEEPTTL')
  end
end
return 0
"""


class RedisCounters:
    """Counters in Redis under one hash tag (`{mcpp}`), so a Cluster keeps them in one slot."""

    PREFIX = "mcpp:{counters}:"

    def __init__(self, client):
        self.r = client
        self._reserve = client.register_script(_RESERVE)
        self._release = client.register_script(_RELEASE)

    def reserve(self, charges: list[Charge]) -> int | None:
        keys, argv = reserve_args(charges)
        bad = int(self._reserve(keys=keys, args=argv))
        return None if bad < 0 else bad

    def release(self, charges: list[Charge]) -> None:
        self._release(keys=[self.PREFIX + c.key for c in charges], args=release_args(charges))

    def value(self, key: str) -> float:
        v = self.r.get(self.PREFIX + key)
        return float(v) if v is not None else 0

    def close(self) -> None:
        self.r.close()
