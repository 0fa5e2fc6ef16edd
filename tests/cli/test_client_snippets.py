"""The client snippets of docs/gateway.md ("Connecting a client"), run exactly as written
against `mcpp serve` in front of the SDK test upstream (tests/gateway/fixtures/
upstream_server.py): the Python SDK client, the TypeScript SDK client, and the shape of
the client configuration file. The tutorial's Python client is the same program."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gateway.peers import POLICY, create_grant, start_gateway, upstream, write  # noqa: F401 - fixtures

from .markdown import blocks, file_marker
from .run import ROOT

GATEWAY_DOC = ROOT / "docs" / "gateway.md"
SECTION = "## Connecting a client"


def _section_blocks(path: Path, heading: str):
    text = path.read_text(encoding="utf-8")
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    first_line = text[:start].count("\n") + 1
    last_line = text[:end].count("\n") + 1 if end != -1 else 10**9
    return [b for b in blocks(path) if first_line <= b.line <= last_line]


def snippet(lang: str) -> str:
    (b,) = [b for b in _section_blocks(GATEWAY_DOC, SECTION) if b.lang == lang]
    return b.body + "\n"


@pytest.fixture
def gateway(tmp_path, upstream, start_gateway):  # noqa: F811
    policy = write(tmp_path / "policy.mcpp", POLICY)
    state = tmp_path / "state"
    grant = create_grant(state, "alice")
    g = start_gateway("--policy", str(policy), "--upstream", upstream.url, state=state)
    env = dict(os.environ, MCPP_URL=g.url(), MCPP_TOKEN=grant["token"])
    return g, env


EXPECTED = [
    ("echo", {"text": "hello through the gateway"}, "result: hello through the gateway"),
    ("delete_pod", {"namespace": "prod", "name": "api-1"},
     "error: [POLICY DENIED] Namespace is outside the allowed non-production set."),
    ("get_secret", {"name": "db"}, "error: [POLICY DENIED] Tool get_secret is not available (hidden by policy)."),
]
LISTED = "tools: add charge delete_pod die echo slow"


def _check_runs(cmd: list[str], cwd: Path, env: dict, upstream) -> None:  # noqa: F811
    before = len(upstream.ran())
    for tool, args, last in EXPECTED:
        p = subprocess.run([*cmd, tool, json.dumps(args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        assert p.stdout.splitlines() == [LISTED, last], p.stdout
    # the denied calls never reached the upstream
    assert [r["tool"] for r in upstream.ran()[before:]] == ["echo"]


def test_python_sdk_snippet_runs_as_written(tmp_path, gateway, upstream):  # noqa: F811
    g, env = gateway
    (tmp_path / "call.py").write_text(snippet("python"))
    _check_runs([sys.executable, "call.py"], tmp_path, env, upstream)
    # without the grant's token the gateway refuses the connection
    p = subprocess.run([sys.executable, "call.py", "echo", "{}"], cwd=tmp_path, env=dict(env, MCPP_TOKEN="nope"),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and "Unauthorized: invalid grant token" in p.stderr  # HTTP 401


def test_the_tutorial_shows_the_same_python_client():
    # the tutorial's other Python block is its OAuth client, marked `# client.py`
    (tutorial,) = [b for b in blocks(ROOT / "docs" / "tutorial.md") if b.lang == "python" and file_marker(b) is None]
    assert tutorial.body + "\n" == snippet("python")


def _ts_sdk() -> Path | None:
    prefix = Path(os.environ.get("MCPP_TS_SDK_PREFIX", Path.home() / ".cache" / "mcpp-ts-sdk"))
    modules = prefix / "node_modules"
    if (modules / "@modelcontextprotocol" / "sdk" / "package.json").is_file() and shutil.which("node"):
        return modules
    msg = f"the TypeScript SDK is not installed in {prefix} (or node is missing); run .ci/setup.d/docs.sh"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


def test_typescript_sdk_snippet_runs_as_written(tmp_path, gateway, upstream):  # noqa: F811
    modules = _ts_sdk()
    g, env = gateway
    (tmp_path / "node_modules").symlink_to(modules)
    (tmp_path / "call.mjs").write_text(snippet("js"))
    _check_runs(["node", "call.mjs"], tmp_path, env, upstream)


def test_client_configuration_file_names_the_route_and_the_bearer_header():
    config = json.loads(snippet("json"))
    (entry,) = config["mcpServers"].values()
    assert entry["type"] == "http"
    assert entry["url"] == "http://127.0.0.1:8787/mcp/default/"  # the quick start's port and server id
    assert entry["headers"]["Authorization"].startswith("Bearer mcpp.g_")
