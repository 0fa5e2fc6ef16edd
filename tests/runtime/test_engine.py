"""The decision engine: Cedar's decision, the JSON form's explanations, limits, failing closed."""

import threading
import time

import pytest

from mcpp.lang.program import load_program
from mcpp.runtime.engine import Engine, Grant
from mcpp.runtime.limits import MemoryCounters, window_bounds

NOON = 1_795_000_000 - (1_795_000_000 % 86400) + 12 * 3600  # some day at 12:00:00 UTC


def engine(src: str, **kw) -> Engine:
    return Engine(load_program(src, "p.mcpp"), **kw)


def test_forbid_wins_and_default_deny():
    e = engine(
        'permit (principal, action, resource);\n'
        '@id("no-prod") @reason("not in prod")\n'
        'forbid (principal, action == Action::"delete_pod", resource) when { context.input.ns == "prod" };'
    )
    assert e.decide("delete_pod", {"ns": "dev"}).allowed
    d = e.decide("delete_pod", {"ns": "prod"})
    assert (d.allowed, d.rule.pointer, d.rule.policy, d.message) == (
        False, "/tools/delete_pod/deny_if/args.ns-eq", "no-prod", "not in prod",
    )
    assert d.rule.span.line == 3
    assert not engine('permit (principal, action == Action::"a", resource);').decide("b", {}).allowed


def test_default_allow_governs_only_tools_a_permit_names():
    e = engine('default allow;\npermit (principal, action == Action::"t", resource) when { context.input.ok == true };')
    assert e.decide("other", {}).allowed
    d = e.decide("t", {"ok": False})
    assert (d.allowed, d.rule.pointer) == (False, "/tools/t/require/args.ok-eq")
    assert e.decide("t", {"ok": True}).allowed


def test_error_skips_a_policy_like_cedar():
    # a forbid whose condition errors is skipped (the JSON form's deny_if no-match)...
    e = engine('permit (principal, action, resource);\nforbid (principal, action, resource) when { context.input.amount > 1000 };')
    assert e.decide("refund", {"amount": "1500"}).allowed
    assert e.decide("refund", {}).allowed
    assert not e.decide("refund", {"amount": 1500}).allowed
    # ...and a permit whose condition errors does not allow (fail closed)
    e = engine('permit (principal, action, resource) when { context.input.amount <= 1000 };')
    assert not e.decide("refund", {"amount": "5"}).allowed
    assert not e.decide("refund", {}).allowed


def test_explanations_name_the_first_failing_condition_and_clause_reason():
    e = engine(
        'permit (principal, action == Action::"t", resource)\n'
        '@reason("need a") when { context.input has a && context.input.a == 1 }\n'
        '@reason("b must not be x") unless { context.input.b == "x" };'
    )
    d = e.decide("t", {})
    assert (d.rule.pointer, d.message) == ("/tools/t/require/args.a-exists", "need a")
    d = e.decide("t", {"a": 2})
    assert d.rule.pointer == "/tools/t/require/args.a-eq"
    d = e.decide("t", {"a": 1, "b": "x"})
    assert (d.rule.pointer, d.message) == ("/tools/t/require/args.b-neq", "b must not be x")
    assert d.rule.span.line == 3


def test_principal_groups_label_and_resource():
    e = engine(
        'permit (principal in Group::"finance", action == Action::"refund", resource == Server::"stripe");\n'
        'permit (principal, action == Action::"whoami", resource) when { principal.label == "alice" };'
    )
    alice = Grant("g1", "alice", frozenset({"finance"}))
    assert e.decide("refund", {}, alice, "stripe").allowed
    assert not e.decide("refund", {}, alice, "github").allowed
    assert not e.decide("refund", {}, Grant("g2", "bob"), "stripe").allowed
    assert e.decide("whoami", {}, alice).allowed
    assert not e.decide("whoami", {}, Grant("g2", "bob")).allowed


def test_action_groups_expand_transitively():
    e = engine(
        'group Action::"reads" = [Action::"get", Action::"list"];\n'
        'group Action::"all" = [Action::"reads", Action::"put"];\n'
        'permit (principal, action in Action::"all", resource);\n'
        'forbid (principal, action, resource) when { action in Action::"reads" && context.input.secret == true };'
    )
    assert e.decide("get", {}).allowed and e.decide("put", {"secret": True}).allowed
    assert not e.decide("list", {"secret": True}).allowed
    assert not e.decide("delete", {}).allowed


def test_hidden_and_request_shape():
    e = engine('default allow; hide Action::"drop";')
    d = e.decide("drop", {})
    assert (d.allowed, d.rule.pointer) == (False, "/hide")
    assert e.decide("drop_not", {}).allowed
    assert e.decide("x", ["not", "an", "object"]).rule.pointer == "/request"
    assert not e.decide(5, {}).allowed


def test_an_exception_while_deciding_denies(monkeypatch):
    e = engine("default allow;")
    monkeypatch.setattr(e, "_principal", lambda *_a: (_ for _ in ()).throw(RuntimeError("boom")))
    d = e.decide("t", {})
    assert (d.allowed, d.rule.pointer) == (False, "/error") and "boom" in d.message


LIMITED = (
    'default allow;\n'
    '@reason("Pod deletion limit exceeded for this grant.")\n'
    'limit "delete_pod" (principal, action == Action::"delete_pod", resource) max 2 per hour scope grant;\n'
    '@reason("byte budget")\n'
    'limit "bytes" (principal, action == Action::"post", resource) max 100 per minute scope policy increment context.input.n;\n'
)


def test_limits_count_per_grant_and_say_when_they_reset():
    e = engine(LIMITED)
    alice, bob = Grant("alice"), Grant("bob")
    assert e.decide("delete_pod", {}, alice, now=NOON).allowed
    assert e.decide("delete_pod", {}, alice, now=NOON + 10).allowed
    d = e.decide("delete_pod", {}, alice, now=NOON + 20)
    assert not d.allowed and d.rule.pointer == "/tools/delete_pod/limits/delete_pod"
    assert d.message.startswith("Pod deletion limit exceeded for this grant.")
    assert d.limit["resets_at"].endswith("T13:00:00Z")
    assert e.decide("delete_pod", {}, bob, now=NOON + 30).allowed  # another grant, its own counter
    assert e.decide("delete_pod", {}, alice, now=NOON + 3600).allowed  # next calendar hour


def test_limit_increment_from_argument_and_fail_closed():
    e = engine(LIMITED)
    assert e.decide("post", {"n": 60}, now=NOON).allowed
    assert not e.decide("post", {"n": 41}, Grant("other"), now=NOON).allowed  # scope policy: shared
    assert e.decide("post", {"n": 40}, now=NOON).allowed
    for bad in ({}, {"n": "5"}, {"n": -1}):
        d = e.decide("post", bad, now=NOON + 60)
        assert not d.allowed and "args.n" in d.message


def test_denied_calls_reserve_nothing_and_rollback_releases():
    e = engine(LIMITED + 'forbid (principal, action == Action::"delete_pod", resource) when { context.input.ns == "prod" };')
    for _ in range(5):
        assert not e.decide("delete_pod", {"ns": "prod"}, now=NOON).allowed
    first = e.decide("delete_pod", {}, now=NOON)
    assert first.allowed
    first.release()  # the upstream failed
    first.release()  # idempotent
    assert e.decide("delete_pod", {}, now=NOON).allowed
    assert e.decide("delete_pod", {}, now=NOON).allowed
    assert not e.decide("delete_pod", {}, now=NOON).allowed


def test_limits_are_all_or_nothing():
    e = engine(
        'default allow;\n'
        'limit "a" (principal, action == Action::"t", resource) max 5 per day;\n'
        'limit "b" (principal, action == Action::"t", resource) max 1 per day;'
    )
    assert e.decide("t", {}, now=NOON).allowed
    assert not e.decide("t", {}, now=NOON).allowed
    assert e.store.value(next(k for k in e.store._values if "|a|" in k)) == 1


def test_exact_under_concurrency():
    store = MemoryCounters()
    e = engine('default allow; limit "c" (principal, action, resource) max 5 per day;', store=store)
    results = []
    barrier = threading.Barrier(32)

    def call():
        barrier.wait()
        results.append(e.decide("t", {}, now=NOON).allowed)

    threads = [threading.Thread(target=call) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 5


@pytest.mark.parametrize("window, size", [("minute", 60), ("hour", 3600), ("day", 86400)])
def test_windows_are_calendar_aligned(window, size):
    start, end = window_bounds(window, NOON + 1234.5)
    assert start % size == 0 and end - start == size and start <= NOON + 1234.5 < end


def test_dry_run_does_not_reserve():
    e = engine(LIMITED)
    for _ in range(5):
        assert e.decide("delete_pod", {}, now=NOON, reserve=False).allowed
    assert e.decide("delete_pod", {}, now=NOON).allowed


def test_limits_sharing_a_counter_never_exceed_the_smaller_max():
    e = engine(
        'default allow;\n'
        '@id("small") limit "c" (principal, action == Action::"t", resource) max 3 per day;\n'
        '@id("big") limit "c" (principal, action, resource) max 10 per day;'
    )
    assert e.decide("t", {}, now=NOON).allowed  # adds 2 to "c"
    d = e.decide("t", {}, now=NOON)  # 2 + 2 > 3
    assert not d.allowed and d.rule.policy == "small"
    assert e.decide("u", {}, now=NOON).allowed  # only "big": 3 ≤ 10
    key = next(iter(e.store._values))
    assert e.store.value(key) == 3


# Limits on one counter add their increments exactly, as the analyzer adds reals (hostile
# review 41, H41-1): a float sum made `10 + 1e-17` `10.0`, within `max 10`; and a stored
# counter never rounds a new total down. Every store alike (the engine's peek too).
SHARED_BUDGET = (
    'default allow;\n'
    'limit "budget" (principal, action == Action::"pay", resource) max 10 per hour increment context.input.a;\n'
    'limit "budget" (principal, action == Action::"pay", resource) max 10 per hour increment context.input.b;'
)


def _sqlite_store(tmp_path):
    from mcpp.runtime.gateway.counters import SQLiteCounters

    return SQLiteCounters(tmp_path / "state")


@pytest.mark.parametrize("store", ["memory", "sqlite"])
@pytest.mark.parametrize("src, calls", [
    # (policy, [(arguments, allowed)] in order)
    (SHARED_BUDGET, [({"a": 10, "b": 1e-17}, False), ({"a": 10, "b": 0}, True), ({"a": 0, "b": 1e-300}, False)]),
    (SHARED_BUDGET, [({"a": 9.999999999999998, "b": 2e-15}, False), ({"a": 9.999999999999998, "b": 0}, True)]),
    # 0.1 + 0.2 + 9.7 (the doubles' exact values) is just below 10; 1e-15 more is not
    (SHARED_BUDGET, [({"a": 0.1, "b": 0.2}, True), ({"a": 9.7, "b": 0}, True), ({"a": 0, "b": 1e-15}, False)]),
    # at the largest max, 2^53: each unit counts (a double total 2^53 + 1 rounds to 2^53)
    ('default allow;\nlimit "n" (principal, action == Action::"up", resource) max 9007199254740992 per day '
     'increment context.input.n;',
     [({"n": 9007199254740991}, True), ({"n": 1}, True), ({"n": 1}, False), ({"n": 0.5}, False), ({"n": 0}, True)]),
    # a fraction near 2^53 is counted rounded up, never lost
    ('default allow;\nlimit "n" (principal, action == Action::"up", resource) max 9007199254740992 per day '
     'increment context.input.n;',
     [({"n": 9007199254740990}, True), ({"n": 0.25}, True), ({"n": 0.25}, True), ({"n": 2}, False)]),
])
def test_limits_sharing_a_counter_add_exactly(tmp_path, store, src, calls):

    e = engine(src, store=MemoryCounters() if store == "memory" else _sqlite_store(tmp_path))
    now = time.time()  # (SQLite reads a row whose window has ended as 0)
    for i, (args, allowed) in enumerate(calls):
        tool = "pay" if "a" in args else "up"
        assert e.decide(tool, args, now=now, reserve=False).allowed is allowed, (i, args)
        assert e.decide(tool, args, now=now).allowed is allowed, (i, args)
