"""The bundled examples are exemplary: each names the catalog of the tools it governs
(examples/catalogs/, in the format `mcpp catalog pull` writes), checks clean against it,
and passes lint — typed by that catalog, as `mcpp serve` analyses it — with no error and
no fail-open warning, in its source form and in its compiled JSON form."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mcpp.catalog import load_catalog, validate
from mcpp.catalog.conformance import SchemaCache, check
from mcpp.catalog.locate import find_catalog_for
from mcpp.catalog.model import parse_catalog
from mcpp.lang.load import load_policy
from tests.safe_lint import unsafe_findings

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
NAMES = sorted(p.stem for p in EXAMPLES.glob("*.mcpp"))


def test_every_example_is_in_the_table():
    assert NAMES == ["github", "http", "kubernetes", "refunds", "shell", "slack"]
    assert sorted(p.stem for p in (EXAMPLES / "catalogs").glob("*.json")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_example_names_its_catalog_and_checks_clean(name):
    path = EXAMPLES / f"{name}.mcpp"
    program = load_policy(path)
    catalog = find_catalog_for(str(path), program)
    assert catalog is not None, f"{path} has no @catalog"
    assert Path(catalog.path).resolve() == (EXAMPLES / "catalogs" / f"{name}.json").resolve()
    assert "default deny;" in path.read_text()
    # an unknown tool, an undeclared argument, a type that cannot match: all errors here
    found = validate(program, catalog)
    assert [d for d in found if d.severity == "error"] == []
    # the only warnings are fail-closed ones, kept on purpose: refunds' cap and daily
    # budget deny a refund that omits its (optional) amount, which would refund it all
    assert {(name, d.code) for d in found} <= {("refunds", "catalog-unguarded-optional")}
    assert all("fails closed" in d.message for d in found), [d.message for d in found]


@pytest.mark.parametrize("form", ["mcpp", "json"])
@pytest.mark.parametrize("name", NAMES)
def test_example_passes_lint_typed_by_its_catalog(name, form):
    program = load_policy(EXAMPLES / f"{name}.{form}")
    catalog = load_catalog(EXAMPLES / "catalogs" / f"{name}.json")
    assert unsafe_findings(program, catalog) == []


@pytest.mark.parametrize("name", NAMES)
def test_example_catalog_is_what_catalog_pull_writes(name):
    """Canonical bytes, verified hashes, and schemas the gateway can check calls against."""
    path = EXAMPLES / "catalogs" / f"{name}.json"
    text = path.read_text()
    catalog = parse_catalog(text, str(path))
    assert catalog.dumps() == text
    cache = SchemaCache()
    for tool in catalog.tools.values():
        validator = cache.get(tool.input_schema)
        assert check(validator, {"__undeclared__": 1}) is not None  # closed world: undeclared arguments refused
        assert tool.definition.get("description"), tool.name


ISSUE_URL = "https://api.acme.com.evil.example/x"  # allowed by the unanchored regex of issue 10


@pytest.mark.parametrize("form", ["mcpp", "json"])
@pytest.mark.parametrize("tool", ["http_request.post", "http_request.get"])
def test_http_allowlist_is_anchored(form, tool):
    # (only the POST declares `body_bytes`: given to the GET, the gateway would refuse it first)
    extra = {"body_bytes": 10} if tool.endswith("post") else {}
    call = json.dumps({"name": tool, "arguments": {"url": ISSUE_URL, **extra}})
    p = subprocess.run([sys.executable, "-m", "mcpp", "eval", f"examples/http.{form}", "--call", call],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["decision"] == "deny", out
    assert "not on the Acme allowlist" in out["message"]
    ok = json.dumps({"name": tool, "arguments": {"url": "https://api.acme.com/v1/x", **extra}})
    p = subprocess.run([sys.executable, "-m", "mcpp", "eval", f"examples/http.{form}", "--call", ok],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert json.loads(p.stdout)["decision"] == "allow", p.stdout + p.stderr


@pytest.mark.parametrize("form", ["mcpp", "json"])
@pytest.mark.parametrize("name", NAMES)
def test_serve_would_put_every_example_in_force(name, form):
    """`mcpp serve`'s gates (asserts proved and no error-level finding, typed by the
    catalog the policy names) accept the example as shipped."""
    from mcpp.runtime.gateway.policies import load_verified

    policy, _ = load_verified(str(EXAMPLES / f"{name}.{form}"))
    assert policy.verify() or form == "json"  # the asserts it proved (the JSON form has none)
