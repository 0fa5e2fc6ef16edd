"""Schema defaults in the API and `mcpp eval`: with a catalog (`load_policy(catalog=…)`, or
the policy's own `@catalog` for `eval`), a call is decided with its tool's declared
defaults filled in, as the gateway decides it (catalog/defaults.py) — the same call, the
same decision, one by one, in a batch, and in `explain`."""

from __future__ import annotations

import json
import subprocess
import sys

import mcpp
from mcpp.catalog import Catalog

REFUND = {"type": "object", "required": ["charge_id"],
          "properties": {"charge_id": {"type": "string"}, "amount": {"type": "number", "default": 5000}}}
CAT = Catalog.from_tools([{"name": "refund_payment", "inputSchema": REFUND}], server_name="payments")
POLICY = """@catalog("tools.json")
default deny;
permit (principal, action == Action::"refund_payment", resource);
@id("cap")
forbid (principal, action == Action::"refund_payment", resource)
when { context.input has amount && context.input.amount > 1000 };
"""
CALLS = [{"charge_id": "c"}, {"charge_id": "c", "amount": 5000}, {"charge_id": "c", "amount": 10}]


def test_the_api_decides_the_filled_call():
    typed = mcpp.load_policy(POLICY, catalog=CAT)
    untyped = mcpp.load_policy(POLICY)
    assert [typed.decide("refund_payment", a, dry_run=True).decision for a in CALLS] == ["deny", "deny", "allow"]
    # without a catalog there is no schema to fill from: the call as sent
    assert untyped.decide("refund_payment", CALLS[0], dry_run=True).decision == "allow"
    x = typed.explain("refund_payment", {"charge_id": "c"})
    assert x.decision.decision == "deny" and x.decision.policy == "cap"
    args = {"charge_id": "c"}
    typed.decide("refund_payment", args, dry_run=True)
    assert args == {"charge_id": "c"}  # the caller's arguments are not changed


def test_eval_fills_with_the_policy_catalog(tmp_path):
    (tmp_path / "tools.json").write_text(CAT.dumps())
    (tmp_path / "p.mcpp").write_text(POLICY)
    (tmp_path / "calls.jsonl").write_text("".join(json.dumps({"name": "refund_payment", "arguments": a}) + "\n"
                                                  for a in CALLS))
    r = subprocess.run([sys.executable, "-m", "mcpp", "eval", "p.mcpp", "--calls", "calls.jsonl"], cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert [json.loads(line)["decision"] for line in r.stdout.splitlines()] == ["deny", "deny", "allow"]
    r = subprocess.run([sys.executable, "-m", "mcpp", "eval", "p.mcpp", "--call",
                        json.dumps({"name": "refund_payment", "arguments": {"charge_id": "c"}})],
                       cwd=tmp_path, capture_output=True, text=True)
    assert json.loads(r.stdout)["policy"] == "cap"
    # a catalog the policy names but that cannot be used is an error, never skipped
    (tmp_path / "tools.json").unlink()
    r = subprocess.run([sys.executable, "-m", "mcpp", "eval", "p.mcpp", "--calls", "calls.jsonl"], cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 1 and "cannot use the tool catalog" in r.stderr and r.stdout == "", r.stderr


def test_mcpp_test_decides_the_filled_call(tmp_path):
    """`mcpp test` on a policy that names its catalog: a case is decided as the gateway
    decides it. A forbid that reads `!(has amount)` looks like it denies the omitted call;
    the gateway fills 5000 in, so it does not — and the case says what really happens."""
    (tmp_path / "tools.json").write_text(CAT.dumps())
    policy = POLICY + ('@id("must-say")\nforbid (principal, action == Action::"refund_payment", resource)\n'
                       'when { !(context.input has amount) };\n')
    (tmp_path / "p.mcpp").write_text(policy)
    (tmp_path / "p.test.toml").write_text(
        '[[case]]\nname = "omitted"\ntool = "refund_payment"\narguments = { charge_id = "c" }\n'
        'decision = "deny"\npolicy = "cap"\n\n'
        '[[case]]\nname = "small"\ntool = "refund_payment"\narguments = { charge_id = "c", amount = 10 }\n'
        'decision = "allow"\n')
    r = subprocess.run([sys.executable, "-m", "mcpp", "test", "p.mcpp"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[-1].startswith("2 passed, 0 failed"), r.stdout
    (tmp_path / "tools.json").unlink()  # named but missing: an error, never a run without it
    r = subprocess.run([sys.executable, "-m", "mcpp", "test", "p.mcpp"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 1 and "no such catalog file" in r.stderr, r.stdout + r.stderr
