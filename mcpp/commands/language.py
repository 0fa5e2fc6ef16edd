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
    target: str = typer.Option("json", "--target", help="json (the gateway's form) or cedar (docs/cedar.md)"),
    catalog: Optional[Path] = typer.Option(None, "--catalog", help="cedar: the tool catalog whose input schemas type context.input"),
    schema_out: Optional[Path] = typer.Option(None, "--schema-out", help="cedar: also write the Cedar schema here (needs --catalog)"),
    partial: bool = typer.Option(False, "--partial", help="cedar: leave out what Cedar cannot express, with a warning for each"),
    namespace: Optional[str] = typer.Option(None, "--namespace", help="cedar: put the entity types and actions in this namespace"),
    agentcore_gateway: Optional[str] = typer.Option(None, "--agentcore-gateway", help="cedar: write for Amazon Bedrock AgentCore Policy, for the gateway with this ARN"),
    agentcore_target: Optional[str] = typer.Option(None, "--agentcore-target", help="cedar: the AgentCore gateway target whose tools the policy governs"),
) -> None:
    """Compile to the gateway's JSON form (or Cedar); refuse, naming the rule, what it cannot express."""
    from mcpp.lang.compiler import compile_program

    if target == "cedar":
        if grant is not None or label or group or server is not None:
            die("--grant, --label, --group and --server apply to --target json")
        _compile_cedar(file, out, catalog, schema_out, partial, namespace, agentcore_gateway, agentcore_target)
        return
    if target != "json":
        die(f"--target must be json or cedar, not {target!r}")
    if catalog is not None or schema_out is not None or partial or namespace is not None or agentcore_gateway or agentcore_target:
        die("--catalog, --schema-out, --partial, --namespace and --agentcore-* apply to --target cedar")
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


def _compile_cedar(file: Path, out: Optional[Path], catalog: Optional[Path], schema_out: Optional[Path],
                   partial: bool, namespace: Optional[str], gateway: Optional[str], gateway_target: Optional[str]) -> None:
    """`--target cedar` (lang/cedar_export.py): refusals are `file:line:col: error:` (exit 1);
    with --partial each left-out statement is a warning and the rest is written."""
    from mcpp.lang.cedar_export import export_program
    from mcpp.lang.cedar_model import CedarNames, namespace_ok

    if schema_out is not None and catalog is None:
        die("--schema-out needs --catalog (the tools' input schemas type context.input)")
    if namespace is not None and not namespace_ok(namespace):
        die(f"--namespace: {namespace!r} is not a Cedar namespace (identifiers joined by ::)")
    if (gateway is None) != (gateway_target is None):
        die("--agentcore-gateway and --agentcore-target go together (AgentCore names a tool <target>___<tool>)")
    if gateway is not None and namespace is not None:
        die("--namespace does not apply with --agentcore-gateway (AgentCore's namespace is AgentCore)")
    if gateway is not None and catalog is None:
        die("--agentcore-gateway needs --catalog (AgentCore validates policies against the tools' input schemas)")
    tools = None
    if catalog is not None:
        from mcpp.catalog import load_catalog

        try:
            tools = {name: t.input_schema for name, t in load_catalog(catalog).tools.items()}
        except MCPPError as e:
            fail(e, 2)
    try:
        program = load_policy(file)
        source = getattr(program, "cedar", None)
        if gateway is not None:
            names = CedarNames.agentcore(gateway, gateway_target)  # type: ignore[arg-type]
        else:
            names = CedarNames.with_namespace(namespace) if namespace is not None or source is None else source.names
        result = export_program(program, tools=tools, names=names, partial=partial, schema=schema_out is not None,
                                contains_spans=source.contains_spans if source is not None else frozenset())
    except MCPPError as e:
        fail(e, 1)
    text = program.document.source if program.document is not None else None
    print_diagnostics(result.left_out, text)
    if result.left_out:
        n = len(result.left_out)
        print(f"{n} statement{'s' if n != 1 else ''} left out: Cedar will not enforce {'them' if n != 1 else 'it'}",
              file=sys.stderr)
    if out is None:
        sys.stdout.write(result.policies)
    else:
        out.write_text(result.policies, encoding="utf-8")
    if schema_out is not None and result.schema is not None:
        schema_out.write_text(result.schema, encoding="utf-8")


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
