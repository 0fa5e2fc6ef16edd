"""Hypothesis profiles, and `scaled` for properties cheap enough to run more often.

`dev` (the default) keeps the local loop short; `ci` (HYPOTHESIS_PROFILE=ci, set by
.ci/run) runs at least 2,000 random examples per property. A test never sets its own
`max_examples` below the profile: `@scaled(k)` raises a cheap property to k times the
profile (never lowers it), so the CI profile governs every property.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile(
    "ci",
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def scaled(factor: float):
    """`settings` with k times the loaded profile's examples (k ≥ 1)."""
    if factor < 1:
        raise ValueError("scaled() only raises the profile's number of examples")
    return settings(max_examples=int(settings.default.max_examples * factor))
