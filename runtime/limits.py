"""Limit counters: calendar-aligned windows, reserve-and-rollback.

A call reserves every applicable limit at once or none of them (all-or-nothing), so a
denied call never consumes budget; a call that later fails upstream releases its
reservation. `MemoryCounters` serves one process; the gateway swaps in a shared store
(SQLite or Redis) with the same interface.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fractions import Fraction
from typing import Protocol

from mcpp.lang.jsontext import MAX_LIMIT  # (the largest max: every count up to it is exact in a double)

WINDOW_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}



def exact(x: int | float | Fraction) -> int | Fraction:
    """A count, an amount or a max exactly (a double's Fraction is its exact value)."""
    return x if isinstance(x, (int, Fraction)) else Fraction(x)


def exceeds(current: int | float | Fraction, amount: int | float | Fraction, cap: int | float | Fraction) -> bool:
    """Whether adding `amount` to a counter at `current` passes `cap`, in exact arithmetic
    (as the analyzer adds reals): the one comparison every store and the engine's peek
    make (Redis's Lua script makes the same comparison exactly, counters.py `_RESERVE`)."""
    if type(current) is int and type(amount) is int and type(cap) is int:
        return current + amount > cap
    return exact(current) + exact(amount) > exact(cap)


def stored(x: int | float | Fraction) -> int | float:
    """`x` as a store keeps it (a double), never below its exact value: a counter may
    over-count by the rounding, never under-count (ints up to 2^53 are exact)."""
    if type(x) is int and -MAX_LIMIT <= x <= MAX_LIMIT:
        return x
    f = float(x)
    if Fraction(f) < x:
        f = math.nextafter(f, math.inf)
    return f


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
    amount: int | float | Fraction  # exact (lang/plan.py `CounterGroup.charge`: an int or a Fraction)
    max: int | float
    expires_at: int

    # What a store decides and writes, here once for every store (the gateway's stores reach
    # them through `mcpp.Charge`; Redis's Lua script makes the same exact comparison).
    def exceeds(self, current: int | float | Fraction) -> bool:
        """Whether this charge on a counter at `current` passes its max (exactly)."""
        return exceeds(current, self.amount, self.max)

    def added_to(self, current: int | float | Fraction) -> int | float:
        """The new total a store writes: exact, or rounded up to a double."""
        return stored(exact(current) + exact(self.amount))

    def taken_from(self, current: int | float | Fraction) -> int | float:
        """A refund's remainder a store writes (≥ 0): exact, or rounded up to a double."""
        return max(0, stored(exact(current) - exact(self.amount)))

    @property
    def stored_amount(self) -> int | float:
        """The amount as a double store receives it (Redis): rounded up when no double is it."""
        return stored(self.amount)


class CounterStore(Protocol):
    def reserve(self, charges: list[Charge]) -> int | None:
        """Apply all charges atomically; return None, or the index of the first that would exceed."""

    def release(self, charges: list[Charge]) -> None:
        """Undo charges made by an earlier successful reserve."""

    def value(self, key: str) -> int | float | Fraction: ...


class MemoryCounters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, int | Fraction] = {}  # exact
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
                if c.exceeds(self._values.get(c.key, 0)):
                    return i
            for c in charges:
                self._values[c.key] = exact(self._values.get(c.key, 0)) + exact(c.amount)
                self._expiry[c.key] = c.expires_at
            return None

    def release(self, charges: list[Charge]) -> None:
        with self._lock:
            for c in charges:
                if c.key in self._values:
                    self._values[c.key] = max(0, exact(self._values[c.key]) - exact(c.amount))

    def value(self, key: str) -> int | Fraction:
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
