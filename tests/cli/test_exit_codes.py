"""One exit-code table for every command (mcpp.console; README "Exit codes"):

0 ok · 1 the input has errors or a property failed · 2 bad usage or unreadable input ·
3 internal error, without a traceback unless MCPP_DEBUG=1.

Each row is (command line, expected code). Placeholders in braces name the inputs the
`inputs` fixture writes; `{missing}` never exists. Internal errors are provoked in
process by making one function the command calls raise, the way a bug would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from .run import ROOT, mcpp

UPSTREAM = ROOT / "tests" / "gateway" / "fixtures" / "upstream_server.py"

GOOD = """default deny;

@id("reads")
permit (principal, action == Action::"read", resource);

@id("writes")
permit (principal, action == Action::"write", resource)
when { context.input.path like "/srv/*" };

@id("no-etc")
assert deny (principal, action == Action::"write", resource)
when { context.input.path like "/etc/*" };
"""
LOOSER = GOOD.replace('\nwhen { context.input.path like "/srv/*" }', "")
FAILING_ASSERT = GOOD + '@id("never-read") assert deny (principal, action == Action::"read", resource);\n'
BAD = 'permit (principal, action == Action::"read", resource)\nwhen { context.nope == 1 };\n'
REFUSED = ('@id("either") permit (principal, action == Action::"t", resource) '
           "when { context.input.a == 1 || context.input.b == 1 };\n")
BYPASS = ('permit (principal, action == Action::"refund", resource);\n'
          'forbid (principal, action == Action::"refund", resource) when { context.input.amount > 1000 };\n')
UNKNOWN_TOOL = GOOD + '@id("no-delete")\nassert deny (principal, action == Action::"delete_repo", resource);\n'
TYPO = ('default deny;\npermit (principal, action == Action::"read", resource);\n'
        'forbid (principal, action == Action::"read", resource) when { context.input.pth like "*secret*" };\n')
CATALOG_TOOLS = [
    {"name": "read", "description": "Read a file", "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}}},
     "annotations": {"readOnlyHint": True}},
    {"name": "write", "description": "Write a file", "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}}}},
]


def _catalog(tools) -> str:
    from mcpp.catalog import Catalog

    return Catalog.from_tools(tools, server_name="files", server_version="1.0", protocol_version="2025-11-25",
                              source="test", captured_at="2026-01-01T00:00:00Z").dumps()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("inputs")
    files = {
        "good": ("good.mcpp", GOOD),
        "looser": ("looser.mcpp", LOOSER),
        "failing": ("failing.mcpp", FAILING_ASSERT),
        "bad": ("bad.mcpp", BAD),
        "refused": ("refused.mcpp", REFUSED),
        "bypass": ("bypass.mcpp", BYPASS),
        "unformatted": ("unformatted.mcpp", "default   deny ;\n"),
        "badjson": ("badjson.json", '{"version": "1", "tools": {"t": {"require": [{"conditions": [{"path": "args.x", "op": "nope"}]}]}}}'),
        "notjson": ("notjson.json", "{not json"),
        # nested past what json reads at all, and past the JSON form's bound: errors in the input
        "deepjson": ("deep.json", '{"version": "1", "policies": ' + "[" * 5000 + "]" * 5000 + "}"),
        "deepjson2": ("deep2.json", '{"version": "1", "policies": ' + "[" * 70 + "]" * 70 + "}"),
        # hostile review 29: each was an internal error (exit 3)
        "surrogate": ("surrogate.json", '{"version": "1", "default": "deny", "tools": {"t": {"require": [{"conditions": '
                                        '[{"path": "args.a", "op": "eq", "value": "x\\ud800"}]}]}}}'),
        "deepconfig": ("deep.toml", "[gateway]\nx = " + "[" * 5000 + "]" * 5000 + "\n"),
        "bigconfig": ("big.toml", "[gateway]\nport = " + "1" * 5000 + "\n"),
        "surrcatalog": ("surrcat.json", '{"tools": [{"name": "t", "description": "x\\ud800", "inputSchema": {"type": "object"}}]}'),
        "nancatalog": ("nancat.json", '{"tools": [{"name": "t", "inputSchema": {"type": "object", "maximum": 1e99999}}]}'),
        "bigcatalog": ("bigcat.json", '{"tools": [{"name": "t", "inputSchema": {"type": "object", "maximum": '
                                      + "1" * 5000 + "}}]}"),
        "catalog": ("tools.json", _catalog(CATALOG_TOOLS)),
        "catalog2": ("tools2.json", _catalog(CATALOG_TOOLS[:1])),
        "toolnames": ("names.json", '["read", "write"]'),
        "unknowntool": ("unknowntool.mcpp", UNKNOWN_TOOL),
        "typo": ("typo.mcpp", TYPO),
        "annotated": ("annotated.mcpp", '@catalog("tools.json")\n' + GOOD),
        "annotated_typo": ("annotated_typo.mcpp", '@catalog("tools.json")\n' + TYPO),
        "annotated_missing": ("annotated_missing.mcpp", '@catalog("nope.json")\n' + GOOD),
        "badconfig": ("gateway.toml", '[gateway]\nport = 1\nbogus = 2\n[[servers]]\nid = "default"\nurl = "http://127.0.0.1:1/mcp"\npolicy = "good.mcpp"\n'),
        "goodconfig": ("ok.toml", '[gateway]\nstate_dir = "state"\n[[servers]]\nid = "default"\nurl = "http://127.0.0.1:1/mcp"\npolicy = "good.mcpp"\n'),
    }
    out = {k: str(d / name) for k, (name, _) in files.items()}
    for k, (name, text) in files.items():
        (d / name).write_text(text, encoding="utf-8")
    (d / "latin1.mcpp").write_bytes('// caf\xe9\ndefault deny;\n'.encode("latin-1"))
    out["latin1"] = str(d / "latin1.mcpp")
    (d / "adir").mkdir()
    out["dir"] = str(d / "adir")
    out["missing"] = str(d / "missing.mcpp")
    out["nowhere"] = str(d / "no" / "such" / "dir" / "out.json")
    out["compiled"] = str(d / "good.json")
    subprocess.run([sys.executable, "-m", "mcpp", "compile", out["good"], "-o", out["compiled"]], check=True)
    # a state directory with grants and an (empty) audit log, as `mcpp serve` leaves it
    state = d / "state"
    from mcpp.runtime.gateway.audit import AuditLog

    AuditLog(state).db.close()
    out["state"] = str(state)
    # and approvals held by the gateway: one for each row that answers one
    from mcpp.runtime.gateway.approvals import ApprovalStore

    store = ApprovalStore(state)
    for key in ("approve_me", "reject_me", "decided"):
        a, _ = store.request(f"bind-{key}", server="default", grant_id="g", grant_label="a", tool="charge",
                             arguments={"amount": 5}, reason="", rule="/tools/charge", policy_sha256=None, ttl=3600)
        out[key] = a.id
    store.decide(out["decided"], True, "carol", "cli")
    store.close()
    out["emptystate"] = str(d / "emptystate")
    out["existing"] = out["unformatted"]
    out["upstream"] = f"{sys.executable} {UPSTREAM} --stdio"
    out["tmp"] = str(d)
    case = '[[case]]\nname = "reads"\ntool = "read"\ndecision = "{}"\n'
    (d / "tested").mkdir()
    (d / "tested" / "p.mcpp").write_text(GOOD)
    (d / "tested" / "p.test.toml").write_text(case.format("allow"))
    out["tested"] = str(d / "tested" / "p.mcpp")
    (d / "failing_test").mkdir()
    (d / "failing_test" / "p.mcpp").write_text(GOOD)
    (d / "failing_test" / "p.test.toml").write_text(case.format("deny"))
    out["failing_test"] = str(d / "failing_test" / "p.mcpp")
    for name, policy, test in (("broken_test", GOOD, case.format("maybe")), ("broken_policy", BAD, case.format("deny"))):
        (d / name).mkdir()
        (d / name / "p.mcpp").write_text(policy)
        (d / name / "p.test.toml").write_text(test)
        out[name] = str(d / name / "p.mcpp")
    # a tested policy beside JSON files json cannot read (hostile review 32, H32-4: `mcpp
    # test DIR` read every .json to see whether it is a policy, and exited 3 on these)
    (d / "unreadable_json").mkdir()
    (d / "unreadable_json" / "p.mcpp").write_text(GOOD)
    (d / "unreadable_json" / "p.test.toml").write_text(case.format("allow"))
    (d / "unreadable_json" / "big.json").write_text('{"tools": [{"name": "t", "inputSchema": {"maximum": ' + "1" * 5000 + "}}]}")
    (d / "unreadable_json" / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    out["unreadable_json_dir"] = str(d / "unreadable_json")
    (d / "p.test.toml").write_bytes(b'[[case]]\nname = "caf\xe9"\n')
    out["latin1_test"] = str(d / "p.test.toml")
    return out


def fill(args: tuple, inputs: dict) -> list[str]:
    return [a.format(**inputs) for a in args]


# (command line, expected exit code); one row per command and exit-code class it can reach
TABLE = [
    # author
    (("check", "{good}"), 0),
    (("check", "{good}", "--catalog", "{catalog}"), 0),
    (("check", "{bad}"), 1),
    (("check", "{typo}", "--catalog", "{catalog}"), 1),  # an argument the schema does not declare: an error
    (("check", "{unknowntool}", "--catalog", "{catalog}"), 1),  # an assert about a tool the catalog lacks
    (("check", "{annotated_typo}"), 1),
    (("check", "{badjson}"), 1),
    (("check", "{deepjson}"), 1),  # (it was an internal error: json's reader recursed)
    (("check", "{surrogate}"), 1),  # (check passed it; compile and diff raised writing it)
    (("compile", "{surrogate}", "--no-validate"), 1),
    (("diff", "{good}", "{surrogate}"), 1),
    (("check", "{good}", "--catalog", "{bigcatalog}"), 2),  # (an integer past Python's 4,300 digits)
    (("check", "{good}", "--catalog", "{surrcatalog}"), 2),  # (a lone surrogate: hostile review 30, G1)
    (("check", "{good}", "--catalog", "{nancatalog}"), 2),  # (a number no float holds)
    (("catalog", "show", "{surrcatalog}"), 2),
    (("serve", "--config", "{deepconfig}"), 1),
    (("serve", "--config", "{bigconfig}"), 1),
    (("grant", "list", "--config", "{deepconfig}"), 1),
    (("compile", "{good}", "--user", "u", "--claim", "x=" + "1" * 5000), 2),
    (("check", "{deepjson2}"), 1),
    (("decompile", "{deepjson}"), 1),
    (("compile", "{good}", "--user", "u", "--claim", "x=" + "[" * 5000 + "]" * 5000), 2),  # (an internal error too)
    (("check", "{missing}"), 2),
    (("check", "{dir}"), 2),
    (("check", "{latin1}"), 2),
    (("check", "{good}", "{missing}"), 2),
    (("check", "{good}", "--catalog", "{missing}"), 2),
    (("check", "{good}", "--catalog", "{notjson}"), 2),
    (("check",), 2),
    (("fmt", "--check", "{good}"), 0),
    (("fmt", "--check", "{unformatted}"), 1),
    (("fmt", "{bad}", "--check"), 0),  # formatting needs syntax only: a validation error is not fmt's
    (("fmt", "--check", "{notjson}"), 1),
    (("fmt", "{missing}"), 2),
    (("fmt", "{dir}"), 2),
    (("fmt", "{latin1}"), 2),
    (("eval", "{good}", "--call", '{{"name": "read", "arguments": {{}}}}'), 0),
    (("eval", "{compiled}", "--call", '{{"name": "read"}}'), 0),
    (("eval", "{bad}", "--call", '{{"name": "read"}}'), 1),
    (("eval", "{badjson}", "--call", '{{"name": "read"}}'), 1),
    (("eval", "{missing}", "--call", '{{"name": "read"}}'), 2),
    (("eval", "{good}", "--call", "{{nope"), 2),
    (("eval", "{good}", "--call", '{{"name": "read", "arguments": []}}'), 2),
    (("eval", "{good}", "--calls", "{missing}"), 2),
    (("eval", "{good}", "--calls", "{notjson}"), 2),
    (("eval", "{bad}", "--call", "{{nope"), 2),  # usage is reported before the policy is read
    (("eval", "{good}"), 2),
    (("eval", "{good}", "--call", '{{"name": "read"}}', "--now", "yesterday"), 2),
    (("test", "{tested}"), 0),
    (("test", "{unreadable_json_dir}"), 0),  # (neither is a policy: nothing untested, nothing raised)
    (("test", "{failing_test}"), 1),
    (("test", "{broken_test}"), 1),  # an invalid test file
    (("test", "{broken_policy}"), 1),  # a policy with errors
    (("test", "{missing}"), 2),
    (("test", "{latin1_test}"), 2),
    (("test", "{good}"), 2),  # no good.test.toml beside it
    (("test", "{tested}", "--format", "xml"), 2),
    # prove
    (("verify", "{good}"), 0),
    (("verify", "{failing}"), 1),
    (("verify", "{bad}"), 1),
    (("verify", "{good}", "--catalog", "{catalog}"), 0),
    (("verify", "{good}", "--tools", "{catalog}"), 0),  # the old name of --catalog, the same files
    (("verify", "{annotated}"), 0),  # typed by its own @catalog
    (("verify", "{unknowntool}"), 0),  # untyped: an assert about a tool the policy does not govern
    (("verify", "{unknowntool}", "--catalog", "{catalog}"), 1),  # typed: the catalog has no such tool
    (("verify", "{typo}", "--catalog", "{catalog}"), 1),  # an argument the schema does not declare
    (("verify", "{annotated_typo}"), 1),
    (("verify", "{annotated_missing}"), 1),  # a named catalog that cannot be used: an error at the annotation
    (("verify", "{bypass}"), 1),  # a rule a caller can bypass
    (("verify", "{bypass}", "--allow-bypassable"), 0),
    (("verify", "{missing}"), 2),
    (("verify", "{good}", "{missing}"), 2),
    (("verify", "{good}", "--catalog", "{missing}"), 2),
    (("verify", "{good}", "--catalog", "{notjson}"), 2),
    (("verify", "{good}", "--tools", "{toolnames}"), 2),  # a list of names has no schemas: not a catalog
    (("verify", "{good}", "--format", "xml"), 2),
    (("lint", "{good}"), 0),
    (("lint", "{good}", "--catalog", "{catalog}"), 0),
    (("lint", "{bypass}"), 1),
    (("lint", "{bad}"), 1),
    (("lint", "{annotated_typo}"), 1),
    (("lint", "{unknowntool}", "--catalog", "{catalog}"), 1),
    (("lint", "{missing}"), 2),
    (("lint", "{good}", "--catalog", "{missing}"), 2),
    (("lint", "{good}", "--only", "nope"), 2),
    (("diff", "{good}", "{good}"), 0),
    (("diff", "{good}", "{annotated}"), 0),
    (("diff", "{good}", "{good}", "--catalog", "{catalog}"), 0),
    (("diff", "{good}", "{looser}", "--fail-on", "looser"), 1),
    (("diff", "{bad}", "{good}"), 1),
    (("diff", "{good}", "{typo}", "--catalog", "{catalog}"), 1),
    (("diff", "{missing}", "{good}"), 2),
    (("diff", "{good}", "{good}", "--catalog", "{notjson}"), 2),
    (("diff", "{good}", "{good}", "--fail-on", "sometimes"), 2),
    # deploy
    (("compile", "{good}"), 0),
    (("compile", "{good}", "--catalog", "{catalog}"), 0),
    (("compile", "{typo}", "--catalog", "{catalog}"), 1),
    (("compile", "{good}", "--catalog", "{missing}"), 2),
    (("compile", "{refused}"), 1),
    (("compile", "{bad}"), 1),
    (("compile", "{missing}"), 2),
    (("compile", "{latin1}"), 2),
    (("compile", "{good}", "-o", "{nowhere}"), 2),
    (("compile", "{good}", "-o", "{dir}"), 2),
    (("compile", "{good}", "--label", "x"), 2),
    (("decompile", "{compiled}"), 0),
    (("decompile", "{badjson}"), 1),
    (("decompile", "{notjson}"), 1),
    (("decompile", "{missing}"), 2),
    (("decompile", "{good}"), 2),  # a .mcpp file: the wrong command, named in the message
    (("decompile", "{compiled}", "-o", "{nowhere}"), 2),
    (("catalog", "show", "{catalog}"), 0),
    (("catalog", "show", "{missing}"), 2),
    (("catalog", "show", "{notjson}"), 2),
    (("catalog", "diff", "{catalog}", "{catalog}"), 0),
    (("catalog", "diff", "{catalog}", "{catalog2}"), 1),
    (("catalog", "diff", "{catalog}", "{missing}"), 2),
    (("catalog", "pull", "--stdio", "{upstream}"), 0),
    (("catalog", "pull", "--stdio", "{missing} --flag"), 2),
    (("catalog", "pull", "--url", "ftp://x"), 2),
    (("catalog", "pull"), 2),
    (("catalog", "nope"), 2),
    (("init", "--catalog", "{catalog}"), 0),
    (("init", "--catalog", "{missing}"), 2),
    (("init", "--catalog", "{catalog}", "-o", "{existing}"), 2),
    (("init", "--catalog", "{catalog}", "-o", "{nowhere}"), 2),
    # run
    (("serve",), 2),
    (("serve", "--policy", "{missing}", "--upstream", "http://127.0.0.1:1/mcp"), 2),
    (("serve", "--config", "{missing}"), 2),
    (("serve", "--policy", "{good}", "--upstream", "http://127.0.0.1:1/mcp", "--catalog", "{missing}"), 2),
    (("serve", "--config", "{dir}"), 2),
    (("serve", "--config", "{badconfig}"), 1),
    (("serve", "--policy", "{good}", "--upstream", "http://127.0.0.1:1/mcp", "--host", "0.0.0.0", "--anonymous"), 2),
    (("grant", "create", "--server", "default", "--label", "a", "--state", "{state}"), 0),
    (("grant", "list", "--state", "{state}"), 0),
    (("grant", "list", "--config", "{missing}"), 2),
    (("grant", "create", "--server", "default", "--label", "a", "--state", "{state}", "--policy", "{bad}"), 1),
    (("grant", "create", "--server", "default", "--label", "a", "--config", "{badconfig}"), 1),
    (("grant", "create", "--server", "default", "--label", "a", "--config", "{missing}"), 2),
    (("grant", "create", "--server", "nope", "--label", "a", "--config", "{goodconfig}"), 2),
    (("grant", "revoke", "g_nope", "--state", "{state}"), 2),
    (("grant", "create", "--label", "a", "--state", "{state}"), 2),
    (("audit", "--state", "{state}"), 0),
    (("audit", "--state", "{state}", "--json", "--decision", "deny", "--since", "1h"), 0),
    (("audit", "--state", "{emptystate}"), 2),
    (("audit", "--state", "{state}", "--decision", "maybe"), 2),
    (("audit", "--state", "{state}", "--since", "last tuesday"), 2),
    (("audit", "--config", "{missing}"), 2),
    (("approvals", "--state", "{state}"), 0),
    (("approvals", "--state", "{state}", "--status", "all", "--json"), 0),
    (("approvals", "--state", "{state}", "--status", "maybe"), 2),
    (("approvals", "--state", "{emptystate}"), 2),
    (("approvals", "--config", "{missing}"), 2),
    (("approve", "{approve_me}", "--by", "carol", "--state", "{state}"), 0),
    (("approve", "{decided}", "--state", "{state}"), 1),
    (("approve", "ap_nope", "--state", "{state}"), 2),
    (("approve", "{decided}", "--state", "{emptystate}"), 2),
    (("reject", "{reject_me}", "--by", "carol", "--state", "{state}"), 0),
    (("reject", "{decided}", "--state", "{state}"), 1),
    (("reject", "ap_nope", "--state", "{state}"), 2),
    (("lsp", "--log-file", "{nowhere}"), 2),
    (("lsp", "--bogus"), 2),
    # the root
    (("--version",), 0),
    (("nope",), 2),
]


@pytest.mark.parametrize("args, code", TABLE, ids=[" ".join(a) for a, _ in TABLE])
def test_exit_code(inputs, args, code):
    p = mcpp(*fill(args, inputs), stdin="")
    assert p.returncode == code, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    if code == 2 and args[0] not in ("--version",):
        assert p.stderr.strip(), "a usage error says what is wrong"


def test_fmt_stdin_that_is_not_utf8_is_unreadable_input():
    p = subprocess.run([sys.executable, "-m", "mcpp", "fmt", "-"], input=b"default deny; // caf\xe9\n",
                       capture_output=True)
    assert p.returncode == 2 and b"not UTF-8" in p.stderr and b"Traceback" not in p.stderr


def test_lsp_exits_0_when_its_client_closes():
    p = mcpp("lsp", stdin="")
    assert p.returncode == 0


def test_serve_exits_0_when_stopped(inputs, tmp_path):
    from tests.gateway.peers import free_port, wait_http

    port = free_port()
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "mcpp", "serve", "--policy", inputs["good"], "--upstream",
                             "http://127.0.0.1:1/mcp", "--port", str(port), "--state", str(tmp_path / "state")],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc, log=tmp_path / "serve.log")
        proc.send_signal(signal.SIGTERM)
        # uvicorn finishes in-flight requests, then re-raises the signal so the process ends
        # "terminated by SIGTERM", as service managers expect of a clean stop; never 1, 2 or 3
        assert proc.wait(30) in (0, -signal.SIGTERM), (tmp_path / "serve.log").read_text()
        assert '"level": "error"' not in (tmp_path / "serve.log").read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()


# ---- 3: internal errors -------------------------------------------------------------------

INTERNAL = [
    (("check", "{good}"), "mcpp.lang.program.check_source"),
    (("fmt", "--check", "{good}"), "mcpp.lang.formatter.format_document"),
    (("eval", "{good}", "--call", '{{"name": "read"}}'), "mcpp.runtime.engine.Engine.decide"),
    (("test", "{tested}"), "mcpp.policytest.runner.run_paths"),
    (("verify", "{good}"), "mcpp.analyzer.verify.verify"),
    (("lint", "{good}"), "mcpp.analyzer.lints.lint"),
    (("diff", "{good}", "{good}"), "mcpp.analyzer.diff.diff_programs"),
    (("compile", "{good}", "--no-validate"), "mcpp.lang.compiler.compile_program"),
    (("decompile", "{compiled}"), "mcpp.lang.decompiler.decompile"),
    (("catalog", "show", "{catalog}"), "mcpp.catalog.classify.classify"),
    (("catalog", "diff", "{catalog}", "{catalog}"), "mcpp.catalog.drift.diff_catalogs"),
    (("catalog", "pull", "--stdio", "{upstream}"), "mcpp.catalog.pull.pull"),
    (("init", "--catalog", "{catalog}"), "mcpp.catalog.starter.starter_policy"),
    (("serve", "--policy", "{good}", "--upstream", "http://127.0.0.1:1/mcp"), "mcpp.runtime.gateway.server.serve"),
    (("grant", "list", "--state", "{state}"), "mcpp.runtime.gateway.grants.SQLiteGrants.list"),
    (("audit", "--state", "{state}"), "mcpp.runtime.gateway.audit.AuditLog.query"),
    (("approvals", "--state", "{state}"), "mcpp.runtime.gateway.approvals.ApprovalStore.list"),
    (("approve", "ap_nope", "--state", "{state}"), "mcpp.runtime.gateway.approvals.ApprovalStore.decide"),
    (("reject", "ap_nope", "--state", "{state}"), "mcpp.runtime.gateway.approvals.ApprovalStore.decide"),
    (("lsp",), "mcpp.lsp.server.run"),
]


def _in_process(argv: list[str], monkeypatch, target: str):
    """Run `mcpp argv` in this process with `target` raising, as a bug in it would."""
    import importlib

    from mcpp.cli import main

    module, _, attr = target.rpartition(".")
    try:
        owner = importlib.import_module(module)
    except ModuleNotFoundError:  # a method: module.Class.method
        module, _, cls = module.rpartition(".")
        owner = getattr(importlib.import_module(module), cls)

    def boom(*_a, **_k):
        raise RuntimeError("injected fault")

    monkeypatch.setattr(owner, attr, boom)
    monkeypatch.setattr(sys, "argv", ["mcpp", *argv])
    with pytest.raises(SystemExit) as e:
        main()
    return e.value.code


@pytest.mark.parametrize("args, target", INTERNAL, ids=[a[0] if a[0] != "catalog" else " ".join(a[:2]) for a, _ in INTERNAL])
def test_internal_error_exits_3_without_a_traceback(inputs, args, target, monkeypatch, capsys):
    monkeypatch.delenv("MCPP_DEBUG", raising=False)
    code = _in_process(fill(args, inputs), monkeypatch, target)
    err = capsys.readouterr().err
    assert code == 3, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == ("mcpp: internal error: RuntimeError: injected fault "
                                            "(set MCPP_DEBUG=1 for a traceback)")


def test_mcpp_debug_shows_the_traceback(inputs, monkeypatch):
    monkeypatch.setenv("MCPP_DEBUG", "1")
    with pytest.raises(RuntimeError, match="injected fault"):
        _in_process(fill(("check", "{good}"), inputs), monkeypatch, "mcpp.lang.program.check_source")


def test_every_command_has_a_row_for_each_class_it_can_reach():
    """The table covers every command: 0 and 2 for all, 1 where the input can have errors or
    a property can fail, 3 for all (INTERNAL)."""
    from mcpp.cli import app
    import typer.main

    root = typer.main.get_command(app)
    names = set()
    for name, cmd in root.commands.items():
        subs = getattr(cmd, "commands", None)
        names |= {f"{name} {s}" for s in subs} if subs else {name}
    def key(args):
        return " ".join(args[:2]) if args[0] in ("catalog", "grant") else args[0]
    codes: dict[str, set[int]] = {}
    for args, code in TABLE:
        codes.setdefault(key(args), set()).add(code)
    internal = {key(a) for a, _ in INTERNAL}
    no_errors_class = {"catalog pull", "catalog show", "init", "grant list", "grant revoke", "audit", "approvals", "lsp"}
    for name in sorted(names):
        expected = {0, 2} | (set() if name in no_errors_class else {1})
        if name in ("serve",):
            expected = {1, 2}  # 0 is test_serve_exits_0_when_stopped
        if name == "lsp":
            expected = {2}  # 0 is test_lsp_exits_0_when_its_client_closes
        if name == "grant revoke":
            expected = {2}  # 0: tests/gateway (revoking a real grant)
        assert expected <= codes.get(name, set()), (name, codes.get(name))
        group = name.split()[0]  # one row per group: `main()` handles every subcommand alike
        assert any(i.split()[0] == group for i in internal), f"no internal-error row for {name}"


def test_the_readme_states_the_table_and_the_analyzer_page_agrees():
    from mcpp import console

    readme = (ROOT / "README.md").read_text()
    rows = {int(line.split("|")[1]): line.split("|")[2].strip() for line in readme.splitlines()
            if line.startswith("| ") and line.split("|")[1].strip() in ("0", "1", "2", "3")}
    assert rows == {console.OK: "success", console.ERRORS: "the input has errors, or a property failed",
                    console.USAGE: "bad usage, or input that cannot be read",
                    console.INTERNAL: "an internal error (a bug): one line, no traceback unless `MCPP_DEBUG=1`"}
    analyzer = (ROOT / "docs" / "analyzer.md").read_text()
    assert "../README.md#exit-codes" in analyzer
    table = [line for line in analyzer.splitlines() if line.startswith("| 1 |") or line.startswith("| 2 |")]
    assert "the input has errors" in table[0] and "a property failed" in table[0]
    assert table[1].startswith("| 2 | bad usage or unreadable input")
