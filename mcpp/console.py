"""Shared CLI output and the one exit-code table every command follows.

| code | meaning                                                                         |
|------|---------------------------------------------------------------------------------|
| 0    | success                                                                         |
| 1    | the input has errors (syntax, validation, a compile refusal, a config with       |
|      | errors) or a property failed (an assert, a lint, `diff --fail-on`, drift)        |
| 2    | bad usage or unreadable input: a missing file, a directory, not UTF-8, invalid   |
|      | JSON given to a JSON-only flag, an unusable catalog, a server that cannot be read |
| 3    | an internal error (no traceback unless MCPP_DEBUG=1; see mcpp.cli.main)          |

Commands never call `sys.exit` with a bare number: they use these names, so the table
above (and the README's copy of it) is the whole story.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import NoReturn

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mcpp import Policy


class Problems(Protocol):
    """What `fail` prints: an error carrying diagnostics and the text they are in —
    `mcpp.PolicyError`, and the catalog modules' `CatalogError`."""

    diagnostics: Any
    source: str | None


OK = 0
ERRORS = 1  # the input has errors, or a property failed
USAGE = 2  # bad usage or unreadable input
INTERNAL = 3


def by_position(diags: list) -> list:
    """Diagnostics (`mcpp.Diagnostic`, or a catalog module's) in the order a reader meets
    them: per file, by line and column, whichever phase (parser, validator, catalog check,
    analyzer) found them. Stable, so JSON-form diagnostics (no position; their JSON
    pointer leads the message) keep their order."""
    order: dict[str, int] = {}
    for d in diags:
        order.setdefault(d.file, len(order))

    def key(d):
        s = d.span
        return (order[d.file], s.line if s is not None else 0, s.col if s is not None else 0)

    return sorted(diags, key=key)


def print_diagnostics(diags, source: str | None = None) -> None:
    for d in by_position(list(diags)):
        print(d.render(source), file=sys.stderr)


def fail(err: Problems, code: int = ERRORS) -> NoReturn:
    print_diagnostics(err.diagnostics, err.source)
    sys.exit(code)


def die(message: str, code: int = USAGE) -> NoReturn:
    print(f"mcpp: error: {message}", file=sys.stderr)
    sys.exit(code)


def note(message: str, quiet: bool = False) -> None:
    """A one-line summary on stderr (stdout stays the command's output), unless `-q`."""
    if not quiet:
        print(message, file=sys.stderr)


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def read_input(path: str | Path) -> str:
    """A file's text, or exit 2: a missing file, a directory or bytes that are not UTF-8 are
    unreadable input, not errors in the input."""
    from mcpp.lang.load import read_text
    from mcpp.lang.diagnostics import MCPPError

    try:
        return read_text(path)
    except MCPPError as e:
        fail(e, USAGE)


def read_stdin(name: str = "<stdin>") -> str:
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        die(f"{name}: not UTF-8 text ({e.reason})")


def write_output(path: Path, text: str) -> None:
    """Write a result file, or exit 2 naming why it cannot be written."""
    try:
        path.write_text(text, encoding="utf-8")
    except IsADirectoryError:
        die(f"{path}: is a directory; give a file name to write")
    except OSError as e:
        die(f"{path}: cannot write: {e.strerror or e}")


def load_policy(path: str | Path) -> Policy:
    """A policy file of either form (`mcpp.load_policy`): exit 2 when it cannot be read, 1
    when it has errors (each printed as `file:line:col: error: …`, or with its JSON pointer)."""
    import mcpp

    try:
        return mcpp.load_policy(Path(path))
    except mcpp.PolicyFileError as e:
        fail(e, USAGE)
    except mcpp.PolicyError as e:
        fail(e, ERRORS)


def emit_json(obj: object, out=None, indent: int | None = None) -> None:
    text = json.dumps(obj, indent=indent, ensure_ascii=False)
    print(text, file=out or sys.stdout, flush=True)
