"""`mcpp lsp`: the language server (pygls 2).

On every change the syntax, validation and catalog diagnostics are published at once
(the parse is incremental: only the statements the edit touched are re-parsed); the
analyzer's lints and assert results follow from a worker process once the text has
been quiet for a moment, and are dropped unseen if the text changes first.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import sys
import time
from urllib.parse import unquote, urlparse

from lsprotocol import types as t
from pygls.exceptions import JsonRpcException, JsonRpcInternalError, JsonRpcInvalidParams, JsonRpcInvalidRequest
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from mcpp import __version__

from .analysis import AnalyzerService, Job
from .catalogs import CatalogCache
from .documents import PolicyDocument
from .evaluate import COMMAND as EVALUATE, CallError, code_lenses, decide, parse_call, summary
from .protocol import MCPPProtocol, report_server_error
from .settings import Settings
from .worker import diag_from_json

log = logging.getLogger("mcpp.lsp")

ANALYZE = "mcpp.analyze"
STATUS = "mcpp.status"
JOB_DEADLINE_S = 900.0
GC_IDLE_S = 1.0


class MCPPServer(LanguageServer):
    protocol: MCPPProtocol  # protocol_cls below

    def __init__(self) -> None:
        super().__init__("mcpp", __version__, protocol_cls=MCPPProtocol,
                         text_document_sync_kind=t.TextDocumentSyncKind.Incremental)
        self.docs: dict[str, PolicyDocument] = {}
        self.settings = Settings()
        self.catalogs = CatalogCache()
        self.analyzer = AnalyzerService(self._analysis_done, self._log)
        self._gc_timer: asyncio.TimerHandle | None = None

    def report_server_error(self, error, source):
        report_server_error(self, error, source)

    # -- helpers ----------------------------------------------------------------------
    def _log(self, message: str, kind: t.MessageType = t.MessageType.Warning) -> None:
        log.warning(message)
        try:
            self.window_log_message(t.LogMessageParams(type=kind, message=f"mcpp: {message}"))
        except (OSError, RuntimeError, ValueError) as e:  # the client is gone: the log above has it
            log.debug("could not tell the client: %s", e)

    @property
    def encoding(self):
        try:
            return self.workspace.position_encoding
        except RuntimeError:
            return t.PositionEncodingKind.Utf16

    def roots(self) -> list[str]:
        out: list[str] = []
        try:
            ws = self.workspace
        except RuntimeError:
            return out
        for folder in ws.folders.values():
            p = to_fs_path(folder.uri)
            if p:
                out.append(p)
        if ws.root_path and ws.root_path not in out:
            out.append(ws.root_path)
        return out

    def doc(self, uri: str) -> PolicyDocument:
        d = self.docs.get(uri)
        if d is None:
            raise JsonRpcInvalidParams(f"document {uri} is not open (send textDocument/didOpen first)")
        return d

    def tags_ok(self) -> bool:
        caps = self.client_capabilities
        pd = caps.text_document.publish_diagnostics if caps and caps.text_document else None
        return bool(pd and pd.tag_support and t.DiagnosticTag.Unnecessary in pd.tag_support.value_set)

    def related_ok(self) -> bool:
        caps = self.client_capabilities
        pd = caps.text_document.publish_diagnostics if caps and caps.text_document else None
        return bool(pd and pd.related_information)

    # -- checking and publishing --------------------------------------------------------
    def check(self, uri: str) -> None:
        """Check the document's current text and publish; then schedule the analyzer."""
        doc = self.docs.get(uri)
        if doc is None:
            return
        t0 = time.perf_counter()
        td = self.workspace.get_text_document(uri)
        doc.update(td.source, td.version, self.catalogs, self.settings, self.roots())
        if not self.settings.analyzer_enabled:
            doc.analysis = []
        t1 = time.perf_counter()
        self.publish(doc)
        t2 = time.perf_counter()
        doc.timings.update(check_ms=(t2 - t0) * 1000, publish_ms=(t2 - t1) * 1000)
        self._collect_when_idle()
        if doc.errors or not self.settings.analyzer_enabled:
            self.analyzer.cancel(uri)
            return
        self.analyzer.schedule(self.job(doc), self.settings.analyzer_debounce_ms)

    def _collect_when_idle(self) -> None:
        """The cyclic garbage collector runs only when the user pauses: a full collection
        walks every IR node of every open policy (tens of milliseconds for a big one), and
        left automatic it fires in the middle of the next keystroke's check."""
        if self._gc_timer is not None:
            self._gc_timer.cancel()
        self._gc_timer = asyncio.get_running_loop().call_later(GC_IDLE_S, gc.collect)

    def job(self, doc: PolicyDocument) -> Job:
        # every solver query is bounded by the timeout; the deadline only catches a worker
        # that hangs outside the solver (a big policy makes thousands of queries)
        catalog = getattr(doc.catalog, "path", None) if getattr(doc, "catalog", None) is not None else None
        return Job(doc.uri, doc.version, doc.text, doc.filename, self.settings.analyzer_timeout_ms, JOB_DEADLINE_S,
                   catalog=os.path.abspath(catalog) if catalog else None)

    def publish(self, doc: PolicyDocument) -> None:
        base, tags = self.settings.docs_base_url, self.tags_ok()
        uri = doc.uri if self.related_ok() else None
        diags = [f.to_json(doc.index, base, tags, uri) for f in doc.fast + doc.analysis]
        params: dict = {"uri": doc.uri, "diagnostics": diags}
        if doc.version is not None:
            params["version"] = doc.version
        self.protocol.notify_json(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS, params)

    def _analysis_done(self, job: Job, reply: dict) -> None:
        doc = self.docs.get(job.uri)
        if doc is None or doc.version != job.version:
            return
        if "error" in reply:
            self._log(f"the analyzer failed on {doc.filename}: {reply['error']}")
            return
        if "skipped" in reply:
            return
        try:
            diags = [diag_from_json(d) for d in reply.get("diagnostics", [])]
        except (KeyError, TypeError, ValueError) as e:
            self._log(f"unreadable analyzer reply: {e}")
            return
        doc.set_analysis(diags)
        self.publish(doc)

    def recheck_all(self) -> None:
        for uri in list(self.docs):
            self.check(uri)

    async def pull_settings(self) -> None:
        caps = self.client_capabilities
        if not (caps and caps.workspace and caps.workspace.configuration):
            return
        try:
            result = await self.workspace_configuration_async(
                t.ConfigurationParams(items=[t.ConfigurationItem(section="mcpp")]))
        except Exception as e:
            self._log(f"could not read the mcpp settings: {e}")
            return
        self.apply_settings(result[0] if result else None)

    def apply_settings(self, value) -> None:
        self.settings = Settings.from_json(value)
        for problem in self.settings.problems:
            self._log(problem)
        self.recheck_all()


server = MCPPServer()


def _robust(fn):
    """Handler errors become clean LSP errors (the traceback goes to the server log only)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except JsonRpcException:
            raise
        except Exception as e:
            log.exception("handler %s failed", fn.__name__)
            raise JsonRpcInternalError(f"mcpp: {fn.__name__} failed: {type(e).__name__}: {e}") from None

    return wrapper


def _uri_path(uri: str) -> str | None:
    path = to_fs_path(uri)
    if path:
        return path
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme in ("", "file") and parsed.path else None


# -- lifecycle -----------------------------------------------------------------------------
@server.feature(t.INITIALIZE)
def initialize(ls: MCPPServer, params: t.InitializeParams) -> None:
    opts = params.initialization_options
    if isinstance(opts, dict):
        ls.settings = Settings.from_json(opts.get("mcpp", opts))


@server.feature(t.INITIALIZED)
async def initialized(ls: MCPPServer, params: t.InitializedParams) -> None:  # noqa: ARG001 (pygls passes params)
    ls.analyzer.warm_up()
    await ls.pull_settings()


@server.feature(t.WORKSPACE_DID_CHANGE_CONFIGURATION)
async def did_change_configuration(ls: MCPPServer, params: t.DidChangeConfigurationParams) -> None:
    settings = params.settings
    if isinstance(settings, dict) and isinstance(settings.get("mcpp"), dict):
        ls.apply_settings(settings["mcpp"])
    else:
        await ls.pull_settings()


@server.feature(t.WORKSPACE_DID_CHANGE_WATCHED_FILES)
@_robust
def did_change_watched_files(ls: MCPPServer, params: t.DidChangeWatchedFilesParams) -> None:
    """A catalog, an mcpp.toml or a samples file changed on disk: check again, redraw lenses.
    (Clients watch broad patterns such as `**/*.json`; other files are ignored.)"""
    from pathlib import Path

    from .evaluate import samples_path

    changed = {Path(p).resolve() for p in (_uri_path(c.uri) for c in params.changes) if p}
    relevant = {p for p in changed if p.name == "mcpp.toml"}
    for d in ls.docs.values():
        for p in (getattr(d.catalog, "path", None), samples_path(d), ls.settings.catalog and d.path and
                  Path(d.path).parent / ls.settings.catalog):
            if p and Path(p).resolve() in changed:
                relevant.add(Path(p).resolve())
    missing = any(f.diag.code == "catalog" for d in ls.docs.values() for f in d.fast)  # it may exist now
    if not relevant and not missing:
        return
    ls.recheck_all()
    caps = ls.client_capabilities
    if caps and caps.workspace and caps.workspace.code_lens and caps.workspace.code_lens.refresh_support:
        fut = ls.workspace_code_lens_refresh(None)
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())  # a refusal is not our problem


@server.feature(t.SHUTDOWN)
async def shutdown(ls: MCPPServer, params) -> None:  # noqa: ARG001 (pygls passes params)
    await ls.analyzer.close()


# -- documents ----------------------------------------------------------------------------
@server.feature(t.TEXT_DOCUMENT_DID_OPEN)
@_robust
def did_open(ls: MCPPServer, params: t.DidOpenTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.docs[uri] = PolicyDocument(uri, _uri_path(uri), ls.encoding)
    ls.check(uri)


@server.feature(t.TEXT_DOCUMENT_DID_CHANGE)
@_robust
def did_change(ls: MCPPServer, params: t.DidChangeTextDocumentParams) -> None:
    uri = params.text_document.uri
    if uri in ls.docs:
        ls.check(uri)


@server.feature(t.TEXT_DOCUMENT_DID_SAVE)
@_robust
def did_save(ls: MCPPServer, params: t.DidSaveTextDocumentParams) -> None:
    if params.text_document.uri in ls.docs:
        ls.check(params.text_document.uri)  # a catalog or samples file may have changed too


@server.feature(t.TEXT_DOCUMENT_DID_CLOSE)
@_robust
def did_close(ls: MCPPServer, params: t.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.analyzer.cancel(uri)
    if ls.docs.pop(uri, None) is not None:
        ls.text_document_publish_diagnostics(t.PublishDiagnosticsParams(uri=uri, diagnostics=[]))


# -- features -----------------------------------------------------------------------------
@server.feature(t.TEXT_DOCUMENT_HOVER)
@_robust
def hover(ls: MCPPServer, params: t.HoverParams):
    from .hover import hover as run

    doc = ls.doc(params.text_document.uri)
    return run(doc, doc.index.offset(params.position), ls.settings.docs_base_url)


@server.feature(t.TEXT_DOCUMENT_COMPLETION, t.CompletionOptions(trigger_characters=[".", '"', ":", "@"]))
@_robust
def completion(ls: MCPPServer, params: t.CompletionParams):
    from .completion import Completer

    doc = ls.doc(params.text_document.uri)
    return Completer(doc, ls.client_capabilities, ls.settings.docs_base_url).complete(doc.index.offset(params.position))


@server.feature(t.TEXT_DOCUMENT_FORMATTING)
@_robust
def formatting(ls: MCPPServer, params: t.DocumentFormattingParams):
    from mcpp.lang.formatter import format_document

    doc = ls.doc(params.text_document.uri)
    if doc.program is None or doc.program.document is None or any(f.diag.code == "syntax" for f in doc.fast):
        return None  # nothing to format until it parses; the diagnostics say why
    new = format_document(doc.program.document)
    if new == doc.text:
        return []
    end = doc.index.position(len(doc.text))
    return [t.TextEdit(range=t.Range(start=t.Position(line=0, character=0), end=end), new_text=new)]


@server.feature(t.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
@_robust
def document_symbol(ls: MCPPServer, params: t.DocumentSymbolParams):
    from .navigation import symbols

    doc = ls.doc(params.text_document.uri)
    syms = symbols(doc)
    caps = ls.client_capabilities
    ds = caps.text_document.document_symbol if caps and caps.text_document else None
    if ds is not None and ds.hierarchical_document_symbol_support:
        return syms
    flat = []  # clients without hierarchy support get SymbolInformation
    for s in syms:
        for x in [s] + list(s.children or []):
            flat.append(t.SymbolInformation(name=x.name, kind=x.kind, location=t.Location(uri=doc.uri, range=x.range),
                                            container_name=None if x is s else s.name))
    return flat


@server.feature(t.TEXT_DOCUMENT_DEFINITION)
@_robust
def goto_definition(ls: MCPPServer, params: t.DefinitionParams):
    from .navigation import definition

    doc = ls.doc(params.text_document.uri)
    return definition(doc, doc.index.offset(params.position), doc.uri)


@server.feature(t.TEXT_DOCUMENT_CODE_ACTION, t.CodeActionOptions(code_action_kinds=[t.CodeActionKind.QuickFix]))
@_robust
def code_action(ls: MCPPServer, params: t.CodeActionParams):
    from .actions import quick_fixes

    doc = ls.doc(params.text_document.uri)
    return quick_fixes(doc, params.context.diagnostics)


@server.feature(t.TEXT_DOCUMENT_CODE_LENS)
@_robust
def code_lens(ls: MCPPServer, params: t.CodeLensParams):
    return code_lenses(ls.doc(params.text_document.uri))


@server.command(EVALUATE)
@_robust
def evaluate(ls: MCPPServer, *calls):
    """`mcpp.evaluate` with one or more call objects `{uri?, name, arguments, grant?, server?}`:
    the decisions (one dict, or a list for several), also shown to the user."""
    if not calls:
        raise JsonRpcInvalidParams("mcpp.evaluate takes call objects: {\"name\": \"tool\", \"arguments\": {…}}")
    decisions = []
    for i, obj in enumerate(calls):
        uri = obj.get("uri") if isinstance(obj, dict) else None
        if uri is None:
            if len(ls.docs) != 1:
                raise JsonRpcInvalidParams("say which policy: add \"uri\" to the call (several documents are open)")
            uri = next(iter(ls.docs))
        doc = ls.doc(uri)
        try:
            call = parse_call(obj, f"call {i + 1}")
        except CallError as e:
            raise JsonRpcInvalidParams(str(e)) from None
        if doc.errors:
            raise JsonRpcInvalidRequest(f"{doc.filename} has {doc.errors} error(s); fix them before evaluating")
        decisions.append(decide(doc, call))
    ls.window_show_message(t.ShowMessageParams(type=t.MessageType.Info, message=summary(decisions)))
    return decisions[0] if len(decisions) == 1 else decisions


@server.command(ANALYZE)
@_robust
def analyze_now(ls: MCPPServer, *args):
    """`mcpp.analyze` with a document URI: run the analyzer now, without waiting for the debounce."""
    if len(args) != 1 or not isinstance(args[0], str):
        raise JsonRpcInvalidParams("mcpp.analyze takes one argument: the document's URI")
    doc = ls.doc(args[0])
    if doc.errors:
        raise JsonRpcInvalidRequest(f"{doc.filename} has {doc.errors} error(s); the analyzer runs on valid policies")
    ls.analyzer.schedule(ls.job(doc), 0)
    return {"scheduled": doc.uri, "version": doc.version}


@server.command(STATUS)
@_robust
def status(ls: MCPPServer, *_args):
    """`mcpp.status`: what the server is doing — per document the versions checked and
    analysed and where the last check spent its time; the analyzer's counters."""
    a = ls.analyzer
    running = a.running
    return {
        "version": __version__,
        "documents": {
            uri: {"version": d.version, "analysis_version": d.analysis_version, "errors": d.errors,
                  "catalog": getattr(d.catalog, "path", None), "timings": d.timings}
            for uri, d in ls.docs.items()
        },
        "last_handled_ms": dict(ls.protocol.last_handled_ms),
        "analyzer": {"started": a.started, "completed": a.completed, "cancelled": a.cancelled,
                     "running": {"uri": running.uri, "version": running.version} if running else None},
        "settings": {"catalog": ls.settings.catalog, "analyzer.enabled": ls.settings.analyzer_enabled,
                     "analyzer.timeoutMs": ls.settings.analyzer_timeout_ms,
                     "analyzer.debounceMs": ls.settings.analyzer_debounce_ms,
                     "docsBaseUrl": ls.settings.docs_base_url},
    }


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="mcpp-lsp %(levelname)s %(message)s")
    run()


def run() -> None:
    """Serve on stdio until the client says exit."""
    gc.disable()  # collected when idle instead: see MCPPServer._collect_when_idle
    server.start_io()
