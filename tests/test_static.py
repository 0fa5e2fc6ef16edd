"""Static checks, run with the suite so `.ci/run`'s single pytest command enforces them.

ruff (pyflakes and unused arguments, configured in pyproject's [tool.ruff]) on the whole
tree, and mypy ([tool.mypy]) on the import package `mcpp`. mypy walks packages on disk and
cannot follow pyproject's `package-dir` (mcpp.lang lives in lang/) through the editable
install, so it runs on the installed layout of tests/layout.py, and the paths it reports
are mapped back to the checkout."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.layout import ROOT, checkout_path, installed_layout


def test_ruff_is_clean():
    run = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format=concise", str(ROOT)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]


def test_mypy_is_clean(tmp_path):
    tree = installed_layout(tmp_path / "site")
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(tmp_path / "mypy-cache"), "-p", "mcpp"],
        cwd=tree, capture_output=True, text=True, timeout=900,
    )
    report = re.sub(r"^(mcpp/\S+?\.pyi?)(?=:)", lambda m: checkout_path(m.group(1)),
                    run.stdout, flags=re.MULTILINE)
    assert run.returncode == 0, report[-12000:] + run.stderr[-2000:]
    assert "Success: no issues found" in run.stdout, report[-4000:]
