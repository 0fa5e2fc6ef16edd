"""Gateway configuration: one TOML file, or the quick start's flags.

Secrets are never inline: an upstream credential names an environment variable or a
file, read when the config is (re)loaded, so the file itself can be committed. Every
problem is reported with where it is (`servers[1].credentials[0]: …`), never a traceback.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from mcpp.lang.tomltext import TOMLUnreadable, read_toml

from .oauth_config import (IssuerConfig, OAuthConfigError, ServerOAuth, check_url, parse_issuers, parse_server_oauth,
                           read_secret)

SERVER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# headers the gateway owns on the upstream hop; a credential may not replace them
RESERVED_HEADERS = {
    "host", "content-length", "content-type", "accept", "transfer-encoding", "connection",
    "mcp-session-id", "mcp-protocol-version", "mcp-method", "mcp-name", "last-event-id",
}


class ConfigError(Exception):
    """A configuration problem, with the place it is in."""


@dataclass(frozen=True)
class Credential:
    """An upstream credential by reference: put into a header (HTTP) or an env var (stdio)."""

    header: str | None
    env: str | None
    prefix: str
    from_env: str | None
    from_file: str | None

    def resolve(self, where: str) -> str:
        return self.prefix + read_secret(self.from_env, self.from_file, where, ConfigError)


@dataclass(frozen=True)
class ServerConfig:
    id: str
    url: str | None = None
    command: tuple[str, ...] | None = None
    cwd: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    policy: str | None = None
    grant_policies: tuple[tuple[str, str], ...] = ()  # (grant label or id, policy path)
    credentials: tuple[Credential, ...] = ()
    anonymous: bool = False
    max_sessions: int = 32
    max_sessions_per_caller: int = 8  # stdio: one caller's share of max_sessions (default a quarter, at least 1)
    session_idle_seconds: float = 1800.0
    catalog: str | None = None  # a pinned catalog (docs/gateway.md, "Pinning a catalog")
    catalog_max_age: float = 300.0  # seconds a listing is trusted before a call re-lists the tools
    enforce_input_schema: bool = True  # typed calls: arguments must conform to the tool's inputSchema
    shadow: str | None = None  # a candidate policy decided beside `policy`, never enforced (docs/rollout.md)
    approval_elicitation: bool = False  # ask the client's user through MCP elicitation (opt in: docs/approval.md)
    oauth: "ServerOAuth | None" = None  # identity: an OAuth 2.1 resource server (oauth_config.py)

    @property
    def kind(self) -> str:
        return "http" if self.url is not None else "stdio"


_LOOPBACK_HOSTS = ("127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]")
_LOOPBACK_ORIGINS = ("http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*")


@dataclass(frozen=True)
class GatewayConfig:
    host: str = "127.0.0.1"
    port: int = 8787
    state_dir: str = "mcpp-state"
    redis_url: str | None = None
    redis_timeout: float = 1.0  # seconds for one Redis operation (and to connect); a failure opens the breaker
    grant_cache_seconds: float = 300.0  # with Redis down: how old a grant record read from Redis may be and still serve
    max_body_bytes: int = 4 * 1024 * 1024
    max_header_bytes: int = 32768  # request line + header fields; more is 431
    max_headers: int = 100  # header fields; more is 431
    header_timeout: float = 10.0  # seconds for a request head to arrive; then 408
    body_timeout: float = 30.0  # seconds for a request body to arrive; then 408
    idle_timeout: float = 5.0  # seconds a kept-alive connection may idle between requests
    max_connections: int = 1000  # open connections (and requests in progress); more get 503
    max_requests_per_caller: int = 250  # one caller's requests in progress (streams included); more get 429
    max_response_bytes: int = 64 * 1024 * 1024  # an upstream answer the gateway reads whole (tools/list, JSON); more is an error
    upstream_timeout: float = 120.0
    connect_timeout: float = 10.0
    upstream_keepalive: float = 2.0
    json_answer_wait: float = 1.0  # seconds an answer's event stream is held for its first message (proxy._HeadWaits); 0: never
    ops_listen: tuple[str, int] | None = None  # /healthz and /metrics on their own address (and only there)
    ops_token: "Credential | None" = None  # when set, /healthz and /metrics need `Authorization: Bearer <it>`
    allowed_hosts: tuple[str, ...] | None = None  # None: loopback names when bound to loopback
    allowed_origins: tuple[str, ...] | None = None
    audit_synchronous: str = "normal"
    store_busy_timeout: float = 10.0  # seconds a call waits for audit.db or counters.db locked by another process
    shutdown_timeout: float = 10.0  # seconds SIGTERM/SIGINT waits for in-flight requests before closing them
    reload_interval: float = 1.0
    log_level: str = "info"
    groups: tuple[tuple[str, tuple[str, ...]], ...] = ()  # group → grant labels or ids
    mode: str = "enforce"  # enforce | log-only: decide and audit, never deny (docs/rollout.md)
    audit_values: str = "none"  # none | hashed | full: argument values kept in the audit (docs/rollout.md)
    audit_values_days: float = 30.0  # retained values are erased from rows older than this
    approval_ttl: float = 3600.0  # seconds an approval request (and the approval) stays valid
    approval_wait: float = 120.0  # seconds a call waits on an elicitation answer (2025 sessions) before it returns
    admin_token: "Credential | None" = None  # when set: POST /approvals/<id>/approve|reject with this bearer token
    public_url: str | None = None  # the gateway as clients reach it (default resource URIs: <public_url>/mcp/<id>)
    issuers: tuple["IssuerConfig", ...] = ()  # authorization servers servers may trust ([issuers.<name>])
    servers: tuple[ServerConfig, ...] = ()
    source: str | None = None  # the config file, when there is one

    def server(self, server_id: str) -> ServerConfig | None:
        for s in self.servers:
            if s.id == server_id:
                return s
        return None

    def issuer(self, name: str) -> "IssuerConfig | None":
        for i in self.issuers:
            if i.name == name:
                return i
        return None

    def groups_of(self, grant_id: str, label: str) -> frozenset[str]:
        if not self.groups:  # (the common case, asked on every request)
            return frozenset()
        return frozenset(g for g, members in self.groups if grant_id in members or (label and label in members))

    @functools.cached_property
    def loopback(self) -> bool:
        # cached: asked on every request, and a frozen config's host never changes
        return is_loopback(self.host)

    @functools.cached_property
    def _host_allowlist(self) -> tuple[str, ...] | None:
        if self.allowed_hosts is not None:
            return self.allowed_hosts
        if self.loopback:
            return _LOOPBACK_HOSTS
        return None

    @functools.cached_property
    def _origin_allowlist(self) -> tuple[str, ...] | None:
        if self.allowed_origins is not None:
            return self.allowed_origins
        if self.loopback:
            return _LOOPBACK_ORIGINS
        return None

    def host_allowlist(self) -> tuple[str, ...] | None:
        return self._host_allowlist

    def ops_host_allowlist(self) -> tuple[str, ...] | None:
        """Host allowlist of the separate operations listener: loopback names when it is on
        loopback (any port), otherwise none (a dedicated monitoring address; use ops_token)."""
        if self.ops_listen is None:
            return self.host_allowlist()
        if is_loopback(self.ops_listen[0]):
            return _LOOPBACK_HOSTS
        return None

    def origin_allowlist(self) -> tuple[str, ...] | None:
        return self._origin_allowlist


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_GATEWAY_KEYS = {
    "host", "port", "state_dir", "redis_url", "redis_url_env", "redis_timeout", "grant_cache_seconds", "max_body_bytes",
    "max_header_bytes", "max_headers",
    "header_timeout", "body_timeout", "idle_timeout", "max_connections", "max_requests_per_caller", "max_response_bytes",
    "upstream_timeout",
    "connect_timeout", "upstream_keepalive", "json_answer_wait", "allowed_hosts", "allowed_origins", "audit_synchronous",
    "store_busy_timeout", "shutdown_timeout", "reload_interval", "log_level", "ops_listen", "ops_token_env", "ops_token_file",
    "mode", "audit_values", "audit_values_days", "approval_ttl", "approval_wait", "admin_token_env", "admin_token_file",
    "public_url",
}
MODES = ("enforce", "log-only")
AUDIT_VALUES = ("none", "hashed", "full")
_INT_KEYS = {"max_body_bytes", "max_header_bytes", "max_headers", "max_connections", "max_requests_per_caller",
             "max_response_bytes"}
_SERVER_KEYS = {
    "id", "url", "command", "cwd", "env", "policy", "grant_policies", "credentials", "anonymous",
    "max_sessions", "max_sessions_per_caller", "session_idle_seconds", "catalog", "catalog_max_age", "enforce_input_schema",
    "shadow", "approval_elicitation", "oauth",
}
_CRED_KEYS = {"header", "env", "prefix", "from_env", "from_file"}


def load_config(path: str | Path) -> GatewayConfig:
    """Parse and validate a config file; relative paths are relative to the file."""
    p = Path(path)
    try:
        data = read_toml(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file") from None
    except OSError as e:
        raise ConfigError(f"{p}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text") from None
    except TOMLUnreadable as e:  # (nested too deeply, an integer too long, or not TOML)
        raise ConfigError(f"{p}:{e.line}:{e.column}: {e.reason}") from None
    try:
        return _build(data, p.resolve().parent, str(p))
    except ConfigError as e:
        raise ConfigError(f"{p}: {e}") from None


def _rel(base: Path, value: str) -> str:
    q = Path(os.path.expanduser(value))
    return str(q if q.is_absolute() else (base / q).resolve())


def _typed(obj: dict, key: str, types, where: str, default=None):
    if key not in obj:
        return default
    v = obj[key]
    if isinstance(v, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ConfigError(f"{where}.{key}: expected {_tname(types)}, got a boolean")
    if not isinstance(v, types):
        raise ConfigError(f"{where}.{key}: expected {_tname(types)}, got {type(v).__name__}")
    if isinstance(v, float) and not math.isfinite(v):  # TOML has nan and inf; no setting means them
        raise ConfigError(f"{where}.{key}: must be a finite number, not {v}")
    return v


def _tname(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "an array", dict: "a table"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def _unknown(obj: dict, allowed: set[str], where: str) -> None:
    extra = sorted(set(obj) - allowed)
    if extra:
        raise ConfigError(f"{where}: unknown key {extra[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _str_list(v, where: str) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ConfigError(f"{where}: expected an array of strings")
    return tuple(v)


def _build(data: dict, base: Path, source: str) -> GatewayConfig:
    _unknown(data, {"gateway", "servers", "groups", "issuers"}, "top level")
    g = data.get("gateway", {})
    if not isinstance(g, dict):
        raise ConfigError("[gateway]: expected a table")
    _unknown(g, _GATEWAY_KEYS, "[gateway]")
    host = _typed(g, "host", str, "gateway", "127.0.0.1")
    port = _typed(g, "port", int, "gateway", 8787)
    if not 0 <= port <= 65535:
        raise ConfigError("gateway.port: must be 0..65535")
    redis_url = _typed(g, "redis_url", str, "gateway")
    redis_env = _typed(g, "redis_url_env", str, "gateway")
    if redis_url and redis_env:
        raise ConfigError("gateway: give redis_url or redis_url_env, not both")
    if redis_env:
        redis_url = os.environ.get(redis_env)
        if not redis_url:
            raise ConfigError(f"gateway.redis_url_env: environment variable {redis_env} is not set")
    sync = _typed(g, "audit_synchronous", str, "gateway", "normal")
    if sync not in ("normal", "full"):
        raise ConfigError("gateway.audit_synchronous: must be \"normal\" or \"full\"")
    level = _typed(g, "log_level", str, "gateway", "info")
    if level not in ("debug", "info", "warning", "error"):
        raise ConfigError("gateway.log_level: must be debug, info, warning or error")
    nums = {}
    for key, default, lo in (
        ("max_body_bytes", 4 * 1024 * 1024, 1024), ("upstream_timeout", 120.0, 0.1), ("connect_timeout", 10.0, 0.1),
        ("upstream_keepalive", 2.0, 0.0), ("reload_interval", 1.0, 0.1), ("max_header_bytes", 32768, 1024),
        ("max_headers", 100, 8), ("header_timeout", 10.0, 0.1), ("body_timeout", 30.0, 0.1), ("idle_timeout", 5.0, 0.1),
        ("max_connections", 1000, 1), ("max_requests_per_caller", 250, 2), ("max_response_bytes", 64 * 1024 * 1024, 65536),
        ("redis_timeout", 1.0, 0.01),
        ("grant_cache_seconds", 300.0, 0.0), ("store_busy_timeout", 10.0, 0.0),
        ("shutdown_timeout", 10.0, 0.0), ("json_answer_wait", 1.0, 0.0),
    ):
        v = _typed(g, key, int if key in _INT_KEYS else (int, float), "gateway", default)
        if v < lo:
            raise ConfigError(f"gateway.{key}: must be at least {lo}")
        nums[key] = v
    ops_listen = None
    if "ops_listen" in g:
        ops_listen = parse_listen(_typed(g, "ops_listen", str, "gateway"), "gateway.ops_listen")
        if ops_listen[1] == port and port != 0:
            raise ConfigError("gateway.ops_listen: must use another port than the MCP listener")
    te, tf = _typed(g, "ops_token_env", str, "gateway"), _typed(g, "ops_token_file", str, "gateway")
    if te is not None and tf is not None:
        raise ConfigError("gateway: give ops_token_env or ops_token_file, not both")
    ops_token = Credential(None, None, "", te, _rel(base, tf) if tf else None) if (te or tf) else None
    if ops_token is not None:
        ops_token.resolve("gateway.ops_token")  # must be readable now; read again at start
    mode = _typed(g, "mode", str, "gateway", "enforce")
    if mode not in MODES:
        raise ConfigError('gateway.mode: must be "enforce" or "log-only"')
    audit_values = _typed(g, "audit_values", str, "gateway", "none")
    if audit_values not in AUDIT_VALUES:
        raise ConfigError('gateway.audit_values: must be "none", "hashed" or "full"')
    rollout = {}
    for key, default, lo in (("audit_values_days", 30.0, 0.0), ("approval_ttl", 3600.0, 1.0), ("approval_wait", 120.0, 0.0)):
        v = _typed(g, key, (int, float), "gateway", default)
        if v < lo:
            raise ConfigError(f"gateway.{key}: must be at least {lo:g}")
        rollout[key] = float(v)
    ae, af = _typed(g, "admin_token_env", str, "gateway"), _typed(g, "admin_token_file", str, "gateway")
    if ae is not None and af is not None:
        raise ConfigError("gateway: give admin_token_env or admin_token_file, not both")
    admin_token = Credential(None, None, "", ae, _rel(base, af) if af else None) if (ae or af) else None
    if admin_token is not None:
        admin_token.resolve("gateway.admin_token")  # must be readable now; read again on every (re)load
    hosts = _str_list(g["allowed_hosts"], "gateway.allowed_hosts") if "allowed_hosts" in g else None
    origins = _str_list(g["allowed_origins"], "gateway.allowed_origins") if "allowed_origins" in g else None

    groups_raw = data.get("groups", {})
    if not isinstance(groups_raw, dict):
        raise ConfigError("[groups]: expected a table of group = [grant labels or ids]")
    groups = tuple((name, _str_list(v, f"groups.{name}")) for name, v in groups_raw.items())

    public_url = _typed(g, "public_url", str, "gateway")
    try:
        if public_url is not None:
            check_url(public_url, "gateway.public_url")
        issuers = parse_issuers(data.get("issuers", {}), base)
    except OAuthConfigError as e:
        raise ConfigError(str(e)) from None

    servers_raw = data.get("servers", [])
    if not isinstance(servers_raw, list):
        raise ConfigError("servers: expected [[servers]] tables")
    servers = []
    seen = set()
    for i, s in enumerate(servers_raw):
        srv = _server(s, f"servers[{i}]", base, public_url, issuers)
        if srv.id in seen:
            raise ConfigError(f"servers[{i}].id: duplicate server id {srv.id!r}")
        seen.add(srv.id)
        servers.append(srv)
    if not servers:
        raise ConfigError("no [[servers]]: the gateway has nothing to serve")
    resources: dict[str, str] = {}
    for i, srv in enumerate(servers):
        if srv.oauth is None:
            continue
        path = srv.oauth.metadata_path()
        if path in resources:
            raise ConfigError(f"servers[{i}].oauth.resource: the same resource path as server {resources[path]}")
        resources[path] = srv.id
    return GatewayConfig(
        host=host, port=port, state_dir=_rel(base, _typed(g, "state_dir", str, "gateway", "mcpp-state")),
        redis_url=redis_url, max_body_bytes=int(nums["max_body_bytes"]), upstream_timeout=float(nums["upstream_timeout"]),
        max_header_bytes=int(nums["max_header_bytes"]), max_headers=int(nums["max_headers"]),
        header_timeout=float(nums["header_timeout"]), body_timeout=float(nums["body_timeout"]),
        idle_timeout=float(nums["idle_timeout"]), max_connections=int(nums["max_connections"]),
        max_requests_per_caller=int(nums["max_requests_per_caller"]),
        max_response_bytes=int(nums["max_response_bytes"]), redis_timeout=float(nums["redis_timeout"]),
        grant_cache_seconds=float(nums["grant_cache_seconds"]),
        connect_timeout=float(nums["connect_timeout"]), upstream_keepalive=float(nums["upstream_keepalive"]),
        json_answer_wait=float(nums["json_answer_wait"]),
        allowed_hosts=hosts, allowed_origins=origins, audit_synchronous=sync,
        store_busy_timeout=float(nums["store_busy_timeout"]), shutdown_timeout=float(nums["shutdown_timeout"]),
        reload_interval=float(nums["reload_interval"]), log_level=level, groups=groups, servers=tuple(servers),
        ops_listen=ops_listen, ops_token=ops_token,
        mode=mode, audit_values=audit_values, admin_token=admin_token, **rollout, public_url=public_url, issuers=issuers,
        source=source,
    )


def _server(s, where: str, base: Path, public_url: str | None = None, issuers: tuple = ()) -> ServerConfig:
    if not isinstance(s, dict):
        raise ConfigError(f"{where}: expected a table")
    _unknown(s, _SERVER_KEYS, where)
    sid = _typed(s, "id", str, where)
    if sid is None:
        raise ConfigError(f"{where}: missing id")
    if not SERVER_ID.match(sid):
        raise ConfigError(f"{where}.id: {sid!r} is not a valid id (letters, digits, _ . -; at most 64)")
    url = _typed(s, "url", str, where)
    command = s.get("command")
    if (url is None) == (command is None):
        raise ConfigError(f"{where}: give exactly one of url (Streamable HTTP) or command (stdio)")
    if url is not None:
        check_upstream_url(url, f"{where}.url")
    cmd = None
    if command is not None:
        cmd = tuple(shlex.split(command)) if isinstance(command, str) else _str_list(command, f"{where}.command")
        if not cmd:
            raise ConfigError(f"{where}.command: empty")
    env_raw = s.get("env", {})
    if not isinstance(env_raw, dict) or not all(isinstance(v, str) for v in env_raw.values()):
        raise ConfigError(f"{where}.env: expected a table of strings")
    for k in env_raw:
        if not ENV_NAME.match(k):
            raise ConfigError(f"{where}.env: {k!r} is not a valid variable name")
    policy = _typed(s, "policy", str, where)
    gp = s.get("grant_policies", {})
    if not isinstance(gp, dict) or not all(isinstance(v, str) for v in gp.values()):
        raise ConfigError(f"{where}.grant_policies: expected a table of grant label or id = policy path")
    creds = []
    raw_creds = s.get("credentials", [])
    if not isinstance(raw_creds, list):
        raise ConfigError(f"{where}.credentials: expected [[servers.credentials]] tables")
    for j, c in enumerate(raw_creds):
        creds.append(_credential(c, f"{where}.credentials[{j}]", url is not None, base))
    max_sessions = _typed(s, "max_sessions", int, where, 32)
    if max_sessions < 1:
        raise ConfigError(f"{where}.max_sessions: must be at least 1")
    per_caller = _typed(s, "max_sessions_per_caller", int, where, max(1, max_sessions // 4))
    if not 1 <= per_caller <= max_sessions:
        raise ConfigError(f"{where}.max_sessions_per_caller: must be between 1 and max_sessions ({max_sessions})")
    idle = _typed(s, "session_idle_seconds", (int, float), where, 1800.0)
    catalog = _typed(s, "catalog", str, where)
    if catalog is not None and not catalog.strip():
        raise ConfigError(f"{where}.catalog: empty path")
    max_age = _typed(s, "catalog_max_age", (int, float), where, 300.0)
    if max_age < 0:
        raise ConfigError(f"{where}.catalog_max_age: must be at least 0")
    oauth = None
    if "oauth" in s:
        try:
            oauth = parse_server_oauth(s["oauth"], f"{where}.oauth", sid, public_url, issuers, url is not None)
        except OAuthConfigError as e:
            raise ConfigError(str(e)) from None
        if bool(s.get("anonymous")):
            raise ConfigError(f"{where}: anonymous and oauth are exclusive (a request without a token gets the OAuth challenge)")
        ex = oauth.token_exchange
        if ex is not None and any(c.header and c.header.lower() == ex.header.lower() for c in creds):
            raise ConfigError(f"{where}.oauth.token_exchange.header: {ex.header} is also a static credential of this server")
    shadow = _typed(s, "shadow", str, where)
    if shadow is not None and not shadow.strip():
        raise ConfigError(f"{where}.shadow: empty path")
    if shadow is not None and policy is None:
        raise ConfigError(f"{where}.shadow: a shadow policy is decided beside `policy`; this server has none")
    cred_envs = {c.env for c in creds if c.env}
    clash = cred_envs & set(env_raw)
    if clash:
        raise ConfigError(f"{where}.env: {sorted(clash)[0]} is also a credential; set it only through credentials")
    return ServerConfig(
        id=sid, url=url, command=cmd, cwd=_rel(base, s["cwd"]) if isinstance(s.get("cwd"), str) else None,
        env=tuple(env_raw.items()), policy=_rel(base, policy) if policy else None,
        grant_policies=tuple((k, _rel(base, v)) for k, v in gp.items()), credentials=tuple(creds),
        anonymous=bool(_typed(s, "anonymous", bool, where, False)), max_sessions=max_sessions,
        max_sessions_per_caller=per_caller, session_idle_seconds=float(idle), catalog=_rel(base, catalog) if catalog else None,
        catalog_max_age=float(max_age), enforce_input_schema=bool(_typed(s, "enforce_input_schema", bool, where, True)),
        shadow=_rel(base, shadow) if shadow else None,
        approval_elicitation=bool(_typed(s, "approval_elicitation", bool, where, False)),
        oauth=oauth,
    )


def _credential(c, where: str, http: bool, base: Path) -> Credential:
    if not isinstance(c, dict):
        raise ConfigError(f"{where}: expected a table")
    inline = {"value", "token", "secret", "password"} & set(c)
    if inline:
        raise ConfigError(f"{where}: credentials are never inline; use from_env or from_file instead of {sorted(inline)[0]!r}")
    _unknown(c, _CRED_KEYS, where)
    header, env = _typed(c, "header", str, where), _typed(c, "env", str, where)
    if http and (header is None or env is not None):
        raise ConfigError(f"{where}: an HTTP upstream's credential is a header: give header, not env")
    if not http and (env is None or header is not None):
        raise ConfigError(f"{where}: a stdio upstream's credential is an environment variable: give env, not header")
    if header is not None:
        if not HEADER_NAME.match(header):
            raise ConfigError(f"{where}.header: {header!r} is not a valid header name")
        if header.lower() in RESERVED_HEADERS:
            raise ConfigError(f"{where}.header: {header} is set by the gateway")
    if env is not None and not ENV_NAME.match(env):
        raise ConfigError(f"{where}.env: {env!r} is not a valid variable name")
    fe, ff = _typed(c, "from_env", str, where), _typed(c, "from_file", str, where)
    if (fe is None) == (ff is None):
        raise ConfigError(f"{where}: give exactly one of from_env or from_file")
    prefix = _typed(c, "prefix", str, where, "")
    return Credential(header, env, prefix, fe, _rel(base, ff) if ff else None)


def parse_listen(text: str, where: str) -> tuple[str, int]:
    """`host:port` (an IPv6 host in brackets) → (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isascii() or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{where}: expected host:port, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def check_upstream_url(url: str, where: str) -> None:
    from urllib.parse import urlsplit

    try:
        u = urlsplit(url)
        u.port  # noqa: B018 - raises on a bad port
    except ValueError as e:
        raise ConfigError(f"{where}: not a URL: {e}") from None
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ConfigError(f"{where}: expected an http:// or https:// URL, got {url!r}")
    if u.username or u.password:
        raise ConfigError(f"{where}: credentials in the URL are inline secrets; use [[servers.credentials]]")


def quick_config(
    policy: str, upstream: str | None, stdio: str | None, port: int, state: str, host: str = "127.0.0.1",
    anonymous: bool = False, max_body_bytes: int | None = None, upstream_timeout: float | None = None,
    pin_catalog: str | None = None, enforce_input_schema: bool = True, shadow: str | None = None,
    mode: str = "enforce", approval_elicitation: bool = False,
) -> GatewayConfig:
    """The config `mcpp serve --policy … (--upstream | --stdio)` stands for: one server, id `default`."""
    if (upstream is None) == (stdio is None):
        raise ConfigError("give exactly one of --upstream URL or --stdio \"CMD …\"")
    if upstream is not None:
        check_upstream_url(upstream, "--upstream")
    command = None
    if stdio is not None:
        try:
            command = tuple(shlex.split(stdio))
        except ValueError as e:
            raise ConfigError(f"--stdio: {e}") from None
        if not command:
            raise ConfigError("--stdio: empty command")
    server = ServerConfig(id="default", url=upstream, command=command, policy=str(Path(policy).resolve()), anonymous=anonymous,
                          catalog=str(Path(pin_catalog).resolve()) if pin_catalog else None,
                          enforce_input_schema=enforce_input_schema,
                          shadow=str(Path(shadow).resolve()) if shadow else None,
                          approval_elicitation=approval_elicitation)
    if mode not in MODES:
        raise ConfigError('--mode: must be "enforce" or "log-only"')
    kw: dict = {"mode": mode}
    if max_body_bytes is not None:
        kw["max_body_bytes"] = max_body_bytes
    if upstream_timeout is not None:
        kw["upstream_timeout"] = upstream_timeout
    return GatewayConfig(host=host, port=port, state_dir=str(Path(state).resolve()), servers=(server,), **kw)
