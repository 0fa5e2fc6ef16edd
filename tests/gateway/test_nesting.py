"""Arguments nested deeper than lang/nesting.py's bound are refused the same way by every
part that decides a call, whatever the depth and whatever the caller's stack (hostile
review 22, F7). Before, each part refused where its own recursion ran out: at depths
970-990 the Python API allowed a call the gateway answered `Parse error`, `mcpp eval
--call` denied what `--calls` allowed, and deeper `--call` crashed with exit 3; a
recursive schema (`$ref: "#"`) moved the gateway's cut-off to about 240 levels, less in a
deeper stack.

The table runs each depth through the real gateway (an open schema and a recursive one),
the Python API (from an empty stack and from 400 frames deep, with and without a
catalog), `CatalogAdmission` (`mcpp test`, the language server), `mcpp eval --call` and
`mcpp eval --calls`."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx2
import pytest

import mcpp
from mcpp.catalog import Catalog
from mcpp.catalog.admission import CatalogAdmission
from mcpp.lang.jsontext import MAX_MESSAGE_NESTING, MESSAGE_TOO_DEEP, TOO_DEEP
from mcpp.lang.nesting import MAX_NESTING
from mcpp._policy import STACK_HEADROOM, STACK_TOO_DEEP

from .peers import MODERN_META, parse_response, write
from .scripted import ScriptedUpstream, tool_def
from .test_adversarial import _gw_config

OPEN = {"type": "object"}
RECURSIVE = {"type": "object", "properties": {"a": {"$ref": "#"}}}
CATALOG = Catalog.from_tools([{"name": "open", "inputSchema": OPEN}, {"name": "rec", "inputSchema": RECURSIVE}])
POLICY = "permit (principal, action, resource);\n"


def hops(k: int) -> dict:
    """A schema each level of whose arguments passes through `k` `allOf`/`$ref` hops (its
    definition stays 5 levels deep): jsonschema needs a few frames per hop and level."""
    defs = {f"h{i}": {"allOf": [{"$ref": f"#/$defs/h{i + 1}"}]} for i in range(k - 1)}
    defs[f"h{k - 1}"] = {"type": "object", "properties": {"b": {"$ref": "#/$defs/h0"}, "pad": {"type": "string"}}}
    return {"$defs": defs, "$ref": "#/$defs/h0"}


HOPS = hops(4)


def hop_text(levels: int, pad: str = "") -> str:
    inner = '{"pad":"' + pad + '"}' if pad else "{}"
    return '{"b":' * (levels - 1) + inner + "}" * (levels - 1)


# `opts` filled in at every level: a call within the bound that the defaults take past it
FILL = {"type": "object", "properties": {"opts": {"type": "object", "default": {}}, "z": {"$ref": "#"}}}

# the arguments object counts as one level: MAX_NESTING is the deepest allowed
DEPTHS = [1, MAX_NESTING - 1, MAX_NESTING, MAX_NESTING + 1, 120, 250, 600, 975, 985, 995, 1500]
UNREADABLE = 990  # deeper than this, no reader here reads the text at all (json's own recursion)
UNREAD_BAND = 900  # from here the gateway may not read the request either (its stack is deeper): `Parse error`


def args_text(levels: int) -> str:
    """Arguments `levels` objects deep, {"a": {"a": … {}}} (valid for both schemas), as JSON
    text (json.dumps itself recurses, so the text is built)."""
    return '{"a":' * (levels - 1) + "{}" + "}" * (levels - 1)


def body(tool: str, levels: int) -> str:
    meta = json.dumps(MODERN_META)
    return ('{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"' + tool + '","_meta":' + meta
            + ',"arguments":' + args_text(levels) + "}}")


def expected(levels: int) -> str:
    """allow (forwarded), deep (refused: TOO_DEEP), or unreadable (no JSON reader gets the
    text: the gateway's `Parse error`, a usage error for `eval --call`)."""
    if levels <= MAX_NESTING:
        return "allow"
    return "deep" if levels < UNREADABLE else "unreadable"


@pytest.fixture
async def gateway(tmp_path, start_gateway):
    async with ScriptedUpstream() as up:
        up.tools = [tool_def("open", OPEN), tool_def("rec", RECURSIVE), tool_def("fill", FILL), tool_def("hops", HOPS)]
        yield up, _gw_config(tmp_path, start_gateway, up.url, gateway="max_body_bytes = 1048576", policy_text=POLICY)


@pytest.mark.parametrize("tool", ["open", "rec"])
async def test_the_gateway_refuses_arguments_past_the_bound_at_every_depth(gateway, tool):
    up, g = gateway
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": tool,
               "Authorization": f"Bearer {g.token}"}
    async with httpx2.AsyncClient(timeout=30) as http:
        for levels in DEPTHS:
            before = len(up.calls)
            r = parse_response(await http.post(g.url(), headers=headers, content=body(tool, levels)))
            want = expected(levels)
            if want == "allow":
                assert r["status"] == 200 and not r["result"].get("isError"), (levels, r)
                assert len(up.calls) == before + 1
            else:
                assert r["status"] == 400 and len(up.calls) == before, (levels, r)
                # refused either way; which words depends on whether json could read it at all
                words = {TOO_DEEP} if levels < UNREAD_BAND else {TOO_DEEP, "Parse error"} if want == "deep" else {"Parse error"}
                assert r["error"]["message"] in words, (levels, r)


def _message(where: str, depth: int) -> str:
    """A message `depth` levels deep in all (itself counting as one), the deep part at
    `where`: a call's `_meta`, another member of its params, a notification's params, or a
    client's answer to an upstream request."""
    meta = json.dumps(MODERN_META)[:-1]
    if where == "_meta":  # message, params, _meta, then the member
        return ('{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"open","arguments":{},"_meta":'
                + meta + ',"x":' + args_text(depth - 3) + "}}}")
    if where == "params":
        return ('{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"open","arguments":{},"_meta":'
                + meta + '},"x":' + args_text(depth - 2) + "}}")
    if where == "notification":
        return '{"jsonrpc":"2.0","method":"notifications/progress","params":{"x":' + args_text(depth - 2) + "}}"
    return '{"jsonrpc":"2.0","id":"s-1","result":{"x":' + args_text(depth - 2) + "}}"


def _depth(text: str) -> int:
    """How deep `text` nests (it has no brackets inside strings)."""
    depth = deepest = 0
    for ch in text:
        depth += ch in "{["
        depth -= ch in "}]"
        deepest = max(deepest, depth)
    return deepest


@pytest.mark.parametrize("where", ["_meta", "params", "notification", "answer"])
async def test_every_message_is_bounded_not_only_a_call_s_arguments(gateway, where):
    """hostile review 24, F8: only `arguments` were bounded, and a call's `_meta` (or any
    other member, any other message) nested ~950 levels deep was forwarded as it was. A
    message deeper than `MAX_MESSAGE_NESTING` levels (64 below its params or result, as the
    arguments) is refused whatever it is, and nothing reaches the upstream."""
    up, g = gateway
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2026-07-28", "Authorization": f"Bearer {g.token}"}
    if where in ("_meta", "params"):
        headers.update({"Mcp-Method": "tools/call", "Mcp-Name": "open"})
    async with httpx2.AsyncClient(timeout=30) as http:
        for depth in (MAX_MESSAGE_NESTING - 1, MAX_MESSAGE_NESTING, MAX_MESSAGE_NESTING + 1, 100, 600):
            before = len(up.calls)
            text = _message(where, depth)
            assert _depth(text) == depth
            r = parse_response(await http.post(g.url(), headers=headers, content=text))
            refused = r["status"] == 400 and r.get("error", {}).get("message") == MESSAGE_TOO_DEEP
            assert refused == (depth > MAX_MESSAGE_NESTING), (where, depth, r)
            if refused:
                assert r["error"]["code"] == -32600 and r["id"] == (7 if where in ("_meta", "params") else None)
                assert len(up.calls) == before
            elif where in ("_meta", "params"):
                assert r["status"] == 200 and len(up.calls) == before + 1, (where, depth, r)


def nested(levels: int) -> dict:
    """The arguments of `args_text(levels)` as a reader returns them (built without recursion)."""
    v: dict = {}
    for _ in range(levels - 1):
        v = {"a": v}
    return v


def _policies() -> list:
    """New ones each time: no schema compiled before, from another stack depth."""
    return [mcpp.load_policy(POLICY, catalog=catalog) for catalog in (None, CATALOG)]


async def test_the_gateway_refuses_defaults_that_nest_a_call_past_the_bound_as_the_api_does(gateway):
    """hostile review 24, F1: the gateway's engine denied the filled call at `/request`
    (and forwarded it in log-only mode) where the API allowed it. Both refuse it in the
    admission now: the tool's declaration is at fault (`invalid_default`)."""
    up, g = gateway
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "fill",
               "Authorization": f"Bearer {g.token}"}
    pol = mcpp.load_policy(POLICY, catalog=Catalog.from_tools([{"name": "fill", "inputSchema": FILL}]))
    async with httpx2.AsyncClient(timeout=30) as http:
        for levels, runs in ((MAX_NESTING - 1, True), (MAX_NESTING, False)):
            text = '{"z":' * (levels - 1) + "{}" + "}" * (levels - 1)
            before = len(up.calls)
            r = parse_response(await http.post(g.url(), headers=headers, content=body("fill", levels).replace(
                args_text(levels), text)))
            d = pol.decide("fill", json.loads(text), dry_run=True)
            if runs:
                assert not r["result"].get("isError") and len(up.calls) == before + 1 and d.decision == "allow", r
            else:
                assert r["result"]["isError"] and len(up.calls) == before, r
                assert (d.decision, d.rule) == ("deny", "/tools/fill/schema")
                assert d.message in r["result"]["content"][0]["text"]


async def test_a_schema_check_that_needs_a_deep_stack_is_answered_alike_everywhere(gateway):
    """hostile review 26, F1: under a schema of four `allOf`/`$ref` hops per level, 61-level
    arguments (within the bound) were allowed by the API, refused "nested too deeply to
    check" by the gateway for a small body (checked on the event loop) and forwarded for a
    large one (checked in a worker thread). A check that runs out of stack is run again
    from an empty one (conformance.py `on_fresh_stack`): one answer, whatever the stack."""
    up, g = gateway
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "hops",
               "Authorization": f"Bearer {g.token}"}
    cat = Catalog.from_tools([{"name": "hops", "inputSchema": HOPS}])
    seen: dict[int, str] = {}
    async with httpx2.AsyncClient(timeout=30) as http:
        for levels in (40, 58, 61, 64):
            api = {_deep_stack(max(0, stack - _frames()), lambda: mcpp.load_policy(POLICY, catalog=cat).decide(
                "hops", json.loads(hop_text(levels)), dry_run=True).decision) for stack in ROOMY}
            assert len(api) == 1, (levels, api)
            answers = set()
            for pad in ("", "x" * 70000):  # (a body over 64 KiB is checked in a worker thread)
                before = len(up.calls)
                r = parse_response(await http.post(g.url(), headers=headers, content=body("hops", levels).replace(
                    args_text(levels), hop_text(levels, pad))))
                answers.add("allow" if len(up.calls) == before + 1 and not r["result"].get("isError") else "deny")
            assert answers == api, (levels, answers, api)
            seen[levels] = api.pop()
    # from an empty stack 40 levels pass; 64 under four hops a level need more stack than
    # Python has (refused as "nested too deeply to check", by every part alike)
    assert seen[40] == "allow", seen


def _api_decisions(args, policies) -> list[tuple[str, str | None, str]]:
    out = []
    for pol in policies:
        for tool in ("open", "rec"):
            d = pol.decide(tool, args, dry_run=True)
            x = pol.explain(tool, args).decision
            out += [(d.decision, d.rule, d.message), (x.decision, x.rule, x.message)]
    refusal, _ = CatalogAdmission(CATALOG).admit("rec", args)
    out.append(("allow", None, "") if refusal is None else ("deny", refusal["pointer"], refusal["message"]))
    return out


def _deep_stack(frames: int, fn):
    return fn() if frames == 0 else _deep_stack(frames - 1, fn)


def _frames() -> int:
    f, n = sys._getframe(), 0
    while f is not None:
        f, n = f.f_back, n + 1
    return n


# from an empty stack, and from as deep as the API decides from (STACK_HEADROOM below the limit)
ROOMY = [0, sys.getrecursionlimit() - STACK_HEADROOM - 60]


@pytest.mark.parametrize("levels", [d for d in DEPTHS if d < UNREADABLE])
@pytest.mark.parametrize("stack", ROOMY)
def test_the_api_refuses_the_same_calls_from_any_stack_depth(levels, stack):
    args, policies = nested(levels), _policies()
    got = _deep_stack(max(0, stack - _frames()), lambda: _api_decisions(args, policies))
    if expected(levels) == "allow":
        assert all(d == "allow" for d, _, _ in got), got
    else:
        assert set(got) == {("deny", "/request", TOO_DEEP)}, got


@pytest.mark.parametrize("levels", [1, MAX_NESTING, MAX_NESTING + 1])
@pytest.mark.parametrize("stack", [sys.getrecursionlimit() - STACK_HEADROOM + 5, sys.getrecursionlimit() - 20])
def test_from_too_deep_a_stack_every_call_is_denied_the_same_way_never_raised(levels, stack):
    """hostile review 24, F3, F10: from 700 to 990 frames the answer depended on the depth
    (allowed, denied as too deep, a schema "cannot be used" remembered for later calls, or
    a RecursionError raised). Past the headroom the API now refuses up front, and a later
    call from a shallow stack is decided as ever."""
    args, policies = nested(levels), _policies()
    got = _deep_stack(max(0, stack - _frames()), lambda: _api_decisions(args, policies)[:-1])
    assert set(got) == {("deny", "/error", STACK_TOO_DEEP)}, got
    pol = mcpp.load_policy(POLICY, catalog=CATALOG)
    _deep_stack(max(0, stack - _frames()), lambda: pol.decide("rec", args, dry_run=True))
    assert pol.decide("rec", args, dry_run=True).decision == ("allow" if levels <= MAX_NESTING else "deny")


def test_from_json_takes_the_gateway_s_reading_as_checked():
    """`from_json=True`: the arguments as the gateway hands them over, which refused deeper
    ones when it read the request; not walked again (the gateway's decision skips it)."""
    pol = mcpp.load_policy(POLICY)
    assert pol.decide("open", nested(MAX_NESTING + 1), dry_run=True, from_json=True).decision == "allow"
    assert pol.decide("open", nested(MAX_NESTING + 1), dry_run=True).rule == "/request"


def test_defaults_that_nest_the_call_past_the_bound_are_the_tool_s_fault_everywhere():
    """hostile review 24, F1: a call within the bound that the tool's declared defaults take
    past it was allowed by the API and `mcpp test` and denied by the gateway's engine at
    `/request`. The admission every part shares refuses it now (`invalid_default`)."""
    schema = {"type": "object", "properties": {"opts": {"type": "object", "default": {}}, "z": {"$ref": "#"}}}
    cat = Catalog.from_tools([{"name": "fill", "inputSchema": schema}])
    pol = mcpp.load_policy(POLICY, catalog=cat)

    def chain(levels: int) -> dict:
        v: dict = {}
        for _ in range(levels - 1):
            v = {"z": v}
        return v

    ok = chain(MAX_NESTING - 1)  # (filled: `opts: {}` at every level, one deeper at the bottom)
    refusal, _ = CatalogAdmission(cat).admit("fill", chain(MAX_NESTING))
    assert refusal is not None and refusal["kind"] == "invalid_default" and "deeper than 64 levels" in refusal["reason"]
    d = pol.decide("fill", chain(MAX_NESTING), dry_run=True)
    assert (d.decision, d.rule) == ("deny", "/tools/fill/schema") and d.message == refusal["message"]
    assert pol.decide("fill", ok, dry_run=True).decision == "allow"


def test_mcpp_eval_call_and_calls_agree_with_the_gateway_at_every_depth(tmp_path):
    policy = write(tmp_path / "p.mcpp", POLICY)
    readable = [d for d in DEPTHS if d < UNREAD_BAND]
    lines = ['{"name":"open","arguments":' + args_text(levels) + "}" for levels in readable]
    calls = write(tmp_path / "calls.jsonl", "\n".join(lines) + "\n")
    many = subprocess.run([sys.executable, "-m", "mcpp", "eval", str(policy), "--calls", str(calls)],
                          capture_output=True, text=True, timeout=120)
    assert many.returncode == 0, many.stderr
    batch = [json.loads(x) for x in many.stdout.splitlines()]
    assert len(batch) == len(lines)
    for levels, line, got in zip(readable, lines, batch):
        single = subprocess.run([sys.executable, "-m", "mcpp", "eval", str(policy), "--call", line],
                                capture_output=True, text=True, timeout=120)
        assert single.returncode == 0, single.stderr
        assert json.loads(single.stdout) == got, levels
        if expected(levels) == "allow":
            assert got["decision"] == "allow", (levels, got)
        else:
            assert (got["decision"], got["rule"], got["message"]) == ("deny", "/request", TOO_DEEP), (levels, got)
    # past what json reads at all: a usage error naming it, never a crash (exit 3 before)
    deep = '{"name":"open","arguments":' + args_text(1500) + "}"
    write(tmp_path / "deep.jsonl", deep + "\n")
    for how in (["--call", deep], ["--calls", str(tmp_path / "deep.jsonl")]):
        r = subprocess.run([sys.executable, "-m", "mcpp", "eval", str(policy), *how], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 2 and "nested too deeply" in r.stderr and "Traceback" not in r.stderr, (how[0], r.stderr)


def test_visible_answers_from_a_deep_stack_as_from_a_shallow_one():
    """hostile review 26, F6: from about 980 frames the analyzer failed and `visible` gave
    its fallback (every tool not hidden). Now it is asked from an empty stack."""
    pol = mcpp.load_policy('permit (principal, action == Action::"a", resource);\n'
                           'forbid (principal, action == Action::"b", resource);\n')
    shallow = pol.visible(["a", "b"])
    errors: list = []
    deep = _deep_stack(max(0, sys.getrecursionlimit() - 25 - _frames()),
                       lambda: pol.visible(["a", "b"], on_error=errors.append))
    assert shallow == deep == {"a"} and errors == []
