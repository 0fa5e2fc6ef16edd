"""The Cedar export, case by case: what converts and to what, what is refused and how
it is reported, the schema's shape, and the command line."""

import json
import re
import subprocess
import sys

import cedarpy
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcpp.lang.cedar_export import export_program
from mcpp.lang.cedar_regex import regex_as_like, regex_as_likes
from mcpp.lang.cedar_model import CedarNames, ctype_of
from mcpp.lang.diagnostics import MCPPError
from mcpp.lang.program import load_program
from mcpp.lang.regex import compile_regex
from mcpp.lang.values import like_match

TOOLS = {
    "refund": {"type": "object", "properties": {"amount": {"type": "number"}, "count": {"type": "integer"},
                                                 "note": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}},
                                                 "meta": {"type": "object", "properties": {"k": {"type": "string"}}, "required": ["k"]},
                                                 "either": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
               "required": ["amount", "note"]},
    "read": {"type": "object", "properties": {"note": {"type": "integer"}}},
}


def typed(src: str, **kw) -> str:
    r = export_program(load_program(src, "p.mcpp"), tools=TOOLS, schema=True, **kw)
    v = cedarpy.validate_policies(r.policies, r.schema)
    assert v.validation_passed, [str(e.error) for e in v.errors]
    return r.policies


def body(src: str) -> str:
    """The condition(s) the typed export writes for a one-policy source, on one line."""
    out = typed(src)
    return " ".join(line.strip() for line in out.splitlines()[1:]).rstrip(";")


def refusal(src: str, **kw) -> str:
    with pytest.raises(MCPPError) as e:
        export_program(load_program(src, "p.mcpp"), **kw)
    return e.value.render()


# ---- conversions (typed) ---------------------------------------------------------------------

P = 'permit (principal, action == Action::"refund", resource) '

CONVERSIONS = [
    # fractions against integer and number arguments
    (P + "when { context.input.count > 2.5 };", 'when { context.input has count && context.input.count > 2 }'),
    (P + "when { context.input.count < 2.5 };", 'when { context.input has count && context.input.count < 3 }'),
    (P + "when { context.input.count == 2.5 };", "when { false }"),
    (P + "when { context.input.amount <= 1000 };", 'when { context.input.amount.lessThanOrEqual(decimal("1000.0")) }'),
    (P + "when { context.input.amount > 0.00001 };", 'when { context.input.amount.greaterThan(decimal("0.0")) }'),
    (P + "when { context.input.amount == 1.5 };", 'when { context.input.amount == decimal("1.5") }'),
    (P + "when { context.input.amount < 1e30 };", ""),  # always true: no clause
    # mcpp's value `in` is Cedar's contains; members of other types can never match
    (P + 'when { context.input.note in ["a", "b", 3] };', 'when { ["a", "b"].contains(context.input.note) }'),
    (P + "when { context.input.note in [1, 2] };", "when { false }"),
    # substring contains on a string argument is `like`, with `*` escaped
    (P + 'when { context.input.note.contains("a*b") };', r'when { context.input.note like "*a\*b*" }'),
    (P + 'when { context.input.tags.contains("x") };', 'when { context.input has tags && context.input.tags.contains("x") }'),
    # regexes that are like patterns
    (P + 'when { context.input.note.matches("^acme/") };', 'when { context.input.note like "acme/*" }'),
    (P + r'when { context.input.note.matches("\\.pdf$") };', 'when { context.input.note like "*.pdf" }'),
    (P + 'when { context.input.note.matches("(?s)^a.*b$") };', 'when { context.input.note like "a*b" }'),
    (P + 'when { context.input.note.matches("^(ab|cd)$") };', 'when { context.input.note like "ab" || context.input.note like "cd" }'),
    # null and cross-type equality are decided by the types
    (P + "when { context.input.note == null };", "when { false }"),
    (P + "when { context.input.note != 5 };", ""),
    # an optional argument is guarded; a required one is not; unknown keys are absent
    (P + "when { context.input.meta.k == \"v\" };", 'when { context.input has meta && context.input.meta.k == "v" }'),
    (P + "when { context.input.missing == 1 };", "when { false }"),
    (P + "unless { context.input.note == \"x\" };", 'unless { context.input.note == "x" }'),
    (P + "unless { context.input.count == 1 };", 'when { context.input has count && context.input.count != 1 }'),
    (P + "when { context.input has meta.k };", "when { context.input has meta }"),
    (P + "when { context.input.tags.containsAny([\"a\"]) };", 'when { context.input has tags && context.input.tags.contains("a") }'),
    (P + "when { context.input.tags == [] };", "when { context.input has tags && context.input.tags.isEmpty() }"),
    (P + "when { action in Action::\"refund\" && principal in Group::\"ops\" };", 'when { principal in Group::"ops" }'),
]


@pytest.mark.parametrize("src,want", CONVERSIONS)
def test_typed_conversions(src, want):
    got = body(src)
    assert got.endswith(want) if want else got == "", got


def test_a_policy_over_tools_with_different_argument_types_is_split_per_tool():
    out = " ".join(typed('permit (principal, action, resource) when { context.input.note == 1 };').split())
    assert 'action == Action::"read" && context.input has note && context.input.note == 1' in out
    assert "refund" not in out  # for refund, note is a string: never equal to 1


def test_hide_and_default_allow_export_by_name():
    out = typed('default allow;\nhide Action::"read";\npermit (principal, action == Action::"nope", resource);'
                .replace('Action::"nope"', 'Action::"refund"'))
    assert 'forbid (principal, action in [Action::"read"], resource);' in out
    assert "@id(\"default\")" not in out  # every catalog tool is named or hidden


# ---- users (`entity User`) ---------------------------------------------------------------------

U = "entity User in [Group] { email: String, cap?: Long, scopes: Set<String>, admin: Bool, ids?: Set<Long> };\n"

USER_CONVERSIONS = [
    # a declared set's contains is Cedar's; grants have no such attribute, so only users match
    (U + P + 'when { principal.scopes.contains("k8s:write") };', 'when { principal is User && principal.scopes.contains("k8s:write") }'),
    (U + P + 'unless { principal.scopes.contains("k8s:write") };', 'when { principal is User && !principal.scopes.contains("k8s:write") }'),
    (U + P + "when { principal.ids.containsAny([1, 2]) };",
     "when { principal is User && principal has ids && principal.ids.containsAny([1, 2]) }"),
    # Long comparisons, optional attributes guarded by `has`, against literals and integer arguments
    (U + P + "when { principal.cap >= 10.5 };", "when { principal is User && principal has cap && principal.cap >= 11 }"),
    (U + P + "when { context.input.count <= principal.cap };",
     "when { principal is User && context.input has count && principal has cap && context.input.count <= principal.cap }"),
    # a declared string's contains is mcpp's substring test: `like`
    (U + P + 'when { principal.email.contains("@corp") };', 'when { principal is User && principal.email like "*@corp*" }'),
    (U + P + 'when { principal.email like "*@corp.com" };', 'when { principal is User && principal.email like "*@corp.com" }'),
    (U + P + "when { principal.admin };", "when { principal is User && principal.admin }"),
    # grants and users read differently: one branch per principal type
    (U + P + 'when { principal has email || principal.label == "ci" };',
     'when { principal is Grant && principal.label == "ci" || principal is User }'),
    # `is`, `==` and `in` on users
    (U + P + "when { principal is User };", "when { principal is User }"),
    (U + P + 'when { principal == User::"ann" };', 'when { principal is User && principal == User::"ann" }'),
    (U + P + 'when { principal is User in Group::"sre" };', 'when { principal is User && principal in Group::"sre" }'),
    # in the scope: only users, no `is` needed
    (U + 'permit (principal is User, action == Action::"refund", resource) when { principal.admin };', "when { principal.admin }"),
]


@pytest.mark.parametrize("src,want", USER_CONVERSIONS)
def test_user_conversions(src, want):
    got = body(src)
    assert got.endswith(want), got


def test_users_in_the_schema():
    r = export_program(load_program(U + P + "when { principal.admin };", "p.mcpp"), tools=TOOLS, schema=True)
    assert ('entity User in [Group] = {\n  "email": String,\n  "cap"?: Long,\n  "scopes": Set<String>,\n'
            '  "admin": Bool,\n  "ids"?: Set<Long>\n};') in r.schema
    assert r.schema.count("principal: [Grant, User],") == len(TOOLS)
    # without `in [Group]` users are in no group; a policy only for users in a group cannot apply
    r = export_program(load_program('entity User { admin: Bool };\npermit (principal is User in Group::"g", action, resource);\n'
                                    'permit (principal in Group::"g", action == Action::"read", resource);', "p.mcpp"),
                       tools=TOOLS, schema=True)
    assert "entity User = {" in r.schema and r.ids == ["policy1"]
    assert cedarpy.validate_policies(r.policies, r.schema).validation_passed
    # a program that never names users keeps grants alone
    r = export_program(load_program(P + ";", "p.mcpp"), tools=TOOLS, schema=True)
    assert "User" not in r.schema and "principal: [Grant]," in r.schema
    # in a namespace
    r = export_program(load_program(U + 'permit (principal == User::"a", action, resource);', "p.mcpp"), tools=TOOLS, schema=True,
                       names=CedarNames.with_namespace("Acme"))
    assert 'principal == Acme::User::"a"' in r.policies and "principal: [Grant, User]," in r.schema
    assert cedarpy.validate_policies(r.policies, r.schema).validation_passed


def test_the_issues_example_exports_untyped_and_typed():
    src = ("entity User in [Group] { email: String, refund_cap: Long, scopes: Set<String> };\ndefault deny;\n"
           'permit (principal in Group::"payments", action == Action::"refund", resource) '
           "when { context.input.count <= principal.refund_cap };\n"
           'forbid (principal, action == Action::"read", resource) unless { principal.scopes.contains("k8s:write") };\n'
           'permit (principal is User, action == Action::"read", resource);\n')
    untyped = export_program(load_program(src, "p.mcpp")).policies
    assert 'unless { principal.scopes.contains("k8s:write") };' in untyped
    out = " ".join(typed(src).split())
    assert 'forbid (principal, action == Action::"read", resource) when { principal is User && !principal.scopes.contains("k8s:write") };' in out


USER_REFUSALS = [
    # Cedar has no Long/decimal conversion
    (U + P + "when { context.input.amount <= principal.cap };", {"tools": TOOLS},
     "2:65: error: cannot export to Cedar: permit \"policy0\": orders an integer principal attribute (cap) against a number argument"),
    (U + P + "when { context.input.amount == principal.cap };", {"tools": TOOLS}, "compares an integer with a number"),
    # untyped: a substring test between two computed strings
    (U + P + "when { principal.email.contains(context.input.note) };", {}, "substring test in mcpp"),
]


@pytest.mark.parametrize("src,kw,want", USER_REFUSALS)
def test_user_refusals(src, kw, want):
    assert want in refusal(src, **kw)


@pytest.mark.parametrize("src", [
    U + 'permit (principal is User, action, resource);',
    U + 'permit (principal == User::"ann", action, resource);',
    U + P + "when { principal.admin };",
    U + P + "when { principal has email };",
    U + P + "when { principal is User };",
])
def test_agentcore_has_no_users(src):
    """AgentCore's principal is one OAuthUser type with claims as tags: a policy about mcpp
    users is refused rather than read as about grants (which would change its meaning)."""
    assert "mcpp users (`entity User`) have no AgentCore form" in refusal(src, tools=TOOLS, names=AGENTCORE)


# ---- refusals ---------------------------------------------------------------------------------

REFUSALS = [
    ('limit "n" (principal, action, resource) max 1 per hour;', {}, "1:1: error: cannot export to Cedar: limit \"n\": Cedar has no counters"),
    (P + 'when { context.input.note.matches("a+") };', {"tools": TOOLS},
     '1:65: error: cannot export to Cedar: permit "policy0": the regex "a+" is not a `like` pattern'),
    (P + 'when { context.input.note.matches("^a.*b$") };', {"tools": TOOLS}, "is not a `like` pattern"),
    (P + "when { context.input.either == \"x\" };", {"tools": TOOLS}, "argument 'either' of tool 'refund' has no Cedar type (a union (anyOf))"),
    (P + "when { -context.input.count < 1 };", {"tools": TOOLS}, "negating an argument"),
    (P + "when { context.input.count < context.input.amount };", {"tools": TOOLS}, "orders an integer argument against a number argument"),
    ('permit (principal, action == Action::"ghost", resource);', {"tools": TOOLS}, 'Action::"ghost" is not a tool of the catalog'),
    ("default allow;", {}, "`default allow` needs --catalog"),
    (P + "when { context.input.note == null };", {}, "`null` (Cedar has no null"),
    (P + "when { context.input.note > 1.5 };", {}, "a fractional number"),
    (P + 'when { context.input.note.contains("a") };', {}, "substring test in mcpp"),
]


@pytest.mark.parametrize("src,kw,want", REFUSALS)
def test_refusals_name_the_rule_and_the_reason(src, kw, want):
    assert want in refusal(src, **kw)


def test_partial_leaves_out_and_lists_each_with_its_consequence():
    src = ('forbid (principal, action, resource) when { context.input.note.matches("a+") };\n'
           'permit (principal, action, resource);\nlimit "n" (principal, action, resource) max 1 per hour;\n')
    r = export_program(load_program(src, "p.mcpp"), partial=True)
    msgs = [d.render() for d in r.left_out]
    assert msgs[0].startswith('p.mcpp:1:45: warning: left out of the Cedar export: forbid "policy0"')
    assert msgs[0].endswith("Cedar will NOT deny the calls it denies")
    assert "Cedar will not count calls" in msgs[1]
    assert r.policies == "permit (principal, action, resource);\n"


def test_groups_sharing_a_tool_name_are_refused():
    src = 'group Action::"read" = [Action::"refund"];\npermit (principal, action in Action::"read", resource);'
    assert "action group 'read' has the name of a catalog tool" in refusal(src, tools=TOOLS)


# ---- regexes that are like patterns ------------------------------------------------------------

@pytest.mark.parametrize("regex,chunks", [
    ("abc", ("", "abc", "")), ("^abc$", ("abc",)), ("^a", ("a", "")), (r"a\.b$", ("", "a.b")),
    ("", ("", "")), ("(?s)x.*y", ("", "x", "y", "")), ("(?s)^.*$", ("", "")), (r"a\*", ("", "a*", "")),
    ("a.*b", None), ("a+", None), (r"\d", None), ("(?i)a", None), ("a$b", None),
])
def test_regex_as_like(regex, chunks):
    assert regex_as_like(regex) == chunks


@pytest.mark.parametrize("regex,patterns", [
    ("a|b", [("", "a", ""), ("", "b", "")]),
    ("^(x|xy)$", [("x",), ("xy",)]),
    (r"^https://(docs\.acme\.com|github\.com/acme/)", [("https://docs.acme.com", ""), ("https://github.com/acme/", "")]),
    ("^colou?r$", [("colour",), ("color",)]),
    ("[ab]c", [("", "ac", ""), ("", "bc", "")]),
    ("(^|/)etc", [("etc", ""), ("", "/etc", "")]),
    ("x|", [("", "")]),
    ("[^a]", None), ("a(^|b)", None), ("(?i)a|b", None), ("[a-z]", None), ("(a|b)(c|d)(e|f)(g|h)(i|j)(k|l)", None),
])
def test_regex_as_likes(regex, patterns):
    assert regex_as_likes(regex) == patterns


# ---- the schema --------------------------------------------------------------------------------

def test_json_schema_types():
    assert str(ctype_of({"type": "array", "items": {"type": "number"}})) == "Set<decimal>"
    assert str(ctype_of({"type": "string", "enum": ["a"]})) == "String"
    assert ctype_of({"type": ["string", "null"]}).kind == "Opaque"
    assert ctype_of({"type": "array"}).kind == "Opaque"
    assert str(ctype_of({"properties": {"a": {"type": "integer"}}, "required": ["a"]})) == "{a: Long}"


def test_schema_shape_follows_the_generator():
    src = 'group Action::"writes" = [Action::"refund"];\npermit (principal, action in Action::"writes", resource);'
    r = export_program(load_program(src, "p.mcpp"), tools=TOOLS, schema=True, names=CedarNames.with_namespace("Shop"))
    s = r.schema
    assert s.splitlines()[1] == "namespace Shop {"
    assert 'action "writes";' in s
    assert 'action "refund" in [Action::"writes"] appliesTo {' in s
    assert 'context: { "input": refundInput }' in s
    assert '"amount": decimal,' in s and '"tags"?: Set<String>' in s
    assert "either" not in s  # no Cedar type: left out of the schema
    assert 'permit (principal, action in Shop::Action::"writes", resource);' in r.policies


def test_our_policies_validate_against_the_cedar_for_agents_generator_schema():
    """The generator itself (cedar-policy-mcp-schema-generator, with objectsAsRecords and
    numbersAsDecimal), from a stub declaring mcpp's types: the typed export's policies
    validate against its schema too, for a catalog without enums (which it makes entities)."""
    from cedar_mcp_schema_generator import generate_schema

    stub = ('namespace Shop {\n  entity Group;\n  @mcp_principal("Grant")\n  entity Grant in [Group] = { "label": String };\n'
            '  @mcp_resource("Server")\n  entity Server;\n}\n')
    tools = [{"name": n, "inputSchema": {**s, "properties": {k: v for k, v in s["properties"].items() if k != "either"}}}
             for n, s in TOOLS.items()]
    gen = generate_schema(stub, tools, config={"objectsAsRecords": True, "numbersAsDecimal": True})
    assert gen["isOk"], gen["error"]
    src = (P + 'when { context.input.amount > 10 && context.input.note like "x*" && context.input.meta.k == "v" }'
           ' unless { context.input.tags.contains("t") };\npermit (principal, action, resource) when { context.input.note == 1 };')
    r = export_program(load_program(src, "p.mcpp"), tools={n: t["inputSchema"] for n, t in ((t["name"], t) for t in tools)},
                       names=CedarNames.with_namespace("Shop"))
    v = cedarpy.validate_policies(r.policies, gen["schema"])
    assert v.validation_passed, [str(e.error) for e in v.errors]


# ---- the command line ----------------------------------------------------------------------------

def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "mcpp", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_cli_writes_policies_and_schema(tmp_path):
    policy = tmp_path / "p.mcpp"
    policy.write_text(P + "when { context.input.amount <= 1000 };\n")
    catalog = tmp_path / "tools.json"
    catalog.write_text(json.dumps({"tools": [{"name": n, "inputSchema": s} for n, s in TOOLS.items()]}))
    r = run("compile", "--target", "cedar", policy, "--catalog", catalog, "-o", tmp_path / "p.cedar",
            "--schema-out", tmp_path / "p.cedarschema")
    assert r.returncode == 0, r.stderr
    assert cedarpy.validate_policies((tmp_path / "p.cedar").read_text(), (tmp_path / "p.cedarschema").read_text()).validation_passed


def test_cli_refuses_with_exit_1_and_partial_warns(tmp_path):
    policy = tmp_path / "p.mcpp"
    policy.write_text('permit (principal, action, resource);\nlimit "n" (principal, action, resource) max 1 per hour;\n')
    r = run("compile", "--target", "cedar", policy)
    assert r.returncode == 1 and r.stdout == ""
    assert re.search(r"p\.mcpp:2:1: error: cannot export to Cedar: limit \"n\": Cedar has no counters", r.stderr)
    r = run("compile", "--target", "cedar", policy, "--partial")
    assert r.returncode == 0
    assert r.stdout == "permit (principal, action, resource);\n"
    assert "p.mcpp:2:1: warning: left out of the Cedar export" in r.stderr
    assert "1 statement left out: Cedar will not enforce it" in r.stderr


@pytest.mark.parametrize("args,message", [
    (["--schema-out", "x.cedarschema"], "--schema-out needs --catalog"),
    (["--namespace", "a b"], "is not a Cedar namespace"),
    (["--grant", "g"], "apply to --target json"),
    (["--target", "rego"], "--target must be json or cedar"),
])
def test_cli_bad_usage_exits_2(tmp_path, args, message):
    policy = tmp_path / "p.mcpp"
    policy.write_text("permit (principal, action, resource);\n")
    target = [] if "--target" in args else ["--target", "cedar"]
    r = run("compile", *target, policy, *args, cwd=tmp_path)
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_cli_partial_is_only_for_cedar(tmp_path):
    policy = tmp_path / "p.mcpp"
    policy.write_text("permit (principal, action, resource);\n")
    r = run("compile", policy, "--partial")
    assert r.returncode == 2 and "apply to --target cedar" in r.stderr


# ---- AgentCore --------------------------------------------------------------------------------

ARN = "arn:aws:bedrock-agentcore:us-west-2:123456789012:gateway/refund-gateway"
AGENTCORE = CedarNames.agentcore(ARN, "RefundTool")


def test_agentcore_names_actions_by_target_and_scopes_the_gateway_as_it_requires():
    src = (P + "when { context.input.amount < 500 };\n"
           "forbid (principal, action, resource) when { context.input.note like \"*secret*\" };\n"
           'permit (principal == Grant::"john", action in [Action::"read", Action::"refund"], resource);\n')
    r = export_program(load_program(src, "p.mcpp"), tools=TOOLS, names=AGENTCORE, schema=True)
    assert ('permit (\n  principal,\n  action == AgentCore::Action::"RefundTool___refund",\n'
            f'  resource == AgentCore::Gateway::"{ARN}"\n)\nwhen {{ context.input.amount.lessThan(decimal("500.0")) }};') in r.policies
    assert "forbid (principal, action, resource is AgentCore::Gateway)" in r.policies
    assert 'principal == AgentCore::OAuthUser::"john"' in r.policies
    v = cedarpy.validate_policies(r.policies, r.schema)
    assert v.validation_passed, [str(e.error) for e in v.errors]


@pytest.mark.parametrize("src,want", [
    (P + 'when { principal.label == "x" };', "AgentCore principals have no label"),
    (P + 'when { principal in Group::"ops" };', "AgentCore principals have no groups"),
    ('permit (principal in Group::"ops", action, resource);', "AgentCore principals have no groups"),
    ('permit (principal, action, resource == Server::"s");', "a resource scope has no AgentCore form"),
    (P + 'when { resource == Server::"s" };', "conditions on `resource` have no AgentCore form"),
])
def test_agentcore_refuses_what_its_model_lacks(src, want):
    assert want in refusal(src, tools=TOOLS, names=AGENTCORE)


def test_agentcore_groups_are_written_as_their_tools():
    src = 'group Action::"money" = [Action::"refund", Action::"ghost"];\npermit (principal, action in Action::"money", resource);'
    r = export_program(load_program(src, "p.mcpp"), tools=TOOLS, names=AGENTCORE)
    assert 'action == AgentCore::Action::"RefundTool___refund"' in r.policies


def test_cli_agentcore(tmp_path):
    policy = tmp_path / "p.mcpp"
    policy.write_text(P + "when { context.input.amount < 500 };\n")
    catalog = tmp_path / "tools.json"
    catalog.write_text(json.dumps({"tools": [{"name": n, "inputSchema": s} for n, s in TOOLS.items()]}))
    r = run("compile", "--target", "cedar", policy, "--catalog", catalog, "--agentcore-gateway", ARN, "--agentcore-target", "RefundTool")
    assert r.returncode == 0, r.stderr
    assert 'AgentCore::Action::"RefundTool___refund"' in r.stdout
    r = run("compile", "--target", "cedar", policy, "--agentcore-gateway", ARN)
    assert r.returncode == 2 and "go together" in r.stderr
    r = run("compile", "--target", "cedar", policy, "--agentcore-gateway", ARN, "--agentcore-target", "T")
    assert r.returncode == 2 and "needs --catalog" in r.stderr


CONVERTIBLE = ["a|b", "^(x|xy)$", "^colou?r$", "[ab]c", "(^|/)etc", "(?s)^a.*b$", "(?s)a.*", r"\.pdf$", "^$", "x|",
               "(?:ab|c)?d", "^(a|b)(c|d)$", r"^a\*b", "[a-c]x?$"]


@given(st.sampled_from(CONVERTIBLE), st.text(alphabet="abcdxy/et.\n*pf", max_size=8))
def test_like_patterns_search_as_re2_does(regex, s):
    """The `||` of the patterns matches exactly the strings mcpp's RE2 search finds."""
    patterns = regex_as_likes(regex)
    assert patterns is not None
    assert any(like_match(s, p) for p in patterns) == (compile_regex(regex).search(s) is not None)
