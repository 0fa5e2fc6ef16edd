"""Load a policy file of either form into a Program, with diagnostics instead of tracebacks."""

from __future__ import annotations

from pathlib import Path

from .diagnostics import Diagnostic, MCPPError, Span
from .program import Program


def read_text(path: str | Path) -> str:
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MCPPError([Diagnostic("no such file", Span(0, 0, 0, 0), file=str(p))]) from None
    except IsADirectoryError:
        raise MCPPError([Diagnostic("is a directory, not a file", Span(0, 0, 0, 0), file=str(p))]) from None
    except UnicodeDecodeError as e:
        raise MCPPError([Diagnostic(f"not UTF-8 text ({e.reason})", Span(0, 0, 0, 0), file=str(p))]) from None
    except OSError as e:
        raise MCPPError([Diagnostic(f"cannot read: {e.strerror}", Span(0, 0, 0, 0), file=str(p))]) from None


def is_json(path: str | Path, text: str | None = None) -> bool:
    if str(path).endswith(".json"):
        return True
    return text is not None and text.lstrip().startswith("{") and not str(path).endswith(".mcpp")


def load_policy(path: str | Path) -> Program:
    """`.json` → the JSON form; anything else → .mcpp source. Raises MCPPError."""
    text = read_text(path)
    if is_json(path, text):
        from .jsonform import load_program as load_json_program

        return load_json_program(text, str(path))
    from .program import load_program

    return load_program(text, str(path))
