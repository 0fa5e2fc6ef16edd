"""`--help` for every command: grouped by job, every option described, values named by
metavar (`FILE...`, `--timeout MS`), never by Python type (`<list[Path]>`, `<int>`), and
every `mcpp …` command a help text mentions exists."""

from __future__ import annotations

import re

import pytest
import typer.main
from typer.testing import CliRunner

from mcpp.cli import app
from mcpp.help import PANELS

from .run import mcpp as run

ROOT_COMMAND = typer.main.get_command(app)


def _walk(cmd, path=()):
    yield path, cmd
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _walk(sub, path + (name,))


COMMANDS = list(_walk(ROOT_COMMAND))
PATHS = {" ".join(p) for p, _ in COMMANDS}
TYPER_TYPES = re.compile(r"<(?:list\[[^\]]*\]|[Pp]ath|str|int|float|bool|text|datetime|tuple)>")
PYTHON_TYPES = re.compile(r"<[^>]*>|\b(list|List|Optional|Path|PosixPath|NoneType|str|int|float|bool|dict)\b(\[|\b)")


def _help(path) -> str:
    r = CliRunner().invoke(app, [*path, "--help"], prog_name="mcpp")
    assert r.exit_code == 0, r.output
    return r.output


def _left_column(text: str) -> list[str]:
    """The option and argument names of a help text (the part before the description)."""
    out, section = [], None
    for line in text.splitlines():
        if line and not line.startswith(" "):
            section = line.rstrip(":")
        elif section in ("Options", "Arguments") and line.startswith("  ") and not line.startswith("   "):
            out.append(re.split(r"\s{2,}", line.strip())[0])
    return out


@pytest.mark.parametrize("path, cmd", COMMANDS, ids=[" ".join(p) or "mcpp" for p, _ in COMMANDS])
def test_help_describes_every_option_by_metavar(path, cmd):
    for p in cmd.params:
        assert (p.help or "").strip(), f"mcpp {' '.join(path)}: {p.opts or p.name} has no description"
    text = _help(path)
    usage = text.splitlines()[0]
    prefix = " ".join(["Usage: mcpp", *path])
    assert usage.startswith(prefix), usage
    assert not PYTHON_TYPES.search(usage[len(prefix):]), usage
    names = _left_column(text)
    assert "--help" in names
    for p in cmd.params:
        if p.param_type_name == "option":
            assert any(p.opts[0] in n for n in names), (p.opts, names)
    for n in names:
        assert not PYTHON_TYPES.search(n), f"mcpp {' '.join(path)} --help shows a Python type: {n!r}"
    shown = TYPER_TYPES.search(text)  # typer's own type display, e.g. `<list[Path]>`, anywhere
    assert not shown, f"mcpp {' '.join(path)} --help shows a Python type: {shown.group(0)!r}"


@pytest.mark.parametrize("path, cmd", COMMANDS, ids=[" ".join(p) or "mcpp" for p, _ in COMMANDS])
def test_help_mentions_only_commands_that_exist(path, cmd):  # noqa: ARG001 (parametrized with the pair)
    text = " ".join(_help(path).split())
    for m in re.finditer(r"`mcpp ([a-z]+(?: [a-z]+)?)", text):
        words = m.group(1).split()
        assert words[0] in PATHS or " ".join(words) in PATHS, f"{' '.join(path)} --help mentions `mcpp {m.group(1)}`"
        if words[0] in ("catalog", "grant") and len(words) > 1:
            assert " ".join(words) in PATHS, f"{' '.join(path)} --help mentions `mcpp {m.group(1)}`"
    if path == ("catalog",):  # the group's summary names its subcommands in parentheses
        for sub in re.findall(r"\((\w+)\)", text):
            assert f"catalog {sub}" in PATHS, sub


def test_root_help_groups_commands_by_job():
    text = _help(())
    sections = {}
    current = None
    for line in text.splitlines():
        if line and not line.startswith(" "):
            current = line.split(":")[0] if line.startswith("Usage:") else line.rstrip(":")
        elif current and line.startswith("  ") and not line.startswith("   "):
            sections.setdefault(current, []).append(line.split()[0])
    groups = {title: sections.get(title) for title in PANELS.values()}
    assert groups == {
        "Author policies": ["check", "fmt", "eval", "test"],
        "Prove properties": ["verify", "lint", "diff"],
        "Deploy: compile, catalogs, starter policies": ["compile", "decompile", "catalog", "init"],
        "Run the gateway and the editor server": ["serve", "grant", "audit", "approvals", "approve", "reject", "lsp"],
    }
    listed = [c for title in PANELS.values() for c in sections[title]]
    assert sorted(listed) == sorted(ROOT_COMMAND.commands)  # every command in exactly one group
    assert list(sections)[:2] == ["Usage", "Options"]


def test_version_flag():
    import mcpp

    r = CliRunner().invoke(app, ["--version"], prog_name="mcpp")
    assert r.exit_code == 0 and r.output.startswith(f"mcpp {mcpp.__version__} ")


def test_grant_and_audit_default_to_the_state_directory_serve_uses(tmp_path):
    """Bare `mcpp grant create|list` and `mcpp audit` work where `mcpp serve` ran with its defaults."""
    from mcpp.commands.gateway import DEFAULT_STATE
    from mcpp.runtime.gateway.audit import AuditLog
    from mcpp.runtime.gateway.config import GatewayConfig

    serve_state = next(p for p in ROOT_COMMAND.commands["serve"].params if p.name == "state").default
    assert str(serve_state) == DEFAULT_STATE == GatewayConfig.__dataclass_fields__["state_dir"].default
    r = run("audit", cwd=tmp_path)
    assert r.returncode == 2 and f"no audit log in {tmp_path / DEFAULT_STATE}" in r.stderr
    created = run("grant", "create", "--server", "default", "--label", "alice", "--json", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    assert (tmp_path / DEFAULT_STATE / "grants.db").exists()
    assert "alice" in run("grant", "list", cwd=tmp_path).stdout
    AuditLog(tmp_path / DEFAULT_STATE).db.close()  # what serve creates on start
    r = run("audit", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout == "", r.stderr
    both = run("audit", "--state", "x", "--config", "y.toml", cwd=tmp_path)
    assert both.returncode == 2 and "not both" in both.stderr
