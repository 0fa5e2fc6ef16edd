"""`mcpp test --suggest` for a policy that names a catalog: the witnesses are typed by the
catalog (each call conforms to its tool's inputSchema), only the catalog's tools are
proposed, and every case is settled through the gateway's admission exactly as `mcpp test`
runs it (declared defaults filled in) — so every printed case passes when pasted."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings

from mcpp.catalog import Catalog
from mcpp.catalog.conformance import check, closed_world, compile_schema
from mcpp.lang.load import load_policy
from mcpp.lang.program import load_program
from mcpp.policytest.cases import parse_test_file
from mcpp.policytest.coverage import CaseCounters
from mcpp.policytest.runner import catalog_fill, named_catalog, run_case, run_paths
from mcpp.policytest.suggest import Suggester, suggest_file, suggest_toml
from mcpp.runtime.engine import Engine
from tests.analyzer.strategies import programs
from tests.gateway.test_typed_property import catalogs

from .helpers import ROOT, mcpp

INT_FROM_1 = {"type": "integer", "minimum": 1}


def tools_json(**tools) -> Catalog:
    """tool name → (properties, required)."""
    return Catalog.from_tools([{"name": n, "inputSchema": {"type": "object", "properties": props, "required": list(req)}}
                               for n, (props, req) in tools.items()])


def write(tmp_path: Path, policy: str, catalog: Catalog, annotate: bool = True) -> Path:
    """`p.mcpp` naming `tools.json` (by `@catalog`, or by an mcpp.toml beside it)."""
    (tmp_path / "tools.json").write_text(catalog.dumps())
    if annotate:
        policy = '@catalog("tools.json")\n' + policy
    else:
        (tmp_path / "mcpp.toml").write_text('catalog = "tools.json"\n')
    (tmp_path / "p.mcpp").write_text(policy)
    return tmp_path / "p.mcpp"


def schemas_of(catalog: Catalog) -> dict:
    """A validator per tool, over the schema the gateway checks (undeclared arguments refused)."""
    return {n: compile_schema(closed_world(t.input_schema)) for n, t in catalog.tools.items()}


def suggest_and_paste(tmp_path: Path, policy: Path) -> tuple[str, list[dict]]:
    """`mcpp test --suggest` pasted into the policy's test file, then `mcpp test`: every case passes."""
    p = mcpp("test", "--suggest", policy)
    assert p.returncode == 0, p.stderr
    (tmp_path / "p.test.toml").write_text(p.stdout)
    run = mcpp("test", policy)
    assert run.returncode == 0, (p.stdout, run.stdout, run.stderr)
    cases = tomllib.loads(p.stdout).get("case", [])
    assert f"{len(cases)} passed, 0 failed" in run.stdout, run.stdout
    return p.stdout, cases


def calls_of(case: dict) -> list[tuple[str, dict]]:
    """(tool, arguments) of each call of a printed case."""
    steps = case.get("calls", [case])
    return [(s.get("tool", case.get("tool")), s.get("arguments", case.get("arguments", {}))) for s in steps]


# ---- witnesses the schema shapes ------------------------------------------------------------------

PAY = 'permit (principal, action == Action::"pay", resource) when { context.input.amount < 100 };\n'
TYPED = [
    # (policy, catalog, what each proposed call's arguments must satisfy)
    pytest.param(PAY, tools_json(pay=({"amount": INT_FROM_1}, ("amount",))),
                 lambda a: isinstance(a["amount"], int) and 1 <= a["amount"], id="integer-minimum"),
    pytest.param(PAY + '@id("no-big") forbid (principal, action == Action::"pay", resource) '
                 'when { context.input.cur like "*X*" };\n',
                 tools_json(pay=({"amount": INT_FROM_1, "cur": {"type": "string", "enum": ["USD", "EUR", "XAU"]}},
                                 ("amount", "cur"))),
                 lambda a: a["cur"] in ("USD", "EUR", "XAU"), id="string-enum"),
    pytest.param('permit (principal, action == Action::"note", resource);\n'
                 '@id("long") forbid (principal, action == Action::"note", resource) '
                 'when { context.input.memo like "*ab*" };\n',
                 tools_json(note=({"memo": {"type": "string", "maxLength": 3}}, ("memo",))),
                 lambda a: isinstance(a["memo"], str) and len(a["memo"]) <= 3, id="string-maxLength"),
    # a declared default: a case that omits `cur` is decided with it filled in (the
    # untyped witness omitted it and was denied by the forbid once `mcpp test` filled it)
    pytest.param(PAY + '@id("no-eur") forbid (principal, action == Action::"pay", resource) '
                 'when { context.input.cur == "EUR" };\n',
                 tools_json(pay=({"amount": INT_FROM_1, "cur": {"type": "string", "default": "EUR"}}, ("amount",))),
                 lambda a: 1 <= a["amount"], id="default"),
    # no tool scope: the catalog's tools, never the `other` stand-in
    pytest.param('permit (principal, action, resource);\n@id("seven") forbid (principal, action, resource) '
                 'when { context.input.n == 7 };\n',
                 tools_json(a=({"n": {"type": "integer", "minimum": 5, "maximum": 9}}, ("n",)),
                            b=({"n": {"type": "integer", "minimum": 5, "maximum": 9}}, ("n",))),
                 lambda a: 5 <= a["n"] <= 9, id="no-tool-scope"),
]


# each named by `@catalog`; the one with a default also by an mcpp.toml (found as `mcpp test` finds it)
NAMED = [pytest.param(*p.values, True, id=f"{p.id}-@catalog") for p in TYPED] + [
    pytest.param(*TYPED[3].values, False, id="default-mcpp.toml")]


@pytest.mark.parametrize("policy,catalog,ok,annotate", NAMED)
def test_every_suggested_case_conforms_and_passes_when_pasted(tmp_path, policy, catalog, ok, annotate):
    path = write(tmp_path, "default deny;\n" + policy, catalog, annotate)
    text, cases = suggest_and_paste(tmp_path, path)
    assert cases and "Typed by the policy's catalog" in text
    validators = schemas_of(catalog)
    for case in cases:
        for tool, args in calls_of(case):
            assert tool in validators, (tool, text)  # only the catalog's tools
            assert check(validators[tool], args) is None, (case["name"], args)
            assert ok(args), (case["name"], args)


def test_untyped_suggestions_fail_under_the_catalog_typed_ones_pass():
    """The bug this fixes: the untyped suggester's cases for a policy whose catalog declares
    a default fail under `mcpp test` once its admission fills the default in; the typed
    ones pass."""
    policy, cat, _ = TYPED[3].values
    program = load_program("default deny;\n" + policy, "p.mcpp")
    fill = catalog_fill(cat)

    def failures(text: str) -> list[str]:
        tf = parse_test_file(text, Path("p.test.toml"))
        engine = Engine(program, store=CaseCounters())
        return [c.name for c in tf.cases if not run_case(engine, c, Path("p.mcpp"), fill=fill).passed]

    assert failures(suggest_toml(program, timeout_ms=10000))  # untyped: refused by `mcpp test`
    assert not failures(suggest_toml(program, timeout_ms=10000, catalog=cat))


def test_an_argument_the_gateway_fills_back_in_is_left_out():
    """A case writes the call as sent: an argument whose value is the declared default the
    admission would fill in is left out (the engine decides the same filled call)."""
    cat = tools_json(pay=({"amount": INT_FROM_1, "cur": {"type": "string", "default": "EUR"},
                           "tags": {"type": "array", "items": {"type": "string"}, "default": []}}, ("amount",)))
    program = load_program("default deny;\n" + TYPED[3].values[0], "p.mcpp")
    sugs = {s.rule: s for s in Suggester(program, 5000, cat).all()}
    (denied,) = [c for c in sugs["no-eur"].cases if c.name == "forbid no-eur denies pay"]
    assert denied.steps[0].arguments.keys() == {"amount"}, denied.steps[0].arguments
    assert all("tags" not in st.arguments for s in sugs.values() for c in s.cases for st in c.steps)
    fill = catalog_fill(cat)
    for c in (c for s in sugs.values() for c in s.cases):
        assert run_case(Engine(program, store=CaseCounters()), c, Path("p.mcpp"), fill=fill).passed, c.name


# ---- tools the catalog lacks -------------------------------------------------------------------------

def test_a_rule_naming_only_tools_the_catalog_lacks_gets_a_note_and_no_case(tmp_path):
    policy = ('default deny;\n' + PAY
              + '@id("ghost") permit (principal, action in [Action::"refund", Action::"void"], resource);\n'
              + '@id("half") forbid (principal, action in [Action::"pay", Action::"void"], resource) '
                'when { context.input.amount == 5 };\n'
              + '@id("ghost-limit") limit "r" (principal, action == Action::"refund", resource) max 1 per day;\n')
    path = write(tmp_path, policy, tools_json(pay=({"amount": INT_FROM_1}, ("amount",))))
    text, cases = suggest_and_paste(tmp_path, path)
    sections = {s.split(" (line", 1)[0]: s for s in text.split("# ---- ")[1:]}
    ghost = sections["permit 'ghost'"]
    assert "# the catalog has no tool 'refund', so the gateway refuses every call to it" in ghost
    assert "# the catalog has no tool 'void', so the gateway refuses every call to it" in ghost
    assert "[[case]]" not in ghost
    limit = sections["limit 'ghost-limit'"]
    assert "the catalog has no tool 'refund'" in limit and "[[case]]" not in limit
    half = sections["forbid 'half'"]  # names one listed tool: its cases call that one
    assert "the catalog has no tool 'void'" in half and 'name = "forbid half denies pay"' in half
    assert {tool for c in cases for tool, _ in calls_of(c)} == {"pay"}


PAY_ONLY = tools_json(pay=({"amount": {"type": "integer"}}, ()))
GROUPS = 'group Action::"ops" = [];\ngroup Action::"fin" = [Action::"pay", Action::"void"];\n'


@pytest.mark.parametrize("scope,notes,tools", [
    ('action == Action::"void"', ["the catalog has no tool 'void', so the gateway refuses every call to it"], set()),
    # a group's own name beside a listed member is no missing tool; its unlisted member is
    ('action in Action::"fin"', ["the catalog has no tool 'void', so the gateway refuses every call to it"], {"pay"}),
    # a group with no member in the catalog: only a tool named like it could be called, and none is
    ('action in Action::"ops"', ["the catalog has no tool 'ops', so the gateway refuses every call to it"], set()),
    ('action', [], {"pay"}),  # no tool scope: the catalog's tools
])
def test_which_tools_a_typed_rule_is_suggested_for(scope, notes, tools):
    program = load_program(f'default deny;\n{GROUPS}@id("r") permit (principal, {scope}, resource) '
                           'when { context.input.amount > 3 };\n', "p.mcpp")
    (sug,) = Suggester(program, 5000, PAY_ONLY).all()
    assert [n for n in sug.notes if "catalog" in n] == notes
    assert {st.tool for c in sug.cases for st in c.steps} == tools


def test_a_witness_the_admission_refuses_is_noted_not_proposed():
    """`multipleOf` is a keyword the typed encoding widens (it adds nothing: analyzer/typed.py),
    so the solver's call may not conform — here none can: it is noted, never proposed."""
    cat = Catalog.from_tools([{"name": "pay", "inputSchema": {
        "type": "object", "required": ["amount"],
        "properties": {"amount": {"type": "integer", "minimum": 1, "maximum": 999, "multipleOf": 1000}}}}])
    program = load_program('default deny;\n@id("p") permit (principal, action == Action::"pay", resource) '
                           'when { context.input.amount < 100 };\n', "p.mcpp")
    (sug,) = Suggester(program, 5000, cat).all()
    assert not sug.cases, sug.cases
    assert any(n.startswith("pay: no call allowed by p could be confirmed: the counterexample does not conform")
               for n in sug.notes), sug.notes


# ---- limits ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("lo,hi", [(3, 4), (6, 9), (1, 1)])
def test_a_limit_sequence_uses_an_increment_the_schema_allows(tmp_path, lo, hi):
    policy = ('default deny;\npermit (principal, action == Action::"take", resource);\n'
              '@id("budget") limit "n" (principal, action == Action::"take", resource) '
              'max 10 per day scope policy increment context.input.n;\n')
    path = write(tmp_path, policy, tools_json(take=({"n": {"type": "integer", "minimum": lo, "maximum": hi}}, ("n",))))
    _, cases = suggest_and_paste(tmp_path, path)
    over = next(c for c in cases if c["name"].startswith("limit budget: call"))
    n = over["arguments"]["n"]
    assert isinstance(n, int) and lo <= n <= hi, over
    *allowed, last = over["calls"]
    assert last["decision"] == "deny" and last["policy"] == "budget"
    assert sum(s.get("repeat", 1) for s in allowed) == 10 // n  # as many calls as the budget takes


# ---- a catalog that cannot be used -------------------------------------------------------------------

@pytest.mark.parametrize("catalog", [None, "{ not json"], ids=["missing", "not-json"])
def test_an_unusable_catalog_is_mcpp_tests_error(tmp_path, catalog):
    path = tmp_path / "p.mcpp"
    path.write_text('@catalog("tools.json")\ndefault deny;\n' + PAY)
    if catalog is not None:
        (tmp_path / "tools.json").write_text(catalog)
    (tmp_path / "p.test.toml").write_text("")
    suggested = mcpp("test", "--suggest", path)  # (no traceback: the helper checks)
    tested = mcpp("test", path)
    assert suggested.returncode == tested.returncode == 1
    assert suggested.stdout == ""
    assert suggested.stderr.strip() and suggested.stderr.strip() in tested.stderr


# ---- random typed policies ----------------------------------------------------------------------------

@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])  # the profile's count (about 0.1 s each)
@given(programs(max_policies=3), catalogs())
def test_suggestions_for_random_typed_policies_pass_when_pasted(prog, cat):
    """Random policies over random catalogs (tests/gateway/test_typed_property.py): every
    suggested case calls a tool of the catalog with arguments that conform to its schema,
    and passes when run as `mcpp test` runs it (the catalog's admission, `catalog_fill`)."""
    from mcpp.lang.formatter import format_document

    text = suggest_toml(prog, timeout_ms=5000, catalog=cat)
    tf = parse_test_file(text, Path("p.test.toml"))
    validators = schemas_of(cat)
    fill = catalog_fill(cat)
    engine = Engine(prog, store=CaseCounters())
    for case in tf.cases:
        for st in case.steps:
            assert st.tool in validators, (st.tool, text)
            assert check(validators[st.tool], st.arguments) is None, (case.name, st.arguments, text)
        r = run_case(engine, case, Path("p.mcpp"), fill=fill)
        assert r.passed, (format_document(prog.document), cat.dumps(), text, case.name, r.mismatch)
    event(f"{len(tf.cases)} cases" if len(tf.cases) < 3 else "3+ cases")


# ---- the examples: every one names its catalog --------------------------------------------------------

EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.mcpp"))


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_examples_typed_suggestions_pass_when_pasted(tmp_path, name):
    """`mcpp test --suggest examples/<name>` (typed by the example's own @catalog), pasted as
    its test file: `mcpp test` (run_paths) passes every case, and each calls a catalog tool
    with conforming arguments."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    policy = tmp_path / "examples" / name
    text = suggest_file(policy, timeout_ms=10000)
    assert "Typed by the policy's catalog" in text
    (policy.parent / f"{policy.stem}.test.toml").write_text(text)
    run = run_paths([policy])
    assert not run.problems and run.failed == 0 and run.passed == text.count("[[case]]") > 0, (text, run.problems)
    cat = named_catalog(policy, load_policy(policy))
    assert cat is not None
    validators = schemas_of(cat)
    for case in parse_test_file(text, policy.with_suffix(".test.toml")).cases:
        for st in case.steps:
            assert check(validators[st.tool], st.arguments) is None, (case.name, st.arguments)
