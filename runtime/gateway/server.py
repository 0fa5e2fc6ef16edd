"""Start-up, the state the app runs on, and the reload loop.

`Runtime` owns the stores (grants, counters, audit), the upstream connections and the
policy registry. Reloading swaps `config` and the upstreams of changed servers in one
assignment each, so a request sees either the old or the new server, never a mix; a
config or policy that fails to load leaves the running one in force and says so in
`/healthz` and the log.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from pathlib import Path
from typing import cast

from .approvals import ApprovalStore
from .audit import AuditLog, GroupCommit
from .config import ConfigError, GatewayConfig, load_config
from .counters import SQLiteDeferredCounters
from .deferred import ClientGone, DeferredCounters, StaleDecision, Waiters, retry_while_locked
from .grants import SQLiteGrants, redis_client
from .http_client import HTTPUpstream
from .jwks import Fetcher, IssuerClient
from .oauth import ResourceServer, TokenCache
from .oauth_config import mapping_problems
from .logs import Logger
from .metrics import Metrics
from .pinning import ListingTracker, PinRegistry
from .policies import DenyAll, PolicyRegistry, route_catalog
from .principals import principal_key
from .proxy import GatewayApp, SessionBinder
from mcpp import Decision, Policy
from mcpp.catalog.conformance import SchemaCache
from .redis_store import LIMIT_STORE_DOWN, AsyncRedis, AsyncRedisGrants, RedisDeferredCounters, StoreUnavailable
from .schemas import escape_pointer
from .stdio import StdioUpstream


# decisions made again when the limit store kept a call waiting across a window's end
STALE_TRIES = 3

# settings read once, at start: a reload that changes them is logged as config_needs_restart
RESTART_FIELDS = (
    "host", "port", "state_dir", "redis_url", "audit_synchronous", "store_busy_timeout", "redis_timeout", "grant_cache_seconds",
    "max_header_bytes", "max_headers", "header_timeout", "idle_timeout", "max_connections", "max_response_bytes",
    "ops_listen", "shutdown_timeout",
)


AUDIT_FAILURE_SHOWN = 30.0  # seconds /healthz reports audit.db's last failed commit, whatever it reads since


def store_waiters(config: GatewayConfig) -> int:
    """How many calls may wait for one locked SQLite store (audit.db, counters.db): half the
    connections the server takes, so the other half still serves everything else while a
    lock lasts (deferred.Waiters)."""
    return max(1, config.max_connections // 2)


def session_key(state_dir: str, redis) -> bytes:
    """The HMAC key binding sessions to grants; shared through Redis when replicas are."""
    if redis is not None:
        fresh = secrets.token_hex(32)
        redis.set("mcpp:session-key", fresh, nx=True)
        return bytes.fromhex(redis.get("mcpp:session-key").decode())
    path = Path(state_dir) / "session.key"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)  # first writer wins; a racing replica reads the winner's key
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return bytes.fromhex(path.read_text().strip())


class Runtime:
    def __init__(self, config: GatewayConfig, config_path: str | None = None, log: Logger | None = None):
        self.config = config
        self.config_path = config_path
        self.log = log or Logger(config.log_level)
        self.metrics = Metrics()
        self.replica = f"{socket.gethostname()}:{os.getpid()}"
        Path(config.state_dir).mkdir(parents=True, exist_ok=True)
        if config.redis_url:
            # the session key is read once, at start, with the synchronous client (nothing is
            # being served yet); everything after goes through the asyncio client and breaker
            sync = redis_client(config.redis_url)
            try:
                key = session_key(config.state_dir, sync)
            finally:
                sync.close()
            self.redis: AsyncRedis | None = AsyncRedis(config.redis_url, config.redis_timeout, self.log, self.metrics)
            self.grants: AsyncRedisGrants | SQLiteGrants = AsyncRedisGrants(self.redis, config.grant_cache_seconds)
            self.counters: DeferredCounters = RedisDeferredCounters(self.redis)
        else:
            key = session_key(config.state_dir, None)
            self.redis = None
            self.grants = SQLiteGrants(config.state_dir)
            self.counters = SQLiteDeferredCounters(config.state_dir, config.store_busy_timeout, self.log,
                                                   max_waiting=store_waiters(config))
        # neither store may sleep on a lock in the event loop's thread (deferred.py)
        self.audit = AuditLog(config.state_dir, config.audit_synchronous, wait=False)
        self.audit.background_checkpoints(self.log)  # (checkpoints.py: no fdatasync inside a call's commit)
        self.audit_writer = GroupCommit(self.audit, config.store_busy_timeout, self.log, max_waiting=store_waiters(config))
        self.sessions = SessionBinder(key)
        self.registry = PolicyRegistry(self.counters)
        self.registry.gate_for = self._identity_gate
        # shadow policies (docs/rollout.md): loaded and reloaded like the enforcing ones, in
        # a registry of their own, so a shadow that fails never touches enforcement
        self.shadows = PolicyRegistry(self.counters)
        self.approvals = ApprovalStore(config.state_dir, wait=False)  # written through approvals_write
        self._approval_waiters = Waiters(store_waiters(config))
        self.values_key = values_key(config.state_dir) if config.audit_values == "hashed" else None
        self.admin_secret = config.admin_token.resolve("gateway.admin_token") if config.admin_token else None
        self.session_caps: dict = {}  # (server, upstream session) → the client's capabilities (initialize)
        self.elicitations: dict = {}  # JSON-RPC id of a gateway elicitation → (future, grant, server, session)
        self.log_only_passed = 0  # calls log-only mode let through that enforcing would have stopped
        self.shadows.gate_for = self._identity_gate  # a shadow is decided for users too
        self.pins = PinRegistry()
        self.listings = ListingTracker()
        self.schemas = SchemaCache()
        self.upstreams: dict = {}
        self.credential_headers: dict[str, list[tuple[str, str]]] = {}
        self.config_error: str | None = None
        self.config_mtime = _mtime(config_path)
        self.cred_mtimes = _cred_mtimes(config)
        self.started_at = time.time()
        self._visible_cache: dict = {}
        self._known: dict = {}
        self.mcp_port: int | None = None  # the listeners' ports (set by serve())
        # set when SIGTERM/SIGINT starts the shutdown (serve()): a request still open when
        # `shutdown_timeout` ends is then cancelled, and answers that it was (proxy.py)
        self.stopping = False
        self.ops_port: int | None = None
        self.ops_secret = config.ops_token.resolve("gateway.ops_token") if config.ops_token else None
        self._reload_task: asyncio.Task | None = None
        # identity: the issuers' clients, each OAuth server's resource-server side, the
        # well-known paths of their metadata, and tokens obtained by exchange
        self.fetcher = Fetcher()
        self.issuer_clients: dict[str, IssuerClient] = {}
        self.resource_servers: dict[str, ResourceServer] = {}
        self.metadata_paths: dict[str, str] = {}
        self.exchanged: TokenCache[str] = TokenCache()  # upstream tokens by (server, access token)
        self._build_identity(config, None)
        self._build_upstreams(config, None)
        self._preload(config)

    # ---- upstreams and policies ---------------------------------------------------------
    def _build_upstreams(self, cfg: GatewayConfig, old: GatewayConfig | None) -> None:
        """(Re)create the upstream of every new or changed server; resolve its credentials."""
        ups, creds = dict(self.upstreams), dict(self.credential_headers)
        resolved = {}
        for s in cfg.servers:
            values = [c.resolve(f"servers[{s.id}].credentials[{i}]") for i, c in enumerate(s.credentials)]
            resolved[s.id] = values
        for s in cfg.servers:
            prev = old.server(s.id) if old else None
            values = resolved[s.id]
            if s.kind == "http":
                # an http server's credentials each name a header (config)
                creds[s.id] = [(cast(str, c.header).lower(), v) for c, v in zip(s.credentials, values)]
            same_env = s.kind == "http" or [(c.env, v) for c, v in zip(s.credentials, values)] == getattr(ups.get(s.id), "cred_env", None)
            if prev is not None and prev == s and s.id in ups and same_env:
                continue
            if s.id in ups:
                ups[s.id].close()
            if s.kind == "http":
                assert s.url is not None  # kind http
                ups[s.id] = HTTPUpstream(s.url, self.config.connect_timeout, self.config.upstream_keepalive,
                                         max_response_bytes=self.config.max_response_bytes)
            else:
                env = [(cast(str, c.env), v) for c, v in zip(s.credentials, values)]  # a stdio one names a variable
                ups[s.id] = StdioUpstream(s, env, self.log, self.metrics)
        for sid in list(ups):
            if cfg.server(sid) is None:
                ups.pop(sid).close()
                creds.pop(sid, None)
        self.upstreams, self.credential_headers = ups, creds

    def _build_identity(self, cfg: GatewayConfig, old: GatewayConfig | None) -> None:
        """(Re)create the issuers' clients and the resource servers that changed; a client or
        resource server whose configuration is unchanged keeps its keys and token cache."""
        clients = {}
        for ic in cfg.issuers:
            prev = self.issuer_clients.get(ic.name)
            clients[ic.name] = prev if prev is not None and prev.cfg == ic else IssuerClient(ic, self.fetcher, self.log, self.metrics)
        servers, paths = {}, {}
        for s in cfg.servers:
            if s.oauth is None:
                continue
            prev_rs = self.resource_servers.get(s.id)
            if prev_rs is not None and prev_rs.oauth == s.oauth and all(t.client is clients[t.cfg.name] for t in prev_rs.trusted):
                rs = prev_rs
            else:
                rs = ResourceServer(s.id, s.oauth, clients, self.log, self.metrics)
            servers[s.id] = rs
            for p in {s.oauth.metadata_path(), f"/.well-known/oauth-protected-resource/mcp/{s.id}"}:
                paths[p] = paths[p + "/"] = s.id
        self.issuer_clients, self.resource_servers, self.metadata_paths = clients, servers, paths
        if old is not None:
            self.exchanged = TokenCache()

    def _identity_gate(self, server_id: str, role: str):
        """For a server's own policy (the one users are decided by): the claims mapping must
        give users every attribute the policy's `entity User` requires, typed alike."""
        if role != "server":
            return None

        def gate(policy) -> list[str]:
            s = self.config.server(server_id)
            if s is None or s.oauth is None:
                return []
            return [f"{policy.filename}: {p}" for p in mapping_problems(s.oauth, policy.user_declaration)]

        return gate

    def identity_problems(self, cfg: GatewayConfig) -> list[str]:
        """Mapping problems of `cfg` against the policies in force (a config reload that has
        any is refused)."""
        out = []
        for s in cfg.servers:
            if s.oauth is None or not s.policy:
                continue
            st = self.registry.states.get((s.id, s.policy))
            if st is not None and st.current is not None:
                decl = st.current.policy.user_declaration
                out += [f"servers[{s.id}].oauth.claims: {p} ({s.policy})" for p in mapping_problems(s.oauth, decl)]
        return out

    def pseudonym(self, text: str) -> str:
        """A stable keyed hash standing for a private subject in logs and the audit."""
        import hashlib
        import hmac

        return "anon:" + hmac.new(self.sessions.key, b"subject\0" + text.encode(), hashlib.sha256).hexdigest()[:24]

    def who(self, caller) -> dict:
        """Log fields naming the caller: the grant (id, label), or the user (issuer, subject
        — pseudonymised when `sub` is private). Never a token or a private claim."""
        ident = caller.identity
        if ident is None:
            return {"grant_id": caller.grant_id, "grant_label": caller.grant_label}
        return {"issuer": ident.issuer, "subject": ident.log_subject(self.pseudonym), "client_id": ident.client_id}

    async def exchange_header(self, server, caller, token: str) -> tuple[str, str]:
        """The upstream header carrying the per-user token obtained by RFC 8693 exchange at
        the token's issuer (cached per token until shortly before it expires)."""
        import hashlib

        ex = server.oauth.token_exchange
        digest = hashlib.sha256(f"{server.id}\0{token}".encode("utf-8", "surrogatepass")).digest()
        hit = self.exchanged.get(digest)
        if hit is None:
            client = self.issuer_clients[caller.identity.issuer_name]
            upstream_token, life = await client.exchange(token, ex)
            now = time.time()
            until = now + max(0.0, (life or 300.0) - 30.0)
            if caller.identity.expires_at is not None:
                until = min(until, caller.identity.expires_at)
            hit = upstream_token
            self.exchanged.put(digest, hit, until)
        return ex.header.lower(), ex.prefix + hit

    def _policy_paths(self, cfg: GatewayConfig):
        for s in cfg.servers:
            if s.policy:
                yield s, s.policy, "server"
            for _, p in s.grant_policies:
                yield s, p, f"grant-policy:{Path(p).stem}"

    def shadow_for(self, server, role: str):
        """(policy, sha256) of the server's shadow policy for a call its `policy` decides
        (`role` "server"), else (None, None). A shadow that is not in force decides nothing."""
        if not server.shadow or role != "server":
            return None, None
        st, fresh = self.shadows.state(server.id, server.shadow, "server")  # the enforcing policy's counters
        if fresh:
            self._report_shadow(st)
        cur = st.current
        return (cur.policy, cur.sha256) if cur is not None else (None, None)

    def _report_shadow(self, st) -> None:
        good = st.error is None
        self.metrics.set("mcpp_shadow_healthy", (("server", st.server), ("policy", Path(st.path).name)), 1 if good else 0)
        if good:
            self.log.info("shadow_loaded", server=st.server, path=st.path, sha256=st.current.sha256)
        else:  # logged and shown in /healthz; enforcement is untouched
            self.log.error("shadow_refused", server=st.server, path=st.path, error=st.error,
                           in_force=st.current.sha256 if st.current else None)

    def refusals(self) -> list[str]:
        """Why configured policies are not in force (`server <id>: <reason>`), for start-up:
        `mcpp serve` refuses to start while there is any."""
        out = []
        for s, path, role in self._policy_paths(self.config):
            st = self.registry.states.get((s.id, path))
            if st is not None and st.current is None:
                out.append(f"server {s.id}: policy refused: {st.error or 'not loaded'}")
        return out

    def _preload(self, cfg: GatewayConfig) -> None:
        for s, path, role in self._policy_paths(cfg):
            st, _ = self.registry.state(s.id, path, role, route_catalog(s.catalog, s.enforce_input_schema))
            self._report(st)
        for s in cfg.servers:
            if s.shadow:
                st, fresh = self.shadows.state(s.id, s.shadow, "server")
                if fresh:
                    self._report_shadow(st)
        self.shadows.retain({(s.id, s.shadow) for s in cfg.servers if s.shadow})
        for s in cfg.servers:
            if s.catalog:
                pin, fresh = self.pins.state(s.id, s.catalog)
                if fresh:
                    self._report_pin(pin)
        self.pins.retain({(s.id, s.catalog) for s in cfg.servers if s.catalog})

    def _report_pin(self, st) -> None:
        good = st.error is None
        self.metrics.set("mcpp_catalog_healthy", (("server", st.server), ("catalog", Path(st.path).name)), 1 if good else 0)
        if good:
            cur = st.current
            self.log.info("catalog_pinned", server=st.server, path=st.path, sha256=cur.sha256, tools=len(cur.catalog.tools))
        else:
            self.log.error("catalog_refused", server=st.server, path=st.path, error=st.error,
                           in_force=st.current.sha256 if st.current else None)

    def pin_for(self, server):
        """The pin state of a server that pins a catalog (None when it pins none)."""
        if not server.catalog:
            return None
        st, fresh = self.pins.state(server.id, server.catalog)
        if fresh:
            self._report_pin(st)
        return st

    def _report(self, st) -> None:
        good = st.error is None
        self.metrics.set("mcpp_policy_healthy", (("server", st.server), ("policy", Path(st.path).name)), 1 if good else 0)
        if good:
            self.log.info("policy_loaded", server=st.server, path=st.path, sha256=st.current.sha256)
        else:
            self.log.error("policy_refused", server=st.server, path=st.path, error=st.error,
                           in_force=st.current.sha256 if st.current else None)

    def policy_role(self, server, caller) -> str:
        return self.policy_path(server, caller)[1]

    def policy_path(self, server, caller) -> tuple[str | None, str]:
        rec = caller.record
        if rec is not None and rec.policy:
            return rec.policy, f"grant-policy:{Path(rec.policy).stem}"
        g = caller.grant
        if g is not None:  # a user is decided by the server's policy
            for key, path in server.grant_policies:
                if key == g.id or (g.label and key == g.label):
                    return path, f"grant-policy:{Path(path).stem}"
        return server.policy, "server"

    async def engine_for(self, server, caller):
        """(the `mcpp.Policy` that decides this caller's calls on `server`, its sha256); a
        `DenyAll` (and None) while no policy is in force: fail closed.

        A policy first used by this call (a grant's own policy, the first time that grant
        calls) is loaded, and its asserts proved, in a worker thread: Z3 can take seconds,
        and on the event loop it would stall every other caller meanwhile."""
        path, role = self.policy_path(server, caller)
        if path is None:
            return DenyAll(f"no policy is configured for server {server.id}"), None
        args = (server.id, path, role, route_catalog(server.catalog, server.enforce_input_schema))
        if (server.id, path) in self.registry.states:
            st, fresh = self.registry.state(*args)
        else:
            st, fresh = await asyncio.to_thread(self.registry.state, *args)
        if fresh:
            self._report(st)
        cur = st.current
        return st.policy(), (cur.sha256 if cur else None)

    async def visible(self, server, caller, names: list[str]) -> set[str]:
        """The tools some call could be allowed for (`Policy.visible`, the analyzer's answer),
        cached per policy and principal."""
        policy, _ = await self.engine_for(server, caller)
        if not isinstance(policy, Policy):
            return set()
        g = caller.principal
        key = (id(policy), principal_key(g), server.id, tuple(names))  # per principal: a user's claims count
        hit = self._visible_cache.get(key)
        if hit is not None and hit[0] is policy:
            return hit[1]
        failures: list[Exception] = []
        # without the analyzer's answer (it failed), Policy.visible falls back to what is certain
        vis = await asyncio.to_thread(policy.visible, names, principal=g, server=server.id, on_error=failures.append)
        for e in failures:
            self.log.warning("visibility_failed", server=server.id, error=f"{type(e).__name__}: {e}")
        if len(self._visible_cache) > 10_000:
            self._visible_cache.clear()
        self._visible_cache[key] = (policy, set(vis))
        return set(vis)

    def known_tools(self, policy, server) -> frozenset:
        """Tools a metric label may name: those the policy names, and those of a pinned catalog."""
        pin = self.pins.states.get((server.id, server.catalog)) if server.catalog else None
        cur = pin.current if pin is not None else None
        named = policy.tools if isinstance(policy, Policy) else frozenset()
        if cur is None:
            return named
        key = (id(named), id(cur))
        hit = self._known.get(key)
        if hit is not None and hit[0] is named and hit[1] is cur:
            return hit[2]
        if len(self._known) > 64:
            self._known.clear()
        self._known[key] = (named, cur, named | frozenset(cur.catalog.tools))
        return self._known[key][2]

    def rule_label(self, pointer: str, tool: str, policy, server) -> str:
        """The rule pointer as a metric label: a tool nobody named becomes `other`, so callers
        cannot mint label values with made-up tool names."""
        if tool in self.known_tools(policy, server):
            return pointer
        seg = escape_pointer(tool)
        for prefix in ("/tools/", "/catalog/"):
            if pointer.startswith(prefix + seg) and pointer[len(prefix) + len(seg):len(prefix) + len(seg) + 1] in ("", "/"):
                return prefix + "other" + pointer[len(prefix) + len(seg):]
        return pointer

    async def grant_record(self, gid: str):
        """The grant record for an id (None if there is none); StoreUnavailable or an
        sqlite3 error if the grant store cannot be read."""
        if isinstance(self.grants, AsyncRedisGrants):  # with Redis
            return await self.grants.aget(gid)
        return self.grants.get(gid)

    async def decide(self, policy, tool: str, args, principal, server_id: str, reserve: bool = True,
                     approved: bool = False) -> Decision:
        """`Policy.decide`, with limit counters (Redis, or SQLite's counters.db) reserved by
        an awaited operation (deferred.DeferredCounters) instead of a blocking one. A limited
        call while the store is unavailable (Redis down; counters.db locked by another
        process past `store_busy_timeout`) is refused (LIMIT_STORE_DOWN); a call no limit
        applies to is decided without the store. A check that does not reserve (`reserve=False`: a shadow policy; a
        call waiting for approval) reads the counts it needs with one awaited read first.
        `policy` is a `mcpp.Policy`, or the `DenyAll` of a server with none in force."""
        store = self.counters
        dry_run = not reserve
        if not getattr(policy, "limited", False) or getattr(policy, "counters", None) is not store:
            # no limit (or not this store's): the store is never asked, so nothing to record
            return policy.decide(tool, args, principal=principal, server=server_id, dry_run=dry_run, approved=approved,
                                   from_json=True)
        for _ in range(STALE_TRIES):
            now = time.time()
            with store.recording() as plan:
                decision = policy.decide(tool, args, principal=principal, server=server_id, now=now, dry_run=dry_run,
                                         approved=approved, from_json=True)
            if plan.peeked:  # a limit was checked without reserving: against the real counts
                try:
                    values = await store.values_async(plan.peeked)
                except ClientGone:  # (nobody waits for this decision any more: the caller says so)
                    raise
                except StoreUnavailable as e:
                    return self._store_down(tool, e)
                with store.recording(peek=values) as plan:
                    decision = policy.decide(tool, args, principal=principal, server=server_id, now=now, dry_run=dry_run,
                                             approved=approved, from_json=True)
            if not decision.allowed or not plan.charges:
                return decision
            try:
                bad = await store.reserve_async(plan.charges)
            except StaleDecision:  # it waited on the store across a window's end: decide again, now
                continue
            except ClientGone:  # (nothing was reserved)
                raise
            except StoreUnavailable as e:
                return self._store_down(tool, e)
            if bad is None:
                return decision
            with store.replaying(bad):
                denied = policy.decide(tool, args, principal=principal, server=server_id, now=now, dry_run=dry_run,
                                       approved=approved, from_json=True)
            if denied.allowed:  # the decision did not mirror its first pass: never let it through
                return Decision(False, tool, "/error", None, "policy evaluation failed: limit replay mismatch")
            return denied
        return self._store_down(tool, StoreUnavailable(f"the limit store kept the call waiting past {STALE_TRIES} window ends"))

    async def approvals_write(self, op, background: bool = False):
        """`op()`, a write to approvals.db, retried from the event loop while another
        process holds the file locked (deferred.py); StoreUnavailable after
        `store_busy_timeout`, or sooner: by the waiting call's deadline, or at once when
        half of `max_connections` already wait for the file (as for audit.db and
        counters.db). `background`: a write no request waits for (an approval given back),
        which keeps its own timeout and holds no connection."""
        if background:
            return await retry_while_locked(op, self.config.store_busy_timeout, "approvals.db")
        return await retry_while_locked(op, self.config.store_busy_timeout, "approvals.db", self._approval_waiters,
                                        for_call=True)

    def _store_down(self, tool: str, e: Exception) -> Decision:
        self.log.warning("limit_store_unavailable", tool=tool, error=str(e))
        return Decision(False, tool, LIMIT_STORE_DOWN, None, (
            "The limit store is unavailable, so calls under a limit cannot be counted and are refused; "
            "the call was not forwarded. Try again shortly."))

    def head_refused(self, status: int, reason: str) -> None:  # noqa: ARG002 (bounded_protocol's callback)
        """A request head refused by the HTTP layer (431 too large, 408 too slow)."""
        self.metrics.inc("mcpp_requests_total", (("server", "-"), ("method", "-"), ("status", str(status))))

    def close_stores(self) -> None:
        for store in (self.grants, self.counters, self.audit, self.approvals):
            close = getattr(store, "close", None)
            if close is not None:
                try:
                    close()
                except Exception as e:  # shutting down goes on; a store that would not close is said
                    self.log.warning("store_close_failed", store=type(store).__name__, error=f"{type(e).__name__}: {e}")

    # ---- health ------------------------------------------------------------------------
    def audit_failing(self) -> str | None:
        """Why audit.db cannot take rows, or None. The last commit's failure counts for
        AUDIT_FAILURE_SHOWN seconds; after that only while the table cannot even be read: a
        gateway with no traffic has no commit to clear it with, and a readiness check gating
        on /healthz would keep traffic away for good (hostile23 F2)."""
        w = self.audit_writer
        if w.failure is None:
            return None
        if time.monotonic() - w.failure_at < AUDIT_FAILURE_SHOWN:
            return w.failure
        try:
            self.audit.db.execute("SELECT seq FROM audit LIMIT 1").fetchone()
        except Exception as e:  # (any failure: the table is not readable)
            return f"{type(e).__name__}: {e}"
        return None

    async def health(self) -> tuple[int, dict]:
        servers = {}
        degraded = self.config_error is not None
        for s in self.config.servers:
            pols = [st.health() for (sid, _), st in self.registry.states.items() if sid == s.id]
            if not s.policy:
                degraded = True
            degraded = degraded or any(p["error"] for p in pols)
            up = self.upstreams.get(s.id)
            servers[s.id] = {
                "upstream": s.url if s.kind == "http" else {"command": list(s.command or ()), **(up.health() if up else {})},
                "policy": s.policy, "policies": pols,
            }
            rs = self.resource_servers.get(s.id)
            if rs is not None:
                servers[s.id]["oauth"] = {
                    "resource": rs.oauth.resource, "metadata": rs.metadata_url, "accept_grants": rs.oauth.accept_grants,
                    "issuers": [{"name": t.cfg.name, "issuer": t.cfg.issuer, "keys_fetched": t.client.keys_fetched}
                                for t in rs.trusted],
                    "cached_tokens": len(rs.cache),
                }
            if s.shadow:
                sh = self.shadows.states.get((s.id, s.shadow))
                servers[s.id]["shadow"] = sh.health() if sh else {"path": s.shadow, "in_force": False, "error": "not loaded yet"}
                degraded = degraded or sh is None or sh.error is not None
            if s.catalog:
                pin = self.pins.states.get((s.id, s.catalog))
                servers[s.id]["catalog"] = pin.health() if pin else {"path": s.catalog, "in_force": False, "error": "not loaded yet"}
                degraded = degraded or pin is None or pin.error is not None
        stores_ok, store_error = True, None
        try:
            if self.redis is not None:
                await self.redis.ping()  # within redis_timeout; at once while the breaker is open
            else:
                assert isinstance(self.grants, SQLiteGrants)  # without Redis
                self.grants.ping()
        except StoreUnavailable as e:
            stores_ok, store_error = False, str(e)
        except Exception as e:
            stores_ok, store_error = False, f"{type(e).__name__}: {e}"
        # audit.db failing on something other than a lock (no row, no call: every tools/call
        # is refused 503): unavailable, not "ok" (hostile21 F1: a renamed audit.db broke
        # every call while /healthz said ok)
        audit_error = self.audit_failing()
        if audit_error is not None:
            stores_ok = False
        log_only = self.config.mode == "log-only"
        body = {
            "status": "ok" if stores_ok and not degraded and not log_only else ("unavailable" if not stores_ok else "degraded"),
            "mode": self.config.mode,
            **({"warning": LOG_ONLY_WARNING, "log_only_passed": self.log_only_passed} if log_only else {}),
            "replica": self.replica, "uptime_s": round(time.time() - self.started_at, 1),
            "config": {"path": self.config_path, "error": self.config_error},
            "store": {"kind": "redis" if self.redis is not None else "sqlite", "error": store_error,
                      **({"breaker": "open" if self.redis.is_open else "closed"} if self.redis is not None else {})},
            "audit": {"error": audit_error},
            "servers": servers,
        }
        return (200 if stores_ok else 503), body

    # ---- lifecycle and reload ----------------------------------------------------------
    async def start(self) -> None:
        self._reload_task = asyncio.ensure_future(self._reload_loop())
        self.log.info("started", servers=[s.id for s in self.config.servers], state_dir=self.config.state_dir,
                      store="redis" if self.redis is not None else "sqlite", mode=self.config.mode)
        self.warn_log_only()

    def warn_log_only(self) -> None:
        """Log-only mode is said loudly: at start, at every change and every LOG_ONLY_EVERY seconds."""
        self.metrics.set("mcpp_log_only", (), 1 if self.config.mode == "log-only" else 0)
        if self.config.mode == "log-only":
            self.log.warning("log_only_mode", warning=LOG_ONLY_WARNING, passed_since_start=self.log_only_passed)
        self._log_only_at = time.monotonic()

    def periodic(self) -> None:
        """Once per reload tick: the log-only reminder, expired approvals, retained values past their bound."""
        now = time.monotonic()
        if self.config.mode == "log-only" and now - getattr(self, "_log_only_at", 0) >= LOG_ONLY_EVERY:
            self.warn_log_only()
        if now - getattr(self, "_purged_at", -PURGE_EVERY) >= PURGE_EVERY:
            self._purged_at = now
            try:
                self.approvals.expire()
                # always, whatever audit_values is now: values kept under an earlier config age out too
                n = self.audit.purge_values(time.time() - self.config.audit_values_days * 86400)
                if n:
                    self.log.info("audit_values_purged", rows=n, older_than_days=self.config.audit_values_days)
            except Exception as e:  # a file locked by another process (or broken): tried again soon, not in 5 min
                self._purged_at = now - PURGE_EVERY + PURGE_RETRY
                self.log.warning("purge_failed", error=f"{type(e).__name__}: {e}", retry_in=PURGE_RETRY)

    async def stop(self) -> None:
        if self._reload_task is not None:
            self._reload_task.cancel()
        # what answered calls still owe their stores (a refund, an outcome row), queued while
        # a store was locked: written before exit, within store_busy_timeout, or logged lost
        await self.counters.drain(self.config.store_busy_timeout, self.log)
        await self.audit_writer.drain()
        for up in self.upstreams.values():
            up.close()
        for up in self.upstreams.values():
            if hasattr(up, "aclose"):
                await up.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        await self.fetcher.aclose()

    async def _reload_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.reload_interval)
            try:
                await self.reload_once()
                self.periodic()
            except Exception as e:  # the loop must survive anything
                self.log.error("reload_error", error=f"{type(e).__name__}: {e}")

    async def reload_once(self) -> None:
        # a rotated credential file counts as a config change: the upstream gets the new one
        if self.config_path is not None and (
            _mtime(self.config_path) != self.config_mtime or _cred_mtimes(self.config) != self.cred_mtimes
        ):
            self.config_mtime = _mtime(self.config_path)
            self.cred_mtimes = _cred_mtimes(self.config)
            await self._reload_config()
        for st in self.registry.changed():
            ok, err = await asyncio.to_thread(st.load)
            self.metrics.inc("mcpp_policy_reloads_total", (("server", st.server), ("result", "ok" if ok else "refused")))
            self._report(st)
            if ok:
                self._visible_cache.clear()
        for st in self.shadows.changed():
            ok, err = await asyncio.to_thread(st.load)
            self.metrics.inc("mcpp_shadow_reloads_total", (("server", st.server), ("result", "ok" if ok else "refused")))
            self._report_shadow(st)
        for pin in self.pins.changed():
            ok, err = await asyncio.to_thread(pin.load)
            self.metrics.inc("mcpp_catalog_reloads_total", (("server", pin.server), ("result", "ok" if ok else "refused")))
            self._report_pin(pin)

    async def _reload_config(self) -> None:
        assert self.config_path is not None  # only a gateway started from a file reloads it
        try:
            new = await asyncio.to_thread(load_config, self.config_path)
            for field in RESTART_FIELDS:
                if getattr(new, field) != getattr(self.config, field):
                    self.log.warning("config_needs_restart", field=field)
                    new = _keep(new, field, getattr(self.config, field))
            old = self.config
            if new.ops_token is not None:
                new.ops_token.resolve("gateway.ops_token")  # refused below if it cannot be read
            problems = self.identity_problems(new)
            if problems:
                raise ConfigError(problems[0])
            self._build_upstreams(new, old)
            self._build_identity(new, old)
        except ConfigError as e:
            self.config_error = str(e)
            self.metrics.inc("mcpp_policy_reloads_total", (("server", "*"), ("result", "config_refused")))
            self.log.error("config_refused", path=self.config_path, error=str(e))
            return
        mode_changed = new.mode != self.config.mode
        self.config = new
        self.ops_secret = new.ops_token.resolve("gateway.ops_token") if new.ops_token else None
        self.admin_secret = new.admin_token.resolve("gateway.admin_token") if new.admin_token else None
        if new.audit_values == "hashed" and self.values_key is None:
            self.values_key = values_key(new.state_dir)
        if mode_changed:
            self.warn_log_only()
        self.cred_mtimes = _cred_mtimes(new)
        self.config_error = None
        self._preload(new)
        self._visible_cache.clear()
        self.metrics.inc("mcpp_policy_reloads_total", (("server", "*"), ("result", "config_ok")))
        self.log.info("config_reloaded", path=self.config_path, servers=[s.id for s in new.servers])


def _cred_mtimes(cfg: GatewayConfig) -> dict:
    files = {c.from_file: _mtime(c.from_file) for s in cfg.servers for c in s.credentials if c.from_file}
    for i in cfg.issuers:  # the gateway's client secret at an issuer is read when used; watched like the rest
        if i.client is not None and i.client.secret.from_file:
            files[i.client.secret.from_file] = _mtime(i.client.secret.from_file)
    for tok in (cfg.ops_token, cfg.admin_token):
        if tok is not None and tok.from_file:
            files[tok.from_file] = _mtime(tok.from_file)
    return files


LOG_ONLY_WARNING = ("LOG-ONLY MODE: policies decide and every call is audited, but nothing the policy denies is "
                    "stopped (typed-call and pinned-catalog refusals and authentication still apply)")
LOG_ONLY_EVERY = 60.0  # seconds between log-only reminders in the log
PURGE_EVERY = 300.0  # seconds between sweeps of expired approvals and retained values
PURGE_RETRY = 5.0  # seconds until a sweep that failed (a locked file) is tried again


def values_key(state_dir: str) -> bytes:
    """The secret that keys hashed audit values (`<state>/audit-values.key`, mode 0600):
    without it a hashed value cannot be tested against a guess."""
    path = Path(state_dir) / "audit-values.key"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return bytes.fromhex(path.read_text().strip())


def _keep(cfg: GatewayConfig, field: str, value):
    from dataclasses import replace

    return replace(cfg, **{field: value})


def _mtime(path):
    if path is None:
        return None
    try:
        st = os.stat(path)
        return (st.st_mtime_ns, st.st_size)
    except OSError:
        return None


class StartRefused(Exception):
    """The gateway will not start: a configured policy does not load or fails a gate."""


def build_app(config: GatewayConfig, config_path: str | None = None, log: Logger | None = None,
              strict: bool = False) -> tuple[GatewayApp, Runtime]:
    """The app and its runtime. `strict` (what `mcpp serve` uses): raise StartRefused when a
    configured policy is not in force, rather than serving it as deny-all."""
    rt = Runtime(config, config_path, log)
    if strict:
        refused = rt.refusals()
        if refused:
            rt.close_stores()
            raise StartRefused("; ".join(refused))
    return GatewayApp(rt), rt


def serve(config: GatewayConfig, config_path: str | None = None) -> None:
    """Run until SIGINT/SIGTERM: in-flight requests finish first, or are answered and
    audited as stopped (stopping.py)."""
    import uvicorn

    from .http_server import HeadLimits, bounded_protocol
    from .stopping import GatewayServer

    app, rt = build_app(config, config_path, strict=True)
    loop = "uvloop" if _has("uvloop") else "asyncio"
    limits = HeadLimits(config.max_header_bytes, config.max_headers, config.header_timeout,
                        config.max_header_bytes + 2 * config.max_body_bytes + 65536)
    http = bounded_protocol(limits, rt.head_refused)
    uconfig = uvicorn.Config(
        app, host=config.host, port=config.port, loop=loop, http=http, lifespan="on", access_log=False,
        log_level="warning", server_header=False, date_header=False,
        proxy_headers=False,  # X-Forwarded-* would let a client pick the address in logs; not trusted
        # uvicorn annotates int; it hands the seconds to loop.call_later, which takes a float
        timeout_keep_alive=config.idle_timeout,  # type: ignore[arg-type]
        # uvicorn refuses a request once the open connections, its own included, reach the
        # limit: `max_connections` connections are served with one more (hostile review 25,
        # F4: `max_connections = N` served N-1, and with 2 the 2025-era SDK client, whose
        # listening stream takes a slot, failed every call)
        limit_concurrency=config.max_connections + 1,
    )
    # both listeners are bound here, before serving: a port that is taken fails the start
    mcp_sock = _bind(config.host, config.port)
    sockets = [mcp_sock]
    rt.mcp_port = mcp_sock.getsockname()[1]
    if config.ops_listen is not None:
        ops_sock = _bind(*config.ops_listen)
        sockets.append(ops_sock)
        rt.ops_port = ops_sock.getsockname()[1]
        rt.log.info("listening_ops", host=config.ops_listen[0], port=rt.ops_port)
    rt.log.info("listening", host=config.host, port=rt.mcp_port, loop=loop, http="httptools")

    # stopping.py: every call open at SIGTERM/SIGINT is answered and audited before exit
    GatewayServer(uconfig, rt, app).run(sockets=sockets)


def _bind(host: str, port: int):
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _has(mod: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(mod) is not None
