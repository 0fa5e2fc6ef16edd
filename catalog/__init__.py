"""mcpp.catalog — the tools a server really has: capture, validation, starter policies, drift.

Public API (other parts of mcpp code against it):
`load_catalog(path) -> Catalog`, `Catalog.tools: dict[str, ToolInfo]`,
`find_catalog_for(policy_path, program) -> Catalog | None`,
`validate(program, catalog) -> list[Diagnostic]`, and `mcpp.catalog.drift.check_pinned`.
"""

from .locate import CatalogRef, catalog_diagnostics, find_catalog_for, find_catalog_ref
from .model import ANNOTATION_DEFAULTS, Catalog, CatalogError, ToolInfo, load_catalog, parse_catalog, tool_hash
from .validate import validate

__all__ = [
    "ANNOTATION_DEFAULTS", "Catalog", "catalog_diagnostics", "CatalogError", "CatalogRef", "ToolInfo", "find_catalog_for",
    "find_catalog_ref", "load_catalog", "parse_catalog", "tool_hash", "validate",
]
