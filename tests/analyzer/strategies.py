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
from mcpp.lang.program import build_program  # noqa: E402

from tests import strategies as base  # noqa: E402

limits = base.limits()


@st.composite
def programs(draw, principal: bool = True, max_policies: int = 4, with_limits: bool = True,
             with_approvals: bool = False):
    """Random programs (tests/strategies.py): action groups, nested groups, tools named like
    groups, `default allow` with hide, up to four limits sharing counters, and (with
    `with_approvals`) some permits marked `@approval` (docs/approval.md)."""
    doc = draw(base.documents(principal=principal, max_policies=max_policies, with_limits=with_limits))
    stmts = list(doc.statements)
    if with_approvals:
        stmts = [ir.Policy(s.effect, s.scope, s.clauses, (ir.Annotation("approval", "a person decides"),))
                 if isinstance(s, ir.Policy) and s.effect == "permit" and draw(st.booleans()) else s
                 for s in stmts]
    prog, diags = build_program(ir.Document(tuple(stmts)))
    assert not [d for d in diags if d.severity == "error"], diags
    return prog


def assertions(principal: bool = True):
    return st.builds(
        lambda kind, pol: ir.Assert(kind, pol.scope, pol.clauses),
        st.sampled_from(["deny", "allow", "approval"]),
        base.policies(False, principal),
    )


def statements(prog) -> list:
    return [p.stmt for p in prog.policies] + [li.stmt for li in prog.limits] + [a.stmt for a in prog.asserts]


def calls_for(prog):
    """Random calls (the "anonymous" grant and the "default" server included), biased
    toward the program's own argument paths and constants."""
    return base.calls_for(statements(prog), grants=base.GRANTS + ["anonymous"], servers=base.SERVERS + ["default"])
