"""Item: the distribution name. `mcpp` on PyPI is another project, so the distribution is
`mcpp-policy`; the command, `python -m mcpp` and the import package stay `mcpp`, and every
install line in the documentation names the distribution that installs this tool."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib

import pytest

import mcpp

from .run import ROOT, mcpp as run

DOCS = sorted([ROOT / "README.md", *ROOT.glob("docs/**/*.md"), *ROOT.glob("editors/*/README.md")])


def test_the_distribution_is_mcpp_policy_and_installs_the_mcpp_command():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == mcpp.DISTRIBUTION == "mcpp-policy"
    assert project["scripts"] == {"mcpp": "mcpp.cli:main"}
    dist = importlib.metadata.distribution(mcpp.DISTRIBUTION)
    assert dist.version == mcpp.__version__
    assert [ep.name for ep in dist.entry_points if ep.group == "console_scripts"] == ["mcpp"]


def test_python_dash_m_mcpp_is_the_cli_and_version_names_the_distribution():
    p = run("--version")
    assert p.returncode == 0
    assert p.stdout.startswith(f"mcpp {mcpp.__version__} (the mcpp-policy distribution, ")
    assert "Usage: python -m mcpp" in run("--help").stdout


INSTALL = re.compile(r"pip3? install\s+(?:-U\s+|--upgrade\s+|-q\s+)*([-\w.\[\]']+)")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_install_line_names_this_distribution(doc):
    for m in INSTALL.finditer(doc.read_text()):
        target = m.group(1).strip("`'\"")
        # a checkout (`.`, `-e .`, `-e '.[test]'`) or the distribution, never `mcpp`/`mcpp-bin`
        assert target in ("mcpp-policy", ".", "-e", ".[test]") or target.startswith("mcpp-policy["), (doc, m.group(0))


def test_the_readme_says_what_to_do_when_another_mcpp_is_on_path():
    text = (ROOT / "README.md").read_text()
    assert "python3 -m mcpp" in text and "another `mcpp`" in text
