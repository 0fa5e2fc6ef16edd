"""`mcpp serve | grant | audit`: run the gateway, manage grant tokens, read the audit log."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import List, Optional

import typer

from mcpp.console import die, emit_json

grant_app = typer.Typer(help="Create, list and revoke grant tokens.", no_args_is_help=True, add_completion=False,
                        pretty_exceptions_enable=False, rich_markup_mode=None)


def _config(config: Optional[Path]):
    from mcpp.runtime.gateway.config import ConfigError, load_config

    try:
        return load_config(config)
    except ConfigError as e:
        die(str(e))


def _state(config: Optional[Path], state: Optional[Path]) -> tuple[str, str | None, object | None]:
    """(state dir, redis url, config) from --config or --state."""
    if (config is None) == (state is None):
        die("give exactly one of --config FILE or --state DIR")
    if config is not None:
        cfg = _config(config)
        return cfg.state_dir, cfg.redis_url, cfg
    return str(state.resolve()), None, None


def _grants(config, state):
    from mcpp.runtime.gateway.grants import open_grants

    state_dir, redis_url, cfg = _state(config, state)
    try:
        return open_grants(state_dir, redis_url), cfg
    except Exception as e:
        die(f"cannot open the grant store: {type(e).__name__}: {e}")


def serve(
    config: Optional[Path] = typer.Option(None, "--config", help="Gateway config (TOML)"),
    policy: Optional[Path] = typer.Option(None, "--policy", help="Quick start: the policy (.mcpp or JSON) for server 'default'"),
    upstream: Optional[str] = typer.Option(None, "--upstream", help="Quick start: the upstream's Streamable HTTP URL"),
    stdio: Optional[str] = typer.Option(None, "--stdio", help='Quick start: the stdio server to spawn, e.g. "npx -y server"'),
    port: int = typer.Option(8787, "--port", help="Quick start: port to listen on"),
    host: str = typer.Option("127.0.0.1", "--host", help="Quick start: address to listen on"),
    state: Path = typer.Option(Path("mcpp-state"), "--state", help="Quick start: directory for grants, counters and audit"),
    anonymous: bool = typer.Option(False, "--anonymous", help="Quick start: accept requests without a token as grant 'anonymous' (loopback only)"),
    max_body_bytes: Optional[int] = typer.Option(None, "--max-body-bytes", help="Quick start: request body limit (413 above)"),
    upstream_timeout: Optional[float] = typer.Option(None, "--upstream-timeout", help="Quick start: seconds to wait for the upstream"),
    pin_catalog: Optional[Path] = typer.Option(None, "--pin-catalog", help="Quick start: refuse calls to tools that differ from this catalog (mcpp catalog pull)"),
    no_input_schema: bool = typer.Option(False, "--no-enforce-input-schema", help="Quick start: do not check calls against the tools' input schemas (typed calls are on by default)"),
) -> None:
    """Run the gateway: every tools/call is decided by the policy before the upstream sees it."""
    from mcpp.runtime.gateway.config import ConfigError, quick_config
    from mcpp.runtime.gateway.server import StartRefused
    from mcpp.runtime.gateway.server import serve as run

    if config is not None:
        if policy or upstream or stdio or pin_catalog or no_input_schema:
            die("--config and the quick-start flags (--policy, --upstream, --stdio, --pin-catalog, --no-enforce-input-schema) are exclusive")
        cfg = _config(config)
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
        try:
            cfg = quick_config(str(policy), upstream, stdio, port, str(state), host, anonymous, max_body_bytes, upstream_timeout,
                               str(pin_catalog) if pin_catalog is not None else None, not no_input_schema)
        except ConfigError as e:
            die(str(e))
        path = None
    bad = [s.id for s in cfg.servers if s.anonymous]
    if bad and not cfg.loopback:
        die(f"server {bad[0]} accepts anonymous requests, which is allowed only on a loopback address (host = {cfg.host})")
    try:
        run(cfg, path)
    except StartRefused as e:  # a policy that does not load or fails an assert: never served
        die(str(e), 1)
    except ConfigError as e:
        die(str(e))
    except OSError as e:
        die(f"cannot start: {e.strerror or e}")


@grant_app.command("create")
def grant_create(
    server: str = typer.Option(..., "--server", help="The server id this grant may use"),
    label: str = typer.Option(..., "--label", help="Who or what holds it (shown in the audit log)"),
    policy: Optional[Path] = typer.Option(None, "--policy", help="A policy for this grant instead of the server's"),
    group: List[str] = typer.Option([], "--group", help="A group the grant belongs to (repeatable)"),
    config: Optional[Path] = typer.Option(None, "--config", help="Gateway config (TOML)"),
    state: Optional[Path] = typer.Option(None, "--state", help="State directory (quick start)"),
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
            die(f"the grant's policy does not load: {e}", 1)
        policy_path = str(policy.resolve())
    rec, token = store.create(server, label, policy_path, group)
    if as_json:
        emit_json({"id": rec.id, "token": token})
    else:
        print(f"grant {rec.id} ({label}) for server {server}")
        print(f"token: {token}")
        print("This token is shown once; the gateway stores only its hash.", file=sys.stderr)


@grant_app.command("list")
def grant_list(
    server: Optional[str] = typer.Option(None, "--server", help="Only this server's grants"),
    config: Optional[Path] = typer.Option(None, "--config"),
    state: Optional[Path] = typer.Option(None, "--state"),
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


@grant_app.command("revoke")
def grant_revoke(
    grant_id: str = typer.Argument(..., help="The grant id (g_…)"),
    config: Optional[Path] = typer.Option(None, "--config"),
    state: Optional[Path] = typer.Option(None, "--state"),
) -> None:
    """Revoke a grant: its next request gets 401, on every replica."""
    store, _ = _grants(config, state)
    if not store.revoke(grant_id):
        die(f"no grant {grant_id}", 1)
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
    config: Optional[Path] = typer.Option(None, "--config"),
    state: Optional[Path] = typer.Option(None, "--state"),
    grant: Optional[str] = typer.Option(None, "--grant", help="A grant id or label"),
    subject: Optional[str] = typer.Option(None, "--subject", help="An OAuth user (the principal id, as audited)"),
    tool: Optional[str] = typer.Option(None, "--tool"),
    decision: Optional[str] = typer.Option(None, "--decision", help="allow or deny"),
    server: Optional[str] = typer.Option(None, "--server"),
    since: Optional[str] = typer.Option(None, "--since", help="ISO time, epoch seconds, or an age (15m, 2h, 1d)"),
    until: Optional[str] = typer.Option(None, "--until", help="ISO time, epoch seconds, or an age"),
    limit: Optional[int] = typer.Option(None, "--limit", help="At most this many rows (the newest)"),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new rows (tail)"),
    as_json: bool = typer.Option(False, "--json", help="JSON lines (an export)"),
) -> None:
    """Query or tail the audit log: one row per decided tools/call (argument keys only)."""
    from mcpp.runtime.gateway.audit import AuditLog

    if decision is not None and decision not in ("allow", "deny"):
        die("--decision: allow or deny")
    state_dir, _, _ = _state(config, state)
    if not (Path(state_dir) / "audit.db").exists():
        die(f"no audit log in {state_dir}")
    log = AuditLog(state_dir, readonly=True)
    filters = dict(grant=grant, subject=subject, tool=tool, decision=decision, server=server, since=_time(since, "--since"), until=_time(until, "--until"))
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
    if r["decision"] == "deny":
        out += f" reason={json.dumps(r['message'], ensure_ascii=False)}"
    if r["outcome"] not in ("forwarded", "denied"):
        out += f" outcome={r['outcome']}"
    if r["trace_id"]:
        out += f" trace_id={r['trace_id']}"
    return out


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(grant_app, name="grant")
    app.command("audit")(audit)
