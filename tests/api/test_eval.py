"""`mcpp eval --calls`: the batch face of `Policy.decide`, line for line."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mcpp
from mcpp._eval import CallError, run_calls
from mcpp.lang.formatter import format_document
from tests.strategies import GRANTS, GROUPS, LABELS, calls, documents

ROOT = Path(__file__).resolve().parents[2]
NOW = 1_900_000_000.0

LIMITED = '''\
permit (principal, action, resource);
hide Action::"secret";
@id("few") limit "calls" (principal, action == Action::"t0", resource) max 2 per hour scope grant;
@id("bytes") limit "bytes" (principal, action == Action::"t1", resource) max 10 per day scope policy
  increment context.input.n;
'''


def one_by_one(policy: mcpp.Policy, lines: list[dict], base: mcpp.Grant) -> list[str]:
    """What each line must print: `Policy.decide(...).to_dict()` as `json.dumps` writes it."""
    out = []
    for obj in lines:
        g = obj.get("grant")
        if isinstance(g, dict):
            g = mcpp.Grant(g["id"], g.get("label", ""), frozenset(g.get("groups", [])))
        elif g is None or g == base.id:
            g = base
        d = policy.decide(obj["name"], obj.get("arguments"), principal=g, server=obj.get("server", "default"), now=NOW)
        out.append(json.dumps(d.to_dict(), ensure_ascii=False))
    return out


def batch(policy: mcpp.Policy, text: str, base: mcpp.Grant = mcpp.Grant()) -> list[str]:
    buf = io.StringIO()
    run_calls(policy, text, buf.write, principal=base, server="default", now=NOW, where="calls.jsonl")
    return buf.getvalue().split("\n")[:-1]  # JSON Lines: only \n ends a line (U+2028 may be in a string)


grant_values = st.one_of(
    st.none(),
    st.sampled_from(GRANTS + ["anonymous"]),
    st.builds(lambda i, lab, gs: {"id": i, "label": lab, "groups": sorted(gs)},
              st.sampled_from(GRANTS), st.sampled_from(LABELS), st.frozensets(st.sampled_from(GROUPS))),
    st.builds(lambda i: {"id": i}, st.sampled_from(GRANTS)),
)


@given(documents(), st.lists(st.tuples(calls(), grant_values, st.booleans()), min_size=1, max_size=12), st.data())
def test_each_line_is_policy_decide(doc, items, data):
    text = format_document(doc) + LIMITED.split("\n", 1)[1]  # random rules plus limits and a hide
    lines = []
    for c, g, with_server in items:
        obj: dict = {"name": data.draw(st.sampled_from([c.tool, "t0", "t1", "secret"])), "arguments": c.args}
        if g is not None:
            obj["grant"] = g
        if with_server:
            obj["server"] = c.server
        lines.append(obj)
    body = "\n".join(json.dumps(o) for o in lines) + "\n"
    # one policy per side: limits count along each run in the same order
    assert batch(mcpp.load_policy(text, filename="p.mcpp"), body) == one_by_one(mcpp.load_policy(text, filename="p.mcpp"), lines, mcpp.Grant())


def test_limits_count_across_the_batch_and_the_denial_names_the_limit():
    policy = mcpp.load_policy(LIMITED, filename="l.mcpp")
    body = "\n".join(json.dumps({"name": "t0", "grant": "g0"}) for _ in range(3)) + "\n"
    body += json.dumps({"name": "t1", "arguments": {"n": 7}}) + "\n" + json.dumps({"name": "t1", "arguments": {"n": 7}})
    rows = [json.loads(x) for x in batch(policy, body)]
    assert [r["decision"] for r in rows] == ["allow", "allow", "deny", "allow", "deny"]
    assert rows[2]["rule"] == "/tools/t0/limits/calls" and rows[2]["limit"]["max"] == 2
    assert rows[4]["limit"]["counter"] == "bytes"


@pytest.mark.parametrize(
    "body, expected",
    [
        ('{"name": "t0"}\n\n   \n{"name": "t1", "arguments": null}\r\n', 2),  # blank lines, CRLF, null arguments
        ('  {"name": "t0"}  \n', 1),  # surrounding whitespace
        ('{"name": "t0"}', 1),  # no final newline
        ('', 0),
        ('{"name": "a\\u2028b"}\n', 1),  # a line separator inside a string is not a line break
    ],
)
def test_lines(body, expected):
    policy = mcpp.load_policy(LIMITED)
    assert len(batch(policy, body)) == expected


@pytest.mark.parametrize(
    "body, message",
    [
        ('{"name": "t0"}\n{"name": ', "calls.jsonl:2: invalid JSON"),
        ('{"name": "t0"} {"name": "t1"}', "calls.jsonl:1: invalid JSON: Extra data"),
        ('[{"name": "t0"}', "calls.jsonl:1: invalid JSON"),
        ('{"name": "t0", "arguments": {"n": NaN}}', "calls.jsonl:1: NaN is not JSON"),
        ('{"name": "t0", "arguments": {"n": 1e999}}', "calls.jsonl:1: number 1e999 is out of range"),
        ('{"name": "t0", "arguments": {"n": Infinity}}', "calls.jsonl:1: Infinity is not JSON"),
        ('["t0"]', "calls.jsonl:1: a call must be a JSON object"),
        ('{"arguments": {}}', 'calls.jsonl:1: "name" (the tool) must be a string'),
        ('{"name": "t0", "server": 5}', '"server" must be a string'),
        ('{"name": "t0", "grant": 5}', '"grant" must be a grant id'),
        ('{"name": "t0", "grant": {"id": "g", "groups": "ops"}}', '"grant.groups" must be a list of strings'),
        ('{"name": "t0", "grant": {"id": "g", "groups": [1]}}', '"grant.groups" must be a list of strings'),
        ('{"name": "t0", "grant": {"id": "g", "label": ["x"]}}', '"grant.label" must be a string'),
        ('{"name": "t0", "grant": {"id": "g", "label": 5}}', '"grant.label" must be a string'),
        ('{"name": "t0", "grant": {"label": "x"}}', '"grant" must be a grant id'),
        ("[" * 100_000, "calls.jsonl:1:"),
    ],
)
def test_a_line_that_is_not_a_call_stops_with_its_line_number(body, message):
    with pytest.raises(CallError) as e:
        batch(mcpp.load_policy(LIMITED), body)
    assert str(e.value).startswith("calls.jsonl:") and message in str(e.value)


def test_a_grant_seen_valid_does_not_make_a_bad_one_pass():
    """Grants are built once per distinct value; a value that is not a grant is never cached."""
    good = '{"name": "t0", "grant": {"id": "g", "groups": ["o", "p", "s"]}}\n'
    bad = '{"name": "t0", "grant": {"id": "g", "groups": "ops"}}\n'
    with pytest.raises(CallError, match=":2:"):
        batch(mcpp.load_policy(LIMITED), good + bad)


def test_the_grant_of_a_line_and_the_command_grant():
    policy = mcpp.load_policy('permit (principal in Group::"ops", action, resource);\n'
                              'permit (principal, action == Action::"mine", resource) when { principal.label == "me" };')
    base = mcpp.Grant("u", "me", frozenset({"ops"}))
    body = "\n".join(json.dumps(o) for o in [
        {"name": "x"},  # the command's grant: in ops
        {"name": "x", "grant": "u"},  # its id: the command's grant, label and groups
        {"name": "x", "grant": "v"},  # another id: no groups
        {"name": "mine", "grant": {"id": "v", "label": "me"}},
    ])
    assert [json.loads(x)["decision"] for x in batch(policy, body, base)] == ["allow", "allow", "deny", "allow"]


def mcpp_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mcpp", *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_a_bad_line_means_no_decision_is_printed(tmp_path):
    """A batch is decided whole or not at all: a script never reads the decisions of half
    a file as the file's (the first line alone would be an allow)."""
    f = tmp_path / "calls.jsonl"
    f.write_text('{"name": "refund_payment", "arguments": {"charge_id": "ch_12345678", "amount": 5}}\n{"name": 5}\n')
    p = mcpp_cli("eval", "examples/refunds.mcpp", "--calls", str(f))
    assert p.returncode == 2 and f"{f}:2: " in p.stderr and "Traceback" not in p.stderr
    assert p.stdout == ""
    f.write_text('{"name": "refund_payment", "arguments": {"charge_id": "ch_12345678", "amount": 5}}\n')
    assert json.loads(mcpp_cli("eval", "examples/refunds.mcpp", "--calls", str(f)).stdout)["decision"] == "allow"


def test_a_lone_surrogate_is_written_as_its_escape(tmp_path):
    f = tmp_path / "calls.jsonl"
    f.write_text('{"name": "\\ud800x"}\n')
    for args in (["--calls", str(f)], ["--call", '{"name": "\\ud800x"}']):
        p = mcpp_cli("eval", "examples/refunds.mcpp", *args)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["tool"] == "\ud800x"


def test_a_call_held_for_approval_says_so_in_both_forms(tmp_path):
    """`"decision": "approval"` with the approver's text, as `Engine.decide(...).to_dict()`
    and docs/approval.md say, for one `--call` and in a `--calls` batch alike."""
    policy = tmp_path / "ap.mcpp"
    policy.write_text('@approval("a person checks big refunds")\npermit (principal, action == Action::"refund", resource);\n')
    call = '{"name": "refund", "arguments": {}}'
    (tmp_path / "calls.jsonl").write_text(call + "\n")
    one = json.loads(mcpp_cli("eval", str(policy), "--call", call).stdout)
    batch = json.loads(mcpp_cli("eval", str(policy), "--calls", str(tmp_path / "calls.jsonl")).stdout)
    assert one == batch
    assert (one["decision"], one["needs_approval"], one["approval"]) == ("approval", True, "a person checks big refunds")
    d = mcpp.load_policy(policy).decide("refund", {})
    assert d.decision == "approval" and not d.allowed and d.to_dict() == {**one, "span": d.to_dict()["span"]}
