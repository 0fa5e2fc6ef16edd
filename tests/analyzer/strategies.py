"""Hypothesis strategies for the analyzer tests: regexes of the supported RE2 subset,
strings that exercise them, and small random policies (built on tests/strategies.py)."""

from __future__ import annotations

from hypothesis import strategies as st

from mcpp.lang.regex import escape

# characters chosen to hit RE2's corners: case folding (K, U+212A KELVIN, ſ), newline,
# word/space/digit class edges, a non-BMP character
ALPHABET = "abAB_1 \n\t.-K\u212a\u017fs\u00e9\U0001f600/"

_atoms = st.one_of(
    st.sampled_from(list("abAB1_ -/")).map(escape),
    st.sampled_from([".", r"\d", r"\w", r"\s", r"\D", r"\W", r"\S", "[ab]", "[^a]", "[a-c]", "[^\\n]", "[[:alpha:]]",
                     "[[:^digit:]]", "[\\d_]", "[k]", "\\.", "\\x41", "\\x{e9}", "\\n", "\\Qa.\\E", "\u00e9", "s", "k"]),
)


def _rep(r: str):
    return st.sampled_from(["*", "+", "?", "{2}", "{0}", "{1,2}", "{0,1}", "{2,}", "*?", "+?", "{0,}"]).map(
        lambda op: f"(?:{r}){op}"
    )


regexes = st.recursive(
    _atoms,
    lambda sub: st.one_of(
        st.tuples(sub, sub).map(lambda t: t[0] + t[1]),
        st.tuples(sub, sub).map(lambda t: f"{t[0]}|{t[1]}"),
        sub.flatmap(_rep),
        sub.map(lambda r: f"({r})"),
        sub.map(lambda r: f"(?i:{r})"),
        sub.map(lambda r: f"(?s:{r})"),
        sub.map(lambda r: f"(?i){r}"),
        sub.map(lambda r: f"^{r}"),
        sub.map(lambda r: f"{r}$"),
        sub.map(lambda r: f"(?:^|/){r}"),
        sub.map(lambda r: f"{r}(?:$|/)"),
        sub.map(lambda r: f"\\A{r}\\z"),
    ),
    max_leaves=6,
)

texts = st.text(alphabet=ALPHABET, max_size=8)


# ---- policies with limits and assertions -----------------------------------------------------


from mcpp.lang import ir  # noqa: E402
from mcpp.lang.ir import walk  # noqa: E402
from mcpp.lang.program import build_program  # noqa: E402

from tests import strategies as base  # noqa: E402

limits = st.builds(
    lambda tool, mx, window, scope, inc: ir.Limit(
        "c_" + tool, ir.Scope(action=ir.ActionScope("eq", (ir.EntityRef("Action", tool),))), mx, window, scope,
        base.input_path([inc]) if inc else None,
    ),
    st.sampled_from(base.TOOLS),
    st.sampled_from([0, 1, 5, 1000]),
    st.sampled_from(["minute", "hour", "day"]),
    st.sampled_from(["grant", "policy"]),
    st.sampled_from([None, "a", "b"]),
)


@st.composite
def programs(draw, principal: bool = True, max_policies: int = 4, with_limits: bool = True,
             with_approvals: bool = False):
    doc = draw(base.documents(principal=principal, max_policies=max_policies))
    stmts = list(doc.statements)
    if with_approvals:  # some permits become @approval permits (docs/approval.md)
        marked = []
        for s in stmts:
            if isinstance(s, ir.Policy) and s.effect == "permit" and draw(st.booleans()):
                s = ir.Policy(s.effect, s.scope, s.clauses, (ir.Annotation("approval", "a person decides"),))
            marked.append(s)
        stmts = marked
    if with_limits:
        stmts += draw(st.lists(limits, max_size=1))
    prog, diags = build_program(ir.Document(tuple(stmts)))
    return prog


def assertions(principal: bool = True):
    return st.builds(
        lambda kind, pol: ir.Assert(kind, pol.scope, pol.clauses),
        st.sampled_from(["deny", "allow", "approval"]),
        base.policies(False, principal),
    )


def literals(prog) -> list:
    """Constants the policy compares with, and their neighbours: where decisions flip."""
    out = []
    stmts = [p.stmt for p in prog.policies] + [li.stmt for li in prog.limits] + [a.stmt for a in prog.asserts]
    for s in stmts:
        for c in s.clauses:
            for n in walk(c.expr):
                if isinstance(n, ir.Lit) and n.value not in out:
                    out.append(n.value)
                    if isinstance(n.value, (int, float)) and not isinstance(n.value, bool):
                        out += [n.value + 1, n.value - 1, str(n.value)]
                elif isinstance(n, ir.Like):
                    out.append("".join(n.pattern))
                    out.append("q".join(n.pattern))
    return out


def calls_for(prog):
    """Random calls, biased toward the policy's own constants."""
    lits = literals(prog)
    values = st.one_of(base.arg_values(False), st.sampled_from(lits)) if lits else base.arg_values(False)
    leaf = st.one_of(values, st.lists(values, max_size=3))
    args = st.dictionaries(st.sampled_from(base.KEYS), st.one_of(leaf, st.dictionaries(st.sampled_from(base.KEYS), leaf, max_size=2)), max_size=3)
    return st.builds(
        base.Call,
        st.sampled_from(base.TOOLS + ["other"]),
        args,
        st.sampled_from(base.GRANTS + ["anonymous"]),
        st.sampled_from(base.LABELS),
        st.frozensets(st.sampled_from(base.GROUPS), max_size=2),
        st.sampled_from(base.SERVERS + ["default"]),
    )
