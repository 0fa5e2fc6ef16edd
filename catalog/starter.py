"""`mcpp init`: a starting policy a reviewer can read top to bottom and sign off.

Every statement is preceded by the reason for it. The shape is fixed: `default deny`
(tools the server adds later stay denied until reviewed); secret-exposing and
destructive tools hidden; read-only tools permitted; writes permitted with a shared
rate limit, and every read or write that takes a risky argument gets a guard on the
values that are dangerous anywhere (traversal and credential paths, internal-network
URLs, shell metacharacters, production namespaces, large amounts).

Guards fail closed. Where the guard is a bound the JSON form can require (an amount
`<= 1000`), it sits in the permit: a call whose amount is missing or not a number makes
the permit error, and an erroring permit denies. Where it is a denylist (a path regex,
a `like "*prod*"`), it has to stay a `forbid` with a positive condition — the JSON form
cannot require a negated regex or `like` — and a forbid that errors does not apply. Such
guards rely on typed calls: the gateway refuses every call whose arguments do not
conform to the tool's `inputSchema` before the policy decides, and the starter records
its `@catalog` so that `mcpp lint`, `verify` and `serve` analyse it under the same
guarantee (docs/catalogs.md §5). An optional argument is tested with `has` first, so
leaving it out is a deliberate exemption, not a bypass. `assert`s at the end state what
the policy protects; `mcpp verify` proves them.
"""

from __future__ import annotations

from mcpp.lang import ir
from mcpp.lang.formatter import expr as fmt
from mcpp.lang.strings import quote

from .classify import Classification, RiskyArg, classify
from .model import Catalog

PATH_RE = (r"(^|/)\.\.(/|$)|(^|/)\.(ssh|aws|gnupg|kube|docker|netrc|git-credentials)(/|$)|(^|/)\.env(\.|$)"
           r"|(^|/)id_(rsa|ecdsa|ed25519)|^/(etc|root|proc|sys|boot|dev)(/|$)")
WORKFLOW_RE = r"(^|/)\.github/workflows/"
URL_RE = (r"(?i)^(file|ftp|gopher|dict|ldap|jar|sftp|smb|tftp|ssh|telnet):"
          r"|^[a-z][a-z0-9+.-]*://([^/@]*@)?(localhost|127\.|10\.|192\.168\.|169\.254\.|172\.(1[6-9]|2[0-9]|3[01])\."
          r"|0\.0\.0\.0|\[|metadata\.)")
COMMAND_RE = r"[;&|$<>`]|(^|\s)(sudo|su|rm|mkfs|dd|shutdown|reboot|chmod|chown|curl|wget|nc|ssh|scp)(\s|$)"
AMOUNT_CAP = 1000
WRITE_BUDGET = 100  # writes per hour per grant, all write tools together

# kind → (what is dangerous, the guard's reason for the caller, a `like` pattern the assert covers)
GUARDS = {
    "path": ("path traversal (..), credential files (~/.ssh, ~/.aws, .env, private keys) and system directories",
             "Paths with '..', credential files and system directories are off limits.", '"*/.ssh/*"'),
    "url": ("non-web schemes (file:, ftp:, …) and loopback, private-network and cloud-metadata hosts (SSRF)",
            "URLs must not point at local files, internal networks or cloud metadata.", '"http://169.254.169.254/*"'),
    "command": ("shell metacharacters and privileged or destructive commands (sudo, rm, curl, …)",
                "Commands with shell metacharacters or privileged programs are not allowed.", '"sudo *"'),
    "amount": (f"amounts of at most {AMOUNT_CAP} (a starting cap: set your own)",
               f"Amounts above {AMOUNT_CAP} need a person.", None),
    "namespace": ("production namespaces (any name containing \"prod\") and kube-system",
                  "Production and system namespaces are off limits.", '"*prod*"'),
}
ALLOWLIST_EXAMPLE = {
    "channel": 'context.input.{p} in ["C0123456789"]',
    "repository": 'context.input.{p} in ["your-org"]',
}


# what each kind of risky argument is, with its article, in the comments the starter writes
NOUN = {
    "path": ("a file path", "file paths"), "url": ("a URL", "URLs"), "command": ("a shell command", "shell commands"),
    "amount": ("an amount of money", "amounts"), "namespace": ("a namespace", "namespaces"),
    "channel": ("a channel", "channels"), "repository": ("a repository", "repositories"),
}
PERMIT_GUARDS = ("amount",)  # bounds a permit can require (fail closed); the other guards are denylists


def _noun(kind: str, plural: bool = False) -> str:
    return NOUN.get(kind, (f"a {kind}", f"{kind}s"))[1 if plural else 0]

def _path(p: tuple[str, ...]) -> ir.Expr:
    e: ir.Expr = ir.GetAttr(ir.Var("context"), "input")
    for k in p:
        e = ir.GetAttr(e, k)
    return e


def _guard_condition(a: RiskyArg, tool_kind: str) -> str | None:
    """The forbid condition for a risky argument (None when no universal denylist exists)."""
    p = _path(a.path)
    if a.kind == "path":
        rx = PATH_RE + ("|" + WORKFLOW_RE if tool_kind == "write" else "")
        cond = fmt(ir.Matches(p, rx))
    elif a.kind == "url":
        cond = fmt(ir.Matches(p, URL_RE))
    elif a.kind == "command":
        cond = fmt(ir.Matches(p, COMMAND_RE))
    elif a.kind == "namespace":
        cond = f'{fmt(p)} like "*prod*" || {fmt(p)} in ["kube-system", "kube-public"]'
    else:
        return None
    tests = []  # what must hold before the value is read, each false (never an error) when it fails
    if not a.required:
        tests.append(fmt(ir.Has(ir.GetAttr(ir.Var("context"), "input"), a.path)))
    if a.nullable:
        # null means "not given" to an SDK server (`path: str | None = None`); reading it as a
        # string would error, and a forbid that errors is skipped: `{"path": null}` would
        # bypass the guard (the gateway forwards null, which the schema allows)
        tests.append(fmt(ir.Compare("!=", p, ir.Lit(None))))
    if tests:
        cond = " && ".join(tests) + (f" && ({cond})" if "||" in cond else f" && {cond}")
    return cond


def _permit_condition(a: RiskyArg) -> str:
    """What a permit requires of a bounded argument: true only for a number within the bound,
    an error (so the permit denies) when it is missing or of another type."""
    return fmt(ir.Compare("<=", _path(a.path), ir.Lit(AMOUNT_CAP)))


def _permit_reason(bounds: list[RiskyArg]) -> str:
    names = " or ".join(f"`{a.path_text}`" for a in bounds)
    return f"Amounts above {AMOUNT_CAP} (or a call without a numeric {names}) need a person."


def _assert_condition(a: RiskyArg) -> str | None:
    example = GUARDS.get(a.kind, (None, None, None))[2]
    p = fmt(_path(a.path))
    if a.kind == "amount":
        return f"{p} > {AMOUNT_CAP * 5}"
    if example is None:
        return None
    return f"{p} like {example}"


def _act(name: str) -> str:
    return f"Action::{quote(name)}"


def _comment(text: str, indent: str = "") -> list[str]:
    """Wrap a reason into `//` lines of at most ~92 columns."""
    out, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > 88 - len(indent):
            out.append(f"{indent}// {line}")
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        out.append(f"{indent}// {line}")
    return out


def _action_list(names: list[str]) -> str:
    if len(names) == 1:
        return f"action == {_act(names[0])}"
    return "action in [" + ", ".join(_act(n) for n in names) + "]"


def plan(catalog: Catalog) -> dict[str, list[Classification]]:
    """The starter's decision per tool: hidden | read | write (each with its classification)."""
    out: dict[str, list[Classification]] = {"hidden": [], "read": [], "write": []}
    for t in catalog.tools.values():
        c = classify(t)
        if c.kind in ("destructive", "secret") or c.unguardable:
            out["hidden"].append(c)
        else:
            out[c.kind].append(c)
    return out


def _guards_for(c: Classification, kind: str) -> list[RiskyArg]:
    allowed = ("path", "url", "command") if kind == "read" else ("path", "url", "command", "amount", "namespace")
    return [a for a in c.risky if a.kind in allowed and a.type in ("string", "number")]


def starter_policy(catalog: Catalog, catalog_ref: str | None = None) -> str:
    """The policy text. It passes `mcpp check` (with the catalog), `mcpp verify` and `mcpp compile`."""
    p = plan(catalog)
    server = f"{catalog.server_name or 'unknown server'} {catalog.server_version or ''}".strip()
    L: list[str] = []
    L += _comment(f"Starter policy for {server}: {len(catalog.tools)} tools, written by `mcpp init` from "
                  f"{catalog_ref or 'its catalog'}" + (f" (captured {catalog.captured_at})." if catalog.captured_at else "."))
    L += _comment("Every choice below says why. Annotations are hints from the server, which is not trusted, so "
                  "each verdict also weighs the tool's name; where they disagree the more dangerous reading wins. "
                  "Review it, then run `mcpp check`, `mcpp verify`, `mcpp lint` and `mcpp compile`.")
    if any(a.kind not in PERMIT_GUARDS for sec in ("read", "write") for c in p[sec] for a in _guards_for(c, sec)):
        L += _comment("The argument guards that are `forbid`s are denylists, and they count on typed calls: `mcpp "
                      "serve` refuses every call whose arguments do not conform to the tool's input schema before "
                      "the policy decides, so no forbid can be skipped by sending a value of the wrong type. The "
                      "`@catalog` below makes `mcpp lint`, `mcpp verify` and `mcpp serve` analyse the policy under "
                      "that guarantee; keep it.")
    L.append("")
    L += _comment("Deny what is not permitted below, including tools the server adds after this review.")
    if catalog_ref:
        L.append(f"@catalog({quote(catalog_ref)})")
    L.append("default deny;")
    L.append("")

    asserts: list[str] = []
    if p["hidden"]:
        L += _comment("Hidden: never callable and never listed to the agent.")
        L.append("hide [")
        names = [c.name for c in p["hidden"]]
        for i, c in enumerate(p["hidden"]):
            why = c.reason
            if c.kind == "secret":
                why = "exposes secrets — " + why
            elif c.unguardable:
                args = ", ".join(a.path_text for a in c.unguardable)
                why = (f"takes a list ({args}) of {_noun(c.unguardable[0].kind, plural=True)} that no rule can check one by one, so it "
                       "would bypass the guards on its sibling tools — " + why)
            else:
                why = "destructive — " + why
            L += _comment(f"{c.name}: {why}", "  ")
            L.append(f"  {_act(c.name)}" + ("," if i < len(p["hidden"]) - 1 else ""))
        L.append("];")
        L.append("")
        asserts += _comment("The destructive and secret-exposing tools stay out of every agent's tools/list.")
        asserts += ['@id("hidden-stay-hidden")', f"assert hidden (principal, {_action_list(names)}, resource);", ""]

    unguarded_reads = []
    for section, title in (("read", "Read-only tools: permitted."),
                           ("write", f"Writes: permitted, within a shared budget of {WRITE_BUDGET} calls an hour per grant.")):
        if not p[section]:
            continue
        L += _comment(title)
        L.append("")
        for c in p[section]:
            L += _comment(f"{c.name}: {'reads' if section == 'read' else 'writes'} — {c.reason}.")
            guards = _guards_for(c, section)
            bounds = [a for a in guards if a.kind in PERMIT_GUARDS]
            denylists = [a for a in guards if a.kind not in PERMIT_GUARDS]
            if not guards and section == "read":
                unguarded_reads.append(c.name)
            for a in bounds:
                what = GUARDS[a.kind][0]
                if a.filled:
                    absent = ("it is optional, and a call that omits it is decided with the default the schema "
                              "declares (the gateway fills it in before deciding); one whose value is not a number "
                              "is denied")
                else:
                    absent = ("it is optional, but a call that omits it is denied too (the server's default could be "
                              "anything), and so is one whose value is not a number" if not a.required else
                              "a call without it is denied, and so is one whose value is not a number")
                L += _comment(f"`{a.path_text}` is {_noun(a.kind)} ({a.why}): the permit allows only {what}; {absent} "
                              "(the condition errors, and a permit that errors denies).")
            L.append(f"@id({quote(section + ':' + c.name)})")
            if bounds:
                L.append(f"@reason({quote(_permit_reason(bounds))})")
                L.append(f"permit (principal, action == {_act(c.name)}, resource)")
                L.append("when { " + " && ".join(_permit_condition(a) for a in bounds) + " };")
            else:
                L.append(f"permit (principal, action == {_act(c.name)}, resource);")
            for a in denylists:
                what, reason, _ = GUARDS[a.kind]
                cond = _guard_condition(a, section)
                opt = ("" if a.required else f" `{a.path_text}` is optional, so the guard tests for it first.")
                if a.filled:
                    opt = (f" `{a.path_text}` is optional, but the gateway fills the default the schema declares in "
                           "before deciding, so the guard sees it.")
                if a.nullable:
                    opt += (f" `{a.path_text}` may be null, which means \"not given\" to the server: the guard lets it "
                            "through rather than erroring on it (a forbid that errors would be skipped).")
                L += _comment(f"`{a.path_text}` is {_noun(a.kind)} ({a.why}): deny {what}.{opt}")
                gid = f"guard:{c.name}:{a.path_text}"
                L.append(f"@id({quote(gid)})")
                L.append(f"@reason({quote(reason)})")
                L.append(f"forbid (principal, action == {_act(c.name)}, resource)")
                L.append(f"when {{ {cond} }};")
            for a in guards:
                ac = _assert_condition(a)
                if ac is not None:
                    asserts += _comment(f"{c.name} refuses {_noun(a.kind, plural=True)} like this one.")
                    asserts += [f"@id({quote('protects:' + c.name + ':' + a.path_text)})",
                                f"assert deny (principal, action == {_act(c.name)}, resource)",
                                f"when {{ {ac} }};", ""]
            for a in c.risky:
                if a.kind in ALLOWLIST_EXAMPLE and section == "write" and a.type == "string":
                    L += _comment(f"`{a.path_text}` picks the {a.kind} this writes to; no value is dangerous everywhere, "
                                  "so pin the ones your agents need by adding to the permit above: "
                                  f"when {{ {ALLOWLIST_EXAMPLE[a.kind].format(p=a.path_text)} }}")
                elif a.type == "nested":
                    L += _comment(f"`{a.path_text}` is {_noun(a.kind)} inside a list: no rule can check each element; "
                                  f"hide {c.name} if that matters here.")
            L.append("")
        if section == "write":
            names = [c.name for c in p["write"]]
            L += _comment("Writes share one hourly budget per grant, so a looping agent stops instead of flooding.")
            L.append('@id("write-budget")')
            L.append(f'@reason("Hourly write budget ({WRITE_BUDGET} calls) exhausted.")')
            L.append(f'limit "writes" (principal, {_action_list(names)}, resource)')
            L.append(f"  max {WRITE_BUDGET} per hour scope grant;")
            L.append("")

    permitted = [c.name for c in p["read"] + p["write"]]
    if unguarded_reads:
        asserts += _comment("Read-only tools without risky arguments always work.")
        asserts += ['@id("reads-always-allowed")', f"assert allow (principal, {_action_list(unguarded_reads)}, resource);", ""]
    if permitted:
        asserts += _comment("Nothing outside this review is callable: any other tool, now or added later, is denied.")
        asserts += ['@id("only-reviewed-tools")', "assert deny (principal, action, resource)",
                    "unless { " + _action_list(permitted).replace("action in", "action in", 1) + " };", ""]
    else:
        asserts += _comment("No tool is permitted.")
        asserts += ['@id("nothing-callable")', "assert deny (principal, action, resource);", ""]
    L += _comment("What this policy protects (proved by `mcpp verify`).")
    L.append("")
    L += asserts
    while L and L[-1] == "":
        L.pop()
    return "\n".join(L) + "\n"
