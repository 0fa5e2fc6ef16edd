"""`mcpp lsp`: the language server editors start (see docs/editors.md)."""

from __future__ import annotations

import typer


def lsp(
    stdio: bool = typer.Option(False, "--stdio", help="Talk LSP over stdin/stdout: the only transport, so this "  # noqa: ARG001 (clients pass it)
                               "changes nothing (some clients always pass it)"),
    log_file: str = typer.Option(None, "--log-file", metavar="FILE", help="Also write the server's log to this file"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at debug level"),
) -> None:
    """Run the mcpp language server on stdio."""
    import logging
    import sys

    from mcpp.lsp.server import run

    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        try:
            handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
        except OSError as e:
            from mcpp.console import die

            die(f"--log-file: cannot write {log_file}: {e.strerror}")
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, handlers=handlers,
                        format="mcpp-lsp %(asctime)s %(levelname)s %(message)s")
    run()


def register(app: typer.Typer) -> None:
    from mcpp.help import RUN, command

    command(app, "lsp", lsp, RUN)
