"""Reading TOML that people write — gateway configs, `mcpp.toml`, test files — with every
way it can fail as one error.

`tomllib` raises more than TOMLDecodeError: RecursionError for arrays and inline tables
nested deeply (it reads them recursively; 5,000 levels, or fewer from a deep stack), and a
bare ValueError for an integer longer than Python's 4,300-digit conversion limit. Each
escaped its reader as an internal error, exit 3, where a file with errors is exit 1 (the
gateway config, `mcpp.toml` beside a policy: hostile review 29, F3, F4, F13). One reader,
so each caller says what it was reading and where.
"""

from __future__ import annotations

import re
import tomllib

from .jsontext import reader_reason
from .stack import TooDeepAnywhere, retry_on_fresh_stack

_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)")


class TOMLUnreadable(ValueError):
    """TOML text that cannot be read: `reason`, at `line`:`column` (1-based; 1:1 when the
    reader does not say where)."""

    def __init__(self, reason: str, line: int = 1, column: int = 1):
        super().__init__(reason)
        self.reason, self.line, self.column = reason, line, column


def read_toml(text: str) -> dict:
    """The TOML document `text`, or TOMLUnreadable. Read again from an empty stack when the
    caller's stack is what ran out (lang/stack.py)."""
    try:
        return retry_on_fresh_stack(tomllib.loads, text)
    except TooDeepAnywhere:
        raise TOMLUnreadable("invalid TOML here: nested too deeply to read") from None
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = _POSITION.search(msg)
        line, col = (int(m.group(1)), int(m.group(2))) if m else (1, 1)
        raise TOMLUnreadable(f"invalid TOML: {_POSITION.sub('', msg).strip()}", line, col) from None
    except ValueError as e:  # (an integer past the conversion limit)
        raise TOMLUnreadable(f"invalid TOML here: {reader_reason(e)}") from None
