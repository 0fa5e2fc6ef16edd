"""docs/tutorial.md, run: every `sh` block in order in one scratch directory, each output
block compared with what the commands before it printed, the `cedar` excerpts found in the
policy `mcpp init` wrote, the `python` clients saved and run against the gateways the
page starts, the `toml` files written where the page says.

Substitutions stand for the reader's machine: the npm filesystem server becomes
tests/cli/fixtures/filesystem_server.py (the same tools, from the SDK; see its
docstring; where the page serves `/srv/agent`, inside a sandbox of the scratch
directory), and the page's ports (8080, 8081, 9000) become free ones, in the commands,
the files and the outputs shown. The token `grant create` prints goes into MCPP_TOKEN,
and MCPP_CHECKOUT is this checkout, as the page tells the reader to set them. A command
the page runs in the background (`… &`, or `mcpp serve` "in a terminal of its own") is
started as a process of its own and waited for until it answers on its port.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.gateway.peers import free_port, wait_http

from .markdown import blocks, excerpt_of, file_marker, matches
from .run import ROOT

TUTORIAL = ROOT / "docs" / "tutorial.md"
FIXTURE = Path(__file__).parent / "fixtures" / "filesystem_server.py"
NPM_SERVER = re.compile(r"npx -y @modelcontextprotocol/server-filesystem@[\w.]+")
NPM_SERVER_ARGV = re.compile(r'"npx", "-y", "@modelcontextprotocol/server-filesystem@[\w.]+"')  # a config's command
PAGE_PORTS = ("8080", "8081", "9000")


class Reader:
    """Runs the page's shell blocks the way a reader's terminals would: one working
    directory and one environment carried from block to block, background commands
    left running until the end."""

    def __init__(self, home: Path):
        self.cwd = home
        self.ports = {page: str(free_port()) for page in PAGE_PORTS}
        bindir = str(Path(sys.executable).parent)  # this checkout's mcpp and python3
        self.env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", PYTHONUNBUFFERED="1",
                        MCPP_CHECKOUT=str(ROOT))
        self.env.pop("MCPP_DEBUG", None)
        self.state = home / ".reader"
        self.state.mkdir()
        self.sandbox = home / "sandbox"  # stands for `/` where the page serves /srv/agent
        self.background: list[subprocess.Popen] = []

    def with_ports(self, text: str) -> str:
        for page, here in self.ports.items():
            text = text.replace(page, here)
        return text

    def substitute(self, body: str) -> str:
        body = NPM_SERVER.sub(f"{sys.executable} {FIXTURE}", body)
        body = NPM_SERVER_ARGV.sub(f'"{sys.executable}", "{FIXTURE}", "--root", "{self.sandbox}"', body)
        return self.with_ports(body)

    def shell(self, body: str) -> str:
        """One `sh` block: foreground commands run in turn (their output returned),
        a line ending in ` &` started in the background."""
        out, chunk = [], []
        for line in body.splitlines():
            continued = bool(chunk) and chunk[-1].rstrip().endswith("\\")
            if line.rstrip().endswith(" &") and not continued:
                if chunk:
                    out.append(self.run("\n".join(chunk)))
                    chunk = []
                self.start(line.rstrip()[:-1])
            else:
                chunk.append(line)
        if any(c.strip() for c in chunk):
            out.append(self.run("\n".join(chunk)))
        return "".join(out)

    def run(self, body: str) -> str:
        script = f"{self.substitute(body)}\npwd > {self.state}/cwd; env -0 > {self.state}/env\n"
        p = subprocess.run(["bash", "-c", script], cwd=self.cwd, env=self.env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=300)
        assert "Traceback" not in p.stdout, p.stdout
        self._carry()
        return p.stdout

    def start(self, command: str) -> None:
        command = self.substitute(command).strip()
        log_path = self.state / f"background-{len(self.background)}.log"
        with open(log_path, "wb") as log:  # the child keeps its own descriptor
            p = subprocess.Popen(["bash", "-c", "exec " + command], cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.background.append(p)
        redirected = re.search(r"2>\s*(\S+)", command)  # the page's own log (`2> serve.log`) has the reason
        wait_http(self._health_url(command), p, timeout=120,
                  log=self.cwd / redirected.group(1) if redirected else log_path)

    def _health_url(self, command: str) -> str:
        """Where a background command answers once it is ready: a gateway's /healthz on
        the port of its flags or its config file, another server's `--port`."""
        port = re.search(r"--port (\d+)", command)
        config = re.search(r"--config (\S+)", command)
        if command.startswith("mcpp serve"):
            if port is None and config is not None:
                gateway = tomllib.loads((self.cwd / config.group(1)).read_text())["gateway"]
                return f"http://127.0.0.1:{gateway['port']}/healthz"
            assert port is not None, f"which port does `{command}` listen on?"
            return f"http://127.0.0.1:{port.group(1)}/healthz"
        assert port is not None, f"a background command this test cannot wait for: {command}"
        return f"http://127.0.0.1:{port.group(1)}/"

    def _carry(self) -> None:
        self.cwd = Path((self.state / "cwd").read_text().strip())
        pairs = (self.state / "env").read_text().split("\0")
        self.env = dict(p.split("=", 1) for p in pairs if "=" in p)

    def stop(self) -> None:
        # each background command is a session of its own: end the whole group, which may
        # outlive its leader (a shell that exited and left a job behind)
        for p in self.background:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
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
                backgrounded = any(line.rstrip().endswith(" &") for line in b.body.splitlines())
                if b.body.lstrip().startswith("mcpp serve") and not backgrounded:
                    reader.start(b.body)  # "in a terminal of its own"
                    last_output = None
                    continue
                last_output = reader.shell(b.body)
                token = re.search(r"^token: (\S+)$", last_output, re.M)
                if token:  # what the reader copies into the client's environment
                    reader.env["MCPP_TOKEN"] = token.group(1)
            elif b.lang == "text":
                assert last_output is not None, f"{where}: an output block with no command before it"
                shown = reader.with_ports(b.body)
                assert matches(shown, last_output), f"{where}: the page shows\n{shown}\n\nthe commands printed\n{last_output}"
                checked["text"] += 1
                last_output = None
            elif b.lang == "cedar":
                policy = (reader.cwd / "policy.mcpp").read_text()
                assert excerpt_of(b.body, policy), f"{where}: this excerpt is not in the policy `mcpp init` wrote"
                checked["cedar"] += 1
            elif b.lang == "toml":  # `# gateway.toml`; unmarked: "Put cases in `policy.test.toml` beside the policy"
                name = file_marker(b) or "policy.test.toml"
                (reader.cwd / name).write_text(reader.substitute(b.body) + "\n")
                checked["toml"] += 1
            elif b.lang == "python":
                name = file_marker(b) or "call.py"  # `# client.py`; unmarked: "save this as `call.py`"
                (reader.cwd / name).write_text(reader.substitute(b.body) + "\n")
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
    assert checked == {"text": 23, "cedar": 2, "toml": 2, "python": 2, "json": 1}, checked
