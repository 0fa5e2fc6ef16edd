"""Analyzer benchmark: `mcpp verify` on every example, then lint and diff on generated
policies of 100, 1,000 and 5,000 rules, timed in one run, with the growth between sizes.

    python3 bench/analyzer_bench.py            # all sizes
    python3 bench/analyzer_bench.py 100 1000   # chosen sizes
    python3 bench/analyzer_bench.py --no-examples 1000
    python3 bench/analyzer_bench.py --no-examples --repeat 3 1000   # best of three per size

Targets on the project's 2-core machine (issue 9): each example verified < 1 s; all
lints on 1,000 rules < 5 s; diff of two 1,000-rule versions < 2 s. Each figure is
printed as wall-clock time and as the CPU time of this (single-threaded) process: on a
machine shared with other jobs the wall clock measures the neighbours, the CPU time
measures the analyzer, so the targets are judged on CPU time and both are recorded in
docs/performance.md. Even CPU time varies with the machine's load (shared caches and
cores): `--repeat N` runs lint and diff N times per size and keeps the fastest, and the
load averages (as `uptime` prints them) are shown before and after.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mcpp.analyzer.diff import diff_programs  # noqa: E402
from mcpp.analyzer.lints import lint  # noqa: E402
from mcpp.analyzer.solve import Session  # noqa: E402
from mcpp.analyzer.verify import verify  # noqa: E402
from mcpp.lang.program import load_program  # noqa: E402
from mcpp.lang.load import load_policy  # noqa: E402

RULES_PER_TOOL = 5
NAMESPACES = ["dev", "staging", "sandbox", "qa", "prod", "payments-prod"]


def generate(n_rules: int, seed: int = 7, change: float = 0.0) -> str:
    """A policy shaped like the examples: per tool a guarded permit, forbids on
    arguments, a regex allowlist or a limit. `change` perturbs that fraction of rules
    (the "new version" for diff)."""
    rnd = random.Random(seed)
    mutate = random.Random(seed + 1)
    out = ["default deny;", ""]
    n_tools = max(1, n_rules // RULES_PER_TOOL)
    made = 0
    for t in range(n_tools):
        tool = f"tool_{t:05d}"
        cap = rnd.choice([100, 500, 1000, 5000])
        if change and mutate.random() < change:
            cap *= 2
        ns = rnd.sample(NAMESPACES[:4], 2)
        rules = [
            f'@id("{tool}-allow")\npermit (principal, action == Action::"{tool}", resource)\n'
            f'when {{ context.input.namespace in ["{ns[0]}", "{ns[1]}"] && context.input.amount <= {cap} }};',
            f'@id("{tool}-no-prod")\nforbid (principal, action == Action::"{tool}", resource)\n'
            f'when {{ context.input.namespace like "*prod*" }};',
            f'@id("{tool}-owner")\nforbid (principal, action == Action::"{tool}", resource)\n'
            f'unless {{ context.input has owner && context.input.owner.matches("^[a-z]{{2,12}}$") }};',
            f'@id("{tool}-ops")\npermit (principal in Group::"ops-{t % 7}", action == Action::"{tool}", resource)\n'
            f'when {{ context.input.url.matches("^https://(api|docs)\\\\.example{t % 13}\\\\.com/") }};',
            f'@id("{tool}-budget")\nlimit "{tool}-calls" (principal, action == Action::"{tool}", resource) '
            f'max {rnd.choice([10, 50, 100])} per hour;',
        ]
        for r in rules:
            if made >= n_rules:
                break
            out.append(r)
            made += 1
    return "\n".join(out) + "\n"


def timed(fn):
    t = time.perf_counter()
    result = fn()
    return time.perf_counter() - t, result


def cpu_timed(fn):
    """(wall s, CPU s of this process, result): Z3 runs in-process and single-threaded;
    the few isolated checks that fork a child are not counted (none in these policies)."""
    w, c = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - w, time.process_time() - c, result


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main(sizes: list[int], examples: bool = True, repeat: int = 1) -> int:
    import platform
    import resource
    import subprocess

    print(f"$ python3 bench/analyzer_bench.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"  python {platform.python_version()}, {os.cpu_count()} cores, load average {_load()} (1, 5, 15 min)")
    worst = 0.0
    if examples:
        print("== mcpp verify, per example (in-process; and the whole command, process start included)")
        for path in sorted((ROOT / "examples").glob("*.mcpp")):
            dt, results = timed(lambda: verify(load_policy(path), timeout_ms=5000))
            cli, proc = timed(lambda: subprocess.run([sys.executable, "-m", "mcpp", "verify", str(path)],
                                                     capture_output=True, text=True, cwd=ROOT))
            worst = max(worst, dt)
            status = ", ".join(f"{r.id}={r.status.upper()}" for r in results)
            print(f"  {path.name:<18} {dt:6.3f} s  (command {cli:5.2f} s, exit {proc.returncode}; {len(results)} asserts: {status})")
        print(f"  slowest example: {worst:.3f} s (target < 1 s)")

    # tools/list visibility (tests/analyzer/test_verify_visibility.py checks the caching;
    # the times live here): 205 tools, then the same listing again from the cache
    from mcpp.analyzer.visibility import clear_cache, visible_tools

    clear_cache()
    policy = load_policy(ROOT / "examples" / "kubernetes.mcpp")
    names = [f"tool{i}" for i in range(200)] + sorted(policy.named_tools())[:5]
    first_s, _ = timed(lambda: visible_tools(policy, names, grant_id="g", groups=["ops"]))
    again_s, _ = timed(lambda: visible_tools(policy, names, grant_id="g", groups=["ops"]))
    print(f"\n== tools/list visibility, {len(names)} tools: first {first_s:.3f} s (target < 2 s), "
          f"cached {again_s * 1000:.2f} ms (target < 50 ms)")

    print("\n== lint and diff on generated policies (wall s / CPU s)")
    print(f"  {'rules':>6} {'tools':>6} {'lint wall':>10} {'lint cpu':>9} {'queries':>8} {'findings':>9} "
          f"{'diff wall':>10} {'diff cpu':>9} {'changed':>8} {'lint x':>7} {'diff x':>7}")
    prev = None
    failures = 0
    for n in sizes:
        old = load_program(generate(n), f"gen{n}.mcpp")
        new = load_program(generate(n, change=0.02), f"gen{n}-new.mcpp")
        best = None
        for _ in range(repeat):  # the fastest of `repeat` runs, each with its own session
            fresh = Session(5000)
            run = cpu_timed(lambda: lint(old, session=fresh))
            if best is None or run[1] < best[0][1]:
                best = (run, fresh)
        assert best is not None
        (lint_w, lint_c, findings), session = best
        best = None
        diff_w, diff_c, diffs = min((cpu_timed(lambda: diff_programs(old, new, timeout_ms=5000)) for _ in range(repeat)),
                                    key=lambda r: r[1])
        changed = sum(1 for d in diffs if d.status != "equivalent")
        unknown = sum(1 for d in diffs if d.status == "unknown")
        undecided = sum(1 for d in findings if d.code == "undecided")
        growth = ("", "") if prev is None else (f"{lint_c / prev[0]:6.1f}x", f"{diff_c / prev[1]:6.1f}x")
        print(f"  {n:>6} {len(diffs) - 1:>6} {lint_w:>10.2f} {lint_c:>9.2f} {session.queries:>8} {len(findings):>9} "
              f"{diff_w:>10.2f} {diff_c:>9.2f} {changed:>8} {growth[0]:>7} {growth[1]:>7}"
              + (f"  ({unknown} unknown)" if unknown else "") + (f"  ({undecided} undecided)" if undecided else ""))
        if n == 1000:
            if lint_c >= 5:
                print(f"  target missed: all lints on 1,000 rules took {lint_c:.2f} s of CPU (target < 5 s)")
                failures += 1
            if diff_c >= 2:
                print(f"  target missed: diff of two 1,000-rule versions took {diff_c:.2f} s of CPU (target < 2 s)")
                failures += 1
        prev = (lint_c, diff_c)
    if worst >= 1.0:
        failures += 1
    if first_s >= 2.0 or again_s >= 0.05:
        failures += 1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"\n  peak memory {peak:.0f} MiB; load average {_load()}")
    print("\ntargets met" if not failures else f"\n{failures} target(s) missed")
    return 1 if failures else 0


if __name__ == "__main__":
    args = sys.argv[1:]
    examples = "--no-examples" not in args
    repeat = 1
    if "--repeat" in args:
        i = args.index("--repeat")
        repeat = max(1, int(args[i + 1]))
        del args[i : i + 2]
    sizes = [int(a) for a in args if a != "--no-examples"] or [100, 1000, 5000]
    sys.exit(main(sizes, examples, repeat))
