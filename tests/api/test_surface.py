"""The public surface: what `mcpp` exports, that it loads lazily, and that it is typed."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import mcpp

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str) -> str:
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def test_every_export_resolves_to_what_its_module_defines():
    for name in mcpp.__all__:
        value = getattr(mcpp, name)
        assert value is getattr(importlib.import_module(mcpp._EXPORTS[name]), name)
    assert sorted(mcpp.__all__) == sorted(mcpp._EXPORTS)
    assert set(mcpp.__all__) <= set(dir(mcpp))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mcpp.nope  # noqa: B018


def test_the_type_stub_declares_exactly_the_exports():
    """`__init__.pyi` is what type checkers see: the same names, from the same modules."""
    tree = ast.parse((ROOT / "mcpp" / "__init__.pyi").read_text())
    stubbed = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                assert alias.asname == alias.name, "re-export with `as` so checkers treat it as public"
                stubbed[alias.name] = node.module
    assert stubbed == mcpp._EXPORTS
    assert (ROOT / "mcpp" / "py.typed").exists()


@pytest.mark.parametrize(
    "code, absent",
    [
        ("import mcpp.lang.program", ["z3", "mcp", "mcpp.runtime.gateway", "mcpp._policy", "mcpp.analyzer"]),
        ("import mcpp", ["mcpp.lang", "mcpp.runtime", "z3", "mcp"]),
        # deciding never needs the prover, the SDK or the gateway
        ("import mcpp; p = mcpp.load_policy('permit (principal, action, resource);'); p.decide('t', {})",
         ["z3", "mcp", "mcpp.runtime.gateway", "mcpp.analyzer"]),
    ],
)
def test_imports_load_only_what_they_need(code, absent):
    loaded = run_python(f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))")
    modules = set(__import__("json").loads(loaded))
    assert not modules & set(absent), modules & set(absent)


def test_public_signatures_are_fully_annotated():
    """Every parameter and return of the public functions and methods has a type that
    resolves (what `py.typed` promises a type checker)."""
    import mcpp.catalog
    from mcpp import _policy

    targets = [mcpp.load_policy, mcpp.diff, mcpp.Policy.decide, mcpp.Policy.explain, mcpp.Policy.visible,
               mcpp.Policy.verify, mcpp.Policy.lint, mcpp.Policy.analyze, mcpp.Policy.named_catalog,
               mcpp.Decision.release, mcpp.Decision.to_dict, mcpp.PolicyError.render, mcpp.UserDeclaration.attribute,
               mcpp.check, mcpp.format_policy, mcpp.decompile, mcpp.replay, mcpp.lint_names, mcpp.Policy.compile,
               mcpp.Policy.to_cedar, mcpp.Policy.assertion_problems, mcpp.Policy.caveats, mcpp.Diagnostic.to_dict,
               mcpp.Counterexample.request, mcpp.Counterexample.brief]
    for fn in targets:
        hints = typing.get_type_hints(fn, vars(_policy) | vars(mcpp._types) | {"Catalog": mcpp.catalog.Catalog,
                                                                             "Deadline": mcpp.Deadline})
        params = [p for p in fn.__code__.co_varnames[: fn.__code__.co_argcount + fn.__code__.co_kwonlyargcount]
                  if p != "self"]
        assert set(params) <= set(hints) and "return" in hints, (fn.__qualname__, hints)


USER_PROGRAM = """\
import mcpp

policy: mcpp.Policy = mcpp.load_policy("permit (principal, action, resource);")
d = policy.decide("t", {"a": 1}, principal=mcpp.Grant("g"))
allowed: bool = d.allowed
where: mcpp.Span | None = d.span
results: list[mcpp.AssertResult] = policy.verify()
changes: list[mcpp.ToolDiff] = mcpp.diff(policy, policy)
guard = mcpp.PolicyMiddleware(policy, principal="svc", audit=mcpp.SQLiteAudit("state"))
wrong: str = d.limit
"""


def test_a_user_program_type_checks_against_the_stub(tmp_path):
    """mypy, on a program using the API, installed as a wheel lays it out: the types come
    through (`py.typed`, `__init__.pyi`), and a misuse is an error."""
    from tests.layout import installed_layout

    site = installed_layout(tmp_path / "site")
    (tmp_path / "user.py").write_text(USER_PROGRAM)
    p = subprocess.run([sys.executable, "-m", "mypy", "user.py", "--follow-imports=silent", "--no-incremental",
                        "--python-version", "3.11"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=600, env={**__import__("os").environ,
                                                                                       "MYPYPATH": str(site)})
    errors = [line for line in p.stdout.splitlines() if ": error:" in line]
    assert errors == ['user.py:10: error: Incompatible types in assignment (expression has type "LimitHit | None", '
                      'variable has type "str")  [assignment]'], p.stdout
