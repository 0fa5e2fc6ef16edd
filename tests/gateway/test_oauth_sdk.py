"""The official SDK client going through its own OAuth flow to a tool behind `mcpp serve`.

`mcp.client.auth.OAuthClientProvider` (the SDK 2.x client auth provider) is given only the
gateway's URL: it gets the 401, reads `resource_metadata` from the challenge, fetches the
gateway's Protected Resource Metadata, discovers the authorization server's metadata,
registers itself (RFC 7591), authorizes with PKCE and the RFC 8707 `resource`, exchanges
the code for a token and calls the tool — in both protocol eras (`mode="auto"`:
2026-07-28; `mode="legacy"`: 2025-11-25 with a session). The browser step is an HTTP GET
of the authorization URL (the test authorization server approves at once).
"""

from __future__ import annotations

import sqlite3

import httpx2
import jwt
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthToken

from .oauth_peers import AuthServer, gateway_env, oauth_config, sdk_oauth
from .peers import Gateway, free_port, write

MODES = ["auto", "legacy"]
POLICY = """
default deny;
permit (principal, action == Action::"echo", resource);
permit (principal in Group::"sre", action == Action::"delete_pod", resource);
"""


def _gateway(tmp, auth, upstream) -> Gateway:
    port = free_port()
    policy = write(tmp / "policy.mcpp", POLICY)
    cfg = oauth_config(tmp, auth, upstream.url, policy, port, oauth='required_scopes = ["mcp"]\ngroups_claim = "groups"',
                       claims='email = { claim = "email", type = "String" }')
    return Gateway(tmp, ["--config", str(cfg)], port, tmp / "state", env=gateway_env())


@pytest.fixture(scope="module")
def peers(tmp_path_factory, upstream):
    tmp = tmp_path_factory.mktemp("sdk-oauth")
    auth = AuthServer(tmp)
    g = _gateway(tmp, auth, upstream)
    yield auth, g
    g.stop()
    auth.stop()


@pytest.mark.parametrize("mode", MODES)
async def test_sdk_client_oauth_flow_reaches_the_tool(peers, upstream, mode):
    auth, g = peers
    auth.user(f"user-{mode}", email=f"{mode}@acme.test", groups=["sre"])
    provider, storage, seen = sdk_oauth(g.url("pay"))
    before = len(upstream.ran())
    http = httpx2.AsyncClient(auth=provider, timeout=httpx2.Timeout(30.0))
    async with http, Client(streamable_http_client(g.url("pay"), http_client=http), mode=mode) as c:
        assert c.protocol_version == ("2026-07-28" if mode == "auto" else "2025-11-25")
        r = await c.call_tool("echo", {"text": f"hello {mode}"})
        assert not r.is_error and r.content[0].text == f"hello {mode}"
        r = await c.call_tool("delete_pod", {"namespace": "dev", "name": "p1"})  # the groups claim: sre
        assert not r.is_error, r
        names = {t.name for t in (await c.list_tools()).tools}
        assert names == {"echo", "delete_pod"}
    # the flow the SDK went through: the challenge's scope and this server's resource
    url = seen["authorize_url"]
    assert url.startswith(auth.base + "/authorize?")
    assert "scope=mcp" in url and "resource=" + f"http%3A%2F%2F127.0.0.1%3A{g.port}%2Fmcp%2Fpay" in url
    claims = jwt.decode(storage.tokens.access_token, options={"verify_signature": False})
    assert claims["aud"] == f"http://127.0.0.1:{g.port}/mcp/pay" and claims["sub"] == f"user-{mode}"
    assert storage.client_info is not None  # registered dynamically (RFC 7591)
    assert [x["tool"] for x in upstream.ran()[before:]] == ["echo", "delete_pod"]
    rows = sqlite3.connect(g.state / "audit.db").execute(
        "SELECT tool, decision, issuer, subject FROM audit WHERE subject = ?", (f"user-{mode}",)).fetchall()
    assert rows == [("echo", "allow", auth.issuer, f"user-{mode}"), ("delete_pod", "allow", auth.issuer, f"user-{mode}")]


@pytest.mark.parametrize("mode", MODES)
async def test_sdk_client_steps_up_on_insufficient_scope(peers, mode):
    """A stored token without the server's scope: the gateway answers 403 insufficient_scope
    with `scope="mcp"`, and the SDK client authorizes again for it (SEP-835 step-up)."""
    auth, g = peers
    auth.user(f"stepper-{mode}")
    provider, storage, seen = sdk_oauth(g.url("pay"))
    weak = auth.mint({"sub": f"stepper-{mode}", "aud": f"http://127.0.0.1:{g.port}/mcp/pay", "scope": "profile"})
    storage.tokens = OAuthToken(access_token=weak, token_type="Bearer", expires_in=600, scope="profile")
    authorized = auth.stats()["authorize"]
    http = httpx2.AsyncClient(auth=provider, timeout=httpx2.Timeout(30.0))
    async with http, Client(streamable_http_client(g.url("pay"), http_client=http), mode=mode) as c:
        r = await c.call_tool("echo", {"text": "stepped up"})
        assert not r.is_error and r.content[0].text == "stepped up"
    assert auth.stats()["authorize"] == authorized + 1
    assert "mcp" in storage.tokens.scope.split() and storage.tokens.access_token != weak


async def test_sdk_client_with_oidc_discovery(tmp_path, upstream):
    """An issuer that publishes only OpenID Connect discovery metadata: the gateway finds its
    keys there, and the SDK client its endpoints."""
    auth = AuthServer(tmp_path, discovery="oidc")
    g = _gateway(tmp_path, auth, upstream)
    try:
        assert httpx2.get(auth.base + "/.well-known/oauth-authorization-server", timeout=5).status_code == 404
        auth.user("oidc-user")
        provider, storage, _ = sdk_oauth(g.url("pay"))
        http = httpx2.AsyncClient(auth=provider, timeout=httpx2.Timeout(30.0))
        async with http, Client(streamable_http_client(g.url("pay"), http_client=http), mode="auto") as c:
            r = await c.call_tool("echo", {"text": "oidc"})
            assert not r.is_error and r.content[0].text == "oidc"
        assert auth.stats()["metadata"] >= 2  # the client's discovery and the gateway's
    finally:
        g.stop()
        auth.stop()
