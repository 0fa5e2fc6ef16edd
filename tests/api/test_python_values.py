"""`Policy.decide` decides the call as the gateway reads it: Python values are written as
JSON and read back before the policy sees them (hostile review 22, F1: a str `Enum`, a
tuple, a dict or list subclass, an int key went around a `forbid` the gateway applies to
the same JSON, since the engine reads types strictly). What cannot be written is denied,
never raised (F6); a tool name the gateway refuses is denied (F8)."""

from __future__ import annotations

import json
from collections import OrderedDict, defaultdict
from enum import Enum, IntEnum

import pytest

import mcpp

POLICY = """
default allow;
forbid (principal, action == Action::"pay", resource) when { context.input.amount > 1000 };
forbid (principal, action == Action::"grant", resource) when { context.input.role == "admin" };
forbid (principal, action == Action::"tag", resource) when { context.input.tags.contains("admin") };
forbid (principal, action == Action::"opt", resource) when { context.input.opts.force == true };
forbid (principal, action == Action::"key", resource) when { context.input has "1" };
"""


class Role(str, Enum):
    ADMIN = "admin"


class Level(IntEnum):
    HIGH = 5000


class Tags(list):
    pass


class Opts(dict):
    pass


class Raises(dict):
    def items(self):
        raise RuntimeError("user code")


# (tool, the arguments as a Python caller may pass them): each must be decided as its JSON is
VALUES = [
    ("pay", {"amount": Level.HIGH}),
    ("pay", {"amount": True}),  # (a bool is not a number in JSON either: decided as the gateway does)
    ("grant", {"role": Role.ADMIN}),
    ("tag", {"tags": ("admin",)}),
    ("tag", {"tags": Tags(["admin"])}),
    ("opt", {"opts": Opts(force=True)}),
    ("opt", {"opts": defaultdict(int, force=True)}),
    ("opt", {"opts": OrderedDict(force=True)}),
    ("key", {1: "x"}),
    ("key", OrderedDict([(1, "x")])),
]


@pytest.fixture(scope="module")
def policy():
    return mcpp.load_policy(POLICY)


@pytest.mark.parametrize("tool,args", VALUES, ids=[f"{t}-{i}" for i, (t, _) in enumerate(VALUES)])
def test_a_python_value_is_decided_as_its_json(policy, tool, args):
    wire = json.loads(json.dumps(args))
    expected = policy.decide(tool, wire, dry_run=True)
    got = policy.decide(tool, args, dry_run=True)
    assert (got.decision, got.rule) == (expected.decision, expected.rule)
    # and the JSON is what a gateway reading it decides: these forbids apply
    if tool != "pay" or args["amount"] is not True:
        assert got.decision == "deny", (tool, args, got)


@pytest.mark.parametrize("tool,args,reason", [
    ("pay", {"amount": Raises(a=1)}, "values must be JSON values"),
    ("pay", {"amount": {1, 2}}, "values must be JSON values"),
    ("pay", {"amount": float("nan")}, "numbers must be finite"),
    ("pay", {"amount": 10**5000}, "at most 4300 digits"),
    ("", {}, "tool name must be 1 to 128 characters"),
    ("t" * 129, {}, "tool name must be 1 to 128 characters"),
    (5, {}, "tool name must be 1 to 128 characters"),
])
def test_what_the_gateway_cannot_read_is_denied_never_raised(policy, tool, args, reason):
    d = policy.decide(tool, args, dry_run=True)
    assert d.decision == "deny" and d.rule == "/request" and reason in d.message, d
    x = policy.explain(tool, args)
    assert x.decision.rule == "/request"


def test_from_json_takes_the_values_as_they_are(policy):
    """The gateway's own case: what a JSON reader returned is decided without the round trip."""
    assert policy.decide("pay", {"amount": 5000}, dry_run=True, from_json=True).decision == "deny"
    assert policy.decide("pay", {"amount": 5}, dry_run=True, from_json=True).decision == "allow"
