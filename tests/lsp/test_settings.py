"""Workspace settings pulled with workspace/configuration: the catalog location, the
analyzer's timeout and switch, the docs link base; bad values are reported, not fatal."""

from __future__ import annotations

import asyncio

import pytest
from lsprotocol import types as t

from mcpp.lsp.settings import DEFAULT_DOCS_BASE, Settings

from .conftest import open_doc, pos, wait_diags

POLICY = 'default deny;\npermit (principal, action == Action::"delete_pods", resource);\n'


async def status(client):
    return await client.workspace_execute_command_async(t.ExecuteCommandParams(command="mcpp.status"))


@pytest.mark.parametrize("client", [{"mcpp": {"catalog": "k8s.tools.json", "analyzer": {"timeoutMs": 1234},
                                              "docsBaseUrl": "https://docs.example.org/mcpp"}}], indirect=True)
async def test_settings_are_pulled_and_used(client):
    uri = open_doc(client, "p.mcpp", POLICY)
    # the catalog named by the setting is used for a policy that names none
    diags = await wait_diags(client, uri, lambda d: any(x.code == "catalog-unknown-tool" for x in d))
    d = next(x for x in diags if x.code == "catalog-unknown-tool")
    assert d.range.start == pos(POLICY, 'Action::"delete_pods"')
    assert d.code_description.href == "https://docs.example.org/mcpp/docs/catalogs.md#catalog-unknown-tool"
    st = await status(client)
    assert st["settings"]["analyzer.timeoutMs"] == 1234
    assert st["documents"][uri]["catalog"].endswith("k8s.tools.json")


async def test_change_configuration_rechecks_open_documents(client):
    uri = open_doc(client, "p.mcpp", POLICY)
    await wait_diags(client, uri, lambda _d: True)
    await asyncio.sleep(0.2)
    assert not any(x.code.startswith("catalog") for x in client.diagnostics[uri])
    client.set_configuration(item={"catalog": "k8s.tools.json"}, section="mcpp")
    client.workspace_did_change_configuration(t.DidChangeConfigurationParams(settings=None))
    await wait_diags(client, uri, lambda d: any(x.code == "catalog-unknown-tool" for x in d))
    # pushed settings (clients that send them in the notification) work too
    client.workspace_did_change_configuration(t.DidChangeConfigurationParams(
        settings={"mcpp": {"catalog": "missing.json"}}))
    diags = await wait_diags(client, uri, lambda d: any(x.code == "catalog" for x in d))
    d = next(x for x in diags if x.code == "catalog")
    assert "no such catalog file" in d.message and "mcpp.catalog setting" in d.message


@pytest.mark.parametrize("client", [{"mcpp": {"analyzer": {"timeoutMs": "fast", "enabled": "yes"},
                                              "catalog": 42}}], indirect=True)
async def test_bad_setting_values_are_logged_and_defaulted(client):
    uri = open_doc(client, "p.mcpp", POLICY)
    await wait_diags(client, uri, lambda _d: True)
    st = await status(client)
    assert st["settings"]["analyzer.timeoutMs"] == 2000 and st["settings"]["analyzer.enabled"] is True
    logs = [m.message for m in client.log_messages]
    assert any("mcpp.analyzer.timeoutMs must be a number of milliseconds" in m for m in logs), logs
    assert any("mcpp.catalog must be a file path" in m for m in logs), logs


def test_settings_parsing():
    s = Settings.from_json({"analyzer.timeoutMs": 500.0, "analyzer": {"debounceMs": 0}, "docsBaseUrl": "file:///d"})
    assert (s.analyzer_timeout_ms, s.analyzer_debounce_ms, s.docs_base_url) == (500, 0, "file:///d/")
    assert Settings.from_json(None).docs_base_url == DEFAULT_DOCS_BASE
    bad = Settings.from_json(["x"])
    assert bad.problems and bad.analyzer_timeout_ms == 2000
    assert Settings.from_json({"analyzer": {"timeoutMs": 0}}).problems
    assert Settings.from_json({"analyzer": {"enabled": 1}}).analyzer_enabled is True
