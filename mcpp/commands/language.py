"""`mcpp check | fmt | compile | decompile | eval`: the language toolchain."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import List, Optional

import typer

from mcpp.console import die, fail, print_diagnostics
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
            die("--label and --group need --grant")
        return None
    return GrantContext(grant, label, frozenset(groups))


def compile_cmd(
    file: Path = typer.Argument(..., help="A .mcpp policy"),
    out: Optional[Path] = typer.Option(None, "-o", "--output", help="Write here instead of stdout"),
    grant: Optional[str] = typer.Option(None, "--grant", help="Compile the document for this grant id"),
    label: str = typer.Option("", "--label", help="The grant's label (with --grant)"),
    group: List[str] = typer.Option([], "--group", help="A group the grant is in (repeatable, with --grant)"),
    server: Optional[str] = typer.Option(None, "--server", help="Compile for this server id"),
    validate: bool = typer.Option(True, "--validate/--no-validate", help="Prove the output equivalent (Z3)"),
) -> None:
    """Compile to the gateway's JSON form; refuse, naming the rule, what it cannot express."""
    from mcpp.lang.compiler import compile_program

    try:
        program = load_policy(file)
        doc = compile_program(program, _grant_ctx(grant, label, group), server)
    except MCPPError as e:
        fail(e, 1)
    if validate:
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
    from mcpp import Grant, PolicyError, load_policy
    from mcpp._eval import CallError, call_fields, grant_of, json_writer, parse_call, run_calls

    if (call is None) == (calls is None):
        die("give exactly one of --call JSON or --calls FILE")
    try:
        pol = load_policy(policy)
    except PolicyError as e:
        print(e.render(), file=sys.stderr)
        raise typer.Exit(2)
    base_grant = Grant(grant, label, frozenset(group))
    ts = _parse_now(now)
    if call is not None:
        try:
            obj = parse_call(call)
            name, args = call_fields(obj)
            g = grant_of(obj.get("grant"), base_grant)
            srv = obj.get("server", server)
            if not isinstance(srv, str):
                raise ValueError("\"server\" must be a string")
        except json.JSONDecodeError as e:
            die(f"--call: invalid JSON: {e.msg}")
        except ValueError as e:
            die(f"--call: {e}")
        d = pol.decide(name, args, principal=g, server=srv, now=ts)
        json_writer(sys.stdout.write)(json.dumps(d.to_dict(), ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return
    text = read_or_die(calls)
    # the policy and the calls live until the command ends: no collection need look at them
    import gc

    gc.freeze()
    try:
        run_calls(pol, text, json_writer(sys.stdout.write), principal=base_grant, server=server, now=ts, where=str(calls))
    except CallError as e:
        sys.stdout.flush()
        die(str(e))
    sys.stdout.flush()


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
