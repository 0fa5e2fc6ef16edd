"""Limit counters whose store is awaited, never waited on: the engine's synchronous
`CounterStore` interface, met in two passes.

The engine reserves counters synchronously (`CounterStore.reserve`), and that interface is
the engine's. A store the gateway must not block its event loop on (Redis, which can hang;
SQLite, which another process can hold locked) implements it here: the gateway decides
once while the store *records* the charges the engine asks for (answering "reserved"),
then awaits the real all-or-nothing reservation (`reserve_async`); if a counter is over its
max, it decides again, at the same instant, while the store *replays* the index of the
counter that failed, so the denial (its message, rule and reset time) is the engine's own.
A store that cannot answer raises `StoreUnavailable`, and the gateway refuses the limited
call (`LIMIT_STORE_DOWN`): fail closed, and only the calls that need the store wait.

SQLite's own wait for a lock held by another process (its busy timeout) sleeps in the
calling thread, which here is the event loop's: every call, `/healthz` and `/metrics`
stalled behind one `mcpp` command or backup that held `audit.db` or `counters.db`. The
gateway's connections therefore take no busy timeout at all, and `retry_while_locked`
(counters) and `audit.GroupCommit` (the audit log) retry a locked write from the event
loop, with backoff, until `store_busy_timeout` has passed.
"""

from __future__ import annotations

import abc
import asyncio
import contextvars
import sqlite3
import time
from typing import Callable, TypeVar

from mcpp import Charge

LIMIT_STORE_DOWN = "/limits/store-unavailable"  # the rule of a limited call refused while its store is down

T = TypeVar("T")

# first and longest pause between two tries of a locked SQLite write: short enough that a
# lock held for a moment (another gateway's commit) costs about one pause; long enough
# that a lock held for seconds costs the event loop a few dozen tries a second
FIRST_PAUSE, LONGEST_PAUSE = 0.001, 0.05


class StaleDecision(Exception):
    """The reservation came after a limit window the decision charged had ended (the call
    waited on a locked store across the window's end): decide again, at the new instant.

    Charging the old window would be wrong either way: its counter may already be swept
    (then it reads 0, and every waiting call passed: 35 calls in 10 s under `max 5 per
    minute`, hostile16 F1), and a call that runs now belongs to the window it runs in."""


class StoreUnavailable(Exception):
    """The counter store cannot be used right now (Redis unreachable or its breaker open;
    a SQLite file locked past `store_busy_timeout`)."""


def is_locked(e: BaseException) -> bool:
    """A SQLite error that means "another connection holds the lock": worth trying again."""
    code = getattr(e, "sqlite_errorcode", None)
    if isinstance(e, sqlite3.OperationalError) and code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return False


def next_pause(pause: float) -> float:
    return min(pause * 2, LONGEST_PAUSE)


# a lock held longer than this is another process holding the file, not another gateway's
# commit on the same state directory (a few milliseconds): only then does a cap on waiters
# refuse anything (hostile21 F3: two busy gateways refused calls on each other's commits)
HELD_LOCK = 0.25


class Waiters:
    """How many calls are waiting for one locked store, and how many may. Each waits with
    its connection open, and the server takes at most `max_connections`: with counters.db
    locked, one agent's limited calls filled every slot, and every other request, calls no
    limit applies to and `/healthz` included, got 503 (hostile16 F10). Past `cap`, while
    the calls waiting have been waiting `HELD_LOCK` seconds and more, a call that finds the
    store locked is refused at once instead of waiting."""

    __slots__ = ("n", "cap", "since")

    def __init__(self, cap: int):
        self.n, self.cap = 0, cap
        self.since = 0.0  # when the current run of waiting began (n went from 0 to 1)

    def full(self) -> bool:
        return self.n >= self.cap and time.monotonic() - self.since >= HELD_LOCK

    def enter(self) -> None:
        if self.n == 0:
            self.since = time.monotonic()
        self.n += 1


class ClientGone(StoreUnavailable):
    """The client of the call waiting for a store has gone: its wait ends, and its place
    with it (hostile21 F5: five calls whose clients had left held the cap for the lock's
    whole length, and other agents' calls were refused)."""


# the calling `tools/call`'s "has my client gone?" (proxy.py `_client_gone`): asked between
# tries of a locked store, so a call nobody waits for stops waiting
CALL_GONE: contextvars.ContextVar[Callable[[], bool] | None] = contextvars.ContextVar("mcpp_client_gone", default=None)


# the monotonic time by which a call's waits for locked stores must be over: set once per
# `tools/call`, so that a call that waits for counters.db and then for audit.db waits
# `store_busy_timeout` in all, not once per file (hostile16 F9: a client sizing its timeout
# from the docs gave up at 2 s on an answer that came at 4 s)
CALL_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("mcpp_store_deadline", default=None)


def wait_until(timeout: float) -> float:
    """When a wait that starts now and may last `timeout` seconds must end: `timeout` from
    now, or the calling `tools/call`'s deadline (CALL_DEADLINE) if that is sooner."""
    end = time.monotonic() + timeout
    call = CALL_DEADLINE.get()
    return end if call is None or call > end else call


async def retry_while_locked(op: Callable[[], T], timeout: float, what: str, waiters: Waiters | None = None,
                             for_call: bool = False) -> T:
    """`op()` (a synchronous SQLite transaction on a connection without a busy timeout),
    tried again after a pause while another process holds the lock, for at most `timeout`
    seconds; then StoreUnavailable. The first try costs nothing extra. With `waiters`, a
    call that would wait when `waiters.cap` calls already do is refused at once. With
    `for_call`, the wait ends by the call's deadline too (CALL_DEADLINE); a background
    write (a refund) keeps its own `timeout`, even when started from a call's task."""
    try:
        return op()
    except sqlite3.Error as e:  # a lock is waited out; any other SQLite failure is the store's
        if not is_locked(e):
            raise StoreUnavailable(f"{what}: {type(e).__name__}: {e}") from None
    excess = False  # one of the calls that came past the cap before the lock counted as held
    if waiters is not None:
        if waiters.full():
            raise StoreUnavailable(f"{what} is locked by another process, and {waiters.cap} calls already wait for it")
        waiters.enter()
        excess = waiters.n > waiters.cap
    gone = CALL_GONE.get() if for_call else None
    try:
        started = time.monotonic()
        deadline = wait_until(timeout) if for_call else started + timeout
        pause = FIRST_PAUSE
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise StoreUnavailable(f"{what} is locked by another process (waited {min(timeout, deadline - started):.3g}s)")
            await asyncio.sleep(min(pause, left))
            pause = next_pause(pause)
            if gone is not None and gone():
                raise ClientGone(f"the client left while its call waited for {what}")
            if excess and waiters is not None and time.monotonic() - waiters.since >= HELD_LOCK:
                # (a burst that came in before the lock counted as held: all past the cap go now)
                raise StoreUnavailable(f"{what} is locked by another process, and {waiters.cap} calls already wait for it")
            try:
                return op()
            except sqlite3.Error as e:
                if not is_locked(e):
                    raise StoreUnavailable(f"{what}: {type(e).__name__}: {e}") from None
    finally:
        if waiters is not None:
            waiters.n -= 1


class _Plan:
    """What one decision asked of the store: recorded charges and reads, or the verdict
    to replay."""

    __slots__ = ("mode", "verdict", "charges", "calls", "peek", "peeked")

    def __init__(self, mode: str, verdict: int | None = None, peek: dict | None = None):
        self.mode = mode  # "record" | "replay"
        self.verdict = verdict
        self.charges: list[Charge] | None = None
        self.calls = 0
        self.peek = peek or {}  # counter values read ahead (non-reserving checks)
        self.peeked: list[str] = []  # keys a non-reserving check read


_PLAN: contextvars.ContextVar[_Plan | None] = contextvars.ContextVar("mcpp_counter_plan", default=None)


class _Using:
    """`with`: the plan in force for the decisions inside. A class, not a generator-based
    context manager: it is entered on every decided call, and contextlib's costs about
    six microseconds more per call here."""

    __slots__ = ("plan", "token")

    def __init__(self, plan: _Plan):
        self.plan = plan

    def __enter__(self) -> _Plan:
        self.token = _PLAN.set(self.plan)
        return self.plan

    def __exit__(self, *exc) -> None:
        _PLAN.reset(self.token)


class DeferredCounters(abc.ABC):
    """The engine's CounterStore: `reserve` records (or replays) inside a `recording()` /
    `replaying()` block; a subclass does the real work in `values_async`, `reserve_async`
    and `release_async`."""

    name = "counter store"

    def __init__(self) -> None:
        self._pending: set = set()

    # -- the engine's synchronous interface ----------------------------------------------
    def reserve(self, charges: list[Charge]) -> int | None:
        plan = _PLAN.get()
        if plan is None:
            raise StoreUnavailable(f"the {self.name} is only usable through the gateway's decide()")
        plan.calls += 1
        if plan.calls > 1:  # one reservation per decision is what the two passes can mirror
            raise StoreUnavailable("more than one reservation in one decision")
        if plan.mode == "record":
            plan.charges = list(charges)
            return None
        return plan.verdict

    def release(self, charges: list[Charge]) -> None:
        """Give a reservation back, in the background: a refund that cannot reach the
        store is lost, which over-counts (the safe direction)."""
        task = asyncio.get_running_loop().create_task(self.release_async(charges))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self, timeout: float, log) -> None:
        """At shutdown: wait up to `timeout` for the refunds still being written (a locked
        counters.db retries them); any left is logged as lost (`limit_refund_lost`: the
        unit stays counted, the safe direction), not cancelled without a word."""
        if not self._pending:
            return
        _, left = await asyncio.wait(set(self._pending), timeout=timeout)
        if left:
            log.warning("limit_refund_lost", error="the gateway stopped before the refund could be written",
                        refunds=len(left))
            for task in left:
                task.cancel()

    def value(self, key: str) -> float:
        """A non-reserving limit check (a shadow policy, a call waiting for approval) reads
        counts inside `recording(peek=…)`: the keys it asks for are noted and the values
        read ahead are returned (0 before they were read; the gateway then reads them with
        `values_async` and decides again)."""
        plan = _PLAN.get()
        if plan is None:
            raise StoreUnavailable(f"the {self.name} has no synchronous reads")
        plan.peeked.append(key)
        return float(plan.peek.get(key, 0))

    # -- the gateway's side ---------------------------------------------------------------
    def recording(self, peek: dict | None = None) -> _Using:
        return _Using(_Plan("record", peek=peek))

    def replaying(self, verdict: int) -> _Using:
        return _Using(_Plan("replay", verdict))

    @abc.abstractmethod
    async def values_async(self, keys: list[str]) -> dict:
        """Current counts of these keys."""

    @abc.abstractmethod
    async def reserve_async(self, charges: list[Charge]) -> int | None:
        """Reserve every charge or none: the index of the first charge over its max
        (nothing reserved), or None (all reserved). StaleDecision (nothing reserved) if a
        charge's window ended before the reservation could be made."""

    @abc.abstractmethod
    async def release_async(self, charges: list[Charge]) -> None:
        """Give the charges back; a refund that cannot be made is logged, not raised."""

    def close(self) -> None:
        pass
