"""JSON-RPC and SSE framing for the gateway: the messages it writes itself, and a parser
that watches an upstream's event stream go by without changing a byte of it."""

from __future__ import annotations

import json
import re

# a message as compact JSON text, and the same refusing what no JSON text can carry: one
# definition, shared with everything else that decides a call (lang/jsontext.py)
from mcpp.catalog.admission import compact, compact_finite  # noqa: F401 - re-exported

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
    """Incremental `text/event-stream` parser (the WHATWG rules: CRLF, LF or CR ends a line;
    a UTF-8 BOM that starts the stream is dropped; an event without a `data` line is not a
    message; an `id` containing NUL is ignored).

    An event is `{"data", "event", "id", "retry"}`: `data` None when the event had no data
    line (it only sets the last event id or the retry time, which a client keeps without
    dispatching anything). With `comments`, comment lines (keep-alives) come as
    `{"comment": text}`. With `max_event`, an event whose data, or a line still waiting for
    its end, passes that many bytes raises EventTooLarge: a watched stream cannot make the
    gateway buffer more. Linear in the stream: a chunk without a line end is only set
    aside, so one long line fed in small chunks is not rescanned or recopied each time."""

    def __init__(self, max_event: int | None = None, comments: bool = False) -> None:
        # an unterminated line's bytes (no line end in them), one buffer: a list of the chunks
        # held one object per chunk, 255 MB for a 1.9 MB line sent 2 bytes at a time (H38-3)
        self._pending = bytearray()
        self._skip_lf = False  # the last byte read was a CR: an LF next is the rest of its CRLF
        self._started = False  # past the stream's first line (where a BOM is dropped)
        self.data: list[str] = []
        self.event: str | None = None
        self.id: str | None = None  # the last event id: it carries over to later events
        self._id_set = False  # this event set it
        self.retry: str | None = None
        self.max_event = max_event
        self.size = 0  # the data of the event being read, in characters
        self.comments = comments

    def _too_large(self) -> EventTooLarge:
        return EventTooLarge(f"an event-stream event is larger than {self.max_event} bytes")

    def feed(self, chunk: bytes) -> list[dict]:
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if not chunk:
            return []
        if b"\n" not in chunk and b"\r" not in chunk:
            self._pending += chunk
            if self.max_event is not None and len(self._pending) + self.size > self.max_event:
                raise self._too_large()
            return []
        buf = bytes(self._pending) + chunk if self._pending else chunk
        # the complete lines, split at once. A CR that ends the chunk ends its line now, not
        # when the next byte comes (an LF then is skipped as the rest of a CRLF): an upstream
        # writing CR-only line ends had a complete event — a call's answer, an elicitation —
        # wait for its next write, or be lost to a timeout (hostile review 36, H36-1)
        cut = max(buf.rfind(b"\n"), buf.rfind(b"\r"))
        self._skip_lf = cut == len(buf) - 1 and buf[cut] == 13  # (a CR, the last byte read)
        self._pending = bytearray(buf[cut + 1:])
        # (a line end is ASCII and never inside a UTF-8 sequence: decoding the lines
        # together reads each one as decoding it alone would)
        text = buf[:cut + 1].decode("utf-8", "replace")
        if not self._started:
            self._started = True
            if text.startswith("\ufeff"):
                text = text[1:]
        lines = _LINE_END.split(text)
        lines.pop()  # the empty text after the last line end
        out = []
        limit = self.max_event
        for line in lines:
            if line == "":
                if self.data:
                    out.append({"data": "\n".join(self.data), "event": self.event, "id": self.id, "retry": self.retry})
                elif self._id_set or self.retry is not None:
                    out.append({"data": None, "event": None, "id": self.id, "retry": self.retry})
                self.data, self.event, self.retry, self._id_set, self.size = [], None, None, False, 0
                continue
            if line[0] == ":":
                if self.comments:
                    out.append({"comment": line[1:]})
                continue
            name, _, value = line.partition(":")
            if value[:1] == " ":
                value = value[1:]
            if name == "data":
                self.data.append(value)
                self.size += len(value) + 1
                if limit is not None and self.size > limit:
                    raise self._too_large()
            elif name == "event":
                self.event = value
            elif name == "id":
                if "\0" not in value:
                    self.id, self._id_set = value, True
            elif name == "retry":
                self.retry = value
        if limit is not None and len(self._pending) + self.size > limit:
            raise self._too_large()
        return out

    def end(self) -> list[dict]:
        """The stream has ended, cleanly (a body read to its end): its last line is read as
        ended and its last event as dispatched, though no line end or blank line followed —
        as the official SDK client reads an event stream's end (the WHATWG rules would drop
        that event). Every reader of a whole stream or body ends with this, the relay and
        the whole-body readers (a client's tools/list, the gateway's own listing, an approved
        call's answer) alike: the same bytes were an answer to one and nothing to another
        (hostile review 36, H36-2). A stream that broke is not ended with this."""
        return self.feed(b"\n\n")


_LINE_END = re.compile("\r\n|\r|\n")


def render_event(ev: dict, data: str | None = None) -> bytes:
    """Serialise a parsed event (or comment) again, for streams the gateway relays event by
    event; an event without data (it sets an id or a retry time) is written without a
    data line, so the client dispatches no message for it either."""
    if "comment" in ev:
        return b":" + ev["comment"].replace("\r", " ").replace("\n", " ").encode() + b"\n\n"
    lines = []
    if ev.get("id") is not None:
        lines.append(f"id: {ev['id']}")
    if ev.get("event") is not None:
        lines.append(f"event: {ev['event']}")
    if ev.get("retry") is not None:
        lines.append(f"retry: {ev['retry']}")
    payload = ev.get("data") if data is None else data
    if payload is not None:
        for part in payload.split("\n"):
            lines.append(f"data: {part}")
    return ("\n".join(lines) + "\n\n").encode()


_decode = json.JSONDecoder().decode  # json.loads' own decoder, without its per-call argument checks


def parse_message(text: str):
    try:
        return _decode(text)
    except (ValueError, RecursionError):
        return None


def event_message(ev: dict):
    """What an event-stream event carries as a client reads it: its data parsed as JSON
    (None when it has no data or it is no JSON). MCP's messages are `message` events (an
    event with no `event` field is one); the SDK client and an EventSource's `onmessage`
    dispatch no other type (an empty one is `message`), so the data of an `event: result` is
    nothing to them — and to
    every reader in the gateway, which took it for the request's answer, relayed it with
    its type, and left the client with no answer (hostile review 37, H37-3)."""
    if not ev.get("data") or (ev.get("event") or "message") != "message":
        return None  # (an empty type, `event:` with no value, is `message`: hostile review 38, H38-1)
    return parse_message(ev["data"])
