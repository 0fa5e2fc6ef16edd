"""audit.db's WAL is checkpointed by a thread of its own (runtime/gateway/checkpoints.py),
never inside a call's commit; the WAL stays bounded whatever the thread does."""

from __future__ import annotations

import os
import sqlite3
import time

import pytest

from mcpp.runtime.gateway.audit import AuditLog, AuditRow
from mcpp.runtime.gateway.checkpoints import Checkpointer

PAGE = 4096


def _row(i: int) -> AuditRow:
    return AuditRow(ts=time.time(), request_id=str(i), trace_id=None, grant_id="g_1", grant_label="t", server="s",
                    tool="echo", decision="allow", rule="/tools/echo", message="x" * 200, arg_keys=["text"],
                    outcome="forwarded")


def _wal(log: AuditLog) -> int:
    try:
        return os.path.getsize(str(log.path) + "-wal")
    except FileNotFoundError:
        return 0


def _until(pred, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


def _started(log: AuditLog, **bounds) -> Checkpointer:
    """The gateway's writer set-up (`background_checkpoints`), with the test's bounds."""
    log.background_checkpoints(**bounds)
    assert log.checkpointer is not None
    return log.checkpointer


def _caught_up(cp: Checkpointer) -> bool:
    """Wait (bounded) until a finished checkpoint covers every commit so far."""
    return _until(lambda: cp.covered == cp.commits)


@pytest.fixture
def log(tmp_path):
    log = AuditLog(tmp_path, wait=False)
    yield log
    log.close()


FRAME = PAGE + 24  # a WAL frame: a page and its header
AUTO = 1000  # SQLite's automatic checkpoint, in WAL frames: the writer's own bound, kept


def test_paced_commits_never_reach_the_writers_own_checkpoint(log):
    # the gateway's pattern: commits with time between them, in which the thread checkpoints
    cp = _started(log, every=64, interval=0.02)
    for i in range(3000):
        log.write(_row(i))
        if i % 64 == 63:  # a pause the thread's checkpoint fits in (waited for: a loaded machine is slow)
            assert _caught_up(cp)
    assert _caught_up(cp)
    assert cp.checkpoints >= 40 and cp.failures == 0
    # 3000 rows are ~7000 WAL frames: the WAL never reached SQLite's automatic checkpoint,
    # so no commit carried one (the WAL file never shrinks: its size is its high-water mark)
    assert _wal(log) < AUTO * FRAME
    assert log.count() == 3000


@pytest.mark.parametrize("every, interval", [(10**9, 3600.0), (128, 0.5), (1, 0.0)])
def test_the_wal_is_bounded_whatever_the_thread_does(log, every, interval):
    # a thread that never runs; the gateway's; one that checkpoints after every commit. The
    # writer never pauses: the thread's PASSIVE checkpoints are overtaken and rarely
    # complete, and the writer's own (SQLite's automatic one) is skipped while the thread
    # holds the checkpoint lock, so the WAL can pass 1000 frames, but not by much (the thread
    # then yields to the writer: 1036-1870 frames after 20,000 such commits, every = 1 to 128,
    # on the development machine)
    _started(log, every=every, interval=interval)
    for i in range(5000):
        log.write(_row(i))
    assert _wal(log) < 3 * AUTO * FRAME  # unbounded, 5000 rows would be ~11,700 frames
    assert log.count() == 5000


@pytest.mark.parametrize("commit", ["write", "commit", "set_outcome", "purge_values"])
def test_every_kind_of_commit_is_counted(log, commit):
    cp = _started(log, every=10**9, interval=3600)
    seq = log.write(_row(0))
    before = cp.commits
    {"write": lambda: log.write(_row(1)),
     "commit": lambda: log.commit([_row(1), _row(2)], [(seq, "upstream_error", None)]),
     "set_outcome": lambda: log.set_outcome(seq, "not_executed"),
     "purge_values": lambda: log.purge_values(time.time())}[commit]()
    assert cp.commits == before + 1


def test_a_reader_in_a_long_transaction_blocks_neither_the_writer_nor_the_thread(log):
    cp = _started(log, every=32, interval=0.02)
    for i in range(100):
        log.write(_row(i))
    reader = sqlite3.connect(log.path, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT COUNT(*) FROM audit").fetchone()[0] == 100  # (a snapshot held open: `mcpp audit` exporting)
    try:
        t0 = time.monotonic()
        for i in range(300):
            log.write(_row(100 + i))
        assert time.monotonic() - t0 < 5
        assert _caught_up(cp)
        assert cp.failures == 0  # PASSIVE copies what it can and returns
    finally:
        reader.execute("COMMIT")
        reader.close()
    assert log.count() == 400


def test_a_replaced_file_is_followed(log):
    cp = _started(log, every=16, interval=0.02)
    for i in range(50):
        log.write(_row(i))
    assert _caught_up(cp)
    for suffix in ("", "-wal", "-shm"):
        try:
            os.unlink(str(log.path) + suffix)
        except FileNotFoundError:
            pass
    assert log.replaced()
    log.reopen()  # (as GroupCommit does before its next commit)
    done = cp.checkpoints
    for i in range(200):
        log.write(_row(i))
        if i % 16 == 15:  # a pause the thread's checkpoint fits in (waited for: a loaded machine is slow)
            assert _caught_up(cp)
    assert _until(lambda: cp.covered == cp.commits and cp.checkpoints > done)
    assert cp.failures == 0
    assert _wal(log) < 150 * FRAME  # the new file's WAL is the one checkpointed (unchecked: ~460 frames)
    assert log.count() == 200


@pytest.mark.parametrize("rounds", range(3))
def test_a_rotation_under_load_loses_nothing_and_mixes_nothing(tmp_path, rounds):
    """hostile23 F1: with the thread checkpointing its old connection after a move, the new
    file's pages (the WAL is named after the path) were copied into the renamed one: rows
    lost, the new file malformed. Rows before the move are in the moved file, rows after
    it in the new one, every one of them, both files intact."""
    log = AuditLog(tmp_path, wait=False)
    cp = _started(log, every=1, interval=0.001)  # a thread as busy as it gets
    for i in range(300):
        log.write(_row(i))
        if i == 150 + 20 * rounds:
            os.rename(log.path, tmp_path / "audit-1.db")
        if log.replaced():  # (what GroupCommit asks before each commit)
            log.reopen()
    moved = i_moved = 150 + 20 * rounds
    assert _caught_up(cp) and cp.failures == 0
    log.close()
    old = sqlite3.connect(tmp_path / "audit-1.db")
    new = sqlite3.connect(tmp_path / "audit.db")
    assert old.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert new.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert [int(r) for (r,) in old.execute("SELECT request_id FROM audit ORDER BY seq")] == list(range(moved + 1))
    assert [int(r) for (r,) in new.execute("SELECT request_id FROM audit ORDER BY seq")] == list(range(i_moved + 1, 300))


def test_close_stops_the_thread(tmp_path):
    log = AuditLog(tmp_path, wait=False)
    cp = _started(log)
    log.write(_row(0))
    log.close()
    assert not cp._thread.is_alive()


def test_a_failing_checkpoint_is_logged_and_tried_again(tmp_path):
    events = []

    class Log:
        def warning(self, event, **kw):
            events.append((event, kw))

    broken = tmp_path / "broken.db"
    broken.write_bytes(b"this is not a SQLite database, though the writer has it open" * 100)
    cp = Checkpointer(broken, every=1, interval=0.01, logger=Log())
    st = os.stat(broken)
    with cp.lock:
        cp.follow((st.st_dev, st.st_ino))
    try:
        cp.committed()
        assert _until(lambda: cp.failures >= 1)
        assert events and events[0][0] == "wal_checkpoint_failed" and events[0][1]["file"] == "broken.db"
        assert cp.covered == 0  # nothing was covered: the writer's bound still counts these commits
    finally:
        cp.close()


def test_a_turn_that_finds_the_file_moved_is_counted_as_skipped_not_as_a_checkpoint(log):
    """While audit.db is moved and the writer has not reopened it yet, the thread runs no
    checkpoint (the path names another file): its counters say so."""
    cp = _started(log, every=1, interval=0.01)
    log.write(_row(0))
    assert _caught_up(cp)
    ran = cp.checkpoints
    os.rename(log.path, log.path.with_name("audit-moved.db"))
    log.write(_row(1))  # (into the moved file: the writer has not asked `replaced()`)
    assert _until(lambda: cp.skipped >= 1 and cp.covered == cp.commits)
    assert cp.checkpoints == ran and cp.failures == 0
