"""Output wording users tripped over: the stand-in tool of `diff`, the starter policy's
grammar, and `catalog show` for a server that reports no version."""

from __future__ import annotations

import re

from mcpp.catalog import Catalog

from .run import ROOT, mcpp


def test_diff_names_the_case_for_unnamed_tools_by_what_it_covers(tmp_path):
    old = tmp_path / "old.mcpp"
    old.write_text('default deny;\npermit (principal, action == Action::"read", resource);\n')
    new = tmp_path / "new.mcpp"
    new.write_text('default allow;\npermit (principal, action == Action::"read", resource);\n')
    p = mcpp("diff", old, new)
    assert p.returncode == 0
    assert p.stdout.splitlines() == [
        "read: equivalent",
        "every tool neither version names: looser",
        '  newly allowed: any tool neither version names, e.g. {"name": "delete_everything", "arguments": {}} '
        "by grant 'anonymous' on server 'default' (old: deny by /default; new: allow by /default)",
        "1 of 2 tool cases changed",
    ]
    # docs/analyzer.md shows this very output
    doc = (ROOT / "docs" / "analyzer.md").read_text()
    block = doc.split("$ mcpp diff old.mcpp new.mcpp", 1)[1].split("```", 1)[0]
    assert block.splitlines()[1:] == p.stdout.splitlines()


def _catalog(tmp_path, version):
    cat = Catalog.from_tools(
        [{"name": "refund_payment", "description": "Refund a payment",
          "inputSchema": {"type": "object", "properties": {"amount": {"type": "number"}, "path": {"type": "string"}},
                          "required": ["amount"]}}],
        server_name="payments", server_version=version, protocol_version="2025-11-25", source="test",
        captured_at="2026-01-01T00:00:00Z")
    f = tmp_path / "tools.json"
    f.write_text(cat.dumps())
    return f


def test_init_uses_the_right_article(tmp_path):
    p = mcpp("init", "--catalog", _catalog(tmp_path, "1.0"))
    assert p.returncode == 0
    assert "`amount` is an amount of money (" in p.stdout and "`path` is a file path (" in p.stdout
    assert "refund_payment refuses amounts like this one" in p.stdout
    assert not re.search(r"\ba [aeio]", p.stdout), re.findall(r".*\ba [aeio].*", p.stdout)


def test_catalog_show_without_a_server_version(tmp_path):
    assert mcpp("catalog", "show", _catalog(tmp_path, None)).stdout.splitlines()[0] == "payments: 1 tool"
    assert mcpp("catalog", "show", _catalog(tmp_path, "2.1")).stdout.splitlines()[0] == "payments 2.1: 1 tool"
