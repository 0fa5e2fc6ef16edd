"""Shared test configuration: hypothesis profiles.

`dev` (default) keeps the local loop fast; `ci` (HYPOTHESIS_PROFILE=ci, set by .ci/run)
runs more examples. Slow property tests are governed by these profiles, never skipped.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile(
    "ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
