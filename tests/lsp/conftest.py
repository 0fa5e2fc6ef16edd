"""The language server under test: a real `mcpp lsp` process driven by pytest-lsp with
VS Code's client capabilities (so a response the client did not advertise support for
fails the test), in a workspace folder of its own."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types as t
from pytest_lsp import ClientServerConfig, LanguageClient, LspSpecificationWarning, client_capabilities

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).parents[2]


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.filterwarnings("error", category=LspSpecificationWarning))


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A workspace folder with the test tool catalog."""
    shutil.copy(FIXTURES / "k8s.tools.json", tmp_path / "k8s.tools.json")
    return tmp_path


SETTINGS = {"mcpp": {"analyzer": {"debounceMs": 50, "timeoutMs": 4000}}}


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "mcpp.lsp"]))
async def client(lsp_client: LanguageClient, request):
    ws_path: Path = request.getfixturevalue("ws")
    lsp_client.code_lens_refreshes = 0

    @lsp_client.feature(t.WORKSPACE_CODE_LENS_REFRESH)
    def code_lens_refresh(params):  # noqa: ARG001 (pygls passes params)  # VS Code's capabilities say it supports this request
        lsp_client.code_lens_refreshes += 1

    for section, value in getattr(request, "param", SETTINGS).items():
        lsp_client.set_configuration(item=value, section=section)
    await lsp_client.initialize_session(t.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"),
        root_uri=ws_path.as_uri(),
        workspace_folders=[t.WorkspaceFolder(uri=ws_path.as_uri(), name="ws")],
    ))
    lsp_client.ws = ws_path
    yield
    await lsp_client.shutdown_session()


def open_doc(client: LanguageClient, name: str, text: str, write: bool = True) -> str:
    """Open `text` as `<workspace>/name` (written to disk too, as an editor's file is)."""
    path = client.ws / name
    if write:
        path.write_text(text, encoding="utf-8")
    uri = path.as_uri()
    client.text_document_did_open(t.DidOpenTextDocumentParams(
        text_document=t.TextDocumentItem(uri=uri, language_id="mcpp", version=1, text=text)))
    return uri


def change(client: LanguageClient, uri: str, version: int, text: str, rng: t.Range | None = None) -> None:
    """Replace the whole text (rng None) or one range (an incremental change)."""
    ev = t.TextDocumentContentChangeWholeDocument(text=text) if rng is None else \
        t.TextDocumentContentChangePartial(range=rng, text=text)
    client.text_document_did_change(t.DidChangeTextDocumentParams(
        text_document=t.VersionedTextDocumentIdentifier(uri=uri, version=version), content_changes=[ev]))


async def wait_diags(client: LanguageClient, uri: str, pred, timeout: float = 30.0, what: str = ""):
    """The first published diagnostics for `uri` that satisfy `pred`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        d = client.diagnostics.get(uri)
        if d is not None and pred(list(d)):
            return list(d)
        if loop.time() > deadline:
            got = [(x.code, x.message) for x in (d or [])]
            raise AssertionError(f"timed out waiting for diagnostics {what}; last published: {got}")
        await asyncio.sleep(0.02)


def pos(text: str, needle: str, delta: int = 0, nth: int = 0) -> t.Position:
    """The LSP position (UTF-16) of the nth occurrence of `needle` in `text`, plus delta."""
    i = -1
    for _ in range(nth + 1):
        i = text.index(needle, i + 1)
    i += delta
    line = text.count("\n", 0, i)
    col_text = text[text.rfind("\n", 0, i) + 1 : i]
    return t.Position(line=line, character=len(col_text.encode("utf-16-le")) // 2)


def doc_id(uri: str) -> t.TextDocumentIdentifier:
    return t.TextDocumentIdentifier(uri=uri)
