"""What "passes `mcpp lint`" means for the policies mcpp ships (starters, examples): no
error-level finding and no fail-open warning, with the analysis typed by the policy's
catalog exactly as `mcpp serve` types it (analyzer/safety.py, runtime/gateway/policies.py).

Fail-open warnings are the ones that let a call through that the author meant to stop:
`forbid-bypass` at warning level (a forbid skipped by omitting an argument),
`unanchored-regex` (an allowlist that accepts more than it says) and `always-allows`
(under `default allow`, a tool nobody reviewed is callable).

`always-allows` is read from the untyped analysis: the typed one has no call for a tool
outside the catalog (the gateway refuses it as unlisted, analyzer/typed.py), so its
stand-in for "any tool this policy does not name" is vacuously always allowed, whatever
the `default`. Untyped, that stand-in is modelled, and `default deny` denies it.
"""

from __future__ import annotations

from mcpp.analyzer.lints import lint
from mcpp.analyzer.safety import blocking_findings
from mcpp.analyzer.solve import Session
from mcpp.analyzer.typed import catalog_schemas

FAIL_OPEN = ("forbid-bypass", "unanchored-regex")  # judged typed
FAIL_OPEN_UNTYPED = ("always-allows",)  # judged untyped (see above)


def unsafe_findings(program, catalog, timeout_ms: int = 5000) -> list[str]:
    """`file:line: code: message` for every finding that keeps `program` from passing."""
    found = list(blocking_findings(program, catalog, timeout_ms=timeout_ms))
    typed = lint(program, timeout_ms=timeout_ms, session=Session(timeout_ms, schemas=catalog_schemas(catalog)))
    found += [d for d in typed if d.severity == "error" or d.code in FAIL_OPEN]
    untyped = lint(program, timeout_ms=timeout_ms, only=set(FAIL_OPEN_UNTYPED))
    found += [d for d in untyped if d.code in FAIL_OPEN_UNTYPED]
    out = sorted({f"{d.file}:{d.span.line}: {d.code}: {d.message}" for d in found})
    return out
