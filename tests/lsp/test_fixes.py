"""The analyzer's quick fixes for its lints really fix them: apply the edit, run
the analyzer again, and the finding is gone (and the policy still parses)."""

from __future__ import annotations

import pytest

from mcpp.analyzer import analyze
from mcpp.lang.program import check_source, load_program
from mcpp.lsp.fixes import language_fix

CASES = {
    "guard the permit": '''default deny;
@id("deletes")
permit (principal, action == Action::"delete_pod", resource)
when { context.input.namespace like "*" };
@id("few-replicas")
forbid (principal, action == Action::"delete_pod", resource)
when { context.input.replicas > 3 };
''',
    "govern the tool under default allow": '''default allow;
@id("no-big-refunds")
forbid (principal, action == Action::"refund", resource)
when { context.input.amount > 1000 };
''',
    "anchor the regex": '''default deny;
@id("docs-only")
permit (principal, action == Action::"fetch", resource)
when { context.input.url.matches("https://docs\\\\.acme\\\\.com|https://api\\\\.acme\\\\.com") };
''',
}


def apply(text: str, fix: dict) -> str:
    for e in sorted(fix["edits"], key=lambda e: e["start"], reverse=True):
        text = text[: e["start"]] + e["text"] + text[e["end"]:]
    return text


@pytest.mark.parametrize("name", list(CASES))
def test_lint_fix_removes_the_finding(name):
    text = CASES[name]
    program = load_program(text, "p.mcpp")
    found = analyze(program, timeout_ms=5000)
    fixable = [d for d in found if d.code in ("forbid-bypass", "unanchored-regex")]
    assert fixable, [(d.code, d.message) for d in found]
    for d in fixable:
        assert "fix" in d.data, d
        fixed = apply(text, d.data["fix"])
        program2, errors = check_source(fixed, "p.mcpp")
        assert not [e for e in errors if e.severity == "error"], (fixed, errors)
        again = analyze(program2, timeout_ms=5000)
        assert d.code not in {x.code for x in again}, (d.data["fix"]["title"], fixed, [x.message for x in again])


def test_language_fixes():
    src = 'permit (principal, action, resource) when { context.input.a = 1 && context.b == 2 };'
    _, diags = check_source(src, "p.mcpp")
    (syntax,) = diags
    fix = language_fix(syntax, src)
    assert fix["title"] == "Replace '=' with '=='"
    fixed = apply(src, fix)
    _, diags = check_source(fixed, "p.mcpp")
    (validation,) = diags
    fixed = apply(fixed, language_fix(validation, fixed))
    assert fixed == 'permit (principal, action, resource) when { context.input.a == 1 && context.input.b == 2 };'
    assert check_source(fixed, "p.mcpp")[1] == []
    src = "permit (principal in Grop::\"ops\", action, resource) when { 'x' == context.input.a };"
    (quotes,) = check_source(src, "p.mcpp")[1]
    src = apply(src, language_fix(quotes, src))
    assert "\"x\" == context.input.a" in src
    (etype,) = check_source(src, "p.mcpp")[1]
    assert etype.message.startswith("unknown entity type Grop")
    src = apply(src, language_fix(etype, src))
    assert src == 'permit (principal in Group::"ops", action, resource) when { "x" == context.input.a };'
    assert check_source(src, "p.mcpp")[1] == []
