"""Every docs link a diagnostic can carry points at a page (and heading) that exists."""

from __future__ import annotations

import re
from pathlib import Path

from mcpp.analyzer.lints import LINTS
from mcpp.catalog.validate import CODES as CATALOG_CODES
from mcpp.lang.diagnostics import Diagnostic
from mcpp.lsp.findings import CODE_DOCS, docs_path
from mcpp.lsp.reference import KEYWORDS, LANGUAGE_DOC, OPERATORS

ROOT = Path(__file__).parents[2]


def anchors(md: Path) -> set[str]:
    """GitHub's heading slugs: lower case, punctuation dropped, spaces to hyphens."""
    out = set()
    for line in md.read_text(encoding="utf-8").splitlines():
        m = re.match(r"#+\s+(.*)", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            out.add(slug)
    return out


def exists(link: str) -> bool:
    page, _, anchor = link.partition("#")
    path = ROOT / page
    return path.is_file() and (not anchor or anchor in anchors(path))


def test_every_code_links_to_an_existing_page_and_heading():
    codes = list(LINTS) + list(CATALOG_CODES) + list(CODE_DOCS) + ["assert-failed", "assert-unknown", "assert"]
    for code in codes:
        link = docs_path(Diagnostic("m", code=code))
        assert exists(link), f"{code} → {link}"


def test_hover_links_into_the_language_reference_exist():
    for key, (anchor, _) in {**KEYWORDS, **OPERATORS}.items():
        if anchor:
            assert exists(f"{LANGUAGE_DOC}#{anchor}"), (key, anchor)
