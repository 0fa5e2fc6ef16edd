"""`mcpp check | fmt | compile | decompile | eval`: the language toolchain."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import List, Optional

import typer

from mcpp.console import die, emit_json, fail, print_diagnostics
from mcpp.lang.diagnostics import MCPPError
from mcpp.lang.load import is_json, load_policy, read_text


def check(
    files: List[Path] = typer.Argument(..., help="Policy files (.mcpp or .json)"),
    catalog: Optional[Path] = typer.Option(None, "--catalog", help="Also validate against this tool catalog "
                                           "(default: the one the policy names, if any; see docs/catalogs.md)"),
) -> None:
    """Parse and validate; print `file:line:col: error: …` for every problem. Exit 1 on errors."""
    from mcpp.lang.jsonform import loads
    from mcpp.lang.program import check_source

    errors = 0
    for f in files:
        try:
            text = read_text(f)
        except MCPPError as e:
            print_diagnostics(e.diagnostics)
            errors += 1
            continue
        if is_json(f, text):
            try:
                loads(text, str(f))
                diags = []
            except MCPPError as e:
                diags = e.diagnostics
        else:
            from mcpp.catalog import catalog_diagnostics

            prog, diags = check_source(text, str(f))
            diags = diags + catalog_diagnostics(f, prog, catalog)
        print_diagnostics(diags, text)
        errors += sum(1 for d in diags if d.severity == "error")
    if errors:
        print(f"{errors} error{'s' if errors != 1 else ''}", file=sys.stderr)
        raise typer.Exit(1)


def fmt(
    files: List[Path] = typer.Argument(..., help="Files to format in place; `-` reads stdin, writes stdout"),
    check_only: bool = typer.Option(False, "--check", help="Change nothing; exit 1 if a file is not formatted"),
) -> None:
    """Format .mcpp files canonically (idempotent, comments kept)."""
    from mcpp.lang.formatter import format_document
    from mcpp.lang.parser import parse

    unformatted = []
    for f in files:
        if str(f) == "-":
            text = sys.stdin.read()
            try:
                sys.stdout.write(format_document(parse(text, "<stdin>")))
            except MCPPError as e:
                fail(e, 1)
            continue
        try:
            text = read_text(f)
            out = format_document(parse(text, str(f)))
        except MCPPError as e:
            fail(e, 1)
        if out != text:
            unformatted.append(str(f))
            if not check_only:
                f.write_text(out, encoding="utf-8")
    if check_only and unformatted:
        for name in unformatted:
            print(f"would reformat {name}", file=sys.stderr)
        raise typer.Exit(1)


def _grant_ctx(grant: Optional[str], label: str, groups: List[str]):
    from mcpp.lang.compiler import GrantContext

    if grant is None:
        if label or groups:
            die("--label and --group need --grant (or --user for --group)")
        return None
    return GrantContext(grant, label, frozenset(groups))


def _user_ctx(user: str, claims: List[str], groups: List[str]):
    """`--user ID --claim name=JSON …`: the claims are JSON values, typed by `entity User`."""
    from mcpp.lang.compiler import UserContext

    values = {}
    for c in claims:
        name, eq, text = c.partition("=")
        if not eq or not name:
            die(f"--claim {c!r}: write NAME=JSON, e.g. --claim refund_cap=5000 or --claim 'email=\"a@b.c\"'")
        try:
            values[name] = json.loads(text)
        except json.JSONDecodeError as e:
            die(f"--claim {name}: not a JSON value ({e.msg}): {text!r}")
    return UserContext(user, tuple(values.items()), frozenset(groups))


def compile_cmd(
    file: Path = typer.Argument(..., help="A .mcpp policy"),
    out: Optional[Path] = typer.Option(None, "-o", "--output", help="Write here instead of stdout"),
    grant: Optional[str] = typer.Option(None, "--grant", help="Compile the document for this grant id"),
    label: str = typer.Option("", "--label", help="The grant's label (with --grant)"),
    group: List[str] = typer.Option([], "--group", help="A group the grant is in (repeatable, with --grant)"),
    user: Optional[str] = typer.Option(None, "--user", help="Compile the document for this user (OAuth subject)"),
    claim: List[str] = typer.Option([], "--claim", help="A claim of the user: NAME=JSON, typed by `entity User` "
                                    "(repeatable, with --user)"),
    server: Optional[str] = typer.Option(None, "--server", help="Compile for this server id"),
    validate: bool = typer.Option(True, "--validate/--no-validate", help="Prove the output equivalent (Z3)"),
) -> None:
    """Compile to the gateway's JSON form; refuse, naming the rule, what it cannot express."""
    from mcpp.lang.compiler import compile_program

    if user is not None and grant is not None:
        die("give --grant or --user, not both")
    if claim and user is None:
        die("--claim needs --user")
    if user is not None and label:
        die("--label is a grant's; a user's attributes are --claim NAME=JSON")
    principal = _user_ctx(user, claim, group) if user is not None else _grant_ctx(grant, label, group)
    try:
        program = load_policy(file)
        doc = compile_program(program, principal, server)
    except MCPPError as e:
        fail(e, 1)
    if validate and user is not None:
        _translation_validate_user(program, doc, principal, server)
    elif validate:
        _translation_validate(program, doc, grant, label, group, server)
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")


def _translation_validate(program, doc, grant, label, groups, server) -> None:
    """Hook for the analyzer's proof that `doc` decides exactly as `program` (see mcpp.analyzer)."""
    try:
        from mcpp.analyzer.translation import validate_translation
    except ImportError:  # the analyzer is an optional part of a partial checkout
        return
    problem = validate_translation(program, doc, grant=grant, label=label, groups=list(groups), server=server)
    if problem is not None:
        die(f"translation validation failed, nothing written: {problem}", 1)


def _translation_validate_user(program, doc, principal, server) -> None:
    """For --user: the proof is against the policy as that user sees it (principal folded
    by the evaluator, `lang.compiler.specialise`); the analyzer does not model users yet."""
    try:
        from mcpp.analyzer.translation import validate_translation
    except ImportError:  # the analyzer is an optional part of a partial checkout
        return
    from mcpp.lang.compiler import specialise

    view, why = specialise(program, principal)
    if view is None:
        die(f"translation validation failed, nothing written: {why} (--no-validate writes it unproved)", 1)
    problem = validate_translation(view, doc, server=server)
    if problem is not None:
        die(f"translation validation failed, nothing written: {problem}", 1)


def decompile(
    file: Path = typer.Argument(..., help="A JSON-form policy"),
    out: Optional[Path] = typer.Option(None, "-o", "--output", help="Write here instead of stdout"),
) -> None:
    """Turn a JSON-form policy into readable .mcpp."""
    from mcpp.lang.decompiler import decompile as run

    try:
        text = run(read_text(file), str(file))
    except MCPPError as e:
        fail(e, 1)
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")


def _parse_now(now: Optional[str]) -> Optional[float]:
    if now is None:
        return None
    try:
        return float(now)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(now.replace("Z", "+00:00")).timestamp()
    except ValueError:
        die(f"--now: not a time: {now!r} (epoch seconds or ISO 8601)")


def _call_fields(obj: object, where: str):
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: a call must be a JSON object like {{\"name\": …, \"arguments\": {{…}}}}")
    name = obj.get("name")
    if not isinstance(name, str):
        raise ValueError(f"{where}: \"name\" (the tool) must be a string")
    args = obj.get("arguments", {})
    if args is None:
        args = {}
    return name, args


def _grant_of(value, default):
    from mcpp.runtime.engine import Grant

    if value is None:
        return default
    if isinstance(value, str):
        return Grant(value, default.label if value == default.id else "", default.groups if value == default.id else frozenset())
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        groups = value.get("groups", [])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise ValueError("\"grant.groups\" must be a list of strings")
        return Grant(value["id"], str(value.get("label", "")), frozenset(groups))
    raise ValueError("\"grant\" must be a grant id or {\"id\", \"label\", \"groups\"}")


def eval_cmd(
    policy: Path = typer.Argument(..., help="A .mcpp or JSON-form policy"),
    call: Optional[str] = typer.Option(None, "--call", help='tools/call params: {"name": …, "arguments": {…}}'),
    calls: Optional[Path] = typer.Option(None, "--calls", help="A file of calls, one JSON object a line"),
    grant: str = typer.Option("anonymous", "--grant", help="The grant id making the call"),
    label: str = typer.Option("", "--label", help="The grant's label"),
    group: List[str] = typer.Option([], "--group", help="A group the grant is in (repeatable)"),
    server: str = typer.Option("default", "--server", help="The server id"),
    now: Optional[str] = typer.Option(None, "--now", help="Evaluate at this time (epoch or ISO 8601), for limits"),
) -> None:
    """Decide tool calls; print one JSON decision per call."""
    from mcpp.runtime.engine import Engine, Grant

    if (call is None) == (calls is None):
        die("give exactly one of --call JSON or --calls FILE")
    try:
        engine = Engine(load_policy(policy))
    except MCPPError as e:
        fail(e, 2)
    base_grant = Grant(grant, label, frozenset(group))
    ts = _parse_now(now)
    filename = engine.filename
    if call is not None:
        try:
            obj = json.loads(call)
            name, args = _call_fields(obj, "--call")
            g = _grant_of(obj.get("grant"), base_grant)
            srv = obj.get("server", server)
        except (ValueError, json.JSONDecodeError) as e:
            die(f"--call: {e}")
        d = engine.decide(name, args, g, srv if isinstance(srv, str) else server, now=ts)
        emit_json(d.to_dict(filename))
        return
    text = read_or_die(calls)
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            name, args = _call_fields(obj, f"{calls}:{n}")
            g = _grant_of(obj.get("grant"), base_grant)
            srv = obj.get("server", server)
            if not isinstance(srv, str):
                raise ValueError("\"server\" must be a string")
        except json.JSONDecodeError as e:
            die(f"{calls}:{n}: invalid JSON: {e.msg}")
        except ValueError as e:
            die(f"{calls}:{n}: {e}" if not str(e).startswith(str(calls)) else str(e))
        d = engine.decide(name, args, g, srv, now=ts)
        emit_json(d.to_dict(filename))


def read_or_die(path: Path) -> str:
    try:
        return read_text(path)
    except MCPPError as e:
        fail(e, 2)


def register(app: typer.Typer) -> None:
    app.command("check")(check)
    app.command("fmt")(fmt)
    app.command("compile")(compile_cmd)
    app.command("decompile")(decompile)
    app.command("eval")(eval_cmd)
