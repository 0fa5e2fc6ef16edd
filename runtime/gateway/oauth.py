"""The gateway as an OAuth 2.1 resource server (MCP authorization, 2025-11-25 / 2026-07-28).

Per server with `[servers.oauth]`:

- **Protected Resource Metadata** (RFC 9728) at `/.well-known/oauth-protected-resource`
  followed by the resource's path (`…/mcp/<server>`): the resource URI, the trusted
  issuers, the scopes.
- **Challenges** (RFC 6750 §3): 401 `WWW-Authenticate: Bearer resource_metadata="…",
  scope="…"` without a token, `error="invalid_token"` with a bad one; 403
  `error="insufficient_scope", scope="…"` when a required scope is missing (the SDK
  client then asks for the scopes again: step-up).
- **Access tokens.** A JWT is checked with PyJWT against the issuer's published keys
  (jwks.py): the algorithm on the issuer's allowlist (asymmetric only; never `none`, never
  HMAC), the key found by `kid` and bound to that algorithm, the signature, `iss` exactly
  the issuer, `aud` containing this server's resource URI (RFC 8707: a token minted for
  another resource is refused), `exp`, `nbf` and `iat` with the issuer's leeway, and a
  `sub`. A token that is not a JWT is introspected (RFC 7662) at an issuer that allows it;
  the answer must be active, name the issuer (if it names one) and this resource.
- **Claims → principal** (`map_claims`): the configured claims become typed attributes
  (String, Long, Bool, Set<String>), a groups claim the principal's groups, the scope claim
  its scopes. A claim of another type is left out (the policy then sees no attribute; a
  required one denies the call) and logged by name only.

Validated tokens are cached by their SHA-256 (never the token itself), at most
CACHE_SIZE, each until its `exp` (introspection answers also at most
`introspection_cache_seconds`), so a caller pays for validation once per token.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

import jwt

from .jwks import IdPUnavailable, IssuerClient
from .oauth_config import ClaimMap, IssuerConfig, ServerOAuth, subject_prefix
from .principals import Identity

CACHE_SIZE = 10_000
V = TypeVar("V")  # what a TokenCache holds per token
MAX_CACHE_SECONDS = 3600.0  # a validated token is checked again at least this often (keys may have been withdrawn)
MAX_SUBJECT = 256  # characters of a `sub`
MAX_GROUPS = 1000
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1


class AuthFailure(Exception):
    """A request that does not get in: `status` 401 or 403, the RFC 6750 `error`, a
    description for the client (never a token or a claim value) and a metrics reason."""

    def __init__(self, status: int, error: str | None, description: str, reason: str):
        super().__init__(description)
        self.status, self.error, self.description, self.reason = status, error, description, reason


def _invalid(description: str, reason: str) -> AuthFailure:
    return AuthFailure(401, "invalid_token", description, reason)


# ---- claims ------------------------------------------------------------------------------

_MISSING = object()


def read_claim(claims: dict, path: tuple[str, ...]):
    cur = claims
    for name in path:
        if not isinstance(cur, dict) or name not in cur:
            return _MISSING
        cur = cur[name]
    return cur


def _kind(v) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "an object", type(None): "null"}.get(type(v), type(v).__name__)


def typed_claim(value, typ: str):
    """The claim as a value of the attribute type, or (None, why) when it is not one. No
    conversion between types (a string "1000" is not a Long); a space-separated string is
    a Set<String> (as OAuth's `scope`)."""
    if typ == "String":
        return (value, None) if isinstance(value, str) else (None, f"expected a string, got {_kind(value)}")
    if typ == "Long":
        if type(value) is int and LONG_MIN <= value <= LONG_MAX:
            return value, None
        if type(value) is float and value.is_integer() and LONG_MIN <= value <= LONG_MAX:
            return int(value), None
        if type(value) is int:
            return None, "expected a 64-bit integer, got an integer out of range"
        return None, f"expected a 64-bit integer, got {_kind(value)}"
    if typ == "Bool":
        return (value, None) if isinstance(value, bool) else (None, f"expected a boolean, got {_kind(value)}")
    if isinstance(value, str):
        return sorted(set(value.split())), None
    if isinstance(value, list):
        bad = next((i for i, x in enumerate(value) if not isinstance(x, str)), None)
        if bad is None:
            return sorted(set(value)), None
        # which element, and what it is; never its value (claims may be private)
        return None, f"expected an array of strings, got an array whose element [{bad}] is {_kind(value[bad])}"
    return None, f"expected an array of strings, got {_kind(value)}"


def string_set(value) -> frozenset[str] | None:
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return frozenset(value)
    return None


def map_claims(oauth: ServerOAuth, claims: dict, on_problem=None) -> tuple[dict, frozenset[str], frozenset[str]]:
    """(attributes, groups, scopes) from a token's claims, as the server's mapping says.
    `on_problem(attribute_or_what, claim_path, why)` hears of each claim left out (never
    its value)."""
    attrs: dict = {}
    for m in oauth.claims:
        v = read_claim(claims, m.claim)
        if v is _MISSING or v is None:
            continue
        typed, why = typed_claim(v, m.type)
        if why is not None:
            if on_problem is not None:
                on_problem(m.attribute, m.claim, why)
            continue
        attrs[m.attribute] = typed
    groups: frozenset[str] = frozenset()
    if oauth.groups_claim is not None:
        v = read_claim(claims, oauth.groups_claim)
        if v is not _MISSING and v is not None:
            g = string_set(v)
            if g is None or len(g) > MAX_GROUPS:
                if on_problem is not None:
                    on_problem("groups", oauth.groups_claim, f"expected at most {MAX_GROUPS} strings, got {_kind(v)}")
            else:
                groups = g
    v = read_claim(claims, oauth.scope_claim)
    scopes = string_set(v) if v is not _MISSING else None
    return attrs, groups, scopes or frozenset()


# ---- the cache -------------------------------------------------------------------------------

class TokenCache(Generic[V]):
    """Validated tokens by SHA-256: bounded (least recently used out), each entry dropped at
    its expiry. Holds an Identity per access token, or (the gateway's token exchange) the
    upstream token it was exchanged for."""

    def __init__(self, size: int = CACHE_SIZE):
        self.size = size
        self._d: OrderedDict[bytes, tuple[V, float]] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, digest: bytes) -> V | None:
        hit = self._d.get(digest)
        if hit is None:
            self.misses += 1
            return None
        identity, until = hit
        if time.time() >= until:
            del self._d[digest]
            self.misses += 1
            return None
        self._d.move_to_end(digest)
        self.hits += 1
        return identity

    def put(self, digest: bytes, identity: V, until: float) -> None:
        self._d[digest] = (identity, until)
        self._d.move_to_end(digest)
        while len(self._d) > self.size:
            self._d.popitem(last=False)

    def __len__(self) -> int:
        return len(self._d)


# ---- one server ------------------------------------------------------------------------------

@dataclass
class _Trusted:
    cfg: IssuerConfig
    client: IssuerClient
    prefix: str


class ResourceServer:
    """One server's resource-server side: metadata, challenges, token validation."""

    def __init__(self, server_id: str, oauth: ServerOAuth, clients: dict[str, IssuerClient], log=None, metrics=None):
        self.server_id = server_id
        self.oauth = oauth
        self.log, self.metrics = log, metrics
        n = len(oauth.issuers)
        self.trusted = [_Trusted(clients[name].cfg, clients[name], subject_prefix(clients[name].cfg, n))
                        for name in oauth.issuers]
        self.by_iss = {t.cfg.issuer: t for t in self.trusted}
        self.algorithms = sorted({a for t in self.trusted for a in t.cfg.algorithms})
        r = oauth.resource
        self.audiences = [r, r.rstrip("/")] if r.endswith("/") else [r, r + "/"]
        self.cache: TokenCache[Identity] = TokenCache()
        self.metadata_url = oauth.metadata_url()
        self._required = frozenset(oauth.required_scopes)

    # -- RFC 9728 --------------------------------------------------------------------------
    def metadata_document(self) -> dict:
        doc = {
            "resource": self.oauth.resource,
            "authorization_servers": [t.cfg.issuer for t in self.trusted],
            "bearer_methods_supported": ["header"],
        }
        if self.oauth.scopes_supported:
            doc["scopes_supported"] = list(self.oauth.scopes_supported)
        doc["resource_name"] = self.oauth.resource_name or f"mcpp gateway: {self.server_id}"
        return doc

    # -- RFC 6750 challenges ------------------------------------------------------------------
    def challenge(self, failure: AuthFailure | None) -> bytes:
        """The `WWW-Authenticate` value: no error without a token; `invalid_token` or
        `insufficient_scope` (with the scopes to ask for) otherwise."""
        parts = []
        if failure is not None and failure.error:
            parts.append(f'error="{failure.error}"')
            parts.append(f'error_description="{_quoted(failure.description)}"')
        if self.oauth.required_scopes and (failure is None or failure.error in (None, "insufficient_scope")):
            parts.append(f'scope="{" ".join(self.oauth.required_scopes)}"')
        parts.append(f'resource_metadata="{self.metadata_url}"')
        return ("Bearer " + ", ".join(parts)).encode()

    def check_scopes(self, identity: Identity) -> None:
        missing = self._required - identity.scopes
        if missing:
            raise AuthFailure(403, "insufficient_scope",
                              f"this server needs the scope{'s' if len(missing) > 1 else ''} {' '.join(sorted(missing))}",
                              "insufficient_scope")

    # -- validation ---------------------------------------------------------------------------
    async def authenticate(self, token: str) -> Identity:
        """The identity the token stands for on this server (cached; `check_scopes` next).
        AuthFailure when it is not valid here; IdPUnavailable when it cannot be checked."""
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        identity = self.cache.get(digest)
        if identity is None:
            identity, until = await self._validate(token)
            self.cache.put(digest, identity, min(until, time.time() + MAX_CACHE_SECONDS))
            if self.log is not None and self.log.enabled("debug"):
                self.log.debug("token_validated", server=self.server_id, issuer=identity.issuer,
                               subject=identity.user_id if not identity.subject_private else "(private)",
                               client_id=identity.client_id, via=identity.via, attributes=identity.public_attrs(),
                               groups=None if identity.groups_private else sorted(identity.groups))
        return identity

    async def _validate(self, token: str) -> tuple[Identity, float]:
        if token.count(".") == 2:
            return await self._jwt(token)
        intro = [t for t in self.trusted if t.cfg.introspection]
        if not intro:
            raise _invalid("the access token is not a JWT", "malformed_token")
        return await self._introspect(token, intro)

    async def _jwt(self, token: str) -> tuple[Identity, float]:
        try:
            parts = jwt.decode_complete(token, options={"verify_signature": False})  # to route by iss and kid
            header, unverified = parts["header"], parts["payload"]
        except jwt.PyJWTError:
            raise _invalid("the access token is not a well-formed JWT", "malformed_token") from None
        alg = header.get("alg")
        iss = unverified.get("iss")
        t = self.by_iss.get(iss) if isinstance(iss, str) else None
        if t is None:
            raise _invalid("the access token's issuer is not trusted by this server", "untrusted_issuer")
        if not isinstance(alg, str) or alg not in t.cfg.algorithms:
            raise _invalid("the access token's signing algorithm is not allowed", "algorithm")
        kid = header.get("kid")
        if kid is not None and (not isinstance(kid, str) or len(kid) > 256):
            raise _invalid("the access token's key id is not usable", "malformed_token")
        key = await t.client.signing_key(kid, alg)
        if key is None:
            raise _invalid("the access token is signed with a key its issuer does not publish", "unknown_key")
        try:
            claims = jwt.decode(
                token, key=key, algorithms=[alg], audience=self.audiences, issuer=t.cfg.issuer, leeway=t.cfg.leeway,
                options={"require": ["exp", "iss", "aud", "sub"], "verify_signature": True, "verify_exp": True,
                         "verify_nbf": True, "verify_iat": True, "verify_aud": True, "verify_iss": True},
            )
        except jwt.ExpiredSignatureError:
            raise _invalid("the access token has expired", "expired") from None
        except jwt.ImmatureSignatureError:
            raise _invalid("the access token is not valid yet", "not_yet_valid") from None
        except jwt.InvalidAudienceError:
            raise _invalid("the access token was not issued for this resource", "wrong_audience") from None
        except jwt.InvalidIssuerError:
            raise _invalid("the access token's issuer is not trusted by this server", "untrusted_issuer") from None
        except jwt.InvalidSignatureError:
            raise _invalid("the access token's signature does not verify", "bad_signature") from None
        except jwt.MissingRequiredClaimError as e:
            raise _invalid(f"the access token has no {e.claim!r} claim", "missing_claim") from None
        except jwt.PyJWTError as e:
            raise _invalid(f"the access token is invalid ({type(e).__name__})", "invalid") from None
        exp = claims["exp"]
        return self._identity(t, claims, "jwt"), float(exp)

    async def _introspect(self, token: str, trusted: list[_Trusted]) -> tuple[Identity, float]:
        for t in trusted:
            answer = await t.client.introspect(token)
            if answer.get("active") is not True:
                continue
            iss = answer.get("iss")
            if iss is not None and iss != t.cfg.issuer:
                raise _invalid("the access token's issuer is not trusted by this server", "untrusted_issuer")
            aud = answer.get("aud")
            auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
            if not any(a in self.audiences for a in auds):
                raise _invalid("the access token was not issued for this resource", "wrong_audience")
            now = time.time()
            exp = answer.get("exp")
            if isinstance(exp, (int, float)) and not isinstance(exp, bool):
                if exp + t.cfg.leeway <= now:
                    raise _invalid("the access token has expired", "expired")
            else:
                exp = None
            nbf = answer.get("nbf")
            if isinstance(nbf, (int, float)) and not isinstance(nbf, bool) and nbf - t.cfg.leeway > now:
                raise _invalid("the access token is not valid yet", "not_yet_valid")
            until = now + t.cfg.introspection_cache_seconds
            if exp is not None:
                until = min(until, float(exp))
            return self._identity(t, answer, "introspection", exp), until
        raise _invalid("the access token is not active", "inactive")

    def _identity(self, t: _Trusted, claims: dict, via: str, exp=_MISSING) -> Identity:
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub or len(sub) > MAX_SUBJECT or any(ord(c) < 32 for c in sub):
            raise _invalid("the access token's subject is missing or not usable", "missing_claim")
        client = claims.get("client_id", claims.get("azp"))
        client = client[:128] if isinstance(client, str) else None

        def problem(what, path, why):
            if self.log is not None:
                self.log.warning("claim_unusable", server=self.server_id, issuer=t.cfg.name, attribute=what,
                                 claim=".".join(path), why=why)

        attrs, groups, scopes = map_claims(self.oauth, claims, problem)
        private = frozenset(m.attribute for m in self.oauth.claims if self.oauth.attribute_private(m))
        e = claims.get("exp") if exp is _MISSING else exp
        return Identity(
            issuer=t.cfg.issuer, issuer_name=t.cfg.name, subject=sub, user_id=t.prefix + sub, client_id=client,
            scopes=scopes, groups=groups, attrs=attrs, private=private, subject_private=self.oauth.subject_private,
            groups_private=self.oauth.groups_private, expires_at=float(e) if isinstance(e, (int, float)) else None, via=via,
        )


def _quoted(text: str) -> str:
    """Text safe inside an RFC 6750 quoted-string (our own descriptions; belt and braces)."""
    return "".join(c for c in text if c not in '"\\' and 32 <= ord(c) < 127)


__all__ = ["AuthFailure", "ClaimMap", "IdPUnavailable", "ResourceServer", "TokenCache", "map_claims", "typed_claim"]
