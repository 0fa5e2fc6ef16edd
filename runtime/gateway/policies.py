"""Policies in force: loaded, verified, hot-reloaded, with the last good one kept.

A policy file (`.mcpp` or its JSON form) is loaded with `mcpp.load_policy` and must pass
the gates — its `assert` statements proved, no rule a caller can bypass (`Policy.verify`,
`Policy.lint`) — before it may replace the one in force. A file that fails any step is
refused: the previous policy keeps deciding, and the failure is kept for `/healthz` and
logged. A file that never loaded leaves its grants with no policy, which denies
everything (fail closed). The gateway reaches policies only through the public API
(`import mcpp`; the layer contracts in pyproject.toml check it).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import mcpp
from mcpp import Decision, Policy, PolicyError

from .reloadable import FileState, Registry


class PolicyRefused(Exception):
    pass


@dataclass
class LoadedPolicy:
    path: str
    policy: Policy
    sha256: str
    loaded_at: float


def load_verified(path: str, catalog: str | None = None, counters=None, namespace: str = "default") -> tuple[Policy, str]:
    """Load (`mcpp.load_policy`) and pass every gate (POLICY_GATES: the assertions, proved;
    no rule a caller can bypass); raise PolicyRefused with the reason. Used at start (`mcpp
    serve` refuses to start), on every reload (the last good policy stays in force) and by
    `mcpp grant create --policy`. Limits count in `counters` under `namespace`."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise PolicyRefused(f"cannot read {path}: {e.strerror}") from None
    sha = hashlib.sha256(data).hexdigest()  # of the bytes decided by, which the audit names
    try:
        policy = mcpp.load_policy(data, filename=path, counters=counters, namespace=namespace)
    except PolicyError as e:
        shown = e.render().strip()
        raise PolicyRefused(shown.splitlines()[0] if shown else str(e)) from None
    for gate in POLICY_GATES:
        reasons = gate(policy, path, catalog)
        if reasons:
            raise PolicyRefused(reasons[0])
    return policy, sha


# the `catalog` of a server that does not check calls against their schemas
# (`enforce_input_schema = false`): its policies are analysed untyped, whatever they name
UNTYPED = "<untyped: the server does not enforce input schemas>"


def route_catalog(catalog: str | None, enforce_input_schema: bool) -> str | None:
    """What a server's policies are analysed with: its pinned catalog (or the policy's own
    `@catalog`) only when the gateway enforces the schemas the analysis would assume."""
    return catalog if enforce_input_schema else UNTYPED


def _catalog(policy: Policy, path: str, catalog: str | None):
    """The catalog the policy is analysed with: the server's pinned catalog, else the one
    the policy names (`@catalog`, mcpp.toml), else None (untyped); None too when the server
    does not enforce input schemas (UNTYPED): a typed proof would assume a check that never
    runs. Raises PolicyRefused when a named catalog cannot be loaded."""
    from mcpp.catalog import CatalogError as UnusableCatalog, load_catalog

    if catalog == UNTYPED:
        return None
    try:
        return load_catalog(catalog) if catalog else policy.named_catalog()
    except (UnusableCatalog, PolicyError) as e:  # a pinned catalog file; the one the policy names
        d = e.diagnostics[0]
        where = d.file if d.file != "<input>" else (catalog or "it names")
        raise PolicyRefused(f"{path}: cannot use the tool catalog {where}: {d.message}") from None


def _line(span) -> int:
    return span.line if span is not None else 0


def assert_gate(policy: Policy, path: str, catalog: str | None = None) -> list[str]:
    """The policy's `assert` statements, proved (`Policy.verify`, typed by the catalog):
    an assert that fails, or that could not be proved, keeps the policy out of force."""
    cat = _catalog(policy, path, catalog)
    try:
        results = policy.verify(catalog=cat)
    except PolicyError as e:  # a malformed assertion
        return [f"{path}:{_line(d.span)}: {d.message}" for d in e.diagnostics]
    out = []
    for r in results:
        if r.status == "fail":
            out.append(f"{path}:{_line(r.span)}: assert {r.id!r} ({r.kind}) fails: {r.message}")
        elif r.status != "pass":
            out.append(f"{path}:{_line(r.span)}: assert {r.id!r} ({r.kind}) could not be proved: {r.message}")
    return out


def lint_gate(policy: Policy, path: str, catalog: str | None = None) -> list[str]:
    """Error-level analyzer findings (`Policy.lint(errors_only=True)`: a forbid a caller
    skips with a missing or mistyped argument), typed by the catalog: such a policy never
    decides."""
    cat = _catalog(policy, path, catalog)
    found = policy.lint(catalog=cat, errors_only=True)
    hint = "" if cat is not None else (
        " (give the server its tool catalog — `catalog = \"tools.json\"`, `--pin-catalog` or the policy's "
        "`@catalog` — so the analysis can count on the gateway's schema check, or guard the argument in the permit)"
    )
    return [f"{path}:{_line(d.span)}: {d.code}: {d.message}{hint}" for d in found]


# Gates a loaded policy must pass before it may decide: each returns the reasons it is
# refused (an empty list: it passes), as `path:line: message`. They run at start, where a
# refusal stops `mcpp serve` (exit 1), and on every reload, where the last good policy stays.
PolicyGate = Callable[[Policy, str, "str | None"], list[str]]
POLICY_GATES: list[PolicyGate] = [assert_gate, lint_gate]


class DenyAll:
    """Stands in for the policy of a grant with no policy in force: every call is denied.
    Why (`why`: a file path, a parse error, an assert's counterexample) is for the
    operator — the log, /healthz and the audit row — never for the agent."""

    DENIAL = "No policy is in force for this server, so every call is denied. The operator can see why in the gateway's health and log."

    def __init__(self, why: str):
        self.why = why

    def decide(self, tool, arguments=None, **_) -> Decision:  # noqa: ARG002 (Policy.decide's signature)
        return Decision(False, str(tool), "/no-policy", None, self.DENIAL)


class PolicyState(FileState["LoadedPolicy"]):
    """One (server, policy file): the policy in force and the newest refusal."""

    def __init__(self, server: str, path: str, namespace: str, store, catalog: str | None = None, gate=None):
        super().__init__(server, path)
        self.namespace, self.store, self.catalog = namespace, store, catalog
        self.gate = gate  # a further gate for this (server, role): gate(policy) -> [reason, …]
        self.error_at: float | None = None

    def policy(self) -> Policy | DenyAll:
        cur = self.current
        if cur is None:
            return DenyAll(f"policy {Path(self.path).name} failed to load: {self.error or 'not loaded'}")
        return cur.policy

    def load(self) -> tuple[bool, str | None]:
        self.mark_seen()
        try:
            policy, sha = load_verified(self.path, self.catalog, self.store, self.namespace)
            reasons = self.gate(policy) if self.gate is not None else []
            if reasons:
                raise PolicyRefused(reasons[0])
        except PolicyRefused as e:
            self.error, self.error_at = str(e), time.time()
            return False, str(e)
        except Exception as e:  # never let a loader bug take the last good policy away
            self.error, self.error_at = f"{type(e).__name__}: {e}", time.time()
            return False, self.error
        if self.current is not None and self.current.sha256 == sha:
            self.error = None
            return True, None
        self.current = LoadedPolicy(self.path, policy, sha, time.time())
        self.error = self.error_at = None
        return True, None

    def health(self) -> dict:
        cur = self.current
        return {
            "path": self.path,
            "sha256": cur.sha256 if cur else None,
            "loaded_at": cur.loaded_at if cur else None,
            "in_force": cur is not None,
            "error": self.error,
        }


class PolicyRegistry(Registry[PolicyState]):
    """Every policy the gateway uses, keyed by (server, path); loaded on first use."""

    def __init__(self, store):
        super().__init__()
        self.store = store
        # gate_for(server, role) -> a gate for that policy, or None (the gateway's identity
        # check: the claims mapping against the policy's `entity User`)
        self.gate_for: Callable[[str, str], Callable | None] = lambda _server, _role: None

    def state(self, server: str, path: str, role: str, catalog: str | None = None) -> tuple[PolicyState, bool]:
        # the counter namespace must match across replicas whose config paths differ
        return self.get_or_load(
            server, path, lambda: PolicyState(server, path, f"{server}|{role}", self.store, catalog, self.gate_for(server, role)))
