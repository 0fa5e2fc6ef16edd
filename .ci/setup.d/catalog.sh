# Catalog tests: one real npm MCP server, pinned, for the live `mcpp catalog pull` test
# (tests/catalog/test_pull.py). Sourced by .ci/run; installs into a cache outside the repo.
MCPP_NPM_PREFIX="${MCPP_NPM_PREFIX:-$HOME/.cache/mcpp-test-npm}"
export MCPP_NPM_PREFIX
if ! command -v npm >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
fi
if [ ! -x "$MCPP_NPM_PREFIX/node_modules/.bin/mcp-server-memory" ]; then
  mkdir -p "$MCPP_NPM_PREFIX"
  npm install --prefix "$MCPP_NPM_PREFIX" --no-audit --no-fund --loglevel=error \
    @modelcontextprotocol/server-memory@2026.8.31
fi
