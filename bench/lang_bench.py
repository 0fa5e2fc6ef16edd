"""Decision latency and parse speed: mcpp's engine side by side with cedarpy.

    python bench/lang_bench.py [--quick] [--growth | --eval]

Generated policies spread their rules over tools the way real ones do (a few rules
per tool, plus global forbids), in the Cedar subset so cedarpy runs the very same
text with a pre-parsed PolicySet and Entities. Both decide the same requests; the
medians are per decision, measured from Python (what a gateway pays).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mcpp.lang.parser import parse  # noqa: E402
from mcpp.lang.program import build_program, load_program  # noqa: E402
from mcpp.runtime.engine import Engine, Grant  # noqa: E402

NAMESPACES = ["dev", "staging", "sandbox", "prod", "payments-prod"]
SIZES = (10, 1000, 10000)  # rules in the generated policies
ROUNDS = 30  # interleaved rounds of mcpp's decisions per size (`mcpp_rounds`): ~0.1 s each


def generate(n_rules: int, seed: int = 7) -> str:
    """`n_rules` policies over ~n_rules/3 tools: each tool a permit with argument conditions,
    some a forbid, plus a few global forbids every request must check."""
    rnd = random.Random(seed)
    out = []
    n_tools = max(1, n_rules // 3)
    made = 0
    t = 0
    globals_ = 2 if n_rules >= 10 else 1  # the same global work per request at every size
    for g in range(globals_):
        out.append(
            f'@id("global-{g}")\nforbid (principal, action, resource)\n'
            f'when {{ context.input has flag{g} && context.input.flag{g} == "block" }};'
        )
        made += 1
    while made < n_rules:
        tool = f"tool_{t % n_tools}"
        t += 1
        kind = rnd.random()
        if kind < 0.6:
            ns = ", ".join(f'"{x}"' for x in rnd.sample(NAMESPACES[:3], 2))
            out.append(
                f'@id("p{made}")\npermit (principal, action == Action::"{tool}", resource)\n'
                f'when {{ [{ns}].contains(context.input.namespace) && context.input.count <= {rnd.randint(1, 100)} }};'
            )
        elif kind < 0.85:
            out.append(
                f'@id("f{made}")\nforbid (principal, action == Action::"{tool}", resource)\n'
                f'when {{ context.input has kind && context.input.kind like "Cluster*" }};'
            )
        else:
            out.append(
                f'@id("g{made}")\npermit (principal in Group::"ops", action == Action::"{tool}", resource)\n'
                f'unless {{ context.input.namespace == "prod" }};'
            )
        made += 1
    return "\n\n".join(out) + "\n"


def requests(n_rules: int, count: int, seed: int = 11):
    rnd = random.Random(seed)
    n_tools = max(1, n_rules // 3)
    reqs = []
    for _ in range(count):
        args = {"namespace": rnd.choice(NAMESPACES), "count": rnd.randint(0, 120)}
        if rnd.random() < 0.3:
            args["kind"] = rnd.choice(["Pod", "ClusterRole"])
        reqs.append((f"tool_{rnd.randrange(n_tools)}", args, rnd.random() < 0.5))
    return reqs


def time_each(fn, items, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        for it in items:
            t0 = time.perf_counter_ns()
            fn(it)
            samples.append((time.perf_counter_ns() - t0) / 1000)
    return samples


def generated_case(n_rules: int, n_requests: int, with_cedar: bool = True):
    """The engine on the generated policy of `n_rules` (and cedarpy on the same text):
    (mcpp's decide, cedarpy's, the requests), each decide taking one request."""
    text = generate(n_rules)
    engine = Engine(load_program(text, f"gen{n_rules}.mcpp"))
    ops, dev = Grant("u-ops", "ops-bot", frozenset({"ops"})), Grant("u-dev", "dev-bot")
    reqs = requests(n_rules, n_requests)

    def mine(r):
        tool, args, is_ops = r
        return engine.decide(tool, args, ops if is_ops else dev, "k8s", reserve=False).allowed

    if not with_cedar:
        return mine, None, reqs
    import cedarpy

    policy_set = cedarpy.PolicySet.from_str(text)
    ents = {
        g.id: cedarpy.Entities.from_json_str(json.dumps([{
            "uid": {"type": "Grant", "id": g.id}, "attrs": {"label": g.label},
            "parents": [{"type": "Group", "id": x} for x in g.groups],
        }]))
        for g in (ops, dev)
    }

    def cedar(r):
        tool, args, is_ops = r
        g = ops if is_ops else dev
        req = {"principal": {"type": "Grant", "id": g.id}, "action": {"type": "Action", "id": tool},
               "resource": {"type": "Server", "id": "k8s"}, "context": {"input": args}}
        return cedarpy.is_authorized(req, policy_set, ents[g.id]).allowed

    return mine, cedar, reqs


def mcpp_rounds(cases: dict, repeat: int, rounds: int) -> dict[int, list[list[float]]]:
    """Per size, `rounds` rounds of per-decision samples (every request `repeat` times).
    The rounds are interleaved across sizes — round r measures every size once, in turn —
    so a busy spell of the shared machine falls on all sizes alike rather than on
    whichever size it happened to be measuring; the same method for every size."""
    out: dict[int, list[list[float]]] = {n: [] for n in cases}
    for _ in range(rounds):
        for n, (mine, _cedar, reqs) in cases.items():
            out[n].append(time_each(mine, reqs, repeat))
    return out


def print_growth(per_round: dict[int, list[list[float]]]) -> dict[int, float]:
    """The best round's median per size (the table's figure), the spread of the round
    medians, and the growth to 10,000 rules: best over best, and round by round."""
    meds = {n: [statistics.median(s) for s in rs] for n, rs in per_round.items()}
    best = {n: min(m) for n, m in meds.items()}
    spread = ", ".join(f"{n:,}: {min(m):.2f}–{max(m):.2f} (median {statistics.median(m):.2f})" for n, m in meds.items())
    print(f"mcpp round medians over {len(meds[10])} interleaved rounds, µs: {spread}")
    ratios = sorted(b / a for a, b in zip(meds[10], meds[10000]))
    print(f"growth 10 → 10,000 rules: {best[10000] / best[10]:.2f}× (best round of each; target ≤ 1.5×); "
          f"round by round {statistics.median(ratios):.2f}× median, {ratios[0]:.2f}–{ratios[-1]:.2f}")
    return best


def eval_calls_file(n_rules: int, count: int, path: Path) -> None:
    """The generated requests as `mcpp eval --calls` input: one call a line, each with its
    grant (id, label, groups) and server, as a caller replaying traffic would write them."""
    grants = {True: {"id": "u-ops", "label": "ops-bot", "groups": ["ops"]}, False: {"id": "u-dev", "label": "dev-bot", "groups": []}}
    with path.open("w", encoding="utf-8") as f:
        for tool, args, is_ops in requests(n_rules, count):
            f.write(json.dumps({"name": tool, "arguments": args, "grant": grants[is_ops], "server": "k8s"}) + "\n")


def eval_runner(n_rules: int, count: int, tmp: Path):
    """`mcpp eval POLICY --calls FILE` end to end, in-process (the command's function, so
    interpreter start-up is not counted): load the policy, read the file, parse each
    line, decide, write each decision line to a file. Returns a function that runs one
    round — the command on an empty file (which is the policy load), then on `count`
    calls — and returns the CPU seconds of each: timed in CPU time of this
    (single-threaded) process, like the parse figures, so a shared machine's other
    work does not count."""
    from mcpp.commands.language import eval_cmd

    policy, calls, empty = tmp / f"gen{n_rules}.mcpp", tmp / "calls.jsonl", tmp / "empty.jsonl"
    out = tmp / "out.jsonl"
    policy.write_text(generate(n_rules), encoding="utf-8")
    eval_calls_file(n_rules, count, calls)
    empty.write_text("", encoding="utf-8")

    def run(path: Path) -> float:
        with out.open("w", encoding="utf-8") as f:
            saved, sys.stdout = sys.stdout, f
            try:
                t0 = time.process_time()
                eval_cmd(policy, None, path, "anonymous", "", [], "default", None)
                return time.process_time() - t0
            finally:
                sys.stdout = saved

    def one_round() -> tuple[float, float]:
        fixed = run(empty)
        full = run(calls)
        lines = out.read_text(encoding="utf-8").count("\n")
        assert lines == count, f"mcpp eval wrote {lines} decisions for {count} calls"
        return fixed, full

    return one_round


def _p99(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * 0.99))]


def bench_examples(repeat: int):
    rows = []
    calls = {
        "refunds": [("refund_payment", {"amount": 50}), ("refund_payment", {"amount": 5000}), ("list_charges", {})],
        "github": [("create_issue", {"repo": "policylayer/site"}), ("create_issue", {"repo": "evil/x"}), ("list_issues", {})],
        "slack": [("post_message", {"channel": "#bot-test"}), ("post_message", {"channel": "#general"}), ("delete_channel", {})],
        "shell": [("execute_command", {"command": "git status"}), ("execute_command", {"command": "curl x | bash"})],
        "kubernetes": [("delete_pod", {"namespace": "dev"}), ("delete_pod", {"namespace": "prod"}), ("get_secret", {})],
        "http": [("http_request.post", {"url": "https://api.acme.com/x", "body_bytes": 10}), ("http_request.post", {"url": "https://pastebin.com/x"})],
    }
    for path in sorted((ROOT / "examples").glob("*.mcpp")):
        engine = Engine(load_program(path.read_text(), str(path)))
        items = calls.get(path.stem, [("x", {})])
        s = time_each(lambda r: engine.decide(r[0], r[1], reserve=False), items, repeat)
        rows.append((path.name, statistics.median(s), _p99(s)))
    return rows


def bench_parse(n_rules: int):
    text = generate(n_rules)
    lines = text.count("\n")
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()  # CPU time of this single-threaded parse, robust to a shared machine
        doc = parse(text, "gen.mcpp")
        build_program(doc)
        best = min(best, time.process_time() - t0)
    return lines, best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples (for a smoke run)")
    ap.add_argument("--eval", action="store_true", help="only `mcpp eval --calls` beside cedarpy (10 and 1,000 rules)")
    ap.add_argument("--growth", action="store_true",
                    help="only mcpp's decision latency on the generated policies, and its growth (no cedarpy)")
    args = ap.parse_args()
    repeat = 5 if args.quick else 40
    if args.eval:
        print_eval(args.quick)
        return
    if args.growth:
        cases = {n: generated_case(n, 200, with_cedar=False) for n in SIZES}
        per_round = mcpp_rounds(cases, repeat, 3 if args.quick else ROUNDS)
        print(f"{'rules':>7}{'mcpp p50':>11}{'mcpp p99':>11}")
        for n in SIZES:
            m = min(per_round[n], key=statistics.median)
            print(f"{n:>7}{statistics.median(m):>11.2f}{_p99(m):>11.2f}")
        print_growth(per_round)
        return
    lines, secs = bench_parse(10000)
    print(f"== parsing + validation: {lines} lines (10,000 rules) in {secs * 1000:.0f} ms CPU = {lines / secs:,.0f} lines/s (target ≥ 20,000)")
    ex = "".join(p.read_text() for p in sorted((ROOT / "examples").glob("*.mcpp"))) * 40
    t0 = time.process_time()
    build_program(parse(ex, "examples.mcpp"))
    secs = time.process_time() - t0
    print(f"== parsing + validation: the examples x40, {ex.count(chr(10))} lines in {secs * 1000:.0f} ms CPU = {ex.count(chr(10)) / secs:,.0f} lines/s")
    print()
    print("== decision latency on the examples (mcpp engine, µs per decision)")
    print(f"{'example':<18}{'median':>10}{'p99':>10}")
    for name, med, p99 in bench_examples(repeat * 10):
        print(f"{name:<18}{med:>10.2f}{p99:>10.2f}")
    print()
    print("== generated policies, same text and requests in both engines (µs per decision)")
    print(f"{'rules':>7}{'mcpp p50':>11}{'mcpp p99':>11}{'cedarpy p50':>13}{'cedarpy p99':>13}{'ratio':>8}{'disagree':>10}")
    cases = {n: generated_case(n, 200) for n in SIZES}
    per_round = mcpp_rounds(cases, repeat, 3 if args.quick else ROUNDS)
    for n, (mine, cedar, reqs) in cases.items():
        m = min(per_round[n], key=statistics.median)  # a median is only as good as its round
        # cedarpy: best of three rounds, a quarter of the repeats (at 10,000 rules a decision takes ~50 ms)
        c = min((time_each(cedar, reqs, max(1, repeat // 4)) for _ in range(3)), key=statistics.median)
        dis = sum(1 for r in reqs if mine(r) != cedar(r))
        med, cmed = statistics.median(m), statistics.median(c)
        print(f"{n:>7}{med:>11.2f}{_p99(m):>11.2f}{cmed:>13.2f}{_p99(c):>13.2f}{med / cmed:>8.3f}{dis:>10}")
    print_growth(per_round)
    print()
    # in a process of its own: this one now holds the 10,000-rule programs and cedarpy's
    # policy sets, whose heap would be measured too
    import subprocess

    sys.stdout.flush()
    subprocess.run([sys.executable, __file__, "--eval"] + (["--quick"] if args.quick else []), check=True)


def cedar_runner(n_rules: int, count: int):
    """cedarpy deciding the same requests in a loop, timed like `eval_runner` (CPU time of
    the whole batch): a function that runs one batch and returns its in-process
    decision time, µs per decision."""
    import cedarpy

    text = generate(n_rules)
    policy_set = cedarpy.PolicySet.from_str(text)
    grants = {True: Grant("u-ops", "ops-bot", frozenset({"ops"})), False: Grant("u-dev", "dev-bot")}
    ents = {
        is_ops: cedarpy.Entities.from_json_str(json.dumps([{
            "uid": {"type": "Grant", "id": g.id}, "attrs": {"label": g.label},
            "parents": [{"type": "Group", "id": x} for x in g.groups],
        }]))
        for is_ops, g in grants.items()
    }
    reqs = requests(n_rules, count)

    def one_batch() -> float:
        t0 = time.process_time()
        for tool, args, is_ops in reqs:
            req = {"principal": {"type": "Grant", "id": grants[is_ops].id}, "action": {"type": "Action", "id": tool},
                   "resource": {"type": "Server", "id": "k8s"}, "context": {"input": args}}
            cedarpy.is_authorized(req, policy_set, ents[is_ops])
        return (time.process_time() - t0) / count * 1e6

    return one_batch


def print_eval(quick: bool, rounds: int = 5) -> None:
    """Rounds alternate between the two (mcpp's empty file, its calls, cedarpy's batch),
    so a busy spell of the shared machine falls on both alike. The table's figures are
    the best round of each (mcpp: best of its calls less best of its empty runs); the
    line under it gives the ratio round by round (each round's mcpp over the same
    round's cedarpy), which is what a busy machine moves."""
    import tempfile

    print("== mcpp eval --calls, end to end (read, parse, decide, write one JSON line a call) beside cedarpy deciding")
    print(f"   the same calls in-process (both: CPU time of the batch / calls, best of {rounds} interleaved rounds)")
    print(f"{'rules':>7}{'calls':>8}{'mcpp eval µs/call':>19}{'cedarpy µs/call':>17}{'ratio':>8}{'load ms':>9}")
    by_round = {}
    for n in (10, 1000):
        # at 1,000 rules the policy load is a third of a second: more calls keep its
        # run-to-run noise out of the per-call figure
        calls = (2_000 if quick else 20_000) * (1 if n <= 10 else 2)
        with tempfile.TemporaryDirectory() as tmp:
            mine = eval_runner(n, calls, Path(tmp))
            cedar = cedar_runner(n, calls if n <= 10 else calls // 10)
            mine()  # warm-up, not counted: the first run imports the command's modules
            fixed, full, theirs = [], [], []
            for _ in range(rounds):
                f, c = mine()
                fixed.append(f)
                full.append(c)
                theirs.append(cedar())
        per_call = (min(full) - min(fixed)) / calls * 1e6
        print(f"{n:>7}{calls:>8}{per_call:>19.2f}{min(theirs):>17.2f}{per_call / min(theirs):>8.3f}{min(fixed) * 1000:>9.0f}")
        by_round[n] = sorted((c - f) / calls * 1e6 / t for f, c, t in zip(fixed, full, theirs))
    print("(target: mcpp eval ≤ 1/10 of cedarpy's in-process decision, ratio ≤ 0.100)")
    for n, ratios in by_round.items():
        print(f"ratio round by round, {n:,} rules: median {statistics.median(ratios):.3f}, {ratios[0]:.3f}–{ratios[-1]:.3f}")
    print()


if __name__ == "__main__":
    main()
