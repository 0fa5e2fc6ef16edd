"""Keystroke latency of `mcpp lsp`: from sending `didChange` to receiving the published
syntax + validation (+ catalog) diagnostics for that version, on a 2,000-line policy.

    python bench/lsp_bench.py [--lines 2000] [--keys 60] [--no-catalog]

A real server process on stdio, a client that frames JSON-RPC by hand and timestamps
each message as it arrives. Edits are incremental, like an editor's: typing characters
inside a condition, breaking and fixing a statement, inserting a line (which moves every
statement below it). Keys are ~80 ms apart, a fast typist, so the debounced analyzer
does not start; then come keys after pauses long enough for it to start, each of which
cancels a running analysis — it must not delay the syntax diagnostics either. After the
last key the time until the analyzer's findings arrive is reported too. The
server's own breakdown of the last check comes from the `mcpp.status` command.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from lang_bench import generate  # noqa: E402


class Client:
    def __init__(self, cwd: str):
        self.proc = subprocess.Popen((os.environ.get("LSP_BENCH_CMD", "").split() or [sys.executable, "-m", "mcpp.lsp"]), cwd=cwd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=None)
        self.cond = threading.Condition()
        self.inbox: list[tuple[float, dict]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.next_id = 0

    def _read(self) -> None:
        out = self.proc.stdout
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    return
                if not line.strip():
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = out.read(length)
            now = time.perf_counter()
            msg = json.loads(body)
            if msg.get("method") == "workspace/configuration":  # answer with our settings
                self.send({"jsonrpc": "2.0", "id": msg["id"], "result": [self.settings]})
                continue
            with self.cond:
                self.inbox.append((now, msg))
                self.cond.notify_all()

    settings: dict = {}

    def send(self, obj: dict) -> float:
        body = json.dumps(obj).encode()
        t0 = time.perf_counter()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()
        return t0

    def request(self, method: str, params) -> dict:
        self.next_id += 1
        rid = self.next_id
        self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        return self.wait(lambda m: m.get("id") == rid)[1]

    def notify(self, method: str, params) -> float:
        return self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def wait(self, pred, timeout: float = 120.0) -> tuple[float, dict]:
        deadline = time.perf_counter() + timeout
        with self.cond:
            while True:
                for i, (ts, m) in enumerate(self.inbox):
                    if pred(m):
                        del self.inbox[i]
                        return ts, m
                left = deadline - time.perf_counter()
                if left <= 0:
                    raise TimeoutError("no matching message")
                self.cond.wait(left)

    def close(self) -> None:
        self.request("shutdown", None)
        self.notify("exit", None)
        self.proc.wait(10)


def catalog_for(text: str) -> dict:
    """A catalog with every tool the generated policy names, typed as its conditions expect."""
    import re

    tools = sorted(set(re.findall(r'Action::"([^"]+)"', text)))
    schema = {"type": "object", "properties": {
        "namespace": {"type": "string"}, "count": {"type": "integer"}, "kind": {"type": "string"},
        "flag0": {"type": "string"}, "flag1": {"type": "string"}}, "required": ["namespace", "count"]}
    return {"tools": [{"name": t, "description": f"tool {t}", "inputSchema": schema} for t in tools]}


def pos_of(text: str, offset: int) -> dict:
    line = text.count("\n", 0, offset)
    return {"line": line, "character": offset - (text.rfind("\n", 0, offset) + 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=2000, help="size of the generated policy")
    ap.add_argument("--keys", type=int, default=60, help="keystrokes to time")
    ap.add_argument("--gap-ms", type=float, default=80, help="time between keystrokes")
    ap.add_argument("--busy-keys", type=int, default=10, help="keystrokes sent while the analyzer runs")
    ap.add_argument("--no-catalog", action="store_true", help="without a tool catalog (no catalog checks)")
    args = ap.parse_args()

    rules = max(1, args.lines // 4)
    text = generate(rules)
    while text.count("\n") < args.lines:
        rules += 5
        text = generate(rules)
    tmp = Path(tempfile.mkdtemp(prefix="mcpp-lsp-bench-"))
    if not args.no_catalog:
        (tmp / "tools.json").write_text(json.dumps(catalog_for(text)), encoding="utf-8")
        text = '@catalog("tools.json")\ndefault deny;\n' + text
    policy = tmp / "big.mcpp"
    policy.write_text(text, encoding="utf-8")
    uri = policy.as_uri()
    lines = text.count("\n")

    c = Client(str(tmp))
    c.settings = {"analyzer": {"debounceMs": 300}}
    c.request("initialize", {"processId": None, "rootUri": tmp.as_uri(), "capabilities": {
        "workspace": {"configuration": True},
        "textDocument": {"publishDiagnostics": {"versionSupport": True}}}})
    c.notify("initialized", {})
    t0 = c.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "mcpp", "version": 1, "text": text}})
    ts, _ = c.wait(lambda m: m.get("method") == "textDocument/publishDiagnostics" and m["params"].get("version") == 1)
    print(f"policy: {lines} lines, {len(text):,} characters, {rules} rules"
          f"{'' if args.no_catalog else ', checked against a ' + str(len(catalog_for(text)['tools'])) + '-tool catalog'}")
    print(f"didOpen → diagnostics (full parse): {(ts - t0) * 1000:.0f} ms")
    # let the first analysis finish so the worker is warm and idle
    c.wait(lambda m: m.get("method") == "textDocument/publishDiagnostics" and any(
        d.get("code") not in ("syntax", "validation") and not str(d.get("code", "")).startswith("catalog")
        for d in m["params"]["diagnostics"]), timeout=300)

    rnd = random.Random(3)
    version = 1
    samples: dict[str, list[float]] = {"type a character": [], "break / fix a statement": [], "insert a line": []}
    for k in range(args.keys):
        kind = list(samples)[k % 3]
        anchors = [m.start() for m in re.finditer("count <= ", text)]  # where the policy has a condition now
        at = rnd.choice(anchors[len(anchors) // 4: 3 * len(anchors) // 4])
        if kind == "type a character":
            edit_at, old_len, new = at + len("count <= "), 0, "1"
        elif kind == "break / fix a statement":
            if "count <<= " in text:  # fix what the previous break did
                edit_at = text.index("count <<= ") + len("count <")
                old_len, new = 1, ""
            else:
                edit_at, old_len, new = at + len("count <"), 0, "<"
        else:
            nl = text.index("\n", at)
            edit_at, old_len, new = nl, 0, "\n"
        start = pos_of(text, edit_at)
        end = pos_of(text, edit_at + old_len)
        text = text[:edit_at] + new + text[edit_at + old_len:]
        version += 1
        v = version
        sent = c.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": v}, "contentChanges": [
            {"range": {"start": start, "end": end}, "text": new}]})
        ts, msg = c.wait(lambda m: m.get("method") == "textDocument/publishDiagnostics" and m["params"].get("version") == v)
        samples[kind].append((ts - sent) * 1000)
        time.sleep(args.gap_ms / 1000)
    # pauses long enough for the analyzer to start, then a key: it must not wait for Z3
    busy = []
    for k in range(args.busy_keys):
        time.sleep(0.8)
        edit_at = text.index("count <= ", len(text) // 3 + k * 997) + len("count <= ")
        start = pos_of(text, edit_at)
        text = text[:edit_at] + "2" + text[edit_at:]
        version += 1
        v = version
        sent = c.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": v}, "contentChanges": [
            {"range": {"start": start, "end": start}, "text": "2"}]})
        ts, _ = c.wait(lambda m: m.get("method") == "textDocument/publishDiagnostics" and m["params"].get("version") == v)
        busy.append((ts - sent) * 1000)
    last_key = time.perf_counter()
    status = c.request("workspace/executeCommand", {"command": "mcpp.status"})["result"]
    doc = status["documents"][uri]
    # the analyzer's findings for the final version
    while True:
        st = c.request("workspace/executeCommand", {"command": "mcpp.status"})["result"]
        if st["documents"][uri]["analysis_version"] == version:
            break
        if time.perf_counter() - last_key > 600:
            raise TimeoutError(f"the analyzer never caught up: {st}")
        time.sleep(0.25)
    analysed = time.perf_counter()

    print(f"\n{'edit':<26}{'n':>4}{'median ms':>11}{'p90 ms':>9}{'max ms':>9}")
    every = []
    for kind, xs in samples.items():
        every += xs
        xs = sorted(xs)
        print(f"{kind:<26}{len(xs):>4}{statistics.median(xs):>11.1f}{xs[int(len(xs) * 0.9) - 1]:>9.1f}{xs[-1]:>9.1f}")
    every.sort()
    print(f"{'all keystrokes':<26}{len(every):>4}{statistics.median(every):>11.1f}"
          f"{every[int(len(every) * 0.9) - 1]:>9.1f}{every[-1]:>9.1f}   (target < 100 ms)")
    if busy:
        busy.sort()
        print(f"{'key while analyzing':<26}{len(busy):>4}{statistics.median(busy):>11.1f}{busy[int(len(busy) * 0.9) - 1]:>9.1f}"
              f"{busy[-1]:>9.1f}   (each cancels a running analysis)")
    tm = doc["timings"]
    print(f"\nserver side, last check: parse {tm['parse_ms']:.1f} ms (re-used {tm['reused_chunks']} of "
          f"{tm['chunks']} statements), validation {tm['validate_ms']:.1f} ms, catalog {tm['catalog_ms']:.1f} ms, "
          f"diagnostics {tm['findings_ms']:.1f} ms, publishing {tm['publish_ms']:.1f} ms; "
          f"in all {tm['check_ms']:.1f} ms")
    a = status["analyzer"]
    print(f"analyzer during typing: {a['cancelled']} runs cancelled by edits, {a['started']} workers started; "
          f"its findings for the final text arrived {(analysed - last_key):.1f} s after the last key "
          f"(debounce 0.3 s + analysis)")
    c.close()


if __name__ == "__main__":
    main()
