"""Gateway overhead: repeated `tools/call` directly to an upstream and through `mcpp serve`.

One run starts the SDK fixture upstream (tests/gateway/fixtures/upstream_server.py, an
`MCPServer` over Streamable HTTP) and a gateway in front of it (quick start, a policy
that allows `echo`, a real grant), then sends stateless 2026-07-28 `tools/call echo`
requests over keep-alive connections with the same small client to both, alternating
blocks so drift on a shared machine hits both alike. Every call through the gateway is
decided, audited (a committed SQLite row) and forwarded.

    python3 bench/gateway_bench.py [--calls 3000] [--concurrency 1 32] [--json]

Reports latency p50/p99 per concurrency and calls per second, direct vs gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "gateway" / "fixtures" / "upstream_server.py"
POLICY = 'default deny;\npermit (principal, action == Action::"echo", resource);\n'
META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc, timeout=30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"a peer exited early ({proc.args})")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} did not open")


class Target:
    def __init__(self, name: str, url: str, token: str | None):
        from mcpp.runtime.gateway.http_client import HTTPUpstream

        self.name = name
        self.pool = HTTPUpstream(url, keepalive=30.0, max_idle=256)
        self.headers = [
            ("content-type", "application/json"), ("accept", "application/json, text/event-stream"),
            ("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call"), ("mcp-name", "echo"),
        ] + ([("authorization", f"Bearer {token}")] if token else [])
        self.n = 0

    async def call(self) -> float:
        self.n += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self.n, "method": "tools/call",
                           "params": {"name": "echo", "arguments": {"text": f"ping {self.n}"}, "_meta": META}}).encode()
        t0 = time.perf_counter()
        resp = await self.pool.request("POST", self.headers, body, 30.0)
        data = await resp.read(30.0)
        dt = time.perf_counter() - t0
        if resp.status != 200 or b'"isError":true' in data or b"ping" not in data:
            raise RuntimeError(f"{self.name}: unexpected response {resp.status} {data[:200]!r}")
        return dt


async def run_block(t: Target, calls: int, conc: int) -> tuple[list[float], float]:
    lat: list[float] = []
    left = calls

    async def worker():
        nonlocal left
        while left > 0:
            left -= 1
            lat.append(await t.call())

    t0 = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(conc)])
    return lat, time.perf_counter() - t0


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def measure(direct: Target, gateway: Target, calls: int, conc: int, blocks: int = 4) -> dict:
    for t in (direct, gateway):  # warm up connections, caches and the upstream
        await run_block(t, max(200, conc * 10), conc)
    res = {t.name: {"lat": [], "time": 0.0, "calls": 0} for t in (direct, gateway)}
    per = max(1, calls // blocks)
    for b in range(blocks):
        order = (direct, gateway) if b % 2 == 0 else (gateway, direct)
        for t in order:
            lat, el = await run_block(t, per, conc)
            r = res[t.name]
            r["lat"] += lat
            r["time"] += el
            r["calls"] += len(lat)
    out = {}
    for name, r in res.items():
        out[name] = {
            "p50_ms": round(pct(r["lat"], 50) * 1000, 3), "p99_ms": round(pct(r["lat"], 99) * 1000, 3),
            "mean_ms": round(statistics.fmean(r["lat"]) * 1000, 3), "calls_per_s": round(r["calls"] / r["time"], 1),
            "calls": r["calls"],
        }
    d, g = out["direct"], out["gateway"]
    out["added_p50_ms"] = round(g["p50_ms"] - d["p50_ms"], 3)
    out["added_p99_ms"] = round(g["p99_ms"] - d["p99_ms"], 3)
    out["throughput_ratio"] = round(g["calls_per_s"] / d["calls_per_s"], 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=3000, help="measured calls per target and concurrency")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    a = ap.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    tmp = Path(tempfile.mkdtemp(prefix="mcpp-bench-"))
    (tmp / "policy.mcpp").write_text(POLICY)
    up_port, gw_port = free_port(), free_port()
    procs = []
    try:
        up = subprocess.Popen([sys.executable, str(FIXTURE), "--port", str(up_port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
        procs.append(up)
        wait_port(up_port, up)
        grant = json.loads(subprocess.run(
            [sys.executable, "-m", "mcpp", "grant", "create", "--server", "default", "--label", "bench",
             "--state", str(tmp / "state"), "--json"], check=True, capture_output=True, text=True).stdout)
        gw = subprocess.Popen(
            [sys.executable, "-m", "mcpp", "serve", "--policy", str(tmp / "policy.mcpp"), "--upstream",
             f"http://127.0.0.1:{up_port}/mcp", "--port", str(gw_port), "--state", str(tmp / "state")],
            stdout=subprocess.DEVNULL, stderr=open(tmp / "gateway.log", "wb"), start_new_session=True)
        procs.append(gw)
        wait_port(gw_port, gw)

        async def go():
            results = {}
            for conc in a.concurrency:
                direct = Target("direct", f"http://127.0.0.1:{up_port}/mcp", None)
                gateway = Target("gateway", f"http://127.0.0.1:{gw_port}/mcp/default/", grant["token"])
                results[str(conc)] = await measure(direct, gateway, a.calls, conc)
                direct.pool.close()
                gateway.pool.close()
            return results

        results = asyncio.run(go())
        audited = subprocess.run([sys.executable, "-c", (
            "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from audit').fetchone()[0])"),
            str(tmp / "state" / "audit.db")], capture_output=True, text=True).stdout.strip()
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(p.pid, signal.SIGKILL)
    meta = {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine(),
            "calls_per_target_per_concurrency": a.calls, "audit_rows_written": int(audited or 0)}
    if a.json:
        print(json.dumps({"meta": meta, "results": results}, indent=2))
        return
    print(f"mcpp gateway benchmark — Python {meta['python']}, {meta['cpus']} CPUs, tools/call echo (2026-07-28, JSON)")
    print(f"{'conc':>4} {'target':<8} {'p50 ms':>8} {'p99 ms':>8} {'calls/s':>9}")
    for conc, r in results.items():
        for name in ("direct", "gateway"):
            x = r[name]
            print(f"{conc:>4} {name:<8} {x['p50_ms']:>8.3f} {x['p99_ms']:>8.3f} {x['calls_per_s']:>9.1f}")
        print(f"     added p50 {r['added_p50_ms']:.3f} ms, p99 {r['added_p99_ms']:.3f} ms; "
              f"gateway throughput {r['throughput_ratio'] * 100:.1f}% of direct")
    print(f"audit rows written by the gateway: {meta['audit_rows_written']}")


if __name__ == "__main__":
    main()
