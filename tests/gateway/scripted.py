"""A scripted upstream: a loopback HTTP/1.1 server, in the test's own event loop, that
answers just enough MCP (stateless, JSON responses) and misbehaves on cue.

The SDK fixture upstream is a correct server; the gateway must also survive incorrect
ones (non-JSON replies, wrong ids, redirects, a `tools` member that is an object, one
100 MiB chunk, a dropped connection). Each `tools/call` is answered by the behaviour
named by the called tool (see `BEHAVIOURS`), and every call that reached the server is
recorded in `calls`, which is what "the upstream executed it" means for these tests.
`tools/list` is answered by `list_mode`.
"""

from __future__ import annotations

import asyncio
import json

from .peers import free_port

BEHAVIOURS = (
    "ok", "is_error", "input_required", "garbage", "wrong_id", "http400", "http401", "http404", "http302",
    "http500", "http503", "rpc_32601", "rpc_32602", "rpc_32603", "drop", "hang", "sse_ok", "sse_drop", "sse_garbage",
    "sse_hang", "sse_late", "sse_progress", "sse_primed", "sse_two", "sse_slow", "sse_slow_note", "big_json",
    "bad_header", "sse_bad_header", "sse_cr", "sse_cr_open", "sse_no_blank", "sse_typed", "sse_end_later",
    "sse_untyped", "sse_big_notes",
)
STATUS = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 302: "Found", 500: "Internal Server Error",
          503: "Service Unavailable", 200: "OK"}


def tool_def(name: str, schema: dict | None = None) -> dict:
    return {"name": name, "description": f"scripted: {name}",
            "inputSchema": schema or {"type": "object", "properties": {}, "additionalProperties": True}}


class ScriptedUpstream:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.calls: list[tuple[str, dict]] = []
        self.messages: list[dict] = []  # every JSON-RPC message that came in, in order
        self.list_mode = "ok"
        self.session_id: str | None = None  # set: `initialize` is answered with it (a 2025 session)
        self.tools = [tool_def(b) for b in BEHAVIOURS]
        self.release = asyncio.Event()  # "hang" answers once this is set
        self.lists = 0
        self.listening = 0  # GET streams opened
        self._server = None
        self._writers: set = set()

    async def __aenter__(self) -> "ScriptedUpstream":
        self._server = await asyncio.start_server(self._conn, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc) -> None:
        self.release.set()
        self._server.close()
        for w in list(self._writers):
            w.close()
        try:
            async with asyncio.timeout(5):
                await self._server.wait_closed()
        except TimeoutError:
            pass

    async def _held(self) -> bool:
        """Hold an answer until `release` is set, for at most 60 s; whether it was released."""
        try:
            async with asyncio.timeout(60):
                await self.release.wait()
            return True
        except TimeoutError:
            return False

    def executed(self, tool: str | None = None) -> list[dict]:
        return [a for t, a in self.calls if tool is None or t == tool]

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        length = int(v.strip())
                body = await reader.readexactly(length) if length else b""
                if head.startswith(b"GET "):  # a listening stream: open, a comment, then nothing until released
                    self.listening += 1
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                                 b"%x\r\n%s\r\n" % (len(b": listening\n\n"), b": listening\n\n"))
                    await writer.drain()
                    await self._held()
                    return
                keep = await self._answer(body, writer)
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    @staticmethod
    def _send(writer, status: int, body: bytes, ctype: str = "application/json", extra: str = "") -> None:
        writer.write((f"HTTP/1.1 {status} {STATUS.get(status, 'X')}\r\ncontent-type: {ctype}\r\n"
                      f"content-length: {len(body)}\r\n{extra}\r\n").encode() + body)

    async def _answer(self, body: bytes, writer) -> bool:
        msg = json.loads(body) if body else {}
        self.messages.append(msg)
        rid, method = msg.get("id"), msg.get("method")
        if method == "tools/list":
            self.lists += 1
            return await self._list(rid, writer)
        if method == "initialize" and self.session_id is not None:
            result = {"protocolVersion": msg["params"].get("protocolVersion"), "capabilities": {"tools": {}},
                      "serverInfo": {"name": "scripted", "version": "1"}}
            self._send(writer, 200, json.dumps({"jsonrpc": "2.0", "id": rid, "result": result}).encode(),
                       extra=f"mcp-session-id: {self.session_id}\r\n")
            await writer.drain()
            return True
        if method == "prompts/get" and str(msg["params"]["name"]).startswith("sse_"):
            # a request other than tools/call answered by an event stream: the same sse_ behaviours
            name = msg["params"]["name"]
            text = {"type": "text", "text": f"ran {name}"}
            return await self._sse(name, {"jsonrpc": "2.0", "id": rid, "result": {"messages": [{"role": "user", "content": text}]}},
                                   writer)
        if method != "tools/call":
            self._send(writer, 200, json.dumps({"jsonrpc": "2.0", "id": rid, "result": {}}).encode())
            return True
        name = msg["params"]["name"]
        self.calls.append((name, msg["params"].get("arguments") or {}))
        ok = {"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", "text": f"ran {name}"}]}}
        if name == "bad_header":  # a header value HTTP cannot carry (a control character)
            self._send(writer, 200, json.dumps(ok).encode(), extra="cache-control: no\x01cache\r\n")
        elif name == "sse_bad_header":
            event = b"event: message\r\ndata: " + json.dumps(ok).encode() + b"\r\n\r\n"
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no\x01cache\r\n"
                         b"transfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(event), event))
        elif name == "big_json":  # an 8 MiB answer (a client that does not read it pauses the gateway's writing)
            ok["result"]["content"][0]["text"] = "x" * (8 << 20)
            self._send(writer, 200, json.dumps(ok).encode())
        elif name in ("ok",) or name not in BEHAVIOURS:
            self._send(writer, 200, json.dumps(ok).encode())
        elif name == "is_error":
            ok["result"]["isError"] = True
            self._send(writer, 200, json.dumps(ok).encode())
        elif name == "input_required":
            res = {"resultType": "input_required", "inputRequests": {"x": {"method": "roots/list", "params": {}}}}
            self._send(writer, 200, json.dumps({"jsonrpc": "2.0", "id": rid, "result": res}).encode())
        elif name == "garbage":
            self._send(writer, 200, b"<html>this is not JSON</html>", "application/json")
        elif name == "wrong_id":
            ok["id"] = f"not-{rid}"
            self._send(writer, 200, json.dumps(ok).encode())
        elif name.startswith("http"):
            status = int(name[4:])
            extra = "location: http://127.0.0.1:1/elsewhere\r\n" if status == 302 else ""
            self._send(writer, status, json.dumps({"jsonrpc": "2.0", "id": rid, "error": {"code": -32600, "message": name}}).encode(),
                       extra=extra)
        elif name.startswith("rpc_"):
            code = -int(name[4:])
            self._send(writer, 200, json.dumps({"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": name}}).encode())
        elif name == "drop":
            return False
        elif name == "hang":
            if not await self._held():
                return False
            self._send(writer, 200, json.dumps(ok).encode())
        elif name.startswith("sse_"):
            return await self._sse(name, ok, writer)
        await writer.drain()
        return True

    async def _sse(self, name: str, ok: dict, writer) -> bool:
        """Answer `ok` in an event stream as behaviour `name` says; whether the connection stays."""
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        event = b"event: message\r\ndata: " + json.dumps(ok).encode() + b"\r\n\r\n"
        if name == "sse_ok":
            writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(event), event))
        elif name == "sse_hang":  # headers, a comment, then nothing until released
            writer.write(b"%x\r\n%s\r\n" % (len(b": open\n\n"), b": open\n\n"))
            await writer.drain()
            await self._held()
            return False
        elif name == "sse_late":  # headers, a comment, and the answer once released (cancelled or not)
            writer.write(b"%x\r\n%s\r\n" % (len(b": open\n\n"), b": open\n\n"))
            await writer.drain()
            if not await self._held():
                return False
            writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(event), event))
        elif name == "sse_progress":  # a notification of the call's progress, then the answer
            note = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": "t", "progress": 1}}
            first = b"event: message\r\ndata: " + json.dumps(note).encode() + b"\r\n\r\n"
            writer.write(b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(first), first, len(event), event))
        elif name in ("sse_slow", "sse_slow_note"):  # the head, then a second later the answer (or a notification, then nothing until released)
            await writer.drain()
            await asyncio.sleep(1.0)
            if name == "sse_slow_note":
                note = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": "t", "progress": 1}}
                first = b"event: message\r\ndata: " + json.dumps(note).encode() + b"\r\n\r\n"
                writer.write(b"%x\r\n%s\r\n" % (len(first), first))
                await writer.drain()
                if not await self._held():
                    return False
            writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(event), event))
        elif name == "sse_cr":  # CR-only line ends: the answer's blank line is the stream's last byte
            cr = b"event: message\rdata: " + json.dumps(ok).encode() + b"\r\r"
            writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(cr), cr))
        elif name == "sse_cr_open":  # CR-only line ends, the answer complete, the stream left open until released
            cr = b"event: message\rdata: " + json.dumps(ok).encode() + b"\r\r"
            writer.write(b"%x\r\n%s\r\n" % (len(cr), cr))
            await writer.drain()
            await self._held()
            return False
        elif name == "sse_no_blank":  # the answer's event not ended by a blank line: the stream's end ends it
            last = event[:-2]
            writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(last), last))
        elif name == "sse_typed":  # the answer in an event of another type than `message`: no client reads it
            typed = event.replace(b"event: message", b"event: result")
            writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(typed), typed))
        elif name == "sse_untyped":  # `event:` with no value: the type is `message` (WHATWG, the SDK client)
            untyped = event.replace(b"event: message", b"event:")
            writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(untyped), untyped))
        elif name == "sse_big_notes":  # two 2 MiB notifications, then the answer, in one write
            note = {"jsonrpc": "2.0", "method": "notifications/progress",
                    "params": {"progressToken": "t", "progress": 1, "message": "y" * (2 << 20)}}
            big = b"event: message\r\ndata: " + json.dumps(note).encode() + b"\r\n\r\n"
            writer.write(b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in (big, big, event)) + b"0\r\n\r\n")
        elif name == "sse_end_later":  # the head, then 1.5 s later the stream's end, with no answer
            await writer.drain()
            await asyncio.sleep(1.5)
            writer.write(b"0\r\n\r\n")
        elif name == "sse_primed":  # 2025-11-25: an event with an id and no data primes resumption
            primed = b"id: p-1\r\ndata:\r\n\r\n" + event
            writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(primed), primed))
        elif name == "sse_two":  # the answer, then a second answer for the same id in the same chunk
            two = event + event.replace(b"ran sse_two", b"second answer")
            writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(two), two))
        elif name == "sse_garbage":
            junk = b"event: message\r\ndata: {not json\r\n\r\n"
            writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(junk), junk))
        else:
            writer.write(b"%x\r\n%s\r\n" % (len(event[:20]), event[:20]))
            await writer.drain()
            return False
        await writer.drain()
        return True

    async def _list(self, rid, writer) -> bool:
        mode = self.list_mode
        good = {"jsonrpc": "2.0", "id": rid, "result": {"tools": self.tools}}
        if mode == "ok":
            self._send(writer, 200, json.dumps(good).encode())
        elif mode == "hang":  # no answer until released
            if not await self._held():
                return False
            self._send(writer, 200, json.dumps(good).encode())
        elif mode in ("302", "401", "500"):
            extra = "location: http://127.0.0.1:1/elsewhere\r\n" if mode == "302" else ""
            self._send(writer, int(mode), b'{"error": "no"}', extra=extra)
        elif mode == "sse_held_open":  # the answer, then the stream left open (chunked, never ended)
            chunk = f"data: {json.dumps(good)}\n\n".encode()
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                         + b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            await writer.drain()
            await asyncio.sleep(30)
            return False
        elif mode.startswith("sse"):  # an event stream: the answer alone, after a priming event, a notification, or before one
            note = 'data: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"listing"}}\n\n'
            answer = f"data: {json.dumps(good)}\n\n"
            events = {"sse": answer, "sse_primed": "id: 1\ndata:\n\n" + answer, "sse_note": note + answer,
                      "sse_note_after": answer + note, "sse_comment": ": keep-alive\n\n" + answer,
                      "sse_then_garbage": answer + "data: not json\n\n"}[mode]
            self._send(writer, 200, events.encode(), "text/event-stream")
        elif mode == "tools_object":
            good["result"]["tools"] = {t["name"]: t for t in self.tools}
            self._send(writer, 200, json.dumps(good).encode())
        elif mode == "bad_entries":
            good["result"]["tools"] = self.tools[:2] + ["a string", {"name": 42}, {"name": "z" * 200}, {"description": "nameless"}]
            self._send(writer, 200, json.dumps(good).encode())
        elif mode == "garbage":
            self._send(writer, 200, b"not json at all")
        elif mode == "wrong_id":
            good["id"] = "someone-else"
            self._send(writer, 200, json.dumps(good).encode())
        elif mode == "huge_chunk":
            # one 100 MiB chunk: the gateway must stop reading at its cap, not buffer it whole
            size = 100 << 20
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n")
            writer.write(b"%x\r\n" % size)
            piece = b" " * (1 << 20)
            try:
                for _ in range(100):
                    writer.write(piece)
                    await writer.drain()
                writer.write(b"\r\n0\r\n\r\n")
                await writer.drain()
            except ConnectionError:
                pass
            return False
        elif mode == "huge_length":
            size = 100 << 20
            writer.write(f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {size}\r\n\r\n".encode())
            piece = b" " * (1 << 20)
            try:
                for _ in range(100):
                    writer.write(piece)
                    await writer.drain()
            except ConnectionError:
                pass
            return False
        await writer.drain()
        return True
