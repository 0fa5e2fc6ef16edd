"""The code on docs/api.md and docs/embedding.md runs, and prints what it says it prints.

Each page's ```python blocks run in order in one namespace, in a scratch directory. A
`print(...)  # text` line must print `text` (up to a ` — ` that starts a
remark); a comment holding `…` is an abbreviation and is not compared."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = ["api.md", "embedding.md"]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
CHECKED_PRINT = re.compile(r"^(?P<indent>\s*)print\((?P<args>.*)\)\s+#\s(?P<expected>.*)$")


def blocks(page: str) -> list[str]:
    return BLOCK.findall((DOCS / page).read_text(encoding="utf-8"))


def instrument(code: str) -> str:
    out = []
    for line in code.splitlines():
        m = CHECKED_PRINT.match(line)
        if m and "…" not in m["expected"]:
            expected = m["expected"].split(" — ")[0].rstrip()
            out.append(f"{m['indent']}__check(({m['args']},), {expected!r})")
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def _check(values: tuple, expected: str) -> None:
    text = " ".join(str(v) for v in values)
    print(text)
    assert text == expected, f"printed {text!r}, the page says {expected!r}"


@pytest.mark.parametrize("page", PAGES)
def test_page_code_runs(page, tmp_path, monkeypatch):
    code = blocks(page)
    assert code, f"{page} has no python blocks"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs.{page}", "__check": _check}
    for i, block in enumerate(code, 1):
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                exec(compile(instrument(block), f"{page}[block {i}]", "exec"), namespace)
            except Exception as e:
                raise AssertionError(f"{page}, block {i}:\n{block}") from e
