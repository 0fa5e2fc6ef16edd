"""A SQLite store locked by another process stalls nothing but the calls that need it.

SQLite's busy timeout sleeps in the calling thread; the gateway's was the event loop's, so
one process holding `audit.db` (or `counters.db`) locked stalled every call, `/healthz` and
`/metrics` for up to 10 s, one call after another. The gateway's connections now never
sleep on a lock: a locked write is tried again from the event loop (deferred.py), the call
that needs it waits up to `store_busy_timeout`, and then it is refused: 503 without an
audit row, a limit-store denial without a counter. Every wait here is bounded in time.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from contextlib import contextmanager

import httpx2
import pytest

from mcpp import Charge
from mcpp.runtime.gateway.audit import AuditLog, AuditRow, GroupCommit
from mcpp.runtime.gateway.counters import SQLiteDeferredCounters
from mcpp.runtime.gateway.deferred import HELD_LOCK, StoreUnavailable, is_locked, retry_while_locked

import json

from .peers import MODERN_META, call_tool, mcpp, result_text
from .test_adversarial import _gw_config


@contextmanager
def locked(path):
    """Hold `path`'s write lock from another connection (as another process would)."""
    db = sqlite3.connect(path, isolation_level=None, timeout=10)
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    finally:
        if db.in_transaction:
            db.execute("ROLLBACK")
        db.close()


def _row(tool: str = "echo") -> AuditRow:
    return AuditRow(ts=time.time(), request_id="1", trace_id=None, grant_id="g", grant_label="ops", server="default",
                    tool=tool, decision="allow", rule="/tools/echo", message="", arg_keys=[], outcome="forwarded")


class Ticks:
    """Counts event-loop turns of 5 ms while it runs: a stalled loop counts none."""

    def __init__(self):
        self.n = 0
        self.task = asyncio.ensure_future(self._run())

    async def _run(self):
        while True:
            await asyncio.sleep(0.005)
            self.n += 1

    def stop(self) -> int:
        self.task.cancel()
        return self.n


class Recorder:
    def __init__(self):
        self.records: list[tuple[str, dict]] = []

    def error(self, event, **kw):
        self.records.append((event, kw))

    warning = error


# ---- the audit writer -------------------------------------------------------------------------


async def test_a_row_waits_for_a_lock_held_briefly_without_stalling_the_loop(tmp_path):
    log = AuditLog(tmp_path, wait=False)
    writer = GroupCommit(log, busy_timeout=5)
    with locked(log.path) as other:
        ticks = Ticks()
        fut = writer.submit(_row())
        await asyncio.sleep(0.3)
        assert not fut.done(), "the row cannot be committed while another connection holds the lock"
        other.execute("COMMIT")
    seq = await asyncio.wait_for(fut, 2)
    n = ticks.stop()
    assert n >= 5, f"the event loop turned only {n} times in 0.3 s: it slept on the lock"
    assert sqlite3.connect(log.path).execute("SELECT seq, tool FROM audit").fetchall() == [(seq, "echo")]


async def test_a_row_past_the_busy_timeout_fails_and_the_next_one_is_written(tmp_path):
    log = AuditLog(tmp_path, wait=False)
    writer = GroupCommit(log, busy_timeout=0.2)
    with locked(log.path):
        ticks = Ticks()
        started = time.monotonic()
        fut = writer.submit(_row("first"))
        with pytest.raises(sqlite3.OperationalError, match="locked by another process"):
            await asyncio.wait_for(fut, 3)
        waited = time.monotonic() - started
        assert ticks.stop() >= 5
        assert 0.2 <= waited < 5
    assert await asyncio.wait_for(writer.submit(_row("second")), 2) >= 1
    assert [t for (t,) in sqlite3.connect(log.path).execute("SELECT tool FROM audit")] == ["second"]


async def test_a_busy_timeout_of_zero_refuses_at_once(tmp_path):
    log = AuditLog(tmp_path, wait=False)
    writer = GroupCommit(log, busy_timeout=0)
    with locked(log.path):
        started = time.monotonic()
        with pytest.raises(sqlite3.OperationalError):
            await asyncio.wait_for(writer.submit(_row()), 2)
        assert time.monotonic() - started < 2  # no retry: one try, refused


async def test_the_row_cap_holds_only_while_a_lock_is_held_and_ends_with_it(tmp_path):
    """GroupCommit's cap on waiting rows (hostile16 F10) refuses only once the file has been
    locked `HELD_LOCK` seconds (not on another gateway's commit: hostile21 F3), and the lock
    is forgotten once nothing waits for it, even when every waiting row timed out (F6: the
    flag outlived the lock, and the next burst on a free file was refused past the cap)."""
    log = AuditLog(tmp_path, wait=False)
    writer = GroupCommit(log, busy_timeout=HELD_LOCK + 0.3, max_waiting=2)
    with locked(log.path):
        early = [writer.submit(_row(f"e{i}")) for i in range(3)]  # a lock this young refuses nobody
        await asyncio.sleep(0.01)
        assert not any(f.done() for f in early)
        await asyncio.sleep(HELD_LOCK)
        late = writer.submit(_row("late"))  # held, and the cap reached: refused at once
        assert late.done() and "calls already wait for it" in str(late.exception())
        for f in early:  # they wait out busy_timeout, and fail
            with pytest.raises(sqlite3.OperationalError, match="locked by another process"):
                await asyncio.wait_for(f, 3)
    assert writer.locked_since is None
    burst = [writer.submit(_row(f"b{i}")) for i in range(5)]  # the file is free: all five are written
    assert len(set(await asyncio.wait_for(asyncio.gather(*burst), 2))) == 5


async def test_a_burst_at_the_start_of_a_lock_is_cut_to_the_cap_once_the_lock_is_held(tmp_path):
    """Calls that all came in before the lock counted as held (hostile21 F4, nine
    approval-bound calls at once) are not all left waiting: once it is held, those past the
    cap are refused, the first `cap` wait on; for rows and for the other stores' waits."""
    log = AuditLog(tmp_path, wait=False)
    writer = GroupCommit(log, busy_timeout=5, max_waiting=2)
    store = SQLiteDeferredCounters(tmp_path, busy_timeout=5, log=Recorder(), max_waiting=2)
    assert await store.reserve_async([_charge()]) is None
    with locked(log.path) as audit_lock, locked(tmp_path / "counters.db") as counters_lock:
        rows = [writer.submit(_row(f"r{i}")) for i in range(4)]
        waits = [asyncio.ensure_future(store.reserve_async([_charge()])) for _ in range(4)]
        await asyncio.sleep(HELD_LOCK + 0.2)
        assert [f.done() for f in rows] == [False, False, True, True]
        assert [f.done() for f in waits] == [False, False, True, True]
        for f in rows[2:] + waits[2:]:
            assert "2 calls already wait for it" in str(f.exception())
        audit_lock.execute("COMMIT")
        counters_lock.execute("COMMIT")
    assert len(set(await asyncio.wait_for(asyncio.gather(*rows[:2]), 3))) == 2
    assert await asyncio.wait_for(asyncio.gather(*waits[:2]), 3) == [None, None]
    assert store.waiters is not None and store.waiters.n == 0


async def test_rows_submitted_while_locked_share_the_commit_after_it_in_order(tmp_path):
    log = AuditLog(tmp_path, wait=False)
    writer = GroupCommit(log, busy_timeout=5)
    with locked(log.path) as other:
        futs = [writer.submit(_row(f"t{i}")) for i in range(3)]
        await asyncio.sleep(0.05)
        futs += [writer.submit(_row(f"t{i}")) for i in range(3, 6)]
        await asyncio.sleep(0.05)
        other.execute("COMMIT")
    seqs = await asyncio.wait_for(asyncio.gather(*futs), 2)
    assert seqs == sorted(seqs) and len(set(seqs)) == 6
    rows = sqlite3.connect(log.path).execute("SELECT seq, tool FROM audit ORDER BY seq").fetchall()
    assert rows == [(s, f"t{i}") for i, s in enumerate(seqs)]


async def test_an_outcome_is_written_at_once_when_free_and_after_the_lock_otherwise(tmp_path):
    log = AuditLog(tmp_path, wait=False)
    writer = GroupCommit(log, busy_timeout=5)
    a = await writer.submit(_row("a"))
    b = await writer.submit(_row("b"))
    writer.set_outcome(a, "upstream_error")  # free: written before set_outcome returns
    read = sqlite3.connect(log.path)
    assert read.execute("SELECT outcome FROM audit WHERE seq=?", (a,)).fetchone() == ("upstream_error",)
    with locked(log.path) as other:
        writer.set_outcome(b, "client_disconnected")  # locked: queued, not raised, not blocking
        c = writer.submit(_row("c"))
        await asyncio.sleep(0.1)
        other.execute("COMMIT")
    await asyncio.wait_for(c, 2)
    assert read.execute("SELECT tool, outcome FROM audit ORDER BY seq").fetchall() == [
        ("a", "upstream_error"), ("b", "client_disconnected"), ("c", "forwarded")]


async def test_an_outcome_that_cannot_be_written_in_time_is_logged(tmp_path):
    log = AuditLog(tmp_path, wait=False)
    rec = Recorder()
    writer = GroupCommit(log, busy_timeout=0.1, logger=rec)
    seq = await writer.submit(_row())
    with locked(log.path):
        writer.set_outcome(seq, "upstream_error")
        deadline = time.monotonic() + 3
        while not rec.records and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    assert rec.records and rec.records[0][0] == "audit_write_failed"
    assert "locked by another process" in rec.records[0][1]["error"]
    assert rec.records[0][1]["lost"] == [{"seq": seq, "outcome": "upstream_error"}]  # which row is wrong (hostile16 F8)
    assert not writer.outcomes and not writer.pending
    assert sqlite3.connect(log.path).execute("SELECT outcome FROM audit").fetchone() == ("forwarded",)


def test_a_reader_never_holds_up_a_write(tmp_path):
    """WAL: a reader with an open transaction is not a lock on writers (no retry, no wait)."""
    log = AuditLog(tmp_path, wait=False)
    reader = sqlite3.connect(log.path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM audit").fetchone()
    assert log.write(_row()) >= 1
    reader.execute("COMMIT")


# ---- the counters ------------------------------------------------------------------------------


def _charge(amount=1.0, mx=5.0) -> Charge:
    return Charge("k|grant|g1", amount, mx, int(time.time()) + 3600)


async def test_counters_wait_for_a_brief_lock_and_refuse_past_the_timeout(tmp_path):
    rec = Recorder()
    store = SQLiteDeferredCounters(tmp_path, busy_timeout=0.3, log=rec)
    path = tmp_path / "counters.db"
    assert await store.reserve_async([_charge()]) is None
    with locked(path) as other:
        ticks = Ticks()
        fut = asyncio.ensure_future(store.reserve_async([_charge()]))
        await asyncio.sleep(0.1)
        assert not fut.done()
        other.execute("COMMIT")
    assert await asyncio.wait_for(fut, 2) is None
    assert ticks.stop() >= 5
    with locked(path):
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="counters.db is locked by another process"):
            await store.reserve_async([_charge()])
        assert 0.3 <= time.monotonic() - started < 5
        await store.release_async([_charge()])  # a refund that cannot be made is logged, not raised
    assert rec.records[-1][0] == "limit_refund_lost"
    assert (await store.values_async(["k|grant|g1"]))["k|grant|g1"] == 2.0
    # over the max: the index of the charge that failed, nothing reserved
    assert await store.reserve_async([_charge(), _charge(amount=10)]) == 1
    assert (await store.values_async(["k|grant|g1"]))["k|grant|g1"] == 2.0


async def test_an_error_that_is_not_a_lock_is_not_retried():
    calls = []

    def broken():
        calls.append(1)
        raise sqlite3.OperationalError("no such table: counters")

    with pytest.raises(StoreUnavailable, match="no such table"):
        await retry_while_locked(broken, 5, "counters.db")
    assert calls == [1]
    assert not is_locked(sqlite3.OperationalError("database is locked"))  # no error code: not ours to judge
    assert not is_locked(ValueError("locked"))


async def test_waiters_past_the_cap_are_refused_at_once_and_every_wait_is_counted_out(tmp_path):
    """deferred.Waiters: with the cap reached, a call that finds the store locked is refused
    at once; a wait that ends any way (written, timed out, cancelled) frees its place."""
    store = SQLiteDeferredCounters(tmp_path, busy_timeout=5, log=Recorder(), max_waiting=2)
    assert await store.reserve_async([_charge()]) is None
    waiters = store.waiters
    assert waiters is not None
    with locked(tmp_path / "counters.db") as other:
        first = asyncio.ensure_future(store.reserve_async([_charge()]))
        second = asyncio.ensure_future(store.reserve_async([_charge()]))
        await asyncio.sleep(0.05)
        assert waiters.n == 2 and not waiters.full()  # (a lock this short may be another gateway's commit)
        await asyncio.sleep(HELD_LOCK)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="2 calls already wait for it"):
            await store.reserve_async([_charge()])
        assert time.monotonic() - started < 1
        second.cancel()  # (its client went, or the gateway stopped)
        await asyncio.sleep(0.01)
        assert waiters.n == 1
        other.execute("COMMIT")
    assert await asyncio.wait_for(first, 2) is None
    assert waiters.n == 0
    with locked(tmp_path / "counters.db"):  # timed out: counted out too
        with pytest.raises(StoreUnavailable, match="waited"):
            await retry_while_locked(lambda: store.sync.reserve([_charge()], fresh_only=True), 0.05, "counters.db", waiters)
    assert waiters.n == 0
    assert await store.reserve_async([_charge()]) is None  # unlocked: no wait, no count


# ---- the gateway ---------------------------------------------------------------------------------


async def test_a_locked_audit_db_holds_only_the_calls_that_need_it(tmp_path, upstream, start_gateway):
    """With audit.db locked by another process, a tools/call waits while /healthz and
    /metrics answer; released within `store_busy_timeout` the call goes through with its
    row; held longer, the call is refused (503) and never reaches the upstream."""
    g = _gw_config(tmp_path, start_gateway, upstream.url, gateway="store_busy_timeout = 2")
    db = g.state / "audit.db"
    async with httpx2.AsyncClient(timeout=30) as http:
        assert result_text(await call_tool(http, g.url(), g.token, "echo", {"text": "warm"})) == "warm"
        with locked(db) as other:
            waiting = asyncio.ensure_future(call_tool(http, g.url(), g.token, "echo", {"text": "waited"}, rid=2))
            await asyncio.sleep(0.3)
            # (asserted as an order of events, not as times: answered while the call still waits)
            assert (await http.get(f"{g.base}/healthz")).status_code == 200
            assert (await http.get(f"{g.base}/metrics")).status_code == 200
            assert not waiting.done(), "the call was answered before its audit row could be written"
            other.execute("COMMIT")
        assert result_text(await asyncio.wait_for(waiting, 5)) == "waited"
        before = len(upstream.ran())
        with locked(db):
            started = time.monotonic()
            r = await call_tool(http, g.url(), g.token, "echo", {"text": "refused"}, rid=3)
            assert 2 <= time.monotonic() - started < 10
        assert r["status"] == 503 and "audit log unavailable" in r["error"]["message"]
        assert len(upstream.ran()) == before
        assert result_text(await call_tool(http, g.url(), g.token, "echo", {"text": "after"}, rid=4)) == "after"
    rows = sqlite3.connect(db).execute("SELECT request_id, outcome FROM audit ORDER BY seq").fetchall()
    assert rows == [("1", "forwarded"), ("2", "forwarded"), ("4", "forwarded")]


async def test_a_locked_counters_db_refuses_limited_calls_only(tmp_path, upstream, start_gateway):
    """With counters.db locked past `store_busy_timeout`, a limited call is refused as a
    limit-store failure (not forwarded, its row says so) while unlimited calls are served
    at their normal pace; once released, limits count again."""
    g = _gw_config(tmp_path, start_gateway, upstream.url, gateway="store_busy_timeout = 3")
    async with httpx2.AsyncClient(timeout=30) as http:
        assert result_text(await call_tool(http, g.url(), g.token, "charge", {"amount": 1})) == "charged 1.0"
        ran = len(upstream.ran("charge"))
        with locked(g.state / "counters.db"):
            limited = asyncio.ensure_future(call_tool(http, g.url(), g.token, "charge", {"amount": 2}, rid=2))
            await asyncio.sleep(0.2)
            free = await call_tool(http, g.url(), g.token, "echo", {"text": "free"}, rid=3)
            assert result_text(free) == "free"
            assert not limited.done(), "the unlimited call waited for the limited one's lock"
            r = await asyncio.wait_for(limited, 8)
        assert r["result"]["isError"] and result_text(r).startswith("[GATEWAY ERROR] The limit store is unavailable")
        assert len(upstream.ran("charge")) == ran
        assert result_text(await call_tool(http, g.url(), g.token, "charge", {"amount": 4}, rid=4)) == "charged 4.0"
    rows = sqlite3.connect(g.state / "audit.db").execute("SELECT request_id, rule, outcome FROM audit ORDER BY seq").fetchall()
    assert ("2", "/limits/store-unavailable", "denied") in rows


APPROVAL_POLICY = """
permit (principal, action == Action::"echo", resource);
@approval("Charges over 100 need a person.")
permit (principal, action == Action::"charge", resource) when { context.input.amount > 100 };
"""


@pytest.mark.parametrize("store, tool", [("counters.db", "charge"), ("audit.db", "echo"), ("approvals.db", "charge")])
async def test_calls_waiting_for_a_locked_store_cannot_take_every_connection(tmp_path, upstream, start_gateway, store, tool):
    """hostile16 F10: with counters.db locked, one agent's waiting limited calls filled
    `max_connections`, and another agent's unlimited call and /healthz got 503. At most
    half the connections now wait for one store; past that a call needing the locked store
    is refused at once, and everything else is still served."""
    policy = {"policy_text": APPROVAL_POLICY} if store == "approvals.db" else {}
    g = _gw_config(tmp_path, start_gateway, upstream.url, gateway="store_busy_timeout = 10\nmax_connections = 10", **policy)
    other = json.loads(mcpp("grant", "create", "--server", "default", "--label", "other", "--config", str(g.config),
                            "--json").stdout)["token"]
    args = {"text": "waits"} if tool == "echo" else {"amount": 1 if store == "counters.db" else 500}
    async with httpx2.AsyncClient(timeout=30, limits=httpx2.Limits(max_connections=40)) as http:
        assert (await call_tool(http, g.url(), g.token, "echo", {"text": "warm"}))["result"]
        before = len([r for r in upstream.ran(tool) if r["args"] == args])  # (the upstream serves other tests too)
        with locked(g.state / store) as other_db:
            waiting = [asyncio.ensure_future(call_tool(http, g.url(), g.token, tool, args, rid=i)) for i in range(5)]
            await asyncio.sleep(0.5)
            assert not any(w.done() for w in waiting)  # five wait: the bound is 10 // 2
            started = time.monotonic()
            r = await call_tool(http, g.url(), g.token, tool, args, rid=99)  # the sixth: refused at once
            assert time.monotonic() - started < 5
            if store != "audit.db":
                unavailable = "limit" if store == "counters.db" else "approval"
                assert r["result"]["isError"] and result_text(r).startswith(f"[GATEWAY ERROR] The {unavailable} store is unavailable")
                # another agent's call no limit applies to, and /healthz, are served meanwhile
                async with httpx2.AsyncClient(timeout=10) as http2:
                    assert result_text(await call_tool(http2, g.url(), other, "echo", {"text": "other"}, rid=7)) == "other"
            else:
                assert r["status"] == 503 and "audit log unavailable" in r["error"]["message"]
            async with httpx2.AsyncClient(timeout=10) as http2:
                assert (await http2.get(f"{g.base}/healthz")).status_code == 200
            assert not any(w.done() for w in waiting)
            other_db.execute("COMMIT")
        done = await asyncio.wait_for(asyncio.gather(*waiting), 10)
        assert result_text(await call_tool(http, g.url(), g.token, "echo", {"text": "after"}, rid=100)) == "after"  # unlocked
    if store == "approvals.db":  # the five that waited asked a person (and did not run)
        assert all(result_text(d).startswith("[APPROVAL REQUIRED]") for d in done)
        return
    assert all(d.get("result") and not d["result"].get("isError") for d in done)  # the five that waited ran
    ran = [r for r in upstream.ran(tool) if r["args"] == args]
    assert len(ran) - before == 5


@pytest.mark.parametrize("counters_free_after", [None, 1.2])
async def test_a_call_waits_for_its_stores_once_in_all(tmp_path, upstream, start_gateway, counters_free_after):
    """hostile16 F9: with counters.db and audit.db both locked, a limited call waited
    `store_busy_timeout` for its reservation and then as long again for its row (4 s for
    a 2 s setting). Its waits now share one deadline; nothing is forwarded."""
    g = _gw_config(tmp_path, start_gateway, upstream.url, gateway="store_busy_timeout = 2")
    async with httpx2.AsyncClient(timeout=30) as http:
        assert (await call_tool(http, g.url(), g.token, "echo", {"text": "warm"}))["result"]
        with locked(g.state / "audit.db"), locked(g.state / "counters.db") as counters:
            started = time.monotonic()
            call = asyncio.ensure_future(call_tool(http, g.url(), g.token, "charge", {"amount": 3}, rid=2))
            if counters_free_after is not None:  # the reservation is made just in time; the row still waits
                await asyncio.sleep(counters_free_after)
                counters.execute("COMMIT")
            r = await asyncio.wait_for(call, 10)
            took = time.monotonic() - started
        assert 1.9 <= took < 3.0, f"answered after {took:.2f}s; store_busy_timeout is 2"
        assert r["status"] == 503 and "audit log unavailable" in r["error"]["message"]
    assert not [x for x in upstream.ran("charge") if x["args"] == {"amount": 3.0}]


async def _call_then_leave(g, name: str, args: dict, rid: int, after: float) -> None:
    """Send a whole tools/call on a connection of its own, and close it `after` seconds
    later without reading the answer (an agent whose HTTP client gave up)."""
    body = json.dumps({"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                       "params": {"name": name, "arguments": args, "_meta": MODERN_META}}).encode()
    head = (f"POST /mcp/default/ HTTP/1.1\r\nHost: 127.0.0.1:{g.port}\r\nContent-Type: application/json\r\n"
            f"Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\n"
            f"Mcp-Method: tools/call\r\nMcp-Name: {name}\r\nAuthorization: Bearer {g.token}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    _, writer = await asyncio.open_connection("127.0.0.1", g.port)
    writer.write(head + body)
    await writer.drain()
    await asyncio.sleep(after)
    writer.close()


@pytest.mark.parametrize("store, tool", [("audit.db", "echo"), ("counters.db", "charge"), ("audit.db", "charge")])
async def test_a_call_whose_client_left_while_it_waited_is_not_forwarded(tmp_path, upstream, start_gateway, store, tool):
    """hostile16 F3: with a store locked, a call whose client closed its connection while
    the call waited was forwarded once the lock went (an agent that timed out and retried
    got it run twice). Now it is not forwarded, its row says `not_executed`, and a limited
    call's unit is given back."""
    g = _gw_config(tmp_path, start_gateway, upstream.url, gateway="store_busy_timeout = 10")
    args = {"text": "left"} if tool == "echo" else {"amount": 7}
    async with httpx2.AsyncClient(timeout=30) as http:
        assert (await call_tool(http, g.url(), g.token, "echo", {"text": "warm"}))["result"]
        with locked(g.state / store) as other:
            await _call_then_leave(g, tool, args, rid=2, after=0.4)
            await asyncio.sleep(0.3)  # (the gateway has seen the connection close)
            other.execute("COMMIT")
        # the next call on the same lane is answered after the one that waited was settled
        assert result_text(await call_tool(http, g.url(), g.token, "echo", {"text": "after"}, rid=3)) == "after"
        await asyncio.sleep(0.3)
        assert not [r for r in upstream.ran(tool) if r["args"] == args], "the call of a client that had left reached the upstream"
        if tool == "charge":  # its unit was given back: all 5 of `max 5 per hour` are still there
            for i in range(5):
                assert result_text(await call_tool(http, g.url(), g.token, "charge", {"amount": i}, rid=10 + i)) == f"charged {float(i)}"
            r = await call_tool(http, g.url(), g.token, "charge", {"amount": 9}, rid=20)
            assert r["result"]["isError"]
    # it stopped waiting as soon as its client had gone (hostile21 F5): before its decision
    # (counters.db) or its row (audit.db) was written, so it left no row; had it got through
    # its waits first, the check before forwarding would have written `not_executed`
    rows = dict(sqlite3.connect(g.state / "audit.db").execute("SELECT request_id, outcome FROM audit").fetchall())
    assert rows.get("2", "not_executed") == "not_executed"
    gone = [r for r in g.log_records() if r.get("event") == "client_gone_before_forwarding"]
    assert len(gone) == 1 and gone[0]["tool"] == tool


async def test_a_refund_is_made_at_once_when_free_and_after_the_lock_otherwise(tmp_path):
    """The refund of a call that did not run is in place before its answer is read (the
    client may call again at once); with counters.db locked it follows in the background."""
    store = SQLiteDeferredCounters(tmp_path, busy_timeout=5, log=Recorder())
    assert await store.reserve_async([_charge(amount=3)]) is None
    store.release([_charge(amount=1)])  # no await: done when it returns
    assert store.sync.value("k|grant|g1") == 2.0
    with locked(tmp_path / "counters.db") as other:
        store.release([_charge(amount=1)])
        await asyncio.sleep(0.1)
        assert store.sync.value("k|grant|g1") == 2.0
        other.execute("COMMIT")
    deadline = time.monotonic() + 3
    while store.sync.value("k|grant|g1") != 1.0 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert store.sync.value("k|grant|g1") == 1.0


async def test_calls_that_waited_across_a_window_end_are_decided_in_the_new_window(tmp_path, monkeypatch):
    """hostile16 F1: `max 5 per minute` spent, counters.db locked from second 57 for 5 s,
    30 calls meanwhile: all 30 ran. Each had been decided at its arrival, in the spent
    minute, and reserved after the minute had ended, when the spent minute's counter read
    0. Now a reservation made after a charged window's end is refused as stale and the call
    decided again at the new instant: of the waiting calls, exactly the new window's
    budget is allowed. (The clock is `time.time`, moved by the test; the lock is real.)"""
    from types import SimpleNamespace

    from mcpp import Grant
    from mcpp.runtime.gateway.principals import Caller

    from .peers import in_process_runtime

    rt, server = in_process_runtime(
        tmp_path, 'permit (principal, action, resource);\n'
                  'limit "n" (principal, action == Action::"charge", resource) max 2 per minute scope grant;\n',
        "store_busy_timeout = 30")
    caller = Caller(Grant("g_1", "ops"), SimpleNamespace(policy=None))
    policy, _ = await rt.engine_for(server, caller)
    clock = [1_800_000_000.0 + 50]  # second 50 of a minute (1.8e9 is a multiple of 60)
    monkeypatch.setattr(time, "time", lambda: clock[0])

    async def decide():
        return await rt.decide(policy, "charge", {}, caller.principal, "api")

    assert [(await decide()).allowed for _ in range(3)] == [True, True, False]  # the minute is spent
    with locked(tmp_path / "state" / "counters.db") as other:
        waiting = [asyncio.ensure_future(decide()) for _ in range(5)]
        await asyncio.sleep(0.1)
        assert not any(w.done() for w in waiting)
        clock[0] += 15  # the next minute
        other.execute("COMMIT")
    decisions = await asyncio.wait_for(asyncio.gather(*waiting), 5)
    assert sorted(d.allowed for d in decisions) == [False, False, False, True, True]
    assert [d.rule for d in decisions if not d.allowed] == ["/tools/charge/limits/n"] * 3
    rt.close_stores()


async def test_a_locked_approvals_db_holds_only_the_approval_bound_call(tmp_path, upstream, start_gateway):
    """hostile16 F4: with approvals.db locked, one approval-bound call stalled every other
    call for the whole lock (approvals.db was still written with a sleeping busy timeout).
    Now the approval-bound call waits alone and, past `store_busy_timeout`, is refused as
    a gateway error (not forwarded, no approval asked for); unrelated calls and /healthz
    answer meanwhile; once the lock is gone approvals work as before."""
    policy = ('permit (principal, action == Action::"echo", resource);\n'
              '@approval("Charges over 100 need a person.")\n'
              'permit (principal, action == Action::"charge", resource) when { context.input.amount > 100 };\n')
    g = _gw_config(tmp_path, start_gateway, upstream.url, gateway="store_busy_timeout = 3", policy_text=policy)
    ran = len(upstream.ran("charge"))  # (the upstream is shared with other tests)
    async with httpx2.AsyncClient(timeout=30) as http:
        assert result_text(await call_tool(http, g.url(), g.token, "echo", {"text": "warm"})) == "warm"
        with locked(g.state / "approvals.db"):
            bound = asyncio.ensure_future(call_tool(http, g.url(), g.token, "charge", {"amount": 500}, rid=2))
            await asyncio.sleep(0.2)
            assert result_text(await call_tool(http, g.url(), g.token, "echo", {"text": "free"}, rid=3)) == "free"
            assert (await http.get(f"{g.base}/healthz")).status_code == 200
            assert not bound.done(), "an unrelated call waited for the approval-bound call's lock"
            r = await asyncio.wait_for(bound, 8)
        assert r["result"]["isError"]
        assert result_text(r).startswith("[GATEWAY ERROR] The approval store is unavailable"), result_text(r)
        r = await call_tool(http, g.url(), g.token, "charge", {"amount": 500}, rid=4)
        assert result_text(r).startswith("[APPROVAL REQUIRED]"), result_text(r)
    assert len(upstream.ran("charge")) == ran
    rows = sqlite3.connect(g.state / "audit.db").execute("SELECT request_id, rule, outcome FROM audit ORDER BY seq").fetchall()
    assert ("2", "/approvals/store-unavailable", "denied") in rows


async def test_a_refund_that_fails_for_another_reason_is_logged_never_raised(tmp_path):
    """hostile16 F5: a refund on a broken counters.db escaped as an exception (HTTP 500 to
    the client, the audit outcome left unwritten). It is lost, which over-counts, and logged."""
    rec = Recorder()
    store = SQLiteDeferredCounters(tmp_path, busy_timeout=1, log=rec)
    assert await store.reserve_async([_charge()]) is None
    sqlite3.connect(tmp_path / "counters.db", isolation_level=None).execute("DROP TABLE counters")
    store.release([_charge()])
    await store.release_async([_charge()])
    assert [e for e, _ in rec.records] == ["limit_refund_lost", "limit_refund_lost"]
    assert "no such table" in rec.records[0][1]["error"]
    with pytest.raises(StoreUnavailable, match="no such table"):  # a reservation on it: refused, not raised raw
        await store.reserve_async([_charge()])


@pytest.mark.parametrize("how", ["deleted", "renamed away", "replaced by another file"])
async def test_rows_go_to_audit_db_even_after_it_is_deleted_or_replaced(tmp_path, how):
    """hostile16 F7: with audit.db deleted (or renamed over) under a running gateway, its
    rows went on into the unlinked file: calls forwarded, no row anyone could read, nothing
    logged. Before each commit the writer now checks that `audit.db` is still its file,
    and otherwise writes to the one there now (created if gone), and says so."""
    import os

    log = AuditLog(tmp_path, wait=False)
    rec = Recorder()
    writer = GroupCommit(log, busy_timeout=1, logger=rec)
    await writer.submit(_row("before"))
    if how == "deleted":
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(f"{log.path}{suffix}"):
                os.unlink(f"{log.path}{suffix}")
    elif how == "renamed away":
        os.rename(log.path, tmp_path / "audit.db.1")
    else:
        other = sqlite3.connect(tmp_path / "other.db")
        other.execute("CREATE TABLE x(y)")
        other.commit()
        other.close()
        os.replace(tmp_path / "other.db", log.path)
    await asyncio.wait_for(writer.submit(_row("after")), 2)
    tools = [t for (t,) in sqlite3.connect(log.path).execute("SELECT tool FROM audit")]
    # (a file renamed over audit.db while audit.db-wal stays: SQLite replays that WAL into it)
    assert tools == (["after"] if how != "replaced by another file" else tools[:-1] + ["after"])
    assert [e for e, _ in rec.records] == ["audit_db_reopened"]
    await asyncio.wait_for(writer.submit(_row("again")), 2)  # then written as usual, no second reopen
    assert [e for e, _ in rec.records] == ["audit_db_reopened"]
    if how == "renamed away":  # the rows still in the old file's WAL went into it first (hostile21 F2)
        assert [t for (t,) in sqlite3.connect(tmp_path / "audit.db.1").execute("SELECT tool FROM audit")] == ["before"]


async def test_a_commit_that_fails_for_another_reason_than_a_lock_is_reported(tmp_path):
    """hostile21 F1: audit.db broken under the gateway (every call refused 503) while
    /healthz said ok. The writer keeps the failure (`GroupCommit.failure`, what /healthz
    reports as `audit.error`, status unavailable) until a commit succeeds again."""
    log = AuditLog(tmp_path, wait=False)
    writer = GroupCommit(log, busy_timeout=1)
    await writer.submit(_row("before"))
    assert writer.failure is None
    log.db.execute("ALTER TABLE audit RENAME TO audit_gone")
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        await asyncio.wait_for(writer.submit(_row("broken")), 2)
    assert writer.failure is not None and "no such table" in writer.failure
    log.db.execute("ALTER TABLE audit_gone RENAME TO audit")
    await asyncio.wait_for(writer.submit(_row("after")), 2)
    assert writer.failure is None


# ---- at shutdown (Runtime.stop): what answered calls still owe their stores ----------------


async def _release_after(db, seconds: float) -> None:
    await asyncio.sleep(seconds)
    db.execute("COMMIT")


async def test_queued_outcomes_are_written_before_the_gateway_exits(tmp_path):
    log = AuditLog(tmp_path, wait=False)
    writer = GroupCommit(log, busy_timeout=5, logger=Recorder())
    seq = await writer.submit(_row("a"))
    with locked(log.path) as other:
        writer.set_outcome(seq, "gateway_stopped")  # locked: queued
        # a call cancelled while its row waited (the shutdown timeout): never forwarded
        waiting = writer.submit(_row("cancelled"))
        waiting.cancel()
        release = asyncio.ensure_future(_release_after(other, 0.2))
        await asyncio.wait_for(writer.drain(), 3)
        await release
    rows = sqlite3.connect(log.path).execute("SELECT tool, outcome FROM audit ORDER BY seq").fetchall()
    assert rows == [("a", "gateway_stopped")]  # the outcome landed; the cancelled call left no row
    assert not writer.pending and not writer.outcomes


async def test_an_outcome_the_lock_outlasts_at_shutdown_is_logged_and_the_drain_ends(tmp_path):
    log = AuditLog(tmp_path, wait=False)
    rec = Recorder()
    writer = GroupCommit(log, busy_timeout=0.3, logger=rec)
    seq = await writer.submit(_row("a"))
    with locked(log.path):
        writer.set_outcome(seq, "gateway_stopped")
        t0 = time.monotonic()
        await asyncio.wait_for(writer.drain(), 3)
        assert time.monotonic() - t0 < 2  # within busy_timeout (and a retry's pause)
    assert [e for e, _ in rec.records] == ["audit_write_failed"]
    assert rec.records[0][1]["lost"] == [{"seq": seq, "outcome": "gateway_stopped"}]


async def test_refunds_in_flight_are_written_before_the_gateway_exits_or_logged(tmp_path):
    rec = Recorder()
    store = SQLiteDeferredCounters(tmp_path, busy_timeout=5, log=rec)
    assert await store.reserve_async([_charge(amount=3)]) is None
    with locked(tmp_path / "counters.db") as other:
        store.release([_charge(amount=1)])  # locked: retried in the background
        release = asyncio.ensure_future(_release_after(other, 0.2))
        await asyncio.wait_for(store.drain(5, rec), 3)
        await release
    assert store.sync.value("k|grant|g1") == 2.0 and rec.records == []
    with locked(tmp_path / "counters.db"):
        store.release([_charge(amount=1)])
        await store.drain(0.2, rec)  # the lock outlasts the drain: lost, said, unit kept
    assert [e for e, _ in rec.records] == ["limit_refund_lost"] and rec.records[0][1]["refunds"] == 1
    assert store.sync.value("k|grant|g1") == 2.0


async def test_a_call_whose_client_left_during_its_pin_check_is_not_forwarded(tmp_path, start_gateway):
    """The last check before forwarding (proxy.py `call_tool`, hostile16 F3), which no store
    wait reaches first: a pinned server's pin check fetches the upstream's `tools/list`
    after the decision, and the upstream is slow to answer it. The client leaves meanwhile.
    The call is decided and its row written, then not forwarded: the row says
    `not_executed`, the log `client_gone_before_forwarding`, and its unit of `max 1` is
    given back, so the next call runs."""
    from mcpp.catalog import Catalog

    from .scripted import ScriptedUpstream, tool_def

    async with ScriptedUpstream() as up:
        up.tools = [tool_def("ok")]
        Catalog.from_tools(up.tools).write(tmp_path / "pinned.json")
        g = _gw_config(tmp_path, start_gateway, up.url, server='catalog = "pinned.json"', policy_text=(
            'permit (principal, action, resource);\n'
            'limit "once" (principal, action, resource) max 1 per hour scope grant;\n'))
        up.list_mode = "hang"  # (answered once `release` is set)
        listed = up.lists
        await _call_then_leave(g, "ok", {"n": 1}, rid=2, after=0.5)
        assert up.lists == listed + 1, "the pin check did not ask for the listing"
        await asyncio.sleep(0.3)  # (the gateway has seen the connection close)
        up.release.set()
        deadline = time.monotonic() + 10
        while not [r for r in g.log_records() if r.get("event") == "client_gone_before_forwarding"]:
            assert time.monotonic() < deadline, "the call was not settled"
            await asyncio.sleep(0.05)
        assert up.calls == [], "the call of a client that had left reached the upstream"
        rows = sqlite3.connect(g.state / "audit.db").execute("SELECT request_id, decision, outcome FROM audit").fetchall()
        assert rows == [("2", "allow", "not_executed")]
        gone = [r for r in g.log_records() if r.get("event") == "client_gone_before_forwarding"]
        assert len(gone) == 1 and gone[0]["audit_seq"] is not None
        async with httpx2.AsyncClient(timeout=30) as http:  # the unit was given back: `max 1` still has it
            assert result_text(await call_tool(http, g.url(), g.token, "ok", {"n": 2}, rid=3)) == "ran ok"
            r = await call_tool(http, g.url(), g.token, "ok", {"n": 3}, rid=4)
            assert r["result"]["isError"] and "[POLICY DENIED]" in result_text(r)
        assert up.calls == [("ok", {"n": 2})]
