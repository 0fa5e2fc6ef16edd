"""The identity configuration: every mistake refused with its key path, at load and by
`mcpp serve`; and the claims mapping checked against a policy's `entity User`."""

from __future__ import annotations

import pytest

from mcpp.runtime.gateway.config import ConfigError, load_config
from mcpp.runtime.gateway.oauth import map_claims, typed_claim
from mcpp.runtime.gateway.oauth_config import mapping_problems

from .peers import mcpp, write

ISSUER = '''
[issuers.acme]
issuer = "https://login.acme.test/realms/main"
'''
SERVER = '''
[[servers]]
id = "pay"
url = "https://pay.internal/mcp"
policy = "p.mcpp"
'''
OAUTH = '''
[servers.oauth]
resource = "https://gw.acme.test/mcp/pay"
issuers = ["acme"]
'''


def load(tmp_path, text: str):
    write(tmp_path / "p.mcpp", "permit (principal, action, resource);\n")
    return load_config(write(tmp_path / "gw.toml", text))


def test_a_full_config_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("ACME_SECRET", "s3cret")
    cfg = load(tmp_path, '''
[gateway]
public_url = "https://gw.acme.test"

[issuers.acme]
issuer = "https://login.acme.test/realms/main"
algorithms = ["RS256", "ES256"]
leeway = 10
introspection = true
client_id = "mcpp-gateway"
client_secret_env = "ACME_SECRET"

[issuers.partner]
issuer = "https://idp.partner.test/"
subject_prefix = "partner|"
client_id = "mcpp"
client_secret_env = "ACME_SECRET"
''' + SERVER + '''
[servers.oauth]
issuers = ["acme", "partner"]
required_scopes = ["payments"]
scopes_supported = ["payments", "payments.refund"]
accept_grants = false
scope_claim = "scp"
groups_claim = ["realm_access", "roles"]
private_claims = ["email", "sub"]
[servers.oauth.claims]
email = { claim = "email", type = "String" }
scopes = { claim = "scope", type = "Set<String>" }
refund_cap = { claim = ["https://acme.test/claims", "refund_cap"], type = "Long" }
verified = "Bool"
[servers.oauth.token_exchange]
audience = "https://payments.internal/"
scope = "payments"
''')
    o = cfg.server("pay").oauth
    assert o.resource == "https://gw.acme.test/mcp/pay"  # from public_url
    assert o.metadata_path() == "/.well-known/oauth-protected-resource/mcp/pay"
    assert o.metadata_url() == "https://gw.acme.test/.well-known/oauth-protected-resource/mcp/pay"
    assert o.issuers == ("acme", "partner") and not o.accept_grants and o.scope_claim == ("scp",)
    assert o.groups_claim == ("realm_access", "roles") and o.groups_private is False and o.subject_private
    assert [(m.attribute, m.claim, m.type) for m in o.claims] == [
        ("email", ("email",), "String"), ("scopes", ("scope",), "Set<String>"),
        ("refund_cap", ("https://acme.test/claims", "refund_cap"), "Long"), ("verified", ("verified",), "Bool")]
    assert [o.attribute_private(m) for m in o.claims] == [True, False, False, False]
    from mcpp.runtime.gateway.oauth_config import subject_prefix

    # two issuers: users' ids are qualified (acme by default with its name)
    assert [subject_prefix(cfg.issuer(n), 2) for n in o.issuers] == ["acme:", "partner|"]
    assert subject_prefix(cfg.issuer("acme"), 1) == ""
    acme = cfg.issuer("acme")
    assert acme.algorithms == ("RS256", "ES256") and acme.leeway == 10 and acme.client.client_id == "mcpp-gateway"
    assert acme.client.secret.resolve("x") == "s3cret"
    assert o.token_exchange.audience == "https://payments.internal/" and o.token_exchange.header == "Authorization"


BAD = [
    ("http issuer", ISSUER.replace("https://login", "http://login") + SERVER + OAUTH,
     "issuers.acme.issuer: 'http://login.acme.test/realms/main' must use https"),
    ("HS256 allowed", ISSUER + 'algorithms = ["RS256", "HS256"]\n' + SERVER + OAUTH,
     "issuers.acme.algorithms: 'HS256' is refused: a resource server verifies with public keys"),
    ("alg none", ISSUER + 'algorithms = ["none"]\n' + SERVER + OAUTH, "issuers.acme.algorithms: 'none' is refused"),
    ("unknown alg", ISSUER + 'algorithms = ["RS1"]\n' + SERVER + OAUTH, "issuers.acme.algorithms: unknown algorithm 'RS1'"),
    ("no algorithms", ISSUER + 'algorithms = []\n' + SERVER + OAUTH, "issuers.acme.algorithms: empty"),
    ("issuer with a query", ISSUER.replace("main\"", "main?x=1\"") + SERVER + OAUTH, "issuers.acme.issuer: a issuer identifier has no query"),
    ("inline secret", ISSUER + 'client_id = "gw"\nclient_secret = "x"\n' + SERVER + OAUTH,
     "issuers.acme: secrets are never inline"),
    ("secret env unset", ISSUER + 'client_id = "gw"\nclient_secret_env = "MCPP_TEST_UNSET_VAR_X"\n' + SERVER + OAUTH,
     "issuers.acme.client_secret: environment variable MCPP_TEST_UNSET_VAR_X is not set"),
    ("introspection without a client", ISSUER + "introspection = true\n" + SERVER + OAUTH,
     "issuers.acme.introspection: RFC 7662 needs the gateway's own client"),
    ("leeway too large", ISSUER + "leeway = 3600\n" + SERVER + OAUTH, "issuers.acme.leeway: must be between 0 and 300"),
    ("unknown issuer key", ISSUER + 'audience = "x"\n' + SERVER + OAUTH, "issuers.acme: unknown key 'audience'"),
    ("no resource", ISSUER + SERVER + '[servers.oauth]\nissuers = ["acme"]\n',
     "servers[0].oauth.resource: required (this route's public URL"),
    ("resource with a fragment", ISSUER + SERVER + OAUTH.replace("mcp/pay\"", "mcp/pay#x\""),
     "servers[0].oauth.resource: a resource URI has no fragment"),
    ("unknown issuer name", ISSUER + SERVER + OAUTH.replace('["acme"]', '["okta"]'),
     "servers[0].oauth.issuers: no [issuers.okta] (defined: acme)"),
    ("no issuers", ISSUER + SERVER + OAUTH.replace('["acme"]', "[]"), "servers[0].oauth.issuers: name at least one"),
    ("unknown oauth key", ISSUER + SERVER + OAUTH + 'audience = "x"\n', "servers[0].oauth: unknown key 'audience'"),
    ("scope with a space", ISSUER + SERVER + OAUTH + 'required_scopes = ["a b"]\n',
     "servers[0].oauth.required_scopes: 'a b' is not a valid scope"),
    ("claim type spelled lower", ISSUER + SERVER + OAUTH + '[servers.oauth.claims]\nemail = { claim = "email", type = "string" }\n',
     "servers[0].oauth.claims.email.type: 'string' is not a claim type (one of String, Long, Bool, Set<String>); did you mean 'String'?"),
    ("claim set of longs", ISSUER + SERVER + OAUTH + '[servers.oauth.claims]\nids = { claim = "ids", type = "Set<Long>" }\n',
     "servers[0].oauth.claims.ids.type: 'Set<Long>' is not a claim type"),
    ("claim without type", ISSUER + SERVER + OAUTH + '[servers.oauth.claims]\nemail = { claim = "email" }\n',
     "servers[0].oauth.claims.email: missing type"),
    ("bad attribute name", ISSUER + SERVER + OAUTH + '[servers.oauth.claims]\n"e-mail" = { claim = "email", type = "String" }\n',
     "servers[0].oauth.claims.e-mail: 'e-mail' is not a valid attribute name"),
    ("empty claim path", ISSUER + SERVER + OAUTH + '[servers.oauth.claims]\nx = { claim = [], type = "String" }\n',
     "servers[0].oauth.claims.x.claim: expected a claim name"),
    ("anonymous and oauth", ISSUER + SERVER + "anonymous = true\n" + OAUTH,
     "servers[0]: anonymous and oauth are exclusive"),
    ("exchange without a client", ISSUER + SERVER + OAUTH + '[servers.oauth.token_exchange]\naudience = "u"\n',
     "servers[0].oauth.token_exchange: the exchange is done at the token's issuer with the gateway's own client; issuers.acme has no client_id"),
    ("exchange naming nothing", ISSUER + SERVER + OAUTH + '[servers.oauth.token_exchange]\nscope = "u"\n',
     "servers[0].oauth.token_exchange: name the upstream with audience or resource"),
    ("exchange on stdio", ISSUER + SERVER.replace('url = "https://pay.internal/mcp"', 'command = ["srv"]') + OAUTH
     + '[servers.oauth.token_exchange]\naudience = "u"\n', "servers[0].oauth.token_exchange: token exchange gives an HTTP upstream"),
    ("two issuers, one unprefixed", ISSUER + 'subject_prefix = ""\n[issuers.b]\nissuer = "https://b.test/"\n' + SERVER
     + OAUTH.replace('["acme"]', '["acme", "b"]'), "servers[0].oauth.issuers: issuers.acme.subject_prefix is empty"),
    ("overlapping prefixes", ISSUER + 'subject_prefix = "a:"\n[issuers.b]\nissuer = "https://b.test/"\nsubject_prefix = "a:b"\n'
     + SERVER + OAUTH.replace('["acme"]', '["acme", "b"]'), "servers[0].oauth.issuers: the subject prefixes 'a:' (acme) and 'a:b' (b) overlap"),
    ("same issuer twice", ISSUER + '[issuers.again]\nissuer = "https://login.acme.test/realms/main"\n' + SERVER + OAUTH,
     "issuers.again.issuer: the same issuer as issuers.acme"),
    ("same resource twice", ISSUER + SERVER + OAUTH + SERVER.replace('"pay"', '"pay2"') + OAUTH,
     "servers[1].oauth.resource: the same resource path as server pay"),
    ("bad public_url", "[gateway]\npublic_url = \"ftp://gw\"\n" + ISSUER + SERVER + OAUTH,
     "gateway.public_url: expected an https:// URL"),
    ("issuers not a table", 'issuers = ["acme"]\n' + SERVER + OAUTH, "issuers: expected [issuers.<name>] tables"),
]


@pytest.mark.parametrize("what,text,message", BAD, ids=[b[0] for b in BAD])
def test_refused_with_the_key_path(tmp_path, what, text, message):  # noqa: ARG001 (`what` names the case)
    with pytest.raises(ConfigError) as e:
        load(tmp_path, text)
    assert message in str(e.value), str(e.value)
    assert str(e.value).startswith(str(tmp_path / "gw.toml") + ": ")


def test_mcpp_serve_refuses_a_bad_identity_config(tmp_path):
    write(tmp_path / "p.mcpp", "permit (principal, action, resource);\n")
    cfg = write(tmp_path / "gw.toml", ISSUER + 'algorithms = ["HS256"]\n' + SERVER + OAUTH)
    r = mcpp("serve", "--config", str(cfg), check=False)
    assert r.returncode == 1  # mcpp.console.ERRORS: the input has errors
    assert "issuers.acme.algorithms: 'HS256' is refused" in r.stderr and "Traceback" not in r.stderr


# ---- the claims mapping ---------------------------------------------------------------------

def _oauth(tmp_path, claims: str, extra: str = ""):
    return load(tmp_path, ISSUER + SERVER + OAUTH + extra + "[servers.oauth.claims]\n" + claims).server("pay").oauth


TYPED = [
    ("String", "a@b", "a@b", None), ("String", 5, None, "expected a string, got an integer"),
    ("Long", 1000, 1000, None), ("Long", "1000", None, "expected a 64-bit integer, got a string"),
    ("Long", True, None, "expected a 64-bit integer, got a boolean"), ("Long", 2**63, None, "expected a 64-bit integer, got an integer out of range"),
    ("Long", 5.0, 5, None), ("Long", 5.5, None, "expected a 64-bit integer, got a number"),
    ("Bool", True, True, None), ("Bool", "true", None, "expected a boolean, got a string"),
    ("Set<String>", "read write read", ["read", "write"], None), ("Set<String>", ["b", "a", "b"], ["a", "b"], None),
    ("Set<String>", [1, 2], None, "expected an array of strings, got an array whose element [0] is an integer"),
    ("Set<String>", ["a", "b", None], None, "expected an array of strings, got an array whose element [2] is null"),
    ("Set<String>", ["a", ["b"]], None, "expected an array of strings, got an array whose element [1] is an array"),
    ("Set<String>", {"a": 1}, None, "expected an array of strings, got an object"),
]


@pytest.mark.parametrize("typ,value,want,why", TYPED)
def test_typed_claims(typ, value, want, why):
    assert typed_claim(value, typ) == (want, why)


def test_map_claims_reports_names_never_values(tmp_path):
    o = _oauth(tmp_path, 'email = "String"\ncap = { claim = ["x", "cap"], type = "Long" }\nroles = { claim = "roles", type = "Set<String>" }\n',
               'groups_claim = "groups"\nscope_claim = "scp"\n')
    problems = []
    attrs, groups, scopes = map_claims(o, {"email": 42, "x": {"cap": 500}, "roles": "a b", "groups": ["sre", "dev"],
                                           "scp": ["mcp", "read"]}, lambda *a: problems.append(a))
    assert attrs == {"cap": 500, "roles": ["a", "b"]}
    assert groups == frozenset({"sre", "dev"}) and scopes == frozenset({"mcp", "read"})
    assert problems == [("email", ("email",), "expected a string, got an integer")]
    assert "42" not in repr(problems)
    # absent claims are simply absent; a groups claim of the wrong shape gives no groups
    attrs, groups, scopes = map_claims(o, {"groups": 7}, lambda *a: problems.append(a))
    assert attrs == {} and groups == frozenset() and scopes == frozenset()
    assert problems[-1][0] == "groups"


def _decl(source: str):
    """The `entity User …` declaration as the gateway reads it: `Policy.user_declaration`."""
    import mcpp

    return mcpp.load_policy(source + "\npermit (principal, action, resource);\n", filename="p.mcpp").user_declaration


MAPPING = [
    ("every required attribute mapped", "entity User in [Group] { email: String, scopes: Set<String>, refund_cap?: Long };",
     'email = "String"\nscopes = { claim = "scope", type = "Set<String>" }\n', "", []),
    ("an optional one may be unmapped", "entity User in [Group] { email: String, refund_cap?: Long };", 'email = "String"\n', "", []),
    ("a required one unmapped", "entity User in [Group] { email: String, scopes: Set<String> };", 'email = "String"\n', "",
     ["entity User requires attribute 'scopes' (Set<String>), but no claim is mapped to it"]),
    ("a type that differs", "entity User in [Group] { refund_cap: Long };", 'refund_cap = "String"\n', "",
     ["entity User declares 'refund_cap' as Long, but the claims mapping types it String"]),
    ("an optional one mistyped", "entity User in [Group] { vip?: Bool };", 'vip = "String"\n', "",
     ["entity User declares 'vip' as Bool, but the claims mapping types it String"]),
    ("groups without in [Group]", "entity User { email: String };", 'email = "String"\n', 'groups_claim = "groups"\n',
     ["groups_claim puts users in groups, but entity User is declared without `in [Group]`"]),
]


@pytest.mark.parametrize("what,decl,claims,extra,want", MAPPING, ids=[m[0] for m in MAPPING])
def test_mapping_against_entity_user(tmp_path, what, decl, claims, extra, want):  # noqa: ARG001 (`what` names the case)
    problems = mapping_problems(_oauth(tmp_path, claims, extra), _decl(decl))
    assert len(problems) == len(want)
    for p, w in zip(problems, want):
        assert p.startswith(w), p


def test_no_declaration_no_requirement(tmp_path):
    assert mapping_problems(_oauth(tmp_path, 'email = "String"\n', 'groups_claim = "g"\n'), None) == []
