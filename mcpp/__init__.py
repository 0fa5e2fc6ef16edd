"""mcpp — a Cedar-style policy language, analyzer and gateway for MCP tool calls.

Installed as the distribution `mcpp-policy` (`pip install mcpp-policy`); the command and
this import package are `mcpp`.

The public Python API is the names in `__all__` (docs/api.md). They are loaded on first
use (PEP 562), so `import mcpp` costs nothing and importing one part of the toolchain
(`mcpp.lang`, whose parent this package is) never loads the gateway, the MCP SDK or Z3.
Every other module, and every name starting with `_`, is internal and may change.

The exports are named by strings, not imported here, so this package does not depend on
what it exports (the layer contracts in pyproject.toml see each module's own imports);
`__init__.pyi` gives type checkers the same names with their types.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
DISTRIBUTION = "mcpp-policy"

# public name → the module that defines it
_EXPORTS: dict[str, str] = {
    "load_policy": "mcpp._policy",
    "Policy": "mcpp._policy",
    "Principal": "mcpp._policy",
    "diff": "mcpp._policy",
    "check": "mcpp._policy",
    "Checked": "mcpp._policy",
    "CedarPolicies": "mcpp._policy",
    "format_policy": "mcpp._policy",
    "decompile": "mcpp._policy",
    "lint_names": "mcpp._policy",
    "replay": "mcpp._policy",
    "Replayed": "mcpp._types",
    "PastCall": "mcpp.analyzer.replay",
    "Deadline": "mcpp.analyzer.deadline",
    "Counterexample": "mcpp._types",
    "Caveat": "mcpp._types",
    "CompileError": "mcpp._errors",
    "Grant": "mcpp.runtime.engine",
    "User": "mcpp.runtime.engine",
    "Decision": "mcpp._types",
    "Explanation": "mcpp._types",
    "LimitHit": "mcpp._types",
    "AssertResult": "mcpp._types",
    "ToolDiff": "mcpp._types",
    "Change": "mcpp._types",
    "Diagnostic": "mcpp._types",
    "Span": "mcpp._types",
    "UserAttribute": "mcpp._types",
    "UserDeclaration": "mcpp._types",
    "PolicyError": "mcpp._errors",
    "PolicyFileError": "mcpp._errors",
    "PolicySyntaxError": "mcpp._errors",
    "PolicyValidationError": "mcpp._errors",
    "CatalogError": "mcpp._errors",
    "CounterStore": "mcpp.runtime.limits",
    "Charge": "mcpp.runtime.limits",
    "MemoryCounters": "mcpp.runtime.limits",
    "SQLiteCounters": "mcpp.runtime.gateway.counters",
    "RedisCounters": "mcpp.runtime.gateway.counters",
    "PolicyMiddleware": "mcpp._middleware",
    "AuditSink": "mcpp._middleware",
    "AuditRow": "mcpp._middleware",
    "SQLiteAudit": "mcpp._middleware",
    "token_principal": "mcpp._middleware",
}

__all__ = sorted(_EXPORTS)

def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mcpp' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
