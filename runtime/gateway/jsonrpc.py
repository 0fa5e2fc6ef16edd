"""JSON-RPC and SSE framing for the gateway: the messages it writes itself, and a parser
that watches an upstream's event stream go by without changing a byte of it."""

from __future__ import annotations

import json

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
HEADER_MISMATCH = -32020
UNSUPPORTED_PROTOCOL_VERSION = -32022
# implementation-defined codes (-32000..-32019): the gateway's own failures
UPSTREAM_UNAVAILABLE = -32002
GATEWAY_ERROR = -32003

DENIED_PREFIX = "[POLICY DENIED] "
ERROR_PREFIX = "[GATEWAY ERROR] "


def dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def error(id_, code: int, message: str, data=None) -> dict:
    err = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": id_, "error": err}


def tool_error_result(id_, text: str, modern: bool, meta: dict | None = None) -> dict:
    """A `tools/call` result the model can read: `isError: true` and one text block."""
    result: dict = {"content": [{"type": "text", "text": text}], "isError": True}
    if modern:
        result["resultType"] = "complete"
    if meta:
        result["_meta"] = meta
    return {"jsonrpc": "2.0", "id": id_, "result": result}


def sse_event(message: dict, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return (head + "event: message\ndata: ").encode() + dumps(message) + b"\n\n"


class EventTooLarge(ValueError):
    """An SSE event (or an unterminated line) grew past the parser's bound."""


class SSEParser:
    """Incremental `text/event-stream` parser (WHATWG rules for fields and line ends).
    With `max_event`, an event whose data, or a line still waiting for its end, passes that
    many bytes raises EventTooLarge: a watched stream cannot make the gateway buffer more."""

    def __init__(self, max_event: int | None = None, comments: bool = False) -> None:
        self.buf = b""
        self.data: list[str] = []
        self.event: str | None = None
        self.id: str | None = None
        self.retry: str | None = None
        self.had_field = False
        self.max_event = max_event
        self.size = 0
        self.comments = comments  # also return comment lines (keep-alives), as {"comment": text}

    def feed(self, chunk: bytes) -> list[dict]:
        self.buf += chunk
        if self.max_event is not None and len(self.buf) + self.size > self.max_event:
            raise EventTooLarge(f"an event-stream event is larger than {self.max_event} bytes")
        out = []
        while True:
            i = _line_end(self.buf)
            if i is None:
                break
            end, nxt = i
            line = self.buf[:end].decode("utf-8", "replace")
            self.buf = self.buf[nxt:]
            if line == "":
                if self.had_field:
                    out.append({"data": "\n".join(self.data), "event": self.event, "id": self.id, "retry": self.retry})
                self.data, self.event, self.retry, self.had_field, self.size = [], None, None, False, 0
                continue
            if line.startswith(":"):
                if self.comments:
                    out.append({"comment": line[1:]})
                continue
            name, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            self.had_field = True
            if name == "data":
                self.data.append(value)
                self.size += len(value) + 1
            elif name == "event":
                self.event = value
            elif name == "id":
                self.id = value
            elif name == "retry":
                self.retry = value
        return out


def _line_end(buf: bytes):
    n = buf.find(b"\n")
    r = buf.find(b"\r")
    if r != -1 and (n == -1 or r < n):
        if r + 1 < len(buf):
            return (r, r + 2) if buf[r + 1:r + 2] == b"\n" else (r, r + 1)
        return None  # a lone \r at the end may be half of \r\n
    if n != -1:
        return (n, n + 1)
    return None


def render_event(ev: dict, data: str | None = None) -> bytes:
    """Serialise a parsed event (or comment) again, for streams the gateway relays event by event."""
    if "comment" in ev:
        return b":" + ev["comment"].replace("\r", " ").replace("\n", " ").encode() + b"\n\n"
    lines = []
    if ev.get("id") is not None:
        lines.append(f"id: {ev['id']}")
    if ev.get("event") is not None:
        lines.append(f"event: {ev['event']}")
    if ev.get("retry") is not None:
        lines.append(f"retry: {ev['retry']}")
    payload = ev.get("data", "") if data is None else data
    for part in payload.split("\n"):
        lines.append(f"data: {part}")
    return ("\n".join(lines) + "\n\n").encode()


def parse_message(text: str):
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None
