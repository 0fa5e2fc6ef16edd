-- Start `mcpp lsp` for mcpp buffers, with Neovim's built-in LSP client.
--
--   require("mcpp").setup({
--     cmd = { "mcpp", "lsp" },                 -- or { "/path/to/venv/bin/mcpp", "lsp" }
--     settings = { mcpp = { catalog = "tools.json", analyzer = { timeoutMs = 2000 } } },
--   })
--
-- Works on Neovim 0.7 (vim.lsp.start_client) and later (vim.lsp.start). See
-- docs/editors.md for nvim-lspconfig and Neovim 0.11's vim.lsp.config instead.
local M = {}

local defaults = {
  cmd = { "mcpp", "lsp" },
  -- the folder holding one of these is the workspace root; else the file's folder
  root_markers = { "mcpp.toml", ".git" },
  settings = { mcpp = {} },
}

local function root_dir(bufnr, markers)
  local file = vim.api.nvim_buf_get_name(bufnr)
  local dir = vim.fn.fnamemodify(file, ":p:h")
  local found = vim.fs and vim.fs.find and vim.fs.find(markers, { upward = true, path = dir })[1]
  if found then
    return vim.fn.fnamemodify(found, ":h")
  end
  return dir
end

local clients = {} -- root → client id (Neovim 0.7 has no vim.lsp.start to reuse clients)

function M.start(bufnr, opts)
  local root = root_dir(bufnr, opts.root_markers)
  local config = {
    name = "mcpp",
    cmd = opts.cmd,
    root_dir = root,
    workspace_folders = { { uri = vim.uri_from_fname(root), name = root } },
    settings = opts.settings,
    init_options = opts.settings.mcpp,
    on_attach = opts.on_attach,
    capabilities = opts.capabilities,
  }
  if vim.lsp.start then
    return vim.lsp.start(config, { bufnr = bufnr })
  end
  local id = clients[root]
  if not id or not vim.lsp.get_client_by_id(id) then
    id = vim.lsp.start_client(config)
    clients[root] = id
  end
  if id then
    vim.lsp.buf_attach_client(bufnr, id)
  end
  return id
end

function M.setup(opts)
  opts = vim.tbl_deep_extend("force", defaults, opts or {})
  local group = vim.api.nvim_create_augroup("mcpp_lsp", { clear = true })
  vim.api.nvim_create_autocmd("FileType", {
    group = group,
    pattern = "mcpp",
    callback = function(args)
      M.start(args.buf, opts)
    end,
  })
  -- buffers already open when setup runs
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(bufnr) and vim.bo[bufnr].filetype == "mcpp" then
      M.start(bufnr, opts)
    end
  end
end

return M
