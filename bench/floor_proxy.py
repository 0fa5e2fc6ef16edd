"""The floor for bench/gateway_bench.py: the thinnest proxy on the gateway's own HTTP stack.

uvicorn with httptools and uvloop (what `mcpp serve` runs) and mcpp's upstream client,
and nothing else: no authentication, schema check, decision, audit, metrics or header
bounds. Whatever it adds to a call is what any proxy in Python on this stack adds (two
more loopback hops, HTTP parsing and framing); what `mcpp serve` adds beyond it is the
cost of governing the call. Run by `gateway_bench.py --floor`, not by users.

    python3 bench/floor_proxy.py UPSTREAM_URL PORT
"""

from __future__ import annotations

import sys

import uvicorn

from mcpp.runtime.gateway.http_client import HTTPUpstream

FORWARD = {"accept", "content-type", "mcp-protocol-version", "mcp-session-id", "mcp-method", "mcp-name", "last-event-id"}
RETURN = {"content-type", "mcp-session-id"}


def make_app(upstream: HTTPUpstream):
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = b""
        while True:
            m = await receive()
            body += m.get("body", b"")
            if not m.get("more_body"):
                break
        headers = [(k.decode(), v.decode()) for k, v in scope["headers"] if k.decode() in FORWARD]
        resp = await upstream.request(scope["method"], headers, body, 30)
        out = [(k.encode(), v.encode()) for k, v in resp.headers if k in RETURN]
        await send({"type": "http.response.start", "status": resp.status, "headers": out})
        async for chunk in resp.chunks(30):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


if __name__ == "__main__":
    uvicorn.run(make_app(HTTPUpstream(sys.argv[1])), host="127.0.0.1", port=int(sys.argv[2]), loop="uvloop",
                http="httptools", log_level="warning", access_log=False)
