"""WAL checkpoints for a SQLite file the event loop writes, done ahead in a thread of their own.

SQLite in WAL mode appends every commit to `<db>-wal` and copies the WAL back into the
database file (a checkpoint) inside whichever commit takes the WAL past 1000 pages. For
`audit.db` that commit is a call's audit row, written on the event loop: every ~430 calls
one of them carried a checkpoint, with an fdatasync of the database file (2.4 ms on
average, 7 ms at worst on the development machine, `perf trace -s`), and every other
request the gateway was serving waited behind it.

A daemon thread with a connection of its own runs `PRAGMA wal_checkpoint(PASSIVE)` after
every `every` commits, or `interval` seconds after the first commit it has not yet
covered. PASSIVE never waits for the writer or for readers (`mcpp audit`); the copy and
its fdatasync happen outside the GIL. Once a checkpoint has copied the whole WAL, the
writer's next commit starts the WAL from its beginning, so it rarely reaches 1000 pages.

The writer keeps SQLite's own automatic checkpoint as the bound: if the thread cannot
finish a checkpoint (commits arriving all the time) or stops, the WAL still stops near
1000 pages, and that commit copies only what the thread has not. (Near: the writer's
automatic checkpoint is skipped while the thread holds the checkpoint lock, and tried again
at the next commit. So once the thread sees the WAL at that size, it leaves the next
`YIELD` seconds to the writer, whose checkpoint then completes and lets the WAL start over:
a writer that never paused for 20,000 commits took the WAL to 1036-1870 pages.) (A writer
that never checkpointed, with the thread alone keeping up, let a busy WAL grow to 14 MB
in a test: a PASSIVE checkpoint that commits overtake never completes, and an incomplete
one does not let the WAL start over.) A file moved or deleted under the gateway is handled by the writer, never by the thread
alone: SQLite names a database's WAL and shared-memory files after its path, so once
`audit.db` names another file they belong to whichever connection opens that path next.
The thread only ever checkpoints the file the writer has open (`follow`), and the writer's
`AuditLog.reopen` takes the thread's lock, closes the thread's connection, copies and ends
the old WAL, and only then opens the new file. (A thread that checkpointed its old
connection after the move copied the new file's pages into the renamed one, and rows were
lost: hostile review 23, F1.)
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

from .deferred import is_locked


AUTO_FRAMES = 1000  # SQLite's automatic checkpoint (`wal_autocheckpoint`), which the writer keeps
YIELD = 0.05  # seconds the thread leaves to the writer's own checkpoint once the WAL is that long


class Checkpointer:
    """Background `wal_checkpoint(PASSIVE)` for one SQLite file (see the module's docstring).

    `committed()` is called by the writer, on its thread, after each commit. The counters
    are plain ints, each written by one thread only."""

    def __init__(self, path: str | Path, every: int = 128, interval: float = 0.5, logger=None):
        self.path = str(path)
        self.every, self.interval = every, interval
        self.logger = logger
        self.commits = 0  # written by the writer's thread only
        # commits a turn of the thread has dealt with (checkpointed, or skipped: the writer's
        # own bound then holds): written by the checkpoint thread
        self.covered = 0
        self.checkpoints = 0  # checkpoints run (for tests)
        self.skipped = 0  # turns that ran none: the file was locked, moved or gone
        self.failures = 0
        self._wake = threading.Event()
        self._stop = False
        self._db: sqlite3.Connection | None = None
        self._file: tuple[int, int] | None = None  # the file the thread's connection is to
        # the file the writer has open (`follow`): the only one the thread may checkpoint
        self.writer_file: tuple[int, int] | None = None
        # held by the thread for each checkpoint, and by the writer while it changes files
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"wal-checkpoint:{Path(self.path).name}", daemon=True)
        self._thread.start()

    def committed(self, n: int = 1) -> None:
        self.commits += n
        behind = self.commits - self.covered
        if behind % self.every < n or behind == n:  # every `every`, and the first after a checkpoint (its timer)
            self._wake.set()

    def follow(self, file: tuple[int, int]) -> None:
        """The writer has `file` (st_dev, st_ino) open now; the caller holds `lock`. The
        thread's connection to any other file is closed here, before that file's path-named
        WAL can be reused by the writer's."""
        if self._file != file:
            self._close_db()
        self.writer_file = file

    def close(self, timeout: float = 5.0) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join(timeout)

    # ---- the thread ----------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop:
            self._wake.wait()
            if self._stop:
                break
            # a few more commits join this checkpoint: after the first one, wait `interval`
            # unless `every` commits arrive first
            if self.commits - self.covered < self.every:
                self._wake.clear()
                self._wake.wait(self.interval)
                if self._stop:
                    break
            self._wake.clear()
            at = self.commits
            if at == self.covered:
                continue
            try:
                frames = self._checkpoint()
            except sqlite3.OperationalError as e:
                if not is_locked(e):
                    self._failed(e)
                    continue
                frames = None  # (busy for a moment, e.g. while the writer opens a new file: the next turn)
            except Exception as e:  # tried again with the next commits (and SQLite's own bound holds)
                self._failed(e)
                continue
            # (a skipped turn covers its commits too: retried at once, it would spin until the
            # writer's next commit reopens the file)
            self.covered = max(self.covered, at)
            if frames is None:
                self.skipped += 1
            else:
                self.checkpoints += 1
            if frames is not None and frames >= AUTO_FRAMES:
                # commits overtake this thread's checkpoints: the writer's own must run, and it
                # is skipped while this thread holds the checkpoint lock
                time.sleep(YIELD)
            if self.commits != self.covered:  # commits made while it ran: their own turn, on the same timer
                self._wake.set()
        with self.lock:
            self._close_db()

    def _failed(self, e: Exception) -> None:
        self.failures += 1
        with self.lock:
            self._close_db()
        if self.logger is not None:
            self.logger.warning("wal_checkpoint_failed", file=Path(self.path).name, error=f"{type(e).__name__}: {e}")

    def _checkpoint(self) -> int | None:
        """One PASSIVE checkpoint of the file the writer has open; the WAL's length in
        frames when it ran (None: skipped, the path names another file until the writer
        follows it)."""
        with self.lock:
            try:
                st = os.stat(self.path)
            except FileNotFoundError:  # moved away or deleted: the writer's reopen comes first
                return None
            here = (st.st_dev, st.st_ino)
            if here != self.writer_file:
                return None  # moved or replaced: the writer's reopen comes first (see the module's docstring)
            if self._db is None:
                db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=0)
                db.execute("PRAGMA busy_timeout=0")
                self._db, self._file = db, here
            _busy, frames, _copied = self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            return frames

    def _close_db(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None
