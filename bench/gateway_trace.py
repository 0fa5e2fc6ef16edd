"""Where a call's time goes on the wire: the kernel's own timestamps of every socket read
and write, and of every wake-up, in the client, the proxy and the upstream, while the
official SDK client makes `--calls` calls through the gateway (and with `--floor`, through
bench/floor_proxy.py). Latency and CPU time on a shared 2-core machine swing by a quarter
between runs; these segments say which part moved.

Per call, for the proxy process:

- inbound: from the client's last write of the request to the proxy's write of it to the
  upstream (the gateway's work before forwarding: authentication, schema check, decision,
  audit);
- outbound: from the upstream's last write of the answer to the proxy's write of it to the
  client;
- upstream pickup / client pickup: from the proxy's write to the first read of it by the
  process it woke. More than the floor's means the woken process waited for a CPU the proxy
  kept busy (the kernel often puts a woken process on its waker's CPU).

Linux only, as root: it uses ftrace (tracefs, mounted here if it is not) with the
sched_switch/sched_waking and read/write/send/recv syscall events. Tracing costs a few µs a
syscall: compare runs of this tool with each other, not with gateway_bench.py.

    sudo python3 bench/gateway_trace.py [--calls 300] [--client sdk-auto|sdk-legacy] [--floor]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gateway_bench as gb  # noqa: E402  (the fixture, the targets and the helpers are shared)

TRACING = Path("/sys/kernel/tracing")
WRITES = ("write", "writev", "sendto", "sendmsg")
READS = ("read", "recvfrom", "recvmsg")
EVENTS = ["sched/sched_switch", "sched/sched_waking"] + [
    f"syscalls/sys_{d}_{s}" for d in ("enter", "exit") for s in WRITES + READS]
LINE = re.compile(r"^\s*(.+?)-(\d+)\s+\[(\d+)\]\s+\S+\s+([\d.]+): ([a-z_0-9]+)(?:: | |\()(.*)$")


def _tracefs() -> None:
    if os.geteuid() != 0:
        raise SystemExit("gateway_trace: needs root (ftrace)")
    if not (TRACING / "trace").exists():
        subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACING)], check=False, capture_output=True)
    if not (TRACING / "trace").exists():
        raise SystemExit(f"gateway_trace: no tracefs at {TRACING}")


def _set(path: str, value: str) -> None:
    (TRACING / path).write_text(value)


def trace(kind: str, client: str, calls: int, tmp: Path, up: subprocess.Popen, up_port: int, token: str) -> dict:
    """Run `calls` traced calls through `kind` (gateway | floor); return the segments."""
    port = gb.free_port()
    upstream = f"http://127.0.0.1:{up_port}/mcp"
    if kind == "gateway":
        cmd = [sys.executable, "-m", "mcpp", "serve", "--policy", str(tmp / "policy.mcpp"), "--upstream", upstream,
               "--port", str(port), "--state", str(tmp / "state")]
        url, tok = f"http://127.0.0.1:{port}/mcp/default/", token
    else:
        cmd = [sys.executable, str(gb.ROOT / "bench" / "floor_proxy.py"), upstream, str(port)]
        url, tok = f"http://127.0.0.1:{port}/mcp", None
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    lat: list[float] = []
    try:
        gb.wait_port(port, proc)
        _set("tracing_on", "0")
        _set("trace", "")
        _set("buffer_size_kb", "65536")
        for e in EVENTS:
            _set(f"events/{e}/enable", "1")

        async def drive() -> None:
            t = gb.SDKTarget(kind, url, tok, client.split("-")[1])
            async with t:
                for _ in range(50):
                    await t.call()
                _set("tracing_on", "1")
                for _ in range(calls):
                    s = time.perf_counter()
                    await t.call()
                    lat.append(time.perf_counter() - s)
                _set("tracing_on", "0")

        asyncio.run(drive())
        text = (TRACING / "trace").read_text()
        roles = {"client": _tids(os.getpid()), "proxy": _tids(proc.pid), "upstream": _tids(up.pid)}
    finally:
        _set("events/enable", "0")
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(30)
    return segments(text, roles, lat)


def _tids(pid: int) -> list[int]:
    return [int(x) for x in os.listdir(f"/proc/{pid}/task")]


def segments(text: str, roles: dict[str, list[int]], lat: list[float]) -> dict:
    role = {t: r for r, ts in roles.items() for t in ts}
    io: dict[str, list[tuple[float, str, int]]] = defaultdict(list)  # role → (time, r|w, fd)
    pending: dict[int, tuple[str, int, float]] = {}
    for line in text.splitlines():
        m = LINE.match(line)
        if not m or int(m.group(2)) not in role:
            continue
        tid, t, name, rest = int(m.group(2)), float(m.group(4)), m.group(5), m.group(6)
        call = name[4:] if name.startswith("sys_") else None
        if call not in WRITES + READS:
            continue
        if rest.startswith("->"):  # the exit: a read counts when it returned bytes
            if tid in pending:
                kind, fd, t0 = pending.pop(tid)
                n = int(rest.split()[1], 16)
                if kind == "w":
                    io[role[tid]].append((t0, "w", fd))
                elif 0 < n < 1 << 62:
                    io[role[tid]].append((t, "r", fd))
        else:
            fd = re.search(r"fd: (0x[0-9a-f]+|\d+)", rest)
            if fd:
                pending[tid] = ("w" if call in WRITES else "r", int(fd.group(1), 0), t)
    proxy = io["proxy"]
    read_fds = {fd for _, k, fd in proxy if k == "r"}  # (the audit journal is written, never read)
    first_read = next(fd for _, k, fd in proxy if k == "r")  # the client's connection
    client_fds = {first_read}
    writes = Counter(fd for _, k, fd in proxy if k == "w" and fd in read_fds)
    up_fd = next(fd for fd, _ in writes.most_common() if fd not in client_fds)
    c_w = [t for t, k, _ in io["client"] if k == "w"]
    u_w = [t for t, k, fd in io["upstream"] if k == "w" and fd > 2]
    u_r = [t for t, k, _ in io["upstream"] if k == "r"]
    c_r = [t for t, k, _ in io["client"] if k == "r"]
    out: dict[str, list[float]] = defaultdict(list)
    for t, k, fd in proxy:
        if k != "w" or fd not in (up_fd, *client_fds):
            continue
        before, after = (c_w, u_r) if fd == up_fd else (u_w, c_r)
        i = bisect.bisect_left(before, t) - 1
        if i >= 0:
            out["inbound" if fd == up_fd else "outbound"].append(t - before[i])
        j = bisect.bisect_left(after, t)
        if j < len(after):
            out["upstream pickup" if fd == up_fd else "client pickup"].append(after[j] - t)
    res = {k: {"median_ms": statistics.median(v) * 1e3, "p90_ms": sorted(v)[int(len(v) * 0.9)] * 1e3} for k, v in out.items()}
    res["end to end"] = {"median_ms": statistics.median(lat) * 1e3, "p90_ms": sorted(lat)[int(len(lat) * 0.9)] * 1e3}
    return res



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--client", choices=["sdk-auto", "sdk-legacy"], default="sdk-auto")
    ap.add_argument("--floor", action="store_true", help="trace bench/floor_proxy.py the same way")
    a = ap.parse_args()
    _tracefs()
    tmp = Path(tempfile.mkdtemp(prefix="mcpp-trace-"))
    with gb.upstream_and_grant(tmp) as (up, up_port, token):
        runs = {"gateway": trace("gateway", a.client, a.calls, tmp, up, up_port, token)}
        if a.floor:
            runs["floor"] = trace("floor", a.client, a.calls, tmp, up, up_port, token)
    print(f"per-call segments ({a.client}, {a.calls} traced calls; median / p90 ms, ftrace timestamps):")
    keys = ["inbound", "upstream pickup", "outbound", "client pickup", "end to end"]
    print(f"  {'segment':<16}" + "".join(f"{k:>20}" for k in runs))
    for k in keys:
        print(f"  {k:<16}" + "".join(f"{r[k]['median_ms']:>11.3f} /{r[k]['p90_ms']:>6.3f}" if k in r else f"{'-':>20}"
                                     for r in runs.values()))


if __name__ == "__main__":
    main()
