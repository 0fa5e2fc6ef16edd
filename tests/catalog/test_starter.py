"""`mcpp init` on the five captured npm catalogs: every tool's classification, and the policy
passes check (with its catalog), verify (every assert proved) and compile."""

from __future__ import annotations

import asyncio
import json
import shutil
from typing import Annotated, Optional

import pytest
from pydantic import Field

from mcpp.catalog import Catalog, load_catalog, validate
from mcpp.catalog.classify import classify
from mcpp.catalog.starter import plan, starter_policy
from mcpp.lang.program import check_source, load_program
from mcpp.runtime.engine import Engine, Grant

from .conftest import FIXTURES, SERVERS, run_mcpp

# tool → (what init does with it, the risky arguments it guards); hidden tools list why.
EXPECTED = {
    "everything": {
        "echo": ("read", []), "get-annotated-message": ("read", []), "get-env": ("hidden:secret", []),
        "get-resource-links": ("read", []), "get-resource-reference": ("read", []),
        "get-structured-content": ("read", []), "get-sum": ("read", []), "get-tiny-image": ("read", []),
        "gzip-file-as-resource": ("write", ["data"]), "simulate-research-query": ("write", []),
        "toggle-simulated-logging": ("write", []), "toggle-subscriber-updates": ("write", []),
        # annotated read-only, but "trigger" is a write verb: the name wins
        "trigger-long-running-operation": ("write", []),
    },
    "filesystem": {
        "create_directory": ("write", ["path"]), "directory_tree": ("read", ["path"]),
        "edit_file": ("hidden:destructive", []), "get_file_info": ("read", ["path"]),
        "list_allowed_directories": ("read", []), "list_directory": ("read", ["path"]),
        "list_directory_with_sizes": ("read", ["path"]), "move_file": ("hidden:destructive", []),
        "read_file": ("read", ["path"]), "read_media_file": ("read", ["path"]),
        "read_multiple_files": ("hidden:unguardable", []), "read_text_file": ("read", ["path"]),
        "search_files": ("read", ["path"]), "write_file": ("hidden:destructive", []),
    },
    "memory": {
        "add_observations": ("write", []), "create_entities": ("write", []), "create_relations": ("write", []),
        "delete_entities": ("hidden:destructive", []), "delete_observations": ("hidden:destructive", []),
        "delete_relations": ("hidden:destructive", []), "open_nodes": ("read", []), "read_graph": ("read", []),
        "search_nodes": ("read", []),
    },
    "github": {
        "add_issue_comment": ("write", []), "create_branch": ("write", []), "create_issue": ("write", []),
        "create_or_update_file": ("write", ["path"]), "create_pull_request": ("write", []),
        "create_pull_request_review": ("write", []), "create_repository": ("write", []),
        "fork_repository": ("write", []), "get_file_contents": ("read", ["path"]), "get_issue": ("read", []),
        "get_pull_request": ("read", []), "get_pull_request_comments": ("read", []),
        "get_pull_request_files": ("read", []), "get_pull_request_reviews": ("read", []),
        "get_pull_request_status": ("read", []), "list_commits": ("read", []), "list_issues": ("read", []),
        "list_pull_requests": ("read", []), "merge_pull_request": ("hidden:destructive", []),
        # its `files` list holds paths no rule can check one by one (it would bypass create_or_update_file's guard)
        "push_files": ("hidden:unguardable", []), "search_code": ("read", []), "search_issues": ("read", []),
        "search_repositories": ("read", []), "search_users": ("read", []), "update_issue": ("write", []),
        "update_pull_request_branch": ("write", []),
    },
    "slack": {
        "slack_add_reaction": ("write", []), "slack_get_channel_history": ("read", []),
        "slack_get_thread_replies": ("read", []), "slack_get_user_profile": ("read", []),
        "slack_get_users": ("read", []), "slack_list_channels": ("read", []),
        "slack_post_message": ("write", []), "slack_reply_to_thread": ("write", []),
    },
}


def _decisions(cat: Catalog) -> dict:
    from mcpp.catalog.starter import _guards_for

    p = plan(cat)
    out = {}
    for c in p["hidden"]:
        why = "unguardable" if c.unguardable and c.kind not in ("destructive", "secret") else c.kind
        out[c.name] = (f"hidden:{why}", [])
    for section in ("read", "write"):
        for c in p[section]:
            out[c.name] = (section, [a.path_text for a in _guards_for(c, section)])
    return out


@pytest.mark.parametrize("name", list(EXPECTED))
def test_classification_of_every_tool(name):
    cat = load_catalog(FIXTURES / f"{name}.json")
    assert _decisions(cat) == EXPECTED[name]


def test_annotations_alone_never_decide():
    cat = Catalog.from_tools([
        {"name": "delete_everything", "inputSchema": {"type": "object"}, "annotations": {"readOnlyHint": True}},
        {"name": "frobnicate", "inputSchema": {"type": "object"}},
        {"name": "get_api_token", "inputSchema": {"type": "object"}, "annotations": {"readOnlyHint": True}},
        {"name": "list_things", "inputSchema": {"type": "object"}, "annotations": {"readOnlyHint": False,
                                                                                   "destructiveHint": True}},
    ])
    got = {t.name: (classify(t).kind, classify(t).conflict) for t in cat.tools.values()}
    assert got == {"delete_everything": ("destructive", True),  # lies about being read-only
                   "frobnicate": ("destructive", False),  # says nothing: the spec default
                   "get_api_token": ("secret", False),
                   "list_things": ("destructive", False)}  # the server's own warning is kept
    assert "contradicts the server's hint" in classify(cat.tools["delete_everything"]).reason


@pytest.mark.parametrize("name", list(EXPECTED))
def test_starter_policy_checks_verifies_and_compiles(name, tmp_path):
    shutil.copy(FIXTURES / f"{name}.json", tmp_path / "tools.json")
    r = run_mcpp("init", "--catalog", "tools.json", "-o", "policy.mcpp", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    src = (tmp_path / "policy.mcpp").read_text()
    assert '@catalog("tools.json")\ndefault deny;' in src
    # every statement is preceded by a comment giving its reason
    lines = src.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(("permit", "forbid", "limit", "hide", "default", "assert")):
            j = i - 1
            while j >= 0 and lines[j].startswith(("@", "  ")):
                j -= 1
            assert lines[j].startswith("//"), f"no reason before line {i + 1}: {line}"
    prog, ds = check_source(src, "policy.mcpp")
    assert ds == []
    assert validate(prog, load_catalog(tmp_path / "tools.json")) == []
    r = run_mcpp("check", "-q", "policy.mcpp", cwd=tmp_path)  # finds the catalog through @catalog
    assert r.returncode == 0 and r.stderr == "", r.stderr
    r = run_mcpp("compile", "policy.mcpp", "-o", "policy.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    from mcpp.analyzer.verify import verify

    results = verify(load_program(src, "policy.mcpp"))
    assert results and all(res.status == "pass" for res in results), [(x.id, x.message) for x in results]
    hidden = {n for n, (d, _) in EXPECTED[name].items() if d.startswith("hidden")}
    assert any(res.id == "only-reviewed-tools" for res in results)
    assert any(res.id == "hidden-stay-hidden" for res in results) == bool(hidden)


def test_mcpp_verify_passes_on_the_starter(tmp_path):
    """The starter policy's own asserts pass `mcpp verify`."""
    shutil.copy(FIXTURES / "filesystem.json", tmp_path / "tools.json")
    assert run_mcpp("init", "--catalog", "tools.json", "-o", "p.mcpp", cwd=tmp_path).returncode == 0
    r = run_mcpp("verify", "p.mcpp", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


def test_guards_decide_as_their_comments_say():
    cat = load_catalog(FIXTURES / "filesystem.json")
    engine = Engine(load_program(starter_policy(cat, "tools.json"), "p.mcpp"))
    g = Grant("agent", "", frozenset())

    def decide(tool, **args):
        return engine.decide(tool, args, g, "fs", reserve=False).decision

    assert decide("read_text_file", path="/work/notes.txt") == "allow"
    assert decide("read_text_file", path="/home/u/.ssh/id_rsa") == "deny"
    assert decide("read_text_file", path="/work/../etc/passwd") == "deny"
    assert decide("read_text_file", path="/srv/app/.env") == "deny"
    assert decide("write_file", path="/work/x", content="") == "deny"  # hidden
    assert decide("some_new_tool") == "deny"  # default deny
    cat = load_catalog(FIXTURES / "everything.json")
    engine = Engine(load_program(starter_policy(cat), "p.mcpp"))
    assert engine.decide("gzip-file-as-resource", {"data": "https://example.com/a"}, g, "s", reserve=False).decision == "allow"
    assert engine.decide("gzip-file-as-resource", {}, g, "s", reserve=False).decision == "allow"  # optional: absent is fine
    for url in ("http://169.254.169.254/latest/meta-data", "file:///etc/passwd", "http://LOCALHOST:8080/",
                "https://user@10.0.0.5/x"):
        assert engine.decide("gzip-file-as-resource", {"data": url}, g, "s", reserve=False).decision == "deny", url


def test_init_refuses_to_overwrite_and_reports_bad_catalogs(tmp_path):
    shutil.copy(FIXTURES / "memory.json", tmp_path / "tools.json")
    (tmp_path / "p.mcpp").write_text("default deny;\n")
    r = run_mcpp("init", "--catalog", "tools.json", "-o", "p.mcpp", cwd=tmp_path)
    assert r.returncode == 2 and "exists; pass --force" in r.stderr
    assert (tmp_path / "p.mcpp").read_text() == "default deny;\n"
    r = run_mcpp("init", "--catalog", "missing.json", cwd=tmp_path)
    assert r.returncode == 2 and "no such catalog file" in r.stderr and "Traceback" not in r.stderr


def test_catalog_show_lists_classifications():
    r = run_mcpp("catalog", "show", str(FIXTURES / "everything.json"))
    assert r.returncode == 0
    assert "write       trigger-long-running-operation" in r.stdout
    assert "secret      get-env" in r.stdout


@pytest.mark.parametrize("name", SERVERS)
def test_starter_passes_lint_typed_by_its_own_catalog(name, tmp_path):
    """`mcpp init` then lint, on each captured catalog: no error-level finding and no
    fail-open warning. The catalog is found the way `mcpp serve` finds it — through the
    `@catalog` the starter records — so the analysis counts on the gateway's typed calls."""
    from mcpp.catalog.locate import find_catalog_for
    from tests.safe_lint import unsafe_findings

    shutil.copy(FIXTURES / f"{name}.json", tmp_path / "tools.json")
    r = run_mcpp("init", "--catalog", "tools.json", "-o", "policy.mcpp", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    path = tmp_path / "policy.mcpp"
    program = load_program(path.read_text(), str(path))
    catalog = find_catalog_for(str(path), program)
    assert catalog is not None and set(catalog.tools) == set(load_catalog(FIXTURES / f"{name}.json").tools)
    assert unsafe_findings(program, catalog) == []
    from mcpp.runtime.gateway.policies import load_verified

    load_verified(str(path))  # `mcpp serve` would put it in force: asserts proved, nothing blocking


BOUNDED = Catalog.from_tools([
    {"name": "refund_payment", "annotations": {"readOnlyHint": False, "destructiveHint": False},
     "inputSchema": {"type": "object", "required": ["charge_id"],
                     "properties": {"charge_id": {"type": "string"}, "amount": {"type": "number"},
                                    "fee": {"type": "number", "minimum": 0}, "path": {"type": "string"}}}},
], server_name="payments", server_version="1")


def test_amount_guards_sit_in_the_permit(tmp_path):
    """A bound the permit can require goes there, so a missing or mistyped amount denies
    even without the schema's help; denylists stay forbids (typed by the catalog). The
    policy still compiles to the JSON form (the bound is a `require`)."""
    from tests.safe_lint import unsafe_findings

    src = starter_policy(BOUNDED, "tools.json")
    (tmp_path / "tools.json").write_text(BOUNDED.dumps())
    (tmp_path / "p.mcpp").write_text(src)
    r = run_mcpp("compile", "p.mcpp", "-o", "p.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    require = json.loads((tmp_path / "p.json").read_text())["tools"]["refund_payment"]["require"]
    assert [c for e in require for c in e["conditions"]] == [
        {"path": "args.amount", "op": "lte", "value": 1000}, {"path": "args.fee", "op": "lte", "value": 1000}]
    assert ('permit (principal, action == Action::"refund_payment", resource)\n'
            "when { context.input.amount <= 1000 && context.input.fee <= 1000 };") in src
    assert "forbid (principal, action == Action::\"refund_payment\", resource)\nwhen { context.input has path &&" in src
    assert "context.input.amount >" not in src.split("// What this policy protects")[0]
    program = load_program(src, "p.mcpp")
    assert unsafe_findings(program, BOUNDED) == []
    engine = Engine(program)
    g = Grant("agent", "", frozenset())

    def decide(**args):
        return engine.decide("refund_payment", {"charge_id": "ch_1", **args}, g, "s", reserve=False)

    assert decide(amount=1000, fee=0).decision == "allow"
    for args in ({"amount": 1001, "fee": 0}, {"amount": "5000", "fee": 0}, {"amount": [5000], "fee": 0},
                 {"amount": None, "fee": 0}, {"fee": 0}, {"amount": 10}, {"amount": 10, "fee": 2000}):
        d = decide(**args)
        assert d.decision == "deny", args
        assert "Amounts above 1000" in d.message, (args, d.message)
    from mcpp.analyzer.verify import verify

    results = verify(program)  # untyped: the permit fails closed without the schema's help
    assert results and all(res.status == "pass" for res in results), [(x.id, x.message) for x in results]


def test_init_names_the_catalog_relative_to_the_policy(tmp_path):
    shutil.copy(FIXTURES / "memory.json", tmp_path / "tools.json")
    (tmp_path / "policies").mkdir()
    r = run_mcpp("init", "--catalog", "tools.json", "-o", "policies/memory.mcpp", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert '@catalog("../tools.json")\ndefault deny;' in (tmp_path / "policies" / "memory.mcpp").read_text()
    r = run_mcpp("check", "-q", "policies/memory.mcpp", cwd=tmp_path)
    assert r.returncode == 0 and r.stderr == "", r.stderr


# ---- the Python SDK's optional shapes (hostile finding 8) ---------------------------------------


def _sdk_catalog() -> Catalog:
    """Tools as the official Python SDK publishes them: optional arguments as `X | None =
    None` (`{"anyOf": [{"type": "string"}, {"type": "null"}], "default": null}`),
    `Optional[X]`, annotated, required-but-nullable, and defaults that are not null."""
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("sdk-shapes", version="1")

    @server.tool()
    def write_file(content: str, path: str | None = None) -> str:
        return repr((content, path))

    @server.tool()
    def read_file(path: Optional[str] = None) -> str:
        return repr((path,))

    @server.tool()
    def fetch_url(url: Annotated[str | None, Field(description="The page")] = None) -> str:
        return repr((url,))

    @server.tool()
    def run_command(command: str | None = None) -> str:
        return repr((command,))

    @server.tool()
    def deploy(name: str, namespace: str | None = None) -> str:
        return repr((name, namespace))

    @server.tool()
    def copy_file(source: str = "/srv/in", destination: str | None = "/srv/out") -> str:
        return repr((source, destination))

    @server.tool()
    def update_config(path: str | None) -> str:
        return repr((path,))

    @server.tool()
    def refund(charge_id: str, amount: float | None = None, fee: float = 5) -> str:
        return repr((charge_id, amount, fee))

    tools = asyncio.run(server.list_tools())
    defs = [json.loads(t.model_dump_json(by_alias=True, exclude_none=True)) for t in tools]
    return Catalog.from_tools(defs, server_name="sdk-shapes", server_version="1")


def test_starter_for_the_sdk_optional_shapes_is_not_bypassable(tmp_path):
    """`mcpp init` on SDK optionals: every guard tests `!= null` before it reads a nullable
    argument (null means "not given" to such a server, and a forbid that errors on it was
    skipped), so the starter passes lint (typed), verify and `mcpp serve`'s gates; a null
    argument is decided as an absent one, and a dangerous value is still denied."""
    from mcpp.catalog.defaults import fill
    from mcpp.runtime.gateway.policies import load_verified
    from tests.safe_lint import unsafe_findings

    cat = _sdk_catalog()
    schema = cat.tools["write_file"].input_schema
    assert schema["properties"]["path"] == {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None,
                                            "title": "Path"}
    (tmp_path / "tools.json").write_text(cat.dumps())
    r = run_mcpp("init", "--catalog", "tools.json", "-o", "policy.mcpp", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    src = (tmp_path / "policy.mcpp").read_text()
    program = load_program(src, str(tmp_path / "policy.mcpp"))
    assert unsafe_findings(program, cat) == []
    load_verified(str(tmp_path / "policy.mcpp"))  # `mcpp serve` puts it in force
    r = run_mcpp("verify", "policy.mcpp", cwd=tmp_path)
    assert r.returncode == 0 and "bypassable" not in r.stdout, r.stdout
    assert "context.input has path && context.input.path != null && context.input.path.matches(" in src
    # a defaulted argument is always present (the gateway fills it in), so no `has` before it
    assert "context.input.destination != null && context.input.destination.matches(" in src
    assert "context.input has destination" not in src
    engine = Engine(program)
    g = Grant("agent", "", frozenset())

    def decide(tool: str, args: dict) -> str:
        filled = fill(cat.tools[tool].input_schema, args)  # what the gateway decides
        return engine.decide(tool, filled, g, "s", reserve=False).decision

    for tool, arg, extra, bad in [("write_file", "path", {"content": "x"}, "/home/u/.ssh/id_rsa"),
                                  ("read_file", "path", {}, "../../etc/passwd"),
                                  ("fetch_url", "url", {}, "http://169.254.169.254/latest"),
                                  ("run_command", "command", {}, "sudo rm -rf /"),
                                  ("deploy", "namespace", {"name": "api"}, "prod-eu"),
                                  ("copy_file", "destination", {}, "/etc/cron.d/x"),
                                  ("update_config", "path", {}, "/root/.env")]:
        if tool != "update_config":  # its path is required: the gateway's schema check refuses the omission
            assert decide(tool, extra) == "allow", (tool, "absent")
        assert decide(tool, {**extra, arg: None}) == "allow", (tool, "null")  # null: not given, never a bypass
        assert decide(tool, {**extra, arg: "ok-value"}) == "allow", (tool, "ok")
        assert decide(tool, {**extra, arg: bad}) == "deny", (tool, bad)
    # the amount bound sits in the permit: null or omitted is denied (fails closed), the filled fee is decided
    assert decide("refund", {"charge_id": "c", "amount": 10}) == "allow"
    assert decide("refund", {"charge_id": "c", "amount": None}) == "deny"
    assert decide("refund", {"charge_id": "c"}) == "deny"
    assert decide("refund", {"charge_id": "c", "amount": 10, "fee": 5000}) == "deny"
