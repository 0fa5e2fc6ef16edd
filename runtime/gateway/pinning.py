"""Catalog pinning: refuse calls to tools whose definition changed since it was reviewed.

A server's `catalog = "tools.json"` (or `mcpp serve --pin-catalog`) pins the catalog
captured when its policy was reviewed (`mcpp catalog pull`). Every `tools/list` result
the gateway relays from that upstream, page by page, is compared with the pin
(`mcpp.catalog.drift.check_pinned`): tools that changed, were added after the pin, or
are listed twice with different definitions are removed from the result, logged once
as `catalog_drift`, and every call to them is refused before it is forwarded.

What the gateway remembers is the upstream's *listing* (the wire `Tool` objects), per
server and per upstream session, since a stdio child or a stateful server may list
different tools in each session; sessionless (2026-07-28 and stateless) requests share
one listing per server. The verdict is computed against the pin in force when it is
needed, so a re-pinned catalog applies to what was already listed.

Fail closed: a call to a tool the gateway has no current listing for is held while the
gateway lists the upstream's tools itself (every page, with the caller's session and
the upstream's credentials); a tool that is then not listed, a listing that cannot be
obtained, or a pin that never loaded refuses the call.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from mcp_types import CLIENT_CAPABILITIES_META_KEY, CLIENT_INFO_META_KEY, PROTOCOL_VERSION_META_KEY

from mcpp.catalog import Catalog, CatalogError, parse_catalog, tool_hash
from mcpp.catalog.drift import check_pinned

from . import jsonrpc as rpc
from .http_client import UpstreamError, discard
from .reloadable import FileState, Registry

MAX_SCOPES = 1024  # remembered listings (server × upstream session), least recently used dropped first
MAX_ROUNDS = 1024  # paginated listings in progress (keyed by the cursor that continues them)
MAX_PAGES = 100  # pages the gateway reads when it lists an upstream's tools itself
REFETCH_UNLISTED_AFTER = 5.0  # seconds: a call to an unlisted tool re-lists at most this often per scope
_SKIP_FETCH_HEADERS = {"mcp-method", "mcp-name", "last-event-id", "content-type", "accept"}


def pointer(tool: str) -> str:
    """The audit rule pointer of a pin denial: `/catalog/<tool>` (JSON-pointer escaped)."""
    return "/catalog/" + tool.replace("~", "~0").replace("/", "~1")


def catalog_error_text(e: CatalogError) -> str:
    """One line: `path: /pointer: message`."""
    rendered = e.render().strip()
    line = rendered.splitlines()[0] if rendered else f"{e.file}: {e.message}"
    return line.replace(": error: ", ": ", 1)


@dataclass
class LoadedPin:
    catalog: Catalog
    sha256: str  # of the file's bytes: which version of the pin decided
    loaded_at: float
    checkers: dict = field(default_factory=dict)  # tool name → what checks its calls (proxy.schema_check)


class PinState(FileState["LoadedPin"]):
    """One pinned catalog file: the version in force and the newest refusal (like a policy)."""

    def __init__(self, server: str, path: str):
        super().__init__(server, path)

    def load(self) -> tuple[bool, str | None]:
        self.mark_seen()
        try:
            data = Path(self.path).read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            if self.current is not None and self.current.sha256 == sha:
                self.error = None
                return True, None
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as e:
                raise CatalogError(self.path, f"not UTF-8 text ({e.reason})") from None
            catalog = parse_catalog(text, self.path)  # the bytes hashed above, not a second read
            catalog.path = Path(self.path).name  # denial reasons reach clients: no server paths in them
        except CatalogError as e:
            self.error = catalog_error_text(e)
            return False, self.error
        except FileNotFoundError:
            self.error = f"{self.path}: no such catalog file"
            return False, self.error
        except OSError as e:
            self.error = f"{self.path}: cannot read: {e.strerror}"
            return False, self.error
        except Exception as e:  # never let a loader bug take the last good pin away
            self.error = f"{type(e).__name__}: {e}"
            return False, self.error
        self.current = LoadedPin(catalog, sha, time.time())
        self.error = None
        return True, None

    def health(self) -> dict:
        cur = self.current
        return {
            "path": self.path,
            "sha256": cur.sha256 if cur else None,
            "tools": len(cur.catalog.tools) if cur else None,
            "loaded_at": cur.loaded_at if cur else None,
            "in_force": cur is not None,
            "error": self.error,
        }


class PinRegistry(Registry[PinState]):
    """Every pinned catalog in use, keyed by (server, path); loaded on first use."""

    def state(self, server: str, path: str) -> tuple[PinState, bool]:
        return self.get_or_load(server, path, lambda: PinState(server, path))


@dataclass
class Listing:
    """What one scope's upstream last listed: wire tools, and whether it was every page."""

    tools: tuple
    names: frozenset
    key: bytes  # a fingerprint of the tools, so identical listings share one verdict
    complete: bool
    at: float  # time.monotonic() of the newest complete listing; -inf when it is not current
    index: dict | None = None  # name → its definitions, built on first use
    checkers: dict = field(default_factory=dict)  # name → what checks its calls (proxy.schema_check)

    def definitions(self, name: str) -> list[dict]:
        """Every definition the listing has for `name` (more than one: listed twice)."""
        if self.index is None:
            index: dict[str, list] = {}
            for t in self.tools:
                if isinstance(t, dict) and isinstance(t.get("name"), str):
                    index.setdefault(t["name"], []).append(t)
            self.index = index
        return self.index.get(name, [])


def _names(tools) -> list[str]:
    return [t["name"] for t in tools if isinstance(t, dict) and isinstance(t.get("name"), str)]


def _fingerprint(tools) -> bytes:
    try:
        text = json.dumps(tools, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(tools)
    return hashlib.sha256(text.encode("utf-8", "replace")).digest()


def _hash_or_none(tool: dict) -> str | None:
    try:
        return tool_hash(tool)
    except (TypeError, ValueError):  # NaN or Infinity in a schema: not canonical JSON
        return None


def verdict_of(catalog: Catalog, tools) -> dict[str, str]:
    """`check_pinned`, fail closed for definitions that cannot be hashed at all."""
    plain, out = [], {}
    for t in tools:
        if isinstance(t, dict) and isinstance(t.get("name"), str) and _hash_or_none(t) is None:
            out[t["name"]] = f"the definition of tool {t['name']!r} is not plain JSON (NaN or Infinity), so it cannot match the pin"
        else:
            plain.append(t)
    drifted = check_pinned(catalog, plain)
    drifted.update(out)
    return drifted


def drift_kind(catalog: Catalog, tools, name: str) -> str:
    """`added` (not in the pin), `duplicate` (listed twice, differently) or `changed`."""
    same = [t for t in tools if isinstance(t, dict) and t.get("name") == name]
    if len(same) > 1 and len({_hash_or_none(t) for t in same}) > 1:
        return "duplicate"
    return "added" if name not in catalog.tools else "changed"


class ListingTracker:
    """Listings per scope (server id, upstream session id or ""), with pagination rounds."""

    def __init__(self):
        self.scopes: OrderedDict[tuple[str, str], Listing] = OrderedDict()
        self.rounds: OrderedDict[tuple, tuple[list, bool]] = OrderedDict()
        self._verdicts: OrderedDict[tuple, dict[str, str]] = OrderedDict()
        self._fetches: dict[tuple[str, str], asyncio.Task] = {}
        self._reported: OrderedDict[tuple, None] = OrderedDict()

    def first_report(self, key: tuple) -> bool:
        """True the first time a drifted definition is seen (so the log says it once, not per listing)."""
        if key in self._reported:
            return False
        self._reported[key] = None
        while len(self._reported) > 4 * MAX_SCOPES:
            self._reported.popitem(last=False)
        return True

    def get(self, scope) -> Listing | None:
        listing = self.scopes.get(scope)
        if listing is not None:
            self.scopes.move_to_end(scope)
        return listing

    def _store(self, scope, listing: Listing) -> None:
        self.scopes[scope] = listing
        self.scopes.move_to_end(scope)
        while len(self.scopes) > MAX_SCOPES:
            self.scopes.popitem(last=False)

    def observe_page(self, scope, cursor, tools: list, next_cursor) -> list:
        """Record one page of a `tools/list` result; return the round's tools so far (this page last)."""
        if cursor is None:
            prior: list = []
            from_start = True
        else:
            prior, from_start = self.rounds.pop((scope, cursor), ([], False))
        acc = prior + [t for t in tools if isinstance(t, dict)]
        more = isinstance(next_cursor, str) and next_cursor != ""
        if more:
            self.rounds[(scope, next_cursor)] = (acc, from_start)
            while len(self.rounds) > MAX_ROUNDS:
                self.rounds.popitem(last=False)
        self.record(scope, acc, complete=from_start and not more)
        return acc

    def record(self, scope, tools: list, complete: bool) -> Listing:
        old = self.scopes.get(scope)
        if complete or old is None:
            merged = list(tools)
            at = time.monotonic() if complete else float("-inf")  # never listed in full: not current
        else:  # a later page, or a round we did not see start: newer definitions replace older ones
            fresh = set(_names(tools))
            merged = [t for t in old.tools if not (isinstance(t, dict) and t.get("name") in fresh)] + list(tools)
            at = old.at
        listing = Listing(tuple(merged), frozenset(_names(merged)), _fingerprint(merged),
                          complete or (old is not None and old.complete), at)
        self._store(scope, listing)
        return listing

    def verdict(self, pin: LoadedPin, listing: Listing) -> dict[str, str]:
        """check_pinned for this listing under this pin, computed once per (pin version, listing)."""
        key = (pin.sha256, pin.catalog.path, listing.key)
        hit = self._verdicts.get(key)
        if hit is None:
            hit = verdict_of(pin.catalog, listing.tools)
            self._verdicts[key] = hit
            while len(self._verdicts) > MAX_SCOPES:
                self._verdicts.popitem(last=False)
        return hit

    def invalidate(self, scope) -> None:
        """The upstream announced `notifications/tools/list_changed`: the next call re-lists first."""
        listing = self.scopes.get(scope)
        if listing is not None:
            listing.at = float("-inf")

    def forget(self, scope) -> None:
        self.scopes.pop(scope, None)
        for key in [k for k in self.rounds if k[0] == scope]:
            self.rounds.pop(key, None)

    def _fetched(self, scope, task: asyncio.Task) -> None:
        if self._fetches.get(scope) is task:
            self._fetches.pop(scope, None)
        if not task.cancelled():
            task.exception()  # retrieved here too: every waiter may have gone away

    async def fetch(self, scope, make) -> Listing:
        """List the upstream's tools for this scope once, however many calls are waiting for it."""
        task = self._fetches.get(scope)
        if task is None or task.done():
            task = asyncio.ensure_future(make())
            self._fetches[scope] = task
            task.add_done_callback(lambda t, s=scope: self._fetched(s, t))
        tools = await asyncio.shield(task)
        return self.record(scope, tools, complete=True)


class FetchFailed(Exception):
    """The upstream's tool list could not be obtained; the message says why. `rejection` is the
    upstream's JSON-RPC error when it refused the protocol version (HTTP 400, -32022): the call
    would have been refused the same way, and a dual-era client falls back on seeing it."""

    def __init__(self, message: str, rejection: dict | None = None):
        super().__init__(message)
        self.rejection = rejection


async def fetch_tools(upstream, fwd: list[tuple[str, str]], call_params: dict | None, modern: bool,
                      timeout: float) -> list[dict]:
    """Every page of the upstream's `tools/list`, asked the way the caller's request was
    (same session, protocol version and credentials). Raises FetchFailed."""
    headers = [(k, v) for k, v in fwd if k not in _SKIP_FETCH_HEADERS and not k.startswith("mcp-param-")]
    headers += [("content-type", "application/json"), ("accept", "application/json, text/event-stream")]
    meta = None
    if modern:
        headers.append(("mcp-method", "tools/list"))
        given = call_params.get("_meta") if isinstance(call_params, dict) else None
        given = given if isinstance(given, dict) else {}
        meta = {k: given[k] for k in (PROTOCOL_VERSION_META_KEY, CLIENT_CAPABILITIES_META_KEY, CLIENT_INFO_META_KEY) if k in given}
    tools: list[dict] = []
    cursor, seen = None, set()
    for _ in range(MAX_PAGES):
        params: dict = {}
        if cursor is not None:
            params["cursor"] = cursor
        if meta is not None:
            params["_meta"] = meta
        rid = f"mcpp-pin-{secrets.token_hex(8)}"
        msg: dict = {"jsonrpc": "2.0", "id": rid, "method": "tools/list"}
        if params:
            msg["params"] = params
        result = await _one_request(upstream, headers, rpc.dumps(msg), rid, timeout)
        page = result.get("tools")
        if not isinstance(page, list):
            raise FetchFailed("the upstream's tools/list result has no tools list")
        tools.extend(t for t in page if isinstance(t, dict))
        cursor = result.get("nextCursor")
        if cursor is None or cursor == "":
            return tools
        if not isinstance(cursor, str) or cursor in seen:
            raise FetchFailed("the upstream's tools/list pagination does not end (a cursor repeated)")
        seen.add(cursor)
    raise FetchFailed(f"the upstream's tools/list has more than {MAX_PAGES} pages")


async def _one_request(upstream, headers, body: bytes, rid: str, timeout: float) -> dict:
    try:
        resp = await upstream.request("POST", headers, body, timeout)
    except UpstreamError as e:
        raise FetchFailed(str(e)) from None
    try:
        ctype = (resp.header("content-type") or "").lower()
        try:
            data = await resp.read(timeout) if resp.status != 204 else b""
        except UpstreamError as e:
            raise FetchFailed(str(e)) from None
    finally:
        resp.release()
    if resp.status != 200:
        discard(resp)  # another answer, or an error: out of step
        m = rpc.parse_message(data.decode("utf-8", "replace")) if ctype.startswith("application/json") else None
        err = m.get("error") if isinstance(m, dict) else None
        if resp.status == 400 and isinstance(err, dict) and err.get("code") == rpc.UNSUPPORTED_PROTOCOL_VERSION:
            raise FetchFailed("the upstream does not support this protocol version", err)
        raise FetchFailed(f"the upstream answered tools/list with HTTP {resp.status}")
    answer = None
    if ctype.startswith("text/event-stream"):
        parser = rpc.SSEParser()
        for ev in parser.feed(data) + parser.end():
            m = rpc.event_message(ev)
            if isinstance(m, dict) and m.get("id") == rid and "method" not in m:
                answer = m
    else:
        m = rpc.parse_message(data.decode("utf-8", "replace"))
        answer = m if isinstance(m, dict) and m.get("id") == rid else None
    if answer is None:
        discard(resp)  # another answer, or an error: out of step
        raise FetchFailed("the upstream did not answer the gateway's tools/list")
    if "error" in answer:
        err = answer["error"] if isinstance(answer["error"], dict) else {}
        raise FetchFailed(f"the upstream answered tools/list with error {err.get('code')}: {err.get('message')}")
    result = answer.get("result")
    if not isinstance(result, dict):
        raise FetchFailed("the upstream's tools/list answer has no result")
    return result
