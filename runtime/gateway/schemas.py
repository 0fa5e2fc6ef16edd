"""Typed calls at the gateway: `mcpp.catalog.admission`, where the steps live so that
`mcpp eval`, the Python API, `mcpp test` and the language server admit calls exactly as
the gateway does (the proxy's `schema_check` calls `admit`)."""

from mcpp.catalog.admission import admit, check_arguments, escape_pointer, schema_pointer, tool_checker

__all__ = ["admit", "check_arguments", "escape_pointer", "schema_pointer", "tool_checker"]
