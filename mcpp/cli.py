"""The `mcpp` command line. Each command group lives in `mcpp.commands.<area>`.

Exit codes are one table for every command (mcpp.console, the README's "Exit codes"):
0 success; 1 the input has errors or a property failed; 2 bad usage or unreadable input;
3 an internal error, reported here in one line, without a traceback unless MCPP_DEBUG=1.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from mcpp.console import INTERNAL
from mcpp.help import Group

app = typer.Typer(
    name="mcpp",
    help="Cedar-style policies for MCP tool calls: check, format, compile, evaluate, verify and enforce.",
    cls=Group,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _register() -> None:
    import importlib
    import pkgutil

    import mcpp.commands as commands

    for mod in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if mod.name.startswith("_"):
            continue
        importlib.import_module(f"mcpp.commands.{mod.name}").register(app)




def _version(value: bool) -> None:
    if value:
        import mcpp

        print(f"mcpp {mcpp.__version__} (the {mcpp.DISTRIBUTION} distribution, {Path(mcpp.__file__).parent})")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_version,
                                 help="Print the version and where this mcpp is installed, and exit"),
) -> None:
    """Cedar-style policies for MCP tool calls: check, format, compile, evaluate, verify and enforce."""


_register()


def main() -> None:
    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # never a traceback for users
        if os.environ.get("MCPP_DEBUG"):
            raise
        print(f"mcpp: internal error: {type(e).__name__}: {e} (set MCPP_DEBUG=1 for a traceback)", file=sys.stderr)
        sys.exit(INTERNAL)


if __name__ == "__main__":  # pragma: no cover
    main()
