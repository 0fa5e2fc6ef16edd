"""Shared by the `mcpp test` tests: run the CLI as users do, write policy/test pairs."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def mcpp(*args, cwd=None):
    p = subprocess.run([sys.executable, "-m", "mcpp", *map(str, args)], capture_output=True, text=True,
                       cwd=cwd or ROOT)
    assert "Traceback" not in p.stderr, p.stderr
    return p


def pair(tmp_path: Path, policy: str, tests: str, name: str = "p") -> Path:
    """Write `<name>.mcpp` and `<name>.test.toml`; return the policy's path."""
    (tmp_path / f"{name}.mcpp").write_text(policy)
    (tmp_path / f"{name}.test.toml").write_text(tests)
    return tmp_path / f"{name}.mcpp"
