"""The shared stores on their own: all-or-nothing reserves under threads, release, the SSE
parser on split input, session binding."""

from __future__ import annotations

import threading
import time

import pytest

from mcpp.runtime.gateway.counters import RedisCounters, SQLiteCounters
from mcpp.runtime.gateway.grants import redis_client
from mcpp.runtime.gateway.jsonrpc import SSEParser
from mcpp.runtime.gateway.proxy import SessionBinder
from mcpp.runtime.limits import Charge



@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_reserve_is_all_or_nothing_and_exact_under_threads(kind, tmp_path, request):
    # only the Redis case asks for the redis-server peer: SQLite is tested without Redis
    if kind == "sqlite":
        store = SQLiteCounters(tmp_path)
    else:
        store = RedisCounters(redis_client(request.getfixturevalue("redis_url")))
    exp = int(time.time()) + 3600
    tag = f"{kind}-{time.time_ns()}"
    a = Charge(f"{tag}|a", 1, 50, exp)
    b = Charge(f"{tag}|b", 2, 7, exp)  # the tighter budget: 3 calls fit (6 ≤ 7), a 4th would not
    wins = []

    def worker():
        for _ in range(10):
            if store.reserve([a, b]) is None:
                wins.append(1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 3
    assert store.value(a.key) == 3 and store.value(b.key) == 6  # failed reserves applied nothing
    assert store.reserve([a, b]) == 1
    store.release([a, b])
    assert store.value(a.key) == 2 and store.value(b.key) == 4
    assert store.reserve([Charge(f"{tag}|c", 0.5, 1, exp)]) is None  # fractional increments
    assert store.reserve([Charge(f"{tag}|c", 0.75, 1, exp)]) == 0


def test_sse_parser_handles_any_split_and_line_ending():
    stream = b"id: 1\r\nevent: message\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n: comment\n\ndata: x\rdata: y\r\r"
    for cut in range(1, len(stream)):
        p = SSEParser()
        events = p.feed(stream[:cut]) + p.feed(stream[cut:]) + p.feed(b"\n")
        assert [e["data"] for e in events] == ['{"a":\n1}', "x\ny"], cut
        assert events[0]["id"] == "1" and events[0]["event"] == "message"


def test_session_ids_are_bound_to_grant_and_server():
    s = SessionBinder(b"k" * 32)
    outer = s.wrap("abc.def", "g_1", "srv")
    assert s.unwrap(outer, "g_1", "srv") == "abc.def"
    assert s.unwrap(outer, "g_2", "srv") is None and s.unwrap(outer, "g_1", "other") is None
    assert s.unwrap("abc.def", "g_1", "srv") is None and s.unwrap(outer + "0", "g_1", "srv") is None
    assert all(0x21 <= ord(c) <= 0x7E for c in outer)
