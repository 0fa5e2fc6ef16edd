"""docs/tutorial.md, run: every `sh` block in order in one scratch directory, each output
block compared with what the commands before it printed, the `cedar` excerpts found in the
policy `mcpp init` wrote, the `python` client saved as `call.py` and run against the
gateway the page starts.

Two substitutions stand for the reader's machine: the npm filesystem server becomes
tests/cli/fixtures/filesystem_server.py (the same tools, from the SDK; see its
docstring), and port 8080 becomes a free one. The token `grant create` prints goes into
MCPP_TOKEN, as the page tells the reader to do.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gateway.peers import free_port, wait_http

from .markdown import blocks, excerpt_of, matches
from .run import ROOT

TUTORIAL = ROOT / "docs" / "tutorial.md"
FIXTURE = Path(__file__).parent / "fixtures" / "filesystem_server.py"
NPM_SERVER = re.compile(r"npx -y @modelcontextprotocol/server-filesystem@[\w.]+")


class Reader:
    """Runs the page's shell blocks the way a reader's terminal would: one working
    directory and one environment carried from block to block."""

    def __init__(self, home: Path):
        self.cwd = home
        self.port = str(free_port())
        bindir = str(Path(sys.executable).parent)  # this checkout's mcpp and python3
        self.env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", PYTHONUNBUFFERED="1")
        self.env.pop("MCPP_DEBUG", None)
        self.state = home / ".reader"
        self.state.mkdir()
        self.background: list[subprocess.Popen] = []

    def substitute(self, body: str) -> str:
        return NPM_SERVER.sub(f"{sys.executable} {FIXTURE}", body).replace("8080", self.port)

    def run(self, body: str) -> str:
        script = f"{self.substitute(body)}\npwd > {self.state}/cwd; env -0 > {self.state}/env\n"
        p = subprocess.run(["bash", "-c", script], cwd=self.cwd, env=self.env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=300)
        assert "Traceback" not in p.stdout, p.stdout
        self._carry()
        return p.stdout

    def start(self, body: str) -> None:
        log = open(self.state / "serve.log", "wb")
        p = subprocess.Popen(["bash", "-c", "exec " + self.substitute(body).strip()], cwd=self.cwd,
                             env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.background.append(p)
        wait_http(f"http://127.0.0.1:{self.port}/healthz", p, log=self.state / "serve.log")

    def _carry(self) -> None:
        self.cwd = Path((self.state / "cwd").read_text().strip())
        pairs = (self.state / "env").read_text().split("\0")
        self.env = dict(p.split("=", 1) for p in pairs if "=" in p)

    def stop(self) -> None:
        for p in self.background:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(10)


def test_the_tutorial_runs_as_written(tmp_path):
    reader = Reader(tmp_path)
    last_output = None
    checked = {"text": 0, "cedar": 0, "toml": 0, "python": 0, "json": 0}
    try:
        for b in blocks(TUTORIAL):
            where = f"docs/tutorial.md:{b.line}"
            if b.lang == "sh":
                if b.body.lstrip().startswith("mcpp serve"):
                    reader.start(b.body)
                    last_output = None
                    continue
                last_output = reader.run(b.body)
                token = re.search(r"^token: (\S+)$", last_output, re.M)
                if token:  # what the reader copies into the client's environment
                    reader.env["MCPP_TOKEN"] = token.group(1)
            elif b.lang == "text":
                assert last_output is not None, f"{where}: an output block with no command before it"
                assert matches(b.body, last_output), f"{where}: the page shows\n{b.body}\n\nthe commands printed\n{last_output}"
                checked["text"] += 1
                last_output = None
            elif b.lang == "cedar":
                policy = (reader.cwd / "policy.mcpp").read_text()
                assert excerpt_of(b.body, policy), f"{where}: this excerpt is not in the policy `mcpp init` wrote"
                checked["cedar"] += 1
            elif b.lang == "toml":  # the page: "Put cases in `policy.test.toml` beside the policy"
                (reader.cwd / "policy.test.toml").write_text(b.body + "\n")
                checked["toml"] += 1
            elif b.lang == "python":
                (reader.cwd / "call.py").write_text(b.body + "\n")
                checked["python"] += 1
            elif b.lang == "json":
                config = json.loads(b.body)
                (server,) = config["mcpServers"].values()
                assert server["url"] == "http://127.0.0.1:8080/mcp/default/"
                assert server["headers"]["Authorization"].startswith("Bearer mcpp.g_")
                checked["json"] += 1
            else:
                pytest.fail(f"{where}: a ```{b.lang} block this test does not know how to check")
    finally:
        reader.stop()
    assert checked == {"text": 16, "cedar": 2, "toml": 1, "python": 1, "json": 1}, checked
