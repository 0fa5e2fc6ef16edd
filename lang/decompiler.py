"""`mcpp decompile`: the JSON form → readable .mcpp.

The text is the canonical formatting of the IR that gives the JSON its meaning
(jsonform.to_document), so compiling it back yields a document with the same
decisions. Policy ids are JSON pointers into the original document.
"""

from __future__ import annotations

from pathlib import Path

from .formatter import format_document
from .jsonform import loads, to_document


def decompile(text: str, filename: str = "<json>") -> str:
    doc = to_document(loads(text, filename), filename)
    header = f"// Decompiled from {Path(filename).name} by `mcpp decompile`; @id values are JSON pointers into it.\n\n"
    return header + format_document(doc)
