"""Running recursive work from an empty Python stack.

Much of deciding a call recurses: jsonschema takes a few frames per level of the arguments
and per `$ref`/`allOf` hop of the schema, the analyzer's encodings recurse over
expressions. Whether such work finishes depended on how deep the caller's stack already
was, so one call got different answers from the Python API, the gateway's event loop and
its worker threads (hostile review 26, F1, F2). Work that runs out of stack is run again
here, on a new thread, from an empty stack: its answer is the one from an empty stack
wherever it was asked.
"""

from __future__ import annotations

import sys
import threading

FRESH_STACK = "mcpp-fresh-stack"  # the name of the threads `on_fresh_stack` starts
# the C stack those threads get: enough for Python's whole recursion limit whatever
# `threading.stack_size` the process set (with 256 KiB a recursive schema crashed the
# process: hostile review 27, F2)
THREAD_STACK_BYTES = 16 * 1024 * 1024
_SIZE_LOCK = threading.Lock()


class NoFreshStack(RuntimeError):
    """No thread could be started (a process limit): the work is refused, as too deep."""


def on_fresh_stack(fn, *args):
    """`fn(*args)` run on a new thread, from an empty stack: what it returns, or raises.
    NoFreshStack when no thread can be started. (A thread costs about 0.1 ms: callers run
    the work in place first, and here only what ran out of stack.)"""
    box: dict = {}

    def run() -> None:
        try:
            box["value"] = fn(*args)
        except BaseException as e:  # (handed to the caller as it is)
            box["error"] = e

    try:
        with _SIZE_LOCK:
            before = threading.stack_size()
            if before and before < THREAD_STACK_BYTES:
                threading.stack_size(THREAD_STACK_BYTES)
            try:
                t = threading.Thread(target=run, name=FRESH_STACK, daemon=True)
                t.start()
            finally:
                if before and before < THREAD_STACK_BYTES:
                    threading.stack_size(before)
    except RecursionError:  # (this stack ran out starting it: not "no thread can start")
        raise
    except (RuntimeError, ValueError, MemoryError) as e:
        raise NoFreshStack(f"no thread could be started to run it from an empty stack ({e})") from None
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


class TooDeepAnywhere(RecursionError):
    """The work ran out of stack from an empty stack too (or no thread could be started to
    try): its input is what is too deep, not the caller's stack. A plain RecursionError out
    of `retry_on_fresh_stack` means the caller's own stack ran out before it could retry;
    a caller higher up (with room) may retry then (hostile review 29, F2: a reader that
    took every RecursionError for "too deep input" refused valid input from a deep stack)."""


def retry_on_fresh_stack(fn, *args):
    """`fn(*args)`, run again from an empty stack (`on_fresh_stack`) if it runs out of stack
    here: the answer it gives from an empty stack, wherever it is asked. TooDeepAnywhere
    when it runs out there too, or when no thread can be started."""
    try:
        return fn(*args)
    except TooDeepAnywhere:
        raise
    except RecursionError:
        if on_fresh_stack_now():
            raise TooDeepAnywhere("out of stack from an empty stack") from None
    try:
        return on_fresh_stack(_deep_anywhere, fn, args)
    except NoFreshStack as e:
        raise TooDeepAnywhere(f"out of stack, and no empty stack to run it from ({e})") from None


def _deep_anywhere(fn, args):
    try:
        return fn(*args)
    except RecursionError as e:
        if isinstance(e, TooDeepAnywhere):
            raise
        raise TooDeepAnywhere("out of stack from an empty stack") from None


def on_fresh_stack_now() -> bool:
    """Whether this code runs on a thread `on_fresh_stack` started (running it again
    there would answer the same)."""
    return threading.current_thread().name == FRESH_STACK


def less_stack_than(frames: int) -> bool:
    """Whether the caller's stack leaves fewer than `frames` frames below
    `sys.getrecursionlimit()` (a frame that deep exists: `sys._getframe` walks the stack in
    C, about 0.4 µs)."""
    try:
        sys._getframe(sys.getrecursionlimit() - frames)
    except ValueError:
        return False
    return True
