"""lang/stack.py: work that ran out of stack is run again from an empty one on a new thread
(hostile reviews 26 and 27). The thread's C stack does not depend on the process's
`threading.stack_size`, and a process that cannot start a thread gets a refusal, never an
exception."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from mcpp.lang.stack import (
    FRESH_STACK, NoFreshStack, TooDeepAnywhere, on_fresh_stack, on_fresh_stack_now, retry_on_fresh_stack,
)


def _recurse(n: int) -> int:
    return 0 if n == 0 else 1 + _recurse(n - 1)


def test_it_runs_from_an_empty_stack_and_hands_back_results_and_errors():
    assert on_fresh_stack(lambda: (on_fresh_stack_now(), threading.current_thread().name)) == (True, FRESH_STACK)
    assert not on_fresh_stack_now()
    assert on_fresh_stack(_recurse, sys.getrecursionlimit() - 50) == sys.getrecursionlimit() - 50
    with pytest.raises(KeyError):
        on_fresh_stack(lambda: {}["missing"])


def test_a_small_process_wide_thread_stack_size_does_not_crash_it():
    """hostile review 27, F2: with `threading.stack_size(256 KiB)` the retry segfaulted."""
    code = ("import sys, threading\n"
            "threading.stack_size(256 * 1024)\n"
            "from mcpp.lang.stack import on_fresh_stack\n"
            "def r(n):\n    return 0 if n == 0 else 1 + r(n - 1)\n"
            "print(on_fresh_stack(r, sys.getrecursionlimit() - 50), threading.stack_size())\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [str(sys.getrecursionlimit() - 50), str(256 * 1024)]  # (and the setting is put back)


def test_no_thread_is_a_refusal_not_an_exception(monkeypatch):
    """hostile review 27, F6: where no thread can be started, a call that needed the retry
    raised RuntimeError out of `Policy.decide`; it is denied now."""
    import mcpp
    from mcpp.catalog import Catalog

    def refuse(*_):
        raise RuntimeError("can't start new thread")

    # four `allOf`/`$ref` hops a level: 58 levels need more stack than 450 frames leave
    defs = {f"h{i}": {"allOf": [{"$ref": f"#/$defs/h{i + 1}"}]} for i in range(3)}
    defs["h3"] = {"type": "object", "properties": {"b": {"$ref": "#/$defs/h0"}}}
    pol = mcpp.load_policy("permit (principal, action, resource);\n", catalog=Catalog.from_tools(
        [{"name": "t", "inputSchema": {"$defs": defs, "$ref": "#/$defs/h0"}}]))
    args: dict = {}
    for _ in range(57):
        args = {"b": args}
    assert pol.decide("t", args, dry_run=True).decision == "allow"  # (from here, in place)
    monkeypatch.setattr(threading.Thread, "start", refuse)
    with pytest.raises(NoFreshStack):
        on_fresh_stack(_recurse, 1)

    def deep(n):  # (deep enough that the check runs out of stack in place)
        return pol.decide("t", args, dry_run=True) if n == 0 else deep(n - 1)

    here = len(__import__("inspect").stack(0))
    d = deep(sys.getrecursionlimit() - 450 - here)
    assert (d.decision, d.rule) == ("deny", "/tools/t/schema"), d


def test_retry_runs_in_place_and_again_from_an_empty_stack_only_when_out_of_stack(monkeypatch):
    need = sys.getrecursionlimit() // 2
    where: list[bool] = []

    def work() -> int:
        where.append(on_fresh_stack_now())
        return _recurse(need)

    def at_depth(n: int):
        return at_depth(n - 1) if n > 0 else retry_on_fresh_stack(work)

    assert retry_on_fresh_stack(work) == need and where == [False]  # (enough stack here: in place)
    where.clear()
    assert at_depth(need) == need and where == [False, True]  # ran out, then from an empty stack
    where.clear()
    with pytest.raises(TooDeepAnywhere):  # needing more than an empty stack has: the input's fault
        retry_on_fresh_stack(_recurse, sys.getrecursionlimit() + 10)
    monkeypatch.setattr(threading.Thread, "start", lambda *_: (_ for _ in ()).throw(RuntimeError("no thread")))
    with pytest.raises(TooDeepAnywhere, match="no empty stack"):
        at_depth(need)
