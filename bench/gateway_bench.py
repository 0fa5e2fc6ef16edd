"""Gateway overhead: repeated `tools/call` directly to an upstream and through `mcpp serve`.

One run starts the SDK fixture upstream (tests/gateway/fixtures/upstream_server.py, an
`MCPServer` over Streamable HTTP, SSE answers as the SDK's default) and a gateway in front
of it (quick start, an allow-all policy, a real grant, typed calls and the audit on), then
drives both with each client, alternating blocks so drift on a shared machine hits both
alike:

- `sdk-auto`: the official SDK client, `mcp.Client(..., mode="auto")` (2026-07-28,
  stateless), one session, `call_tool("echo", …)` in a loop from `concurrency` tasks;
- `sdk-legacy`: the same with `mode="legacy"` (2025-11-25, a session);
- `raw`: a small hand-written keep-alive client sending 2026-07-28 requests (what the
  first version of this benchmark used; it skips everything an SDK client does).

Every call through the gateway is checked against the tool's input schema, decided,
audited (a committed SQLite row) and forwarded. Besides latency and throughput, the run
reports CPU time per call of the gateway process (from /proc), and the cost of the
input-schema check alone (in-process, on the fixture's `echo` schema and on a larger
captured one).

`--auth identity` runs the gateway as an OAuth resource server instead (a config file
with `[servers.oauth]`, the test authorization server tests/gateway/fixtures/auth_server.py
started beside it): every call carries a real RS256 JWT access token, validated against the
issuer's published keys on first sight and from the per-token cache after, its claims
mapped to the principal (a groups claim and two attributes), the scope checked, issuer and
subject audited. The run then also reports, in-process, what authentication costs per
request: a cached token, a token validated from scratch (signature and claims), and a
grant token for comparison.

`--floor` measures two more proxies in the same run, the same way: bench/relay_proxy.py, a
byte relay (one more process and two more loopback hops, nothing parsed: the hop alone),
and bench/floor_proxy.py, the thinnest HTTP proxy on the gateway's own stack (uvicorn,
httptools, uvloop, mcpp's upstream client) and nothing else. The relay's figure is what
any proxy costs here; the floor's, beyond it, what handling HTTP in Python costs; the
gateway's, beyond the floor, the cost of governing the call.

`--placement` says where the processes run, on a machine with at least two CPUs. At
concurrency 1 the client, the proxy and the upstream take turns, and the figure moves with
where the kernel puts each one when it is woken (a woken process that lands on a CPU still
busy with the one that woke it waits for it): `shared` (the default) lets the kernel place
all of them; `own-core` gives the gateway (or the floor proxy) CPU 1 and puts this client
and the upstream on CPU 0, which approximates each process having a core of its own (the
client and the upstream never run at once, but the gateway's work can overlap the
client's); `sidecar` puts the gateway next to the upstream on CPU 1 and the client on CPU 0,
so the gateway's work is on the call's path in full.

    python3 bench/gateway_bench.py [--calls 2000] [--concurrency 1 32] [--clients sdk-auto sdk-legacy raw]
                                   [--auth grant|identity] [--floor] [--placement shared|own-core|sidecar] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
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
AUTH_SERVER = ROOT / "tests" / "gateway" / "fixtures" / "auth_server.py"
CATALOG = ROOT / "tests" / "catalog" / "fixtures" / "github.json"
POLICY = "permit (principal, action, resource);\n"
META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
CLK = os.sysconf("SC_CLK_TCK")


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


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK  # utime + stime


class RawTarget:
    """The hand-written client: one keep-alive pool, 2026-07-28 requests, JSON or SSE answers."""

    def __init__(self, name: str, url: str, token: str | None):
        from mcpp.runtime.gateway.http_client import HTTPUpstream

        self.name = name
        self.pool = HTTPUpstream(url, keepalive=30.0, max_idle=256)
        self.headers = [
            ("content-type", "application/json"), ("accept", "application/json, text/event-stream"),
            ("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call"), ("mcp-name", "echo"),
        ] + ([("authorization", f"Bearer {token}")] if token else [])
        self.n = 0

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.pool.close()

    async def call(self) -> None:
        self.n += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self.n, "method": "tools/call",
                           "params": {"name": "echo", "arguments": {"text": f"ping {self.n}"}, "_meta": META}}).encode()
        resp = await self.pool.request("POST", self.headers, body, 30.0)
        data = await resp.read(30.0)
        if resp.status != 200 or b'"isError":true' in data or b"ping" not in data:
            raise RuntimeError(f"{self.name}: unexpected response {resp.status} {data[:200]!r}")


class SDKTarget:
    """The official SDK client: one `mcp.Client` session; `call_tool` from every task."""

    def __init__(self, name: str, url: str, token: str | None, mode: str):
        self.name, self.url, self.token, self.mode = name, url, token, mode
        self.n = 0
        self.stack = contextlib.AsyncExitStack()

    async def __aenter__(self):
        import httpx2
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        limits = httpx2.Limits(max_connections=64, max_keepalive_connections=64)
        http = await self.stack.enter_async_context(httpx2.AsyncClient(headers=headers, timeout=30, limits=limits))
        self.client = await self.stack.enter_async_context(Client(streamable_http_client(self.url, http_client=http), mode=self.mode))
        return self

    async def __aexit__(self, *exc):
        await self.stack.aclose()

    async def call(self) -> None:
        self.n += 1
        r = await self.client.call_tool("echo", {"text": f"ping {self.n}"})
        if r.is_error or not r.content[0].text.startswith("ping"):
            raise RuntimeError(f"{self.name}: unexpected result {r}")


async def run_block(t, calls: int, conc: int) -> tuple[list[float], float]:
    lat: list[float] = []
    left = calls

    async def worker():
        nonlocal left
        while left > 0:
            left -= 1
            t0 = time.perf_counter()
            await t.call()
            lat.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(conc)])
    return lat, time.perf_counter() - t0


@contextlib.contextmanager
def upstream_and_grant(tmp: Path):
    """The fixture upstream running and a grant in `tmp/state` (for the single-gateway
    tools beside this one): yields (the upstream's process, its port, the grant's token)."""
    (tmp / "policy.mcpp").write_text(POLICY)
    up_port = free_port()
    up = subprocess.Popen([sys.executable, str(FIXTURE), "--port", str(up_port)], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_port(up_port, up)
        grant = json.loads(subprocess.run(
            [sys.executable, "-m", "mcpp", "grant", "create", "--server", "default", "--label", "bench",
             "--state", str(tmp / "state"), "--json"], check=True, capture_output=True, text=True).stdout)
        yield up, up_port, grant["token"]
    finally:
        os.killpg(up.pid, signal.SIGTERM)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def own_cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def peers_cpu(up_pid: int) -> tuple[float, float]:
    """(this client's CPU seconds, the upstream's) so far."""
    return own_cpu_seconds(), cpu_seconds(up_pid)


async def measure(direct, gateway, calls: int, conc: int, gw_pid: int, up_pid: int, blocks: int = 8) -> dict:
    """Latency and throughput of both targets under the same conditions: at concurrency 1
    the calls alternate one by one (direct, gateway, gateway, direct, …), so a shared
    machine's load swings hit both alike; at higher concurrency, blocks alternate.

    Besides the gateway's CPU per call, the peers' (this client's and the upstream's) for
    each target: at concurrency 32 the CPUs are saturated, and a proxy costs throughput by
    its own CPU and by what its presence adds to the peers' (docs/gateway.md, Benchmark)."""
    for t in (direct, gateway):  # warm up connections, caches and the upstream
        await run_block(t, max(200, conc * 10), conc)
    res = {t.name: {"lat": [], "time": 0.0, "calls": 0, "client_cpu": 0.0, "upstream_cpu": 0.0} for t in (direct, gateway)}
    gw_cpu = 0.0
    if conc == 1:
        for i in range(calls):
            for t in ((direct, gateway) if i % 2 == 0 else (gateway, direct)):
                c0 = cpu_seconds(gw_pid) if t is gateway else 0.0
                p0 = peers_cpu(up_pid)
                t0 = time.perf_counter()
                await t.call()
                dt = time.perf_counter() - t0
                p1 = peers_cpu(up_pid)
                if t is gateway:
                    gw_cpu += cpu_seconds(gw_pid) - c0
                r = res[t.name]
                r["client_cpu"] += p1[0] - p0[0]
                r["upstream_cpu"] += p1[1] - p0[1]
                r["lat"].append(dt)
                r["time"] += dt
                r["calls"] += 1
    per = max(1, calls // blocks)
    for b in range(blocks if conc > 1 else 0):
        order = (direct, gateway) if b % 2 == 0 else (gateway, direct)
        for t in order:
            c0 = cpu_seconds(gw_pid)
            p0 = peers_cpu(up_pid)
            lat, el = await run_block(t, per, conc)
            p1 = peers_cpu(up_pid)
            if t is gateway:
                gw_cpu += cpu_seconds(gw_pid) - c0
            r = res[t.name]
            r["client_cpu"] += p1[0] - p0[0]
            r["upstream_cpu"] += p1[1] - p0[1]
            r["lat"] += lat
            r["time"] += el
            r["calls"] += len(lat)
    out = {}
    for name, r in res.items():
        out[name] = {
            "p50_ms": round(pct(r["lat"], 50) * 1000, 3), "p99_ms": round(pct(r["lat"], 99) * 1000, 3),
            "mean_ms": round(statistics.fmean(r["lat"]) * 1000, 3), "calls_per_s": round(r["calls"] / r["time"], 1),
            "calls": r["calls"],
            "client_cpu_ms_per_call": round(r["client_cpu"] / r["calls"] * 1000, 3),
            "upstream_cpu_ms_per_call": round(r["upstream_cpu"] / r["calls"] * 1000, 3),
        }
    d, g = out["direct"], out["gateway"]
    out["added_p50_ms"] = round(g["p50_ms"] - d["p50_ms"], 3)
    out["added_p99_ms"] = round(g["p99_ms"] - d["p99_ms"], 3)
    out["throughput_ratio"] = round(g["calls_per_s"] / d["calls_per_s"], 3)
    out["gateway_cpu_ms_per_call"] = round(gw_cpu / res["gateway"]["calls"] * 1000, 3)
    return out


def schema_check_cost(echo_schema: dict) -> dict:
    """µs per `check()` of conforming arguments, in this process (compiled once, as the gateway does)."""
    from mcpp.catalog.conformance import SchemaCache, check

    cache = SchemaCache()
    out = {}
    gh = json.loads(CATALOG.read_text())["tools"]["create_pull_request"]["tool"]["inputSchema"]
    cases = {
        "echo": (echo_schema, {"text": "ping"}),
        "github create_pull_request": (gh, {"owner": "acme", "repo": "api", "title": "t", "head": "f", "base": "main",
                                            "body": "b", "draft": False, "maintainer_can_modify": True}),
    }
    for name, (schema, args) in cases.items():
        v = cache.get(schema)
        assert check(v, args) is None, (name, check(v, args))
        n = 20000
        t0 = time.perf_counter()
        for _ in range(n):
            cache.get(schema)  # the cache lookup is part of the per-call cost
            check(v, args)
        out[name] = round((time.perf_counter() - t0) / n * 1e6, 2)
    return out


IDENTITY_CONFIG = """
[gateway]
port = {port}
state_dir = "state"

[issuers.local]
issuer = "{issuer}"

[[servers]]
id = "default"
url = "{upstream}"
policy = "policy.mcpp"
enforce_input_schema = {typed}

[servers.oauth]
resource = "http://127.0.0.1:{port}/mcp/default"
issuers = ["local"]
required_scopes = ["mcp"]
groups_claim = "groups"
private_claims = ["email"]

[servers.oauth.claims]
email = {{ claim = "email", type = "String" }}
dept = {{ claim = "dept", type = "String" }}
"""


def start_identity(tmp: Path, up_port: int, gw_port: int, typed: bool, procs: list) -> tuple[str, str]:
    """The authorization server fixture and a config trusting it; (config path, a token)."""
    import httpx2

    as_port = free_port()
    auth = subprocess.Popen([sys.executable, str(AUTH_SERVER), "--port", str(as_port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    procs.append(auth)
    wait_port(as_port, auth)
    base = f"http://127.0.0.1:{as_port}"
    issuer = httpx2.get(f"{base}/control/stats", timeout=10).json()["issuer"]
    httpx2.post(f"{base}/control/ttl", json={"seconds": 6 * 3600}, timeout=10).raise_for_status()
    token = httpx2.post(f"{base}/control/mint", json={"claims": {
        "sub": "bench-user", "aud": f"http://127.0.0.1:{gw_port}/mcp/default", "scope": "mcp tools",
        "groups": ["sre", "payments"], "email": "bench@acme.test", "dept": "platform"}}, timeout=10).json()["token"]
    cfg = tmp / "gateway.toml"
    cfg.write_text(IDENTITY_CONFIG.format(port=gw_port, issuer=issuer, upstream=f"http://127.0.0.1:{up_port}/mcp",
                                          typed="true" if typed else "false"))
    return str(cfg), token


def auth_cost(cfg_path: str, token: str, grant_token: str | None, state: Path, n: int = 2000) -> dict:
    """µs per request of authentication alone, in-process, against the running issuer: a
    cached token (the steady state), a token validated from scratch, a grant token."""
    from mcpp.runtime.gateway.config import load_config
    from mcpp.runtime.gateway.jwks import Fetcher, IssuerClient
    from mcpp.runtime.gateway.oauth import ResourceServer

    cfg = load_config(cfg_path)
    server = cfg.server("default")

    async def go() -> dict:
        fetcher = Fetcher()
        clients = {i.name: IssuerClient(i, fetcher) for i in cfg.issuers}
        rs = ResourceServer("default", server.oauth, clients)
        await rs.authenticate(token)  # fetches metadata and keys once
        t0 = time.perf_counter()
        for _ in range(n):
            rs.check_scopes(await rs.authenticate(token))
        cached = (time.perf_counter() - t0) / n * 1e6
        t0 = time.perf_counter()
        for _ in range(n // 10):
            rs.cache = type(rs.cache)()
            rs.check_scopes(await rs.authenticate(token))
        fresh = (time.perf_counter() - t0) / (n // 10) * 1e6
        await fetcher.aclose()
        return {"oauth_cached_us": round(cached, 2), "oauth_validate_us": round(fresh, 2)}

    out = asyncio.run(go())
    if grant_token is not None:
        from mcpp.runtime.gateway.grants import SQLiteGrants, check_token, grant_id_of

        store = SQLiteGrants(state)
        t0 = time.perf_counter()
        for _ in range(n):
            check_token(store.get(grant_id_of(grant_token)), grant_token)
        out["grant_us"] = round((time.perf_counter() - t0) / n * 1e6, 2)
        store.close()
    return out


async def echo_schema(url: str) -> dict:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async with httpx2.AsyncClient(timeout=30) as http, Client(streamable_http_client(url, http_client=http)) as c:
        tools = await c.list_tools()
    return next(t.input_schema for t in tools.tools if t.name == "echo")


# --placement: (this client's CPUs, the upstream's, the gateway's or floor proxy's); None: the kernel's choice
PLACEMENTS: dict[str, tuple[set[int] | None, set[int] | None, set[int] | None]] = {
    "shared": (None, None, None),
    "own-core": ({0}, {0}, {1}),
    "sidecar": ({0}, {1}, {1}),
}


def _on(cpus: set[int] | None):
    """A child's CPUs, set before it execs (so every thread it starts has them)."""
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=2000, help="measured calls per target, client and concurrency")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--clients", nargs="+", default=["sdk-auto", "sdk-legacy", "raw"], choices=["sdk-auto", "sdk-legacy", "raw"])
    ap.add_argument("--no-enforce-input-schema", action="store_true", help="run the gateway without typed calls (to compare)")
    ap.add_argument("--auth", choices=["grant", "identity"], default="grant",
                    help="how clients authenticate: a grant token (default) or an OAuth JWT from a local issuer")
    ap.add_argument("--floor", action="store_true",
                    help="also measure, against direct, bench/relay_proxy.py (a byte relay: the hop alone) and "
                         "bench/floor_proxy.py (the thinnest HTTP proxy on the gateway's own stack)")
    ap.add_argument("--placement", choices=list(PLACEMENTS), default="shared",
                    help="which CPUs the client, the upstream and the proxy run on (see the module's docstring)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    a = ap.parse_args()
    client_cpus, up_cpus, proxy_cpus = PLACEMENTS[a.placement]
    if client_cpus is not None:
        if (os.cpu_count() or 1) < 2:
            ap.error(f"--placement {a.placement} needs at least two CPUs")
        os.sched_setaffinity(0, client_cpus)
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
                              stderr=subprocess.DEVNULL, start_new_session=True, preexec_fn=_on(up_cpus))
        procs.append(up)
        wait_port(up_port, up)
        grant = json.loads(subprocess.run(
            [sys.executable, "-m", "mcpp", "grant", "create", "--server", "default", "--label", "bench",
             "--state", str(tmp / "state"), "--json"], check=True, capture_output=True, text=True).stdout)
        if a.auth == "identity":
            cfg_path, token = start_identity(tmp, up_port, gw_port, not a.no_enforce_input_schema, procs)
            serve_args = ["--config", cfg_path]
        else:
            token = grant["token"]
            serve_args = ["--policy", str(tmp / "policy.mcpp"), "--upstream", f"http://127.0.0.1:{up_port}/mcp",
                          "--port", str(gw_port), "--state", str(tmp / "state")] + (
                ["--no-enforce-input-schema"] if a.no_enforce_input_schema else [])
        gw = subprocess.Popen([sys.executable, "-m", "mcpp", "serve", *serve_args],
                              stdout=subprocess.DEVNULL, stderr=open(tmp / "gateway.log", "wb"), start_new_session=True,
                              preexec_fn=_on(proxy_cpus))
        procs.append(gw)
        wait_port(gw_port, gw)
        direct_url, gw_url = f"http://127.0.0.1:{up_port}/mcp", f"http://127.0.0.1:{gw_port}/mcp/default/"
        floors = []  # (label, process, url): the proxies measured in the gateway's place
        if a.floor:
            for label, script, arg in (("relay", "relay_proxy.py", str(up_port)), ("floor", "floor_proxy.py", direct_url)):
                fl_port = free_port()
                fp = subprocess.Popen([sys.executable, str(ROOT / "bench" / script), arg, str(fl_port)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                      preexec_fn=_on(proxy_cpus))
                procs.append(fp)
                wait_port(fl_port, fp)
                floors.append((label, fp, f"http://127.0.0.1:{fl_port}/mcp"))

        def targets(kind: str):
            if kind == "raw":
                return RawTarget("direct", direct_url, None), RawTarget("gateway", gw_url, token)
            mode = kind.split("-")[1]
            return SDKTarget("direct", direct_url, None, mode), SDKTarget("gateway", gw_url, token, mode)

        async def go():
            results = {}
            for kind in a.clients:
                for conc in a.concurrency:
                    d, g = targets(kind)
                    async with d, g:
                        results[f"{kind} c{conc}"] = await measure(d, g, a.calls, conc, gw.pid, up.pid)
                    for label, fp, floor_url in floors:  # the same measurement, a floor proxy in the gateway's place
                        d = SDKTarget("direct", direct_url, None, kind.split("-")[1]) if kind != "raw" else RawTarget("direct", direct_url, None)
                        f = SDKTarget("gateway", floor_url, None, kind.split("-")[1]) if kind != "raw" else RawTarget("gateway", floor_url, None)
                        async with d, f:
                            results[f"{kind} c{conc} {label}"] = await measure(d, f, a.calls, conc, fp.pid, up.pid)
            return results, await echo_schema(direct_url)

        results, echo = asyncio.run(go())
        cost = schema_check_cost(echo)
        auth_us = auth_cost(cfg_path, token, grant["token"], tmp / "state") if a.auth == "identity" else None
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
            "calls_per_target": a.calls, "typed_calls": not a.no_enforce_input_schema, "auth": a.auth,
            "auth_us": auth_us,
            "audit_rows_written": int(audited or 0), "schema_check_us": cost, "placement": a.placement,
            "load_average": os.getloadavg()}
    if a.json:
        print(json.dumps({"meta": meta, "results": results}, indent=2))
        return
    print(f"mcpp gateway benchmark — Python {meta['python']}, {meta['cpus']} CPUs, tools/call echo, "
          f"typed calls {'on' if meta['typed_calls'] else 'off'}, audit on, "
          f"auth {'OAuth JWT (identity)' if a.auth == 'identity' else 'grant token'}, placement {a.placement}")
    print(f"{'client':<11} {'conc':>4} {'target':<8} {'p50 ms':>8} {'p99 ms':>8} {'calls/s':>9}")
    for key, r in results.items():
        kind, conc = key.rsplit(" c", 1)
        conc, _, floor_label = conc.partition(" ")
        is_floor = bool(floor_label)
        for name in ("direct", "gateway"):
            x = r[name]
            shown = floor_label if is_floor and name == "gateway" else name
            print(f"{kind:<11} {conc:>4} {shown:<8} {x['p50_ms']:>8.3f} {x['p99_ms']:>8.3f} {x['calls_per_s']:>9.1f}")
        print(f"{'':<11}      added p50 {r['added_p50_ms']:.3f} ms, p99 {r['added_p99_ms']:.3f} ms; "
              f"throughput {r['throughput_ratio'] * 100:.1f}% of direct; {floor_label + ' proxy' if is_floor else 'gateway'} CPU "
              f"{r['gateway_cpu_ms_per_call']:.3f} ms/call")
        d, g = r["direct"], r["gateway"]
        print(f"{'':<11}      peers' CPU per call, direct → {shown}: client {d['client_cpu_ms_per_call']:.3f} → "
              f"{g['client_cpu_ms_per_call']:.3f} ms, upstream {d['upstream_cpu_ms_per_call']:.3f} → "
              f"{g['upstream_cpu_ms_per_call']:.3f} ms")
    print("input-schema check per call: " + ", ".join(f"{k} {v} µs" for k, v in cost.items()))
    if auth_us is not None:
        print(f"authentication per request: OAuth token cached {auth_us['oauth_cached_us']} µs, validated from scratch "
              f"{auth_us['oauth_validate_us']} µs; grant token {auth_us.get('grant_us')} µs")
    print(f"audit rows written by the gateway: {meta['audit_rows_written']}; load average {meta['load_average']}")


if __name__ == "__main__":
    main()
