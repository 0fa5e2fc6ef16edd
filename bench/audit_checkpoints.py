"""Audit commits with and without the gateway's background WAL checkpoints
(runtime/gateway/checkpoints.py): one `AuditLog.write` per call, paced as a gateway's
commits are (a pause between them), timed one by one.

Without the thread, SQLite's automatic checkpoint runs inside every ~430th commit, with an
fdatasync of the database file; with it, the copy is done ahead, off the writer's thread.
Prints the commit-time distribution for each, alternating runs (the disk's own stalls
vary from run to run).

    python3 bench/audit_checkpoints.py [--rows 8000] [--pause-ms 0.3] [--runs 2] [--dir DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from mcpp.runtime.gateway.audit import AuditLog, AuditRow


def _row(i: int) -> AuditRow:
    return AuditRow(ts=time.time(), request_id=str(i), trace_id=None, grant_id="g_1", grant_label="bench", server="s",
                    tool="echo", decision="allow", rule="/tools/echo", message="allowed by rule /tools/echo",
                    arg_keys=["text"], outcome="forwarded")


def run(background: bool, rows: int, pause: float, where: str | None) -> str:
    log = AuditLog(tempfile.mkdtemp(prefix="audit-bench-", dir=where), wait=False)
    if background:
        log.background_checkpoints()
    xs = []
    try:
        for i in range(rows):
            t = time.perf_counter()
            log.write(_row(i))
            xs.append(time.perf_counter() - t)
            time.sleep(pause)
    finally:
        log.close()
    xs.sort()
    n = len(xs)
    return (f"{'background' if background else 'in commit':10s} mean {sum(xs) / n * 1e6:6.1f} µs  p50 {xs[n // 2] * 1e6:6.1f}  "
            f"p99 {xs[int(n * .99)] * 1e6:6.1f}  p99.9 {xs[int(n * .999)] * 1e6:7.0f}  max {xs[-1] * 1e6:7.0f}  "
            f"over 1 ms: {sum(1 for x in xs if x > 1e-3)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=8000)
    ap.add_argument("--pause-ms", type=float, default=0.3)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--dir", default=None, help="where the databases go (default: the temp dir)")
    a = ap.parse_args()
    print(f"audit commits: {a.rows} rows, {a.pause_ms} ms apart, checkpoints in the commit vs in a thread")
    for _ in range(a.runs):
        for background in (False, True):
            print(run(background, a.rows, a.pause_ms / 1000, a.dir))


if __name__ == "__main__":
    main()
