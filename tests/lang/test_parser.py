"""Parser: IR shape, spans, diagnostics with recovery, and robustness on random input."""

from hypothesis import given
from hypothesis import strategies as st

import pytest

from mcpp.lang import ir
from mcpp.lang.diagnostics import MCPPError
from mcpp.lang.parser import parse, parse_partial
from mcpp.lang.program import check_source, load_program


def one(src: str):
    (stmt,) = parse(src).statements
    return stmt


def test_policy_structure_and_spans():
    src = (
        '@id("cap")\n@reason("too big")\n'
        'forbid (principal, action == Action::"refund", resource)\n'
        "when { context.input.amount > 1000 }\n"
        'unless { principal in Group::"finance" };\n'
    )
    p = one(src)
    assert isinstance(p, ir.Policy) and p.effect == "forbid"
    assert p.scope.action == ir.ActionScope("eq", (ir.EntityRef("Action", "refund"),))
    assert [c.kind for c in p.clauses] == ["when", "unless"]
    assert p.clauses[0].expr == ir.Compare(
        ">", ir.GetAttr(ir.GetAttr(ir.Var("context"), "input"), "amount"), ir.Lit(1000)
    )
    assert p.reason == "too big" and ir.annotation(p.annotations, "id") == "cap"
    assert (p.span.line, p.span.col) == (1, 1)
    assert (p.clauses[0].span.line, p.clauses[0].span.col) == (4, 1)
    cmp = p.clauses[0].expr
    assert src[cmp.span.start : cmp.span.end] == "context.input.amount > 1000"


def test_operator_precedence_matches_cedar():
    e = one("permit (principal, action, resource) when { !a.b || c.d && e.f == 1 };".replace("a.b", "context.input.a").replace("c.d", "context.input.c").replace("e.f", "context.input.e")).clauses[0].expr
    assert isinstance(e, ir.Or)
    assert isinstance(e.left, ir.Not)
    assert isinstance(e.right, ir.And) and isinstance(e.right.right, ir.Compare)


def test_extensions_parse():
    p = one(
        'permit (principal, action in [Action::"a", Action::"b"], resource is Server) '
        'when { context.input.url.matches("^https://") && context.input.ch in ["#a", "#b"] '
        "&& context.input.x == null && context.input.amount <= 1000.01 && context.input[\"x-y\"] like \"a*\" };"
    )
    e = p.clauses[0].expr
    found = {type(n).__name__ for n in _walk(e)}
    assert {"Matches", "In", "Like"} <= found
    assert ir.Lit(1000.01) in list(_walk(e)) and ir.Lit(None) in list(_walk(e))
    assert p.scope.resource == ir.EntityScope("is", None, "Server")


def _walk(e):
    from mcpp.lang.ir import walk

    return walk(e)


def test_keywords_usable_as_attribute_names():
    p = one("permit (principal, action, resource) when { context.input.when == context.input.permit };")
    assert p.clauses[0].expr.left.attr == "when"


def test_declarations():
    doc = parse(
        'default allow;\nhide Action::"x", Action::"y";\ngroup Action::"g" = [Action::"x"];\n'
        'limit "c" (principal, action, resource) max 5 per hour scope policy increment context.input.n;\n'
        'assert deny (principal, action == Action::"x", resource);\n'
    )
    d, h, g, lim, a = doc.statements
    assert d == ir.Default("allow")
    assert [t.id for t in h.tools] == ["x", "y"]
    assert g.entity.id == "g"
    assert (lim.counter, lim.max, lim.window, lim.scope_kind) == ("c", 5, "hour", "policy")
    assert a.kind == "deny"


@pytest.mark.parametrize(
    "src, message, at",
    [
        ("permit (principal, action, resource) when { context.input.x == 'a' };", "strings use double quotes", "'a'"),
        ("permit (principal, action, resource) when { context.input.x = 1 };", "did you mean '=='", "= 1"),
        ("permit (principal, action, resource) when { context.input.x == 1 ;", "missing '}'", ";"),
        ("permit (principal, action resource);", "unexpected 'resource'", "resource"),
        ("permit (principal, action, resource) when { context.input.x.lessThan(1) };", "lessThan() is not supported", "context"),
        ('permit (principal, action, resource) when { decimal("1.0") };', "decimal() is not supported", "decimal"),
        ("permit (principal, action, resource) when { context.input.a + 1 > 2 };", "arithmetic", "context"),
        ('permit (principal, action, resource) when { context.input.a == "\\q" };', "unknown escape", '"\\q"'),
    ],
)
def test_syntax_errors_have_spans(src, message, at):
    with pytest.raises(MCPPError) as exc:
        parse(src, "p.mcpp")
    d = exc.value.diagnostics[0]
    assert message in d.message
    col = src.index(at) + 1
    assert (d.span.line, d.span.col) == (1, col)
    assert d.render(src).startswith(f"p.mcpp:1:{col}: error:")


def test_recovery_one_diagnostic_per_broken_statement_and_good_ones_kept():
    src = (
        'permit (principal, action == Action::"a", resource);\n'
        "permit (principal action, resource);\n"
        'forbid (principal, action == Action::"b", resource) when { context.input.x == };\n'
        'permit (principal, action == Action::"c", resource) when { context.input.y == "ok" };\n'
        "default deny\n"
        'permit (principal, action == Action::"d", resource);\n'
    )
    doc, diags = parse_partial(src, "p.mcpp")
    # the missing `;` after `default deny` is found where the next statement starts
    assert [d.span.line for d in diags] == [2, 3, 6]
    assert diags[2].message == "expected ';' before 'permit'" and diags[2].span.col == 1
    kept = [s.scope.action.entities[0].id for s in doc.statements if isinstance(s, ir.Policy)]
    assert kept == ["a", "c", "d"]


def test_validation_errors_all_reported():
    src = (
        "permit (principal, action, resource) when { context.foo == 1 };\n"
        "permit (principal, action, resource) when { principal.name == \"x\" };\n"
        'permit (principal, action, resource) when { context.input.u.matches("(?=x)") };\n'
        'permit (principal == Group::"g", action, resource);\n'
        'permit (principal, action == Server::"s", resource);\n'
        'permit (principal, action, resource) when { context.input.a < "b" };\n'
        "default deny;\ndefault allow;\n"
        '@id("x") permit (principal, action, resource);\n@id("x") forbid (principal, action, resource);\n'
    )
    _, diags = check_source(src, "p.mcpp")
    lines = sorted(d.span.line for d in diags)
    assert lines == [1, 2, 3, 4, 5, 6, 8, 10]
    msgs = " | ".join(d.message for d in diags)
    assert "context has no attribute 'foo'" in msgs
    assert "grant has no attribute 'name'" in msgs
    assert "RE2" in msgs
    assert "duplicate @id" in msgs


def test_go_incompatible_regex_rejected():
    with pytest.raises(MCPPError, match="Go"):
        load_program('permit (principal, action, resource) when { context.input.a.matches("\\\\C") };')


def test_limit_option_errors():
    _, diags = parse_partial('limit "c" (principal, action, resource) max 5 per week;')
    assert any("unknown window 'week'" in d.message for d in diags)
    _, diags = parse_partial('limit "c" (principal, action, resource) per hour;')
    assert any("needs 'max N'" in d.message for d in diags)


GRAMMAR_WORDS = [
    "permit", "forbid", "when", "unless", "(", ")", "{", "}", "[", "]", ",", ";", "principal", "action",
    "resource", "context", ".", "input", "==", "!=", "<", "&&", "||", "!", "in", "has", "like", "if",
    "then", "else", '"x"', "1", "1.5", "Action::", "@id", "@reason(\"r\")", "default", "deny", "hide",
    "limit", "max", "per", "hour", "assert", "group", "=", "// c\n", "\n", "true", "null", "matches(",
]


@given(st.lists(st.sampled_from(GRAMMAR_WORDS), max_size=40).map(" ".join))
def test_token_soup_never_crashes(src):
    doc, diags = parse_partial(src, "soup.mcpp")
    for d in diags:
        assert d.span.line >= 1 and d.span.col >= 1
        assert d.message
    check_source(src, "soup.mcpp")


@given(st.text(max_size=200))
def test_random_text_never_crashes(src):
    doc, diags = parse_partial(src, "rand.mcpp")
    assert isinstance(doc, ir.Document)
    check_source(src, "rand.mcpp")


def test_deep_nesting_is_an_error_not_a_crash():
    deep = " && ".join(f"context.input.k{i} == {i}" for i in range(300))
    _, diags = check_source(f"permit (principal, action, resource) when {{ {deep} }};", "deep.mcpp")
    assert any("levels deep; the limit is 200" in d.message for d in diags)
    parens = "(" * 500 + "true" + ")" * 500
    _, diags = check_source(f"permit (principal, action, resource) when {{ {parens} }};", "deep.mcpp")
    assert all(d.severity != "error" or "nests" in d.message for d in diags)
