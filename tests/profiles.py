"""Hypothesis profiles, `scaled` and `programs_in_ci`: how many random examples each
property runs.

`dev` (the default) keeps the local loop short; `ci` (HYPOTHESIS_PROFILE=ci, set by
.ci/run) doubles every property, and the properties that hold the backends together —
engine, JSON form and Z3 (tests/analyzer/test_backends_agree.py) and the engine against
Cedar (tests/runtime/test_cedar_oracle.py) — run at least 2,000 random programs each
(`@programs_in_ci(2000)`). The whole property part must stay within its share of CI's
time budget (docs/testing.md gives the figure and the command that measures it).

A test never sets its own `max_examples` below the profile: `@scaled(k)` raises a cheap
property to k times the profile, `@programs_in_ci(n)` to at least n under `ci`; neither
lowers it.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "dev")

settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(PROFILE)


def scaled(factor: float):
    """`settings` with k times the loaded profile's examples (k ≥ 1)."""
    if factor < 1:
        raise ValueError("scaled() only raises the profile's number of examples")
    return settings(max_examples=int(settings.default.max_examples * factor))


def programs_in_ci(n: int, factor: float = 1):
    """`settings` with at least `n` examples under the ci profile (k × the profile
    elsewhere, k ≥ 1): the properties whose count issue 9 fixes at 2,000 random programs."""
    if factor < 1:
        raise ValueError("programs_in_ci() only raises the profile's number of examples")
    base = int(settings.default.max_examples * factor)
    return settings(max_examples=max(n, base) if PROFILE == "ci" else base)
