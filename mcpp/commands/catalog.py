"""`mcpp catalog pull | diff | show` and `mcpp init`: tool catalogs and starter policies."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import List, Optional

import typer

from mcpp.help import DEPLOY, Command, command, group
from mcpp.console import ERRORS, USAGE, die, fail, note, plural, write_output

catalog_app = group(
    "Capture a server's tools (pull), compare two captures (diff), and list how mcpp reads each tool (show). "
    "Policies are checked against a catalog by `mcpp check`; `mcpp init` starts a policy from one."
)


def _load(path: Path):
    from mcpp.catalog import CatalogError, load_catalog

    try:
        return load_catalog(path)
    except CatalogError as e:
        fail(e, USAGE)  # a catalog is evidence the command reads: unusable means unreadable input


@catalog_app.command("pull", cls=Command)
def pull_cmd(
    url: Optional[str] = typer.Option(None, "--url", metavar="URL", help="A Streamable HTTP MCP endpoint, e.g. http://127.0.0.1:8000/mcp"),
    header: List[str] = typer.Option([], "--header", metavar="NAME:VALUE", help="An HTTP header for --url"),
    stdio: Optional[str] = typer.Option(None, "--stdio", metavar='"CMD ARGS"', help='A command that speaks MCP on stdio, e.g. "npx -y @modelcontextprotocol/server-memory"'),
    env: List[str] = typer.Option([], "--env", metavar="NAME=VALUE", help="An environment variable for the --stdio command"),
    cwd: Optional[Path] = typer.Option(None, "--cwd", metavar="DIR", help="Working directory for the --stdio command"),
    out: Optional[Path] = typer.Option(None, "-o", "--output", metavar="FILE", help="Write the catalog here (default: stdout)"),
    timeout: float = typer.Option(120.0, "--timeout", metavar="SECONDS", help="Seconds to wait for the whole capture"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary line on stderr (with -o)"),
) -> None:
    """Connect with the MCP SDK client, read every page of tools/list, and write a catalog."""
    from mcpp.catalog.pull import PullError, Target, parse_env, parse_header, pull

    if (url is None) == (stdio is None):
        die("give exactly one of --url URL or --stdio \"CMD …\"")
    try:
        if url is not None:
            if env or cwd:
                die("--env and --cwd apply to --stdio")
            if not url.startswith(("http://", "https://")):
                die(f"--url {url!r}: expected an http:// or https:// URL")
            target = Target(url=url, headers=dict(parse_header(h) for h in header), timeout=timeout)
        else:
            if header:
                die("--header applies to --url")
            try:
                cmd = shlex.split(stdio)
            except ValueError as e:
                die(f"--stdio: cannot split the command: {e}")
            if not cmd:
                die("--stdio: the command is empty")
            target = Target(command=cmd, env=dict(parse_env(x) for x in env), cwd=str(cwd) if cwd else None,
                            timeout=timeout)
        catalog = pull(target)
    except PullError as e:  # the server could not be read, or answered with no usable tools/list
        die(str(e), USAGE)
    text = catalog.dumps()
    if out is None:
        sys.stdout.write(text)
    else:
        write_output(out, text)
        note(f"{out}: {plural(len(catalog.tools), 'tool')} from {_server(catalog)}", quiet)


def _server(cat) -> str:
    """"name version", without a stray space for a server that reports no version."""
    return " ".join(x for x in (cat.server_name or "(unnamed server)", cat.server_version) if x)


@catalog_app.command("diff", cls=Command)
def diff_cmd(
    old: Path = typer.Argument(..., metavar="OLD", help="The reviewed catalog"),
    new: Path = typer.Argument(..., metavar="NEW", help="A fresh capture"),
    format: str = typer.Option("text", "--format", metavar="FORMAT", help="text or json"),
) -> None:
    """Tools added, removed and changed between two catalogs. Exit 1 when anything changed (for CI)."""
    from mcpp.catalog.drift import diff_catalogs, has_drift, render_text

    if format not in ("text", "json"):
        die(f"--format {format!r}: expected text or json")
    d = diff_catalogs(_load(old), _load(new))
    if format == "json":
        sys.stdout.write(json.dumps(d, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(render_text(d, str(old), str(new)))
    if has_drift(d):
        raise typer.Exit(ERRORS)


@catalog_app.command("show", cls=Command)
def show_cmd(
    file: Path = typer.Argument(..., metavar="CATALOG", help="A catalog from `mcpp catalog pull`"),
    format: str = typer.Option("text", "--format", metavar="FORMAT", help="text or json"),
) -> None:
    """List a catalog's tools with their classification (what `mcpp init` would do with each)."""
    from mcpp.catalog.classify import classify

    if format not in ("text", "json"):
        die(f"--format {format!r}: expected text or json")
    cat = _load(file)
    rows = [classify(t) for t in cat.tools.values()]
    if format == "json":
        sys.stdout.write(json.dumps([r.to_dict() for r in rows], indent=2, ensure_ascii=False) + "\n")
        return
    print(f"{_server(cat)}: {plural(len(rows), 'tool')}")
    for r in rows:
        risky = ", ".join(f"{a.path_text} ({a.kind})" for a in r.risky)
        print(f"  {r.kind:<11} {r.name}" + (f"   guards: {risky}" if risky else ""))
        print(f"              {r.reason}")


def init_cmd(
    catalog: Path = typer.Option(..., "--catalog", metavar="CATALOG", help="A catalog from `mcpp catalog pull`"),
    out: Optional[Path] = typer.Option(None, "-o", "--output", metavar="FILE", help="Write the policy here (default: stdout)"),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output file"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary line on stderr (with -o)"),
) -> None:
    """Write a reviewable starting policy for a catalog: default deny, reads permitted, destructive tools
    hidden, writes permitted behind suggested argument guards; every choice commented."""
    from mcpp.catalog.starter import starter_policy

    cat = _load(catalog)
    if out is not None and out.exists() and not force:
        die(f"{out} exists; pass --force to overwrite it")
    ref = None
    if out is not None:
        # relative to the policy (as @catalog is read), so the pair can move together
        ref = Path(os.path.relpath(Path(catalog).resolve(), out.resolve().parent)).as_posix()
    text = starter_policy(cat, catalog_ref=ref if ref is not None else str(catalog))
    if out is None:
        sys.stdout.write(text)
    else:
        write_output(out, text)
        note(f"{out}: starter policy for {plural(len(cat.tools), 'tool')}; review every comment, then "
             f"`mcpp check {out} && mcpp verify {out} && mcpp lint {out}`", quiet)


def register(app: typer.Typer) -> None:
    app.add_typer(catalog_app, name="catalog", rich_help_panel=DEPLOY)
    command(app, "init", init_cmd, DEPLOY)
