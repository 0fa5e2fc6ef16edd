"""How the gateway stops: every call open at SIGTERM/SIGINT is answered and audited, and
the process ends by the signal only once that is done.

uvicorn's own stop does not give that (hostile review 19): after the graceful-shutdown
timeout it cancels the open requests and at once runs the application's shutdown, and on
leaving `serve()` it raises the captured signal again — SIGTERM with its default action,
which kills the process before a cancelled request has unwound (with a stdio upstream,
whose shutdown awaits nothing, every time: the client got no answer and the audit row
stayed `forwarded`). A second signal sets uvicorn's `force_exit`, which skips both the
cancelling and the application's shutdown (stdio children left running, outcomes lost,
a traceback in the log).

Here a first signal starts the stop: listeners close, listening streams end
(`GatewayApp.end_listening`), open requests get `shutdown_timeout` seconds; a second
signal ends that wait at once. Then what is still open is cancelled and given
`UNWIND_SECONDS` to answer its client and settle its audit outcome (proxy.py), the
answers already written but not yet taken by their clients are given `FLUSH_SECONDS`
to reach them (`_flush_answers`), the application's shutdown runs
(stdio children killed, queued store writes drained: `Runtime.stop`), and only then is the
first signal raised again, so a service manager sees the exit status it expects.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading

import uvicorn

UNWIND_SECONDS = 5.0  # for cancelled requests to answer and audit, after the wait
# for clients answered while still sending their request (a 401 or 421 before the body, an
# upload cut short by the 503) to finish sending, so that the close does not reset the
# answer away. Not longer: a client answered before the stop that trickles the rest of a
# large body held the stop for `header_timeout` (hostile review 22, F4: 9.5 s, nothing in flight)
DRAIN_GRACE_SECONDS = 1.0
# for answers handed to their connections but not yet taken by clients that read slowly to
# reach them: the process's exit would cut them (hostile review 39, H39-3: an 8 MiB answer
# arrived as 2.8 MB). Not a stall rule: what a client took is seen only as TCP reports it,
# in window updates that come in steps of 64 KiB and more, and rarely for a client whose
# large receive buffer is full, so a client reading 16 KiB/s looked stalled for 5 s and
# more (hostile review 40, H40-1); a client that never reads holds the stop this long
FLUSH_SECONDS = 10.0
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class GatewayServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, rt, app) -> None:
        super().__init__(config)
        self.rt, self.app = rt, app
        self.hurry = False  # a second signal: stop waiting for open requests
        self._first_signal: int | None = None

    def handle_exit(self, sig: int, frame) -> None:  # noqa: ARG002 (a signal handler's signature)
        if self._first_signal is None:
            self._first_signal = sig
        if self.should_exit:
            self.hurry = True
        self.should_exit = True

    @contextlib.contextmanager
    def capture_signals(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in _SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)
        if self._first_signal is not None:
            signal.raise_signal(self._first_signal)  # everything is answered and written: end by it

    async def shutdown(self, sockets=None) -> None:
        rt, state = self.rt, self.server_state
        rt.stopping = True
        timeout = rt.config.shutdown_timeout
        rt.log.info("stopping", in_flight=len(state.tasks), shutdown_timeout=timeout,
                    listening_streams_ended=self.app.end_listening())
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(state.connections):
            connection.shutdown()  # idle keep-alive connections close; busy ones after their answer
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # (a connection only reading the rest of an answered request is not waited for here)
        while (state.tasks or _live(state.connections)) and not self.hurry and loop.time() < deadline:
            await asyncio.sleep(0.05)
        open_tasks = list(state.tasks)
        if open_tasks:
            rt.log.warning("shutdown_timeout_exceeded" if not self.hurry else "stopping_at_second_signal",
                           cancelled=len(open_tasks), shutdown_timeout=timeout)
            for task in open_tasks:
                task.cancel()
            # each answers its client ("the gateway stopped …") and settles its audit outcome
            _, left = await asyncio.wait(open_tasks, timeout=UNWIND_SECONDS)
            if left:
                rt.log.error("requests_not_unwound", count=len(left))
        grace = loop.time() + DRAIN_GRACE_SECONDS
        while any(_draining(c) for c in state.connections) and not self.hurry and loop.time() < grace:
            await asyncio.sleep(0.05)
        await self._flush_answers(loop)
        await self.lifespan.shutdown()

    async def _flush_answers(self, loop) -> None:
        """Wait while answers already written wait to be taken by their clients: bytes in a
        connection's transport buffer are lost when the process exits, and those in the
        kernel's send queue when the close finds unread request bytes and resets. Bounded:
        FLUSH_SECONDS, or a second signal; what is cut is logged (`answers_cut_at_stop`)."""
        deadline = loop.time() + FLUSH_SECONDS
        while True:
            left = [c for c in list(self.server_state.connections) if _unsent(c)]
            if not left or self.hurry or loop.time() >= deadline:
                break
            await asyncio.sleep(0.05)
        if left:
            # `bytes`: what the process's exit takes with it (the transports' buffers); what the
            # kernel holds is still sent after it, unless the client's unread bytes reset the close
            lost = sum(_buffered(c) for c in left)
            self.rt.log.warning("answers_cut_at_stop", connections=len(left), bytes=lost,
                                in_kernel=sum(_unsent(c) for c in left) - lost,
                                why="second signal" if self.hurry else "flush time over")


async def through_stop(rt, write, *args) -> None:
    """`await write(*args)` — a response's write — to its end, even through the gateway
    stop's cancel. The stop cancels the requests still open at `shutdown_timeout`; one whose
    answer was settled and waits to be written to a client slow to read lost that answer
    for the stop's own text, or was cut (the audit row and the limit count said otherwise:
    hostile reviews 34, 37 and 38). uvicorn waits for the client before it writes, so a
    write cancelled there wrote nothing, and is made again; the stop waits for it
    (`UNWIND_SECONDS`). The stop cancels once; any other cancel (the client gone) goes on.
    Every write of a settled answer goes through this: the proxy's relayed answers, its own
    errors and denials, a stream's last write, and the approval step's answers and streams
    (hostile review 39, H39-1/2)."""
    try:
        await write(*args)
    except asyncio.CancelledError:
        if not rt.stopping:
            raise
        await write(*args)


def _unsent(connection) -> int:
    """Answer bytes written to a connection its client has not yet received (0 when that
    cannot be told: a connection of another protocol, or one already gone)."""
    corked = getattr(connection, "_corked", None)
    if corked is None:
        return 0
    try:
        return corked._unsent()
    except Exception:
        return 0


def _buffered(connection) -> int:
    """Answer bytes still in a connection's transport buffer (the process's own memory)."""
    try:
        return connection._corked.get_write_buffer_size()
    except Exception:
        return 0


def _draining(connection) -> bool:
    return getattr(connection, "draining", False) is True


def _live(connections) -> bool:
    """Whether any connection still has a request to answer (not one only draining)."""
    return any(not _draining(c) for c in connections)
