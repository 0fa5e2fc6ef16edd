"""Shared CLI output: diagnostics to stderr, JSON to stdout, exits without tracebacks."""

from __future__ import annotations

import json
import sys
from typing import NoReturn

from mcpp.lang.diagnostics import Diagnostic, MCPPError


def print_diagnostics(diags: list[Diagnostic], source: str | None = None) -> None:
    for d in diags:
        print(d.render(source), file=sys.stderr)


def fail(err: MCPPError, code: int = 2) -> NoReturn:
    print(err.render(), file=sys.stderr)
    sys.exit(code)


def die(message: str, code: int = 2) -> NoReturn:
    print(f"mcpp: error: {message}", file=sys.stderr)
    sys.exit(code)


def emit_json(obj: object, out=None, indent: int | None = None) -> None:
    text = json.dumps(obj, indent=indent, ensure_ascii=False)
    print(text, file=out or sys.stdout, flush=True)
