"""A whole run's wall-clock budget: `mcpp verify|lint|diff --deadline SECONDS`.

`--timeout` bounds each solver query and each regex translation, but a policy of
hundreds of hard rules asks hundreds of such questions: a CI job needs a bound on the
run. One `Deadline` is shared by every session of a run (the assertions, the blocking
lints `verify` also runs, both directions of every tool of a `diff`). Each query's
timeout is capped by what is left of it (`cap`), each regex translation stops at it,
and once it has passed every question not yet answered is UNKNOWN with `reason` —
never PASS, never a finding that was not proved.

The clock is injectable so tests can run a deadline out without waiting.
"""

from __future__ import annotations

import math
import time
from typing import Callable


MAX_SECONDS = 1e9  # about 31 years: beyond it the arithmetic in milliseconds overflows, and no run waits that long


class Deadline:
    """`seconds` from now on `clock` (time.monotonic by default)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise TypeError(f"a deadline is a number of seconds, not {seconds!r}")
        try:
            seconds = float(seconds)
        except OverflowError:  # (an int past float's range)
            seconds = math.inf
        if not (0 <= seconds <= MAX_SECONDS):
            raise ValueError(f"a deadline is a number of seconds from 0 to {MAX_SECONDS:g}, not {seconds!r}")
        self.seconds = seconds
        self.clock = clock
        self.end = clock() + seconds

    @property
    def reason(self) -> str:
        """Why a question was left undecided once the deadline has passed."""
        return f"the run's deadline of {self.seconds:g} s ran out"

    def left_ms(self) -> int:
        """Milliseconds left, rounded up (a query bounded by it cannot stop before the end), ≥ 0."""
        return max(0, math.ceil((self.end - self.clock()) * 1000))

    def expired(self) -> bool:
        return self.clock() >= self.end

    def cap(self, ms: int) -> int:
        """`ms`, or what is left of the run when that is less (at least 1: a Z3 timeout of 0 means none)."""
        return max(1, min(ms, self.left_ms()))


def deadline_of(value: float | Deadline | None) -> Deadline | None:
    """A `deadline=` argument (seconds from now, a Deadline, or None: no overall bound) as a Deadline."""
    if value is None or isinstance(value, Deadline):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"deadline must be a number of seconds, a Deadline or None, not {value!r}")
    return Deadline(value)
