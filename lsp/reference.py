"""What each keyword, operator and method means: the hover texts, condensed from the
language reference (docs/language.md), each with the section it comes from."""

from __future__ import annotations

# word or operator → (section anchor in docs/language.md, markdown)
KEYWORDS: dict[str, tuple[str, str]] = {
    "permit": ("31-policies", "**permit** — a policy that allows the calls its scope and conditions match. "
               "A call is allowed when some permit applies and no forbid does (under `default allow`, also when "
               "no permit names the tool)."),
    "forbid": ("31-policies", "**forbid** — a policy that denies the calls it matches; any applicable forbid wins "
               "over every permit. A forbid whose condition *errors* (a missing or mistyped argument) does not "
               "apply: it fails open — the `forbid-bypass` lint finds such holes."),
    "when": ("31-policies", "**when { e }** — the policy applies only if `e` evaluates to `true`. A clause that "
             "errors makes the policy not apply. Several clauses must all hold."),
    "unless": ("31-policies", "**unless { e }** — the policy applies only if `e` evaluates to `false`. A clause "
               "that errors makes the policy not apply."),
    "principal": ("1-the-request-model", "**principal** — the caller: `Grant::\"<grant id>\"` (attribute `label`) or "
                  "`User::\"<subject>\"` (the attributes `entity User` declares); `principal in Group::\"g\"` tests "
                  "its groups."),
    "action": ("1-the-request-model", "**action** — the tool being called: `Action::\"<tool name>\"`. "
               "`action in Action::\"g\"` also matches the tools of action group `g`."),
    "resource": ("1-the-request-model", "**resource** — the upstream MCP server: `Server::\"<server id>\"`."),
    "context": ("1-the-request-model", "**context** — `{ \"input\": <the call's arguments> }`: "
                "`context.input.amount` is the JSON form's `args.amount`."),
    "input": ("1-the-request-model", "**context.input** — the `tools/call` arguments object."),
    "default": ("32-declarations", "**default allow | deny** — what happens to tools no permit names. Absent: "
                "deny. Under `default allow`, a tool becomes governed as soon as a permit names it."),
    "allow": ("32-declarations", "**allow** — in `default allow`: tools no permit names are allowed; in "
              "`assert allow`: every matching call must be allowed."),
    "deny": ("32-declarations", "**deny** — in `default deny`: tools no permit names are denied; in "
             "`assert deny`: no matching call may be allowed."),
    "hide": ("32-declarations", "**hide** — these tools are denied and never listed in `tools/list`. Hiding a "
             "group hides its tools."),
    "group": ("32-declarations", "**group Action::\"g\" = [...]** — an action group; members are tools or "
              "other groups (no cycles). `action in Action::\"g\"` matches every member."),
    "limit": ("6-limits", "**limit \"counter\" (scope) max N per minute|hour|day [scope grant|policy] "
              "[increment path]** — at most N units per UTC calendar window. Checked only for calls that are "
              "otherwise allowed; limits sharing a counter name share the count."),
    "max": ("6-limits", "**max N** — the most units a limit's counter may reach in one window (required)."),
    "per": ("6-limits", "**per minute | hour | day** — the limit's UTC calendar window (required)."),
    "scope": ("6-limits", "**scope grant | principal | policy** — count per grant (default), per caller (a user "
              "across all their sessions and clients), or across all callers."),
    "increment": ("6-limits", "**increment context.input.path** — count this argument instead of 1 per call; "
                  "missing, non-numeric or negative denies the call (fails closed)."),
    "assert": ("7-assertions", "**assert allow | deny | approval | hidden | visible (scope) [clauses]** — a property the "
               "analyzer proves with Z3 (`mcpp verify`); never affects decisions. A failed assert shows a "
               "counterexample call."),
    "hidden": ("7-assertions", "**assert hidden** — the tools in scope are never listed in `tools/list` for "
               "matching grants."),
    "visible": ("7-assertions", "**assert visible** — the tools in scope are listed in `tools/list` for every "
                "matching grant."),
    "approval": ("7-assertions", "**assert approval** — every matching call that can run needs a person's approval "
                 "(none is allowed outright). On a permit, `@approval(\"…\")` makes its calls wait for a person "
                 "(docs/approval.md)."),
    "if": ("41-operators-loosest-first", "**if c then a else b** — `c` must be boolean (else error); only the "
           "chosen branch is evaluated."),
    "then": ("41-operators-loosest-first", "**if c then a else b** — the branch taken when `c` is true."),
    "else": ("41-operators-loosest-first", "**if c then a else b** — the branch taken when `c` is false."),
    "in": ("42-evaluation", "**e in E** — for entities: `e == E` or `E` is an ancestor (a grant's group, a "
           "tool's action group). **Extension:** `v in [set]` for values is set membership by `==`."),
    "has": ("42-evaluation", "**e has a.b** — `false` if `a` is absent, otherwise `e.a has b`; errors if `e` "
            "(or `e.a`) is not an object. Guard optional arguments with it: "
            "`context.input has x && context.input.x == 1`."),
    "like": ("42-evaluation", "**s like \"p*q\"** — whole-string match, `*` matches any text (newlines too), "
             "`\\*` is a literal star. Errors if `s` is not a string."),
    "is": ("42-evaluation", "**e is T [in E]** — `true` iff entity `e` has type `T` (Grant, Group, Action, "
           "Server). Errors if `e` is not an entity."),
    "true": ("42-evaluation", "**true** — the boolean literal."),
    "false": ("42-evaluation", "**false** — the boolean literal."),
    "null": ("10-divergences-from-cedar", "**null** — JSON `null` (an mcpp extension): a `null` argument equals it."),
    "Grant": ("1-the-request-model", "**Grant::\"id\"** — a caller's grant token; attribute `label`, groups from "
              "the gateway configuration."),
    "Group": ("1-the-request-model", "**Group::\"name\"** — a group of grants and users: `principal in Group::\"ops\"`."),
    "User": ("11-grants-and-users", "**User::\"subject\"** — a caller authenticated by an OAuth token; its "
             "attributes are the claims `entity User { … }` declares, its groups come from a groups claim."),
    "entity": ("34-entity-user", "**entity User in [Group] { email: String, refund_cap?: Long }** — the attributes "
               "user callers carry (Cedar schema syntax): String, Long, Bool, Set<…>; `?` marks an optional one, "
               "to read after `principal has …`."),
    "Action": ("1-the-request-model", "**Action::\"name\"** — a tool, or an action group declared with `group`."),
    "Server": ("1-the-request-model", "**Server::\"id\"** — the upstream MCP server a call goes to."),
    "label": ("1-the-request-model", "**principal.label** — the grant's label (`\"\"` when unset)."),
    "contains": ("42-evaluation", "**S.contains(v)** — `S` a set: membership by `==`. **Extension:** on two "
                 "strings, a substring test. Errors otherwise."),
    "containsAll": ("42-evaluation", "**S.containsAll(T)** — every member of set `T` is in set `S`."),
    "containsAny": ("42-evaluation", "**S.containsAny(T)** — some member of set `T` is in set `S`."),
    "isEmpty": ("42-evaluation", "**S.isEmpty()** — `S` is the empty set (errors if `S` is not a set)."),
    "matches": ("42-evaluation", "**s.matches(\"re\")** — RE2 (Go) syntax, **unanchored** search: true if the "
                "pattern matches anywhere in `s`; write `^…$` to pin it. Errors if `s` is not a string."),
    "id": ("31-policies", "**@id(\"name\")** — the policy's id, named in decisions and diagnostics (default "
           "`policy0`, `policy1`, … in order)."),
    "reason": ("5-decisions", "**@reason(\"…\")** — the message a denied caller sees; on a `when`/`unless` "
               "clause, the message when that clause is the one that fails."),
    "catalog": ("", "**@catalog(\"tools.json\")** — on the `default` statement: the tool catalog this policy is "
                "checked against (see docs/catalogs.md)."),
}

OPERATORS: dict[str, tuple[str, str]] = {
    "==": ("42-evaluation", "**a == b** — never an error by type: values of different types are unequal, "
           "numbers compare numerically (`1 == 1.0`), arrays as sets, objects key by key."),
    "!=": ("42-evaluation", "**a != b** — the negation of `==`; never an error by type."),
    "<": ("42-evaluation", "**a < b** — both must be numbers, else the condition errors."),
    "<=": ("42-evaluation", "**a <= b** — both must be numbers, else the condition errors."),
    ">": ("42-evaluation", "**a > b** — both must be numbers, else the condition errors."),
    ">=": ("42-evaluation", "**a >= b** — both must be numbers, else the condition errors."),
    "&&": ("42-evaluation", "**a && b** — `a` must be boolean; `false` without evaluating `b` when `a` is false."),
    "||": ("42-evaluation", "**a || b** — `a` must be boolean; `true` without evaluating `b` when `a` is true."),
    "!": ("42-evaluation", "**!a** — boolean negation; errors if `a` is not boolean."),
    "::": ("2-lexical-syntax", "**Type::\"id\"** — an entity reference (Grant, Group, Action, Server)."),
}

LANGUAGE_DOC = "docs/language.md"


def hover_markdown(key: str, docs_base: str) -> str | None:
    entry = KEYWORDS.get(key) or OPERATORS.get(key)
    if entry is None:
        return None
    anchor, text = entry
    link = f"{docs_base}{LANGUAGE_DOC}" + (f"#{anchor}" if anchor else "")
    return f"{text}\n\n[Language reference]({link})"
