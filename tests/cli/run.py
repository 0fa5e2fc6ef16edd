"""Running the CLI the way users do: `python -m mcpp` in a subprocess, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def mcpp(*args, stdin: str | None = None, cwd=None, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.pop("MCPP_DEBUG", None)
    full_env.update(env or {})
    p = subprocess.run([sys.executable, "-m", "mcpp", *map(str, args)], input=stdin, capture_output=True, text=True,
                       cwd=cwd or ROOT, env=full_env, timeout=timeout)
    assert "Traceback" not in p.stderr, p.stderr
    return p
