"""Shared test configuration.

- Hypothesis profiles (tests/profiles.py): `dev` by default, `ci` under
  HYPOTHESIS_PROFILE=ci (at least 2,000 examples per property).
- A skip is not a pass: under CI=1 (set by .ci/run) a test that skips — a missing peer
  such as redis-server, node or nvim — is reported as a failure, with the skip reason.
  Locally it stays a skip (`-rs` prints why).
"""

from __future__ import annotations

import os

import pytest

from tests import profiles  # noqa: F401 - registers and loads the hypothesis profile

STRICT = bool(os.environ.get("CI"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # noqa: ARG001 (pytest's hook signature)
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=1, which counts as a failure: {reason}"
