"""Which tool catalog a policy is read against, loaded once per file version on disk.

A policy's own reference wins (`@catalog("tools.json")` on its `default` statement, or
an `mcpp.toml` beside it or above it — exactly what `mcpp check` uses); the workspace
setting `mcpp.catalog` is the fallback for policies that name none. A catalog that is
named but cannot be loaded becomes an error diagnostic, never a silent skip.
"""

from __future__ import annotations

import os
from pathlib import Path

from mcpp.lang.diagnostics import Diagnostic, Span


class CatalogCache:
    def __init__(self) -> None:
        self._loaded: dict[str, tuple[tuple[int, int], object]] = {}

    def load(self, path: Path):
        """The catalog at `path`; raises CatalogError. Re-read only when the file changes."""
        from mcpp.catalog import CatalogError, load_catalog

        key = str(path)
        try:
            st = os.stat(path)
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = (-1, -1)
        hit = self._loaded.get(key)
        if hit is not None and hit[0] == stamp:
            if isinstance(hit[1], CatalogError):
                raise hit[1]
            return hit[1]
        try:
            value = load_catalog(path)
        except CatalogError as e:
            self._loaded[key] = (stamp, e)
            raise
        self._loaded[key] = (stamp, value)
        return value

    def for_policy(self, policy_path: str | None, program, setting: str | None, roots: list[str]):
        """(catalog or None, a diagnostic when one is named but unusable)."""
        from mcpp.catalog import CatalogError, find_catalog_ref

        ref_span = None
        path: Path | None = None
        try:
            if policy_path:
                ref = find_catalog_ref(policy_path, program)
                if ref is not None:
                    path, ref_span = ref.path, ref.span
        except CatalogError as e:
            return None, _problem(e, None)
        if path is None and setting:
            path = Path(setting).expanduser()
            if not path.is_absolute():
                bases = [Path(policy_path).parent] if policy_path else []
                bases += [Path(r) for r in roots]
                for base in bases:
                    if (base / path).exists():
                        path = base / path
                        break
                else:
                    path = (Path(roots[0]) if roots else Path.cwd()) / path
        if path is None:
            return None, None
        try:
            return self.load(path), None
        except CatalogError as e:
            return None, _problem(e, ref_span, setting if ref_span is None and setting else None)


def _problem(e, span: Span | None, setting: str | None = None) -> Diagnostic:
    first = e.diagnostics[0] if e.diagnostics else None
    where = first.file if first is not None else ""
    msg = f"tool catalog {where}: {first.message if first else e}"
    notes = (f"named by the mcpp.catalog setting ({setting!r})",) if setting else ()
    return Diagnostic(msg, span or Span(1, 1, 1, 1, 0, 0), "error", "catalog", "<catalog>", notes)
