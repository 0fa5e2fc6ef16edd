"""A tool's validator is compiled on its first call, off the event loop and once however
many calls ask meanwhile (proxy.py `_memo_off_loop`): compiling a large schema took 22.6 s
of the event loop, and every other request waited (hostile review 28, F4)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from mcpp.runtime.gateway.proxy import _memo_off_loop


async def test_made_in_a_worker_thread_once_for_every_caller_waiting():
    made: list[int] = []
    gate = threading.Event()

    def make():
        made.append(threading.get_ident())
        gate.wait(5)
        return "validator"

    memo: dict = {}
    waiters = [asyncio.create_task(_memo_off_loop(memo, "t", make)) for _ in range(5)]
    await asyncio.sleep(0.05)  # (all five wait on the one being made)
    gate.set()
    assert await asyncio.gather(*waiters) == ["validator"] * 5
    assert len(made) == 1 and made[0] != threading.get_ident()
    assert memo == {"t": "validator"}  # (the value, not the future, from then on)
    assert await _memo_off_loop(memo, "t", lambda: pytest.fail("made again")) == "validator"


async def test_a_failure_is_not_remembered_and_a_leaving_caller_does_not_cancel_the_others():
    memo: dict = {}

    def broken():
        raise RuntimeError("compile failed")

    with pytest.raises(RuntimeError):
        await _memo_off_loop(memo, "t", broken)
    assert memo == {}
    gate = threading.Event()

    def slow():
        gate.wait(5)
        return "v"

    leaving = asyncio.create_task(_memo_off_loop(memo, "t", slow))
    staying = asyncio.create_task(_memo_off_loop(memo, "t", slow))
    await asyncio.sleep(0.05)
    leaving.cancel()
    gate.set()
    assert await staying == "v" and memo == {"t": "v"}


async def test_large_and_small_schemas_compile_apart_from_each_other_and_the_default_threads():
    """hostile review 30, G2: eight first calls to large-schema tools took asyncio's default
    threads, and a small tool's first call waited 15.3 s behind them."""
    from mcpp.runtime.gateway.proxy import LARGE_SCHEMA_BYTES

    gate = threading.Event()
    names: dict[str, str] = {}

    def slow(key: str):
        names[key] = threading.current_thread().name
        gate.wait(5)
        return key

    def quick(key: str):
        names[key] = threading.current_thread().name
        return key

    memo: dict = {}
    large = [asyncio.create_task(_memo_off_loop(memo, f"big{i}", lambda i=i: slow(f"big{i}"), LARGE_SCHEMA_BYTES + 1))
             for i in range(4)]
    await asyncio.sleep(0.05)
    assert await asyncio.wait_for(_memo_off_loop(memo, "small", lambda: quick("small"), 100), 2) == "small"
    assert await asyncio.wait_for(asyncio.to_thread(lambda: "default threads free"), 2) == "default threads free"
    gate.set()
    assert sorted(await asyncio.gather(*large)) == [f"big{i}" for i in range(4)]
    assert names["small"].startswith("mcpp-compile_") and names["big0"].startswith("mcpp-compile-large")


async def test_a_call_waits_for_a_compile_at_most_its_deadline_and_while_its_client_is_there():
    """hostile review 31, H31-7: a call waiting for its tool's validator had no deadline and
    did not notice its client leaving; two such calls kept their caller's slots for the 22 s
    the compile took. It waits at most `wait` seconds (StillCompiling: refused, fail closed)
    and ends as soon as its client is gone (ClientGone); the compile goes on for the calls
    after, and is remembered."""
    from mcpp.runtime.gateway.deferred import CALL_GONE, ClientGone
    from mcpp.runtime.gateway.proxy import StillCompiling

    gate = threading.Event()

    def slow():
        gate.wait(10)
        return "v"

    memo: dict = {}
    with pytest.raises(StillCompiling, match="still being compiled after 0.3s"):
        await _memo_off_loop(memo, "t", slow, wait=0.3)
    gone = {"now": False}

    async def a_call_whose_client_leaves():
        CALL_GONE.set(lambda: gone["now"])
        return await _memo_off_loop(memo, "t", slow, wait=30)

    waiting = asyncio.create_task(a_call_whose_client_leaves())
    await asyncio.sleep(0.1)
    gone["now"] = True
    with pytest.raises(ClientGone):
        await asyncio.wait_for(waiting, 2)  # (within a poll, not at the compile's end)
    gate.set()
    assert await _memo_off_loop(memo, "t", lambda: pytest.fail("made again"), wait=5) == "v"
