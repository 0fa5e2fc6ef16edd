"""mcpp.lang — the .mcpp language: grammar, IR, validation, formatter, JSON form, compiler."""
