"""`mcpp verify | lint | diff`: the analyzer on the command line.

Exit codes (the table in mcpp.console): 0 everything passed; 1 the input has errors
(syntax, validation, a malformed assertion, a bad regex, and with a catalog every error of
`mcpp check --catalog`, reported with the same `file:line:col: error:` diagnostics), an
assertion failed or could not be decided, an error-level lint fired (in `verify` too: a
rule a caller can bypass, unless `--allow-bypassable`), or `diff --fail-on` matched; 2 bad
usage or unreadable input (a missing file, an unusable `--catalog`).

With a catalog (`--catalog`, or the policy's own `@catalog`/mcpp.toml) the analysis is
typed: calls conform to each tool's inputSchema, as the gateway enforces (docs/analyzer.md,
"Typed analysis"), and every output says so.
"""

from __future__ import annotations

import json
import sys
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer

import mcpp
from mcpp.help import PROVE, command
from mcpp.console import ERRORS, USAGE, die, fail, print_diagnostics

if TYPE_CHECKING:
    from mcpp.catalog import Catalog

FORMATS = ("text", "json", "sarif")


def _format(fmt: str) -> str:
    if fmt not in FORMATS:
        die(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return fmt


TYPED_NOTE = "calls assumed to conform to each tool's inputSchema, which the gateway enforces"


@dataclass
class Loaded:
    """One policy file as the analyzer commands read it: the policy (`mcpp.check`), its
    text, and the catalog its analysis is typed by (None: untyped; also the policy's own
    `catalog`), with the name it was given by."""

    path: Path
    policy: mcpp.Policy
    text: str
    catalog: Catalog | None = None
    catalog_name: str | None = None
    _caveats: list | None = dataclasses.field(default=None, repr=False)

    @property
    def typed_line(self) -> str | None:
        return f"typed by catalog {self.catalog_name}: {TYPED_NOTE}" if self.catalog is not None else None

    def typed_dict(self) -> dict | None:
        if self.catalog is None:
            return None
        return {"catalog": self.catalog_name, "server": self.catalog.server_name, "tools": len(self.catalog.tools),
                "assumption": TYPED_NOTE, "caveats": [c.to_dict() for c in self.caveats]}

    @property
    def caveats(self) -> list[mcpp.Caveat]:
        """The typed-call caveats about defaults (`Policy.caveats`): an argument a rule
        reads whose declared default the gateway does not fill, or refuses."""
        if self.catalog is None:
            return []
        if self._caveats is None:
            self._caveats = self.policy.caveats()
        return self._caveats

    def caveat_lines(self) -> list[str]:
        return [f"caveat (line {c.line}): {c.message}" for c in self.caveats]


def catalog_option(catalog: Optional[Path]):
    """(Catalog, name) from `--catalog` (or `--tools`, its old name), or (None, None). A
    catalog that cannot be used is unreadable input (exit 2), as in `mcpp check`."""
    path = catalog
    if path is None:
        return None, None
    from mcpp.catalog import CatalogError, load_catalog

    try:
        return load_catalog(path), str(path)
    except CatalogError as e:
        fail(e, USAGE)


def load_checked(paths: list[Path], catalog=None, catalog_name: str | None = None,
                 own_catalogs: bool = True) -> list[Loaded]:
    """Every file, checked (`mcpp.check`), or exit with `mcpp check`'s diagnostics: 2 when
    a file cannot be read (every file is read before any is reported), 1 when any has
    errors (every file's errors are printed).

    The catalog of each file is `catalog` (a `--catalog` option) or, with `own_catalogs`,
    the one a .mcpp policy names (`@catalog`, resolved against the policy's directory, or
    an `mcpp.toml`). With a catalog, its errors are the file's errors too (`mcpp check
    --catalog`): unknown tools, arguments the schema does not declare, types that can
    never match; a named catalog that cannot be used is an error at its annotation."""
    checked = []
    for path in paths:
        try:
            checked.append(mcpp.check(path, catalog=catalog, named_catalog=own_catalogs))
        except mcpp.PolicyFileError as e:
            fail(e, USAGE)
    out: list[Loaded] = []
    errors = 0
    for path, res in zip(paths, checked):
        bad = [d for d in res.diagnostics if d.severity == "error"]
        if not bad:
            pol = res.policy
            assert pol is not None  # no errors: a policy
            mcpp_source = pol.origin == "mcpp"
            cat, name = catalog, catalog_name
            if catalog is not None:
                cdiags = list(res.catalog_diagnostics) if mcpp_source else []
            elif not own_catalogs or not mcpp_source:
                cat, name, cdiags = None, None, []
            else:
                cat, name, cdiags = res.catalog, res.catalog_name, list(res.catalog_diagnostics)
            pol.catalog = cat  # the catalog the analysis is typed by
            bad = [d for d in cdiags if d.severity == "error"]
            if cat is not None:
                starts = {b.span.start for b in bad if b.code == "catalog-unknown-tool" and b.span is not None}
                bad += [d for d in pol.assertion_problems() if d.code == "unknown-tool"
                        and not (d.span is not None and d.span.start in starts)]
            out.append(Loaded(path, pol, res.source, cat, name))
        print_diagnostics(bad, res.source)
        errors += len(bad)
    if errors:
        print(f"{errors} error{'s' if errors != 1 else ''}", file=sys.stderr)
        raise typer.Exit(ERRORS)
    return out


CATALOG_HELP = ("Tool catalog (from `mcpp catalog pull`): the analysis is typed by each tool's inputSchema, and "
                "unknown tools and arguments are errors (default: the policy's @catalog or mcpp.toml; "
                "--tools is the old name)")


DEADLINE_HELP = ("Seconds for the whole run (every file, query and regex translation); what is not decided "
                 "by then is UNKNOWN. Default: no overall bound")


def run_deadline(seconds: Optional[float]):
    """The run's `mcpp.Deadline`, counted from now and shared by every file, query and
    regex translation of the command; None without --deadline."""
    if seconds is None:
        return None
    try:
        return mcpp.Deadline(seconds)
    except ValueError as e:
        die(f"--deadline: {e}")


def _typed_properties(loaded: list[Loaded]) -> dict | None:
    typed = {str(item.path): item.typed_dict() for item in loaded if item.catalog is not None}
    return {"typed": typed} if typed else None


# ---- verify ------------------------------------------------------------------------------


def verify_cmd(
    files: List[Path] = typer.Argument(..., metavar="FILE", help="Policy files with `assert` statements"),
    fmt: str = typer.Option("text", "--format", "-f", metavar="FORMAT", help="text | json | sarif"),
    timeout: int = typer.Option(5000, "--timeout", metavar="MS", min=1, help="Z3 timeout per query, in milliseconds"),
    catalog: Optional[Path] = typer.Option(None, "--catalog", "--tools", metavar="CATALOG", help=CATALOG_HELP),
    allow_bypassable: bool = typer.Option(False, "--allow-bypassable", help="Report rules a caller can bypass "
                                          "(error-level lint findings) as warnings instead of failing"),
    deadline: Optional[float] = typer.Option(None, "--deadline", metavar="SECONDS", help=DEADLINE_HELP),
) -> None:
    """Prove every `assert` (PASS, FAIL with a counterexample call, or UNKNOWN with the reason), and fail on
    rules a caller can bypass (the error-level findings of `mcpp lint`)."""
    from mcpp.analyzer.report import dumps, sarif

    fmt = _format(fmt)
    run = run_deadline(deadline)
    cat, name = catalog_option(catalog)
    loaded = load_checked(files, cat, name)
    bad = False
    for item in loaded:
        problems = [d for d in item.policy.assertion_problems() if d.code != "unknown-tool"]
        if problems:
            print_diagnostics(problems, item.text)
            bad = True
    if bad:
        raise typer.Exit(ERRORS)
    per_file = []
    for item in loaded:
        try:
            results = item.policy.verify(timeout_ms=timeout, deadline=run)
        except mcpp.PolicyError as e:  # load_checked reported every malformed assertion; fail closed anyway
            print_diagnostics(e.diagnostics, item.text)
            raise typer.Exit(ERRORS)
        # a bypass check left undecided (a timeout, the deadline) fails verify too: never a silent pass
        found = item.policy.lint(errors_only=True, timeout_ms=timeout, deadline=run, undecided=True)
        if allow_bypassable:
            found = [dataclasses.replace(d, severity="warning") for d in found]
        per_file.append((item, results, found))
    results = [r for _, rs, _ in per_file for r in rs]
    findings = [d for _, _, ds in per_file for d in ds]
    blocking = sum(1 for d in findings if d.severity == "error")
    counts = {s: sum(1 for r in results if r.status == s) for s in ("pass", "fail", "unknown")}
    if fmt == "json":
        print(dumps({
            "files": [{"file": str(item.path), "typed": item.typed_dict(), "asserts": [r.to_dict() for r in rs],
                       "findings": [d.to_dict() for d in ds]} for item, rs, ds in per_file],
            "summary": {"passed": counts["pass"], "failed": counts["fail"], "unknown": counts["unknown"],
                        "blocking": blocking, "bypassable_allowed": len(findings) - blocking},
        }))
    elif fmt == "sarif":
        diags = [d for item, rs, ds in per_file for d in [r.finding for r in rs if r.finding is not None] + ds]
        print(dumps(sarif(diags, properties=_typed_properties(loaded))))
    else:
        for item, rs, ds in per_file:
            print(f"{item.path}")
            if item.typed_line:
                print(f"  {item.typed_line}")
            for line in item.caveat_lines():
                print(f"  {line}")
            if not rs:
                print("  no assertions")
            for r in rs:
                _print_assert(r)
            for d in ds:
                print("  " + d.render(item.text).replace("\n", "\n  ") + f"\n    docs: {d.data.get('docs')}")
        line = f"{counts['pass']} passed, {counts['fail']} failed, {counts['unknown']} unknown"
        undecided = sum(1 for d in findings if d.code == "undecided")  # the bypass check itself not decided
        if undecided:
            line += f"; the bypassable-rule check undecided in {undecided} file{'s' if undecided != 1 else ''}"
        if len(findings) > undecided:
            line += (f"; {len(findings) - undecided} bypassable rule{'s' if len(findings) - undecided != 1 else ''} "
                     + ("(allowed by --allow-bypassable)" if not blocking else "(mcpp lint explains; --allow-bypassable downgrades)"))
        print(line)
    if counts["fail"] or counts["unknown"] or blocking:
        raise typer.Exit(ERRORS)


def _print_assert(r: mcpp.AssertResult) -> None:
    tag = {"pass": "PASS   ", "fail": "FAIL   ", "unknown": "UNKNOWN"}[r.status]
    print(f"  {tag} {r.id} ({r.kind}, line {r.span.line if r.span else 0}): {r.message}")
    g = r.witness
    if g is not None and r.status == "fail":
        if g.arguments or r.kind != "visible":
            print("          request: " + json.dumps(g.request(), ensure_ascii=False))
        if isinstance(g.principal, mcpp.User):  # the user and its claims, as the engine replayed it
            print(f"          caller:  {g.caller()}  server: {json.dumps(g.server, ensure_ascii=False)}")
        else:
            print(f"          grant:   {json.dumps(g.to_dict()['grant'], ensure_ascii=False)}"
                  f"  server: {json.dumps(g.server, ensure_ascii=False)}")
        if g.counters:
            print("          counters: " + ", ".join(f"{c} ({s}, per {w}) = {v}" for c, s, w, v in g.counters))
    if r.decision is not None and r.status == "fail":
        d = r.decision
        print(f"          decision: {d['decision']} by {d['rule']}" + (f" (policy {d['policy']})" if d.get("policy") else "")
              + f": {d['message']}")
    for reason in r.reasons:
        print(f"          reason: {reason}")


# ---- lint ------------------------------------------------------------------------------------


def lint_cmd(
    files: List[Path] = typer.Argument(..., metavar="FILE", help="Policy files (.mcpp or .json)"),
    fmt: str = typer.Option("text", "--format", "-f", metavar="FORMAT", help="text | json | sarif"),
    timeout: int = typer.Option(5000, "--timeout", metavar="MS", min=1, help="Z3 timeout per query, in milliseconds"),
    only: List[str] = typer.Option([], "--only", metavar="LINT", help="Run only this lint (docs/lints/ lists them)"),
    disable: List[str] = typer.Option([], "--disable", metavar="LINT", help="Skip this lint"),
    catalog: Optional[Path] = typer.Option(None, "--catalog", "--tools", metavar="CATALOG", help=CATALOG_HELP),
    deadline: Optional[float] = typer.Option(None, "--deadline", metavar="SECONDS", help=DEADLINE_HELP),
) -> None:
    """Find dead, redundant and bypassable rules, unsatisfiable conditions, unanchored allowlist
    regexes, and policies that allow everything or nothing. Exit 1 on an error-level finding."""
    from mcpp.analyzer.report import dumps, sarif

    fmt = _format(fmt)
    LINTS = mcpp.lint_names()
    for name in list(only) + list(disable):
        if name not in LINTS:
            die(f"unknown lint {name!r}; lints are {', '.join(sorted(LINTS))}")
    chosen = (set(only) or set(LINTS)) - set(disable)
    run = run_deadline(deadline)
    cat, name = catalog_option(catalog)
    loaded = load_checked(files, cat, name)
    findings = []
    for item in loaded:
        ds = item.policy.lint(timeout_ms=timeout, only=chosen, deadline=run)
        # `undecided` stays unless disabled by name: `--only X` must not hide that X was not fully checked
        findings.append((item, item.text, [d for d in ds if d.code != "undecided" or "undecided" not in disable]))
    all_diags = [d for _, _, ds in findings for d in ds]
    if fmt == "json":
        print(dumps({"findings": [d.to_dict() for d in all_diags],
                     "typed": {str(item.path): item.typed_dict() for item in loaded if item.catalog is not None}}))
    elif fmt == "sarif":
        print(dumps(sarif(all_diags, properties=_typed_properties(loaded))))
    else:
        for item, text, ds in findings:
            if item.typed_line:
                print(f"{item.path}: {item.typed_line}")
            for d in ds:
                print(d.render(text) + f"\n  docs: {d.data.get('docs')}")
        errors = sum(1 for d in all_diags if d.severity == "error")
        warnings = len(all_diags) - errors
        print(f"{errors} error{'s' if errors != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''}"
              f" in {len(files)} file{'s' if len(files) != 1 else ''}")
    if any(d.severity == "error" for d in all_diags):
        raise typer.Exit(ERRORS)


# ---- diff ------------------------------------------------------------------------------------


def diff_cmd(
    old: Path = typer.Argument(..., metavar="OLD", help="The current policy (.mcpp or .json)"),
    new: Path = typer.Argument(..., metavar="NEW", help="The proposed policy (.mcpp or .json)"),
    fmt: str = typer.Option("text", "--format", "-f", metavar="FORMAT", help="text | json | sarif"),
    timeout: int = typer.Option(5000, "--timeout", metavar="MS", min=1, help="Z3 timeout per query, in milliseconds"),
    fail_on: str = typer.Option("none", "--fail-on", metavar="CHANGE", help="looser | stricter | any | none: exit 1 when such a change is found (or cannot be ruled out)"),
    audit: Optional[Path] = typer.Option(None, "--audit", metavar="DB", help="A gateway audit database (audit.db): also list the real past calls whose decision would change"),
    since: Optional[str] = typer.Option(None, "--since", metavar="TIME", help="With --audit: only calls since (ISO time, epoch seconds, or an age like 7d)"),
    server: Optional[str] = typer.Option(None, "--server", metavar="ID", help="With --audit: only calls to this server"),
    catalog: Optional[Path] = typer.Option(None, "--catalog", "--tools", metavar="CATALOG", help=CATALOG_HELP.replace(
        "the policy's @catalog or mcpp.toml", "NEW's @catalog or mcpp.toml, else OLD's")),
    deadline: Optional[float] = typer.Option(None, "--deadline", metavar="SECONDS", help=DEADLINE_HELP),
) -> None:
    """Per tool: equivalent, stricter, looser or both, with a concrete call for each direction."""
    from mcpp.analyzer.report import dumps, location_result, sarif

    fmt = _format(fmt)
    if fail_on not in ("looser", "stricter", "any", "none"):
        die("--fail-on must be looser, stricter, any or none")
    if audit is not None and not audit.is_file():
        die(f"--audit: {audit}: no such audit database")
    if (since or server) and audit is None:
        die("--since and --server select audited calls: give --audit DB")
    run = run_deadline(deadline)
    cat, name = catalog_option(catalog)
    l_old, l_new = load_checked([old, new], cat, name)
    typed = l_new if l_new.catalog is not None else l_old  # both are judged on the same calls: NEW's catalog first
    diffs = mcpp.diff(l_old.policy, l_new.policy, timeout_ms=timeout, catalog=typed.catalog, deadline=run)
    past = _past_calls(l_old.policy, l_new.policy, audit, since, server, timeout, run) if audit is not None else None
    if fmt == "json":
        doc = {"old": str(old), "new": str(new), "typed": typed.typed_dict(), "tools": [d.to_dict() for d in diffs]}
        if past is not None:
            doc["audit"] = past
        print(dumps(doc))
    elif fmt == "sarif":
        results = []
        for d in diffs:
            for name, direction in (("looser", d.looser), ("stricter", d.stricter)):
                if direction.status == "no":
                    continue
                rule = f"diff-{name}" if direction.status == "yes" else "diff-unknown"
                text = _direction_text(d, name, direction)
                line = _line_of(direction.new) if direction.new else 1
                props = {"counterexample": direction.witness.to_dict()} if direction.witness else None
                results.append(location_result(rule, text, str(new), line, 1, props))
        print(dumps(sarif([], results)))
    else:
        if typed.typed_line:
            print(typed.typed_line)
        for d in diffs:
            print(f"{OTHER_TOOLS if d.other_tools else d.tool}: {d.status}")
            for name, direction in (("looser", d.looser), ("stricter", d.stricter)):
                if direction.status != "no":
                    print("  " + _direction_text(d, name, direction))
        changed = sum(1 for d in diffs if d.status in ("looser", "stricter", "both"))
        undecided = sum(1 for d in diffs if d.status == "unknown")  # (not known to have changed)
        print(f"{changed} of {len(diffs)} tool cases changed" + (f", {undecided} undecided" if undecided else ""))
        if past is not None:
            _print_past(past)
    if _fails(diffs, fail_on):
        raise typer.Exit(ERRORS)


# The analyzer decides every tool neither version names at once, through one stand-in name
# (`delete_everything`, made unique): people read the case by what it covers, and the
# stand-in only inside the example call.
OTHER_TOOLS = "every tool neither version names"


def _direction_text(d: mcpp.ToolDiff, name: str, direction: mcpp.Change) -> str:
    if direction.status == "unknown":
        return f"{name}? undecided: {direction.reason}"
    w = direction.witness
    assert w is not None and direction.old is not None and direction.new is not None  # a change found: its call
    verbs = {("deny", "allow"): "newly allowed", ("allow", "deny"): "newly denied",
             ("deny", "approval"): "newly allowed with a person's approval", ("approval", "deny"): "newly denied",
             ("approval", "allow"): "no longer needs approval", ("allow", "approval"): "newly needs approval"}
    verb = verbs.get((direction.old["decision"], direction.new["decision"]),
                     "newly allowed" if name == "looser" else "newly denied")
    example = f"any tool neither version names, e.g. {w.brief()}" if d.other_tools else w.brief()
    return (f"{verb}: {example} (old: {direction.old['decision']} by {direction.old['rule']}; "
            f"new: {direction.new['decision']} by {direction.new['rule']})")


def _line_of(decision: dict) -> int:
    span = decision.get("span")
    if isinstance(span, str) and span.count(":") >= 2:
        try:
            return int(span.rsplit(":", 2)[1])
        except ValueError:
            return 1
    return 1


REPLAY_NOTE = {
    "keys": "argument keys only (values were not retained): `has` is known, every value is not",
    "hashed": "hashed values: shape, types, and equality with every constant the policies compare with; not order or patterns",
    "full": "full values: replayed exactly",
}


def _past_calls(old: mcpp.Policy, new: mcpp.Policy, db: Path, since, server, timeout: int, deadline=None) -> dict:
    """The audited calls, grouped by what the audit knows of them, replayed (analyzer/replay.py)."""
    import re

    from mcpp.commands.gateway import _time
    from mcpp.runtime.gateway.audit import AuditLog

    try:
        log = AuditLog(db.parent, readonly=True)
        if log.path.resolve() != db.resolve():
            log.close()
            die(f"--audit: expected a file named audit.db, not {db.name}")
        rows = log.query(server=server, since=_time(since, "--since"))
    except Exception as e:
        die(f"--audit: cannot read {db}: {type(e).__name__}: {e}")
    key_file = db.parent / "audit-values.key"
    key = bytes.fromhex(key_file.read_text().strip()) if key_file.exists() else None
    calls: dict = {}
    skipped = {"answers": 0, "before_policy": 0}
    for r in rows:
        if r["decision"] not in ("allow", "deny", "approval"):
            skipped["answers"] += 1  # a person's answer, not a call
            continue
        if re.match(r"^/tools/[^/]*/schema(/|$)", r["rule"]) or r["rule"].startswith("/catalog/") or r["rule"] in (
                "/no-policy", "/error", "/limits/store-unavailable", "/approval/unbindable"):
            skipped["before_policy"] += 1  # refused before any policy decided: a new policy changes nothing
            continue
        values = r.get("arg_values")
        kind = values.get("kind") if isinstance(values, dict) else None
        known = kind if isinstance(kind, str) and kind in ("hashed", "full") else "keys"
        keys = tuple(r["arg_keys"])
        complete = not any(k.startswith("…(+") for k in keys)
        groups = tuple(r["grant_groups"]) if r.get("grant_groups") is not None else None
        pc = mcpp.PastCall(r["tool"], r["grant_id"], r["grant_label"], groups, r["server"], keys, complete, known,
                      json.dumps(values) if known != "keys" else None)
        calls.setdefault(pc, []).append(r["seq"])
    results = mcpp.replay(old, new, calls, key=key, timeout_ms=timeout, deadline=deadline)
    by = {s: [x for x in results if x.status == s] for s in ("changes", "may-change", "unknown", "unchanged")}
    return {
        "database": str(db), "rows": len(rows), "distinct_calls": len(results),
        "rows_changing": sum(len(x.rows) for x in by["changes"]),
        "rows_that_may_change": sum(len(x.rows) for x in by["may-change"]),
        "rows_unchanged": sum(len(x.rows) for x in by["unchanged"]),
        "rows_undecided": sum(len(x.rows) for x in by["unknown"]),
        "not_replayed": skipped, "hash_key": key is not None,
        "calls": [x.to_dict() for x in results if x.status != "unchanged"],
    }


def _print_past(past: dict) -> None:
    print(f"past calls in {past['database']}: {past['rows']} rows, {past['distinct_calls']} distinct calls")
    for c in past["calls"]:
        who = f"{c['grant_label']}({c['grant_id']})" if c["grant_label"] else c["grant_id"]
        head = f"  {c['status']:<10} {c['rows']} row{'s' if c['rows'] != 1 else ''}  {c['tool']} by {who} on {c['server']} [{c['known']}]"
        if "call" in c:
            args = json.dumps(c["call"]["request"]["params"]["arguments"], ensure_ascii=False)
            head += (f": old {c['old']['decision']} by {c['old']['rule']}; new {c['new']['decision']} by {c['new']['rule']}"
                     f"; {'e.g. ' if c['status'] != 'changes' or c['known'] != 'full' else ''}arguments {args}")
        print(head)
        if c.get("reason"):
            print(f"             {c['reason']}")
    print(f"{past['rows_changing']} rows change, {past['rows_that_may_change']} may change, "
          f"{past['rows_unchanged']} unchanged, {past['rows_undecided']} undecided; not replayed: "
          f"{past['not_replayed']['before_policy']} refused before the policy, {past['not_replayed']['answers']} approval answers")
    kinds = sorted({c["known"] for c in past["calls"]})
    for k in kinds:
        print(f"  [{k}] {REPLAY_NOTE[k]}")
    print("  limits are compared at zero counts: the audit does not record the counts a past call met")


def _fails(diffs, fail_on: str) -> bool:
    if fail_on == "none":
        return False
    for d in diffs:
        for name, direction in (("looser", d.looser), ("stricter", d.stricter)):
            if direction.status in ("yes", "unknown") and fail_on in (name, "any"):
                return True
    return False


def register(app: typer.Typer) -> None:
    command(app, "verify", verify_cmd, PROVE)
    command(app, "lint", lint_cmd, PROVE)
    command(app, "diff", diff_cmd, PROVE)
