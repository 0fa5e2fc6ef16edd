# Documentation tests (tests/cli/test_client_snippets.py): the TypeScript client snippet of
# docs/gateway.md runs against the gateway with the official TypeScript SDK, pinned here and
# installed into a cache outside the repo. Sourced by .ci/run; idempotent.
MCPP_TS_SDK_PREFIX="${MCPP_TS_SDK_PREFIX:-$HOME/.cache/mcpp-ts-sdk}"
export MCPP_TS_SDK_PREFIX
if ! command -v npm >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
if [ ! -f "$MCPP_TS_SDK_PREFIX/node_modules/@modelcontextprotocol/sdk/package.json" ]; then
  mkdir -p "$MCPP_TS_SDK_PREFIX"
  npm install --prefix "$MCPP_TS_SDK_PREFIX" --no-audit --no-fund --loglevel=error @modelcontextprotocol/sdk@1.32.2
fi
