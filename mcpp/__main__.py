"""`python -m mcpp`: the same CLI as the `mcpp` command, for when another `mcpp` is first on PATH."""

from mcpp.cli import main

main()
