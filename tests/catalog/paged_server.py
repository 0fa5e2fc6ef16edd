"""A real MCP server (the SDK's lowlevel `Server`) whose tools/list spans several pages.

Run as `python paged_server.py stdio` or `python paged_server.py http PORT [TOKEN]`.
With a TOKEN, HTTP requests without `Authorization: Bearer TOKEN` get 401, so a test
can prove `catalog pull --header` sends headers. `MCPP_TEST_TOOL_VARIANT=2` changes one
tool's schema, so drift can be produced from a live server.
"""

from __future__ import annotations

import os
import sys

from mcp.server import Server, ServerRequestContext
from mcp.types import (
    CallToolRequestParams, CallToolResult, ListToolsResult, PaginatedRequestParams, TextContent, Tool, ToolAnnotations,
)

PAGE = 3


def tools() -> list[Tool]:
    variant = os.environ.get("MCPP_TEST_TOOL_VARIANT", "1")
    ns = {"type": "string", "description": "Kubernetes namespace"}
    out = [
        Tool(name="list_pods", description="List pods in a namespace",
             input_schema={"type": "object", "properties": {"namespace": ns}},
             annotations=ToolAnnotations(read_only_hint=True)),
        Tool(name="get_pod_logs", description="Read a pod's logs",
             input_schema={"type": "object", "properties": {"namespace": ns, "pod": {"type": "string"},
                                                            "tail": {"type": "integer"}}, "required": ["pod"]},
             annotations=ToolAnnotations(read_only_hint=True)),
        Tool(name="delete_pod", description="Delete a pod",
             input_schema={"type": "object", "properties": {"namespace": ns, "pod": {"type": "string"}},
                           "required": ["namespace", "pod"], "additionalProperties": False},
             annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True)),
        Tool(name="scale_deployment", description="Scale a deployment",
             input_schema={"type": "object", "properties": {"namespace": ns, "name": {"type": "string"},
                                                            "replicas": {"type": "integer", "minimum": 0}},
                           "required": ["namespace", "name", "replicas"]},
             annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False)),
        Tool(name="exec_command", description="Run a command in a pod",
             input_schema={"type": "object", "properties": {"namespace": ns, "pod": {"type": "string"},
                                                            "command": {"type": "string"}},
                           "required": ["namespace", "pod", "command"]}),
        Tool(name="fetch_url", description="Fetch a URL from inside the cluster",
             input_schema={"type": "object", "properties": {"url": {"type": "string", "format": "uri"}},
                           "required": ["url"]},
             annotations=ToolAnnotations(read_only_hint=True, open_world_hint=True)),
        Tool(name="refund_payment", description="Refund a payment",
             input_schema={"type": "object", "properties": {"payment_id": {"type": "string"},
                                                            "amount": {"type": "number"}},
                           "required": ["payment_id", "amount"]},
             annotations=ToolAnnotations(destructive_hint=False)),
        Tool(name="get_secret", description="Read a secret", input_schema={"type": "object", "properties": {
            "name": {"type": "string"}}, "required": ["name"]}, annotations=ToolAnnotations(read_only_hint=True)),
    ]
    if variant == "2":
        out[3] = Tool(name="scale_deployment", description="Scale a deployment (now across clusters)",
                      input_schema={"type": "object", "properties": {"namespace": ns, "name": {"type": "string"},
                                                                     "replicas": {"type": "integer"},
                                                                     "cluster": {"type": "string"}},
                                    "required": ["name", "replicas"]},
                      annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False))
        out.append(Tool(name="drain_node", description="Drain a node",
                        input_schema={"type": "object", "properties": {"node": {"type": "string"}}}))
    return out


async def list_tools(ctx: ServerRequestContext, params: PaginatedRequestParams | None) -> ListToolsResult:  # noqa: ARG001 (the MCP SDK's handler signature)
    all_tools = tools()
    start = int(params.cursor) if params is not None and params.cursor else 0
    page = all_tools[start:start + PAGE]
    nxt = str(start + PAGE) if start + PAGE < len(all_tools) else None
    return ListToolsResult(tools=page, next_cursor=nxt)


async def call_tool(ctx: ServerRequestContext, params: CallToolRequestParams) -> CallToolResult:  # noqa: ARG001 (the MCP SDK's handler signature)
    return CallToolResult(content=[TextContent(type="text", text=f"called {params.name}")])


server = Server("paged-test-server", version="1.2.3", on_list_tools=list_tools, on_call_tool=call_tool)


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "stdio"
    if mode == "stdio":
        import anyio
        from mcp.server.stdio import stdio_server

        async def run() -> None:
            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())

        anyio.run(run)
        return
    import uvicorn

    port = int(sys.argv[2])
    token = sys.argv[3] if len(sys.argv) > 3 else None
    app = server.streamable_http_app()
    if token is not None:
        inner = app

        async def app(scope, receive, send):  # noqa: F811 — a bearer-token gate in front of the MCP app
            if scope["type"] == "http":
                headers = dict(scope.get("headers") or [])
                if headers.get(b"authorization") != f"Bearer {token}".encode():
                    await send({"type": "http.response.start", "status": 401,
                                "headers": [(b"content-type", b"text/plain")]})
                    await send({"type": "http.response.body", "body": b"missing or bad token"})
                    return
            await inner(scope, receive, send)

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
