"""`mcpp test`: example-based policy tests, their coverage, and suggested cases.

- `cases`: the `<policy>.test.toml` format (read with tomllib, checked with pydantic),
  and finding test files under paths;
- `runner`: the cases run on `Engine.decide`, a fresh counter store per case;
- `coverage`: a traced engine (`lang.evaluator.tracing`) and the coverage items;
- `report`: text, JSON and JUnit XML;
- `suggest`: cases proposed from Z3 witnesses (the analyzer's session and replay).

Layers: this package builds on lang, the engine and (for `suggest` only) the analyzer;
the CLI and the language server use it. docs/testing.md documents the format.
"""
