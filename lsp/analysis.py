"""Runs the analyzer for open documents without ever blocking the editor.

Each edit restarts a debounce timer; when the text has been quiet for
`analyzer.debounceMs`, the version is sent to a worker process (`mcpp.lsp.worker`).
An edit to a document whose analysis is running ends that worker — its answer would
be for text that no longer exists — and a fresh one is started right away, so the next
analysis does not pay for the start-up. One worker, one job at a time, newest text per
document; a job that overruns its deadline is ended the same way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger(__name__)


@dataclass
class Job:
    uri: str
    version: int | None
    text: str
    filename: str
    timeout_ms: int
    deadline_s: float
    cancelled: bool = False
    catalog: str | None = None  # the catalog file the analysis is typed by (the document's; None: untyped)


class AnalyzerService:
    def __init__(self, on_result: Callable[[Job, dict], None], notify: Callable[[str], None] | None = None):
        self.on_result = on_result
        self.notify = notify or (lambda _msg: None)
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._queue: dict[str, Job] = {}
        self._running: Job | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task | None = None
        self._spawning: asyncio.Future | None = None
        self._seq = 0
        self.started = 0  # worker processes started (the tests check cancellation with it)
        self.completed = 0
        self.cancelled = 0
        self._closed = False

    @property
    def running(self) -> Job | None:
        return self._running

    # -- scheduling ------------------------------------------------------------------
    def schedule(self, job: Job, debounce_ms: int) -> None:
        """Analyse `job` once its document has been quiet for `debounce_ms`."""
        self.cancel(job.uri)
        loop = asyncio.get_running_loop()
        self._timers[job.uri] = loop.call_later(debounce_ms / 1000, self._enqueue, job)

    def cancel(self, uri: str) -> None:
        """Forget any pending or running analysis of `uri`."""
        timer = self._timers.pop(uri, None)
        if timer is not None:
            timer.cancel()
        self._queue.pop(uri, None)
        if self._running is not None and self._running.uri == uri and not self._running.cancelled:
            self._running.cancelled = True
            self.cancelled += 1
            self._kill()

    def _enqueue(self, job: Job) -> None:
        self._timers.pop(job.uri, None)
        if self._closed:
            return
        self._queue[job.uri] = job
        self._kick()

    def _kick(self) -> None:
        if self._running is not None or not self._queue or self._closed:
            return
        uri = next(iter(self._queue))
        job = self._queue.pop(uri)
        self._running = job
        self._task = asyncio.ensure_future(self._run(job))

    # -- the worker ------------------------------------------------------------------
    async def _worker(self) -> asyncio.subprocess.Process:
        """The live worker, starting one if needed (one start at a time)."""
        if self._proc is not None and self._proc.returncode is None:
            return self._proc
        if self._spawning is None:
            self._spawning = asyncio.ensure_future(self._spawn())
        return await asyncio.shield(self._spawning)

    async def _spawn(self) -> asyncio.subprocess.Process:
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "mcpp.lsp.worker",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=None,
                limit=1 << 26,
            )
            self.started += 1
            if self._closed:
                proc.kill()
            self._proc = proc
            return proc
        finally:
            self._spawning = None

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            try:
                proc.kill()
            except ProcessLookupError:
                pass

    def warm_up(self) -> None:
        """Start the worker ahead of the first analysis (it imports Z3 while the user reads)."""
        if not self._closed:
            asyncio.ensure_future(self._worker())

    async def _run(self, job: Job) -> None:
        self._seq += 1
        rid = self._seq
        try:
            proc = await self._worker()
            if job.cancelled:
                return
            request = {"id": rid, "source": job.text, "filename": job.filename, "timeout_ms": job.timeout_ms}
            if job.catalog is not None:
                request["catalog"] = job.catalog
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write((json.dumps(request, ensure_ascii=False) + "\n").encode("utf-8"))
            await proc.stdin.drain()
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=job.deadline_s)
            if not line:  # ended: cancelled by an edit, or crashed
                if not job.cancelled and self._proc is proc:
                    self.notify(f"the analyzer stopped unexpectedly (exit code {await proc.wait()})")
                return
            reply = json.loads(line)
            if reply.get("id") != rid or job.cancelled:
                return
            if self._running is job:
                self.completed += 1
                self.on_result(job, reply)
        except asyncio.TimeoutError:
            self.notify(f"analysis of {job.filename} took longer than {job.deadline_s:.0f} s and was stopped")
            self._kill()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the worker was ended under us
        except Exception as e:  # never let the analyzer take the server down
            log.exception("analysis failed")
            self.notify(f"the analyzer failed: {type(e).__name__}: {e}")
            self._kill()
        finally:
            if self._running is job:
                self._running = None
            if self._proc is None and not self._closed:
                self.warm_up()  # a fresh worker for the next job
            self._kick()

    async def close(self) -> None:
        self._closed = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._queue.clear()
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            try:
                assert proc.stdin is not None  # started with a pipe
                proc.stdin.close()
                await asyncio.wait_for(proc.wait(), 2)
            except (OSError, asyncio.TimeoutError) as e:  # a worker that will not stop is killed
                log.debug("analyzer worker did not stop: %s", e)
                proc.kill()
