"""`mcpp test`: run the example-based tests beside policies (`<policy>.test.toml`).

Exit codes (the table in mcpp.console): 0 every case passed (and coverage is at least
`--fail-under`); 1 a case failed, coverage is under `--fail-under`, or a test file or
policy has errors (`file:line:col: error: …`, with the TOML key path); 2 a test file or
policy cannot be read, a path holds no test file, or bad usage.
docs/testing.md documents the format, the coverage items and `--suggest`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from mcpp.console import die

FORMATS = ("text", "json", "junit")


def test_cmd(
    paths: List[Path] = typer.Argument(None, metavar="PATH", help="Policies (their <name>.test.toml is run), test files, or "
                                                  "directories (every *.test.toml under them); default: ."),
    fmt: str = typer.Option("text", "--format", "-f", metavar="FORMAT", help="text | json | junit"),
    coverage: bool = typer.Option(False, "--coverage", help="Report which rules, limits, conditions and asserts "
                                                            "the cases exercised"),
    coverage_out: Optional[Path] = typer.Option(None, "--coverage-out", metavar="FILE", help="Also write the coverage report "
                                                                              "as JSON to this file"),
    fail_under: Optional[float] = typer.Option(None, "--fail-under", metavar="PERCENT", help="Exit 1 when the total coverage is "
                                                                           "below this percentage (implies --coverage)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Text format: list failing cases only"),
    suggest: bool = typer.Option(False, "--suggest", help="Print proposed cases (TOML) for each rule of the "
                                                          "given policies instead of running tests"),
    timeout: int = typer.Option(5000, "--timeout", metavar="MS", min=1, help="--suggest: Z3 timeout per query, in milliseconds"),
) -> None:
    """Run the test cases beside policies on the engine; report pass/fail with a diff, and coverage."""
    if fmt not in FORMATS:
        die(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if fail_under is not None and not 0 <= fail_under <= 100:
        die("--fail-under is a percentage between 0 and 100")
    paths = list(paths or [Path(".")])
    if suggest:
        _suggest(paths, timeout)
        return
    from mcpp.policytest import report
    from mcpp.policytest.runner import run_paths

    want_coverage = coverage or fail_under is not None or coverage_out is not None
    run = run_paths(paths, coverage=want_coverage)
    for d, source in run.problems:  # `file:line:col: error: …`, as `mcpp check` prints them
        print(d.render(source), file=sys.stderr)
    if fmt == "json":
        print(json.dumps(report.json_report(run), indent=2, ensure_ascii=False))
    elif fmt == "junit":
        sys.stdout.write(report.junit(run))
    else:
        print(report.text(run, show_passed=not quiet))
        if want_coverage and run.coverage:
            print(report.coverage_text(run))
    if coverage_out is not None:
        try:
            coverage_out.write_text(json.dumps(report.coverage_json(run), indent=2, ensure_ascii=False) + "\n",
                                    encoding="utf-8")
        except OSError as e:
            die(f"cannot write {coverage_out}: {e.strerror}")
    code = run.exit_code(fail_under)
    if code == 1 and not run.failed and not run.problems and fmt == "text":  # only coverage fell short
        from mcpp.policytest.runner import total_percent

        print(f"coverage {total_percent(run.coverage.values()):.2f}% is under --fail-under {fail_under:g}%")
    raise typer.Exit(code)


def _suggest(paths: List[Path], timeout: int) -> None:
    from mcpp.catalog.model import CatalogError
    from mcpp.commands.analysis import load_checked
    from mcpp.console import ERRORS, print_diagnostics
    from mcpp.policytest.suggest import suggest_file

    for p in paths:
        if p.is_dir() or p.name.endswith(".test.toml"):
            die(f"--suggest takes policy files, not {p}")
    errors = 0
    for item in load_checked(paths, own_catalogs=False):  # suggestions are concrete calls: checked by the engine
        try:  # typed by the catalog the policy names, found as `mcpp test` finds it
            sys.stdout.write(suggest_file(item.path, timeout_ms=timeout))
        except CatalogError as e:  # named but unusable: `mcpp test`'s error, and its exit code
            print_diagnostics(e.diagnostics, e.source)
            errors += 1
    if errors:
        raise typer.Exit(ERRORS)


def register(app: typer.Typer) -> None:
    from mcpp.help import AUTHOR, command

    command(app, "test", test_cmd, AUTHOR)
