"""End to end with a real editor we did not write: headless Neovim (Debian's package)
loads editors/nvim exactly as docs/editors.md tells users to, opens an example with an
error, and reads back the diagnostic `mcpp lsp` published; then hovers, fixes the line
(Neovim sends an incremental didChange) and waits for the diagnostic to clear."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
NVIM_RTP = ROOT / "editors" / "nvim"

SCRIPT = r"""
vim.opt.runtimepath:prepend(os.getenv("MCPP_NVIM_RTP"))
vim.cmd("filetype plugin indent on")
vim.cmd("syntax on")
local out = {}
local function finish()
  local f = io.open(os.getenv("MCPP_NVIM_OUT"), "w")
  f:write(vim.fn.json_encode(out))
  f:close()
  vim.cmd("qa!")
end
require("mcpp").setup({
  cmd = { os.getenv("MCPP_PYTHON"), "-m", "mcpp.lsp" },
  settings = { mcpp = { analyzer = { debounceMs = 50 } } },
})
vim.cmd("edit " .. os.getenv("MCPP_NVIM_FILE"))
out.filetype = vim.bo.filetype
out.syntax = vim.b.current_syntax
out.got_diagnostics = vim.wait(60000, function() return #vim.diagnostic.get(0) > 0 end, 50)
out.diagnostics = {}
for _, d in ipairs(vim.diagnostic.get(0)) do
  local lsp = (d.user_data or {}).lsp or {}
  table.insert(out.diagnostics, {
    lnum = d.lnum, col = d.col, message = d.message, severity = d.severity,
    source = d.source, code = lsp.code or d.code,
  })
end
-- hover over `refund_payment` in the broken policy's scope
local line = vim.fn.search('Action::"refund_payment"', "w")
vim.api.nvim_win_set_cursor(0, { line, vim.fn.col(".") + 10 })
local res = vim.lsp.buf_request_sync(0, "textDocument/hover", vim.lsp.util.make_position_params(), 20000) or {}
for _, r in pairs(res) do
  if r.result and r.result.contents then out.hover = r.result.contents.value end
end
-- fix the error as a user would: edit the line in the buffer
local bad = vim.fn.search("amount = 1000", "w")
vim.api.nvim_buf_set_lines(0, bad - 1, bad, false, { "when { context.input.amount <= 1000 };" })
out.cleared = vim.wait(60000, function() return #vim.diagnostic.get(0) == 0 end, 50)
out.remaining = {}
for _, d in ipairs(vim.diagnostic.get(0)) do table.insert(out.remaining, d.message) end
finish()
"""


def test_neovim_shows_the_servers_diagnostic(tmp_path):
    nvim = shutil.which("nvim")
    if nvim is None:
        why = "Neovim is not installed: run .ci/setup.d/editors.sh (apt-get install neovim)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    # the example without its `@catalog` line: the file is opened where its catalog is not
    policy = (ROOT / "examples" / "refunds.mcpp").read_text(encoding="utf-8").replace(
        '@catalog("catalogs/refunds.json")\n', "", 1)
    broken = policy.replace("context.input.amount <= 1000 };", "context.input.amount = 1000 };", 1)
    assert broken != policy
    target = tmp_path / "refunds.mcpp"
    target.write_text(broken, encoding="utf-8")
    (tmp_path / "init.lua").write_text(SCRIPT, encoding="utf-8")
    out = tmp_path / "out.json"
    env = {
        **os.environ,
        "MCPP_NVIM_RTP": str(NVIM_RTP), "MCPP_NVIM_FILE": str(target), "MCPP_NVIM_OUT": str(out),
        "MCPP_PYTHON": sys.executable,
        "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_STATE_HOME": str(tmp_path / "state"), "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    r = subprocess.run([nvim, "--headless", "-n", "-i", "NONE", "-u", str(tmp_path / "init.lua")],
                       env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert out.exists(), f"nvim wrote nothing (exit {r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    result = json.loads(out.read_text())
    assert result["filetype"] == "mcpp" and result["syntax"] == "mcpp"
    assert result["got_diagnostics"], result
    (d,) = result["diagnostics"]
    line = broken.splitlines().index("when { context.input.amount = 1000 };")
    assert d["lnum"] == line and d["col"] == len("when { context.input.amount ")
    assert "unexpected '='" in d["message"] and "did you mean '=='" in d["message"]
    assert d["severity"] == 1 and d["source"] == "mcpp"
    assert "**tool** `refund_payment`" in result["hover"]
    assert result["cleared"], result["remaining"]
