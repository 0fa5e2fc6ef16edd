"""Identity peers: the authorization server (fixtures/auth_server.py) in a subprocess, the
gateway config that trusts it, and the SDK client's OAuth flow driven without a browser.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx2

from .peers import HERE, Proc, free_port, wait_http, write

AUTH_SERVER = HERE / "fixtures" / "auth_server.py"
GATEWAY_CLIENT = ("mcpp-gateway", "gw-secret-0123456789")


class AuthServer:
    """A real authorization server (the SDK's handlers, JWTs signed with PyJWT)."""

    def __init__(self, tmp: Path, discovery: str = "oauth"):
        self.port = free_port()
        args = [sys.executable, str(AUTH_SERVER), "--port", str(self.port), "--discovery", discovery,
                "--gateway-client", ":".join(GATEWAY_CLIENT)]
        self.proc = Proc(args, tmp / f"auth-{self.port}.log")
        self.base = f"http://127.0.0.1:{self.port}"
        wait_http(f"{self.base}/control/stats", self.proc.p, log=self.proc.log)
        self.issuer = self.stats()["issuer"]

    def _post(self, path: str, body: dict | None = None) -> dict:
        r = httpx2.post(f"{self.base}/control/{path}", json=body or {}, timeout=10)
        r.raise_for_status()
        return r.json()

    def stats(self) -> dict:
        return httpx2.get(f"{self.base}/control/stats", timeout=10).json()

    def user(self, sub: str, **claims) -> None:
        self._post("user", {"sub": sub, "claims": claims})

    def rotate(self, alg: str = "RS256", drop_old: bool = False) -> str:
        return self._post("rotate", {"alg": alg, "drop_old": drop_old})["kid"]

    def mint(self, claims: dict | None = None, *, omit=(), headers=None, alg=None, key=None) -> str:
        body = {"claims": claims or {}, "omit": list(omit), "headers": headers}
        if alg:
            body["alg"] = alg
        if key:
            body["key"] = key
        return self._post("mint", body)["token"]

    def mint_opaque(self, claims: dict) -> str:
        return self._post("mint-opaque", {"claims": claims})["token"]

    def revoke(self, token: str) -> None:
        self._post("revoke", {"token": token})

    def public_pem(self) -> bytes:
        return httpx2.get(f"{self.base}/control/public-pem", timeout=10).content

    def stop(self) -> None:
        self.proc.stop()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict, claims: dict, signer=None) -> str:
    """A token put together by hand, as an attacker would: `signer(signing_input)` gives
    the signature bytes (None: an empty signature, as `alg: none` has)."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    sig = signer(signing_input.encode()) if signer is not None else b""
    return f"{signing_input}.{b64url(sig)}"


def hs256_with(key: bytes):
    return lambda data: hmac.new(key, data, hashlib.sha256).digest()


def oauth_config(tmp: Path, auth: AuthServer, upstream_url: str, policy: Path, port: int, *, server_id: str = "pay",
                 extra_server: str = "", extra_issuer: str = "", oauth: str = "", claims: str = "") -> Path:
    """A gateway config: one HTTP server behind OAuth, trusting `auth`."""
    text = f"""
[gateway]
port = {port}
state_dir = "state"
reload_interval = 0.2

[issuers.local]
issuer = "{auth.issuer}"
jwks_refresh_min_seconds = 0
client_id = "{GATEWAY_CLIENT[0]}"
client_secret_env = "MCPP_TEST_GW_SECRET"
{extra_issuer}

[[servers]]
id = "{server_id}"
url = "{upstream_url}"
policy = "{policy.name}"
{extra_server}

[servers.oauth]
resource = "http://127.0.0.1:{port}/mcp/{server_id}"
issuers = ["local"]
{oauth}

[servers.oauth.claims]
{claims}
"""
    return write(tmp / "gateway.toml", text)


def gateway_env() -> dict:
    import os

    return dict(os.environ, MCPP_TEST_GW_SECRET=GATEWAY_CLIENT[1])


class MemoryStorage:
    """The SDK client's token storage, in memory."""

    def __init__(self):
        self.tokens = None
        self.client_info = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens) -> None:
        self.tokens = tokens

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info) -> None:
        self.client_info = client_info


def sdk_oauth(server_url: str, scope: str | None = None):
    """The official SDK's `OAuthClientProvider` with the browser step done by an HTTP GET
    of the authorization URL: the authorization server approves at once and redirects to
    the client's redirect URI, whose `code` and `state` the callback hands back."""
    from mcp.client.auth import OAuthClientProvider
    from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata

    redirect = "http://127.0.0.1:1/callback"
    seen: dict = {}

    async def redirect_handler(url: str) -> None:
        seen["authorize_url"] = url
        async with httpx2.AsyncClient(follow_redirects=False, timeout=10) as h:
            r = await h.get(url)
        assert r.status_code in (302, 303, 307), (r.status_code, r.text)
        seen["location"] = r.headers["location"]

    async def callback_handler():
        q = parse_qs(urlsplit(seen["location"]).query)
        return AuthorizationCodeResult(code=q["code"][0], state=q.get("state", [None])[0], iss=q.get("iss", [None])[0])

    meta = OAuthClientMetadata(redirect_uris=[redirect], client_name="mcpp-test", grant_types=["authorization_code", "refresh_token"],
                               response_types=["code"], token_endpoint_auth_method="none", scope=scope)
    storage = MemoryStorage()
    provider = OAuthClientProvider(server_url, meta, storage, redirect_handler, callback_handler)
    return provider, storage, seen
