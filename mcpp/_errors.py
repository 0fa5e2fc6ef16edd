"""`mcpp.PolicyError` and its subclasses: what the public API raises for unusable input.

Every error carries the diagnostics that explain it (`Diagnostic`: message, code,
severity and a `Span` with the file, line and column), never a traceback. The toolchain
underneath raises `mcpp.lang.diagnostics.MCPPError`; `from_mcpp_error` turns one into the
right public class, keeping it as `__cause__`.
"""

from __future__ import annotations

from collections.abc import Iterable

from ._types import Diagnostic


class PolicyError(Exception):
    """Input mcpp cannot use. `diagnostics` has every problem found, not just the first;
    `str(error)` is the first message, `render()` every one as `file:line:col: error: …`."""

    def __init__(self, diagnostics: Iterable[Diagnostic], source: str | None = None) -> None:
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        self.source = source
        first = self.diagnostics[0].message if self.diagnostics else "invalid policy"
        super().__init__(first)

    @property
    def span(self):  # -> Span | None
        """Where the first problem is (None for a JSON document: see `Diagnostic.pointer`)."""
        return self.diagnostics[0].span if self.diagnostics else None

    def render(self) -> str:
        """Every diagnostic as the command line prints it, with the offending line underlined."""
        return "\n".join(d.render(self.source) for d in self.diagnostics)


class PolicyFileError(PolicyError):
    """A policy or catalog file that cannot be read (missing, a directory, not UTF-8)."""


class PolicySyntaxError(PolicyError):
    """Text that does not parse: .mcpp syntax, or a JSON-form document that is not one."""


class PolicyValidationError(PolicyError):
    """A policy that parses but is not valid: unknown names, type errors, bad regexes,
    malformed assertions, or (with a catalog) tools and arguments the catalog does not have."""


class CatalogError(PolicyError):
    """A tool catalog that cannot be used."""


class CompileError(PolicyError):
    """`Policy.compile` could not prove that the JSON form it wrote decides every call as
    the policy does (translation validation): a fault in mcpp's compiler, reported rather
    than written. `str(error)` says which call decides differently, or why the proof
    could not be done."""

    @classmethod
    def of(cls, problem: str, file: str) -> CompileError:
        return cls([Diagnostic(problem, "error", "translation", file)])


def from_mcpp_error(err, *, file_error: bool = False) -> PolicyError:
    """The public error for an internal `MCPPError`, by the codes of its diagnostics."""
    diags = tuple(Diagnostic._of(d) for d in err.diagnostics)
    codes = {d.code for d in err.diagnostics}
    if file_error:
        cls: type[PolicyError] = PolicyFileError
    elif "catalog" in codes:
        cls = CatalogError
    elif "syntax" in codes or any(d.message.startswith("invalid JSON") for d in err.diagnostics):
        cls = PolicySyntaxError
    else:
        cls = PolicyValidationError
    out = cls(diags, getattr(err, "source", None))
    out.__cause__ = err
    return out
