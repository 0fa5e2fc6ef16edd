"""The decision engine of another revision beside this checkout's, in one process.

    python bench/engine_ab.py BASE [--rounds N] [--repeat N]

Why: the growth figure of `lang_bench.py` (10 → 10,000 rules) moves with the shared
machine's load by more than most changes to the engine move it, so two separate runs
cannot tell a change from the weather. Here `runtime/engine.py` and `lang/evaluator.py`
of git revision BASE are loaded from git as modules of their own (the rest of `mcpp`
is this checkout's), both engines are built on the generated policies of
`lang_bench.py`, and the rounds alternate over engine and size — round r measures
every (engine, size) once, in turn — so a busy spell falls on both alike. Printed per
engine: each size's best round and median round (the median of the per-round medians),
and the growth best over best and round by round (median and range). It also checks
that both engines decide every request alike.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from lang_bench import SIZES, generate, requests, time_each  # noqa: E402
from mcpp.lang.program import load_program  # noqa: E402
from mcpp.runtime.engine import Engine, Grant  # noqa: E402


def _module_at(rev: str, path: str, name: str, package: str) -> types.ModuleType:
    """`path` as it is at git revision `rev`, executed as module `name` of `package`."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"], check=True,
                         capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    mod.__package__ = package
    mod.__file__ = f"{rev}:{path}"
    sys.modules[name] = mod
    exec(compile(src, mod.__file__, "exec"), mod.__dict__)
    return mod


def base_engine(rev: str) -> types.ModuleType:
    """BASE's engine module (its Engine compiles conditions with BASE's evaluator; its
    Engine takes its own Grant class)."""
    ev = _module_at(rev, "lang/evaluator.py", "mcpp.lang._ab_evaluator", "mcpp.lang")
    saved = sys.modules["mcpp.lang.evaluator"]
    sys.modules["mcpp.lang.evaluator"] = ev  # what BASE's engine imports by that name
    try:
        eng = _module_at(rev, "runtime/engine.py", "mcpp.runtime._ab_engine", "mcpp.runtime")
    finally:
        sys.modules["mcpp.lang.evaluator"] = saved
    return eng


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base", help="git revision of the engine to compare with (e.g. main)")
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=40, help="times each of the 200 requests is decided per round")
    args = ap.parse_args()
    base = base_engine(args.base)
    engines = {"base": (base.Engine, base.Grant), "this": (Engine, Grant)}
    cases = {}
    for n in SIZES:
        program = load_program(generate(n), f"gen{n}.mcpp")
        reqs = requests(n, 200)
        for label, (cls, grant) in engines.items():
            eng = cls(program)
            ops, dev = grant("u-ops", "ops-bot", frozenset({"ops"})), grant("u-dev", "dev-bot")

            def mine(r, eng=eng, ops=ops, dev=dev):
                tool, a, is_ops = r
                return eng.decide(tool, a, ops if is_ops else dev, "k8s", reserve=False).allowed

            cases[(label, n)] = (mine, reqs)
        a, b = cases[("base", n)][0], cases[("this", n)][0]
        assert all(a(r) == b(r) for r in reqs), f"the engines disagree at {n} rules"
    meds: dict[tuple[str, int], list[float]] = {k: [] for k in cases}
    for _ in range(args.rounds):
        for k, (mine, reqs) in cases.items():
            meds[k].append(statistics.median(time_each(mine, reqs, args.repeat)))
    print(f"{args.rounds} interleaved rounds, each request {args.repeat} times a round; µs per decision")
    print(f"{'engine':<8}" + "".join(f"{f'{n:,} best':>13}{f'{n:,} med':>12}" for n in SIZES)
          + f"{'growth best':>13}{'round by round: median, range':>32}")
    for label in engines:
        row = f"{label:<8}"
        for n in SIZES:
            m = meds[(label, n)]
            row += f"{min(m):>13.3f}{statistics.median(m):>12.3f}"
        lo, hi = meds[(label, SIZES[0])], meds[(label, SIZES[-1])]
        ratios = sorted(b / a for a, b in zip(lo, hi))
        row += (f"{min(hi) / min(lo):>12.3f}×{statistics.median(ratios):>17.3f}× "
                f"{ratios[0]:.2f}–{ratios[-1]:.2f}")
        print(row)
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.base], capture_output=True, text=True)
    print(f"(base: {args.base} = {rev.stdout.strip()}; this: the working tree)")


if __name__ == "__main__":
    main()
