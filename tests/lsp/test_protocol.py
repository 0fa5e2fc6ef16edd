"""Malformed client messages get an LSP error response, and the server keeps serving.

These speak raw JSON-RPC over the server's stdio (a typed client cannot send a
malformed request), then check that ordinary requests still work."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest
from lsprotocol import types as t
from pygls.exceptions import JsonRpcException

from .conftest import doc_id, open_doc, wait_diags

POLICY = 'permit (principal, action == Action::"a", resource) when { context.input.x == 1 };\n'


class RawClient:
    """Frames and reads LSP messages by hand."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-m", "mcpp.lsp"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.messages: list[dict] = []
        self.lock = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        out = self.proc.stdout
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    return
                if line.strip() == b"":
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = out.read(length)
            with self.lock:
                self.messages.append(json.loads(body))
                self.lock.notify_all()

    def send_bytes(self, body: bytes):
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def send(self, obj):
        self.send_bytes(json.dumps(obj).encode())

    def wait(self, pred, timeout=20.0) -> dict:
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                for m in self.messages:
                    if pred(m):
                        self.messages.remove(m)
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no such message; got {self.messages}")
                self.lock.wait(left)

    def response(self, rid, timeout=20.0) -> dict:
        return self.wait(lambda m: m.get("id") == rid and ("result" in m or "error" in m), timeout)

    def close(self):
        self.send({"jsonrpc": "2.0", "id": 9999, "method": "shutdown"})
        self.response(9999)
        self.send({"jsonrpc": "2.0", "method": "exit"})
        self.proc.wait(10)
        self.proc.stdin.close()
        self.reader.join(5)
        self.proc.stdout.close()


@pytest.fixture
def raw(tmp_path):
    c = RawClient()
    c.send({"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"processId": None, "rootUri": tmp_path.as_uri(), "capabilities": {}}})
    assert "capabilities" in c.response(1)["result"]
    c.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
    uri = (tmp_path / "p.mcpp").as_uri()
    c.send({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
        "uri": uri, "languageId": "mcpp", "version": 1, "text": POLICY}}})
    c.wait(lambda m: m.get("method") == "textDocument/publishDiagnostics")
    c.uri = uri
    yield c
    c.close()
    assert c.proc.returncode == 0


def hover(raw, rid):
    raw.send({"jsonrpc": "2.0", "id": rid, "method": "textDocument/hover",
              "params": {"textDocument": {"uri": raw.uri}, "position": {"line": 0, "character": 2}}})
    return raw.response(rid)


def test_invalid_params_get_invalid_params_and_serving_goes_on(raw):
    raw.send({"jsonrpc": "2.0", "id": 2, "method": "textDocument/hover", "params": {"textDocument": {"uri": raw.uri}}})
    err = raw.response(2)["error"]
    assert err["code"] == -32602
    assert "textDocument/hover" in err["message"] and "position" in err["message"]
    raw.send({"jsonrpc": "2.0", "id": 3, "method": "textDocument/completion",
              "params": {"textDocument": {"uri": raw.uri}, "position": {"line": "zero", "character": 0}}})
    assert raw.response(3)["error"]["code"] == -32602
    assert "**permit**" in hover(raw, 4)["result"]["contents"]["value"]


def test_garbage_json_gets_a_parse_error(raw):
    raw.send_bytes(b'{"jsonrpc": "2.0", "id": 5, "method": ')
    err = raw.wait(lambda m: m.get("id") is None and "error" in m)
    assert err["error"]["code"] == -32700
    raw.send_bytes(b'[1, 2, 3]')
    err = raw.wait(lambda m: m.get("id") is None and "error" in m)
    assert err["error"]["code"] == -32600
    assert "**permit**" in hover(raw, 6)["result"]["contents"]["value"]


def test_not_jsonrpc_unknown_method_and_unknown_document(raw):
    raw.send({"id": 7, "method": "textDocument/hover", "params": {}})
    assert raw.response(7)["error"]["code"] == -32600
    raw.send({"jsonrpc": "2.0", "id": 8, "method": "mcpp/noSuchThing", "params": {}})
    assert raw.response(8)["error"]["code"] == -32601
    raw.send({"jsonrpc": "2.0", "id": 9, "method": "textDocument/hover",
              "params": {"textDocument": {"uri": "file:///never/opened.mcpp"}, "position": {"line": 0, "character": 0}}})
    err = raw.response(9)["error"]
    assert err["code"] == -32602 and "is not open" in err["message"]
    raw.send({"jsonrpc": "2.0", "id": 10, "method": "workspace/executeCommand",
              "params": {"command": "mcpp.nope", "arguments": []}})
    assert raw.response(10)["error"]["code"] == -32602
    # positions far outside the document are clamped, not an error
    raw.send({"jsonrpc": "2.0", "id": 11, "method": "textDocument/hover",
              "params": {"textDocument": {"uri": raw.uri}, "position": {"line": 99, "character": 99}}})
    assert raw.response(11)["result"] is None
    assert "**permit**" in hover(raw, 12)["result"]["contents"]["value"]


def test_malformed_notification_is_survived(raw):
    raw.send({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {"textDocument": 5}})
    raw.send({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {"uri": 1}}})
    assert "**permit**" in hover(raw, 13)["result"]["contents"]["value"]


async def test_typed_client_sees_errors_as_exceptions(client):
    uri = open_doc(client, "p.mcpp", POLICY)
    await wait_diags(client, uri, lambda _d: True)
    with pytest.raises(JsonRpcException) as e:
        await client.workspace_execute_command_async(t.ExecuteCommandParams(command="mcpp.evaluate", arguments=[]))
    assert e.value.code == -32602
    h = await client.text_document_hover_async(t.HoverParams(text_document=doc_id(uri),
                                                             position=t.Position(line=0, character=1)))
    assert "**permit**" in h.contents.value
