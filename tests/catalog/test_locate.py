"""Where a policy names its catalog: `@catalog("…")` on its `default` statement (else the
nearest mcpp.toml). The annotation anywhere else names nothing, and says so."""

from __future__ import annotations

import pytest

from mcpp.catalog.locate import catalog_annotation
from mcpp.lang.program import check_source

ON_DEFAULT = '@catalog("tools.json")\ndefault deny;\npermit (principal, action, resource);\n'


@pytest.mark.parametrize("src", [
    '@catalog("tools.json")\npermit (principal, action, resource);\n',
    'default deny;\n@catalog("tools.json")\nforbid (principal, action, resource);\n',
    '@catalog("tools.json")\nlimit "l" (principal, action, resource) max 1 per hour;\n',
    '@catalog("tools.json")\nassert deny (principal, action == Action::"t", resource);\n',
])
def test_a_catalog_annotation_off_the_default_statement_is_a_warning_and_names_nothing(src):
    program, diags = check_source(src, "p.mcpp")
    [w] = [d for d in diags if d.code == "catalog"]
    assert w.severity == "warning" and "only on its `default` statement" in w.message
    assert w.span.line == src.splitlines().index('@catalog("tools.json")') + 1
    assert catalog_annotation(program) is None


def test_a_catalog_annotation_on_default_names_the_catalog_quietly():
    program, diags = check_source(ON_DEFAULT, "p.mcpp")
    assert [d for d in diags if d.code == "catalog"] == []
    assert catalog_annotation(program).value == "tools.json"
