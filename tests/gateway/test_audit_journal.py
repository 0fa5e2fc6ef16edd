"""The audit journal (runtime/gateway/audit.py `AuditJournal`): a forwarded call's row is
made durable by one append before the call is sent and committed to the database right
after. What must hold: a row in the journal and not in the database is recovered exactly
once by the next opener, a journal in use is left alone, an emptied journal recovers only
what came after, a torn last line is no row, and a row that cannot be journaled means the
call is never forwarded."""

from __future__ import annotations

import asyncio
import json
import os
import signal

import httpx2
import pytest

from mcpp.runtime.gateway.audit import AuditJournal, AuditLog, AuditRow, GroupCommit, recover_journals
from mcpp.runtime.gateway.config import quick_config
from mcpp.runtime.gateway.server import build_app

from .peers import call_tool, create_grant, write


def _row(i: int) -> AuditRow:
    return AuditRow(ts=1000.0 + i, request_id=str(i), trace_id=None, grant_id="g", grant_label="l", server="s",
                    tool="t", decision="allow", rule="/policies/0", message=f"m{i}", arg_keys=["a"], outcome="forwarded")


def _crash(log: AuditLog) -> None:
    """What SIGKILL leaves: the journal file and its rows, the lock released, nothing removed."""
    j = log.journal
    assert j is not None
    os.close(j.fd)
    j.fd = -1
    log.journal = None
    log.db.close()


def _journals(state) -> list:
    d = state / "audit-journal"
    return sorted(d.glob("*.jsonl")) if d.is_dir() else []


async def _commit(writer: GroupCommit, rows: list[AuditRow]) -> list[int]:
    return list(await asyncio.gather(*(writer.submit(r) for r in rows)))


def test_rows_only_in_the_journal_are_recovered_once_by_the_next_opener(tmp_path):
    log = AuditLog(tmp_path)
    writer = GroupCommit(log, log.open_journal())
    rows = [_row(i) for i in range(6)]
    for r in rows:
        writer.journal.append(r)  # type: ignore[union-attr]
    asyncio.run(_commit(writer, rows[:4]))  # 4 and 5 were sent, then the gateway died
    assert writer.journal.pending == 2  # type: ignore[union-attr]
    _crash(log)
    again = AuditLog(tmp_path)
    assert again.recovered == 2
    got = again.query()
    assert [r["request_id"] for r in got] == [str(i) for i in range(6)]
    assert got[5]["message"] == "m5" and got[5]["arg_keys"] == ["a"] and "jid" not in got[5]
    assert _journals(tmp_path) == []  # recovered journals are removed
    again.close()
    assert AuditLog(tmp_path).recovered == 0 and len(AuditLog(tmp_path).query()) == 6


def test_a_reader_recovers_too_and_a_journal_in_use_is_left_alone(tmp_path):
    live = AuditLog(tmp_path)
    live_writer = GroupCommit(live, live.open_journal())
    live_writer.journal.append(_row(1))  # type: ignore[union-attr]
    reader = AuditLog(tmp_path, readonly=True)  # `mcpp audit` while the gateway runs
    assert reader.recovered == 0 and _journals(tmp_path) == [live.journal.path]  # type: ignore[union-attr]
    _crash(live)
    assert AuditLog(tmp_path, readonly=True).recovered == 1  # …and once it is gone
    assert _journals(tmp_path) == []


def test_an_emptied_journal_recovers_only_what_came_after_and_a_torn_line_is_no_row(tmp_path):
    log = AuditLog(tmp_path)
    journal = log.open_journal()
    journal.max_bytes = 200  # emptied as soon as everything in it is committed
    writer = GroupCommit(log, journal)
    first = [_row(i) for i in range(3)]
    for r in first:
        journal.append(r)
    asyncio.run(_commit(writer, first))
    assert journal.size < 200  # emptied: only the header, with the last seq
    header = json.loads(journal.path.read_text().splitlines()[0])
    assert header == {"mcpp_audit_journal": 1, "base_seq": 3}
    later = [_row(i) for i in range(3, 5)]
    for r in later:
        journal.append(r)
    asyncio.run(_commit(writer, later[:1]))
    with open(journal.path, "ab") as f:
        f.write(b'["half a row')  # an append the crash cut short: that call was never sent
    _crash(log)
    again = AuditLog(tmp_path)
    assert again.recovered == 1
    assert [r["request_id"] for r in again.query()] == ["0", "1", "2", "3", "4"]


def test_clean_close_removes_the_journal_only_when_every_row_is_committed(tmp_path):
    log = AuditLog(tmp_path)
    writer = GroupCommit(log, log.open_journal())
    r = _row(0)
    writer.journal.append(r)  # type: ignore[union-attr]
    asyncio.run(_commit(writer, [r]))
    log.close()
    assert _journals(tmp_path) == []
    log = AuditLog(tmp_path)
    j = log.open_journal()
    j.append(_row(1))  # its commit failed: kept for recovery
    log.close()
    assert len(_journals(tmp_path)) == 1
    assert AuditLog(tmp_path).recovered == 1


def test_recovery_of_an_unreadable_journal_dir_is_nothing(tmp_path):
    assert recover_journals(tmp_path / "none", AuditLog(tmp_path).db) == 0


def test_synchronous_full_syncs_each_append(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(os, "fdatasync", lambda fd: synced.append(fd))
    j = AuditJournal(tmp_path, "full")
    j.append(_row(0))
    assert len(synced) == 2 and set(synced) == {j.fd}  # the header and the row


async def test_a_call_whose_row_cannot_be_journaled_is_never_forwarded(tmp_path, upstream):
    """No audit row, no call: the append fails (a full disk), the caller gets 503 and the
    upstream never sees the call; its limit reservation is given back."""
    policy = write(tmp_path / "p.mcpp", 'permit (principal, action, resource);\n')
    state = tmp_path / "state"
    grant = create_grant(state, "ops")
    app, rt = build_app(quick_config(str(policy), upstream.url, None, 0, str(state)), strict=True)
    journal = rt.audit_writer.journal
    assert journal is not None

    def full(row):  # noqa: ARG001 (stands in for AuditJournal.append)
        raise OSError(28, "No space left on device")

    before = len(upstream.ran())
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1:9") as http:
        ok = await call_tool(http, "http://127.0.0.1:9/mcp/default/", grant["token"], "echo", {"text": "a"}, rid=1)
        assert "result" in ok and len(upstream.ran()) == before + 1
        journal.append = full  # type: ignore[method-assign]
        r = await http.post("/mcp/default/", headers={
            "Content-Type": "application/json", "Accept": "application/json, text/event-stream",
            "Authorization": f"Bearer {grant['token']}"},
            content=json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "b"}}}))
        assert r.status_code == 503 and "audit log unavailable" in r.json()["error"]["message"]
    assert len(upstream.ran()) == before + 1  # the second call never reached it
    assert [row["request_id"] for row in rt.audit.query()] == ["1"]
    rt.close_stores()


async def test_a_stopped_gateway_leaves_no_journal_and_every_answered_call_is_in_the_database(tmp_path, upstream, start_gateway):
    policy = write(tmp_path / "p.mcpp", 'permit (principal, action, resource);\n')
    state = tmp_path / "state"
    grant = create_grant(state, "ops")
    g = start_gateway("--policy", str(policy), "--upstream", upstream.url, state=state)
    async with httpx2.AsyncClient(timeout=20) as http:
        for i in range(5):
            r = await call_tool(http, g.url(), grant["token"], "echo", {"text": str(i)}, rid=i)
            assert "result" in r
            # read before the next call: the row is committed before the client reads the answer
            assert AuditLog(state, readonly=True).count() == i + 1
    assert len(_journals(state)) == 1  # the running gateway's own
    g.proc.p.send_signal(signal.SIGTERM)
    g.proc.p.wait(20)
    assert _journals(state) == []


@pytest.mark.parametrize("n", [1, 3])
def test_seq_only_grows_through_recovery(tmp_path, n):
    log = AuditLog(tmp_path)
    writer = GroupCommit(log, log.open_journal())
    rows = [_row(i) for i in range(n)]
    for r in rows:
        writer.journal.append(r)  # type: ignore[union-attr]
    _crash(log)
    again = AuditLog(tmp_path)
    seqs = [again.write(_row(100)), again.write(_row(101))]
    got = [r["seq"] for r in again.query()]
    assert got == sorted(got) and len(got) == n + 2 and seqs == got[-2:]
