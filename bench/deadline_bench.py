"""`mcpp verify` on a generated policy of many hard regex rules, with and without `--deadline`.

    python3 bench/deadline_bench.py                          # 400 rules, --deadline 30
    python3 bench/deadline_bench.py --rules 40 --deadline 10
    python3 bench/deadline_bench.py --no-baseline            # only the bounded run
    python3 bench/deadline_bench.py --command lint           # mcpp lint instead

Each rule is a permit on a tool of its own whose condition is
`context.input.x.matches("…")` with a different Unicode-class pattern (the shape issue 9
reports: about a second per rule, with no overall bound), and each tool has an `assert
deny` for one value the pattern does not match (a PASS, proved rule by rule). The command runs as a subprocess (`python -m
mcpp`), so the figure is what CI sees: start-up, loading, analysis and output. Printed:
the wall-clock time of each run, the PASS/FAIL/UNKNOWN counts, how many UNKNOWNs name the
deadline, and the exit code. Recorded in docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Unicode classes the analyzer models (none tells apart code points above U+2FA1F), from
# a few ranges to hundreds (\p{Lu}, \p{Ll}: the widest, which run in a killable child)
CLASSES = ["Lu", "Ll", "Greek", "Cyrillic", "N", "Nd", "Sm", "So", "Arabic", "Latin", "Hebrew", "P", "S", "Lm"]


def generate(n_rules: int) -> str:
    out = ["default deny;", ""]
    for i in range(n_rules):
        c = CLASSES[i % len(CLASSES)]
        d = CLASSES[(i * 5 + 3) % len(CLASSES)]
        pattern = f"^[\\\\p{{{c}}}a-c]{{{2 + i % 5}}}-{i}[\\\\p{{{d}}}\\\\d]+$"
        tool = f"tool_{i:04d}"
        out.append(f'@id("{tool}-fmt")\npermit (principal, action == Action::"{tool}", resource)\n'
                   f'when {{ context.input.x.matches("{pattern}") }};')
        out.append(f'@id("{tool}-closed")\nassert deny (principal, action == Action::"{tool}", resource) '
                   f'when {{ context.input.x == "zz-{i}" }};')
    return "\n".join(out) + "\n"


def run(command: str, path: Path, extra: list[str]) -> dict:
    args = [sys.executable, "-m", "mcpp", command, str(path), "--format", "json", *extra]
    t = time.perf_counter()
    p = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - t
    out = {"wall_s": round(wall, 1), "exit": p.returncode}
    try:
        doc = json.loads(p.stdout)
    except json.JSONDecodeError:
        out["error"] = (p.stderr or p.stdout)[-500:]
        return out
    if command == "verify":
        asserts = [a for f in doc["files"] for a in f["asserts"]]
        out.update({s: sum(1 for a in asserts if a["status"] == s) for s in ("pass", "fail", "unknown")})
        out["unknown_by_deadline"] = sum(1 for a in asserts if a["status"] == "unknown" and "deadline" in a["message"])
    else:
        findings = doc["findings"]
        out["findings"] = len(findings)
        out["undecided_by_deadline"] = sum(1 for f in findings if f["code"] == "undecided" and "deadline" in f["message"])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rules", type=int, default=400)
    ap.add_argument("--deadline", type=float, default=30.0)
    ap.add_argument("--timeout", type=int, default=5000, help="--timeout MS per query (the CLI's default)")
    ap.add_argument("--command", choices=("verify", "lint"), default="verify")
    ap.add_argument("--no-baseline", action="store_true", help="skip the run without --deadline")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"regex-{a.rules}.mcpp"
        path.write_text(generate(a.rules))
        print(f"load average: {os.getloadavg()}")
        print(f"mcpp {a.command} on {a.rules} regex rules ({a.rules} tools, one assert each), --timeout {a.timeout}")
        runs = [("with --deadline %g" % a.deadline, ["--timeout", str(a.timeout), "--deadline", str(a.deadline)])]
        if not a.no_baseline:
            runs.append(("without --deadline", ["--timeout", str(a.timeout)]))
        for name, extra in runs:
            print(f"  {name:<22} {json.dumps(run(a.command, path, extra))}", flush=True)
        print(f"load average: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
