"""`python -m mcpp.lsp`: the language server on stdio (same as `mcpp lsp`)."""

from .server import main

main()
