"""mcpp.lsp — the language server (`mcpp lsp`): diagnostics as you type, the analyzer's
findings in the background, hover, completion, formatting, outline, go to definition,
quick fixes and an Evaluate lens. See docs/editors.md."""
