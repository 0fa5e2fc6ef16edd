"""The adversarial run of issue 11, one test per finding, each asserting the safe outcome.

Loopback only, against real peers (the SDK fixture upstream, `mcpp serve` subprocesses,
redis-server). Every loop is bounded in count and in time; no assertion is about wall-clock
speed (that is bench/'s job): where the finding was "it blocks", the test asserts an order
of events instead (what must finish while something else is still stuck).
"""

from __future__ import annotations

import asyncio
import json

import httpx2
import pytest

from .peers import MODERN_META, POLICY, call_tool, configured_gateway, create_grant, free_port, result_text, write

HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


async def raw_request(port: int, data: bytes, timeout: float = 10.0) -> tuple[int | None, bytes]:
    """Send bytes as they are on a fresh connection; the status code (None if the server
    closed without answering) and whatever came back before the connection closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    out = b""  # the server may close while the head is still being written (drain raises)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(timeout):
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                out += chunk
                if b"\r\n\r\n" in out and b"content-length: " in out.lower():
                    head, _, body = out.partition(b"\r\n\r\n")
                    n = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                    if len(body) >= n:
                        break
    except (ConnectionError, TimeoutError):
        pass
    finally:
        writer.close()
    if not out.startswith(b"HTTP/1.1 "):
        return None, out
    return int(out[9:12]), out


def _gw(tmp_path, start_gateway, upstream_url, *extra, policy_text=POLICY):
    """A quick-start gateway with a grant (`g.token`)."""
    state = tmp_path / "state"
    grant = create_grant(state, "adversary")
    policy = write(tmp_path / "policy.mcpp", policy_text)
    g = start_gateway("--policy", str(policy), "--upstream", upstream_url, *extra, state=state)
    g.token = grant["token"]
    return g


def _gw_config(tmp_path, start_gateway, upstream_url, gateway: str = "", server: str = "", policy_text=POLICY, name="gateway"):
    """A gateway from a config file (peers.configured_gateway) in front of `upstream_url`."""
    return configured_gateway(tmp_path, start_gateway, f'url = "{upstream_url}"', policy_text, gateway=gateway,
                              server=server, name=name, label="adversary")


def rss_kb(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# ---- finding 7: two Authorization headers -------------------------------------------------------


async def test_two_authorization_headers_are_refused(tmp_path, upstream, start_gateway):
    """Finding 7: with two `Authorization` headers the last one won. Now neither does: 400,
    whichever order the good and the bad token come in, and nothing reaches the upstream."""
    g = _gw(tmp_path, start_gateway, upstream.url)
    before = len(upstream.ran())
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "dup"}}})
    for first, second in ((g.token, "mcpp.g_00.bad"), ("mcpp.g_00.bad", g.token), (g.token, g.token)):
        req = (f"POST /mcp/default/ HTTP/1.1\r\nHost: 127.0.0.1:{g.port}\r\nContent-Type: application/json\r\n"
               f"Accept: application/json, text/event-stream\r\nAuthorization: Bearer {first}\r\n"
               f"Authorization: Bearer {second}\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode()
        status, out = await raw_request(g.port, req)
        assert status == 400, out[:300]
        assert b"more than one Authorization header" in out
    async with httpx2.AsyncClient(timeout=10) as http:  # one header is still fine
        assert result_text(await call_tool(http, g.url(), g.token, "echo", {"text": "dup"})) == "dup"
    assert [x["args"] for x in upstream.ran()[before:]] == [{"text": "dup"}]


# ---- finding 2: unbounded headers, slow heads ----------------------------------------------------


async def test_headers_are_bounded_and_slow_heads_are_cut(tmp_path, upstream, start_gateway):
    """Finding 2: 100 unique 1 MiB Host headers took RSS from 138 to 242 MB (and it stayed),
    a 16 MiB header was read without a token, and half-sent heads held connections for 40 s
    and more. Now: heads over `max_header_bytes` or `max_headers` are 431 (read no further
    than the limit and one socket read), heads and bodies that do not arrive in time are cut
    (408 / closed), and the Host/Origin cache holds only short values.

    Bound stated: after 100 refused 1 MiB heads, 200 unique long-but-legal Host and Origin
    values and 60 slow connections, the gateway's RSS has grown by less than 16 MiB."""
    g = _gw_config(tmp_path, start_gateway, upstream.url,
                   gateway="header_timeout = 1.0\nbody_timeout = 1.0\nidle_timeout = 1.0\nmax_header_bytes = 16384")
    pid = g.proc.p.pid
    # warm the allocator and every code path once before the baseline
    async with httpx2.AsyncClient(timeout=10) as http:
        assert result_text(await call_tool(http, g.url(), g.token, "echo", {"text": "warm"})) == "warm"
    start = rss_kb(pid)

    def head(extra: str) -> bytes:
        return (f"POST /mcp/default/ HTTP/1.1\r\n{extra}Content-Type: application/json\r\n"
                f"Authorization: Bearer {g.token}\r\nContent-Length: 2\r\n\r\n{{}}").encode()

    # 100 requests, each with a unique 1 MiB Host header: 431, never a 421 after reading it all
    for i in range(100):
        status, out = await raw_request(g.port, head(f"Host: {i}{'h' * (1 << 20)}\r\n"))
        assert status in (431, None), out[:200]  # None: closed while we were still sending
    status, out = await raw_request(g.port, head(f"X-Big: {'y' * 20000}\r\n"))
    assert status == 431 and b"too large" in out
    many = "".join(f"X-H{i}: v\r\n" for i in range(120))
    status, out = await raw_request(g.port, head(many))
    assert status == 431 and b"more than 100 header fields" in out
    # ...and as soon as they are parsed, while the head is still open (no blank line yet)
    reader, writer = await asyncio.open_connection("127.0.0.1", g.port)
    try:
        writer.write(b"POST /mcp/default/ HTTP/1.1\r\n" + many.encode())
        out = await asyncio.wait_for(reader.read(4096), 10)
    finally:
        writer.close()
    assert out.startswith(b"HTTP/1.1 431") and b"more than 100 header fields" in out, out[:80]
    # a 16 MiB header is refused while it is still arriving: the gateway closes the connection
    reader, writer = await asyncio.open_connection("127.0.0.1", g.port)
    sent, refused = 0, False
    try:
        writer.write(b"POST /mcp/default/ HTTP/1.1\r\nX-Huge: ")
        for _ in range(256):  # 256 x 64 KiB = 16 MiB, bounded
            writer.write(b"z" * 65536)
            await asyncio.wait_for(writer.drain(), 10)
            sent += 65536
    except (ConnectionError, TimeoutError):
        refused = True
    finally:
        writer.close()
    assert refused and sent < 8 * (1 << 20), sent
    # 200 unique Host/Origin values of legal-looking length: refused (421/403) and not kept
    async with httpx2.AsyncClient(timeout=10) as http:
        for i in range(100):
            r = await http.post(g.url(), headers={**HEADERS, "Host": f"{i}.{'a' * 290}.example:1"}, content=b"{}")
            assert r.status_code == 421
            r = await http.post(g.url(), headers={**HEADERS, "Origin": f"http://{i}.{'o' * 280}.example"}, content=b"{}")
            assert r.status_code == 403
    # slow heads: 30 connections that send half a head, 30 that send nothing, 1 slow body
    conns = []
    for i in range(60):
        reader, writer = await asyncio.open_connection("127.0.0.1", g.port)
        if i % 2 == 0:
            writer.write(b"POST /mcp/default/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        conns.append((reader, writer))
    reader, writer = await asyncio.open_connection("127.0.0.1", g.port)
    writer.write(head(f"Host: 127.0.0.1:{g.port}\r\n").replace(b"Content-Length: 2", b"Content-Length: 1000")[:-2])
    conns.append((reader, writer))

    async def closed_by_server(reader) -> bytes:
        data = b""
        async with asyncio.timeout(20):  # header_timeout is 1 s; 20 s is only a bound for a broken build
            while chunk := await reader.read(4096):
                data += chunk
        return data

    outs = await asyncio.gather(*[closed_by_server(r) for r, _ in conns])
    for _, w in conns:
        w.close()
    assert all(o == b"" or o.startswith(b"HTTP/1.1 408") for o in outs[:60]), [o[:40] for o in outs[:60]]
    assert outs[60].startswith(b"HTTP/1.1 408") and b"request body not received" in outs[60]
    # still serving, and memory did not follow the attack
    async with httpx2.AsyncClient(timeout=10) as http:
        assert result_text(await call_tool(http, g.url(), g.token, "echo", {"text": "after"})) == "after"
    grown = rss_kb(pid) - start
    assert grown < 16 * 1024, f"RSS grew by {grown} KiB"


async def test_trailers_bodies_after_an_answer_and_pipelined_refusals_are_bounded(tmp_path, upstream, start_gateway):
    """Hostile review of 2026-12-02: a chunked request's trailer section is parsed by the
    header callback after the head is complete, so it escaped every head limit (100 MB of
    trailer lines from a client without a token took RSS from 100 to 506 MB), and a body or
    trailers trickled after the gateway had answered (a 401 before the body) kept the
    connection open indefinitely. A refused head pipelined behind valid requests was
    answered first, so a client read the 431 as the first request's answer.

    Now: trailer fields count against `max_headers` and everything a request sends against
    the head, body and framing bound (431/413, connection closed; RSS grows < 16 MiB); a
    request answered before it was fully read loses its connection at once; a refusal
    behind requests still in flight closes the connection without an answer."""
    g = _gw_config(tmp_path, start_gateway, upstream.url, gateway="header_timeout = 1.0\nbody_timeout = 1.0")
    pid = g.proc.p.pid
    start = rss_kb(pid)
    head = (f"POST /mcp/default/ HTTP/1.1\r\nHost: 127.0.0.1:{g.port}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n").encode()  # no token: answered 401
    # a trailer flood: the connection is cut long before 32 MB have gone
    reader, writer = await asyncio.open_connection("127.0.0.1", g.port)
    sent, cut = 0, False
    try:
        writer.write(head)
        line = b"X-T: " + b"t" * 40 + b"\r\n"
        for _ in range(512):  # 512 x 64 KiB = 32 MiB, bounded
            writer.write(line * (65536 // len(line)))
            await asyncio.wait_for(writer.drain(), 10)
            sent += 65536
    except (ConnectionError, TimeoutError):
        cut = True
    finally:
        writer.close()
    assert cut and sent < 16 * (1 << 20), sent
    # a trailer every 0.3 s after the 401: the gateway closes the connection instead of waiting
    reader, writer = await asyncio.open_connection("127.0.0.1", g.port)
    got, closed = b"", False
    writer.write(head)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 8  # header_timeout is 1 s: 8 s only bounds a broken build
    try:
        while loop.time() < deadline and not closed:
            writer.write(b"X-Slow: 1\r\n")
            await writer.drain()
            try:
                chunk = await asyncio.wait_for(reader.read(4096), 0.3)
            except TimeoutError:
                continue
            got += chunk
            closed = not chunk
    except ConnectionError:
        closed = True
    finally:
        writer.close()
    assert got.startswith(b"HTTP/1.1 401"), got[:60]
    assert closed, "the connection was kept open for the rest of an answered request"
    # three pipelined requests and a refused fourth in one write: no answer is misattributed
    get = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{g.port}\r\n\r\n"
    flood = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{g.port}\r\n" + "".join(f"X-H{i}: v\r\n" for i in range(200)) + "\r\n"
    status, out = await raw_request(g.port, (get * 3 + flood).encode())
    assert b"431" not in out.split(b"\r\n", 1)[0], out[:80]  # never the first answer
    statuses = [part.split(b"\r\n", 1)[0] for part in out.split(b"HTTP/1.1 ")[1:]]
    assert all(st.startswith(b"200") for st in statuses[:3] if st), statuses
    async with httpx2.AsyncClient(timeout=10) as http:
        assert result_text(await call_tool(http, g.url(), g.token, "echo", {"text": "after"})) == "after"
    assert rss_kb(pid) - start < 16 * 1024


# ---- finding 4: long tool names, long method names, oversized audit fields -------------------------


async def test_long_names_are_refused_before_audit_and_fields_are_clipped(tmp_path, upstream, start_gateway):
    """Finding 4: 50 calls with unique 1 MiB tool names grew RSS by 58 MB, audit.db by 155 MB
    and the log by 52 MB. Now a tool name outside MCP's 1-128 characters (and a JSON-RPC
    method over 128) is a -32602 / -32600 error before the decision and the audit: no row,
    no log line carrying it. What does get audited is clipped: a JSON-RPC id to 256
    characters, at most 64 argument keys of at most 128 characters.

    Bounds stated: after the 50 calls, audit.db holds no new row, the log grew by less than
    64 KiB and the gateway's RSS by less than 16 MiB."""
    import sqlite3

    g = _gw(tmp_path, start_gateway, upstream.url, "--max-body-bytes", str(4 << 20))
    pid = g.proc.p.pid
    auth = {**HEADERS, "Authorization": f"Bearer {g.token}"}
    async with httpx2.AsyncClient(timeout=30) as http:
        assert result_text(await call_tool(http, g.url(), g.token, "echo", {"text": "warm"})) == "warm"
        start, log_start = rss_kb(pid), g.log.stat().st_size
        for i in range(50):
            name = f"{i}-" + "n" * (1 << 20)
            r = await http.post(g.url(), headers=auth, content=json.dumps(
                {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": name, "arguments": {}}}))
            assert r.status_code == 400 and r.json()["error"]["code"] == -32602, r.text[:200]
            assert "1 to 128 characters" in r.json()["error"]["message"]
        for name in ("", "x" * 129):
            r = await http.post(g.url(), headers=auth, content=json.dumps(
                {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": {}}}))
            assert r.status_code == 400 and r.json()["error"]["code"] == -32602
        r = await http.post(g.url(), headers=auth, content=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "m" * 129}))
        assert r.status_code == 400 and r.json()["error"]["code"] == -32600
        rows_after_refusals = sqlite3.connect(g.state / "audit.db").execute("SELECT COUNT(*) FROM audit").fetchone()[0]
        assert rows_after_refusals == 1  # only the warm-up call
        # a 128-character name is a name: decided (denied: no permit) and audited
        r = await call_tool(http, g.url(), g.token, "t" * 128, {}, rid="i" * 5000)
        assert r["result"]["isError"] and result_text(r).startswith("[POLICY DENIED]")
        # a huge id and 500 argument keys are clipped in the row
        r = await call_tool(http, g.url(), g.token, "get_secret", {f"k{i:03}" + "q" * 300: 1 for i in range(500)}, rid="j" * 5000)
        assert r["result"]["isError"]
    rows = sqlite3.connect(g.state / "audit.db").execute("SELECT tool, request_id, arg_keys FROM audit ORDER BY seq").fetchall()
    assert [t for t, _, _ in rows] == ["echo", "t" * 128, "get_secret"]
    _, rid, keys = rows[-1]
    assert len(rid) < 300 and rid.endswith("chars)")
    keys = json.loads(keys)
    assert len(keys) == 65 and keys[-1] == "…(+436 keys)" and all(len(k) < 160 for k in keys)
    assert g.log.stat().st_size - log_start < 64 * 1024
    assert rss_kb(pid) - start < 16 * 1024


# ---- finding 3: caller text as metric labels -------------------------------------------------------


async def test_metric_labels_come_from_closed_sets(tmp_path, upstream, start_gateway):
    """Finding 3: 200 unique 200 KiB JSON-RPC method names made /metrics 737 MB. Method
    labels are now the spec's client methods or `other`, and a rule pointer names a tool
    only if the policy (or the pinned catalog) names it; otherwise `/tools/other/…`.

    Bound stated: after 300 unique method names and 300 unique tool names (all of legal
    length), /metrics is under 64 KiB and no label carries the flooded text."""
    policy = 'default allow;\nlimit "all" (principal, action, resource) max 1 per hour scope grant;\n'
    g = _gw(tmp_path, start_gateway, upstream.url, policy_text=policy)
    auth = {**HEADERS, "Authorization": f"Bearer {g.token}"}
    limits = httpx2.Limits(max_connections=16, max_keepalive_connections=16)
    async with httpx2.AsyncClient(timeout=30, limits=limits) as http:
        sem = asyncio.Semaphore(16)

        async def method(i):
            async with sem:
                await http.post(g.url(), headers=auth, content=json.dumps(
                    {"jsonrpc": "2.0", "id": i, "method": f"flood{i:04}/" + "m" * 110}))

        async def tool(i):
            async with sem:
                r = await call_tool(http, g.url(), g.token, f"flood{i:04}" + "t" * 110, {}, rid=i)
                assert "result" in r, r

        await asyncio.gather(*[method(i) for i in range(300)], *[tool(i) for i in range(300)])
        r = await http.get(f"{g.base}/metrics")
    assert r.status_code == 200
    assert len(r.content) < 64 * 1024, len(r.content)
    assert "flood" not in r.text
    assert 'method="other"' in r.text
    assert 'rule="/tools/other/' in r.text


# ---- finding 6: upstream oddities ------------------------------------------------------------------


async def list_tools_raw(http, url: str, token: str) -> httpx2.Response:
    from .peers import MODERN_META

    return await http.post(url, headers={**HEADERS, "Authorization": f"Bearer {token}", "MCP-Protocol-Version": "2026-07-28",
                                         "Mcp-Method": "tools/list"},
                           content=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": MODERN_META}}))


async def test_malformed_upstream_listings_never_reach_the_client(tmp_path, start_gateway):
    """Finding 6: a tools/list answered 302 or 401 was relayed as that status; a `tools`
    object (not an array) reached the client unfiltered, hidden tools included; one 100 MiB
    chunk raised RSS by 200 MB before the 64 MiB cap refused it. Now every such answer is
    the documented upstream error (HTTP 502, JSON-RPC -32002), entries that name no tool
    are dropped, and the size cap holds on the running total, streamed.

    Bound stated: with max_response_bytes = 4 MiB, five 100 MiB answers (one chunk, or a
    content-length) grow the gateway's RSS by less than 16 MiB."""
    from .peers import ALLOW_ALL
    from .scripted import ScriptedUpstream

    async with ScriptedUpstream() as up:
        g = _gw_config(tmp_path, start_gateway, up.url, gateway=f"max_response_bytes = {4 << 20}", policy_text='hide Action::"hang";\n' + ALLOW_ALL)
        async with httpx2.AsyncClient(timeout=60) as http:
            r = await list_tools_raw(http, g.url(), g.token)
            names = [t["name"] for t in r.json()["result"]["tools"]]
            assert r.status_code == 200 and "ok" in names and "hang" not in names
            start = rss_kb(g.proc.p.pid)
            for mode, why in (("302", "HTTP 302"), ("401", "HTTP 401"), ("500", "HTTP 500"), ("tools_object", "`tools` is not an array"),
                              ("garbage", "not a JSON-RPC response"), ("wrong_id", "not a JSON-RPC response"),
                              ("huge_chunk", "too large"), ("huge_length", "too large")):
                up.list_mode = mode
                for _ in range(5 if mode.startswith("huge") else 1):
                    r = await list_tools_raw(http, g.url(), g.token)
                    assert r.status_code == 502, (mode, r.status_code, r.text[:300])
                    err = r.json()["error"]
                    assert err["code"] == -32002 and why in err["message"], (mode, err)
                    assert "hang" not in r.text
            assert rss_kb(g.proc.p.pid) - start < 16 * 1024
            up.list_mode = "bad_entries"
            r = await list_tools_raw(http, g.url(), g.token)
            assert r.status_code == 200
            assert [t["name"] for t in r.json()["result"]["tools"]] == [t["name"] for t in up.tools[:2]]
        events = [e for e in g.log_records() if e.get("event") == "upstream_tools_dropped"]
        assert events and events[-1]["dropped"] == 4


# ---- finding 1: a timed-out call was refunded but still ran -------------------------------------


async def test_limit_holds_with_a_hung_then_resumed_upstream(tmp_path, start_gateway):
    """Finding 1: `charge` limited to 5 per hour, upstream stopped (SIGSTOP), 3 calls time
    out, upstream resumed (SIGCONT): all 3 ran, and 7 more calls got 5 allowed — 8 runs
    against a max of 5. A timeout is now counted (the call may have run), so the 7 later
    calls get exactly 2 through, and the upstream never runs more than 5."""
    import os
    import signal
    import time

    from .peers import Upstream

    up = Upstream(tmp_path)
    try:
        g = _gw(tmp_path, start_gateway, up.url, "--upstream-timeout", "1")
        async with httpx2.AsyncClient(timeout=30) as http:
            assert result_text(await call_tool(http, g.url(), g.token, "echo", {"text": "warm"})) == "warm"
            os.kill(up.proc.p.pid, signal.SIGSTOP)
            try:
                hung = await asyncio.gather(*[call_tool(http, g.url(), g.token, "charge", {"amount": i}, rid=i) for i in range(3)])
            finally:
                os.kill(up.proc.p.pid, signal.SIGCONT)
            for r in hung:
                assert r["result"]["isError"] and "may or may not have run" in result_text(r), r
            deadline = time.time() + 15  # the resumed upstream works through what was queued
            while time.time() < deadline and len(up.ran("charge")) < 3:
                await asyncio.sleep(0.1)
            queued = len(up.ran("charge"))
            later = [await call_tool(http, g.url(), g.token, "charge", {"amount": 10 + i}, rid=10 + i) for i in range(7)]
        allowed = [r for r in later if not r["result"].get("isError")]
        assert len(allowed) == 2, [result_text(r) for r in later]
        assert all("Charge budget exhausted" in result_text(r) for r in later if r["result"].get("isError"))
        assert queued + len(allowed) == len(up.ran("charge")) <= 5
    finally:
        up.stop()


# ---- finding 5: a hung Redis blocked everything ---------------------------------------------------


async def test_hung_redis_refuses_limited_calls_and_blocks_nothing_else(tmp_path, upstream, start_gateway):
    """Finding 5: with Redis stopped (SIGSTOP) four concurrent calls got 503 at 3, 6, 9 and
    12 s in turn and /metrics took 11.8 s: the synchronous client blocked the event loop.
    Now Redis is awaited with a timeout behind a circuit breaker. Asserted as an order of
    events, not as times: while a limited call is still waiting on the hung Redis, /metrics
    answers; once the breaker is open, limited calls are refused without asking Redis
    ("circuit open") and never reach the upstream, while unlimited calls of a grant Redis
    already vouched for are served; after SIGCONT the breaker closes and limits work again."""
    import os
    import signal
    import time

    from .peers import start_redis

    rdir = tmp_path / "redis"
    rdir.mkdir()
    url, redis_proc = start_redis(rdir)
    try:
        g = _gw_config(tmp_path, start_gateway, upstream.url, gateway=f'redis_url = "{url}"\nredis_timeout = 3.0')
        token = g.token
        async with httpx2.AsyncClient(timeout=30) as http:
            assert result_text(await call_tool(http, g.url(), token, "echo", {"text": "warm"})) == "warm"
            assert result_text(await call_tool(http, g.url(), token, "charge", {"amount": 1})) == "charged 1.0"
            ran_before = len(upstream.ran("charge"))
            os.kill(redis_proc.p.pid, signal.SIGSTOP)
            try:
                stuck = asyncio.ensure_future(call_tool(http, g.url(), token, "charge", {"amount": 2}, rid=2))
                await asyncio.sleep(0.3)  # let it reach Redis
                metrics = await http.get(f"{g.base}/metrics")
                assert metrics.status_code == 200
                assert not stuck.done(), "the limited call should still be waiting on the hung Redis"
                r = await stuck
                assert r["result"]["isError"] and result_text(r).startswith("[GATEWAY ERROR] The limit store is unavailable")
                # the breaker is open now: nothing below waits for Redis
                limited = [call_tool(http, g.url(), token, "charge", {"amount": 3}, rid=100 + i) for i in range(10)]
                free = [call_tool(http, g.url(), token, "echo", {"text": f"free {i}"}, rid=200 + i) for i in range(10)]
                health = http.get(f"{g.base}/healthz")
                *results, h = await asyncio.gather(*limited, *free, health)
                for r in results[:10]:
                    assert result_text(r).startswith("[GATEWAY ERROR] The limit store is unavailable"), r
                assert [result_text(r) for r in results[10:]] == [f"free {i}" for i in range(10)]
                assert h.status_code == 503 and h.json()["store"]["breaker"] == "open"
                assert "circuit open" in h.json()["store"]["error"]
                assert len(upstream.ran("charge")) == ran_before
            finally:
                os.kill(redis_proc.p.pid, signal.SIGCONT)
            deadline = time.time() + 20
            while time.time() < deadline and (await http.get(f"{g.base}/healthz")).status_code != 200:
                await asyncio.sleep(0.2)
            assert (await http.get(f"{g.base}/healthz")).json()["store"]["breaker"] == "closed"
            assert result_text(await call_tool(http, g.url(), token, "charge", {"amount": 4}, rid=300)) == "charged 4.0"
        rows = [r for r in g.log_records() if r.get("event") in ("redis_unavailable", "redis_available")]
        assert [r["event"] for r in rows][:2] == ["redis_unavailable", "redis_available"]
    finally:
        redis_proc.stop()


# ---- finding 7: operations endpoints answered any Host without auth ---------------------------------


async def test_operations_endpoints_check_host_origin_token_and_can_move(tmp_path, upstream, start_gateway):
    """Finding 7: /metrics and /healthz answered any Host, without auth. Sharing the MCP
    port they now get the same Host/Origin checks as MCP requests (421/403), an ops token
    can be required (401 without it), and `ops_listen` moves them to their own address,
    where only they are served (and the MCP port no longer serves them)."""
    (tmp_path / "ops.token").write_text("s3cret-ops-token\n")
    g = _gw_config(tmp_path, start_gateway, upstream.url, gateway='ops_token_file = "ops.token"')
    async with httpx2.AsyncClient(timeout=10) as http:
        for path in ("/metrics", "/healthz"):
            url = f"{g.base}{path}"
            assert (await http.get(url)).status_code == 401
            assert (await http.get(url, headers={"Authorization": "Bearer wrong"})).status_code == 401
            ok = {"Authorization": "Bearer s3cret-ops-token"}
            assert (await http.get(url, headers=ok)).status_code == 200
            assert (await http.get(url, headers={**ok, "Host": "evil.example"})).status_code == 421
            assert (await http.get(url, headers={**ok, "Origin": "http://evil.example"})).status_code == 403
        assert result_text(await call_tool(http, g.url(), g.token, "echo", {"text": "mcp unaffected"})) == "mcp unaffected"
    g.stop()

    ops_port = free_port()
    g2 = _gw_config(tmp_path, start_gateway, upstream.url, gateway=f'ops_listen = "127.0.0.1:{ops_port}"', name="split")
    ops = f"http://127.0.0.1:{ops_port}"
    async with httpx2.AsyncClient(timeout=10) as http:
        assert (await http.get(f"{g2.base}/metrics")).status_code == 404
        assert (await http.get(f"{g2.base}/healthz")).status_code == 404
        r = await http.get(f"{ops}/metrics")
        assert r.status_code == 200 and "mcpp_requests_total" in r.text
        assert (await http.get(f"{ops}/healthz")).json()["status"] in ("ok", "degraded")
        assert (await http.get(f"{ops}/metrics", headers={"Host": "evil.example"})).status_code == 421
        assert (await http.post(f"{ops}/mcp/default/", headers=HEADERS, content=b"{}")).status_code == 404
        assert result_text(await call_tool(http, g2.url(), g2.token, "echo", {"text": "split"})) == "split"


async def test_name_variants_never_reach_a_lenient_upstream(tmp_path, start_gateway):
    """Finding 7: on a `default allow` policy, `hide` matches names exactly, so a trailing
    space, another case or a look-alike Unicode name was forwarded (the SDK upstream refused
    them; a more lenient one might not). With typed calls a tool the upstream does not list
    is refused before the policy. The upstream here is the scripted one, which runs any name."""
    from .scripted import ScriptedUpstream

    async with ScriptedUpstream() as up:
        g = _gw(tmp_path, start_gateway, up.url, policy_text='default allow;\nhide Action::"drop";\n')
        async with httpx2.AsyncClient(timeout=10) as http:
            for i, name in enumerate(("drop", "drop ", " drop", "Drop", "DROP", "drop\u200b", "dr\u043ep", "drop\t")):
                # a handshake-era request: these names cannot travel in an Mcp-Name header
                r = await http.post(g.url(), headers={**HEADERS, "Authorization": f"Bearer {g.token}"}, content=json.dumps(
                    {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": name, "arguments": {}}}))
                text = r.json()["result"]["content"][0]["text"]
                assert r.json()["result"]["isError"] and text.startswith("[POLICY DENIED]"), (name, text)
            assert result_text(await call_tool(http, g.url(), g.token, "ok", {})) == "ran ok"
        assert up.executed() == [{}] and [t for t, _ in up.calls] == ["ok"]


# hostile18 F8: what no JSON text can carry, wherever it is in the arguments (values the
# client's json.dumps writes as NaN, Infinity, -Infinity and \ud800 escapes)
NOT_JSON_ARGS = [
    {"text": float("nan")},
    {"text": "x", "n": [1, {"deep": [float("inf")]}]},
    {"text": -float("inf")},
    {"text": "x", "meta": [{"k": "\udfff"}]},
    {"text": "x", "meta": {"\ud800": 1}},  # a key
]


async def test_the_gateway_and_the_api_refuse_the_same_unwritable_arguments(tmp_path, upstream, start_gateway):
    """The gateway's 400 and `Policy.decide` (with no catalog: the gateway refuses these
    whether or not it checks schemas) give the same reason, and nothing is forwarded."""
    from mcpp import load_policy  # (`mcpp` here is the command-line helper)

    g = _gw(tmp_path, start_gateway, upstream.url)
    policy = load_policy(POLICY)
    before = len(upstream.ran())
    async with httpx2.AsyncClient(timeout=10) as http:
        for i, args in enumerate(NOT_JSON_ARGS):
            r = await call_tool(http, g.url(), g.token, "echo", args, rid=f"r{i}")
            d = policy.decide("echo", args, dry_run=True)
            assert (d.decision, d.rule) == ("deny", "/request"), d
            assert r["status"] == 400 and r["id"] == f"r{i}", r
            assert r["error"]["code"] == -32602 and r["error"]["message"] == d.message, (r, d)
        assert result_text(await call_tool(http, g.url(), g.token, "echo", {"text": "ok"})) == "ok"
    assert [x["args"] for x in upstream.ran()[before:]] == [{"text": "ok"}]


# hostile review 41, H41-5: an integer beyond ±(2^53-1) (I-JSON, RFC 7493 §2.2) is decided
# exactly but a JavaScript upstream runs it rounded (9007199254740993 as …992): refused
# before the policy (400, -32602, as for NaN), by the API alike, and never forwarded.
# (arguments of `add`, refused)
BIG_INTEGERS = [
    ({"a": 9007199254740993, "b": 0}, True),
    ({"a": 9007199254740992, "b": 0}, True),  # 2^53: JS reads 2^53 + 1 as it, so it is no one number
    ({"a": 1, "b": -9007199254740992}, True),
    ({"a": 10**25, "b": 0}, True),
    ({"a": 9007199254740991, "b": 0}, False),
    ({"a": -9007199254740991, "b": 1}, False),
    ({"a": 9007199254740993.5, "b": 1e300}, False),  # fractions: doubles already, read alike
]
BIG_ID_POLICY = POLICY + '\nforbid (principal, action == Action::"add", resource) when { context.input.a == 9007199254740992 };\n'


async def test_integers_beyond_2_53_are_refused_and_never_forwarded(tmp_path, upstream, start_gateway):
    from mcpp import load_policy  # (`mcpp` here is the command-line helper)

    g = _gw(tmp_path, start_gateway, upstream.url, policy_text=BIG_ID_POLICY)
    policy = load_policy(BIG_ID_POLICY)
    # at any depth, in the API (the gateway's schema of `add` has no place for one)
    d = policy.decide("echo", {"text": "x", "n": [1, {"deep": [-(10**20)]}]}, dry_run=True)
    assert (d.decision, d.rule) == ("deny", "/request") and "9007199254740991" in d.message, d
    before = len(upstream.ran())
    async with httpx2.AsyncClient(timeout=10) as http:
        for i, (args, refused) in enumerate(BIG_INTEGERS):
            r = await call_tool(http, g.url(), g.token, "add", args, rid=f"r{i}")
            d = policy.decide("add", args, dry_run=True)
            if refused:
                assert (d.decision, d.rule) == ("deny", "/request") and "9007199254740991" in d.message, d
                assert r["status"] == 400 and r["id"] == f"r{i}", r
                assert r["error"]["code"] == -32602 and r["error"]["message"] == d.message, (r, d)
            else:
                assert d.decision == "allow", d
                assert r["status"] == 200 and not r["result"].get("isError"), r
    assert [x["args"] for x in upstream.ran()[before:]] == [a for a, refused in BIG_INTEGERS if not refused]


async def test_a_lone_surrogate_is_refused_for_what_it_is(tmp_path, upstream, start_gateway):
    """`"\\ud800"` is valid JSON but no Unicode text: refused before the policy (400, with
    the reason), never forwarded."""
    g = _gw(tmp_path, start_gateway, upstream.url)
    before = len(upstream.ran())
    async with httpx2.AsyncClient(timeout=10) as http:
        r = await call_tool(http, g.url(), g.token, "echo", {"text": "a\ud800b"})
        assert "valid Unicode" in json.dumps(r), r
        assert result_text(await call_tool(http, g.url(), g.token, "echo", {"text": "ok"})) == "ok"
    assert [x["args"] for x in upstream.ran()[before:]] == [{"text": "ok"}]



async def test_a_connection_answered_before_its_body_still_idles_out(tmp_path, upstream, start_gateway):
    """hostile review 25, F2: a POST without a token is answered 401 before its body; the
    body's arrival took back the idle timer the answer had armed (uvicorn unsets it on every
    read), and nothing armed another, so such a connection held a `max_connections` slot for
    as long as its client liked (a minute with `idle_timeout = 1`), no token needed. It is
    idle again once its body has arrived; and `max_connections` connections are served
    (F4: one fewer were)."""
    g = _gw_config(tmp_path, start_gateway, upstream.url, gateway="max_connections = 2\nidle_timeout = 1\nheader_timeout = 2")
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {}}}).encode()
    held = []
    for _ in range(2):
        reader, writer = await asyncio.open_connection("127.0.0.1", g.port)
        writer.write(f"POST /mcp/default/ HTTP/1.1\r\nHost: 127.0.0.1:{g.port}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 401"), head
        length = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")][0].split(b":")[1])
        await asyncio.wait_for(reader.readexactly(length), 10)
        writer.write(body)  # the rest of the request: it ends, and the connection is kept alive
        await writer.drain()
        held.append((reader, writer))
    for reader, writer in held:  # closed by the gateway within idle_timeout (1 s), not held
        assert await asyncio.wait_for(reader.read(1), 5) == b""
        writer.close()
    async with httpx2.AsyncClient(timeout=10) as a, httpx2.AsyncClient(timeout=10) as b:
        assert (await a.get(f"{g.base}/healthz")).status_code == 200
        assert (await b.get(f"{g.base}/healthz")).status_code == 200  # two connections, both served


@pytest.mark.parametrize("pipelined", [1, 2])
async def test_a_client_that_does_not_read_its_answer_cannot_hold_a_slot(tmp_path, upstream, start_gateway, pipelined):
    """hostile review 25, F5: a client that asked for a large answer and read none of it kept
    its connection, and a `max_connections` slot, for good: a transport's close waits for
    its buffer to be sent. It now has `idle_timeout` to read it, then it is reset.
    hostile review 27, F5: with a second call pipelined behind the first, no close ever
    came (the second answer waited on the drain, so no idle timer was armed either): the
    client must read while writing is paused too."""
    import socket

    g = _gw_config(tmp_path, start_gateway, upstream.url, gateway="max_connections = 1\nidle_timeout = 1")
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": "echo", "arguments": {"text": "x" * (3 << 20)}, "_meta": MODERN_META}}).encode()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # (the kernel takes little of the answer)
    sock.connect(("127.0.0.1", g.port))
    sock.settimeout(30)
    request = (f"POST /mcp/default/ HTTP/1.1\r\nHost: 127.0.0.1:{g.port}\r\nContent-Type: application/json\r\n"
               f"Accept: application/json, text/event-stream\r\nAuthorization: Bearer {g.token}\r\n"
               "MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: echo\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    await asyncio.to_thread(sock.sendall, request * pipelined)
    head = await asyncio.to_thread(sock.recv, 400)  # the start of the answer; nothing more is read
    assert head.startswith(b"HTTP/1.1 200") and b"DENIED" not in head and b"GATEWAY ERROR" not in head, head
    async with httpx2.AsyncClient(timeout=10) as http:
        assert (await http.get(f"{g.base}/healthz")).status_code == 503  # its slot is taken meanwhile
    await asyncio.sleep(4)  # idle_timeout to close, idle_timeout more to read the rest
    async with httpx2.AsyncClient(timeout=10) as http:
        assert (await http.get(f"{g.base}/healthz")).status_code == 200  # its slot is free again
    sock.close()


async def test_a_request_read_with_the_end_of_an_early_answered_one_is_answered(tmp_path, upstream, start_gateway):
    """hostile review 26, F4: the idle timer armed when an early-answered request's body
    ended stayed armed under the next request when both came in one read, and closed the
    connection `idle_timeout` into it: the client got no answer to a call that ran."""
    g = _gw_config(tmp_path, start_gateway, upstream.url, gateway="idle_timeout = 1")
    first = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {}}}).encode()
    call = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                       "params": {"name": "slow", "arguments": {"seconds": 1.6}, "_meta": MODERN_META}}).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", g.port)
    writer.write(f"POST /mcp/default/ HTTP/1.1\r\nHost: 127.0.0.1:{g.port}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(first)}\r\n\r\n".encode())  # no token: 401 before the body
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 401"), head
    length = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")][0].split(b":")[1])
    await asyncio.wait_for(reader.readexactly(length), 10)
    writer.write(first + (  # the first body's end and the next request, in one write
        f"POST /mcp/default/ HTTP/1.1\r\nHost: 127.0.0.1:{g.port}\r\nContent-Type: application/json\r\n"
        f"Accept: application/json, text/event-stream\r\nAuthorization: Bearer {g.token}\r\n"
        "MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: slow\r\n"
        f"Content-Length: {len(call)}\r\n\r\n").encode() + call)
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 200"), head
    length = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")][0].split(b":")[1])
    assert b"slept 1.6" in await asyncio.wait_for(reader.readexactly(length), 10)
    writer.close()


async def test_one_caller_cannot_take_every_connection(tmp_path, upstream, start_gateway):
    """A token holder could hold every `max_connections` slot with requests that do not end
    (listening streams, slow calls), and every other caller got 503. One caller's requests
    in progress are capped (`max_requests_per_caller`): past it, 429 at once, and others
    are served; its own next request is served once one has ended."""
    g = _gw_config(tmp_path, start_gateway, upstream.url, gateway="max_requests_per_caller = 2")
    other = create_grant(g.state, "other")["token"]
    async with httpx2.AsyncClient(timeout=30) as http:
        slow = [asyncio.create_task(call_tool(http, g.url(), g.token, "slow", {"seconds": 1.5}, rid=i)) for i in (1, 2)]
        await asyncio.sleep(0.5)  # (both in progress)
        r = await http.post(g.url(), headers={"Authorization": f"Bearer {g.token}", "Content-Type": "application/json",
                                              "Accept": "application/json, text/event-stream",
                                              "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call",
                                              "Mcp-Name": "echo"},
                            content=json.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                                                "params": {"name": "echo", "arguments": {"text": "x"}, "_meta": MODERN_META}}))
        assert r.status_code == 429 and r.headers["retry-after"] == "1", r.text
        assert "at most 2 requests of one caller" in r.json()["error"]["message"] and r.json()["id"] == 3
        # a notification and a client's answer are never refused for it (a call waiting on an
        # approval needs the answer: hostile review 29, F1), nor is a DELETE (F7)
        for message in ({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}},
                        {"jsonrpc": "2.0", "id": "up-1", "result": {}}):
            r = await http.post(g.url(), headers={"Authorization": f"Bearer {g.token}", "Content-Type": "application/json",
                                                  "Accept": "application/json, text/event-stream",
                                                  "MCP-Protocol-Version": "2026-07-28"}, content=json.dumps(message))
            assert r.status_code != 429, (message, r.status_code, r.text)
        r = await http.delete(g.url(), headers={"Authorization": f"Bearer {g.token}", "MCP-Protocol-Version": "2026-07-28"})
        assert r.status_code != 429, r.text
        assert result_text(await call_tool(http, g.url(), other, "echo", {"text": "hi"})) == "hi"  # another caller: served
        assert all("slept 1.5" in result_text(x) for x in await asyncio.gather(*slow))
        assert result_text(await call_tool(http, g.url(), g.token, "echo", {"text": "again"})) == "again"  # its share back


def test_the_anonymous_callers_of_each_server_count_apart():
    """hostile review 29, F5: every anonymous caller has the grant `anonymous`, so the
    anonymous callers of one server took the share of another's."""
    from types import SimpleNamespace

    from mcpp.runtime.gateway.proxy import GatewayApp as Proxy

    a, b = SimpleNamespace(id="a"), SimpleNamespace(id="b")
    anonymous = SimpleNamespace(record=None, identity=None, key="anonymous")
    granted = SimpleNamespace(record=object(), identity=None, key="g1")
    assert Proxy._share_key(None, a, anonymous) != Proxy._share_key(None, b, anonymous)
    assert Proxy._share_key(None, a, granted) == Proxy._share_key(None, b, granted) == "g1"  # a grant: wherever it goes


async def test_a_request_whose_body_trickles_in_counts_toward_its_caller_s_share(tmp_path, upstream, start_gateway):
    """hostile review 30, G5: the share was taken only once the body was read, so one token
    holder's requests whose bodies never came held every connection uncounted. A POST counts
    from its head; past the share its body is read only to let answers through."""
    g = _gw_config(tmp_path, start_gateway, upstream.url, gateway="max_requests_per_caller = 2")
    body = json.dumps({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                       "params": {"name": "echo", "arguments": {"text": "x"}, "_meta": MODERN_META}}).encode()
    head = (f"POST /mcp/default/ HTTP/1.1\r\nHost: 127.0.0.1:{g.port}\r\nContent-Type: application/json\r\n"
            f"Accept: application/json, text/event-stream\r\nAuthorization: Bearer {g.token}\r\n"
            "MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: echo\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    held = []
    for _ in range(2):  # heads only: the bodies never come
        reader, writer = await asyncio.open_connection("127.0.0.1", g.port)
        writer.write(head)
        await writer.drain()
        held.append((reader, writer))
    await asyncio.sleep(0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", g.port)
    writer.write(head + body)  # a whole third request of the same caller: past its share
    await writer.drain()
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert answer.startswith(b"HTTP/1.1 429"), answer
    writer.close()
    other = create_grant(g.state, "other")["token"]
    async with httpx2.AsyncClient(timeout=10) as http:
        assert result_text(await call_tool(http, g.url(), other, "echo", {"text": "hi"})) == "hi"
    for _, w in held:
        w.close()
