"""`mcpp serve`: the MCP gateway that decides every `tools/call` before an upstream sees it.

Modules: `config` (TOML and the quick start), `grants` (bearer tokens, hashed at rest),
`counters` (SQLite and Redis limit stores), `audit` (durable decision rows), `policies`
(load, verify, hot reload with last-good), `pinning` (pinned catalogs: tools that changed
since review are hidden and refused), `http_client` and `stdio` (the two kinds of
upstream), `proxy` (the ASGI app: routing, auth, both protocol eras, decisions),
`metrics` and `logs` (operations), `server` (start-up and the reload loop).
"""
