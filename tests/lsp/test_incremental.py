"""The incremental parser equals a full parse — statements, every span, diagnostics —
after any sequence of edits; LSP positions convert exactly in UTF-16, UTF-8, UTF-32."""

from __future__ import annotations

import dataclasses
import random
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from lsprotocol import types as t

from mcpp.lang.diagnostics import Span
from mcpp.lang.formatter import format_document
from mcpp.lang.parser import parse_partial
from mcpp.lsp.findings import Finding
from mcpp.lsp.incremental import IncrementalParser, diff
from mcpp.lsp.positions import LineIndex

from ..strategies import documents

ROOT = Path(__file__).parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.mcpp"))
PIECES = ["", ";", "}", "{", "(", ")", "[", "]", "\n", "permit", " forbid ", '"', "x", '@id("q")', "//c\n", "&&",
          " when { true }", "é", "😀", "\r\n", "context.input.", "Action::", ",", "@", "unless"]


def _spans(doc):
    out = []

    def rec(n):
        if isinstance(n, tuple):
            for x in n:
                rec(x)
            return
        if not dataclasses.is_dataclass(n):
            return
        s = getattr(n, "span", None)
        out.append((type(n).__name__, s))
        for f in dataclasses.fields(n):
            if f.name != "span":
                rec(getattr(n, f.name))

    for s in doc.statements:
        rec(s)
    for c in doc.comments:
        rec(c)
    return out


def _same_as_full_parse(p: IncrementalParser, text: str):
    doc, diags, _ = p.update(text)
    ref, ref_diags = parse_partial(text, "t.mcpp")
    assert doc.statements == ref.statements
    assert _spans(doc) == _spans(ref)
    assert [(d.message, d.span, d.code) for d in diags] == [(d.message, d.span, d.code) for d in ref_diags]


def _edit_sequence(base: str, rnd: random.Random, n: int):
    text = base
    for _ in range(n):
        a = rnd.randrange(len(text) + 1)
        b = min(len(text), a + rnd.choice([0, 0, 1, 2, 5, 40]))
        text = text[:a] + rnd.choice(PIECES) + text[b:]
        if rnd.random() < 0.05:
            text = base
        yield text


def test_random_edits_of_the_examples():
    rnd = random.Random(5)
    for path in EXAMPLES:
        base = path.read_text(encoding="utf-8")
        p = IncrementalParser("t.mcpp")
        _same_as_full_parse(p, base)
        for text in _edit_sequence(base, rnd, 150):
            _same_as_full_parse(p, text)


@given(documents(), st.integers(0, 2**32), st.integers(1, 12))
def test_random_documents_and_edits(doc, seed, steps):
    base = format_document(doc)
    p = IncrementalParser("t.mcpp")
    _same_as_full_parse(p, base)
    for text in _edit_sequence(base, random.Random(seed), steps):
        _same_as_full_parse(p, text)


def test_typing_reuses_the_untouched_statements():
    sys.path.insert(0, str(ROOT / "bench"))
    from lang_bench import generate

    base = generate(200)
    p = IncrementalParser("t.mcpp")
    p.update(base)
    mid = base.index("count <=", len(base) // 2)
    p.update(base[:mid] + "x" + base[mid:])
    assert p.reused >= len(p.chunks) - 2


def test_diff():
    e = diff("abcdef", "abXYef")
    assert (e.start, e.old_end, e.new_end, e.delta) == (2, 4, 4, 0)
    e = diff("aaaa", "aaaaa")
    assert (e.start, e.old_end, e.new_end) == (4, 4, 5)
    e = diff("", "x")
    assert (e.start, e.old_end, e.new_end) == (0, 0, 1)


def test_positions_in_every_encoding():
    text = "a😀b\r\nxé\rz\n"
    u16 = LineIndex(text, t.PositionEncodingKind.Utf16)
    u8 = LineIndex(text, t.PositionEncodingKind.Utf8)
    u32 = LineIndex(text, t.PositionEncodingKind.Utf32)
    b = text.index("b")
    assert u16.position(b) == t.Position(line=0, character=3)
    assert u8.position(b) == t.Position(line=0, character=5)
    assert u32.position(b) == t.Position(line=0, character=2)
    z = text.index("z")
    assert u16.position(z) == t.Position(line=2, character=0)  # a lone CR ends a line too
    assert u16.position(text.index("\r")) == u16.position(text.index("\n"))  # never inside CRLF
    for idx in (u16, u8, u32):
        for off in range(len(text) + 1):
            if text[off - 1 : off + 1] == "\r\n":
                continue
            assert idx.offset(idx.position(off)) == off
    # the middle of a surrogate pair resolves to the character after it
    assert u16.offset(t.Position(line=0, character=2)) == text.index("b")
    assert u16.offset(t.Position(line=0, character=500)) == text.index("\r")
    assert u16.offset(t.Position(line=50, character=0)) == len(text)


def test_spans_without_offsets_are_placed_by_line_and_column():
    text = "one\ntwo three\n"
    idx = LineIndex(text)
    assert idx.span_offsets(Span(2, 5, 2, 10)) == (8, 13)
    assert idx.span_offsets(Span(1, 1, 1, 1)) == (0, 0)
    assert idx.span_offsets(Span(9, 1, 9, 3)) == (len(text), len(text))


def test_findings_move_with_edits_and_drop_when_touched():
    from mcpp.lang.diagnostics import Diagnostic
    from mcpp.lsp.incremental import Edit

    d = Diagnostic("m", Span(1, 1, 1, 1, 10, 20), "warning", "x")
    f = Finding(d, 10, 20, {"title": "t", "edits": [(12, 14, "z", "ab")]}, ((30, 35, "rel"),))
    before = f.moved(Edit(0, 2, 5))  # 2 chars became 5 before it
    assert (before.start, before.end) == (13, 23) and before.fix["edits"][0][:2] == (15, 17)
    assert before.related[0][:2] == (33, 38)
    assert f.moved(Edit(25, 26, 26)).start == 10  # after it: untouched
    assert f.moved(Edit(15, 16, 16)) is None  # inside it: dropped


def test_catalog_checks_cache_equals_a_full_validation():
    """Per-statement reuse of catalog findings gives exactly what validating the whole
    program gives, after every edit (spans and fix offsets moved with the text)."""
    from mcpp.catalog import load_catalog, validate
    from mcpp.lang.program import build_program
    from mcpp.lsp.documents import CatalogChecks

    catalog = load_catalog(Path(__file__).parent / "fixtures" / "k8s.tools.json")
    base = (Path(__file__).parent / "test_features.py").read_text().split("POLICY = '''")[1].split("'''")[0]
    base += ('\npermit (principal, action == Action::"delete_pods", resource);\n'
             'forbid (principal, action == Action::"delete_pod", resource) when { context.input.grace_seconds > 5 };\n'
             'permit (principal, action == Action::"scale_deployment", resource) when { context.input.replicas == "3" };\n')
    rnd = random.Random(11)
    p = IncrementalParser("t.mcpp")
    checks = CatalogChecks()
    saw_fix = False
    for text in [base, *_edit_sequence(base, rnd, 200)]:
        doc, _, _ = p.update(text)
        program, _ = build_program(doc)
        got = checks.run(program, catalog)
        want = validate(program, catalog)
        assert [(d.code, d.message, d.span, d.data) for d in got] == [(d.code, d.message, d.span, d.data) for d in want]
        saw_fix = saw_fix or any("fix" in d.data for d in want)
    assert saw_fix  # the findings moved included fixes with offsets


def test_a_document_handed_out_keeps_its_spans_after_later_edits():
    """IR nodes are never mutated: moving the statements after an edit rebuilds them."""
    base = EXAMPLES[0].read_text(encoding="utf-8")
    p = IncrementalParser("t.mcpp")
    first, _, _ = p.update(base)
    before = _spans(first)
    second, _, _ = p.update("\n\n" + base)
    assert _spans(first) == before
    assert [s.span.line for s in second.statements] == [s.span.line + 2 for s in first.statements]


def test_moving_a_deeply_nested_statement():
    deep = "permit (principal, action, resource) when { " + "!" * 3000 + "true };\n"
    p = IncrementalParser("t.mcpp")
    p.update("// a\ndefault deny;\n" + deep)
    doc, diags, _ = p.update("// ab\ndefault deny;\n" + deep)
    assert not diags and doc.statements[1].span.start == len("// ab\ndefault deny;\n")
    assert p.reused == 1  # the deep statement was moved, not parsed again
