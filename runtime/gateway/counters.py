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


class SQLiteCounters:
    """Counters in `<state>/counters.db`; `BEGIN IMMEDIATE` serialises writers across processes."""

    def __init__(self, state_dir: str | Path):
        Path(state_dir).mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(Path(state_dir) / "counters.db", isolation_level=None, check_same_thread=False, timeout=10)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, value REAL NOT NULL, expires_at INTEGER NOT NULL)")
        self._lock = threading.Lock()
        self._sweep_at = 0.0

    def reserve(self, charges: list[Charge]) -> int | None:
        with self._lock:
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            try:
                now = time.time()
                if now >= self._sweep_at:
                    self._sweep_at = now + 60
                    db.execute("DELETE FROM counters WHERE expires_at <= ?", (int(now),))
                for i, c in enumerate(charges):
                    row = db.execute("SELECT value, expires_at FROM counters WHERE key=?", (c.key,)).fetchone()
                    current = row[0] if row and row[1] > now else 0
                    if current + c.amount > c.max:
                        db.execute("ROLLBACK")
                        return i
                for c in charges:
                    db.execute(
                        "INSERT INTO counters(key, value, expires_at) VALUES (?,?,?) ON CONFLICT(key) DO UPDATE SET"
                        " value = CASE WHEN counters.expires_at > ? THEN counters.value ELSE 0 END + excluded.value,"
                        " expires_at = excluded.expires_at",
                        (c.key, c.amount, c.expires_at, now),
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
                    self.db.execute("UPDATE counters SET value = MAX(0, value - ?) WHERE key=?", (c.amount, c.key))
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


# KEYS: counter keys; ARGV: n, then per charge amount, max, expires_at. Returns -1 (all
# reserved) or the 0-based index of the first charge that would pass its max (none applied).
_RESERVE = """
local n = tonumber(ARGV[1])
for i = 1, n do
  local cur = tonumber(redis.call('GET', KEYS[i]) or '0')
  local amount = tonumber(ARGV[1 + (i - 1) * 3 + 1])
  local max = tonumber(ARGV[1 + (i - 1) * 3 + 2])
  if cur + amount > max then return i - 1 end
end
for i = 1, n do
  local amount = ARGV[1 + (i - 1) * 3 + 1]
  local exp = tonumber(ARGV[1 + (i - 1) * 3 + 3])
  redis.call('INCRBYFLOAT', KEYS[i], amount)
  redis.call('EXPIREAT', KEYS[i], exp + 60)
end
return -1
"""

_RELEASE = """
for i = 1, #KEYS do
  local cur = tonumber(redis.call('GET', KEYS[i]) or '0')
  local amount = tonumber(ARGV[i])
  if cur > 0 then
    local left = cur - amount
    if left < 0 then left = 0 end
    redis.call('SET', KEYS[i], tostring(left), 'KEEPTTL')
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
        keys = [self.PREFIX + c.key for c in charges]
        argv: list = [len(charges)]
        for c in charges:
            argv += [repr(float(c.amount)), repr(float(c.max)), int(c.expires_at)]
        bad = int(self._reserve(keys=keys, args=argv))
        return None if bad < 0 else bad

    def release(self, charges: list[Charge]) -> None:
        self._release(keys=[self.PREFIX + c.key for c in charges], args=[repr(float(c.amount)) for c in charges])

    def value(self, key: str) -> float:
        v = self.r.get(self.PREFIX + key)
        return float(v) if v is not None else 0

    def close(self) -> None:
        self.r.close()
