"""Limit counters: calendar-aligned windows, reserve-and-rollback.

A call reserves every applicable limit at once or none of them (all-or-nothing), so a
denied call never consumes budget; a call that later fails upstream releases its
reservation. `MemoryCounters` serves one process; the gateway swaps in a shared store
(SQLite or Redis) with the same interface.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol

WINDOW_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def window_bounds(window: str, now: float) -> tuple[int, int]:
    """UTC calendar-aligned [start, end) in epoch seconds (POSIX time has midnight at multiples of 86400)."""
    size = WINDOW_SECONDS[window]
    start = int(now // size) * size
    return start, start + size


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Charge:
    """One unit of work for the store: add `amount` to `key` unless that passes `max`."""

    key: str
    amount: float
    max: float
    expires_at: int


class CounterStore(Protocol):
    def reserve(self, charges: list[Charge]) -> int | None:
        """Apply all charges atomically; return None, or the index of the first that would exceed."""

    def release(self, charges: list[Charge]) -> None:
        """Undo charges made by an earlier successful reserve."""

    def value(self, key: str) -> float: ...


class MemoryCounters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, float] = {}
        self._expiry: dict[str, int] = {}
        self._sweep_at = 0.0

    def _sweep(self, now: float) -> None:
        if now < self._sweep_at:
            return
        self._sweep_at = now + 60
        for k, exp in list(self._expiry.items()):
            if exp <= now:
                self._values.pop(k, None)
                self._expiry.pop(k, None)

    def reserve(self, charges: list[Charge]) -> int | None:
        with self._lock:
            self._sweep(time.time())
            for i, c in enumerate(charges):
                if self._values.get(c.key, 0) + c.amount > c.max:
                    return i
            for c in charges:
                self._values[c.key] = self._values.get(c.key, 0) + c.amount
                self._expiry[c.key] = c.expires_at
            return None

    def release(self, charges: list[Charge]) -> None:
        with self._lock:
            for c in charges:
                if c.key in self._values:
                    self._values[c.key] = max(0, self._values[c.key] - c.amount)

    def value(self, key: str) -> float:
        with self._lock:
            return self._values.get(key, 0)


@dataclass
class Reservation:
    """What an allowed call holds; `release()` gives it back (denied upstream, upstream error)."""

    store: CounterStore
    charges: list[Charge] = field(default_factory=list)
    released: bool = False

    def release(self) -> None:
        if not self.released and self.charges:
            self.store.release(self.charges)
        self.released = True
