"""The bundled examples, exported to Cedar against a catalog of their tools: what
exports validates strictly and decides random calls as mcpp does (the limits and the
regexes that are not `like` patterns are left out, and exactly those)."""

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcpp.catalog import load_catalog
from mcpp.lang.cedar_export import export_program
from mcpp.lang.load import load_policy
from tests.cedar.oracle import check_typed_export
from tests.cedar.strategies import typed_calls
from tests.strategies import STRS

ROOT = Path(__file__).resolve().parents[2]
CATALOGS = {name: ROOT / f"examples/catalogs/{name}.json" for name in ("github", "http", "kubernetes", "refunds", "shell", "slack")}
# what each example cannot take to Cedar, by reason
LEFT_OUT = {
    "github": ["regex"],
    "http": ["regex", "regex", "counters"],
    "kubernetes": ["counters"],
    "refunds": ["counters"],
    "shell": ["regex", "regex", "regex"],
    "slack": [],
}


def _catalog(name: str) -> dict[str, dict]:
    return {n: t.input_schema for n, t in load_catalog(CATALOGS[name]).tools.items()}


def _strings(path: Path) -> tuple[str, ...]:
    """The policy's own string literals, so random calls reach its conditions."""
    found = re.findall(r'"((?:[^"\\]|\\.)*)"', path.read_text())
    return tuple(sorted(set(STRS) | {s for s in found if "\\" not in s}))


@pytest.mark.parametrize("name", sorted(CATALOGS))
def test_example_exports_what_cedar_can_express(name):
    program = load_policy(ROOT / f"examples/{name}.mcpp")
    result = export_program(program, tools=_catalog(name), partial=True, schema=True)
    reasons = sorted("regex" if "regex" in d.message else "counters" if "counters" in d.message else d.message
                     for d in result.left_out)
    assert reasons == sorted(LEFT_OUT[name])


@pytest.mark.parametrize("name", sorted(CATALOGS))
@settings(max_examples=30)
@given(data=st.data())
def test_example_decides_as_mcpp(name, data):
    path = ROOT / f"examples/{name}.mcpp"
    catalog = _catalog(name)
    requests = data.draw(st.lists(typed_calls(catalog, _strings(path)), min_size=1, max_size=8))
    check_typed_export(load_policy(path), catalog, requests, left_out_ok=("is not a `like` pattern", "no counters"))
