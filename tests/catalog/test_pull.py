"""`mcpp catalog pull` against real MCP servers: the SDK server over stdio and HTTP (three
pages of tools), and one npm reference server when .ci/setup.d/catalog.sh installed it."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from mcpp.catalog import load_catalog
from mcpp.catalog.pull import PullError, Target, pull

from .conftest import SERVER, run_mcpp

EXPECTED = ["delete_pod", "exec_command", "fetch_url", "get_pod_logs", "get_secret", "list_pods",
            "refund_payment", "scale_deployment"]
NPM_PREFIX = Path(os.environ.get("MCPP_NPM_PREFIX", Path.home() / ".cache" / "mcpp-test-npm"))


def test_pull_stdio_reads_every_page(tmp_path):
    cat = pull(Target(command=[sys.executable, str(SERVER), "stdio"], timeout=60))
    assert list(cat.tools) == EXPECTED  # 8 tools over 3 pages of 3
    assert cat.server_name == "paged-test-server" and cat.server_version == "1.2.3"
    assert cat.source.startswith("stdio: ") and "paged_server.py" in cat.source
    t = cat.tools["delete_pod"]
    assert t.annotations["destructiveHint"] is True and t.annotations["readOnlyHint"] is False
    assert t.annotations["openWorldHint"] is True  # spec default filled in
    assert cat.tools["exec_command"].declared_annotations == {}
    assert cat.tools["exec_command"].annotations == {"readOnlyHint": False, "destructiveHint": True,
                                                     "idempotentHint": False, "openWorldHint": True}
    out = tmp_path / "tools.json"
    cat.write(out)
    again = load_catalog(out)
    assert {n: t.hash for n, t in again.tools.items()} == {n: t.hash for n, t in cat.tools.items()}


def test_cli_pull_http_with_header_all_pages(http_server, tmp_path):
    out = tmp_path / "tools.json"
    r = run_mcpp("catalog", "pull", "--url", http_server, "--header", "Authorization: Bearer s3cret", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "8 tools from paged-test-server 1.2.3" in r.stderr
    doc = json.loads(out.read_text())
    assert list(doc) == ["mcppCatalog", "server", "protocolVersion", "source", "capturedAt", "tools"]
    assert list(doc["tools"]) == EXPECTED
    assert doc["source"] == f"url: {http_server}"
    assert "s3cret" not in out.read_text()  # header values are credentials: never recorded
    assert all(e["sha256"].startswith("sha256:") and len(e["sha256"]) == 71 for e in doc["tools"].values())


def test_cli_pull_http_without_token_is_a_clear_error(http_server, tmp_path):
    r = run_mcpp("catalog", "pull", "--url", http_server, "-o", str(tmp_path / "x.json"))
    assert r.returncode == 2  # a server that cannot be read is unreadable input
    assert r.stderr.startswith("mcpp: error: could not list tools from url: " + http_server)
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "x.json").exists()


def test_cli_pull_errors_are_clear(tmp_path):
    r = run_mcpp("catalog", "pull", "--stdio", "definitely-not-a-command-xyz --flag")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "could not list tools from stdio: definitely-not-a-command-xyz --flag" in r.stderr
    # a server that dies prints why on stderr; the error carries it
    script = tmp_path / "dies.py"
    script.write_text("import sys\nprint('Please set API_TOKEN', file=sys.stderr)\nsys.exit(1)\n")
    r = run_mcpp("catalog", "pull", "--stdio", f"{sys.executable} {script}")
    assert r.returncode == 2 and "Please set API_TOKEN" in r.stderr and "Traceback" not in r.stderr
    for args, msg in [((), "give exactly one of --url"), (("--url", "ftp://x"), "expected an http"),
                      (("--url", "http://127.0.0.1:1/mcp", "--header", "nocolon"), "expected NAME:VALUE"),
                      (("--stdio", "x", "--header", "a:b"), "--header applies to --url"),
                      (("--stdio", "'unterminated"), "cannot split")]:
        r = run_mcpp("catalog", "pull", *args)
        assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)


def test_cli_pull_refused_connection_is_clear():
    r = run_mcpp("catalog", "pull", "--url", "http://127.0.0.1:9/mcp", "--timeout", "20")
    assert r.returncode == 2 and "could not list tools from url: http://127.0.0.1:9/mcp" in r.stderr
    assert "Traceback" not in r.stderr


def test_pull_detects_a_looping_cursor(tmp_path):
    script = tmp_path / "loop.py"
    script.write_text(
        "import anyio\n"
        "from mcp.server import Server\nfrom mcp.server.stdio import stdio_server\n"
        "from mcp.types import ListToolsResult, Tool\n"
        "async def lt(ctx, params):\n"
        "    return ListToolsResult(tools=[Tool(name='t', input_schema={'type': 'object'})], next_cursor='again')\n"
        "s = Server('loop', on_list_tools=lt)\n"
        "async def main():\n"
        "    async with stdio_server() as (r, w):\n"
        "        await s.run(r, w, s.create_initialization_options())\n"
        "anyio.run(main)\n")
    with pytest.raises(PullError, match="cursor 'again' twice"):
        pull(Target(command=[sys.executable, str(script)], timeout=60))


# a stdio server answering on the wire itself, so that its tools/list can carry raw JSON text
_RAW_SERVER = """import json, sys
NUM = sys.argv[1]
for line in sys.stdin:
    m = json.loads(line)
    if "id" not in m:
        continue
    if m["method"] == "initialize":
        r = '{"protocolVersion": "%s", "capabilities": {"tools": {}}, "serverInfo": {"name": "raw", "version": "1"}}' % m["params"]["protocolVersion"]
    elif m["method"] == "tools/list":
        r = '{"tools": [{"name": "t", "inputSchema": {"type": "object", "properties": {"a": {"type": "number", "maximum": %s}}}}]}' % NUM
    else:
        r = "{}"
    sys.stdout.write('{"jsonrpc": "2.0", "id": %s, "result": %s}\\n' % (json.dumps(m["id"]), r))
    sys.stdout.flush()
"""


@pytest.mark.parametrize("number, shown", [("NaN", "NaN"), ("1e99999", "Infinity"), ("-Infinity", "-Infinity")])
def test_pull_refuses_a_number_no_float_holds(tmp_path, number, shown):
    """hostile review 32, H32-7: such a number came out of the SDK's JSON dump as `null`: the
    pulled catalog said `"maximum": null`, exit 0, not a word. Refused at its pointer, as
    every other reader refuses it."""
    script = tmp_path / "raw.py"
    script.write_text(_RAW_SERVER)
    with pytest.raises(PullError, match=f"/tools/0/inputSchema/properties/a/maximum: {shown} is not a JSON number"):
        pull(Target(command=[sys.executable, str(script), number], timeout=60))
    assert pull(Target(command=[sys.executable, str(script), "5"], timeout=60)).tools["t"].input_schema[
        "properties"]["a"]["maximum"] == 5


def _npm_server(name: str) -> Path | None:
    bin_ = NPM_PREFIX / "node_modules" / ".bin" / name
    return bin_ if bin_.exists() else None


def test_pull_real_npm_server_memory(tmp_path):
    """The pinned @modelcontextprotocol/server-memory from .ci/setup.d/catalog.sh, captured live and
    compared with the committed fixture: same tools, same definitions (hashes)."""
    exe = _npm_server("mcp-server-memory")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail(f"{NPM_PREFIX} has no mcp-server-memory: .ci/setup.d/catalog.sh should have installed it")
        if shutil.which("npm") is None:
            pytest.skip("npm is not installed (CI installs the pinned server via .ci/setup.d/catalog.sh)")
        pytest.skip(f"run .ci/setup.d/catalog.sh to install the pinned npm servers into {NPM_PREFIX}")
    out = tmp_path / "memory.json"
    r = run_mcpp("catalog", "pull", "--stdio", str(exe), "--env", f"MEMORY_FILE_PATH={tmp_path / 'mem.jsonl'}",
                 "-o", str(out))
    assert r.returncode == 0, r.stderr
    live = load_catalog(out)
    fixture = load_catalog(Path(__file__).parent / "fixtures" / "memory.json")
    assert (live.server_name, live.server_version) == (fixture.server_name, fixture.server_version)
    assert {n: t.hash for n, t in live.tools.items()} == {n: t.hash for n, t in fixture.tools.items()}
    r = run_mcpp("catalog", "diff", str(Path(__file__).parent / "fixtures" / "memory.json"), str(out))
    assert r.returncode == 0 and "no tool changes" in r.stdout
