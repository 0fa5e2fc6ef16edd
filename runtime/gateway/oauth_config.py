"""The identity part of the gateway configuration: trusted issuers and, per server, the
OAuth 2.1 resource-server settings (docs/gateway.md, "Identity").

    [issuers.acme]                       # an authorization server this gateway trusts
    issuer = "https://login.acme.com/realms/main"

    [[servers]]
    id = "payments"
    [servers.oauth]
    resource = "https://gw.acme.com/mcp/payments"   # RFC 8707: a token's aud must be this
    issuers = ["acme"]
    required_scopes = ["payments"]
    groups_claim = "groups"
    private_claims = ["email"]
    [servers.oauth.claims]
    email = { claim = "email", type = "String" }

Everything is checked when the config is loaded and reported with its key path
(`servers[0].oauth.claims.email.type: …`), never as a traceback. Secrets (the gateway's
own client secret at an issuer) are references, like upstream credentials.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

# asymmetric JWS algorithms a token may be signed with; symmetric ones (HS*) and `none`
# are never accepted: a resource server holds only public keys
ASYMMETRIC_ALGORITHMS = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
)
DEFAULT_ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")
# the attribute types a claim can be mapped to: those an `entity User` declaration can
# give an attribute the gateway fills (Cedar's spelling, as in the policy)
CLAIM_TYPES = ("String", "Long", "Bool", "Set<String>")
ATTR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
ISSUER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]+$")  # RFC 6749 scope-token
CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")


class OAuthConfigError(Exception):
    """A problem in the identity configuration; the message starts with its key path."""


def read_secret(from_env: str | None, from_file: str | None, where: str, error: type[Exception]) -> str:
    """A secret the config names by reference (an environment variable, else a file, read
    when the config loads): one line, never empty. `error` is the caller's config error
    type; its message starts with `where` (the key path)."""
    import os

    if from_env is not None:
        value = os.environ.get(from_env)
        if value is None:
            raise error(f"{where}: environment variable {from_env} is not set")
    else:
        assert from_file is not None  # the config sets one of the two
        try:
            value = Path(from_file).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise error(f"{where}: cannot read {from_file}: {e.strerror}") from None
    # a line break in a value that goes into a header would split it (header injection)
    if not value or any(c in value for c in "\r\n\0"):
        raise error(f"{where}: the secret is empty or contains a line break")
    return value


@dataclass(frozen=True)
class SecretRef:
    """A secret by reference: an environment variable or a file, read when the config loads."""

    from_env: str | None
    from_file: str | None

    def resolve(self, where: str) -> str:
        return read_secret(self.from_env, self.from_file, where, OAuthConfigError)


@dataclass(frozen=True)
class ClientAuth:
    """The gateway's own client at an issuer: for introspection and token exchange."""

    client_id: str
    secret: SecretRef
    method: str = "client_secret_basic"


@dataclass(frozen=True)
class IssuerConfig:
    name: str
    issuer: str  # the exact `iss` of its tokens and the `issuer` of its metadata
    metadata_url: str | None = None  # None: RFC 8414 well-known, then OpenID Connect discovery
    jwks_uri: str | None = None  # None: the metadata's jwks_uri
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    leeway: float = 30.0  # seconds of clock skew allowed on exp / nbf / iat
    subject_prefix: str | None = None  # None: "<name>:" where a server trusts several issuers, else ""
    introspection: bool = False  # opaque (non-JWT) tokens through RFC 7662
    introspection_endpoint: str | None = None  # None: the metadata's
    client: ClientAuth | None = None
    jwks_cache_seconds: float = 300.0  # keys are re-fetched when older than this
    jwks_refresh_min_seconds: float = 30.0  # an unknown `kid` re-fetches at most this often
    introspection_cache_seconds: float = 60.0  # an active introspection answer is reused this long (capped by exp)
    timeout: float = 5.0  # seconds for one request to the issuer
    max_response_bytes: int = 262144  # metadata, key set, introspection and exchange answers


@dataclass(frozen=True)
class ClaimMap:
    """One principal attribute: `attribute` (as `principal.<attribute>`) from the claim at
    `claim` (a path: one name, or names into nested objects), typed as `type`."""

    attribute: str
    claim: tuple[str, ...]
    type: str


@dataclass(frozen=True)
class TokenExchange:
    """RFC 8693 at the token's issuer: a per-user token for the upstream instead of the
    server's static credential (optional)."""

    audience: str | None = None
    resource: str | None = None
    scope: str | None = None
    header: str = "Authorization"
    prefix: str = "Bearer "


@dataclass(frozen=True)
class ServerOAuth:
    resource: str  # RFC 8707 resource URI of this route: the `aud` its tokens must carry
    issuers: tuple[str, ...]  # names of [issuers.<name>]
    required_scopes: tuple[str, ...] = ()
    scopes_supported: tuple[str, ...] = ()
    accept_grants: bool = True  # mcpp grant tokens are still accepted beside OAuth tokens
    scope_claim: tuple[str, ...] = ("scope",)
    groups_claim: tuple[str, ...] | None = None
    claims: tuple[ClaimMap, ...] = ()
    private_claims: frozenset[str] = frozenset()  # claim names whose values are never logged
    resource_name: str | None = None
    token_exchange: TokenExchange | None = None

    @property
    def subject_private(self) -> bool:
        return "sub" in self.private_claims

    @property
    def groups_private(self) -> bool:
        return self.groups_claim is not None and self.groups_claim[0] in self.private_claims

    def attribute_private(self, m: ClaimMap) -> bool:
        return m.claim[0] in self.private_claims

    def metadata_path(self) -> str:
        """RFC 9728 §3.1: the well-known path of this resource's metadata."""
        path = urlsplit(self.resource).path
        return "/.well-known/oauth-protected-resource" + ("" if path in ("", "/") else path)

    def metadata_url(self) -> str:
        u = urlsplit(self.resource)
        return f"{u.scheme}://{u.netloc}{self.metadata_path()}"


# ---- parsing ------------------------------------------------------------------------------

_ISSUER_KEYS = {
    "issuer", "metadata_url", "jwks_uri", "algorithms", "leeway", "subject_prefix", "introspection",
    "introspection_endpoint", "client_id", "client_secret_env", "client_secret_file", "client_auth",
    "jwks_cache_seconds", "jwks_refresh_min_seconds", "introspection_cache_seconds", "timeout", "max_response_bytes",
}
_OAUTH_KEYS = {
    "resource", "issuers", "required_scopes", "scopes_supported", "accept_grants", "scope_claim", "groups_claim",
    "claims", "private_claims", "resource_name", "token_exchange",
}
_CLAIM_KEYS = {"claim", "type"}
_EXCHANGE_KEYS = {"audience", "resource", "scope", "header", "prefix"}


def _type_name(v) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "a table"}.get(type(v), type(v).__name__)


def _get(obj: dict, key: str, types, where: str, default=None):
    if key not in obj:
        return default
    v = obj[key]
    types_t = types if isinstance(types, tuple) else (types,)
    if isinstance(v, bool) and bool not in types_t:
        raise OAuthConfigError(f"{where}.{key}: expected {_names(types_t)}, got a boolean")
    if not isinstance(v, types_t):
        raise OAuthConfigError(f"{where}.{key}: expected {_names(types_t)}, got {_type_name(v)}")
    return v


def _names(types) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "an array", dict: "a table"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def _unknown(obj: dict, allowed: set[str], where: str) -> None:
    extra = sorted(set(obj) - allowed)
    if extra:
        raise OAuthConfigError(f"{where}: unknown key {extra[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _strings(obj: dict, key: str, where: str, default=()) -> tuple[str, ...]:
    if key not in obj:
        return tuple(default)
    v = obj[key]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise OAuthConfigError(f"{where}.{key}: expected an array of strings")
    return tuple(v)


def _number(obj: dict, key: str, where: str, default: float, lo: float, hi: float) -> float:
    v = _get(obj, key, (int, float), where, default)
    if not lo <= v <= hi:
        raise OAuthConfigError(f"{where}.{key}: must be between {lo:g} and {hi:g}")
    return float(v)


def _loopback(host: str | None) -> bool:
    from .config import is_loopback

    return host is not None and is_loopback(host.strip("[]"))


def check_url(url: str, where: str, *, what: str = "URL", allow_query: bool = False) -> str:
    """An absolute https URL (http only on a loopback host: a local issuer, the tests), with
    no fragment, no credentials, and a query only where the standard allows one."""
    try:
        u = urlsplit(url)
        u.port  # noqa: B018 - raises on a bad port
    except ValueError as e:
        raise OAuthConfigError(f"{where}: not a {what}: {e}") from None
    if u.scheme not in ("http", "https") or not u.hostname:
        raise OAuthConfigError(f"{where}: expected an https:// {what}, got {url!r}")
    if u.scheme == "http" and not _loopback(u.hostname):
        raise OAuthConfigError(f"{where}: {url!r} must use https (http is allowed only on a loopback host)")
    if u.fragment or "#" in url:
        raise OAuthConfigError(f"{where}: a {what} has no fragment")
    if u.query and not allow_query:
        raise OAuthConfigError(f"{where}: a {what} has no query")
    if u.username or u.password:
        raise OAuthConfigError(f"{where}: credentials in the URL are inline secrets")
    return url


def _claim_path(v, where: str) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not v or not all(isinstance(x, str) and x for x in v):
        raise OAuthConfigError(f"{where}: expected a claim name, or an array of names for a nested claim")
    if len(v) > 8:
        raise OAuthConfigError(f"{where}: a claim path has at most 8 names")
    return tuple(v)


def parse_issuers(raw, base: Path) -> tuple[IssuerConfig, ...]:
    if not isinstance(raw, dict):
        raise OAuthConfigError("issuers: expected [issuers.<name>] tables")
    out = []
    seen: dict[str, str] = {}
    for name, t in raw.items():
        where = f"issuers.{name}"
        if not ISSUER_NAME.match(name):
            raise OAuthConfigError(f"{where}: {name!r} is not a valid name (letters, digits, _ . -; at most 64)")
        if not isinstance(t, dict):
            raise OAuthConfigError(f"{where}: expected a table")
        if "client_secret" in t:
            raise OAuthConfigError(f"{where}: secrets are never inline; use client_secret_env or client_secret_file")
        _unknown(t, _ISSUER_KEYS, where)
        iss = _get(t, "issuer", str, where)
        if iss is None:
            raise OAuthConfigError(f"{where}: missing issuer (the authorization server's issuer identifier)")
        check_url(iss, f"{where}.issuer", what="issuer identifier")
        if iss in seen:
            raise OAuthConfigError(f"{where}.issuer: the same issuer as issuers.{seen[iss]}")
        seen[iss] = name
        meta = _get(t, "metadata_url", str, where)
        if meta is not None:
            check_url(meta, f"{where}.metadata_url")
        jwks = _get(t, "jwks_uri", str, where)
        if jwks is not None:
            check_url(jwks, f"{where}.jwks_uri")
        algs = _strings(t, "algorithms", where, DEFAULT_ALGORITHMS)
        if not algs:
            raise OAuthConfigError(f"{where}.algorithms: empty (no token could be accepted)")
        for a in algs:
            if a.lower() == "none" or a.upper().startswith("HS"):
                raise OAuthConfigError(
                    f"{where}.algorithms: {a!r} is refused: a resource server verifies with public keys, "
                    "so only asymmetric algorithms are allowed (" + ", ".join(ASYMMETRIC_ALGORITHMS) + ")")
            if a not in ASYMMETRIC_ALGORITHMS:
                raise OAuthConfigError(f"{where}.algorithms: unknown algorithm {a!r} (allowed: {', '.join(ASYMMETRIC_ALGORITHMS)})")
        prefix = _get(t, "subject_prefix", str, where)
        if prefix is not None and len(prefix) > 64:
            raise OAuthConfigError(f"{where}.subject_prefix: at most 64 characters")
        intro = bool(_get(t, "introspection", bool, where, False))
        iep = _get(t, "introspection_endpoint", str, where)
        if iep is not None:
            check_url(iep, f"{where}.introspection_endpoint")
            if not intro:
                raise OAuthConfigError(f"{where}.introspection_endpoint: set introspection = true to use it")
        cid = _get(t, "client_id", str, where)
        se, sf = _get(t, "client_secret_env", str, where), _get(t, "client_secret_file", str, where)
        if se is not None and sf is not None:
            raise OAuthConfigError(f"{where}: give client_secret_env or client_secret_file, not both")
        method = _get(t, "client_auth", str, where, "client_secret_basic")
        if method not in CLIENT_AUTH_METHODS:
            raise OAuthConfigError(f"{where}.client_auth: must be one of {', '.join(CLIENT_AUTH_METHODS)}")
        client = None
        if cid is not None or se is not None or sf is not None:
            if cid is None or (se is None and sf is None):
                raise OAuthConfigError(f"{where}: the gateway's client needs client_id and client_secret_env or client_secret_file")
            from .config import _rel

            ref = SecretRef(se, _rel(base, sf) if sf else None)
            ref.resolve(f"{where}.client_secret")
            client = ClientAuth(cid, ref, method)
        if intro and client is None:
            raise OAuthConfigError(f"{where}.introspection: RFC 7662 needs the gateway's own client (client_id and a secret)")
        out.append(IssuerConfig(
            name=name, issuer=iss, metadata_url=meta, jwks_uri=jwks, algorithms=algs,
            leeway=_number(t, "leeway", where, 30.0, 0, 300), subject_prefix=prefix, introspection=intro,
            introspection_endpoint=iep, client=client,
            jwks_cache_seconds=_number(t, "jwks_cache_seconds", where, 300.0, 1, 86400),
            jwks_refresh_min_seconds=_number(t, "jwks_refresh_min_seconds", where, 30.0, 0, 3600),
            introspection_cache_seconds=_number(t, "introspection_cache_seconds", where, 60.0, 0, 3600),
            timeout=_number(t, "timeout", where, 5.0, 0.1, 60),
            max_response_bytes=int(_number(t, "max_response_bytes", where, 262144, 1024, 16 * 1024 * 1024)),
        ))
    return tuple(out)


def parse_server_oauth(t, where: str, server_id: str, public_url: str | None,
                       issuers: tuple[IssuerConfig, ...], http_upstream: bool) -> ServerOAuth:
    if not isinstance(t, dict):
        raise OAuthConfigError(f"{where}: expected a table")
    _unknown(t, _OAUTH_KEYS, where)
    resource = _get(t, "resource", str, where)
    if resource is None:
        if public_url is None:
            raise OAuthConfigError(f"{where}.resource: required (this route's public URL, e.g. "
                                   f"\"https://gateway.example.com/mcp/{server_id}\"), or set gateway.public_url")
        resource = public_url.rstrip("/") + f"/mcp/{server_id}"
    check_url(resource, f"{where}.resource", what="resource URI")
    names = _strings(t, "issuers", where)
    if not names:
        raise OAuthConfigError(f"{where}.issuers: name at least one [issuers.<name>] this server trusts")
    known = {i.name: i for i in issuers}
    for n in names:
        if n not in known:
            raise OAuthConfigError(f"{where}.issuers: no [issuers.{n}] (defined: {', '.join(sorted(known)) or 'none'})")
    if len(set(names)) != len(names):
        raise OAuthConfigError(f"{where}.issuers: an issuer is named twice")
    prefixes = [subject_prefix(known[n], len(names)) for n in names]
    if len(names) > 1:
        for n, p in zip(names, prefixes):
            if not p:
                raise OAuthConfigError(f"{where}.issuers: issuers.{n}.subject_prefix is empty, but this server trusts "
                                       "several issuers: their subjects could collide")
        for i, p in enumerate(prefixes):
            for j, q in enumerate(prefixes):
                if i != j and q.startswith(p):
                    raise OAuthConfigError(f"{where}.issuers: the subject prefixes {p!r} ({names[i]}) and {q!r} "
                                           f"({names[j]}) overlap: their users' ids could collide")
    req = _strings(t, "required_scopes", where)
    sup = _strings(t, "scopes_supported", where, req)
    for key, scopes in (("required_scopes", req), ("scopes_supported", sup)):
        for s in scopes:
            if not SCOPE_TOKEN.match(s):
                raise OAuthConfigError(f"{where}.{key}: {s!r} is not a valid scope (no spaces, quotes or backslashes)")
    scope_claim = _claim_path(t["scope_claim"], f"{where}.scope_claim") if "scope_claim" in t else ("scope",)
    groups_claim = _claim_path(t["groups_claim"], f"{where}.groups_claim") if "groups_claim" in t else None
    private = _strings(t, "private_claims", where)
    claims_raw = t.get("claims", {})
    if not isinstance(claims_raw, dict):
        raise OAuthConfigError(f"{where}.claims: expected a table of attribute = {{ claim = …, type = … }}")
    claims = []
    for attr, c in claims_raw.items():
        cw = f"{where}.claims.{attr}"
        if not ATTR_NAME.match(attr):
            raise OAuthConfigError(f"{cw}: {attr!r} is not a valid attribute name (letters, digits, _)")
        if isinstance(c, str):  # shorthand: attr = "String" maps the claim of the same name
            c = {"claim": attr, "type": c}
        if not isinstance(c, dict):
            raise OAuthConfigError(f"{cw}: expected {{ claim = \"…\", type = \"String\" | \"Long\" | \"Bool\" | \"Set<String>\" }}")
        _unknown(c, _CLAIM_KEYS, cw)
        path = _claim_path(c.get("claim", attr), f"{cw}.claim")
        typ = _get(c, "type", str, cw)
        if typ is None:
            raise OAuthConfigError(f"{cw}: missing type (one of {', '.join(CLAIM_TYPES)})")
        if typ not in CLAIM_TYPES:
            hint = {"string": "String", "long": "Long", "int": "Long", "integer": "Long", "bool": "Bool",
                    "boolean": "Bool", "set": "Set<String>", "set<string>": "Set<String>"}.get(typ.lower())
            raise OAuthConfigError(f"{cw}.type: {typ!r} is not a claim type (one of {', '.join(CLAIM_TYPES)})"
                                   + (f"; did you mean {hint!r}?" if hint else ""))
        claims.append(ClaimMap(attr, path, typ))
    ex = None
    if "token_exchange" in t:
        ew = f"{where}.token_exchange"
        e = t["token_exchange"]
        if not isinstance(e, dict):
            raise OAuthConfigError(f"{ew}: expected a table")
        _unknown(e, _EXCHANGE_KEYS, ew)
        if not http_upstream:
            raise OAuthConfigError(f"{ew}: token exchange gives an HTTP upstream a per-user header; this server is stdio")
        aud, res = _get(e, "audience", str, ew), _get(e, "resource", str, ew)
        if aud is None and res is None:
            raise OAuthConfigError(f"{ew}: name the upstream with audience or resource (RFC 8693 §2.1)")
        if res is not None:
            check_url(res, f"{ew}.resource", what="resource URI")
        scope = _get(e, "scope", str, ew)
        header = _get(e, "header", str, ew, "Authorization")
        from .config import HEADER_NAME, RESERVED_HEADERS

        if not HEADER_NAME.match(header) or header.lower() in RESERVED_HEADERS:
            raise OAuthConfigError(f"{ew}.header: {header!r} cannot carry the upstream token")
        for n in names:
            if known[n].client is None:
                raise OAuthConfigError(f"{ew}: the exchange is done at the token's issuer with the gateway's own "
                                       f"client; issuers.{n} has no client_id")
        ex = TokenExchange(aud, res, scope, header, _get(e, "prefix", str, ew, "Bearer "))
    rn = _get(t, "resource_name", str, where)
    return ServerOAuth(
        resource=resource, issuers=names, required_scopes=req, scopes_supported=sup,
        accept_grants=bool(_get(t, "accept_grants", bool, where, True)), scope_claim=scope_claim,
        groups_claim=groups_claim, claims=tuple(claims), private_claims=frozenset(private),
        resource_name=rn, token_exchange=ex,
    )


def subject_prefix(issuer: IssuerConfig, trusted_by_server: int) -> str:
    """What a user's id starts with: the configured prefix, else `<name>:` when the server
    trusts several issuers (their subjects are unique only per issuer), else nothing."""
    if issuer.subject_prefix is not None:
        return issuer.subject_prefix
    return f"{issuer.name}:" if trusted_by_server > 1 else ""


# ---- the policy's `entity User` against the mapping ---------------------------------------

def mapping_problems(oauth: ServerOAuth, decl) -> list[str]:
    """Why the claims mapping cannot give users what the policy's `entity User` declaration
    says they have (an empty list: it can). `decl` is the policy's `mcpp.UserDeclaration`
    (None: the policy declares none, so users have no attributes and any groups). A required
    attribute must be mapped with a compatible type; an optional one, if mapped, too; a
    groups claim needs `in [Group]`."""
    if decl is None:
        return []
    out = []
    mapped = {m.attribute: m for m in oauth.claims}
    for a in decl.attributes:
        m = mapped.get(a.name)
        if m is None:
            if not a.optional:
                out.append(f"entity User requires attribute {a.name!r} ({a.type}), but no claim is mapped to it "
                           f"(add {a.name} = {{ claim = \"…\", type = \"{a.type}\" }} under [servers.oauth.claims])")
            continue
        if m.type != a.type:
            out.append(f"entity User declares {a.name!r} as {a.type}, but the claims mapping types it {m.type}")
    if oauth.groups_claim is not None and not decl.groups:
        out.append("groups_claim puts users in groups, but entity User is declared without `in [Group]`")
    return out
