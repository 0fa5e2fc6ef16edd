"""Fixtures for catalog tests: a paged MCP server over HTTP, and the captured npm catalogs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures"
SERVER = HERE / "paged_server.py"
SERVERS = ("everything", "filesystem", "memory", "github", "slack")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_http(token: str | None = None, env: dict | None = None):
    port = _free_port()
    args = [sys.executable, str(SERVER), "http", str(port)] + ([token] if token else [])
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("test server exited: " + proc.stderr.read().decode(errors="replace"))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, f"http://127.0.0.1:{port}/mcp"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("test server did not start")


@pytest.fixture(scope="module")
def http_server():
    proc, url = start_http(token="s3cret")
    yield url
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()


def run_mcpp(*args: str, cwd: str | Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mcpp", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)
