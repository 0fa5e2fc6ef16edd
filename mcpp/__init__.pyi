# Types of the public API for type checkers; at run time `__init__.py` loads each name
# on first use. Keep in step with `_EXPORTS` there (tests/api/test_surface.py checks).
from mcpp._errors import (
    CatalogError as CatalogError,
    CompileError as CompileError,
    PolicyError as PolicyError,
    PolicyFileError as PolicyFileError,
    PolicySyntaxError as PolicySyntaxError,
    PolicyValidationError as PolicyValidationError,
)
from mcpp._middleware import (
    AuditRow as AuditRow,
    AuditSink as AuditSink,
    PolicyMiddleware as PolicyMiddleware,
    SQLiteAudit as SQLiteAudit,
    token_principal as token_principal,
)
from mcpp._policy import (
    CedarPolicies as CedarPolicies,
    Checked as Checked,
    Policy as Policy,
    Principal as Principal,
    check as check,
    decompile as decompile,
    diff as diff,
    format_policy as format_policy,
    lint_names as lint_names,
    load_policy as load_policy,
    replay as replay,
)
from mcpp._types import (
    AssertResult as AssertResult,
    Caveat as Caveat,
    Change as Change,
    Counterexample as Counterexample,
    Decision as Decision,
    Diagnostic as Diagnostic,
    Explanation as Explanation,
    LimitHit as LimitHit,
    Replayed as Replayed,
    Span as Span,
    ToolDiff as ToolDiff,
    UserAttribute as UserAttribute,
    UserDeclaration as UserDeclaration,
)
from mcpp.analyzer.deadline import Deadline as Deadline
from mcpp.analyzer.replay import PastCall as PastCall
from mcpp.runtime.engine import Grant as Grant, User as User
from mcpp.runtime.gateway.counters import RedisCounters as RedisCounters, SQLiteCounters as SQLiteCounters
from mcpp.runtime.limits import Charge as Charge, CounterStore as CounterStore, MemoryCounters as MemoryCounters

__version__: str
DISTRIBUTION: str
__all__: list[str]
