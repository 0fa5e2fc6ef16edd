"""`mcpp diff --audit`'s replay of past calls (analyzer/replay.py): what each level of
recorded knowledge decides, and that every reported change replays through both engines."""

from __future__ import annotations

import json

import pytest

import mcpp
from hypothesis import given, settings
from hypothesis import strategies as st

from mcpp.analyzer.replay import PastCall, rank, replay
from mcpp.lang.program import load_program
from mcpp.runtime.engine import Engine, Grant
from mcpp.runtime.retained import retain

OLD = load_program('''
default deny;
permit (principal, action == Action::"delete_pod", resource) when { context.input.namespace in ["dev", "staging"] };
permit (principal, action == Action::"echo", resource);
permit (principal, action == Action::"refund", resource) when { context.input.amount <= 1000 };
''', "old.mcpp")
NEW = load_program('''
default deny;
permit (principal, action == Action::"delete_pod", resource) when { context.input.namespace == "dev" };
permit (principal, action == Action::"echo", resource) when { context.input has text };
permit (principal, action == Action::"refund", resource) when { context.input.amount <= 1000 && !(principal in Group::"interns") };
@approval("big refunds") permit (principal, action == Action::"refund", resource) when { context.input.amount > 1000 };
''', "new.mcpp")
KEY = bytes(range(32))


def past(tool, args, known, groups=(), keys=None, complete=True):
    values = retain(args, known if known != "keys" else "none", KEY)
    return PastCall(tool, "g1", "alice", groups, "default", tuple(sorted(keys if keys is not None else args)), complete,
                    known, values)


def status(call) -> str:
    (r,) = replay(OLD, NEW, {call: [1]}, key=KEY, timeout_ms=20000)
    if r.witness is not None:  # every reported change is the engines' own
        g = Grant(r.witness.grant_id, r.witness.label, frozenset(r.witness.groups))
        a = Engine(OLD).decide(r.witness.tool, r.witness.args, g, r.witness.server, reserve=False)
        b = Engine(NEW).decide(r.witness.tool, r.witness.args, g, r.witness.server, reserve=False)
        assert rank(a) != rank(b) and r.old["decision"] == a.decision and r.new["decision"] == b.decision
    return r.status


@pytest.mark.parametrize("call, expected", [
    # full values: replayed exactly
    (past("delete_pod", {"namespace": "staging", "name": "a"}, "full"), "changes"),
    (past("delete_pod", {"namespace": "dev", "name": "a"}, "full"), "unchanged"),
    (past("refund", {"amount": 5000}, "full"), "changes"),  # deny → approval
    # hashed: equality with each constant is known
    (past("delete_pod", {"namespace": "staging", "name": "a"}, "hashed"), "changes"),
    (past("delete_pod", {"namespace": "dev", "name": "a"}, "hashed"), "unchanged"),
    (past("delete_pod", {"namespace": "prod", "name": "a"}, "hashed"), "unchanged"),  # denied by both
    (past("delete_pod", {"namespace": 7, "name": "a"}, "hashed"), "unchanged"),  # a number: no string constant
    # keys only: the value decides, and it is unknown
    (past("delete_pod", {"namespace": "staging", "name": "a"}, "keys"), "may-change"),
    (past("delete_pod", {"name": "a"}, "keys"), "unchanged"),  # no namespace: denied by both
    (past("echo", {}, "keys"), "changes"),  # `has` is decided by the keys
    (past("echo", {"text": "x"}, "keys"), "unchanged"),
    # a clipped key list: absence is not known
    (past("echo", {}, "keys", keys=["…(+70 keys)"], complete=False), "may-change"),
    # groups recorded: an intern's refund of 10 changes; a non-intern's does not
    (past("refund", {"amount": 10}, "full", groups=("interns",)), "changes"),
    (past("refund", {"amount": 10}, "full", groups=()), "unchanged"),
    # hashes tell equality with constants, not order: 10 might be over 1000
    (past("refund", {"amount": 10}, "hashed", groups=()), "may-change"),
    (past("refund", {"amount": 1000}, "hashed", groups=()), "unchanged"),  # equal to a constant: known exactly
])
def test_what_each_level_of_knowledge_decides(call, expected):
    assert status(call) == expected


def test_hashes_under_another_key_tell_only_the_shape():
    call = past("delete_pod", {"namespace": "dev", "name": "a"}, "hashed")
    (r,) = replay(OLD, NEW, {call: [1]}, key=b"another key" * 3, timeout_ms=20000)
    assert r.status == "may-change"


def test_rows_of_one_call_are_counted_together():
    call = past("echo", {}, "keys")
    (r,) = replay(OLD, NEW, {call: [3, 1, 2]}, key=KEY, timeout_ms=20000)
    d = mcpp.Replayed._of(r).to_dict()  # the JSON `mcpp diff --audit` prints
    assert d["rows"] == 3 and d["first_seq"] == 1 and d["last_seq"] == 3


scalars = st.one_of(st.sampled_from(["dev", "staging", "prod", "x"]), st.integers(-3, 3), st.booleans(), st.none())


@given(st.fixed_dictionaries({}, optional={"namespace": scalars, "name": scalars, "text": scalars}),
       st.sampled_from(["delete_pod", "echo"]))
@settings(max_examples=60, deadline=None)
def test_knowing_less_never_contradicts_knowing_all(args, tool):
    """Hashed and keys-only answers are consistent with the exact (full) one: "changes"
    under less knowledge implies it changes; "unchanged" implies it does not."""
    exact = status(past(tool, args, "full"))
    for known in ("hashed", "keys"):
        s = status(past(tool, args, known))
        if s == "changes":
            assert exact == "changes", (known, args)
        if s == "unchanged":
            assert exact == "unchanged", (known, args)


def test_retained_forms():
    assert json.loads(retain({"a": 1}, "full", None)) == {"kind": "full", "arguments": {"a": 1}}
    h = json.loads(retain({"a": "x", "b": {"c": [1, 2]}}, "hashed", KEY))
    assert h["paths"][""] == ["obj", ["a", "b"]] and h["paths"]["/b"] == ["obj", ["c"]]
    assert h["paths"]["/b/c"] == ["arr", 2] and h["paths"]["/a"][0] == "str" and "x" not in json.dumps(h)
    assert retain({"a": 1}, "none", KEY) is None


@pytest.mark.parametrize("values", ['{"other": 1}', '[1, 2]', '{"arguments": "x"}'])
def test_kept_values_without_an_arguments_object_are_unknown_and_say_why(values):
    call = PastCall("echo", "g1", "alice", (), "default", ("text",), True, "full", values)
    (r,) = replay(OLD, NEW, {call: [1]}, key=KEY, timeout_ms=20000)
    assert r.status == "unknown" and r.reason == "the row's kept values have no arguments object"
