"""The analyzer in the editor: lints and failed asserts (with their counterexample)
arrive after the syntax diagnostics, off the event loop; an edit cancels a running
analysis; lint quick fixes apply and make the finding go away."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from lsprotocol import types as t

from .conftest import change, doc_id, open_doc, pos, wait_diags

sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))

FAILING_ASSERT = '''default deny;

@id("deletes")
permit (principal, action == Action::"delete_pod", resource)
when { context.input.namespace like "*" };

@id("no-prod-deletes")
assert deny (principal, action == Action::"delete_pod", resource)
when { context.input.namespace == "prod" };
'''

BYPASS = '''default deny;

@id("deletes")
permit (principal, action == Action::"delete_pod", resource)
when { context.input.namespace like "*" };

@id("few-replicas")
forbid (principal, action == Action::"delete_pod", resource)
when { context.input.replicas > 3 };

@id("docs-only")
permit (principal, action == Action::"fetch", resource)
when { context.input.url.matches("https://docs\\\\.acme\\\\.com") };
'''


def codes(diags):
    return {d.code for d in diags}


async def status(client):
    return await client.workspace_execute_command_async(t.ExecuteCommandParams(command="mcpp.status"))


async def test_failed_assert_shows_its_counterexample(client):
    uri = open_doc(client, "a.mcpp", FAILING_ASSERT)
    diags = await wait_diags(client, uri, lambda d: "assert-failed" in codes(d), what="assert-failed")
    d = next(x for x in diags if x.code == "assert-failed")
    assert d.severity == t.DiagnosticSeverity.Error
    assert "no-prod-deletes" in d.message
    # the counterexample: a concrete call that the policy allows although the assert forbids it
    assert '"name": "delete_pod"' in d.message and '"namespace": "prod"' in d.message
    assert d.range.start == pos(FAILING_ASSERT, '@id("no-prod-deletes")')
    assert d.code_description.href.endswith("docs/analyzer.md#assertions")
    assert d.data["details"]["counterexample"]["request"]["params"]["arguments"]["namespace"] == "prod"
    assert "jsonrpc" not in d.data["details"]["counterexample"]["request"]
    # the permit that lets it through is linked
    (rel,) = d.related_information
    assert "'deletes' allows the counterexample" in rel.message
    assert rel.location.range.start == pos(FAILING_ASSERT, '@id("deletes")')


async def test_lints_arrive_after_syntax_and_fix_applies(client):
    uri = open_doc(client, "b.mcpp", BYPASS)
    diags = await wait_diags(client, uri, lambda d: {"forbid-bypass", "unanchored-regex"} <= codes(d))
    bypass = next(x for x in diags if x.code == "forbid-bypass")
    assert bypass.code_description.href.endswith("docs/lints/forbid-bypass.md")
    assert "few-replicas" in bypass.message and "bypassed" in bypass.message
    regex = next(x for x in diags if x.code == "unanchored-regex")
    assert regex.severity == t.DiagnosticSeverity.Warning
    actions = await client.text_document_code_action_async(t.CodeActionParams(
        text_document=doc_id(uri), range=regex.range,
        context=t.CodeActionContext(diagnostics=[regex, bypass])))
    titles = sorted(a.title for a in actions)
    assert any(x.startswith("Anchor the regex") for x in titles), titles
    assert any(x.startswith("Guard permit 'deletes'") for x in titles), titles
    # apply both fixes, as the editor would, and watch the findings go away
    text = BYPASS
    edits = [e for a in actions for e in a.edit.changes[uri]]
    text = apply_edits(text, edits)
    assert '.matches("^https://docs\\\\.acme\\\\.com$")' in text
    assert "when { context.input.replicas <= 3 }" in text
    change(client, uri, 2, text)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while (await status(client))["documents"][uri]["analysis_version"] != 2:
        assert loop.time() < deadline, "version 2 was never analysed"
        await asyncio.sleep(0.05)
    after = list(client.diagnostics[uri])
    assert not {"forbid-bypass", "unanchored-regex", "syntax"} & codes(after), after


def apply_edits(text: str, edits: list[t.TextEdit]) -> str:
    lines = text.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)

    def off(p):
        return offsets[p.line] + p.character  # ASCII test text: UTF-16 units == code points

    for e in sorted(edits, key=lambda e: off(e.range.start), reverse=True):
        text = text[: off(e.range.start)] + e.new_text + text[off(e.range.end):]
    return text


async def test_edit_cancels_a_running_analysis(client):
    from lang_bench import generate

    slow = generate(120)  # several seconds of solving
    uri = open_doc(client, "slow.mcpp", slow)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        st = await status(client)
        run = st["analyzer"]["running"]
        if run and run["uri"] == uri and run["version"] == 1:
            break
        assert loop.time() < deadline, st
        await asyncio.sleep(0.05)
    started = st["analyzer"]["started"]
    # typing while it runs: the version-1 analysis is stopped, not awaited
    change(client, uri, 2, FAILING_ASSERT)
    await wait_diags(client, uri, lambda d: "assert-failed" in codes(d), what="analysis of version 2")
    st = await status(client)
    assert st["analyzer"]["cancelled"] >= 1
    assert st["analyzer"]["started"] > started  # the stopped worker was replaced
    assert st["documents"][uri]["analysis_version"] == 2
    # version 1's findings (many lints on the generated policy) were never published for version 2


async def test_typing_is_not_blocked_by_analysis(client):
    """Syntax diagnostics for each edit come back while the analyzer is busy: before the
    analysis of that version (seconds of solving) has finished. An ordering, not a
    stopwatch; the latency itself is measured by bench/lsp_bench.py."""
    from lang_bench import generate

    slow = generate(120)
    uri = open_doc(client, "busy.mcpp", slow)
    await asyncio.sleep(0.3)  # the analysis has started (debounce 50 ms)
    for v in range(2, 6):
        broken = slow + ("permit (" if v % 2 == 0 else "")
        change(client, uri, v, broken)
        want_error = v % 2 == 0
        await wait_diags(client, uri, lambda d: any(x.code == "syntax" for x in d) == want_error)
        st = await status(client)
        assert st["documents"][uri]["analysis_version"] != v, st


@pytest.mark.parametrize("client", [{"mcpp": {"analyzer": {"enabled": False}}}], indirect=True)
async def test_analyzer_can_be_disabled(client):
    uri = open_doc(client, "off.mcpp", FAILING_ASSERT)
    await wait_diags(client, uri, lambda _d: True)
    await asyncio.sleep(2.0)
    assert "assert-failed" not in codes(client.diagnostics[uri])
    st = await status(client)
    assert st["settings"]["analyzer.enabled"] is False
    assert st["analyzer"]["completed"] == 0


async def test_analyze_command_and_errors_skip_analysis(client):
    uri = open_doc(client, "e.mcpp", FAILING_ASSERT + "permit (\n")
    await wait_diags(client, uri, lambda d: "syntax" in codes(d))
    with pytest.raises(Exception) as e:
        await client.workspace_execute_command_async(t.ExecuteCommandParams(command="mcpp.analyze", arguments=[uri]))
    assert "error" in str(e.value)
    change(client, uri, 2, FAILING_ASSERT)
    await wait_diags(client, uri, lambda d: "assert-failed" in codes(d))


@pytest.mark.parametrize("client", [{"mcpp": {"analyzer": {"debounceMs": 4000}}}], indirect=True)
async def test_findings_move_with_edits_until_the_next_analysis(client):
    uri = open_doc(client, "mv.mcpp", FAILING_ASSERT)
    first = await wait_diags(client, uri, lambda d: "assert-failed" in codes(d), timeout=40)
    line = next(x for x in first if x.code == "assert-failed").range.start.line
    # two lines added at the top: the finding is shown two lines lower at once, not dropped
    change(client, uri, 2, "// a\n// b\n", t.Range(start=t.Position(line=0, character=0),
                                                 end=t.Position(line=0, character=0)))
    moved = await wait_diags(client, uri, lambda d: any(x.code == "assert-failed" and x.range.start.line == line + 2
                                                         for x in d))
    assert (await status(client))["documents"][uri]["analysis_version"] == 1  # moved, not re-analysed (debounce 4 s)
    # an edit inside the assert drops its (now stale) finding
    at = t.Position(line=line + 3, character=len("assert deny ("))
    change(client, uri, 3, "principal ,", t.Range(start=at, end=t.Position(line=line + 3, character=at.character + 11)))
    await wait_diags(client, uri, lambda d: "assert-failed" not in codes(d))
    assert (await status(client))["documents"][uri]["analysis_version"] == 1  # dropped, not re-analysed
    assert moved


TYPED = '''default deny;

permit (principal, action == Action::"delete_pod", resource);

@id("slow-kills-only")
forbid (principal, action == Action::"delete_pod", resource)
when { context.input.grace_seconds < 30 };
'''


@pytest.mark.parametrize("catalog, severity, kind", [
    (None, "error", "mistyped"),  # untyped: {"grace_seconds": "29"} skips the forbid
    ("k8s.tools.json", "warning", "missing"),  # typed: an integer, so only omitting it is left
])
def test_worker_analysis_is_typed_by_the_documents_catalog(catalog, severity, kind):
    from mcpp.lsp.worker import handle

    path = str(Path(__file__).parent / "fixtures" / catalog) if catalog else None
    reply = handle({"id": 1, "source": TYPED, "filename": "p.mcpp", "timeout_ms": 5000, "catalog": path})
    (d,) = [d for d in reply["diagnostics"] if d["code"] == "forbid-bypass"]
    assert d["severity"] == severity and f"with a {kind} argument" in d["message"]


async def test_analysis_is_typed_by_the_policys_catalog(client):
    text = '@catalog("k8s.tools.json")\n' + TYPED
    uri = open_doc(client, "typed.mcpp", text)
    diags = await wait_diags(client, uri, lambda d: "forbid-bypass" in codes(d), what="forbid-bypass")
    d = next(x for x in diags if x.code == "forbid-bypass")
    assert d.severity == t.DiagnosticSeverity.Warning and "missing argument" in d.message
