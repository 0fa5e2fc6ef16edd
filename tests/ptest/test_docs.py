"""docs/testing.md stays true: its TOML examples are valid test files, the refunds
example passes against examples/refunds.mcpp, and README and the tutorial link it."""

import re
from pathlib import Path

from mcpp.lang.load import load_policy
from mcpp.policytest.cases import parse_test_file
from mcpp.policytest.runner import run_with_coverage

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "testing.md"


def anchors(md: Path) -> set[str]:
    out = set()
    for line in md.read_text(encoding="utf-8").splitlines():
        m = re.match(r"#+\s+(.*)", line)
        if m:
            out.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return out


def exists(link: str) -> bool:
    page, _, anchor = link.partition("#")
    path = ROOT / page
    return path.is_file() and (not anchor or anchor in anchors(path))


def toml_blocks(md: Path) -> list[str]:
    return re.findall(r"```toml\n(.*?)```", md.read_text(encoding="utf-8"), re.S)


def test_the_format_example_passes_on_the_refunds_policy():
    first = toml_blocks(DOC)[0]
    tf = parse_test_file(first, ROOT / "examples" / "refunds.test.toml")
    _, results = run_with_coverage(load_policy(ROOT / "examples" / "refunds.mcpp"), tf)
    assert len(results) == 3 and all(r.passed for r in results)


def test_every_case_example_in_the_docs_is_a_valid_test_file(tmp_path):
    blocks = [b for b in toml_blocks(DOC) + toml_blocks(ROOT / "docs" / "tutorial.md") if "[[case]]" in b]
    assert len(blocks) >= 3
    for b in blocks:
        parse_test_file(b, tmp_path / "x.test.toml")


def test_linked_from_readme_and_tutorial():
    assert "(docs/testing.md)" in (ROOT / "README.md").read_text()
    assert "(testing.md)" in (ROOT / "docs" / "tutorial.md").read_text()
    assert exists("docs/testing.md#in-the-editor") and exists("docs/testing.md#coverage")
