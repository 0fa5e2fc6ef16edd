"""The layers hold: `lint-imports` (import-linter) checks the contracts in pyproject.toml.

The import package `mcpp` is assembled from several top-level folders (pyproject's
`package-dir`), which import-linter cannot follow through an editable install, so the
test lays the package out as an installed copy would be — a tree of symlinks
(tests/layout.py) — and runs the standard tool on it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.layout import ROOT, installed_layout


def test_import_contracts_hold(tmp_path):
    lint_imports = shutil.which("lint-imports")
    assert lint_imports, "import-linter is a test dependency (pip install -e '.[test]')"
    tree = installed_layout(tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    run = subprocess.run(
        [lint_imports, str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout, run.stdout[-3000:]


def test_the_layout_is_the_package():
    """The symlinked tree is what the test checks: make sure it is the code under test."""
    import mcpp.lang

    assert Path(mcpp.lang.__file__).resolve().parent == (ROOT / "lang").resolve(), sys.path
