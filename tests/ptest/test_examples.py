"""CI runs `mcpp test examples/`: every example policy (both forms) has its tests, they
pass, and they cover every rule, limit, condition and assert."""

import json

from .helpers import ROOT, mcpp


def test_every_example_is_tested_and_fully_covered():
    p = mcpp("test", "examples/", "--fail-under", "100")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "0 failed" in p.stdout and "total coverage: 100.0%" in p.stdout
    report = json.loads(mcpp("test", "examples/", "--coverage", "--format", "json").stdout)
    assert report["untested"] == [] and report["problems"] == []
    assert report["summary"]["failed"] == 0 and report["summary"]["passed"] >= 100
    policies = {c["policy"] for c in report["coverage"]["policies"]}
    expected = {str(p.relative_to(ROOT)) for p in ROOT.glob("examples/*") if p.suffix in (".mcpp", ".json")}
    assert policies == expected
    for c in report["coverage"]["policies"]:
        assert c["summary"]["total"]["percent"] == 100.0, c["policy"]
        assert c["summary"]["rules"]["total"] >= 2


def test_a_policy_path_runs_its_own_test_file():
    p = mcpp("test", "examples/refunds.mcpp", "examples/refunds.json")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "refunds.test.toml → examples/refunds.mcpp" in p.stdout
    assert "refunds.json.test.toml → examples/refunds.json" in p.stdout
