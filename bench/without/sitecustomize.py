# ruff: noqa: ARG001, ARG005  (stand-ins take the signatures of what they replace)
"""For bench/gateway_instructions.py --breakdown only: started with this directory on
PYTHONPATH and MCPP_BENCH_WITHOUT=<part>, the gateway runs with that part of its request
path replaced by a stand-in that does nothing, so the difference in instructions per call
is what the part costs. Never used by the gateway itself (nothing imports this module;
Python runs a `sitecustomize` it finds on its path at start-up)."""

import os

_PART = os.environ.get("MCPP_BENCH_WITHOUT", "")

if _PART:
    import asyncio

    from mcpp.runtime.gateway import audit, metrics, proxy

    if _PART == "audit":  # the row's commit (SQLite and the group commit), not the row's making
        def _submit(self, row):
            fut = asyncio.get_running_loop().create_future()
            fut.set_result(1)
            return fut

        audit.GroupCommit.submit = _submit  # type: ignore[method-assign]
    elif _PART == "schema":  # the check against the tool's input schema
        async def _schema_check(self, server, name, args, *rest, **kw):
            return None, args

        proxy.GatewayApp.schema_check = _schema_check  # type: ignore[method-assign]
    elif _PART == "auth":  # the grant lookup and token check, after a caller's first request
        _first = proxy.GatewayApp.authenticate
        _seen: dict = {}

        async def _authenticate(self, send, server, headers):
            key = headers.get("authorization")
            if key not in _seen:
                _seen[key] = await _first(self, send, server, headers)
            return _seen[key]

        proxy.GatewayApp.authenticate = _authenticate  # type: ignore[method-assign]
    elif _PART == "routing":  # the protocol's header checks (the SDK's classify_inbound_request)
        proxy.GatewayApp.check_routing_headers = staticmethod(lambda *a, **k: None)  # type: ignore[method-assign]
    elif _PART == "telemetry":  # metrics and the decision's counting
        metrics.Metrics.observe = lambda *a, **k: None  # type: ignore[method-assign]
        metrics.Metrics.inc = lambda *a, **k: None  # type: ignore[method-assign]
        proxy.GatewayApp.count_decision = lambda *a, **k: None  # type: ignore[method-assign]
    else:
        raise SystemExit(f"MCPP_BENCH_WITHOUT: no part {_PART!r}")
