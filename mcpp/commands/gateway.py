"""`mcpp serve | grant | audit`: run the gateway, manage grant tokens, read the audit log."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, List, Optional

import typer

from mcpp.help import RUN, Command, command, group
from mcpp.console import ERRORS, USAGE, die, emit_json, read_input

grant_app = group("Create, list and revoke grant tokens (the bearer tokens agents present to `mcpp serve`).")

# where `mcpp serve` keeps grants, counters and the audit log without --config; `grant` and
# `audit` default to the same directory, so the quick start needs no --state anywhere
DEFAULT_STATE = "mcpp-state"


def _config(config: Path):
    from mcpp.runtime.gateway.config import ConfigError, load_config

    read_input(config)  # a missing or unreadable file exits 2; a file with errors, 1
    try:
        return load_config(config)
    except ConfigError as e:
        die(str(e), ERRORS)


def _state(config: Optional[Path], state: Optional[Path]) -> tuple[str, str | None, object | None]:
    """(state dir, redis url, config) from --config or --state (default: serve's default)."""
    if config is not None and state is not None:
        die("give --config FILE or --state DIR, not both")
    if config is None and state is None:
        state = Path(DEFAULT_STATE)
    if config is not None:
        cfg = _config(config)
        return cfg.state_dir, cfg.redis_url, cfg
    assert state is not None  # set above when neither was given
    return str(state.resolve()), None, None


def _grants(config, state):
    from mcpp.runtime.gateway.grants import open_grants

    state_dir, redis_url, cfg = _state(config, state)
    try:
        return open_grants(state_dir, redis_url), cfg
    except Exception as e:
        die(f"cannot open the grant store: {type(e).__name__}: {e}")


def serve(
    config: Optional[Path] = typer.Option(None, "--config", metavar="FILE", help="Gateway config (TOML; docs/gateway.md)"),
    policy: Optional[Path] = typer.Option(None, "--policy", metavar="FILE", help="Quick start: the policy (.mcpp or JSON) for server 'default'"),
    upstream: Optional[str] = typer.Option(None, "--upstream", metavar="URL", help="Quick start: the upstream's Streamable HTTP URL"),
    stdio: Optional[str] = typer.Option(None, "--stdio", metavar='"CMD ARGS"', help='Quick start: the stdio server to spawn, e.g. "npx -y server"'),
    port: int = typer.Option(8787, "--port", metavar="PORT", help="Quick start: port to listen on"),
    host: str = typer.Option("127.0.0.1", "--host", metavar="ADDRESS", help="Quick start: address to listen on"),
    state: Path = typer.Option(Path(DEFAULT_STATE), "--state", metavar="DIR", help="Quick start: directory for grants, counters and audit"),
    anonymous: bool = typer.Option(False, "--anonymous", help="Quick start: accept requests without a token as grant 'anonymous' (loopback only)"),
    max_body_bytes: Optional[int] = typer.Option(None, "--max-body-bytes", metavar="BYTES", help="Quick start: request body limit (413 above)"),
    upstream_timeout: Optional[float] = typer.Option(None, "--upstream-timeout", metavar="SECONDS", help="Quick start: seconds to wait for the upstream"),
    pin_catalog: Optional[Path] = typer.Option(None, "--pin-catalog", "--catalog", metavar="CATALOG", help="Quick start: pin this catalog (mcpp catalog pull): calls to tools that differ from it are refused, and the policy is checked and analysed against it"),
    no_input_schema: bool = typer.Option(False, "--no-enforce-input-schema", help="Quick start: do not check calls against the tools' input schemas (typed calls are on by default)"),
    shadow: Optional[Path] = typer.Option(None, "--shadow", help="Quick start: a candidate policy decided beside --policy and never enforced (docs/rollout.md)"),
    approval_elicitation: bool = typer.Option(False, "--approval-elicitation", help="Quick start: ask for approvals through MCP elicitation where the client supports it (trusts the client to show the form to a person: docs/approval.md)"),
    mode: Optional[str] = typer.Option(None, "--mode", help="enforce (default) | log-only: decide and audit every call, deny nothing the policy denies (whole gateway; overrides the config's mode)"),
) -> None:
    """Run the gateway: every tools/call is decided by the policy before the upstream sees it."""
    from mcpp.runtime.gateway.config import ConfigError, quick_config
    from mcpp.runtime.gateway.server import StartRefused
    from mcpp.runtime.gateway.server import serve as run

    if mode is not None and mode not in ("enforce", "log-only"):
        die("--mode must be enforce or log-only")
    if config is not None:
        if policy or upstream or stdio or pin_catalog or no_input_schema or shadow or approval_elicitation:
            die("--config and the quick-start flags (--policy, --upstream, --stdio, --pin-catalog, --no-enforce-input-schema, "
                "--shadow, --approval-elicitation) are exclusive")
        cfg = _config(config)
        if mode is not None:
            from dataclasses import replace

            cfg = replace(cfg, mode=mode)
        path = str(config.resolve())
    else:
        if policy is None:
            die("give --config FILE, or --policy FILE with --upstream URL or --stdio \"CMD …\"")
        if not policy.is_file():
            die(f"{policy}: no such policy file")
        if pin_catalog is not None:
            from mcpp.catalog import CatalogError, load_catalog
            from mcpp.runtime.gateway.pinning import catalog_error_text

            try:  # a pin that cannot load would refuse every call: say so now
                load_catalog(pin_catalog)
            except CatalogError as e:
                die(f"--pin-catalog: {catalog_error_text(e)}")
        if shadow is not None and not shadow.is_file():
            die(f"{shadow}: no such policy file")
        try:
            cfg = quick_config(str(policy), upstream, stdio, port, str(state), host, anonymous, max_body_bytes, upstream_timeout,
                               str(pin_catalog) if pin_catalog is not None else None, not no_input_schema,
                               str(shadow) if shadow is not None else None, mode or "enforce", approval_elicitation)
        except ConfigError as e:
            die(str(e))
        path = None
    bad = [s.id for s in cfg.servers if s.anonymous]
    if bad and not cfg.loopback:
        die(f"server {bad[0]} accepts anonymous requests, which is allowed only on a loopback address (host = {cfg.host})",
            ERRORS if config is not None else USAGE)
    try:
        run(cfg, path)
    except StartRefused as e:  # a policy that does not load or fails an assert: never served
        die(str(e), 1)
    except ConfigError as e:
        die(str(e), ERRORS)
    except OSError as e:
        die(f"cannot start: {e.strerror or e}", USAGE)


@grant_app.command("create", cls=Command)
def grant_create(
    server: str = typer.Option(..., "--server", metavar="ID", help="The server id this grant may use ('default' in the quick start)"),
    label: str = typer.Option(..., "--label", metavar="LABEL", help="Who or what holds it (shown in the audit log)"),
    policy: Optional[Path] = typer.Option(None, "--policy", metavar="FILE", help="A policy for this grant instead of the server's"),
    group: List[str] = typer.Option([], "--group", metavar="GROUP", help="A group the grant belongs to"),
    config: Optional[Path] = typer.Option(None, "--config", metavar="FILE", help="The gateway config (TOML) whose state_dir or redis_url to use"),
    state: Optional[Path] = typer.Option(None, "--state", metavar="DIR", help=f"The state directory `mcpp serve --state` uses (default: {DEFAULT_STATE}, as serve's)"),
    as_json: bool = typer.Option(False, "--json", help='Print {"id": …, "token": …}'),
) -> None:
    """Create a grant and print its bearer token, once: only a hash is stored."""
    store, cfg = _grants(config, state)
    if cfg is not None and cfg.server(server) is None:
        die(f"no server {server!r} in {config} (servers: {', '.join(s.id for s in cfg.servers)})")
    policy_path = None
    if policy is not None:
        from mcpp.runtime.gateway.policies import PolicyRefused, load_verified

        try:
            load_verified(str(policy.resolve()))
        except PolicyRefused as e:
            die(f"the grant's policy does not load: {e}", ERRORS)
        policy_path = str(policy.resolve())
    rec, token = store.create(server, label, policy_path, group)
    if as_json:
        emit_json({"id": rec.id, "token": token})
    else:
        print(f"grant {rec.id} ({label}) for server {server}")
        print(f"token: {token}")
        print("This token is shown once; the gateway stores only its hash.", file=sys.stderr)


@grant_app.command("list", cls=Command)
def grant_list(
    server: Optional[str] = typer.Option(None, "--server", metavar="ID", help="Only this server's grants"),
    config: Optional[Path] = typer.Option(None, "--config", metavar="FILE", help="The gateway config (TOML) whose state_dir or redis_url to use"),
    state: Optional[Path] = typer.Option(None, "--state", metavar="DIR", help=f"The state directory `mcpp serve --state` uses (default: {DEFAULT_STATE}, as serve's)"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per grant"),
) -> None:
    """List grants (never tokens)."""
    store, _ = _grants(config, state)
    for g in store.list(server):
        if as_json:
            emit_json(g.public())
        else:
            status = f"revoked {g.revoked_at}" if g.revoked_at else "active"
            print(f"{g.id}  {g.server}  {g.label!r}  {status}  created {g.created_at}" + (f"  policy {g.policy}" if g.policy else ""))


@grant_app.command("revoke", cls=Command)
def grant_revoke(
    grant_id: str = typer.Argument(..., metavar="GRANT_ID", help="The grant id (g_…)"),
    config: Optional[Path] = typer.Option(None, "--config", metavar="FILE", help="The gateway config (TOML) whose state_dir or redis_url to use"),
    state: Optional[Path] = typer.Option(None, "--state", metavar="DIR", help=f"The state directory `mcpp serve --state` uses (default: {DEFAULT_STATE}, as serve's)"),
) -> None:
    """Revoke a grant: its next request gets 401, on every replica."""
    store, _ = _grants(config, state)
    if not store.revoke(grant_id):
        die(f"no grant {grant_id}", USAGE)
    print(f"revoked {grant_id}")


def _time(value: Optional[str], flag: str) -> Optional[float]:
    if value is None:
        return None
    v = value.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if v and v[-1] in units and v[:-1].replace(".", "", 1).isdigit():
        return time.time() - float(v[:-1]) * units[v[-1]]
    try:
        return float(v)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        die(f"{flag}: not a time: {value!r} (ISO 8601, epoch seconds, or an age like 15m, 2h, 1d)")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def audit(
    config: Optional[Path] = typer.Option(None, "--config", metavar="FILE", help="The gateway config (TOML) whose state_dir or redis_url to use"),
    state: Optional[Path] = typer.Option(None, "--state", metavar="DIR", help=f"The state directory `mcpp serve --state` uses (default: {DEFAULT_STATE}, as serve's)"),
    grant: Optional[str] = typer.Option(None, "--grant", metavar="ID|LABEL", help="Only calls by this grant (its id or label)"),
    subject: Optional[str] = typer.Option(None, "--subject", metavar="ID", help="Only calls by this OAuth user (the principal id, as audited)"),
    tool: Optional[str] = typer.Option(None, "--tool", metavar="NAME", help="Only calls to this tool"),
    decision: Optional[str] = typer.Option(None, "--decision", metavar="DECISION", help="allow, deny or approval (a call held for a person); approved or rejected (a person's answer)"),
    server: Optional[str] = typer.Option(None, "--server", metavar="ID", help="Only calls to this server id"),
    since: Optional[str] = typer.Option(None, "--since", metavar="TIME", help="From this time: ISO 8601, epoch seconds, or an age (15m, 2h, 1d)"),
    until: Optional[str] = typer.Option(None, "--until", metavar="TIME", help="Up to this time: ISO 8601, epoch seconds, or an age"),
    limit: Optional[int] = typer.Option(None, "--limit", metavar="N", help="At most this many rows (the newest)"),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new rows (tail)"),
    as_json: bool = typer.Option(False, "--json", help="JSON lines (an export)"),
    mismatches: bool = typer.Option(False, "--mismatches", help="Only calls the shadow policy decided differently (docs/rollout.md)"),
) -> None:
    """Query or tail the audit log: one row per decided tools/call (argument keys only)."""
    from mcpp.runtime.gateway.audit import AuditLog

    if decision is not None and decision not in ("allow", "deny", "approval", "approved", "rejected"):
        die("--decision: allow, deny, approval, approved or rejected")
    state_dir, _, _ = _state(config, state)
    if not (Path(state_dir) / "audit.db").exists():
        die(f"no audit log in {state_dir}: `mcpp serve` writes one there once it has decided a call"
            f" (give the directory serve uses: --state DIR or --config FILE)")
    log = AuditLog(state_dir, readonly=True)
    filters: dict[str, Any] = dict(grant=grant, subject=subject, tool=tool, decision=decision, server=server, since=_time(since, "--since"),
                   until=_time(until, "--until"), mismatches=mismatches)
    rows = log.query(**filters, limit=limit, newest=limit is not None)
    last = 0
    try:
        while True:
            for r in rows:
                last = max(last, r["seq"])
                if as_json:
                    emit_json(r)
                else:
                    print(_line(r), flush=True)
            if not follow:
                break
            time.sleep(0.5)
            rows = log.query(**filters, after_seq=last)
    except KeyboardInterrupt:
        pass


def _line(r: dict) -> str:
    args = " ".join(r["arg_keys"])
    if r.get("subject"):
        who = f"user={r['subject']} issuer={r['issuer']}"
    else:
        who = "grant=" + (f"{r['grant_label']}({r['grant_id']})" if r["grant_label"] else r["grant_id"])
    out = (f"{r['time']}  {r['decision']:<5} tool={r['tool']} rule={r['rule']} {who} server={r['server']}"
           f" args=[{args}] request_id={r['request_id']}")
    if r["decision"] != "allow":
        out += f" reason={json.dumps(r['message'], ensure_ascii=False)}"
    if r["outcome"] not in ("forwarded", "denied") or (r["decision"] != "allow" and r["outcome"] == "forwarded"):
        out += f" outcome={r['outcome']}"
    if r.get("approval_id"):
        out += f" approval={r['approval_id']}"
    if r.get("shadow_decision"):
        mark = "" if r["shadow_decision"] == r["decision"] else " MISMATCH"
        out += f" shadow={r['shadow_decision']} shadow_rule={r['shadow_rule']}{mark}"
    if r.get("mode") == "log-only":
        out += " mode=LOG-ONLY"
    if r["trace_id"]:
        out += f" trace_id={r['trace_id']}"
    return out


_CONFIG_HELP = "The gateway config (TOML) whose state_dir to use"
_STATE_HELP = f"The state directory `mcpp serve --state` uses (default: {DEFAULT_STATE}, as serve's)"


def _approvals(config, state):
    from mcpp.runtime.gateway.approvals import ApprovalStore

    state_dir, _, cfg = _state(config, state)
    # an approver names the gateway's state directory; one that holds no approvals is a
    # wrong directory (usage), not an empty queue to create there
    if not (Path(state_dir) / "approvals.db").exists():
        die(f"no approvals in {state_dir}: `mcpp serve` keeps them there"
            f" (give the directory serve uses: --state DIR or --config FILE)")
    return ApprovalStore(state_dir), state_dir, cfg


def approvals_list(
    status: Optional[str] = typer.Option("pending", "--status", metavar="STATUS", help="pending | approved | rejected | used | expired | all"),
    server: Optional[str] = typer.Option(None, "--server", metavar="ID", help="Only approvals for calls to this server id"),
    config: Optional[Path] = typer.Option(None, "--config", metavar="FILE", help=_CONFIG_HELP),
    state: Optional[Path] = typer.Option(None, "--state", metavar="DIR", help=_STATE_HELP),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per approval"),
) -> None:
    """List approvals (pending by default): the exact call each one would run."""
    from mcpp.runtime.gateway.approvals import STATUSES, shown_arguments

    if status not in STATUSES + ("all",):
        die(f"--status must be one of {', '.join(STATUSES + ('all',))}")
    store, _, _ = _approvals(config, state)
    for a in store.list(None if status == "all" else status, server):
        if as_json:
            emit_json(a.public())
        else:
            p = a.public()
            who = f"{a.grant_label}({a.grant_id})" if a.grant_label else a.grant_id
            line = (f"{a.id}  {a.status:<8} tool={a.tool} server={a.server} grant={who} arguments={shown_arguments(a)}"
                    f" expires={p['expires']}")
            if a.reason:
                line += f" reason={json.dumps(a.reason, ensure_ascii=False)}"
            if a.decided_by:
                line += f" by={a.decided_by} via={a.decided_via}"
            print(line)


def _answer(approval_id: str, approve: bool, by: Optional[str], config, state) -> None:
    import getpass

    from mcpp.runtime.gateway.approvals import ApprovalError, answer_row, shown_arguments
    from mcpp.runtime.gateway.audit import AuditLog

    store, state_dir, cfg = _approvals(config, state)
    who = by or getpass.getuser()
    if not 1 <= len(who) <= 128:
        die("--by: 1 to 128 characters")
    try:
        a = store.decide(approval_id, approve, who, "cli")
    except ApprovalError as e:
        # no such approval: a wrong id (usage, as `grant revoke`); one already answered or
        # expired: the request cannot be done (1)
        die(str(e), USAGE if store.get(approval_id) is None else 1)
    log = AuditLog(state_dir, cfg.audit_synchronous if cfg else "normal")
    log.write(answer_row(a, None, cfg.mode if cfg else "enforce"))
    log.close()
    print(f"{a.status} {a.id}: tool {a.tool} on {a.server} for {a.grant_label or a.grant_id} with {shown_arguments(a)}")
    if approve:
        print(f"The same call runs once when it is made again, until {a.public()['expires']}.", file=sys.stderr)


def approve(
    approval_id: str = typer.Argument(..., metavar="ID", help="The approval id (ap_…) the agent was given"),
    by: Optional[str] = typer.Option(None, "--by", metavar="NAME", help="Who approves (default: the OS user); recorded in the audit"),
    config: Optional[Path] = typer.Option(None, "--config", metavar="FILE", help=_CONFIG_HELP),
    state: Optional[Path] = typer.Option(None, "--state", metavar="DIR", help=_STATE_HELP),
) -> None:
    """Approve one pending call: that exact call (tool, arguments, grant, server) runs once."""
    _answer(approval_id, True, by, config, state)


def reject(
    approval_id: str = typer.Argument(..., metavar="ID", help="The approval id (ap_…)"),
    by: Optional[str] = typer.Option(None, "--by", metavar="NAME", help="Who rejects (default: the OS user); recorded in the audit"),
    config: Optional[Path] = typer.Option(None, "--config", metavar="FILE", help=_CONFIG_HELP),
    state: Optional[Path] = typer.Option(None, "--state", metavar="DIR", help=_STATE_HELP),
) -> None:
    """Reject one pending call: the same call is refused until the approval expires."""
    _answer(approval_id, False, by, config, state)


def register(app: typer.Typer) -> None:
    command(app, "serve", serve, RUN)
    app.add_typer(grant_app, name="grant", rich_help_panel=RUN)
    command(app, "audit", audit, RUN)
    command(app, "approvals", approvals_list, RUN)
    command(app, "approve", approve, RUN)
    command(app, "reject", reject, RUN)
