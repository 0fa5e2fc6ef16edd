"""Instructions per `tools/call` in the gateway process, counted by callgrind: a figure the
machine's load does not move (latency and CPU time on a shared 2-core machine swing by
25% and more between runs), for comparing two versions of the gateway's request path.

It starts the SDK fixture upstream, then `mcpp serve` (allow-all policy, a grant, typed
calls and the audit on, as bench/gateway_bench.py) under `valgrind --tool=callgrind` with
counting off; warms up with 30 calls from the official SDK client; counts the next
`--calls` calls only; and prints user-space instructions per call. `--floor` counts
bench/floor_proxy.py the same way (the thinnest proxy on the same HTTP stack), so the
difference is what governing a call costs. Kernel work (the syscalls) is not counted.
Needs valgrind (`apt-get install valgrind`); the gateway runs about 50× slower under it.

`--breakdown` counts the gateway again without each part of its request path in turn (the
part replaced by a stand-in that does nothing, bench/without/sitecustomize.py): the
difference is what the part costs per call. Counts move by about ±0.03 M from run to run
(timers, the collector, the audit checkpoint thread), so a part below that is not resolved
by one run.

    python3 bench/gateway_instructions.py [--calls 200] [--client sdk-auto|sdk-legacy|raw] [--floor] [--breakdown] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gateway_bench as gb  # noqa: E402  (the fixture, the targets and the helpers are shared)


PARTS = ("audit", "schema", "auth", "routing", "telemetry")  # --breakdown: bench/without/sitecustomize.py


def count(kind: str, calls: int, client: str, tmp: Path, up_port: int, token: str | None, without: str = "") -> float:
    port = gb.free_port()
    out = tmp / f"{kind}{'-without-' + without if without else ''}.callgrind"
    grind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}", sys.executable]
    if kind == "gateway":
        cmd = grind + ["-m", "mcpp", "serve", "--policy", str(tmp / "policy.mcpp"), "--upstream",
                       f"http://127.0.0.1:{up_port}/mcp", "--port", str(port), "--state", str(tmp / "state")]
        url = f"http://127.0.0.1:{port}/mcp/default/"
    else:
        cmd = grind + [str(gb.ROOT / "bench" / "floor_proxy.py"), f"http://127.0.0.1:{up_port}/mcp", str(port)]
        url, token = f"http://127.0.0.1:{port}/mcp", None
    env = None
    if without:  # the gateway with one part of its request path done by a stand-in that does nothing
        env = {**os.environ, "MCPP_BENCH_WITHOUT": without,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(gb.ROOT / "bench" / "without"), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(tmp / f"{out.stem}.log", "wb"), start_new_session=True,
                            env=env)
    try:
        gb.wait_port(port, proc, timeout=300)

        async def drive() -> None:
            t = gb.RawTarget(kind, url, token) if client == "raw" else gb.SDKTarget(kind, url, token, client.split("-")[1])
            async with t:
                for _ in range(30):
                    await t.call()
                subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True, capture_output=True)
                for _ in range(calls):
                    await t.call()
                subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], check=True, capture_output=True)

        asyncio.run(drive())
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(120)
    total = 0
    for f in glob.glob(f"{out}*"):
        for line in open(f):
            if line.startswith("totals:"):
                total += int(line.split()[1])
                break
    return total / calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--client", choices=["sdk-auto", "sdk-legacy", "raw"], default="sdk-auto")
    ap.add_argument("--floor", action="store_true", help="count bench/floor_proxy.py too")
    ap.add_argument("--keep", metavar="DIR", help="keep the callgrind files in DIR (for callgrind_annotate)")
    ap.add_argument("--breakdown", action="store_true",
                    help=f"also count the gateway without each part of its request path ({', '.join(PARTS)}): "
                         "what each part costs")
    a = ap.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("gateway_instructions: valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        raise SystemExit(2)
    tmp = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="mcpp-instr-"))
    tmp.mkdir(parents=True, exist_ok=True)
    with gb.upstream_and_grant(tmp) as (_, up_port, token):
        rows = [("gateway", count("gateway", a.calls, a.client, tmp, up_port, token))]
        if a.floor:
            rows.append(("floor", count("floor", a.calls, a.client, tmp, up_port, None)))
        parts = [(p, count("gateway", a.calls, a.client, tmp, up_port, token, without=p)) for p in PARTS] if a.breakdown else []
    print(f"user-space instructions per tools/call ({a.client}, {a.calls} calls counted, callgrind):")
    for name, n in rows:
        print(f"  {name:<8} {n / 1e6:.3f} M")
    if a.floor:
        print(f"  governing a call costs {(rows[0][1] - rows[1][1]) / 1e6:.3f} M beyond the floor")
    for part, n in parts:
        print(f"  {part:<10} {(rows[0][1] - n) / 1e6:6.3f} M  (the gateway without it: {n / 1e6:.3f} M)")


if __name__ == "__main__":
    main()
