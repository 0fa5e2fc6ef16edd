"""The import package `mcpp` laid out as an installed copy would be.

`mcpp` is assembled from several top-level folders (pyproject's `package-dir`: mcpp.lang
lives in lang/, mcpp.analyzer in analyzer/, ...). Tools that walk a package on disk —
import-linter (tests/test_layers.py), mypy (tests/test_static.py) — cannot follow that
mapping through an editable install, so the tests build a tree of symlinks shaped like the
installed package and run the standard tool on it."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def installed_layout(dest: Path) -> Path:
    """Build `dest/mcpp/...` as symlinks into the checkout; returns `dest` (the import root)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_dir: dict[str, str] = config["tool"]["setuptools"]["package-dir"]
    base = dest / "mcpp"
    base.mkdir(parents=True)
    for entry in (ROOT / package_dir["mcpp"]).iterdir():
        (base / entry.name).symlink_to(entry)
    for name, folder in package_dir.items():
        if name == "mcpp":
            continue
        target = base / name.split(".", 1)[1]
        assert not target.exists(), f"{name} collides with a file of the mcpp folder"
        target.symlink_to(ROOT / folder)
    return dest


def checkout_path(installed: str) -> str:
    """Map a path inside the layout (`mcpp/lang/ir.py`) back to the checkout (`lang/ir.py`)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_dir: dict[str, str] = config["tool"]["setuptools"]["package-dir"]
    dotted = installed.replace("/", ".")
    for name in sorted(package_dir, key=len, reverse=True):
        if dotted.startswith(name + "."):
            rest = installed[len(name) + 1:]
            return f"{package_dir[name]}/{rest}"
    return installed
