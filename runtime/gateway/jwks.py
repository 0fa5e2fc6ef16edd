"""Talking to a trusted issuer: its metadata, its signing keys, introspection and token
exchange — asynchronously, bounded, cached, and failing closed.

Nothing here runs on the event loop's time: every request to an issuer is awaited with
a deadline (`timeout`, 5 s), its answer is read up to `max_response_bytes` (256 KiB) and
no further, redirects are never followed, and a failure raises `IdPUnavailable`, which
the gateway answers with 503 (a token that cannot be checked never gets in). Concurrent
requests that need the same document share one fetch.

Metadata (RFC 8414, then OpenID Connect discovery) must name exactly the configured
issuer (RFC 8414 §3.3). The key set (RFC 7517) is re-fetched when older than
`jwks_cache_seconds`, and when a token names a `kid` it does not hold — at most once per
`jwks_refresh_min_seconds`, so tokens with made-up key ids cannot make the gateway hammer
the issuer. A failed refresh keeps the keys it had for at most STALE_GRACE seconds past
their age. Symmetric keys (`kty: oct`) and encryption keys (`use: enc`) are ignored:
a resource server verifies signatures with public keys only.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from urllib.parse import quote, urlsplit

import jwt

from .oauth_config import IssuerConfig, OAuthConfigError, TokenExchange, check_url

METADATA_TTL = 3600.0  # seconds issuer metadata is reused
STALE_GRACE = 3600.0  # seconds past jwks_cache_seconds that keys survive failed refreshes
RETRY_AFTER = 5.0  # seconds after a failed fetch before another is tried (requests meanwhile fail at once)
MAX_KEYS = 100  # keys of one set that are considered
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


class IdPUnavailable(Exception):
    """The issuer could not be reached, or answered something unusable: fail closed."""


class Fetcher:
    """Bounded HTTP to issuers: one pooled client, no redirects, a deadline and a size cap
    per request, JSON objects only."""

    def __init__(self):
        self._client = None

    def _http(self):
        if self._client is None:
            import httpx2

            # trust_env: the operator's HTTPS_PROXY / SSL_CERT_FILE apply (an IdP behind a proxy or a private CA)
            self._client = httpx2.AsyncClient(follow_redirects=False, trust_env=True,
                                              limits=httpx2.Limits(max_connections=32, max_keepalive_connections=8))
        return self._client

    async def json(self, method: str, url: str, *, timeout: float, max_bytes: int, data: dict | None = None,
                   headers: dict | None = None) -> tuple[int, dict | None]:
        """(status, the body as a JSON object or None). IdPUnavailable on a network error,
        a timeout, or a body over `max_bytes`."""
        import httpx2

        h = {"accept": "application/json", **(headers or {})}
        try:
            async with asyncio.timeout(timeout):
                async with self._http().stream(method, url, data=data, headers=h, timeout=timeout) as r:
                    declared = r.headers.get("content-length")
                    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
                        raise IdPUnavailable(f"{url}: the answer is larger than {max_bytes} bytes")
                    parts, size = [], 0
                    async for chunk in r.aiter_bytes():
                        size += len(chunk)
                        if size > max_bytes:
                            raise IdPUnavailable(f"{url}: the answer is larger than {max_bytes} bytes")
                        parts.append(chunk)
                    status = r.status_code
        except TimeoutError:
            raise IdPUnavailable(f"{url}: no answer within {timeout:g}s") from None
        except httpx2.HTTPError as e:
            raise IdPUnavailable(f"{url}: {type(e).__name__}: {e}") from None
        try:
            body = json.loads(b"".join(parts))
        except ValueError:
            body = None
        return status, body if isinstance(body, dict) else None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def discovery_urls(issuer: str) -> list[str]:
    """Where an issuer's metadata may be, in the order the MCP authorization spec gives:
    RFC 8414 (path inserted), OpenID Connect with the path inserted, then appended."""
    u = urlsplit(issuer)
    origin = f"{u.scheme}://{u.netloc}"
    path = u.path.rstrip("/")
    if path:
        return [f"{origin}/.well-known/oauth-authorization-server{path}",
                f"{origin}/.well-known/openid-configuration{path}",
                f"{origin}{path}/.well-known/openid-configuration"]
    return [f"{origin}/.well-known/oauth-authorization-server", f"{origin}/.well-known/openid-configuration"]


class _Once:
    """Single flight: concurrent callers of `run(key, make)` share one call of `make()`."""

    def __init__(self):
        self._running: dict = {}

    async def run(self, key, make):
        fut = self._running.get(key)
        if fut is None:
            fut = asyncio.ensure_future(make())
            self._running[key] = fut
            fut.add_done_callback(lambda _f: self._running.pop(key, None))
        return await asyncio.shield(fut)


class IssuerClient:
    """One trusted issuer: metadata, keys, introspection and exchange, cached."""

    def __init__(self, cfg: IssuerConfig, fetcher: Fetcher, log=None, metrics=None):
        self.cfg = cfg
        self.fetcher = fetcher
        self.log, self.metrics = log, metrics
        self._meta: dict | None = None
        self._meta_at = float("-inf")
        self._meta_failed: tuple[float, str] | None = None  # (when, why) the last metadata fetch failed
        self._keys: list[dict] | None = None
        self._keys_at = float("-inf")  # when the keys in hand were fetched
        self._tried_at = float("-inf")  # when a fetch was last attempted
        self._pyjwk: dict = {}  # (index in the set, alg) → PyJWK, for the keys in hand
        self._once = _Once()

    # -- plumbing ---------------------------------------------------------------------------
    def _count(self, what: str, result: str) -> None:
        if self.metrics is not None:
            self.metrics.inc("mcpp_idp_requests_total", (("issuer", self.cfg.name), ("what", what), ("result", result)))

    async def _get(self, what: str, url: str) -> tuple[int, dict | None]:
        try:
            status, body = await self.fetcher.json("GET", url, timeout=self.cfg.timeout, max_bytes=self.cfg.max_response_bytes)
        except IdPUnavailable:
            self._count(what, "error")
            raise
        self._count(what, str(status))
        return status, body

    def _client_auth(self, data: dict) -> dict:
        """The gateway's client credentials for a token-endpoint-style request (RFC 6749 §2.3.1)."""
        c = self.cfg.client
        if c is None:
            raise IdPUnavailable(f"issuer {self.cfg.name}: no client_id configured for the gateway")
        secret = c.secret.resolve(f"issuers.{self.cfg.name}.client_secret")
        if c.method == "client_secret_post":
            data.update(client_id=c.client_id, client_secret=secret)
            return {}
        # client_id is also in the body (RFC 6749 §3.2.1 allows it; some servers, the SDK's among
        # them, look the client up by it)
        data["client_id"] = c.client_id
        pair = f"{quote(c.client_id, safe='')}:{quote(secret, safe='')}".encode()
        return {"authorization": "Basic " + base64.b64encode(pair).decode()}

    # -- metadata ---------------------------------------------------------------------------
    async def metadata(self) -> dict:
        now = time.monotonic()
        if self._meta is not None and now - self._meta_at < METADATA_TTL:
            return self._meta
        failed = self._meta_failed
        if failed is not None and now - failed[0] < RETRY_AFTER:
            if self._meta is not None:
                return self._meta
            raise IdPUnavailable(failed[1])
        try:
            meta = await self._once.run("meta", self._fetch_metadata)
        except IdPUnavailable as e:
            self._meta_failed = (time.monotonic(), str(e))
            if self.log is not None:
                self.log.warning("idp_metadata_failed", issuer=self.cfg.name, error=str(e))
            if self._meta is not None:  # keep what the issuer said last, rather than lock everyone out
                return self._meta
            raise
        self._meta_failed = None
        return meta

    async def _fetch_metadata(self) -> dict:
        urls = [self.cfg.metadata_url] if self.cfg.metadata_url else discovery_urls(self.cfg.issuer)
        for url in urls:
            status, body = await self._get("metadata", url)
            if status in (404, 405, 410) or (status == 400 and body is None):
                continue  # not published here: try the next well-known location
            if status != 200 or body is None:
                raise IdPUnavailable(f"{url}: HTTP {status}" + ("" if body is not None else ", not a JSON object"))
            if body.get("issuer") != self.cfg.issuer:
                raise IdPUnavailable(f"{url}: the metadata names issuer {str(body.get('issuer'))[:200]!r}, "
                                     f"not {self.cfg.issuer!r} (RFC 8414 §3.3)")
            self._meta, self._meta_at = body, time.monotonic()
            return body
        raise IdPUnavailable(f"issuer {self.cfg.issuer}: no metadata at {', '.join(urls)}")

    async def endpoint(self, key: str, configured: str | None = None) -> str:
        """An endpoint URL from the configuration or the metadata, checked like the config's."""
        url = configured if configured is not None else (await self.metadata()).get(key)
        if not isinstance(url, str):
            raise IdPUnavailable(f"issuer {self.cfg.name}: its metadata has no {key}")
        try:
            return check_url(url, f"issuer {self.cfg.name} {key}", allow_query=True)
        except OAuthConfigError as e:
            raise IdPUnavailable(str(e)) from None

    # -- keys -------------------------------------------------------------------------------
    async def _fetch_keys(self) -> None:
        self._tried_at = time.monotonic()
        url = await self.endpoint("jwks_uri", self.cfg.jwks_uri)
        status, body = await self._get("jwks", url)
        keys = body.get("keys") if body is not None and status == 200 else None
        if not isinstance(keys, list):
            raise IdPUnavailable(f"{url}: HTTP {status}, not a JWK set")
        usable = [k for k in keys if isinstance(k, dict) and k.get("kty") not in (None, "oct") and k.get("use") in (None, "sig")]
        if len(usable) > MAX_KEYS and self.log is not None:
            self.log.warning("jwks_truncated", issuer=self.cfg.name, keys=len(usable), kept=MAX_KEYS)
        self._keys, self._keys_at, self._pyjwk = usable[:MAX_KEYS], time.monotonic(), {}
        if self.log is not None:
            self.log.info("jwks_fetched", issuer=self.cfg.name, keys=len(self._keys),
                          kids=[str(k.get("kid"))[:64] for k in self._keys[:20]])

    async def _refresh(self) -> None:
        try:
            await self._once.run("keys", self._fetch_keys)
        except IdPUnavailable as e:
            if self.log is not None:
                self.log.warning("jwks_refresh_failed", issuer=self.cfg.name, error=str(e))
            age = time.monotonic() - self._keys_at
            if self._keys is None or age > self.cfg.jwks_cache_seconds + STALE_GRACE:
                self._keys = None
                raise

    def _find(self, kid, alg: str):
        """The key for a token's (`kid`, `alg`), as a PyJWK bound to `alg`; None if the set
        has none. Without a `kid`, the set must hold exactly one key usable with `alg`."""
        found = []
        for i, k in enumerate(self._keys or ()):
            if kid is not None and k.get("kid") != kid:
                continue
            if k.get("alg") not in (None, alg):
                continue
            hit = self._pyjwk.get((i, alg))
            if hit is None:
                try:
                    hit = jwt.PyJWK(k, algorithm=alg)  # a key of another type refuses the algorithm
                except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError):
                    continue
                self._pyjwk[(i, alg)] = hit
            found.append(hit)
        return found[0] if len(found) == 1 else None

    async def signing_key(self, kid, alg: str):
        """The issuer's key for this token header, or None. IdPUnavailable when the key set
        cannot be had at all."""
        now = time.monotonic()
        if self._keys is None or now - self._keys_at > self.cfg.jwks_cache_seconds:
            if now - self._tried_at >= RETRY_AFTER:
                await self._refresh()
            elif self._keys is None or now - self._keys_at > self.cfg.jwks_cache_seconds + STALE_GRACE:
                raise IdPUnavailable(f"issuer {self.cfg.name}: its keys could not be fetched (retrying shortly)")
        key = self._find(kid, alg)
        if key is None and time.monotonic() - self._tried_at >= self.cfg.jwks_refresh_min_seconds:
            # an unknown kid: the issuer may have rotated its keys (rate-limited)
            await self._refresh()
            key = self._find(kid, alg)
        return key

    @property
    def keys_fetched(self) -> bool:
        return self._keys is not None

    # -- RFC 7662 introspection ---------------------------------------------------------------
    async def introspect(self, token: str) -> dict:
        url = await self.endpoint("introspection_endpoint", self.cfg.introspection_endpoint)
        data = {"token": token, "token_type_hint": "access_token"}
        headers = self._client_auth(data)
        try:
            status, body = await self.fetcher.json("POST", url, data=data, headers=headers, timeout=self.cfg.timeout,
                                                   max_bytes=self.cfg.max_response_bytes)
        except IdPUnavailable:
            self._count("introspection", "error")
            raise
        self._count("introspection", str(status))
        if status != 200 or body is None or not isinstance(body.get("active"), bool):
            raise IdPUnavailable(f"{url}: HTTP {status}, not an introspection answer")
        return body

    # -- RFC 8693 token exchange --------------------------------------------------------------
    async def exchange(self, subject_token: str, ex: TokenExchange) -> tuple[str, float | None]:
        """A token for the upstream, obtained with the caller's token as the subject token:
        (access_token, its lifetime in seconds or None)."""
        url = await self.endpoint("token_endpoint")
        data = {"grant_type": TOKEN_EXCHANGE, "subject_token": subject_token, "subject_token_type": ACCESS_TOKEN_TYPE,
                "requested_token_type": ACCESS_TOKEN_TYPE}
        for k in ("audience", "resource", "scope"):
            v = getattr(ex, k)
            if v is not None:
                data[k] = v
        headers = self._client_auth(data)
        try:
            status, body = await self.fetcher.json("POST", url, data=data, headers=headers, timeout=self.cfg.timeout,
                                                   max_bytes=self.cfg.max_response_bytes)
        except IdPUnavailable:
            self._count("token_exchange", "error")
            raise
        self._count("token_exchange", str(status))
        tok = body.get("access_token") if body is not None else None
        if status != 200 or not isinstance(tok, str) or not tok or any(c in tok for c in "\r\n\0 "):
            err = body.get("error") if body is not None else None
            raise IdPUnavailable(f"{url}: token exchange refused: HTTP {status}" + (f" {str(err)[:100]}" if err else ""))
        assert body is not None  # the token came from it
        life = body.get("expires_in")
        return tok, float(life) if isinstance(life, (int, float)) and not isinstance(life, bool) and life > 0 else None
