"""The adversarial run of issue 11, one test per finding, each asserting the safe outcome.

Loopback only, against real peers (the SDK fixture upstream, `mcpp serve` subprocesses,
redis-server). Every loop is bounded in count and in time; no assertion is about wall-clock
speed (that is bench/'s job): where the finding was "it blocks", the test asserts an order
of events instead (what must finish while something else is still stuck).
"""

from __future__ import annotations

import asyncio
import json

import httpx2

from .peers import POLICY, call_tool, create_grant, result_text, write

HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


async def raw_request(port: int, data: bytes, timeout: float = 10.0) -> tuple[int | None, bytes]:
    """Send bytes as they are on a fresh connection; the status code (None if the server
    closed without answering) and whatever came back before the connection closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        out = b""
        async with asyncio.timeout(timeout):
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                out += chunk
                if b"\r\n\r\n" in out and b"content-length: " in out.lower():
                    head, _, body = out.partition(b"\r\n\r\n")
                    n = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                    if len(body) >= n:
                        break
    except (ConnectionError, TimeoutError):
        pass
    finally:
        writer.close()
    if not out.startswith(b"HTTP/1.1 "):
        return None, out
    return int(out[9:12]), out


def _gw(tmp_path, start_gateway, upstream_url, *extra, policy_text=POLICY, config: str | None = None):
    state = tmp_path / "state"
    grant = create_grant(state, "adversary")
    if config is None:
        policy = write(tmp_path / "policy.mcpp", policy_text)
        g = start_gateway("--policy", str(policy), "--upstream", upstream_url, *extra, state=state)
    else:
        g = start_gateway("--config", str(write(tmp_path / "gateway.toml", config)), port=int(config.split("port = ")[1].split()[0]))
    g.token = grant["token"]
    return g


# ---- finding 7: two Authorization headers -------------------------------------------------------


async def test_two_authorization_headers_are_refused(tmp_path, upstream, start_gateway):
    """Finding 7: with two `Authorization` headers the last one won. Now neither does: 400,
    whichever order the good and the bad token come in, and nothing reaches the upstream."""
    g = _gw(tmp_path, start_gateway, upstream.url)
    before = len(upstream.ran())
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "dup"}}})
    for first, second in ((g.token, "mcpp.g_00.bad"), ("mcpp.g_00.bad", g.token), (g.token, g.token)):
        req = (f"POST /mcp/default/ HTTP/1.1\r\nHost: 127.0.0.1:{g.port}\r\nContent-Type: application/json\r\n"
               f"Accept: application/json, text/event-stream\r\nAuthorization: Bearer {first}\r\n"
               f"Authorization: Bearer {second}\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode()
        status, out = await raw_request(g.port, req)
        assert status == 400, out[:300]
        assert b"more than one Authorization header" in out
    async with httpx2.AsyncClient(timeout=10) as http:  # one header is still fine
        assert result_text(await call_tool(http, g.url(), g.token, "echo", {"text": "dup"})) == "dup"
    assert [x["args"] for x in upstream.ran()[before:]] == [{"text": "dup"}]
