"""`mcpp check | fmt | compile | decompile | eval`: the language toolchain."""

from __future__ import annotations

import json
import math
import shlex
import sys
from datetime import datetime
from pathlib import Path
from typing import List, NoReturn, Optional

import typer

import mcpp
from mcpp.console import (ERRORS, USAGE, die, fail, load_policy, note, plural, print_diagnostics,
                          read_input, read_stdin, write_output)
from mcpp.help import AUTHOR, DEPLOY, command


def check(
    # (str, not Path: Path("./-") is "-", and a file named `-` must stay a file)
    files: List[str] = typer.Argument(..., metavar="FILE", help="Policy files (.mcpp or .json); `-` reads stdin"),
    catalog: Optional[Path] = typer.Option(None, "--catalog", metavar="CATALOG", help="Also validate against this tool catalog "
                                           "(default: the one the policy names, if any; see docs/catalogs.md)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary line on stderr"),
) -> None:
    """Parse and validate; print `file:line:col: error: …` for every problem. Exit 1 on errors."""
    if files.count("-") > 1:
        die("`-` (standard input) can be given only once")
    cat = _usable_catalog(catalog)  # a --catalog that cannot be used is a usage error, not the policy's
    errors = warnings = unreadable = 0
    for f in files:
        try:
            if f == "-":  # (the named catalog is looked for from the working directory)
                res = mcpp.check(sys.stdin.buffer.read(), catalog=cat, filename="<stdin>")
            else:
                res = mcpp.check(Path(f), catalog=cat, filename=f)
        except mcpp.PolicyFileError as e:
            print_diagnostics(e.diagnostics)
            unreadable += 1
            continue
        diags = [*res.diagnostics, *res.catalog_diagnostics]
        print_diagnostics(diags, res.source)
        errors += sum(1 for d in diags if d.severity == "error")
        warnings += sum(1 for d in diags if d.severity == "warning")
    found = [plural(errors, "error")] if errors else []
    found += [plural(warnings, "warning")] if warnings else []
    readable = len(files) - unreadable
    summary = [f"checked {plural(readable, 'file')}: {', '.join(found) or 'no problems'}"] if readable else []
    summary += [f"{plural(unreadable, 'file')} could not be read"] if unreadable else []
    note("; ".join(summary), quiet)
    if unreadable:
        raise typer.Exit(USAGE)
    if errors:
        raise typer.Exit(ERRORS)


def fmt(
    files: List[Path] = typer.Argument(..., metavar="FILE", help="Files to format in place; `-` reads stdin, writes stdout"),
    check_only: bool = typer.Option(False, "--check", help="Change nothing; exit 1 if a file is not formatted"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary line on stderr"),
) -> None:
    """Format .mcpp files canonically (idempotent, comments kept)."""
    # read everything, then format everything, then write: a missing file (2) or a syntax
    # error (1) anywhere leaves every file as it was
    texts = [(f, read_stdin() if str(f) == "-" else read_input(f)) for f in files]
    formatted: list[tuple[Path, str, str]] = []
    errors: list[mcpp.Diagnostic] = []
    for f, text in texts:
        try:
            formatted.append((f, text, mcpp.format_policy(text, filename="<stdin>" if str(f) == "-" else str(f))))
        except mcpp.PolicyError as e:
            errors.extend(e.diagnostics)
            print_diagnostics(e.diagnostics, text)
    if errors:
        raise typer.Exit(ERRORS)
    unformatted = []
    for f, text, out in formatted:
        if str(f) == "-":
            sys.stdout.write(out)
        elif out != text:
            unformatted.append(str(f))
            if not check_only:
                write_output(f, out)
    named = [f for f in files if str(f) != "-"]
    if check_only:
        for name in unformatted:
            print(f"would reformat {name}", file=sys.stderr)
        if named:
            note(f"{len(unformatted)} of {plural(len(named), 'file')} would be reformatted" if unformatted
                 else f"{plural(len(named), 'file')} already formatted", quiet)
        if unformatted:
            raise typer.Exit(ERRORS)
    elif named:
        note(f"reformatted {len(unformatted)} of {plural(len(named), 'file')}" if unformatted
             else f"{plural(len(named), 'file')} already formatted", quiet)


def _grant(grant: Optional[str], label: str, groups: List[str]) -> mcpp.Grant | None:
    if grant is None:
        if label or groups:
            die("--label and --group need --grant (or --user for --group)")
        return None
    return mcpp.Grant(grant, label, frozenset(groups))


def _user(user: str, claims: List[str], groups: List[str]) -> mcpp.User:
    """`--user ID --claim name=JSON …`: the claims are JSON values, typed by `entity User`."""
    values = {}
    for c in claims:
        name, eq, text = c.partition("=")
        if not eq or not name:
            die(f"--claim {c!r}: write NAME=JSON, e.g. --claim refund_cap=5000 or --claim 'email=\"a@b.c\"'")
        try:
            values[name] = json.loads(text)
        except json.JSONDecodeError as e:
            die(f"--claim {name}: not a JSON value ({e.msg}): {text!r}")
        except RecursionError:  # (json's reader recurses: it raised out as an internal error)
            die(f"--claim {name}: nested too deeply to read")
        except ValueError:  # (an integer past Python's 4,300-digit conversion limit: hostile review 29, F13)
            die(f"--claim {name}: a number too long to read (integers have at most 4300 digits)")
    return mcpp.User(user, values, frozenset(groups))


def compile_cmd(
    file: Path = typer.Argument(..., metavar="FILE", help="A .mcpp policy"),
    out: Optional[Path] = typer.Option(None, "-o", "--output", metavar="FILE", help="Write here instead of stdout"),
    grant: Optional[str] = typer.Option(None, "--grant", metavar="ID", help="Compile the document for this grant id"),
    label: str = typer.Option("", "--label", metavar="LABEL", help="The grant's label (with --grant)"),
    group: List[str] = typer.Option([], "--group", metavar="GROUP", help="A group the grant or user is in (repeatable)"),
    user: Optional[str] = typer.Option(None, "--user", metavar="ID", help="Compile the document for this user (OAuth subject)"),
    claim: List[str] = typer.Option([], "--claim", metavar="NAME=JSON", help="A claim of the user, typed by `entity User` "
                                    "(repeatable, with --user)"),
    server: Optional[str] = typer.Option(None, "--server", metavar="ID", help="Compile for this server id"),
    validate: bool = typer.Option(True, "--validate/--no-validate", help="Prove the output equivalent (Z3)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary line on stderr (with -o)"),
    target: str = typer.Option("json", "--target", metavar="FORM", help="json (the gateway's form) or cedar (docs/cedar.md)"),
    catalog: Optional[Path] = typer.Option(None, "--catalog", metavar="CATALOG", help="The tool catalog: the policy must "
                                           "check clean against it (unknown tools and arguments refuse the compile); "
                                           "cedar: its input schemas type context.input"),
    schema_out: Optional[Path] = typer.Option(None, "--schema-out", metavar="FILE", help="cedar: also write the Cedar schema here (needs --catalog)"),
    partial: bool = typer.Option(False, "--partial", help="cedar: leave out what Cedar cannot express, with a warning for each"),
    namespace: Optional[str] = typer.Option(None, "--namespace", metavar="NS", help="cedar: put the entity types and actions in this namespace"),
    agentcore_gateway: Optional[str] = typer.Option(None, "--agentcore-gateway", metavar="ARN", help="cedar: write for Amazon Bedrock AgentCore Policy, for the gateway with this ARN"),
    agentcore_target: Optional[str] = typer.Option(None, "--agentcore-target", metavar="NAME", help="cedar: the AgentCore gateway target whose tools the policy governs"),
) -> None:
    """Compile to the gateway's JSON form (or Cedar); refuse, naming the rule, what it cannot express."""
    if target == "cedar":
        if grant is not None or label or group or server is not None or user is not None or claim:
            die("--grant, --label, --group, --user, --claim and --server apply to --target json")
        _compile_cedar(file, out, catalog, schema_out, partial, namespace, agentcore_gateway, agentcore_target, quiet)
        return
    if target != "json":
        die(f"--target must be json or cedar, not {target!r}")
    if schema_out is not None or partial or namespace is not None or agentcore_gateway or agentcore_target:
        die("--schema-out, --partial, --namespace and --agentcore-* apply to --target cedar")
    if user is not None and grant is not None:
        die("give --grant or --user, not both")
    if claim and user is None:
        die("--claim needs --user")
    if user is not None and label:
        die("--label is a grant's; a user's attributes are --claim NAME=JSON")
    principal = _user(user, claim, group) if user is not None else _grant(grant, label, group)
    cat = _usable_catalog(catalog)
    policy = load_policy(file)
    if cat is not None:
        _catalog_gate(file, policy, cat)
    else:
        _named_catalog_gate(policy)
    try:
        doc = policy.compile(principal=principal, server=server, validate=validate)
    except mcpp.CompileError as e:
        die(f"translation validation failed, nothing written: {e}", ERRORS)
    except mcpp.PolicyError as e:
        fail(e, ERRORS)
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        write_output(out, text)
        tools = doc.get("tools", {}) if isinstance(doc, dict) else {}
        note(f"wrote {out}: {plural(len(tools), 'tool')}, "
             + ("proved to decide every call as the source does" if validate else "not validated (--no-validate)"), quiet)


def _usable_catalog(path: Optional[Path]):
    """The `--catalog` given to a command, loaded; unusable is unreadable input (exit 2)."""
    if path is None:
        return None
    from mcpp.catalog import CatalogError, load_catalog

    try:
        return load_catalog(path)
    except CatalogError as e:
        fail(e, USAGE)


def _catalog_gate(file: Path, policy: mcpp.Policy, catalog) -> None:
    """`mcpp check --catalog`'s errors refuse the command (exit 1): a rule about a tool the
    catalog does not list, or an argument its schema does not declare, governs nothing."""
    if policy.origin != "mcpp":
        return
    res = mcpp.check(file, catalog=catalog)
    bad = [d for d in res.catalog_diagnostics if d.severity == "error"]
    if bad:
        print_diagnostics(bad, res.source)
        die(f"{plural(len(bad), 'error')} against the catalog, nothing written", ERRORS)


def _named_catalog_gate(policy: mcpp.Policy) -> None:
    """The same gate for the catalog the policy names itself (`@catalog`, mcpp.toml): its
    errors, or a named catalog that cannot be used, refuse the command — never skipped."""
    if policy.origin != "mcpp":
        return
    bad = [d for d in policy.catalog_problems() if d.severity == "error"]
    if bad:
        print_diagnostics(bad, policy.source)
        die(f"{plural(len(bad), 'error')} against the catalog, nothing written", ERRORS)


def _compile_cedar(file: Path, out: Optional[Path], catalog: Optional[Path], schema_out: Optional[Path],
                   partial: bool, namespace: Optional[str], gateway: Optional[str], gateway_target: Optional[str],
                   quiet: bool) -> None:
    """`--target cedar` (lang/cedar_export.py): refusals are `file:line:col: error:` (exit 1);
    with --partial each left-out statement is a warning and the rest is written."""
    if schema_out is not None and catalog is None:
        die("--schema-out needs --catalog (the tools' input schemas type context.input)")
    if namespace is not None and not _namespace_ok(namespace):
        die(f"--namespace: {namespace!r} is not a Cedar namespace (identifiers joined by ::)")
    if (gateway is None) != (gateway_target is None):
        die("--agentcore-gateway and --agentcore-target go together (AgentCore names a tool <target>___<tool>)")
    if gateway is not None and namespace is not None:
        die("--namespace does not apply with --agentcore-gateway (AgentCore's namespace is AgentCore)")
    if gateway is not None and catalog is None:
        die("--agentcore-gateway needs --catalog (AgentCore validates policies against the tools' input schemas)")
    cat = _usable_catalog(catalog)
    policy = load_policy(file)
    if cat is None:
        _named_catalog_gate(policy)
    try:
        result = policy.to_cedar(catalog=cat, namespace=namespace, partial=partial, schema=schema_out is not None,
                                 agentcore=(gateway, gateway_target) if gateway is not None and gateway_target is not None
                                 else None)
    except mcpp.PolicyError as e:
        fail(e, ERRORS)
    print_diagnostics(result.left_out, policy.source)
    if result.left_out:
        n = len(result.left_out)
        print(f"{plural(n, 'statement')} left out: Cedar will not enforce {'them' if n != 1 else 'it'}", file=sys.stderr)
    if out is None:
        sys.stdout.write(result.policies)
    else:
        write_output(out, result.policies)
        n = len(result.ids)
        note(f"wrote {out}: {n} Cedar {'policy' if n == 1 else 'policies'}", quiet)
    if schema_out is not None and result.schema is not None:
        write_output(schema_out, result.schema)


def _namespace_ok(namespace: str) -> bool:
    """Whether `--namespace` is a Cedar namespace: checked before anything is read (a
    usage error, exit 2), by the API's own check (`Policy.to_cedar` raises ValueError)."""
    try:
        mcpp.load_policy("", filename="<namespace>").to_cedar(namespace=namespace)
    except ValueError:
        return False
    return True


def decompile(
    file: Path = typer.Argument(..., metavar="FILE", help="A JSON-form policy (from `mcpp compile`)"),
    out: Optional[Path] = typer.Option(None, "-o", "--output", metavar="FILE", help="Write here instead of stdout"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary line on stderr (with -o)"),
) -> None:
    """Turn a JSON-form policy into readable .mcpp."""
    source = read_input(file)
    if file.suffix.lower() == ".cedar":  # (whether it parses or not: it is no JSON form)
        die(f"{file}: a .cedar file is Cedar policy text; decompile reads the JSON form that `mcpp compile` writes")
    if _is_mcpp_source(file, source):
        die(f"{file}: this is a .mcpp file; did you mean `mcpp compile {shlex.quote(str(file))}`? "
            "(decompile reads the JSON form that compile writes)")
    try:
        text = mcpp.decompile(source, filename=str(file))
    except mcpp.PolicyError as e:
        fail(e, ERRORS)
    if out is None:
        sys.stdout.write(text)
    else:
        write_output(out, text)
        note(f"wrote {out}", quiet)


def _is_mcpp_source(path: Path, text: str) -> bool:
    """A `.mcpp` file, or text that is no JSON at all but parses as mcpp: given to decompile,
    it is the wrong command, not a broken JSON document."""
    if path.suffix.lower() == ".mcpp":
        return True
    if not text.strip() or text.lstrip().startswith(("{", "[", '"')):
        return False
    try:
        mcpp.format_policy(text, filename=str(path))  # it parses: .mcpp
    except mcpp.PolicyError:
        return False
    return True


def _parse_now(now: Optional[str]) -> Optional[float]:
    if now is None:
        return None
    try:
        t = float(now)
    except ValueError:
        pass
    else:
        if not math.isfinite(t) or abs(t) > 253402300799:  # (year 9999: a time some clock can show)
            die(f"--now: not a time: {now!r} (epoch seconds or ISO 8601)")
        return t
    try:
        return datetime.fromisoformat(now.replace("Z", "+00:00")).timestamp()
    except ValueError:
        die(f"--now: not a time: {now!r} (epoch seconds or ISO 8601)")


def _own_catalog(pol: mcpp.Policy) -> None:
    """The catalog the policy names (`@catalog`, mcpp.toml), checked against it and kept, so
    that `eval` fills each tool's declared defaults in as the gateway does (the policy is
    loaded once; a named catalog that cannot be used is an error, never skipped: exit 1
    with the error at the annotation that names it)."""
    errors = [d for d in pol.catalog_problems() if d.severity == "error"]
    if errors:
        _refuse(errors, pol.source)
    cat = pol.named_catalog()
    if cat is not None:
        pol.catalog = cat


def _refuse(diags, source: str | None) -> NoReturn:
    """The policy's errors, as `PolicyError.render()` prints them: exit 1."""
    print("\n".join(d.render(source) for d in diags), file=sys.stderr)
    raise typer.Exit(ERRORS)


def eval_cmd(
    policy: Path = typer.Argument(..., metavar="FILE", help="A .mcpp or JSON-form policy"),
    call: Optional[str] = typer.Option(None, "--call", metavar="JSON", help='tools/call params: {"name": …, "arguments": {…}}'),
    calls: Optional[Path] = typer.Option(None, "--calls", metavar="FILE", help="A file of calls, one JSON object a line (limits count across lines)"),
    grant: str = typer.Option("anonymous", "--grant", metavar="ID", help="The grant id making the call"),
    label: str = typer.Option("", "--label", metavar="LABEL", help="The grant's label"),
    group: List[str] = typer.Option([], "--group", metavar="GROUP", help="A group the grant is in"),
    server: str = typer.Option("default", "--server", metavar="ID", help="The server id"),
    now: Optional[str] = typer.Option(None, "--now", metavar="TIME", help="Evaluate at this time (epoch seconds or ISO 8601), for limits"),
) -> None:
    """Decide tool calls; print one JSON decision per call."""
    from mcpp import Grant, PolicyError, PolicyFileError
    from mcpp import load_policy as load_api_policy
    from mcpp._eval import CallError, call_fields, grant_of, json_writer, parse_call, run_calls

    if (call is None) == (calls is None):
        die("give exactly one of --call JSON or --calls FILE")
    ts = _parse_now(now)
    base_grant = Grant(grant, label, frozenset(group))
    # the inputs are read (and a single --call checked) before the policy loads: bad usage
    # exits 2 whatever the policy holds; a bad line of --calls stops the run at that line
    if call is not None:
        try:
            obj = parse_call(call)
            name, args = call_fields(obj)
            g = grant_of(obj.get("grant"), base_grant)
            srv = obj.get("server", server)
            if not isinstance(srv, str):
                raise ValueError("\"server\" must be a string")
        except json.JSONDecodeError as e:
            die(f"--call: invalid JSON: {e.msg} (line {e.lineno}, column {e.colno})")
        except ValueError as e:
            die(f"--call: {e}")
        except RecursionError:  # (beyond what json reads at all; a shallower excess is decided: refused)
            die("--call: invalid JSON: nested too deeply to read")
    else:
        assert calls is not None  # exactly one of the two (checked above)
        text = read_input(calls)
    try:
        pol = load_api_policy(policy)
        _own_catalog(pol)
    except PolicyFileError as e:
        print(e.render(), file=sys.stderr)
        raise typer.Exit(USAGE)
    except PolicyError as e:
        print(e.render(), file=sys.stderr)
        raise typer.Exit(ERRORS)
    if call is not None:
        d = pol.decide(name, args, principal=g, server=srv, now=ts)
        json_writer(sys.stdout.write)(json.dumps(d.to_dict(), ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return
    # the policy and the calls live until the command ends: no collection need look at them
    import gc

    gc.freeze()
    try:
        run_calls(pol, text, json_writer(sys.stdout.write), principal=base_grant, server=server, now=ts, where=str(calls))
    except CallError as e:
        sys.stdout.flush()
        die(str(e))
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    command(app, "check", check, AUTHOR)
    command(app, "fmt", fmt, AUTHOR)
    command(app, "eval", eval_cmd, AUTHOR)
    command(app, "compile", compile_cmd, DEPLOY)
    command(app, "decompile", decompile, DEPLOY)
