"""`mcpp serve` as an OAuth 2.1 resource server, against a real authorization server
(fixtures/auth_server.py: the SDK's handlers, JWTs signed with PyJWT) and the SDK upstream.

Every refusal is checked for its status, its `WWW-Authenticate` challenge and its metrics
reason, and that the upstream never saw the call; every acceptance for what the upstream
saw (the gateway's credential, never the caller's token) and what the audit recorded.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time

import httpx2
import pytest

from .oauth_peers import GATEWAY_CLIENT, AuthServer, forged, hs256_with
from .peers import MODERN_META, Gateway, call_tool, create_grant, free_port, write

UPSTREAM_TOKEN = "upstream-service-credential-7f3a"
POLICY = """
default deny;
permit (principal, action in [Action::"echo", Action::"whoami"], resource);
permit (principal in Group::"sre", action == Action::"delete_pod", resource);
"""


@pytest.fixture(scope="module")
def auth(tmp_path_factory):
    a = AuthServer(tmp_path_factory.mktemp("auth"))
    yield a
    a.stop()


def _env():
    import os

    return dict(os.environ, MCPP_TEST_GW_SECRET=GATEWAY_CLIENT[1], MCPP_TEST_UPSTREAM_TOKEN=UPSTREAM_TOKEN)


def _config(auth, upstream, port: int, *, refresh_min: float = 0, leeway: float = 0) -> str:
    base = f"http://127.0.0.1:{port}/mcp"
    return f"""
[gateway]
port = {port}
state_dir = "state"
log_level = "debug"

[issuers.local]
issuer = "{auth.issuer}"
leeway = {leeway}
jwks_refresh_min_seconds = {refresh_min}
introspection = true
client_id = "{GATEWAY_CLIENT[0]}"
client_secret_env = "MCPP_TEST_GW_SECRET"

[[servers]]
id = "pay"
url = "{upstream.url}"
policy = "policy.mcpp"
[[servers.credentials]]
header = "Authorization"
prefix = "Bearer "
from_env = "MCPP_TEST_UPSTREAM_TOKEN"
[servers.oauth]
resource = "{base}/pay"
issuers = ["local"]
required_scopes = ["mcp"]
groups_claim = "groups"
private_claims = ["email"]
[servers.oauth.claims]
email = {{ claim = "email", type = "String" }}
dept = {{ claim = ["org", "dept"], type = "String" }}

[[servers]]
id = "strict"
url = "{upstream.url}"
policy = "policy.mcpp"
[servers.oauth]
resource = "{base}/strict"
issuers = ["local"]
accept_grants = false
private_claims = ["sub"]

[[servers]]
id = "xchg"
url = "{upstream.url}"
policy = "policy.mcpp"
[servers.oauth]
resource = "{base}/xchg"
issuers = ["local"]
[servers.oauth.token_exchange]
audience = "urn:upstream:payments-api"
scope = "payments.read"

[[servers]]
id = "plain"
url = "{upstream.url}"
policy = "policy.mcpp"
"""


def start(tmp, auth, upstream, **kw) -> Gateway:
    port = free_port()
    write(tmp / "policy.mcpp", POLICY)
    cfg = write(tmp / "gateway.toml", _config(auth, upstream, port, **kw))
    return Gateway(tmp, ["--config", str(cfg)], port, tmp / "state", env=_env())


@pytest.fixture(scope="module")
def gw(tmp_path_factory, auth, upstream):
    tmp = tmp_path_factory.mktemp("gw")
    g = start(tmp, auth, upstream)
    yield g
    g.stop()


def resource(gw, server="pay") -> str:
    return f"http://127.0.0.1:{gw.port}/mcp/{server}"


def challenge(r) -> dict:
    """The `WWW-Authenticate: Bearer k="v", …` parameters."""
    www = r.headers.get("www-authenticate", "")
    assert www.startswith("Bearer "), www
    return dict(re.findall(r'(\w+)="([^"]*)"', www))


def auth_failures(gw, server: str) -> dict:
    text = httpx2.get(f"{gw.base}/metrics", timeout=5).text
    out = {}
    for m in re.finditer(r'mcpp_auth_failures_total\{server="([^"]+)",reason="([^"]+)"\} (\d+)', text):
        if m.group(1) == server:
            out[m.group(2)] = int(m.group(3))
    return out


async def call(gw, token, name="echo", args=None, server="pay"):
    async with httpx2.AsyncClient(timeout=30) as h:
        return await call_tool(h, gw.url(server), token, name, args if args is not None else {"text": "hi"})


def post(gw, token=None, server="pay", body=None):
    """A 2026-07-28 `ping` (answered by the upstream once the gateway lets it through)."""
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "ping"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = body or {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"_meta": MODERN_META}}
    return httpx2.post(gw.url(server), headers=headers, content=json.dumps(body), timeout=30)


# ---- metadata and the challenge ------------------------------------------------------------

def test_protected_resource_metadata(gw, auth):
    for path in ("/.well-known/oauth-protected-resource/mcp/pay", "/.well-known/oauth-protected-resource/mcp/pay/"):
        r = httpx2.get(gw.base + path, timeout=5)
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "*"  # browser-based clients discover with it
        doc = r.json()
        assert doc["resource"] == resource(gw)
        assert doc["authorization_servers"] == [auth.issuer]
        assert doc["scopes_supported"] == ["mcp"] and doc["bearer_methods_supported"] == ["header"]
    # a server without OAuth, an unknown one and the bare well-known path publish nothing
    for path in ("/.well-known/oauth-protected-resource/mcp/plain", "/.well-known/oauth-protected-resource/mcp/nope",
                 "/.well-known/oauth-protected-resource"):
        assert httpx2.get(gw.base + path, timeout=5).status_code == 404
    assert httpx2.post(gw.base + "/.well-known/oauth-protected-resource/mcp/pay", timeout=5).status_code == 405


def test_no_token_gets_the_challenge(gw):
    r = post(gw)
    assert r.status_code == 401
    c = challenge(r)
    assert c == {"scope": "mcp", "resource_metadata": f"http://127.0.0.1:{gw.port}/.well-known/oauth-protected-resource/mcp/pay"}
    # the server without OAuth keeps the grant challenge
    r = post(gw, server="plain")
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer realm="mcpp"'


# ---- accepted tokens -----------------------------------------------------------------------

async def test_valid_token_reaches_the_tool_with_the_gateways_credential(gw, auth, upstream):
    token = auth.mint({"aud": resource(gw), "scope": "mcp other", "email": "alice@acme.test", "org": {"dept": "payments"}})
    before = len(upstream.ran())
    r = await call(gw, token, "whoami", {})
    assert r["status"] == 200 and not r["result"]["isError"], r
    seen = upstream.ran()[before:]
    assert [x["tool"] for x in seen] == ["whoami"]
    assert seen[0]["args"]["authorization"] == f"Bearer {UPSTREAM_TOKEN}"  # never the caller's token
    assert token not in upstream.proc.log.read_text() and token not in json.dumps(seen)


async def test_audit_and_logs_name_issuer_and_subject_never_the_token_or_private_claims(gw, auth):
    secret_mail = "alice.private@acme.test"
    token = auth.mint({"sub": "alice-audit", "aud": resource(gw), "scope": "mcp", "email": secret_mail,
                       "org": {"dept": "payments"}})
    r = await call(gw, token, "delete_pod", {"namespace": "dev", "name": "x"})
    assert r["result"]["isError"]  # not in group sre
    rows = sqlite3.connect(gw.state / "audit.db").execute(
        "SELECT grant_id, grant_label, issuer, subject, decision FROM audit WHERE subject = 'alice-audit'").fetchall()
    assert rows == [("", "", auth.issuer, "alice-audit", "deny")]
    time.sleep(0.3)
    log = gw.log.read_text()
    assert token not in log and token.split(".")[2] not in log
    assert secret_mail not in log  # email is a private claim: not even the debug event shows it
    validated = [x for x in gw.log_records() if x.get("event") == "token_validated" and x.get("subject") == "alice-audit"]
    assert validated and validated[0]["attributes"] == {"dept": "payments"} and validated[0]["issuer"] == auth.issuer
    decisions = [x for x in gw.log_records() if x.get("event") == "decision" and x.get("subject") == "alice-audit"]
    assert decisions and decisions[0]["issuer"] == auth.issuer and "grant_id" not in decisions[0]
    raw = repr(sqlite3.connect(gw.state / "audit.db").execute("SELECT * FROM audit").fetchall())
    assert token not in raw and secret_mail not in raw


async def test_private_subject_is_pseudonymised(gw, auth):
    token = auth.mint({"sub": "bob@private.test", "aud": resource(gw, "strict")})
    r = await call(gw, token, server="strict")
    assert r["status"] == 200 and not r["result"]["isError"]
    subjects = [s for (s,) in sqlite3.connect(gw.state / "audit.db").execute(
        "SELECT subject FROM audit WHERE server = 'strict'").fetchall()]
    assert subjects and all(s.startswith("anon:") for s in subjects)
    assert "bob@private.test" not in gw.log.read_text()
    raw = repr(sqlite3.connect(gw.state / "audit.db").execute("SELECT * FROM audit").fetchall())
    assert "bob@private.test" not in raw


async def test_groups_claim_decides_and_filters_tools_list(gw, auth):
    sre = auth.mint({"sub": "sam", "aud": resource(gw), "scope": "mcp", "groups": ["sre", "oncall"]})
    dev = auth.mint({"sub": "dana", "aud": resource(gw), "scope": "mcp", "groups": ["dev"]})
    r = await call(gw, sre, "delete_pod", {"namespace": "dev", "name": "a"})
    assert not r["result"]["isError"], r
    r = await call(gw, dev, "delete_pod", {"namespace": "dev", "name": "a"})
    assert r["result"]["isError"] and r["result"]["content"][0]["text"].startswith("[POLICY DENIED]")

    def listed(token) -> set:
        body = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": MODERN_META}}
        r = httpx2.post(gw.url("pay"), headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json", "MCP-Protocol-Version": "2026-07-28",
            "Accept": "application/json, text/event-stream", "Mcp-Method": "tools/list"}, content=json.dumps(body), timeout=30)
        msg = r.json() if r.headers["content-type"].startswith("application/json") else json.loads(
            [ln for ln in r.text.splitlines() if ln.startswith("data:")][-1][5:])
        return {t["name"] for t in msg["result"]["tools"]}

    assert listed(sre) == {"echo", "whoami", "delete_pod"}
    assert listed(dev) == {"echo", "whoami"}


@pytest.mark.usefixtures("auth")
async def test_grant_tokens_beside_oauth(gw):
    grant = create_grant(gw.state, "ci-bot", "pay")
    r = await call(gw, grant["token"])
    assert r["status"] == 200 and not r["result"]["isError"]
    row = sqlite3.connect(gw.state / "audit.db").execute(
        "SELECT grant_id, grant_label, issuer, subject FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    assert row == (grant["id"], "ci-bot", None, None)
    # a server with accept_grants = false refuses a valid grant, with the OAuth challenge
    strict = create_grant(gw.state, "ci-bot", "strict")
    r = post(gw, strict["token"], server="strict")
    assert r.status_code == 401
    c = challenge(r)
    assert c["error"] == "invalid_token" and c["resource_metadata"].endswith("/mcp/strict")
    # a bad grant on an OAuth server is told where the OAuth metadata is
    r = post(gw, "mcpp.g_0000000000000000.nope")
    assert r.status_code == 401 and challenge(r)["resource_metadata"].endswith("/mcp/pay")


# ---- refused tokens: each with its status, challenge and reason -----------------------------

def _bad_tokens(gw, auth) -> list[tuple[str, str, str]]:
    aud = resource(gw)
    now = int(time.time())
    pem = auth.public_pem()
    good_claims = {"iss": auth.issuer, "sub": "mallory", "aud": aud, "exp": now + 600, "iat": now, "scope": "mcp"}
    kid = auth.stats()["kids"][-1]
    return [
        ("expired", auth.mint({"aud": aud, "scope": "mcp", "exp": now - 120, "iat": now - 900, "nbf": now - 900}), "expired"),
        ("not yet valid", auth.mint({"aud": aud, "scope": "mcp", "nbf": now + 3600}), "not_yet_valid"),
        ("wrong audience", auth.mint({"aud": "http://127.0.0.1:1/mcp/other", "scope": "mcp"}), "wrong_audience"),
        ("another server on this gateway", auth.mint({"aud": resource(gw, "strict"), "scope": "mcp"}), "wrong_audience"),
        ("no audience", auth.mint({"scope": "mcp"}), "missing_claim"),
        ("wrong issuer", auth.mint({"aud": aud, "scope": "mcp", "iss": "http://127.0.0.1:1/"}), "untrusted_issuer"),
        ("no subject", auth.mint({"aud": aud, "scope": "mcp"}, omit=["sub"]), "missing_claim"),
        ("no expiry", auth.mint({"aud": aud, "scope": "mcp"}, omit=["exp"]), "missing_claim"),
        ("alg none", forged({"alg": "none", "typ": "JWT", "kid": kid}, good_claims), "algorithm"),
        ("HS256 signed with the public key", forged({"alg": "HS256", "typ": "JWT", "kid": kid}, good_claims, hs256_with(pem)),
         "algorithm"),
        ("a key the issuer never published", auth.mint({"aud": aud, "scope": "mcp"}, key="unpublished"), "unknown_key"),
        ("tampered payload", _tamper(auth.mint({"aud": aud, "scope": "mcp", "sub": "mallory"})), "bad_signature"),
        ("not a JWT", "a.b.c", "malformed_token"),
    ]


def _tamper(token: str) -> str:
    import base64

    h, p, s = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    claims["sub"] = "admin"
    p2 = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{h}.{p2}.{s}"


async def test_refused_tokens(gw, auth, upstream):
    before = len(upstream.ran())
    for what, token, reason in _bad_tokens(gw, auth):
        counts = auth_failures(gw, "pay").get(reason, 0)
        r = post(gw, token)
        assert r.status_code == 401, (what, r.status_code, r.text)
        c = challenge(r)
        assert c["error"] == "invalid_token", what
        assert c["resource_metadata"] == f"http://127.0.0.1:{gw.port}/.well-known/oauth-protected-resource/mcp/pay", what
        assert "scope" not in c, what
        assert r.json()["error"]["message"].startswith("Unauthorized: "), what
        assert auth_failures(gw, "pay").get(reason, 0) == counts + 1, (what, reason, auth_failures(gw, "pay"))
        resp = await call(gw, token, "whoami", {})
        assert resp["status"] == 401, what
    assert upstream.ran()[before:] == []  # none of them reached the upstream
    log = gw.log.read_text()
    for what, token, _ in _bad_tokens(gw, auth)[:3]:
        assert token not in log


async def test_missing_scope_is_403_with_the_scope_challenge(gw, auth, upstream):
    token = auth.mint({"aud": resource(gw), "scope": "profile"})
    before = len(upstream.ran())
    r = post(gw, token)
    assert r.status_code == 403
    c = challenge(r)
    assert c["error"] == "insufficient_scope" and c["scope"] == "mcp"
    assert c["resource_metadata"].endswith("/.well-known/oauth-protected-resource/mcp/pay")
    assert r.json()["error"]["message"].startswith("Forbidden: ")
    assert (await call(gw, token))["status"] == 403
    # no scope claim at all: the same
    assert post(gw, auth.mint({"aud": resource(gw)}, omit=["scope"])).status_code == 403
    assert upstream.ran()[before:] == []


# ---- keys ------------------------------------------------------------------------------------

async def test_key_rotation_new_kid_is_fetched_once(gw, auth):
    import base64

    tok = auth.mint({"aud": resource(gw), "scope": "mcp"})
    unused_old = auth.mint({"aud": resource(gw), "scope": "mcp", "sub": "never-used"})  # same key, never shown yet
    assert (await call(gw, tok))["status"] == 200
    fetched = auth.stats()["jwks"]
    for alg in ("ES256", "EdDSA", "PS256", "RS256"):
        kid = auth.rotate(alg)
        new = auth.mint({"aud": resource(gw), "scope": "mcp", "sub": f"rot-{alg}"})
        assert json.loads(base64.urlsafe_b64decode(new.split(".")[0] + "==="))["kid"] == kid
        for _ in range(3):
            r = await call(gw, new)
            assert r["status"] == 200 and not r["result"]["isError"], (alg, r)
        fetched += 1
        assert auth.stats()["jwks"] == fetched, alg  # one fetch for the new kid, then cached
    # the old key is still published: its tokens still verify
    assert (await call(gw, tok))["status"] == 200
    # the old keys withdrawn: once the gateway has the new set, a token signed with one fails
    auth.rotate("RS256", drop_old=True)
    assert (await call(gw, auth.mint({"aud": resource(gw), "scope": "mcp", "sub": "after-drop"})))["status"] == 200
    r = post(gw, unused_old)
    assert r.status_code == 401 and challenge(r)["error"] == "invalid_token"
    assert auth_failures(gw, "pay").get("unknown_key", 0) >= 1
    # a token validated before the withdrawal stays valid until its exp (at most MAX_CACHE_SECONDS; docs)
    assert (await call(gw, tok))["status"] == 200


async def test_unknown_kid_refresh_is_rate_limited(tmp_path, auth, upstream):
    g = start(tmp_path, auth, upstream, refresh_min=3600)
    try:
        aud = f"http://127.0.0.1:{g.port}/mcp/pay"
        assert (await call(g, auth.mint({"aud": aud, "scope": "mcp"})))["status"] == 200
        fetched = auth.stats()["jwks"]
        for i in range(20):  # made-up keys: no refetch within jwks_refresh_min_seconds
            r = post(g, auth.mint({"aud": aud, "scope": "mcp", "sub": f"x{i}"}, key="unpublished"))
            assert r.status_code == 401 and challenge(r)["error"] == "invalid_token"
        assert auth.stats()["jwks"] == fetched
    finally:
        g.stop()


# ---- the cache -------------------------------------------------------------------------------

async def test_validation_is_cached_per_token_and_honours_exp(gw, auth):
    token = auth.mint({"sub": "cache-user", "aud": resource(gw), "scope": "mcp", "exp": int(time.time()) + 3})
    for _ in range(10):
        assert (await call(gw, token))["status"] == 200
    time.sleep(0.3)
    validated = [x for x in gw.log_records() if x.get("event") == "token_validated" and x.get("subject") == "cache-user"]
    assert len(validated) == 1
    deadline = time.time() + 10
    while time.time() < deadline and (await call(gw, token))["status"] == 200:
        time.sleep(0.5)
    r = post(gw, token)
    assert r.status_code == 401 and challenge(r)["error"] == "invalid_token"  # leeway 0: refused after exp


# ---- introspection and token exchange --------------------------------------------------------

async def test_opaque_tokens_by_introspection(gw, auth):
    good = auth.mint_opaque({"sub": "olga", "aud": resource(gw), "scope": "mcp", "groups": ["sre"]})
    r = await call(gw, good, "delete_pod", {"namespace": "dev", "name": "o"})
    assert r["status"] == 200 and not r["result"]["isError"], r
    n = auth.stats()["introspection"]
    assert (await call(gw, good))["status"] == 200
    assert auth.stats()["introspection"] == n  # cached
    other = auth.mint_opaque({"sub": "olga", "aud": "http://127.0.0.1:1/mcp/other", "scope": "mcp"})
    r = post(gw, other)
    assert r.status_code == 401 and challenge(r)["error"] == "invalid_token"
    revoked = auth.mint_opaque({"sub": "olga", "aud": resource(gw), "scope": "mcp"})
    auth.revoke(revoked)
    r = post(gw, revoked)
    assert r.status_code == 401 and challenge(r)["error"] == "invalid_token"
    assert auth_failures(gw, "pay").get("inactive", 0) >= 1


async def test_token_exchange_gives_the_upstream_its_own_token(gw, auth, upstream):
    token = auth.mint({"sub": "xavier", "aud": resource(gw, "xchg"), "scope": "mcp"})
    n = auth.stats()["token_exchange"]
    before = len(upstream.ran())
    for _ in range(3):
        r = await call(gw, token, "whoami", {}, server="xchg")
        assert r["status"] == 200 and not r["result"]["isError"], r
    assert auth.stats()["token_exchange"] == n + 1  # exchanged once, then cached
    seen = [x["args"]["authorization"] for x in upstream.ran()[before:]]
    assert len(seen) == 3 and len(set(seen)) == 1
    upstream_token = seen[0].removeprefix("Bearer ")
    assert upstream_token != token
    import jwt as pyjwt

    claims = pyjwt.decode(upstream_token, options={"verify_signature": False})
    assert claims["aud"] == "urn:upstream:payments-api" and claims["sub"] == "xavier"
    assert claims["act"] == {"sub": GATEWAY_CLIENT[0]} and claims["scope"] == "payments.read"


# ---- the issuer unreachable -----------------------------------------------------------------

def test_issuer_down_fails_closed(tmp_path, upstream):
    a = AuthServer(tmp_path)
    g = start(tmp_path, a, upstream)
    try:
        token = a.mint({"aud": f"http://127.0.0.1:{g.port}/mcp/pay", "scope": "mcp"})
        a.stop()  # before the gateway ever fetched its keys
        r = post(g, token)
        assert r.status_code == 503 and r.headers.get("retry-after") == "5"
        assert "identity provider is unavailable" in r.json()["error"]["message"]
        assert auth_failures(g, "pay").get("idp_unavailable") == 1
        assert post(g, token).status_code == 503  # still closed, answered at once (no new fetch for RETRY_AFTER)
    finally:
        g.stop()


# ---- sessions and health ---------------------------------------------------------------------

def test_a_session_is_bound_to_its_user(gw, auth):
    """2025-11-25: a session opened by one user is unknown (404) to another user, and to a
    grant; the same user with a fresh token keeps it."""
    aud = resource(gw)
    alice, alice2 = (auth.mint({"sub": "sess-alice", "aud": aud, "scope": "mcp", "jti": j}) for j in ("1", "2"))
    bob = auth.mint({"sub": "sess-bob", "aud": aud, "scope": "mcp"})
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    r = httpx2.post(gw.url("pay"), headers={**headers, "Authorization": f"Bearer {alice}"}, content=json.dumps(init), timeout=30)
    assert r.status_code == 200, r.text
    sid = r.headers["mcp-session-id"]
    ping = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "ping"})
    legacy = {**headers, "Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"}
    assert httpx2.post(gw.url("pay"), headers={**legacy, "Authorization": f"Bearer {bob}"}, content=ping, timeout=30).status_code == 404
    grant = create_grant(gw.state, "sess-bot", "pay")["token"]
    assert httpx2.post(gw.url("pay"), headers={**legacy, "Authorization": f"Bearer {grant}"}, content=ping, timeout=30).status_code == 404
    r = httpx2.post(gw.url("pay"), headers={**legacy, "Authorization": f"Bearer {alice2}"}, content=ping, timeout=30)
    assert r.status_code == 200, r.text


def test_health_shows_the_resource_servers(gw, auth):
    h = gw.health()
    o = h["servers"]["pay"]["oauth"]
    assert o["resource"] == resource(gw) and o["accept_grants"] is True
    assert o["metadata"] == f"http://127.0.0.1:{gw.port}/.well-known/oauth-protected-resource/mcp/pay"
    assert o["issuers"] == [{"name": "local", "issuer": auth.issuer, "keys_fetched": True}]
    assert o["cached_tokens"] >= 1
    assert "oauth" not in h["servers"]["plain"]
    text = httpx2.get(f"{gw.base}/metrics", timeout=5).text
    assert re.search(r'mcpp_idp_requests_total\{issuer="local",what="jwks",result="200"\} \d+', text)
