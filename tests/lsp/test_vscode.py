"""The VS Code extension: its node tests (TextMate scopes of every example, activation),
its `.vsix` build with @vscode/vsce, and its settings agreeing with the server's.

The npm packages come from editors/vscode/package-lock.json (`npm ci`, done by
.ci/setup.d/editors.sh). Without them these tests skip locally and fail in CI."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from mcpp.lsp.settings import Settings

EXT = Path(__file__).parents[2] / "editors" / "vscode"


def _need_node_modules():
    missing = shutil.which("node") is None or not (EXT / "node_modules" / "vscode-textmate").is_dir()
    if missing:
        why = "node or editors/vscode/node_modules is missing: run .ci/setup.d/editors.sh (npm ci)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)


def test_node_tests_pass():
    _need_node_modules()
    r = subprocess.run(["node", "--test", "test/"], cwd=EXT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    passed = int(re.search(r"^# pass (\d+)", r.stdout, re.M).group(1))
    failed = int(re.search(r"^# fail (\d+)", r.stdout, re.M).group(1))
    examples = len(list((EXT.parents[1] / "examples").glob("*.mcpp")))
    assert failed == 0 and passed >= examples + 4, r.stdout[-2000:]
    for name in sorted(p.name for p in (EXT.parents[1] / "examples").glob("*.mcpp")):
        assert re.search(rf"^ok \d+ - scopes in examples/{re.escape(name)}$", r.stdout, re.M), name


def test_vsix_builds(tmp_path):
    _need_node_modules()
    out = tmp_path / "mcpp.vsix"
    r = subprocess.run(["npx", "--no-install", "vsce", "package", "--allow-missing-repository", "-o", str(out)],
                       cwd=EXT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
        manifest = json.loads(z.read("extension/package.json"))
    for f in ("extension/extension.js", "extension/syntaxes/mcpp.tmLanguage.json",
              "extension/language-configuration.json", "extension/node_modules/vscode-languageclient/node.js",
              "extension/node_modules/vscode-languageclient/node_modules/minimatch/package.json"):
        assert f in names, f
    assert not any(n.startswith(("extension/test/", "extension/e2e/")) for n in names)  # tests stay out
    assert not any("/vscode-textmate/" in n or "/@vscode/vsce/" in n for n in names)  # dev dependencies stay out
    assert manifest["contributes"]["languages"][0]["extensions"] == [".mcpp"]


def test_extension_settings_are_the_servers():
    """Every server setting the extension declares is one the server reads, with the same default."""
    pkg = json.loads((EXT / "package.json").read_text())
    props = pkg["contributes"]["configuration"]["properties"]
    section: dict = {}
    for key, spec in props.items():
        name = key.removeprefix("mcpp.")
        if name.startswith(("server.", "trace.")):
            continue  # the client's own settings
        node = section
        *parents, leaf = name.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = spec["default"]
    s = Settings.from_json(section)
    assert not s.problems
    d = Settings()
    assert (s.catalog, s.analyzer_enabled, s.analyzer_timeout_ms, s.analyzer_debounce_ms, s.docs_base_url) == \
        (d.catalog, d.analyzer_enabled, d.analyzer_timeout_ms, d.analyzer_debounce_ms, d.docs_base_url)
    assert set(section) == {"catalog", "analyzer", "docsBaseUrl"}
    assert set(section["analyzer"]) == {"enabled", "timeoutMs", "debounceMs"}


def test_lockfile_pins_every_dependency():
    lock = json.loads((EXT / "package-lock.json").read_text())
    pkg = json.loads((EXT / "package.json").read_text())
    assert lock["lockfileVersion"] >= 2
    root = lock["packages"][""]
    assert root["dependencies"] == pkg["dependencies"] and root["devDependencies"] == pkg["devDependencies"]
    for spec in list(pkg["dependencies"].values()) + list(pkg["devDependencies"].values()):
        assert re.fullmatch(r"\d+\.\d+\.\d+", spec), f"unpinned dependency {spec}"
    assert all("integrity" in v for k, v in lock["packages"].items() if k)
