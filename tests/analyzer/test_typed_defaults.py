"""Schema defaults in the typed analysis (docs/analyzer.md, "Typed analysis"): the gateway
fills a tool's declared defaults into the call before the policy decides
(catalog/defaults.py), so an argument it fills is present in every call the policy sees.
The analyzer counts on exactly that: a proof covers the omitted call as the upstream runs
it, a counterexample is the filled call and replays on the engine, and a default the
gateway does not fill is reported (lint `unfilled-default`, verify's caveats)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mcpp.analyzer.lints import lint
from mcpp.analyzer.typed import typed_session
from mcpp.analyzer.verify import verify
from mcpp.catalog import Catalog
from mcpp.catalog.conformance import check as conforms, closed_world, compile_schema
from mcpp.catalog.defaults import fill
from mcpp.lang.program import load_program
from mcpp.runtime.engine import Engine, Grant

# what the Python SDK publishes for refund_payment(charge_id: str, amount: float = 5000)
REFUND = {"type": "object", "required": ["charge_id"], "title": "refund_paymentArguments",
          "properties": {"charge_id": {"type": "string", "title": "Charge Id"},
                         "amount": {"type": "number", "default": 5000, "title": "Amount"}}}
CAT = Catalog.from_tools([{"name": "refund_payment", "inputSchema": REFUND}], server_name="payments")

# the hostile finding: the forbid exempts the omission, the upstream refunds 5000 for it
HOSTILE = """default deny;
permit (principal, action == Action::"refund_payment", resource);
@id("cap")
forbid (principal, action == Action::"refund_payment", resource)
when { context.input has amount && context.input.amount > 1000 };
@id("no-large-refunds")
assert deny (principal, action == Action::"refund_payment", resource)
when { context.input has amount && context.input.amount > 1000 };
@id("omitted-is-the-default")
assert deny (principal, action == Action::"refund_payment", resource)
unless { context.input has amount && context.input.amount <= 1000 };
"""


def prog(text: str):
    return load_program(text, "p.mcpp")


def test_the_omitted_amount_is_proved_denied_as_the_gateway_fills_it():
    program = prog(HOSTILE)
    results = {r.id: r for r in verify(program, session=typed_session(CAT))}
    assert results["no-large-refunds"].status == "pass"
    # every call without an amount of at most 1000 is denied: the omitted one runs with 5000
    assert results["omitted-is-the-default"].status == "pass", results["omitted-is-the-default"].message
    engine = Engine(program)
    g = Grant("anonymous", "", frozenset())
    assert engine.decide("refund_payment", fill(REFUND, {"charge_id": "c"}), g, "default", reserve=False).decision == "deny"
    # untyped (a gateway that checks no schema fills nothing): the omitted call is allowed, and said so
    untyped = {r.id: r for r in verify(program)}
    assert untyped["omitted-is-the-default"].status == "fail"
    assert "amount" not in untyped["omitted-is-the-default"].witness.args


POLICIES = [
    # a permit bounded above the default: the FAIL is a call the default makes allowed
    ("permit (principal, action == Action::\"refund_payment\", resource) when { context.input.amount <= 6000 };",
     "assert deny (principal, action == Action::\"refund_payment\", resource);"),
    # reads `has`: always true, so only the value decides
    ("permit (principal, action == Action::\"refund_payment\", resource) when { context.input has amount };",
     "assert deny (principal, action == Action::\"refund_payment\", resource) when { context.input.charge_id == \"c\" };"),
    # the rule never reads amount: the counterexample still carries the default the upstream runs
    ("permit (principal, action == Action::\"refund_payment\", resource) when { context.input.charge_id like \"ch_*\" };",
     "assert deny (principal, action == Action::\"refund_payment\", resource);"),
]


@pytest.mark.parametrize("permit, assertion", POLICIES)
def test_a_fail_is_the_filled_call_and_replays_on_the_engine(permit, assertion):
    program = prog(f"default deny;\n{permit}\n{assertion}\n")
    (r,) = verify(program, session=typed_session(CAT))
    assert r.status == "fail", r.message
    args = r.witness.args
    assert "amount" in args and fill(REFUND, args) == args  # the call the gateway decides and forwards
    assert conforms(compile_schema(closed_world(REFUND)), args) is None
    d = Engine(program).decide("refund_payment", args, r.witness.grant, r.witness.server, reserve=False)
    assert d.decision == "allow"
    # the same call sent without `amount`, filled by the gateway, when the witness holds the default
    if args["amount"] == 5000:
        sent = {k: v for k, v in args.items() if k != "amount"}
        assert Engine(program).decide("refund_payment", fill(REFUND, sent), r.witness.grant, r.witness.server,
                                      reserve=False).decision == "allow"


MODES = {"type": "object", "required": ["svc"], "properties": {
    "svc": {"type": "string"},
    "mode": {"anyOf": [{"const": "fast", "default": "fast"}, {"const": "safe"}]},  # only a branch: not filled
    "limit": {"type": "number", "maximum": 10, "default": 50},  # does not conform: refused
    "retries": {"type": "integer", "default": 3},
}}
DEPLOY = Catalog.from_tools([{"name": "deploy", "inputSchema": MODES}], server_name="d")


@pytest.mark.parametrize("condition, expected", [
    ("context.input has mode && context.input.mode == \"fast\"", [("mode", "unfilled")]),
    ("context.input.limit > 5", [("limit", "refused")]),
    ("context.input.retries > 5", []),
    ("context.input.svc == \"db\"", []),
])
def test_unfilled_default_names_the_arguments_a_rule_reads(condition, expected):
    text = ("default deny;\npermit (principal, action == Action::\"deploy\", resource);\n"
            f"@id(\"r\")\nforbid (principal, action == Action::\"deploy\", resource) when {{ {condition} }};\n")
    found = [d for d in lint(prog(text), timeout_ms=10000, session=typed_session(DEPLOY, 10000))
             if d.code == "unfilled-default"]
    assert [(d.data["argument"], d.data["kind"]) for d in found] == expected
    for d in found:
        assert d.severity == "warning" and d.span.line == 4 and d.data["rule"] == "r"
    assert [d for d in lint(prog(text), timeout_ms=10000) if d.code == "unfilled-default"] == []  # untyped: none


def test_a_default_only_a_branch_declares_stays_possibly_absent():
    text = ("default deny;\npermit (principal, action == Action::\"deploy\", resource);\n"
            "assert deny (principal, action == Action::\"deploy\", resource) when { !(context.input has mode) };\n"
            "assert deny (principal, action == Action::\"deploy\", resource) when { !(context.input has retries) };\n")
    mode_absent, retries_absent = verify(prog(text), session=typed_session(DEPLOY))
    # a call without `mode` reaches the policy (the gateway does not fill it)
    assert mode_absent.status == "fail" and "mode" not in mode_absent.witness.args
    assert mode_absent.witness.args["retries"] == fill(MODES, mode_absent.witness.args)["retries"]
    # no call lacks `retries`: the assertion selects nothing, so nothing can fail it
    assert retries_absent.status == "pass"


def test_verify_prints_the_caveats(tmp_path):
    (tmp_path / "tools.json").write_text(DEPLOY.dumps())
    (tmp_path / "p.mcpp").write_text(
        '@catalog("tools.json")\ndefault deny;\npermit (principal, action == Action::"deploy", resource);\n'
        'forbid (principal, action == Action::"deploy", resource) when { context.input has mode && context.input.mode == "fast" };\n')
    r = subprocess.run([sys.executable, "-m", "mcpp", "verify", "p.mcpp"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "caveat (line 4): deploy: argument `mode`: only conditional subschemas" in r.stdout, r.stdout
    r = subprocess.run([sys.executable, "-m", "mcpp", "verify", "-f", "json", "p.mcpp"], cwd=tmp_path,
                       capture_output=True, text=True)
    (caveat,) = json.loads(r.stdout)["files"][0]["typed"]["caveats"]
    assert (caveat["tool"], caveat["argument"], caveat["kind"], caveat["line"]) == ("deploy", "mode", "unfilled", 4)
