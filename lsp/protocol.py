"""JSON-RPC hardening: every malformed request gets an error response, and the server
keeps serving.

pygls drops a request whose params do not match the LSP types (it logs and never
answers, so the client waits forever), and a body that is not JSON at all. Here the
first is answered with InvalidParams (-32602) naming the bad field, a message that is
not JSON-RPC with InvalidRequest (-32600), and unparsable JSON with ParseError
(-32700, id null, as JSON-RPC 2.0 prescribes).
"""

from __future__ import annotations

import json
import logging
import time

from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams, JsonRpcInvalidRequest
from pygls.protocol import LanguageServerProtocol

log = logging.getLogger(__name__)


class _Answered:
    """A message that was already answered with an error while being decoded."""


ANSWERED = _Answered()


def _detail(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    try:
        from cattrs import transform_error

        lines = transform_error(cause)
        if lines:
            return "; ".join(line.replace("$.", "").replace("$", "params") for line in lines[:3])
    except (ImportError, TypeError, ValueError, AttributeError) as e:  # not a cattrs error: say it plainly
        log.debug("no structured detail for %r: %s", cause, e)
    return str(cause) or type(cause).__name__


class MCPPProtocol(LanguageServerProtocol):
    def structure_message(self, data):
        try:
            return super().structure_message(data)
        except JsonRpcException as e:
            if isinstance(data, dict) and "id" in data and "method" in data:
                err = JsonRpcInvalidParams(f"invalid params for {data.get('method')}: {_detail(e)}")
                log.warning("answered a malformed %s request: %s", data.get("method"), err.message)
                self._send_response(data["id"], error=err.to_response_error())
                return ANSWERED
            raise

    last_handled_ms: dict = {}

    def handle_message(self, message):
        if message is ANSWERED:
            return
        method = getattr(message, "method", None)
        if method == "textDocument/didChange":
            t0 = time.perf_counter()
            super().handle_message(message)
            self.last_handled_ms["didChange"] = (time.perf_counter() - t0) * 1000
            return
        if not hasattr(message, "jsonrpc"):
            # json.loads gave back something that is not a JSON-RPC message
            if isinstance(message, dict) and isinstance(message.get("id"), (int, str)):
                err = JsonRpcInvalidRequest("not a JSON-RPC 2.0 message (\"jsonrpc\": \"2.0\" is missing)")
                self._send_response(message["id"], error=err.to_response_error())
            else:
                self.send_error(-32600, "Invalid Request: the message is not a JSON-RPC 2.0 request object")
            return
        super().handle_message(message)

    def notify_json(self, method: str, params: dict) -> None:
        """A notification whose params are already JSON (skips the typed serializer, which
        costs ~50 µs per diagnostic: a big policy's hundreds of findings, every keystroke)."""
        self._send_data({"jsonrpc": "2.0", "method": method, "params": params})

    def send_error(self, code: int, message: str) -> None:
        """An error response with id null: for a message whose id could not be read."""
        self._send_data({"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}})

    def send_parse_error(self, why: str) -> None:
        self.send_error(-32700, f"Parse error: {why}")


def report_server_error(server, error: Exception, source) -> None:
    """Out-of-band errors go to the client's log, not a pop-up; a body that is not JSON
    is answered with ParseError."""
    if isinstance(error, json.JSONDecodeError):
        server.protocol.send_parse_error(f"{error.msg} at character {error.pos}")
        return
    if isinstance(error, UnicodeDecodeError):
        server.protocol.send_parse_error("the body is not UTF-8")
        return
    log.error("%s: %s", getattr(source, "__name__", source), error)
    try:
        from lsprotocol import types as t

        server.window_log_message(t.LogMessageParams(type=t.MessageType.Error, message=f"mcpp: {error}"))
    except (OSError, RuntimeError, ValueError) as e:  # the client is gone: the log above has it
        log.debug("could not tell the client: %s", e)
