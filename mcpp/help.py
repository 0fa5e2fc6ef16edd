"""How `mcpp --help` reads: commands grouped by job, and metavars instead of Python types.

Typer's plain help prints each parameter's Python annotation (`files... <list[Path]>`,
`--timeout <int>`), and its rich help does too; a user wants `FILE...` and
`--timeout MS`. These click classes (passed as `cls=` to typer) write the same sections
click does, naming each value by its metavar (`metavar=` on the option, else its name in
capitals). Commands carry typer's `rich_help_panel`, and the root lists them under those
panels, in the order of PANELS, instead of one alphabetical list.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

# typer 0.29 carries its own copy of click (typer._click): parameters are told apart by
# `param_type_name`, never by isinstance against the click package
Param = Any
Ctx = Any
Formatter = Any

# the jobs, in the order a user meets them
AUTHOR = "Author"
PROVE = "Prove"
DEPLOY = "Deploy"
RUN = "Run"
# the commands of the root, in this order within their panels (one not named here comes
# last); a subgroup (catalog, grant) lists its commands in the order they were registered
ORDER = ["check", "fmt", "eval", "test", "verify", "lint", "diff", "compile", "decompile", "catalog", "init",
         "serve", "grant", "audit", "approvals", "approve", "reject", "lsp"]
PANELS = {
    AUTHOR: "Author policies",
    PROVE: "Prove properties",
    DEPLOY: "Deploy: compile, catalogs, starter policies",
    RUN: "Run the gateway and the editor server",
}


def _is_argument(param: Param) -> bool:
    return param.param_type_name == "argument"


def metavar(param: Param) -> str:
    name = param.metavar or (param.name or "value").upper()
    if _is_argument(param) and param.nargs != 1:
        name += "..."
    return name


def _option_record(param: Param) -> tuple[str, str]:
    names = ", ".join(param.opts)
    if param.secondary_opts:
        names += " / " + ", ".join(param.secondary_opts)
    if not (param.is_flag or param.count):
        names += " " + metavar(param)
    help_text = param.help or ""
    extra = []
    default = param.default
    if param.show_default is not False and default not in (None, False, "", (), []) and not param.is_flag:
        extra.append(f"default: {default}")
    if param.is_flag and param.secondary_opts:
        extra.append(f"default: {param.opts[0] if default else param.secondary_opts[0]}")
    if param.multiple:
        extra.append("repeatable")
    if param.required:
        extra.append("required")
    if extra:
        help_text = f"{help_text}  [{'; '.join(extra)}]" if help_text else f"[{'; '.join(extra)}]"
    return names, help_text


class Command(TyperCommand):
    """A command whose help names values by metavar: `mcpp check [OPTIONS] FILE...`."""

    def collect_usage_pieces(self, ctx: Ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for p in self.get_params(ctx):
            if _is_argument(p):
                pieces.append(metavar(p) if p.required else f"[{metavar(p)}]")
        return pieces

    def format_options(self, ctx: Ctx, formatter: Formatter) -> None:
        args, opts = [], []
        for p in self.get_params(ctx):
            if getattr(p, "hidden", False):
                continue
            if _is_argument(p):
                args.append((metavar(p), getattr(p, "help", None) or ""))
            elif p.param_type_name == "option":
                opts.append(_option_record(p))
        if args:
            with formatter.section("Arguments"):
                formatter.write_dl(args)
        if opts:
            with formatter.section("Options"):
                formatter.write_dl(opts)


class Group(TyperGroup):
    """A command group: its options as Command writes them, its commands under their panels."""

    def collect_usage_pieces(self, ctx: Ctx) -> list[str]:  # noqa: ARG002 (click's signature)
        return ([self.options_metavar] if self.options_metavar else []) + [self.subcommand_metavar]

    def format_options(self, ctx: Ctx, formatter: Formatter) -> None:
        opts = [_option_record(p) for p in self.get_params(ctx)
                if p.param_type_name == "option" and not getattr(p, "hidden", False)]
        if opts:
            with formatter.section("Options"):
                formatter.write_dl(opts)
        self.format_commands(ctx, formatter)

    def format_commands(self, ctx: Ctx, formatter: Formatter) -> None:
        rows: dict[str | None, list[tuple[str, str]]] = {}
        found = [(n, self.get_command(ctx, n)) for n in self.list_commands(ctx)]
        commands = [(n, c) for n, c in found if c is not None and not c.hidden]
        if ctx.parent is None:
            commands.sort(key=lambda nc: ORDER.index(nc[0]) if nc[0] in ORDER else len(ORDER))  # stable
        if not commands:
            return
        limit = formatter.width - 6 - max(len(n) for n, _ in commands)
        for name, cmd in commands:
            rows.setdefault(getattr(cmd, "rich_help_panel", None), []).append((name, cmd.get_short_help_str(limit)))
        for panel in [*PANELS, *(p for p in rows if p not in PANELS)]:
            if panel in rows:
                with formatter.section(PANELS.get(panel, panel) if panel else "Commands"):
                    formatter.write_dl(rows[panel])


def command(app: typer.Typer, name: str, fn, panel: str | None = None) -> None:
    """Register `fn` as `mcpp <name>` under `panel` with this module's help."""
    app.command(name, cls=Command, rich_help_panel=panel)(fn)


def group(help: str, **kw) -> typer.Typer:
    """A typer app for a command group (`mcpp catalog …`, `mcpp grant …`) with this module's help."""
    return typer.Typer(help=help, cls=Group, no_args_is_help=True, add_completion=False,
                       pretty_exceptions_enable=False, rich_markup_mode=None, **kw)
