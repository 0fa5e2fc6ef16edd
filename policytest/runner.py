"""Running test files on the engine: each case's calls decided by `Engine.decide`, in
order, with a fresh counter store per case (so a sequence exhausts a limit the way real
traffic does, and no case sees another's counts), at the case's `time`.

A case passes when every call's decision matches every key the case states (decision,
rule pointer, policy id, message; exact string equality). The first call that does not
match ends the case and is reported with what was expected and what the engine said.
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass, field
from pathlib import Path

from mcpp.lang.diagnostics import Diagnostic, MCPPError, Span
from mcpp.lang.load import load_policy, read_text
from mcpp.lang.program import Program
from mcpp.runtime.engine import Engine

from .cases import (
    Case, Step, Target, TestFile, TestFileError, TestFileUnreadable, discover, load_test_file, user_diagnostics,
)
from .coverage import CaseCounters, Coverage, CoverageReport


@dataclass
class Mismatch:
    """The call of a case whose decision differs from what the case expects."""

    step: Step
    step_index: int  # in the case's calls
    repeat_index: int  # 0-based, within the step's `repeat`
    expected: dict
    actual: dict

    @property
    def keys(self) -> list[str]:
        return [k for k, v in self.expected.items() if self.actual.get(k) != v]


@dataclass
class CaseResult:
    case: Case
    policy: Path
    mismatch: Mismatch | None = None
    calls: int = 0
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.mismatch is None


@dataclass
class FileResult:
    test: Path
    policy: Path
    cases: list[CaseResult] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(1 for c in self.cases if not c.passed)


@dataclass
class Run:
    files: list[FileResult] = field(default_factory=list)
    problems: list[tuple[Diagnostic, str | None]] = field(default_factory=list)  # (diagnostic, its source text)
    # how many of the problems are bad usage or unreadable input (a path that does not exist,
    # a file that cannot be read, a test file that does not test the policy given) rather
    # than errors in a file: they decide between exit 2 and exit 1
    unusable: int = 0
    untested: list[Path] = field(default_factory=list)
    coverage: dict[str, CoverageReport] = field(default_factory=dict)

    @property
    def cases(self) -> list[CaseResult]:
        return [c for f in self.files for c in f.cases]

    @property
    def passed(self) -> int:
        return sum(1 for c in self.cases if c.passed)

    @property
    def failed(self) -> int:
        return sum(1 for c in self.cases if not c.passed)

    def exit_code(self, fail_under: float | None = None) -> int:
        """The CLI's table (README, "Exit codes"): 2 bad usage or an unreadable test file or
        policy; 1 an invalid test file or policy, a failing case, or coverage under
        `fail_under`; 0 otherwise."""
        if self.unusable:
            return 2
        if self.problems or self.failed:
            return 1
        if fail_under is not None and self.coverage and total_percent(self.coverage.values()) < fail_under:
            return 1
        return 0


def total_percent(reports) -> float:
    covered = total = 0
    for r in reports:
        c, n = r.counts()["total"]
        covered += c
        total += n
    return 100.0 if total == 0 else 100.0 * covered / total


def actual_of(decision) -> dict:
    return {"decision": decision.decision, "rule": decision.rule.pointer, "policy": decision.rule.policy,
            "message": decision.message}


def run_case(engine: Engine, case: Case, policy: Path, coverage: Coverage | None = None, fill=None) -> CaseResult:
    """`fill(tool, arguments)`, given when the policy names a catalog: the gateway's
    admission (catalog/admission.py), (its refusal as a decision, or None; the arguments
    as the gateway decides them, the tool's declared defaults filled in)."""
    engine.store = CaseCounters()
    result = CaseResult(case, policy)
    t0 = _time.perf_counter()
    for si, step in enumerate(case.steps):
        now = step.time.timestamp()
        for ri in range(step.repeat):
            refused, args = fill(step.tool, step.arguments) if fill is not None else (None, step.arguments)
            d = refused if refused is not None else engine.decide(step.tool, args, step.caller, step.server, now=now,
                                                                 reserve=True)
            result.calls += 1
            if coverage is not None and refused is None:  # a refused call reaches no rule
                coverage.observe(engine, step.tool, args, step.caller, step.server, d)
            actual = actual_of(d)
            if any(actual.get(k) != v for k, v in step.expect.items()):
                result.mismatch = Mismatch(step, si, ri, dict(step.expect), actual)
                result.seconds = _time.perf_counter() - t0
                return result
    result.seconds = _time.perf_counter() - t0
    return result


class _Policies:
    """Each policy file loaded once (and its traced engine built once) per run."""

    def __init__(self, with_coverage: bool):
        self.with_coverage = with_coverage
        self.loaded: dict[Path, tuple[Program, Engine, Coverage | None] | MCPPError] = {}
        self.names: dict[Path, str] = {}
        self.unreadable: set[Path] = set()
        self.fills: dict[Path, object] = {}  # a policy that names a catalog: its `fill` (run_case)

    @staticmethod
    def readable(path: Path) -> bool:
        try:
            read_text(path)
        except MCPPError:
            return False
        return True

    def get(self, path: Path):
        key = path.resolve()
        hit = self.loaded.get(key)
        if hit is None:
            try:
                program = load_policy(path)
            except MCPPError as e:
                hit = e
                if not self.readable(path):  # cannot be read (exit 2), rather than has errors (exit 1)
                    self.unreadable.add(key)
            else:
                try:  # the catalog it names: calls are decided with declared defaults filled in
                    self.fills[key] = filler(path, program)
                except MCPPError as e:  # named but unusable: an error, never skipped
                    self.loaded[key] = e
                    return e
                if self.with_coverage:
                    cov = Coverage(program)
                    hit = (program, cov.engine(), cov)
                else:
                    hit = (program, Engine(program, store=CaseCounters()), None)
                self.names[key] = str(path)
            self.loaded[key] = hit
        return hit


def run_test_file(tf: TestFile, policies: _Policies, run: Run, only: Path | None = None) -> None:
    targets = tf.policies
    if only is not None:
        targets = [p for p in tf.policies if p.resolve() == only.resolve()]
        if not targets:
            names = ", ".join(str(p) for p in tf.policies)
            run.problems.append((Diagnostic(f"this test file does not test {only} (its policies: {names})",
                                            Span(1, 1, 1, 2), "error", "test-file", str(tf.path)), None))
            run.unusable += 1
            return
    for policy in targets:
        hit = policies.get(policy)
        if isinstance(hit, MCPPError):
            if not any(d.file == str(policy) for d, _ in run.problems):
                run.unusable += policy.resolve() in policies.unreadable
                for d in hit.diagnostics:
                    run.problems.append((d, hit.source))
                if not hit.diagnostics:
                    run.problems.append((Diagnostic("the policy cannot be loaded", Span(0, 0, 0, 0), "error",
                                                    "policy", str(policy)), None))
            continue
        program, engine, cov = hit
        bad = user_diagnostics(tf, program)
        if bad:  # a user attribute the policy does not declare: the case would test nothing
            run.problems += [(d, tf.text) for d in bad]
            continue
        fr = FileResult(tf.path, policy)
        fill = policies.fills.get(policy.resolve())
        for case in tf.cases:
            fr.cases.append(run_case(engine, case, policy, cov, fill))
        run.files.append(fr)


def filler(path: Path, program: Program):
    """`fill(tool, arguments)` for a policy that names a catalog (`@catalog`, mcpp.toml),
    else None: the gateway's admission of the call (catalog/admission.py), (its refusal as
    an engine decision, or None; the arguments the policy decides). Raises CatalogError
    (an MCPPError) when the named catalog cannot be used."""
    return catalog_fill(named_catalog(path, program))


def named_catalog(path: Path, program: Program):
    """The catalog `path`'s policy names (`@catalog`, mcpp.toml: catalog/locate.py), loaded,
    or None (the JSON form names none). Raises CatalogError when it cannot be used. `mcpp
    test` and `mcpp test --suggest` find it here."""
    from mcpp.catalog.locate import find_catalog_for

    return find_catalog_for(str(path), program) if program.document is not None else None


def catalog_fill(catalog):
    """`fill(tool, arguments)` for `catalog` (a `catalog.model.Catalog`), or None without
    one: the gateway's admission of the call (catalog/admission.py), (its refusal as an
    engine decision, or None; the arguments the policy decides)."""
    from mcpp.catalog.admission import CatalogAdmission
    from mcpp.runtime.engine import Decision, Rule

    if catalog is None:
        return None
    admission = CatalogAdmission(catalog)

    def admitted(tool: str, arguments):
        refusal, args = admission.admit(tool, arguments)
        if refusal is None:
            return None, args
        return Decision(False, tool, Rule(refusal["pointer"]), refusal["message"]), arguments

    return admitted


def run_paths(paths: list[Path], coverage: bool = False) -> Run:
    """Find the test files under `paths` (docs/testing.md, "Finding tests") and run them."""
    run = Run()
    targets, problems, untested = discover(paths)
    run.problems += [(d, None) for d in problems]
    run.unusable += len(problems)  # paths that do not exist or hold no test file
    run.untested = untested
    policies = _Policies(coverage)
    for t in targets:
        run_target(t, policies, run)
    if coverage:
        for key, hit in policies.loaded.items():
            if not isinstance(hit, MCPPError) and hit[2] is not None:
                name = policies.names[key]
                run.coverage[name] = hit[2].report(name)
    return run


def run_target(t: Target, policies: _Policies, run: Run) -> None:
    try:
        tf = load_test_file(t.test)
    except TestFileError as e:
        run.problems += [(d, e.source) for d in e.diagnostics]
        run.unusable += isinstance(e, TestFileUnreadable)
        return
    run_test_file(tf, policies, run, t.only)


def run_with_coverage(program: Program, tf: TestFile, fill=None) -> tuple[CoverageReport, list[CaseResult]]:
    """The cases of `tf` run on `program` (the text being edited: the language server's
    question), with the coverage they reach; `fill` as `run_case` takes it (`filler`:
    the admission of the catalog the policy names, so the editor gives `mcpp test`'s
    results)."""
    cov = Coverage(program)
    engine = cov.engine()
    results = [run_case(engine, case, Path(program.filename), cov, fill) for case in tf.cases]
    return cov.report(program.filename), results


def coverage_of(program: Program, tf: TestFile) -> CoverageReport:
    return run_with_coverage(program, tf)[0]
