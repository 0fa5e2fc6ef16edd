"""Gateway soak: many calls of every kind, and what the gateway process holds before and after.

Starts the SDK fixture upstream and `mcpp serve` (typed calls and audit on) with a policy
that allows, denies and limits, then sends `--calls` (50,000) `tools/call`s from
`--clients` concurrent clients, each with its own grant, in a fixed mix:

| share | call | expected |
|---|---|---|
| 40% | `echo {"text": "ok …"}` | allowed, forwarded |
| 15% | `echo {"text": "deny …"}` | denied by a forbid |
| 10% | `add {"a": "1", "b": 2}` (a string for a number) | denied before the policy (typed calls) |
| 15% | `charge {"amount": 1}` | allowed until the grant's limit (20 a minute), then denied |
| 5% | `echo ` (a name the upstream does not list) | denied (unlisted) |
| 5% | a 5 MiB body | 413 |
| 5% | a 200-character tool name | 400 |
| 5% | a 40 KiB header | 431 (connection closed) |

plus one SDK client session (`mcp.Client`, legacy mode) calling `echo` throughout. It
records the gateway's resident memory (VmRSS, and the peak VmHWM) and its open file
descriptors after a warm-up and at the end, checks every answer against the expectation,
and counts the audit rows.

    python3 bench/gateway_soak.py [--calls 50000] [--clients 8] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_bench import FIXTURE, free_port, wait_port  # noqa: E402

POLICY = """default deny;
permit (principal, action in [Action::"echo", Action::"add", Action::"charge"], resource);
@reason("Echoes starting with deny are refused.")
forbid (principal, action == Action::"echo", resource) when { context.input.text like "deny*" };
@reason("Charge budget exhausted.")
limit "charges" (principal, action == Action::"charge", resource) max 20 per minute scope grant;
"""
META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
MIX = [("ok", 40), ("deny", 15), ("typed", 10), ("limit", 15), ("unlisted", 5), ("big_body", 5), ("long_name", 5), ("big_header", 5)]


def proc_status(pid: int) -> dict:
    out = {}
    for line in open(f"/proc/{pid}/status"):
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            out[k] = int(v.split()[0])
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


async def raw_big_header(port: int, token: str) -> int | None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write((f"POST /mcp/default/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
                      f"X-Big: {'b' * 40960}\r\nContent-Length: 2\r\n\r\n{{}}").encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.read(64), 30)
        return int(head[9:12]) if head.startswith(b"HTTP/1.1 ") else None
    except (ConnectionError, TimeoutError):
        return None
    finally:
        writer.close()


async def soak(port: int, tokens: list[str], calls: int, seed: int) -> dict:
    import httpx2

    url = f"http://127.0.0.1:{port}/mcp/default/"
    rnd = random.Random(seed)
    kinds = [k for k, w in MIX for _ in range(w)]
    plan = [rnd.choice(kinds) for _ in range(calls)]
    counts: dict[str, dict[str, int]] = {}
    limits = httpx2.Limits(max_connections=len(tokens) * 2, max_keepalive_connections=len(tokens) * 2)

    def tally(kind: str, what: str) -> None:
        counts.setdefault(kind, {}).setdefault(what, 0)
        counts[kind][what] += 1

    async with httpx2.AsyncClient(timeout=60, limits=limits) as http:
        async def one(i: int, token: str) -> None:
            kind = plan[i]
            name, args = "echo", {"text": f"ok {i}"}
            if kind == "deny":
                args = {"text": f"deny {i}"}
            elif kind == "typed":
                name, args = "add", {"a": "1", "b": 2}
            elif kind == "limit":
                name, args = "charge", {"amount": 1}
            elif kind == "unlisted":
                name = "echo "
            elif kind == "long_name":
                name = "n" * 200
            elif kind == "big_header":
                status = await raw_big_header(port, token)
                tally(kind, "431" if status == 431 else f"unexpected {status}")
                return
            body = {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": name, "arguments": args, "_meta": META}}
            content = json.dumps(body)
            if kind == "big_body":
                content = content[:-1] + ', "pad": "' + "p" * (5 << 20) + '"}'
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                       "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2026-07-28",
                       "Mcp-Method": "tools/call"}
            if kind not in ("unlisted", "long_name"):
                headers["Mcp-Name"] = name
            else:  # these names do not fit an Mcp-Name header: send as a handshake-era request
                headers = {k: v for k, v in headers.items() if k not in ("MCP-Protocol-Version", "Mcp-Method")}
                body["params"].pop("_meta")
                content = json.dumps(body)
            r = await http.post(url, headers=headers, content=content)
            if r.status_code != 200:
                tally(kind, str(r.status_code))
                return
            res = r.json().get("result", {})
            text = (res.get("content") or [{}])[0].get("text", "")
            tally(kind, "denied" if res.get("isError") and text.startswith("[POLICY DENIED]") else
                  ("allowed" if not res.get("isError") else "error: " + text[:60]))

        queue = iter(range(calls))

        async def client(token: str) -> None:
            for i in queue:
                await one(i, token)

        t0 = time.perf_counter()
        await asyncio.gather(*[client(t) for t in tokens])
        elapsed = time.perf_counter() - t0
    return {"counts": counts, "seconds": round(elapsed, 1)}


async def sdk_session(port: int, token: str, stop: asyncio.Event) -> int:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    n = 0
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http, \
            Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp/default/", http_client=http), mode="legacy") as c:
        while not stop.is_set():
            r = await c.call_tool("echo", {"text": f"sdk {n}"})
            assert not r.is_error, r
            n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=50000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    tmp = Path(tempfile.mkdtemp(prefix="mcpp-soak-"))
    (tmp / "policy.mcpp").write_text(POLICY)
    up_port, gw_port = free_port(), free_port()
    procs = []
    try:
        up = subprocess.Popen([sys.executable, str(FIXTURE), "--port", str(up_port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
        procs.append(up)
        wait_port(up_port, up)
        tokens = [json.loads(subprocess.run(
            [sys.executable, "-m", "mcpp", "grant", "create", "--server", "default", "--label", f"soak{i}",
             "--state", str(tmp / "state"), "--json"], check=True, capture_output=True, text=True).stdout)["token"]
            for i in range(a.clients + 1)]
        gw = subprocess.Popen(
            [sys.executable, "-m", "mcpp", "serve", "--policy", str(tmp / "policy.mcpp"), "--upstream",
             f"http://127.0.0.1:{up_port}/mcp", "--port", str(gw_port), "--state", str(tmp / "state")],
            stdout=subprocess.DEVNULL, stderr=open(tmp / "gateway.log", "wb"), start_new_session=True)
        procs.append(gw)
        wait_port(gw_port, gw)

        async def go():
            await soak(gw_port, tokens[:a.clients], 1000, a.seed + 1)  # warm-up: every path once, caches filled
            start = proc_status(gw.pid)
            stop = asyncio.Event()
            sdk = asyncio.ensure_future(sdk_session(gw_port, tokens[-1], stop))
            result = await soak(gw_port, tokens[:a.clients], a.calls, a.seed)
            stop.set()
            sdk_calls = await sdk
            await asyncio.sleep(6)  # kept-alive connections idle out (idle_timeout 5 s)
            end = proc_status(gw.pid)
            return start, end, result, sdk_calls

        start, end, result, sdk_calls = asyncio.run(go())
        rows = sqlite3.connect(tmp / "state" / "audit.db").execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(p.pid, signal.SIGKILL)
    out = {
        "meta": {"python": platform.python_version(), "cpus": os.cpu_count(), "calls": a.calls, "clients": a.clients,
                 "load_average": os.getloadavg()},
        "gateway": {"start": start, "end": end}, "answers": result["counts"], "seconds": result["seconds"],
        "sdk_session_calls": sdk_calls, "audit_rows": rows,
    }
    if a.json:
        print(json.dumps(out, indent=2))
        return
    print(f"mcpp gateway soak — {a.calls} calls from {a.clients} clients + one SDK session ({sdk_calls} calls), "
          f"{result['seconds']} s, Python {out['meta']['python']}, {out['meta']['cpus']} CPUs")
    for kind, c in result["counts"].items():
        print(f"  {kind:<11} " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    print(f"gateway RSS {start['VmRSS'] / 1024:.1f} MiB → {end['VmRSS'] / 1024:.1f} MiB (peak {end['VmHWM'] / 1024:.1f} MiB); "
          f"open fds {start['fds']} → {end['fds']}; audit rows {rows}")


if __name__ == "__main__":
    main()
