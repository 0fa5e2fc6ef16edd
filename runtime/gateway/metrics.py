"""Prometheus metrics, rendered in the text exposition format without a client library.

Everything is in-process and cheap to update (a dict increment per event). Label values
come from closed sets: config and policy (server ids, rule pointers of tools the policy
or pinned catalog names), known MCP method names (else `other`), fixed kinds and reasons.
Callers' free text never becomes a label; as a second guard a new series whose label
value is longer than MAX_LABEL is recorded as `other`, and at most MAX_SERIES series are
kept per metric.
"""

from __future__ import annotations

import threading
from collections import defaultdict

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
MAX_SERIES = 5000
MAX_LABEL = 200


def _bounded(labels: tuple) -> tuple:
    return tuple((k, v if len(str(v)) <= MAX_LABEL else "other") for k, v in labels)


def _esc(v: str) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: dict[str, dict[tuple, float]] = defaultdict(lambda: defaultdict(float))
        self.gauges: dict[str, dict[tuple, float]] = defaultdict(dict)
        self.hists: dict[str, dict[tuple, list]] = defaultdict(dict)
        self.help = {
            "mcpp_requests_total": ("counter", "MCP requests by server, JSON-RPC method and HTTP status"),
            "mcpp_decisions_total": ("counter", "tools/call decisions by server, outcome and rule pointer"),
            "mcpp_upstream_errors_total": ("counter", "Upstream failures by server and kind"),
            "mcpp_auth_failures_total": ("counter", "Requests refused by authentication (401; 403 insufficient_scope; 503 identity provider unavailable) by server and reason"),
            "mcpp_idp_requests_total": ("counter", "Requests to trusted issuers (metadata, jwks, introspection, token_exchange) by issuer and result (HTTP status or error)"),
            "mcpp_policy_reloads_total": ("counter", "Policy and config reloads by result"),
            "mcpp_policy_healthy": ("gauge", "1 when the server's newest policy file is the one in force"),
            "mcpp_catalog_healthy": ("gauge", "1 when the server's newest pinned catalog file is the one in force"),
            "mcpp_catalog_reloads_total": ("counter", "Pinned catalog reloads by server and result"),
            "mcpp_catalog_drift_total": ("counter", "Tools an upstream listed that differ from the pin, by server and kind (each definition counted once)"),
            "mcpp_catalog_denials_total": ("counter", "tools/call refused by the pinned catalog, by server and kind"),
            "mcpp_schema_denials_total": ("counter", "tools/call refused before the policy because the arguments do not conform to the tool's inputSchema (or it cannot be checked), by server and kind"),
            "mcpp_catalog_listings_total": ("counter", "tools/list requests the gateway sent itself to check a pin, by server and result"),
            "mcpp_redis_breaker_open": ("gauge", "1 while the Redis circuit breaker is open (Redis unreachable or hung)"),
            "mcpp_redis_breaker_trips_total": ("counter", "Times the Redis circuit breaker opened"),
            "mcpp_redis_refused_total": ("counter", "Redis operations refused at once because the breaker was open"),
            "mcpp_shadow_decisions_total": ("counter", "tools/call decided by both the enforcing and the shadow policy, by server, result (agree | mismatch: the decisions differ), both decisions and both rule pointers (AgentCore: PolicyMismatch)"),
            "mcpp_shadow_healthy": ("gauge", "1 when the server's newest shadow policy file is the one in force"),
            "mcpp_shadow_reloads_total": ("counter", "Shadow policy reloads by server and result"),
            "mcpp_log_only": ("gauge", "1 while the gateway runs in log-only mode: nothing the policy denies is stopped"),
            "mcpp_log_only_passed_total": ("counter", "Calls log-only mode forwarded that enforcing would have stopped, by server and decision"),
            "mcpp_approvals_total": ("counter", "Approval events by server and event (requested, elicited, approved, rejected, used, restored, expired_wait)"),
            "mcpp_request_duration_seconds": ("histogram", "Time from request to response headers, by server and method"),
            "mcpp_decision_duration_seconds": ("histogram", "Time spent deciding a tools/call (including limits)"),
        }

    def inc(self, name: str, labels: tuple, by: float = 1.0) -> None:
        series = self.counters[name]
        if labels not in series:
            labels = _bounded(labels)
            if labels not in series and len(series) >= MAX_SERIES:
                labels = tuple((k, "other") for k, _ in labels)
        series[labels] += by

    def set(self, name: str, labels: tuple, value: float) -> None:
        series = self.gauges[name]
        if labels not in series:
            labels = _bounded(labels)
            if labels not in series and len(series) >= MAX_SERIES:
                return
        series[labels] = value

    def observe(self, name: str, labels: tuple, seconds: float) -> None:
        series = self.hists[name]
        h = series.get(labels)
        if h is None:
            labels = _bounded(labels)
            h = series.get(labels)
        if h is None:
            if len(series) >= MAX_SERIES:
                return
            h = series[labels] = [[0] * len(BUCKETS), 0.0, 0]
        buckets = h[0]
        for i, b in enumerate(BUCKETS):
            if seconds <= b:
                buckets[i] += 1
                break
        h[1] += seconds
        h[2] += 1

    def render(self) -> str:
        out = []
        for name, (kind, text) in self.help.items():
            out.append(f"# HELP {name} {text}")
            out.append(f"# TYPE {name} {kind}")
            if kind == "counter":
                for labels, v in sorted(self.counters.get(name, {}).items()):
                    out.append(f"{name}{_labels(labels)} {_num(v)}")
            elif kind == "gauge":
                for labels, v in sorted(self.gauges.get(name, {}).items()):
                    out.append(f"{name}{_labels(labels)} {_num(v)}")
            else:
                for labels, (buckets, total, count) in sorted(self.hists.get(name, {}).items()):
                    cum = 0
                    for b, n in zip(BUCKETS, buckets):
                        cum += n
                        out.append(f"{name}_bucket{_labels(labels + (('le', repr(b)),))} {cum}")
                    out.append(f"{name}_bucket{_labels(labels + (('le', '+Inf'),))} {count}")
                    out.append(f"{name}_sum{_labels(labels)} {total:.6f}")
                    out.append(f"{name}_count{_labels(labels)} {count}")
        return "\n".join(out) + "\n"


def _labels(labels: tuple) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_esc(v)}"' for k, v in labels) + "}"


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(v)
